//! [`ReportPolicy`]: what the process using the policies adds to their status.

use super::CanaryStatus;
use crate::store::PolicyId;

/// What the user of a policy (a gateway) says about it, for its `Programmed` condition and its
/// canary status.
///
/// ```
/// use fluxgate_core::store::{CanaryStatus, PolicyReport};
///
/// let fine = PolicyReport::programmed().canary(CanaryStatus::new("Progressing", 10));
/// assert!(fine.not_programmed.is_none());
/// let broken = PolicyReport::not_programmed("NoEndpoints", "checkout.payments.svc resolves to no address");
/// assert_eq!(broken.not_programmed.unwrap().0, "NoEndpoints");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct PolicyReport {
    /// Why the policy in force does not work as written: a reason in `CamelCase` (such as
    /// `NoEndpoints`) and a message; `None` when it does.
    pub not_programmed: Option<(String, String)>,
    /// The canary's phase and weight, when the policy's canary routes traffic.
    pub canary: Option<CanaryStatus>,
}

impl PolicyReport {
    /// The policy in force works as written.
    pub fn programmed() -> Self {
        Self::default()
    }

    /// The policy in force does not work, for `reason` (`CamelCase`), as `message` says.
    pub fn not_programmed(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            not_programmed: Some((reason.into(), message.into())),
            canary: None,
        }
    }

    /// Adds the canary's phase and weight.
    pub fn canary(mut self, canary: CanaryStatus) -> Self {
        self.canary = Some(canary);
        self
    }
}

/// Reports on the policies a [`KubeSource`](super::KubeSource) follows; asked again every
/// [`resync`](super::KubeSource::resync) period, and a status is written when the answer
/// changed it.
///
/// `None` for a policy this process does not use: its status gets no `Programmed` condition
/// from it. Any `Fn(&PolicyId) -> Option<PolicyReport>` is one.
///
/// ```
/// use fluxgate_core::store::{PolicyId, PolicyReport, ReportPolicy};
///
/// let followed = PolicyId::new("payments", "checkout");
/// let report = move |id: &PolicyId| (*id == followed).then(PolicyReport::programmed);
/// assert!(report.report(&PolicyId::new("payments", "other")).is_none());
/// ```
pub trait ReportPolicy: Send + Sync + 'static {
    /// The report on `id`, or `None` when this process does not use it.
    fn report(&self, id: &PolicyId) -> Option<PolicyReport>;
}

impl<F> ReportPolicy for F
where
    F: Fn(&PolicyId) -> Option<PolicyReport> + Send + Sync + 'static,
{
    fn report(&self, id: &PolicyId) -> Option<PolicyReport> {
        self(id)
    }
}
