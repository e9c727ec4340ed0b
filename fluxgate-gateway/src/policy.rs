//! The gateway's `TrafficPolicy`: loaded from a file into a [`PolicyStore`], then followed.
//!
//! [`GatewayPolicy::load`] parses and validates the file (the gateway refuses to start on an
//! invalid one) and returns the [`FileSource`] that applies later saves; an invalid save is
//! reported and the policy in force stays. The gateway follows the policy named by the file's
//! first document (`namespace/name`); the layers read it through a [`PolicySlot`]. A later save
//! that renames it (`metadata.name` or the namespace) does not leave the gateway unprotected: the
//! store links the old id to the new one, so the gateway enforces what the file says under its new
//! name, logs a warning and shows the link in `/api/status` (`store.renamed`); see
//! [the store's rules](fluxgate_core::store#removal-and-renaming).
//!
//! # Example
//!
//! ```
//! use fluxgate_gateway::policy::GatewayPolicy;
//! use std::path::Path;
//!
//! let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/checkout-service-policy.yaml");
//! let (policy, _source) = GatewayPolicy::load(&path, None).unwrap();
//! assert_eq!(policy.id().to_string(), "payments/checkout-service-policy");
//! assert!(policy.slot().load().is_some());
//!
//! // Without a file: the policy compiled into the binary.
//! let demo = GatewayPolicy::bundled(None).unwrap();
//! assert_eq!(demo.id(), policy.id());
//! assert_eq!(demo.path(), None);
//! ```

use std::path::{Path, PathBuf};

use fluxgate_core::store::{ApplyError, FileSource, PolicyId, PolicySlot, PolicyStore};

/// The policy a gateway follows: its file, its store and its id.
#[derive(Debug, Clone)]
pub struct GatewayPolicy {
    path: Option<PathBuf>,
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
    /// The bundled policy does not apply (only with a `namespace` it cannot take).
    #[error("the bundled policy: {0}")]
    Bundled(ApplyError),
}

/// The policy compiled into the gateway: the seed's `checkout-service-policy`, which the demo
/// runs when no `--policy` is given.
pub const BUNDLED_POLICY: &str = include_str!("../policies/checkout-service-policy.yaml");

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
            path: Some(path.to_owned()),
            store,
            id,
        };
        Ok((policy, source))
    }

    /// Loads [`BUNDLED_POLICY`] into a new store; nothing is followed.
    ///
    /// # Errors
    ///
    /// [`PolicyLoadError::Bundled`] when `namespace` differs from the bundled policy's.
    pub fn bundled(namespace: Option<&str>) -> Result<Self, PolicyLoadError> {
        let store = PolicyStore::new();
        let report = store
            .apply_bytes(BUNDLED_POLICY.as_bytes(), namespace)
            .map_err(PolicyLoadError::Bundled)?;
        let id = report
            .changes
            .first()
            .map(|change| change.id().clone())
            .ok_or_else(|| {
                PolicyLoadError::Bundled(ApplyError::Read {
                    path: PathBuf::from("<bundled>"),
                    message: "no policy in the bundled text".to_owned(),
                })
            })?;
        Ok(Self {
            path: None,
            store,
            id,
        })
    }

    /// The file the policy comes from; `None` for the bundled policy.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
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
