//! The owner's part of a [`Balance`](crate::Balance): taking in discovery's changes and new
//! policies, done under the control lock by whichever clone finds them due.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use fluxgate_core::clock::Stamp;
use tower::BoxError;
use tower::discover::{Change, Discover};

use crate::endpoint::{EndpointState, Weighted};
use crate::endpoint::{Slot, Slots, States};
use crate::error::BalanceError;
use crate::service::{Control, Core, track_for};
use crate::shared::Shared;

impl<D, K, S> Control<D>
where
    D: Discover<Key = K, Service = Weighted<S>>,
    K: Eq + Clone + Send + Sync + 'static,
{
    pub(crate) fn insert(
        &self,
        shared: &Shared<K>,
        slots: &mut Slots<K, Weighted<S>>,
        key: K,
        endpoint: Weighted<S>,
        ramp: bool,
    ) {
        let existing = slots.iter().position(|s| s.state.key == key);
        let Some(state) = EndpointState::new(
            key,
            endpoint.weight,
            shared.origin,
            Arc::clone(&shared.dirty),
            self.half_life,
            ramp,
        ) else {
            tracing::error!("endpoint state could not be built; endpoint ignored");
            return;
        };
        let slot = Arc::new(Slot {
            service: endpoint,
            state: Arc::new(state),
        });
        match existing {
            Some(at) => slots[at] = slot,
            None => slots.push(slot),
        }
    }

    /// Puts a new endpoint set in force: published to handles and the health task, and
    /// evaluated at once.
    pub(crate) fn set_slots(&mut self, core: &Core<D>, slots: Slots<K, Weighted<S>>) {
        let list: Arc<States<K>> = Arc::new(slots.iter().map(|s| Arc::clone(&s.state)).collect());
        core.shared.endpoints.store(Arc::clone(&list));
        self.states = list;
        self.slots = Arc::new(slots);
        self.probe = None;
        self.evaluate(core, Stamp::now());
    }

    /// Takes in the discovery's changes; `true` when the set changed (and was published).
    pub(crate) fn poll_discover(&mut self, core: &Core<D>) -> Result<bool, BalanceError>
    where
        D: Unpin,
        D::Error: Into<BoxError>,
    {
        let waker = Waker::from(Arc::clone(&core.discover_woken));
        let mut cx = Context::from_waker(&waker);
        let mut slots: Option<Slots<K, Weighted<S>>> = None;
        while let Some(discover) = self.discover.as_mut() {
            match Pin::new(discover).poll_discover(&mut cx) {
                Poll::Pending => break,
                Poll::Ready(None) => self.discover = None,
                Poll::Ready(Some(Err(e))) => {
                    // Raised again so that the next poll reads on after the error.
                    core.discover_woken.raise();
                    if let Some(slots) = slots {
                        self.set_slots(core, slots);
                    }
                    return Err(BalanceError::Discover(e.into()));
                }
                Poll::Ready(Some(Ok(Change::Insert(key, endpoint)))) => {
                    let ramp = !self.eligible.is_empty();
                    let list = slots.get_or_insert_with(|| self.slots.to_vec());
                    self.insert(&core.shared, list, key, endpoint, ramp);
                }
                Poll::Ready(Some(Ok(Change::Remove(key)))) => {
                    let list = slots.get_or_insert_with(|| self.slots.to_vec());
                    if let Some(at) = list.iter().position(|s| s.state.key == key) {
                        list.swap_remove(at);
                    }
                }
            }
        }
        let changed = slots.is_some();
        if let Some(slots) = slots {
            self.set_slots(core, slots);
        }
        Ok(changed)
    }

    /// Takes a new policy in; `true` when there was one.
    pub(crate) fn refresh_policy(&mut self, shared: &Shared<K>) -> bool {
        let generation = shared.generation.load(Ordering::Acquire);
        if generation == self.generation {
            return false;
        }
        self.generation = generation;
        self.policy = shared.policy.load_full();
        self.od = self.policy.outlier_detection_in_force();
        self.track = track_for(&self.policy, self.failure_streak);
        true
    }
}
