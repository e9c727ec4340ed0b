//! `RateLimitSpec-Policy` advertises the quota a client can rely on: `q` requests per `w` whole
//! seconds at the sustained rate, and the burst when the two differ (1200/s with a burst of 150
//! is `q=1200;w=1;burst=150`, never `q=150;w=1`, an eighth of the rate).

mod support;

use fluxgate_core::policy::{LimitAlgorithm, RateLimitSpec};
use fluxgate_ratelimit::RateLimitLayer;
use support::*;

async fn advertised(rps: f64, burst: u32, algorithm: LimitAlgorithm) -> String {
    let mut limit = RateLimitSpec::new(rps, burst);
    limit.algorithm = algorithm;
    let layer = RateLimitLayer::builder().limit(limit).build().unwrap();
    let (mut svc, _calls) = service(&layer);
    let answer = send(&mut svc, from("192.0.2.1:1")).await;
    answer.headers()["ratelimit-policy"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(start_paused = true)]
async fn the_advertised_quota_is_the_rate() {
    let cases = [
        // The seed policy: the burst regained in 125ms, which `w` cannot say.
        (1200.0, 150, r#""limit-0";q=1200;w=1;burst=150"#),
        // A whole-second window stays as it was: the burst per window.
        (5.0, 10, r#""limit-0";q=10;w=2"#),
        (2.5, 4, r#""limit-0";q=5;w=2;burst=4"#),
        (0.001, 3, r#""limit-0";q=3;w=3000"#),
    ];
    for algorithm in [LimitAlgorithm::Gcra, LimitAlgorithm::SlidingWindow] {
        for (rps, burst, expected) in cases {
            assert_eq!(advertised(rps, burst, algorithm).await, expected, "{rps}/s");
        }
    }
}
