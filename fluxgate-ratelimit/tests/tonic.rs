//! gRPC refusals reach tonic as `RESOURCE_EXHAUSTED` with the delay: around a tonic `Channel`
//! (`grpc()`) and in front of a tonic server (the HTTP variant and `grpc()`), with a real
//! tonic-health server and client on loopback.

use std::time::Duration;

use fluxgate_core::policy::{MissingKey, RateLimitSpec};
use fluxgate_ratelimit::{RateLimitError, RateLimitLayer};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::Layer;

/// One request a minute at most, after a burst of one: the second call is always refused.
fn one(key: &str) -> RateLimitSpec {
    let mut limit = RateLimitSpec::new(1.0 / 60.0, 1);
    key.clone_into(&mut limit.key_extractor);
    limit
}

/// The limit of the client-side tests: one call per `x-client-id`.
fn per_client() -> RateLimitLayer {
    RateLimitLayer::builder()
        .limit(one("header.x-client-id"))
        .build()
        .unwrap()
}

/// Serves tonic-health on a free loopback port behind the layers of `$server` (a tonic
/// `Server`); evaluates to its URL.
macro_rules! serve {
    ($server:expr) => {{
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (_reporter, health) = tonic_health::server::health_reporter();
        let router = $server.add_service(health);
        tokio::spawn(router.serve_with_incoming(TcpIncoming::from(listener)));
        url
    }};
}

async fn check<S>(client: &mut HealthClient<S>, id: Option<&'static str>) -> Result<(), Status>
where
    S: tonic::client::GrpcService<tonic::body::Body>,
    S::Error: Into<tonic::codegen::StdError>,
    S::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <S::ResponseBody as http_body::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let mut request = tonic::Request::new(HealthCheckRequest::default());
    if let Some(id) = id {
        request
            .metadata_mut()
            .insert("x-client-id", id.parse().unwrap());
    }
    let call = tokio::time::timeout(Duration::from_secs(10), client.check(request));
    call.await.expect("the call ends").map(drop)
}

fn channel(url: String) -> Channel {
    Endpoint::from_shared(url).unwrap().connect_lazy()
}

/// The refusal a client sees: `RESOURCE_EXHAUSTED`, and the delay in the metadata.
fn assert_exhausted(status: &Status) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let number = |name: &str| -> u64 {
        let value = status.metadata().get(name).expect(name);
        value.to_str().unwrap().parse().unwrap()
    };
    let (secs, millis) = (number("retry-after"), number("grpc-retry-pushback-ms"));
    assert!((59..=60).contains(&secs), "{status:?}");
    assert!((58_000..=60_000).contains(&millis), "{status:?}");
}

#[tokio::test]
async fn around_a_channel_grpc_gives_resource_exhausted() {
    let url = serve!(Server::builder());
    let layer = per_client().grpc();
    let mut client = HealthClient::new(layer.layer(channel(url)));

    check(&mut client, Some("greedy")).await.unwrap();
    let status = check(&mut client, Some("greedy")).await.unwrap_err();
    assert_exhausted(&status);
    let source = std::error::Error::source(&status).expect("the rate limit error");
    assert!(matches!(
        source.downcast_ref(),
        Some(RateLimitError::Limited { .. })
    ));
    // Another client has its own bucket.
    check(&mut client, Some("polite")).await.unwrap();
    assert_eq!(layer.metrics().refused, 1);
}

#[tokio::test]
async fn around_a_channel_a_missing_key_is_invalid_argument() {
    let url = serve!(Server::builder());
    let mut limit = one("header.x-client-id");
    limit.missing_key = MissingKey::Reject;
    let layer = RateLimitLayer::builder().limit(limit).build().unwrap();
    let status = check(
        &mut HealthClient::new(layer.grpc().layer(channel(url))),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

#[tokio::test]
async fn around_a_channel_typed_is_unknown_to_tonic() {
    // Why `grpc()` exists: tonic cannot read a `RateLimitError`.
    let url = serve!(Server::builder());
    let mut client = HealthClient::new(per_client().erroring().layer(channel(url)));
    check(&mut client, Some("a")).await.unwrap();
    let status = check(&mut client, Some("a")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unknown);
}

#[tokio::test]
async fn in_front_of_a_server_the_http_variant_answers_resource_exhausted() {
    // The default key `ip`: the layer reads tonic's `TcpConnectInfo`.
    let layer = RateLimitLayer::builder().limit(one("ip")).build().unwrap();
    let url = serve!(Server::builder().layer(layer.clone()));
    let mut client = HealthClient::new(channel(url));

    check(&mut client, None).await.unwrap();
    let status = check(&mut client, None).await.unwrap_err();
    assert_exhausted(&status);
    assert!(status.metadata().get("ratelimit").is_some(), "{status:?}");
    let metrics = layer.metrics();
    assert_eq!((metrics.refused, metrics.no_client_address), (1, 0));
}

#[tokio::test]
async fn in_front_of_a_server_grpc_answers_resource_exhausted() {
    let layer = RateLimitLayer::builder()
        .limit(one("ip"))
        .build()
        .unwrap()
        .grpc();
    let url = serve!(Server::builder().layer(layer.clone()));
    let mut client = HealthClient::new(channel(url));

    check(&mut client, None).await.unwrap();
    let status = check(&mut client, None).await.unwrap_err();
    assert_exhausted(&status);
    assert_eq!(layer.metrics().no_client_address, 0);
}
