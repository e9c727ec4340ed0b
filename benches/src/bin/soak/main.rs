//! The soak driver behind `benches/e2e/soak.sh` (one gateway) and `benches/e2e/fleet-soak.sh`
//! (replicas sharing Redis): a steady open-loop load spread over the gateways, one upstream
//! killed once or every period (and restarted), and a report of what the clients saw (by cause,
//! per replica, per time slice, around each kill), the canary's progression as each replica saw
//! it, and the memory and descriptors of each gateway and of Redis.
//!
//! The script starts the upstreams, Redis and the gateways; this binary, given their addresses
//! and process ids, warms up, then for `--duration` seconds sends `--rate` requests/s spread
//! over `--keys` client keys (`X-Client-Id`) plus `--greedy-rate` requests/s from the key
//! `greedy` (above the policy's per-key limit, so that its excess is refused with 429), request
//! by request over the gateways (`--url`, repeatable). At `--fail-at` it kills `--fail-pid`
//! (SIGKILL), again every `--kill-every` seconds, restarting it `--restart-after` seconds after
//! each kill with the `--restart` command line. Meanwhile it samples each gateway's RSS, file
//! descriptors and threads and Redis (`--redis`) every second, and reads each admin API's
//! `/api/status` every `--poll-ms`.
//!
//! Run with (normally through a script):
//! `cargo run --release -p fluxgate-benches --bin soak -- --url http://127.0.0.1:18201/
//! --admin http://127.0.0.1:18202 --gateway-pid PID --policy FILE --fail-pid PID
//! --failed-endpoint http://127.0.0.1:18212 [--rate 500] [--greedy-rate 50] [--duration 60]`

mod chaos;
mod load;
mod report;
mod store;
mod watch;

use std::collections::BTreeMap;
use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use tokio::time::Instant;

use crate::chaos::Chaos;
use crate::load::{LoadConfig, Stream, Tally};
use crate::report::Run;

/// The command line, as `--name value` pairs (`--url`, `--admin`, `--gateway-pid` repeatable,
/// in the same order).
#[derive(Debug)]
struct Args {
    urls: Vec<Uri>,
    admins: Vec<Uri>,
    gateway_pids: Vec<u32>,
    policy: PathBuf,
    redis: Option<String>,
    chaos: Chaos,
    failed_endpoint: String,
    rate: f64,
    greedy_rate: f64,
    keys: usize,
    duration: u64,
    warmup: u64,
    timeout: f64,
    poll_ms: u64,
    slice: usize,
    max_in_flight: usize,
}

fn seconds(value: &str) -> Result<Option<Duration>, Box<dyn Error>> {
    let secs: f64 = value.parse()?;
    Ok((secs > 0.0).then(|| Duration::from_secs_f64(secs)))
}

impl Args {
    fn parse() -> Result<Self, Box<dyn Error>> {
        let raw: Vec<String> = std::env::args().skip(1).collect();
        let all = |name: &str| -> Vec<&str> {
            let flag = format!("--{name}");
            raw.windows(2)
                .filter(|w| w[0] == flag)
                .map(|w| w[1].as_str())
                .collect()
        };
        let get = |name: &str| all(name).first().copied();
        let need = |name: &str| get(name).ok_or_else(|| format!("--{name} is required"));
        let or = |name: &str, default: &str| get(name).unwrap_or(default).to_owned();
        let urls = all("url")
            .into_iter()
            .map(str::parse)
            .collect::<Result<Vec<Uri>, _>>()?;
        let admins = all("admin")
            .into_iter()
            .map(|a| format!("{}/api/status", a.trim_end_matches('/')).parse())
            .collect::<Result<Vec<Uri>, _>>()?;
        let gateway_pids = all("gateway-pid")
            .into_iter()
            .map(str::parse)
            .collect::<Result<Vec<u32>, _>>()?;
        if urls.is_empty() || urls.len() != admins.len() || urls.len() != gateway_pids.len() {
            return Err(
                "as many --url, --admin and --gateway-pid (at least one) are required".into(),
            );
        }
        let failed_endpoint = need("failed-endpoint")?.to_owned();
        let chaos = Chaos {
            pid: need("fail-pid")?.parse()?,
            address: failed_endpoint
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
            first: seconds(&or("fail-at", "30"))?.unwrap_or_default(),
            every: seconds(&or("kill-every", "0"))?,
            restart_after: seconds(&or("restart-after", "0"))?,
            restart: or("restart", "")
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            pid_file: get("pid-file").map(PathBuf::from),
        };
        Ok(Self {
            urls,
            admins,
            gateway_pids,
            policy: need("policy")?.into(),
            redis: get("redis").map(str::to_owned),
            chaos,
            failed_endpoint,
            rate: or("rate", "500").parse()?,
            greedy_rate: or("greedy-rate", "0").parse()?,
            keys: or("keys", "20").parse::<usize>()?.max(1),
            duration: or("duration", "60").parse()?,
            warmup: or("warmup", "5").parse()?,
            timeout: or("timeout", "5").parse()?,
            poll_ms: or("poll-ms", "250").parse::<u64>()?.max(10),
            slice: or("slice", "5").parse::<usize>()?.max(1),
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
        urls: args.urls.clone(),
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
    let gateways: Vec<(u32, u16)> = args
        .gateway_pids
        .iter()
        .zip(&args.urls)
        .map(|(&pid, url)| (pid, url.port_u16().unwrap_or(80)))
        .collect();
    let proc_start = gateways
        .iter()
        .map(|&(pid, port)| watch::sample(pid, port, 0.0))
        .collect::<Option<Vec<_>>>()
        .ok_or("a gateway is not running")?;
    let mut connection = match &args.redis {
        Some(url) => Some(store::connect(url).await.ok_or("Redis does not answer")?),
        None => None,
    };
    let (redis_start, keys_start) = match &mut connection {
        Some(c) => (store::sample(c, 0.0).await, store::by_pattern(c).await),
        None => (None, BTreeMap::new()),
    };
    // Outcomes arrive up to a timeout after the last request leaves.
    let end = start + duration + config.timeout + Duration::from_secs(1);
    let replicas = args.urls.len();
    let tallies: Vec<Vec<Arc<Tally>>> = (0..streams.len())
        .map(|stream| {
            (0..replicas)
                .map(|replica| Arc::new(Tally::new(args.duration as usize, stream, replica)))
                .collect()
        })
        .collect();
    let samples = tokio::spawn(watch::sample_every_second(gateways, start, end));
    let redis = args
        .redis
        .clone()
        .map(|url| tokio::spawn(store::every_second(url, start, end)));
    let poll = Duration::from_millis(args.poll_ms);
    let status = tokio::spawn(watch::poll_status(
        client.clone(),
        args.admins.clone(),
        poll,
        start,
        end,
    ));
    let kills = tokio::spawn(chaos::run(args.chaos.clone(), start, duration, end));
    eprintln!("soak: {}s of load", args.duration);
    let loads = streams
        .iter()
        .zip(&tallies)
        .map(|(s, t)| load::run(&client, &config, s, start, duration, Some(t.as_slice())));
    futures::future::join_all(loads).await;
    let keys_end = match &mut connection {
        Some(c) => store::by_pattern(c).await,
        None => BTreeMap::new(),
    };
    let kills = kills.await?;
    let samples = samples.await?;
    let status = status.await?;
    let redis = match redis {
        Some(task) => task.await?,
        None => Vec::new(),
    };

    let tallies: Vec<Arc<Tally>> = tallies.into_iter().flatten().collect();
    let run = Run {
        rate: args.rate,
        greedy_rate: args.greedy_rate,
        keys: args.keys,
        duration: args.duration,
        slice: args.slice,
        failed_endpoint: args.failed_endpoint,
        kills,
        policy: policy.spec,
        tallies: &tallies,
        replicas,
        load_start,
        proc_start,
        samples,
        poll: poll.as_secs_f64(),
        status,
        redis,
        redis_start,
        keys_start,
        keys_end,
    };
    print!("{}", report::render(&run));
    Ok(())
}
