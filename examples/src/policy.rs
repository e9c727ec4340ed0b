//! Loading the gateway's `TrafficPolicy` file.
//!
//! Everything else in this crate sees a policy only through [`load_policy_file`] and
//! [`LoadedPolicy`], so switching to `fluxgate_core::policy` is a change inside this file.
//!
//! # Example
//!
//! ```
//! use fluxgate_examples::policy::load_policy_file;
//! use std::path::Path;
//!
//! let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/checkout-service-policy.yaml");
//! let policy = load_policy_file(&path).unwrap();
//! assert_eq!(policy.namespace.as_deref(), Some("payments"));
//! assert_eq!(policy.name.as_deref(), Some("checkout-service-policy"));
//! ```

use std::path::{Path, PathBuf};

/// A policy file that was read and accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadedPolicy {
    /// The file it came from.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
    /// `metadata.namespace`, when the document has one.
    pub namespace: Option<String>,
    /// `metadata.name`, when the document has one.
    pub name: Option<String>,
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyLoadError {
    /// The file could not be read.
    #[error("cannot read policy {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not UTF-8.
    #[error("policy {path} is not UTF-8 text")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// The file is empty or only whitespace.
    #[error("policy {path} is empty")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Reads and checks the policy at `path`.
///
/// # Errors
///
/// [`PolicyLoadError`] when the file cannot be read, is not UTF-8 or is empty.
pub fn load_policy_file(path: &Path) -> Result<LoadedPolicy, PolicyLoadError> {
    // replaced by fluxgate_core::policy once merged: parse and validate the document there and
    // fill `namespace`/`name` from the parsed metadata instead of scanning lines.
    let bytes = std::fs::read(path).map_err(|source| PolicyLoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| PolicyLoadError::NotUtf8 {
        path: path.to_owned(),
    })?;
    if text.trim().is_empty() {
        return Err(PolicyLoadError::Empty {
            path: path.to_owned(),
        });
    }
    let (namespace, name) = scan_metadata(&text);
    Ok(LoadedPolicy {
        path: path.to_owned(),
        text,
        namespace,
        name,
    })
}

/// Finds `namespace:` and `name:` directly under a top-level `metadata:` line.
// replaced by fluxgate_core::policy once merged
fn scan_metadata(text: &str) -> (Option<String>, Option<String>) {
    let (mut namespace, mut name) = (None, None);
    let mut in_metadata = false;
    let mut indent = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let depth = line.len() - trimmed.len();
        if depth == 0 {
            in_metadata = trimmed.trim_end() == "metadata:";
            continue;
        }
        if !in_metadata || *indent.get_or_insert(depth) != depth {
            continue;
        }
        let value = |rest: &str| Some(rest.trim().trim_matches(['"', '\'']).to_owned());
        if let Some(rest) = trimmed.strip_prefix("namespace:") {
            namespace = value(rest);
        } else if let Some(rest) = trimmed.strip_prefix("name:") {
            name = value(rest);
        }
    }
    (namespace, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_only_top_level_metadata() {
        let text = "kind: X\nmetadata:\n  name: \"a\"\n  labels:\n    name: nested\nspec:\n  name: other\n";
        assert_eq!(scan_metadata(text), (None, Some("a".to_owned())));
    }
}
