//! Policies kept in Redis: the follower that gateway replicas run, and the writer `fluxctl` uses.
//!
//! Use [`RedisSource`] in every gateway replica to follow a namespace's policies, and
//! [`RedisPolicies`] to write them (it is what `fluxctl apply --redis` does).
//!
//! # Data layout
//!
//! | key | type | content |
//! | --- | --- | --- |
//! | `fluxgate:policies:{NS}` ([`policies_key`]) | hash | field = policy name, value = `{"version": V, "policy": {…}}` (the policy as JSON) |
//! | `fluxgate:policies:{NS}:versions` ([`versions_key`]) | hash | field = policy name, value = its last version, deleted policies included |
//! | `fluxgate:policies:{NS}:changes` ([`changes_channel`]) | channel | `{"name": N, "version": V, "policy": {…}}` or `{"name": N, "version": V, "deleted": true}` per change |
//!
//! Each write or delete of a policy increments its version, in a Lua script that also stores the
//! record and publishes the change, so the three never disagree. A writer can make its write
//! conditional on the version it read ([`RedisPolicies::apply_if_version`]), and followers ignore
//! a change whose version is not newer than the one they hold. `{NS}` is a hash tag, so a
//! namespace's keys share one Redis Cluster slot.
//!
//! # Example
//!
//! ```no_run
//! use fluxgate_core::policy::TrafficPolicy;
//! use fluxgate_core::store::{PolicyId, PolicyStore, RedisPolicies, RedisSource};
//!
//! # async fn run() -> Result<(), fluxgate_core::store::RedisStoreError> {
//! let url = "redis://127.0.0.1:6379";
//! let store = PolicyStore::new();
//! let mut follower = RedisSource::new(url, "payments", store.clone())?.spawn();
//! follower.wait_synced(1).await;
//!
//! let writer = RedisPolicies::connect(url).await?;
//! writer.apply("payments", &[TrafficPolicy::new(None, "checkout")]).await?;
//! let mut slot = store.slot(&PolicyId::new("payments", "checkout"));
//! while slot.load().is_none() {
//!     slot.changed().await.expect("the store lives on");
//! }
//! # Ok(()) }
//! ```

mod error;
mod follower;
mod record;
mod scripts;
mod tls;
mod writer;

pub use error::{RedisStoreError, redact_url};
pub use follower::{RedisSource, RedisSourceHandle, RedisSourceStatus};
pub use record::{StoredPolicy, changes_channel, policies_key, versions_key};
pub use tls::{RedisTls, install_tls_provider};
pub use writer::{PolicyVersion, RedisPolicies};
