//! The gateway's `TrafficPolicy`: loaded from a file into a [`PolicyStore`], then followed.
//!
//! [`GatewayPolicy::load`] parses and validates the file (the gateway refuses to start on an
//! invalid one) and returns the [`FileSource`] that applies later saves; an invalid save is
//! reported and the policy in force stays. The gateway follows the policy named by the file's
//! first document (`namespace/name`); the layers read it through a [`PolicySlot`].
//!
//! # Example
//!
//! ```
//! use fluxgate_examples::policy::GatewayPolicy;
//! use std::path::Path;
//!
//! let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/checkout-service-policy.yaml");
//! let (policy, _source) = GatewayPolicy::load(&path, None).unwrap();
//! assert_eq!(policy.id().to_string(), "payments/checkout-service-policy");
//! assert!(policy.slot().load().is_some());
//! ```

use std::path::{Path, PathBuf};

use fluxgate_core::store::{ApplyError, FileSource, PolicyId, PolicySlot, PolicyStore};

/// The policy a gateway follows: its file, its store and its id.
#[derive(Debug, Clone)]
pub struct GatewayPolicy {
    path: PathBuf,
    store: PolicyStore,
    id: PolicyId,
}

/// Why a policy file was refused at startup.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyLoadError {
    /// The file could not be read, or a document in it does not parse or validate.
    #[error("policy {path}: {source}")]
    Apply {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        source: ApplyError,
    },
}

impl GatewayPolicy {
    /// Loads the policy file at `path` into a new store.
    ///
    /// `namespace` is given to documents that name none (and a document naming another is
    /// refused). Spawn the returned [`FileSource`] to follow later saves.
    ///
    /// # Errors
    ///
    /// [`PolicyLoadError`] when the file cannot be read or a document is invalid.
    pub fn load(
        path: &Path,
        namespace: Option<&str>,
    ) -> Result<(Self, FileSource), PolicyLoadError> {
        let refused = |source| PolicyLoadError::Apply {
            path: path.to_owned(),
            source,
        };
        let store = PolicyStore::new();
        let mut source = FileSource::new(path, store.clone());
        if let Some(namespace) = namespace {
            source = source.namespace(namespace);
        }
        let report = source.load().map_err(refused)?;
        let id = match report.changes.first() {
            Some(change) => change.id().clone(),
            // Not reached: the first load of a file either fails or applies at least one policy.
            None => {
                return Err(refused(ApplyError::Read {
                    path: path.to_owned(),
                    message: "no policy in the file".to_owned(),
                }));
            }
        };
        let policy = Self {
            path: path.to_owned(),
            store,
            id,
        };
        Ok((policy, source))
    }

    /// The file the policy comes from.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The id of the policy the gateway follows.
    #[must_use]
    pub fn id(&self) -> &PolicyId {
        &self.id
    }

    /// The store holding the file's policies.
    #[must_use]
    pub fn store(&self) -> &PolicyStore {
        &self.store
    }

    /// The slot the layers read the policy from.
    #[must_use]
    pub fn slot(&self) -> PolicySlot {
        self.store.slot(&self.id)
    }
}
