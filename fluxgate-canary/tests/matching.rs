//! Matching semantics through the service: header, cookie, query; exact, prefix, regex;
//! entries OR-ed, conditions AND-ed; matched requests at 100% whatever the weight.

mod support;

use http::Request;
use support::{get, router, send};

fn req(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut builder = Request::get(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn header_exact_prefix_regex() {
    let (r, _, _) = router(
        r#"{weight: 0, match: [
            {header: {name: x-canary, value: "true"}},
            {header: {name: x-build, value: "beta-", type: prefix}},
            {header: {name: x-user, value: "^qa-[0-9]+$", type: regex}}]}"#,
    );
    let cases = [
        (vec![("x-canary", "true")], "canary"),
        (vec![("x-canary", "True")], "stable"),
        (vec![("x-canary", "true ")], "stable"),
        (vec![("x-build", "beta-7")], "canary"),
        (vec![("x-build", "alpha-beta-7")], "stable"),
        (vec![("x-user", "qa-12")], "canary"),
        (vec![("x-user", "qa-12x")], "stable"),
        (vec![], "stable"),
    ];
    for (headers, side) in cases {
        for _ in 0..20 {
            assert_eq!(
                send(&r, req("/", &headers)).await.unwrap(),
                side,
                "{headers:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn cookie_and_query() {
    let (r, _, _) = router(
        r#"{weight: 0, match: [
            {cookie: {name: tier, value: beta}},
            {query: {name: canary, value: "1"}}]}"#,
    );
    let cases = [
        ("/", vec![("cookie", "a=1; tier=beta")], "canary"),
        ("/", vec![("cookie", "tier=\"beta\"")], "canary"),
        ("/", vec![("cookie", "xtier=beta")], "stable"),
        ("/", vec![("cookie", "tier=beta2")], "stable"),
        ("/", vec![("x-tier", "beta")], "stable"),
        ("/p?canary=1", vec![], "canary"),
        ("/p?a=b&canary=%31", vec![], "canary"),
        ("/p?canary=10", vec![], "stable"),
        ("/p?notcanary=1", vec![], "stable"),
    ];
    for (uri, headers, side) in cases {
        assert_eq!(
            send(&r, req(uri, &headers)).await.unwrap(),
            side,
            "{uri} {headers:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn conditions_in_one_entry_are_and_ed() {
    let (r, _, _) = router(
        r#"{weight: 0, match: [{header: {name: x-canary, value: "true"}, query: {name: v, value: "2"}}]}"#,
    );
    assert_eq!(
        send(&r, req("/?v=2", &[("x-canary", "true")]))
            .await
            .unwrap(),
        "canary"
    );
    assert_eq!(send(&r, req("/?v=2", &[])).await.unwrap(), "stable");
    assert_eq!(
        send(&r, req("/", &[("x-canary", "true")])).await.unwrap(),
        "stable"
    );
}

#[tokio::test(start_paused = true)]
async fn matched_go_to_canary_whatever_the_weight_and_stop_after_rollback() {
    let (r, stable, canary) =
        router(r#"{weight: 10, match: [{header: {name: x-canary, value: "true"}}]}"#);
    for _ in 0..200 {
        assert_eq!(
            send(&r, req("/", &[("x-canary", "true")])).await.unwrap(),
            "canary"
        );
    }
    r.handle().abort().unwrap();
    let before = canary.calls();
    for _ in 0..200 {
        assert_eq!(
            send(&r, req("/", &[("x-canary", "true")])).await.unwrap(),
            "stable"
        );
        assert_eq!(get(&r).await, "stable");
    }
    assert_eq!(canary.calls(), before);
    assert_eq!(stable.calls(), 400);
}

#[tokio::test(start_paused = true)]
async fn rollback_matched_false_keeps_testers_on_the_canary() {
    let (r, _, _) = router(
        r#"{weight: 50, rollbackMatched: false, match: [{header: {name: x-canary, value: "true"}}]}"#,
    );
    r.handle().abort().unwrap();
    assert_eq!(
        send(&r, req("/", &[("x-canary", "true")])).await.unwrap(),
        "canary"
    );
    for _ in 0..100 {
        assert_eq!(get(&r).await, "stable");
    }
}

#[tokio::test(start_paused = true)]
async fn disabled_canary_gets_nothing() {
    let (r, _, canary) = router(
        r#"{enabled: false, weight: 50, match: [{header: {name: x-canary, value: "true"}}]}"#,
    );
    for _ in 0..100 {
        assert_eq!(
            send(&r, req("/", &[("x-canary", "true")])).await.unwrap(),
            "stable"
        );
        assert_eq!(get(&r).await, "stable");
    }
    assert_eq!(canary.calls(), 0);
}
