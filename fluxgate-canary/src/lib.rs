//! FluxGate's canary router: header, cookie and weighted routing to a new version, progressive
//! shifting and an in-process judge that rolls back.
//!
//! This crate is being built; its policy section (`spec.canary`) is already parsed and validated
//! by [`fluxgate_core::policy`].
