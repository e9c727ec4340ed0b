use std::path::PathBuf;

use super::PolicyId;
use crate::policy::PolicyErrors;

/// Why a store refused an apply. The policies in force do not change when an apply fails.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// A document does not parse or does not validate.
    #[error("invalid policy:\n{0}")]
    Invalid(PolicyErrors),
    /// A document names a namespace other than the one it is applied to.
    #[error("policy {policy} is in namespace {document}, but is applied to namespace {given}")]
    NamespaceMismatch {
        /// The policy's name.
        policy: String,
        /// The namespace the document names.
        document: String,
        /// The namespace it was applied to.
        given: String,
    },
    /// The same `namespace/name` appears twice in one apply.
    #[error("policy {0} appears more than once")]
    Duplicate(PolicyId),
    /// A policy file could not be read.
    #[error("cannot read {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's message.
        message: String,
    },
}
