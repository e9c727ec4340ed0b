//! The JSON shape of a snapshot, as an admin endpoint answers it.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{burst, router};
use tokio::time::sleep;

#[tokio::test(start_paused = true)]
async fn snapshot_json_shape() {
    let (r, _, canary) = router("{weight: 50, interval: 1s, metrics: {targetP99Latency: 300ms}}");
    canary.set_status(500);
    sleep(Duration::from_millis(1)).await;
    burst(&r, 100).await; // split 54/46 by the routers' sequences (deterministic)
    sleep(Duration::from_millis(200)).await;
    let mut json = serde_json::to_value(r.handle().snapshot()).unwrap();
    let ago = json["lastDecision"]["agoMs"].take();
    assert!(ago.as_f64().unwrap() < 200.0, "{ago}");
    assert_eq!(
        json,
        json!({
            "phase": "rolledBack",
            "enabled": true,
            "weight": 0,
            "step": null,
            "steps": [],
            "failedChecks": 0,
            "lastDecision": {
                "kind": "rolledBack",
                "reason": "errorBudget",
                "finding": {"metric": "availability", "value": 0.0, "budget": 0.985},
                "samples": 54,
                "agoMs": null
            },
            "stable": {"routed": 46, "windowRequests": 46, "errorRate": 0.0, "p99Ms": 0.0005, "timedOneIn": 1},
            "canary": {"routed": 54, "windowRequests": 54, "errorRate": 1.0, "p99Ms": 0.0005, "timedOneIn": 1},
            "transitions": {
                "started": 1, "advanced": 0, "passed": 0, "held": 0, "failed": 0, "promoted": 0,
                "rolledBack": 1, "paused": 0, "resumed": 0, "policyUpdates": 0
            },
            "generation": null
        })
    );
}
