//! The gateway's health probe: per upstream, the gRPC health protocol or an HTTP `GET`, through
//! the client the upstream is spoken to with.

use std::collections::HashMap;

use bytes::Bytes;
use fluxgate_balance::health::{GrpcProbe, HttpProbe, Probe, ProbeFuture};
use fluxgate_core::policy::{HealthCheck, HealthProtocol};
use http::Request;
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;

use crate::proxy::{ProxyBody, ProxyClient, ProxyClients};
use crate::upstream::{Protocol, UpstreamSpec};

/// What an upstream is probed with: its client, and whether it is a `protocol=grpc` upstream.
#[derive(Debug, Clone)]
struct Target {
    client: ProxyClient,
    grpc: bool,
}

/// Probes each upstream (keyed by its URL) as its protocol says; see the
/// [stack docs](crate::stack).
#[derive(Debug)]
pub(crate) struct GatewayProbe {
    targets: HashMap<String, Target>,
    /// For keys not among the upstreams (none in practice): HTTP/1.1 or ALPN.
    fallback: ProxyClient,
    /// gRPC health checks of non-gRPC upstreams (a policy's `protocol: grpc`) need HTTP/2.
    http2: ProxyClient,
}

/// The request body of [`GrpcProbe`] as the proxy client's.
fn boxed(request: Request<Full<Bytes>>) -> Request<ProxyBody> {
    request.map(|body| body.map_err(|never| match never {}).boxed_unsync())
}

impl GatewayProbe {
    /// A probe of `upstreams` through `clients`.
    pub(crate) fn new<'a>(
        clients: &ProxyClients,
        upstreams: impl IntoIterator<Item = &'a UpstreamSpec>,
    ) -> Self {
        let targets = upstreams
            .into_iter()
            .map(|spec| {
                let target = Target {
                    client: clients.for_upstream(spec).clone(),
                    grpc: spec.protocol == Protocol::Grpc,
                };
                (spec.upstream.to_string(), target)
            })
            .collect();
        Self {
            targets,
            fallback: clients.for_protocol(Protocol::Auto).clone(),
            http2: clients.for_protocol(Protocol::H2c).clone(),
        }
    }
}

impl Probe<String> for GatewayProbe {
    fn probe(&self, key: &String, check: &HealthCheck) -> ProbeFuture {
        let target = self.targets.get(key);
        let client = target.map_or(&self.fallback, |t| &t.client).clone();
        let grpc_upstream = target.is_some_and(|t| t.grpc);
        if grpc_upstream || matches!(check.protocol, HealthProtocol::Grpc) {
            let client = if grpc_upstream {
                client
            } else {
                self.http2.clone()
            };
            let convert: fn(Request<Full<Bytes>>) -> Request<ProxyBody> = boxed;
            GrpcProbe::<_, Full<Bytes>>::new(client.map_request(convert)).probe(key, check)
        } else {
            HttpProbe::<_, ProxyBody>::new(client).probe(key, check)
        }
    }
}
