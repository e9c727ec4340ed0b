//! The Redis commands a fleet replica sends are bounded and do not grow with its traffic.

mod support;

use std::time::Duration;

use fluxgate_test_support::RedisServer;
use support::fleet::{Replica, eventually};

/// Scripts run (`EVALSHA` and `EVAL` calls) and commands run (scripts' own included) so far.
async fn commands(url: &str) -> (u64, u64) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let calls = |line: &str| -> u64 {
        let rest = line.split_once(":calls=").unwrap().1;
        rest.split(',').next().unwrap().parse().unwrap()
    };
    let mut scripts = 0;
    let mut all = 0;
    for line in info.lines().filter(|l| l.starts_with("cmdstat_")) {
        all += calls(line);
        if line.starts_with("cmdstat_evalsha:") || line.starts_with("cmdstat_eval:") {
            scripts += calls(line);
        }
    }
    (scripts, all)
}

/// Scripts and commands per replica per second while each replica sends `per_tick` requests
/// every 100ms, and the requests sent.
async fn rate(url: &str, replicas: &[Replica], per_tick: usize) -> (f64, f64, usize) {
    let total = |rs: &[Replica]| {
        rs.iter()
            .map(|r| r.stable.calls() + r.canary.calls())
            .sum::<usize>()
    };
    let start = commands(url).await;
    let began = tokio::time::Instant::now();
    let calls = total(replicas);
    while began.elapsed() < Duration::from_secs(3) {
        for replica in replicas {
            replica.send(per_tick).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = began.elapsed().as_secs_f64();
    let end = commands(url).await;
    let per = |n: u64| n as f64 / elapsed / replicas.len() as f64;
    // The measurement's own INFO and connection commands are a few out of hundreds.
    (
        per(end.0 - start.0),
        per(end.1 - start.1),
        total(replicas) - calls,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_per_replica_are_bounded_and_independent_of_traffic() {
    let server = RedisServer::start().unwrap();
    let url = server.url();
    let spec = "{weight: 20, interval: 10s, minRequests: 1000000}";
    let mut replicas = Vec::new();
    for name in ["a", "b", "c"] {
        replicas.push(Replica::start(&url, spec, name, 200).await);
    }
    assert!(
        eventually(Duration::from_secs(3), || replicas
            .iter()
            .all(|r| r.fleet().joined))
        .await
    );
    let (low_scripts, low_all, low_sent) = rate(&url, &replicas, 1).await;
    let (high_scripts, high_all, high_sent) = rate(&url, &replicas, 200).await;
    eprintln!(
        "per replica per second (3 replicas, 3s each): {low_scripts:.1} scripts, {low_all:.1} commands \
         in all at {low_sent} requests; {high_scripts:.1} scripts, {high_all:.1} commands at {high_sent} requests"
    );
    assert!(high_sent > 50 * low_sent);
    // One script per 200ms tick, plus the holder's write once per interval and the wake-ups.
    for scripts in [low_scripts, high_scripts] {
        assert!(scripts <= 7.0, "{scripts} scripts per replica per second");
    }
    // The commands inside them do not grow with the traffic (one entry per replica and
    // bucket): the same per script at both rates.
    let (low_per, high_per) = (low_all / low_scripts, high_all / high_scripts);
    assert!(
        high_per <= low_per + 1.0,
        "{low_per} → {high_per} commands per script"
    );
    for all in [low_all, high_all] {
        assert!(all <= 80.0, "{all} commands per replica per second");
    }
}
