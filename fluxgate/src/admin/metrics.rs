//! The `/metrics` answer: the admin's parts through [`crate::metrics`], in the format asked for.

use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use super::Admin;
use crate::metrics::{Format, encode};

/// Text 0.0.4, or OpenMetrics when the scraper's `Accept` prefers it.
pub(super) fn answer(admin: &Admin, headers: &HeaderMap) -> Response {
    let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let body = encode(&admin.inner.registry, format);
    ([(CONTENT_TYPE, format.content_type())], body).into_response()
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn upstream_counters_and_latency_histogram() {
        use fluxgate_balance::{Balance, Weighted};
        use fluxgate_core::policy::LoadBalancing;
        use tower::{Service, ServiceExt};

        let status = |code: u16| {
            Weighted::new(
                tower::service_fn(move |_: http::Request<()>| async move {
                    http::Response::builder().status(code).body(())
                }),
                1,
            )
        };
        let mut balance = Balance::new(
            LoadBalancing::default(),
            [("ok", status(200)), ("bad", status(500))],
        );
        for _ in 0..4 {
            let svc = balance.ready().await.unwrap();
            svc.call(http::Request::new(())).await.unwrap();
        }
        let admin = super::super::Admin::builder()
            .balancer("web", balance.handle())
            .build();
        let text = admin.metrics();
        for line in [
            "# TYPE fluxgate_upstream_requests_total counter",
            r#"fluxgate_upstream_requests_total{balancer="web",endpoint="ok",outcome="success"} 2"#,
            r#"fluxgate_upstream_requests_total{balancer="web",endpoint="bad",outcome="failure"} 2"#,
            r#"fluxgate_upstream_requests_total{balancer="web",endpoint="bad",outcome="overload"} 0"#,
            "# TYPE fluxgate_upstream_request_duration_seconds histogram",
            r#"fluxgate_upstream_request_duration_seconds_bucket{le="0.005",balancer="web",endpoint="ok"} 2"#,
            r#"fluxgate_upstream_request_duration_seconds_bucket{le="10.0",balancer="web",endpoint="ok"} 2"#,
            r#"fluxgate_upstream_request_duration_seconds_bucket{le="+Inf",balancer="web",endpoint="ok"} 2"#,
            r#"fluxgate_upstream_request_duration_seconds_count{balancer="web",endpoint="bad"} 2"#,
            "# TYPE fluxgate_upstream_in_flight_requests gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        let sum =
            r#"fluxgate_upstream_request_duration_seconds_sum{balancer="web",endpoint="ok"} "#;
        assert!(text.contains(sum));
        assert!(!text.contains("# EOF"));
    }
}
