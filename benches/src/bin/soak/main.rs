//! The soak driver behind `benches/e2e/soak.sh`: a steady open-loop load through a running
//! gateway, one upstream killed halfway, and a report of what the clients saw (per phase, and
//! between the failure and the drain), the canary's progression and the gateway's memory.
//!
//! The script starts the upstreams and the gateway; this binary, given their addresses and
//! process ids, warms up, then for `--duration` seconds sends `--rate` requests/s spread over
//! `--keys` client keys (`X-Client-Id`) plus `--greedy-rate` requests/s from the key `greedy`
//! (above the policy's per-key limit, so that its excess is refused with 429). At `--fail-at`
//! it kills `--fail-pid` (SIGKILL). Meanwhile it samples the gateway's RSS, file descriptors and
//! threads every second and reads the admin API's `/api/status` every `--poll-ms`.
//!
//! Run with (normally through the script):
//! `cargo run --release -p fluxgate-benches --bin soak -- --url http://127.0.0.1:18201/
//! --admin http://127.0.0.1:18202 --gateway-pid PID --policy FILE --fail-pid PID
//! --failed-endpoint http://127.0.0.1:18212 [--rate 500] [--greedy-rate 50] [--duration 60]`

mod load;
mod report;
mod watch;

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use tokio::time::{Instant, sleep_until};

use crate::load::{LoadConfig, Stream, Tally};
use crate::report::Run;

/// The command line, as `--name value` pairs.
#[derive(Debug)]
struct Args {
    url: Uri,
    admin: Uri,
    gateway_pid: u32,
    policy: PathBuf,
    fail_pid: u32,
    failed_endpoint: String,
    rate: f64,
    greedy_rate: f64,
    keys: usize,
    duration: u64,
    warmup: u64,
    fail_at: f64,
    timeout: f64,
    poll_ms: u64,
    max_in_flight: usize,
}

impl Args {
    fn parse() -> Result<Self, Box<dyn Error>> {
        let raw: Vec<String> = std::env::args().skip(1).collect();
        let get = |name: &str| -> Option<&str> {
            let flag = format!("--{name}");
            raw.iter()
                .position(|a| *a == flag)
                .and_then(|i| raw.get(i + 1))
                .map(String::as_str)
        };
        let need = |name: &str| get(name).ok_or_else(|| format!("--{name} is required"));
        let or = |name: &str, default: &str| get(name).unwrap_or(default).to_owned();
        let admin: String = need("admin")?.trim_end_matches('/').to_owned();
        Ok(Self {
            url: need("url")?.parse()?,
            admin: format!("{admin}/api/status").parse()?,
            gateway_pid: need("gateway-pid")?.parse()?,
            policy: need("policy")?.into(),
            fail_pid: need("fail-pid")?.parse()?,
            failed_endpoint: need("failed-endpoint")?.to_owned(),
            rate: or("rate", "500").parse()?,
            greedy_rate: or("greedy-rate", "0").parse()?,
            keys: or("keys", "20").parse::<usize>()?.max(1),
            duration: or("duration", "60").parse()?,
            warmup: or("warmup", "5").parse()?,
            fail_at: or("fail-at", "30").parse()?,
            timeout: or("timeout", "5").parse()?,
            poll_ms: or("poll-ms", "250").parse()?,
            max_in_flight: or("max-in-flight", "4096").parse()?,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse()?;
    let policy = std::fs::read(&args.policy)?;
    let policy = fluxgate_core::policy::parse_policies(&policy)?
        .into_iter()
        .next()
        .ok_or("the policy file holds no policy")?;
    let client = load::http_client();
    let config = LoadConfig {
        url: args.url.clone(),
        timeout: Duration::from_secs_f64(args.timeout),
        max_in_flight: args.max_in_flight,
    };
    let mut streams = vec![Stream {
        rate: args.rate,
        keys: (0..args.keys).map(|i| format!("client-{i}")).collect(),
    }];
    if args.greedy_rate > 0.0 {
        let keys = vec!["greedy".to_owned()];
        streams.push(Stream {
            rate: args.greedy_rate,
            keys,
        });
    }

    eprintln!("soak: warm-up, {}s", args.warmup);
    let warmup = Duration::from_secs(args.warmup);
    let now = Instant::now();
    let warming = streams
        .iter()
        .map(|s| load::run(&client, &config, s, now, warmup, None));
    futures::future::join_all(warming).await;

    let duration = Duration::from_secs(args.duration);
    let start = Instant::now();
    let load_start = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let proxy_port = args.url.port_u16().unwrap_or(80);
    let rss_start =
        watch::sample(args.gateway_pid, proxy_port, 0.0).ok_or("the gateway is not running")?;
    // Outcomes arrive up to a timeout after the last request leaves.
    let end = start + duration + config.timeout + Duration::from_secs(1);
    let tally = Arc::new(Tally::new(args.duration as usize));
    let samples = tokio::spawn(watch::sample_every_second(
        args.gateway_pid,
        proxy_port,
        start,
        end,
    ));
    let poll = Duration::from_millis(args.poll_ms.max(10));
    let status = tokio::spawn(watch::poll_status(
        client.clone(),
        args.admin.clone(),
        poll,
        start,
        end,
    ));
    let (fail_pid, fail_at) = (args.fail_pid, Duration::from_secs_f64(args.fail_at));
    let failure = tokio::spawn(async move {
        sleep_until(start + fail_at).await;
        let at = start.elapsed().as_secs_f64();
        let killed = tokio::process::Command::new("kill")
            .args(["-KILL", &fail_pid.to_string()])
            .status()
            .await
            .is_ok_and(|s| s.success());
        eprintln!("soak: killed upstream pid {fail_pid} at {at:.3}s: {killed}");
        at
    });
    eprintln!("soak: {}s of load", args.duration);
    let loads = streams
        .iter()
        .map(|s| load::run(&client, &config, s, start, duration, Some(&tally)));
    futures::future::join_all(loads).await;
    let failed_at = failure.await?;
    let samples = samples.await?;
    let status = status.await?;

    let run = Run {
        rate: args.rate,
        greedy_rate: args.greedy_rate,
        keys: args.keys,
        duration: args.duration,
        failed_at,
        failed_endpoint: args.failed_endpoint,
        policy: policy.spec,
        tally: &tally,
        load_start,
        rss_start,
        samples,
        status,
    };
    print!("{}", report::render(&run));
    Ok(())
}
