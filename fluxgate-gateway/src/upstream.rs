//! Upstream addresses as given on the command line: `URL[,protocol=P][,weight=N]`.
//!
//! The types live in `fluxgate-proxy` ([`fluxgate_proxy::upstream`], where the table of
//! protocols is); this module keeps their gateway paths.
//!
//! # Example
//!
//! ```
//! use fluxgate_gateway::upstream::UpstreamSpec;
//!
//! let spec: UpstreamSpec = "http://127.0.0.1:3000/api,weight=3".parse().unwrap();
//! assert_eq!(spec.weight.get(), 3);
//! ```

pub use fluxgate_proxy::upstream::{Protocol, Upstream, UpstreamError, UpstreamSpec};
