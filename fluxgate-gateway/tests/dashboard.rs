//! The admin dashboard (`GET /`) in a real browser: Debian's headless Chromium loads it from a
//! running gateway stack with traffic flowing, twice a couple of seconds apart (at 1366x768 and
//! 1440x900, laptop screens), and the test checks that the live values appear (endpoints, canary,
//! rate-limit counts, charts with time and value axes) and change, and that the page fits its
//! window (the page writes its own `scrollWidth` and `innerWidth` into `body[data-layout]`).
//! Then the canary fails until it is rolled back: its last decision must read as a sentence, on a
//! page that still fits at 1400x900. A screenshot of that is kept as `target/dashboard.png`.
//!
//! Without `chromium` on `PATH` the test is skipped, unless `CI` is set: CI installs it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fluxgate_core::api::Status;
use http::Method;
use support::gateway::{Named, Running, send};
use tokio::process::Command;
use tokio::task::JoinHandle;

const POLICY: &str = r"
apiVersion: fluxgate.io/v1beta1
kind: TrafficPolicy
metadata: {name: shop, namespace: test}
spec:
  loadBalancing: {algorithm: weighted-round-robin}
  rateLimit: {requestsPerSecond: 40, burstSize: 20, keyExtractor: header.X-Client-Id}
  canary: {weight: 20, interval: 1s, minRequests: 5, metrics: {targetErrorRate: 0.05}}
";

/// The laptop screens the page must fit without scrolling sideways.
const SCREENS: [(u32, u32); 2] = [(1366, 768), (1440, 900)];

/// How long one Chromium run may take before it is killed.
const BROWSER_LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_live_values_in_headless_chromium() {
    let Some(browser) = chromium() else {
        assert!(
            !on_ci(),
            "chromium is not on PATH, and CI is set: .ci/run installs it (apt-get install chromium)"
        );
        eprintln!("skipped: chromium is not on PATH (Debian: apt-get install chromium)");
        return;
    };
    let first = Named::start("first").await;
    let second = Named::start("second").await;
    let canary = Named::start("canary").await;
    let gw = Running::start(POLICY, &[(&first, 3), (&second, 1)], &[&canary], None).await;
    // A client within its limit and one far over it, so both counts move.
    let traffic = [
        traffic(gw.url("/steady"), "steady", Duration::from_millis(40)),
        traffic(gw.url("/greedy"), "greedy", Duration::from_millis(5)),
    ];
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let dir = tempfile::tempdir().unwrap();
    let url = gw.admin_url("/");
    let before = dump_dom(&browser, dir.path(), "one", &url, SCREENS[0]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = dump_dom(&browser, dir.path(), "two", &url, SCREENS[1]).await;

    for (dom, screen) in [(&before, SCREENS[0]), (&after, SCREENS[1])] {
        fits(dom, screen);
        for upstream in [&first, &second, &canary] {
            let cell = format!("<td>http://{}</td>", upstream.server.local_addr());
            assert!(dom.contains(&cell), "{} missing:\n{dom}", upstream.name);
        }
        assert!(dom.contains(">healthy<"), "{dom}");
        assert!(dom.contains("<b class=\"ok\">progressing</b>"), "{dom}");
        // A fixed-weight canary judged every second: started, then analyses that pass or hold.
        let decision = decision(dom);
        assert!(
            ["started at 20%", "analysis passed over ", "held: "]
                .iter()
                .any(|words| decision.starts_with(words)),
            "{decision}"
        );
        for chart in ["upstreams", "canary", "limits"] {
            let points = chart_points(dom, chart);
            assert!(points >= 3, "chart {chart} has {points} points:\n{dom}");
            let svg = section(dom, &format!("chart-{chart}"));
            let svg = &svg[..svg.find("</svg>").unwrap_or(svg.len())];
            let unit = if chart == "canary" { " %<" } else { " req/s<" };
            for label in [">now<", ">−60 s<", ">−120 s<", unit] {
                assert!(
                    svg.contains(label),
                    "chart {chart} has no {label:?} axis label:\n{svg}"
                );
            }
        }
    }
    let admitted = |dom: &str| {
        number_after(
            section(dom, "limits"),
            "<td>test/shop</td><td class=\"num\">",
        )
    };
    // The row is `<td>test/shop</td><td class="num">ADMITTED</td><td class="num">REFUSED</td>…`.
    let refused = |dom: &str| {
        let row = section(dom, "limits");
        let marker = "<td>test/shop</td><td class=\"num\">";
        let at = row.find(marker).expect("no rate-limit row") + marker.len();
        number_after(&row[at..], "</td><td class=\"num\">")
    };
    let routed =
        |dom: &str, side: &str| number_after(dom, &format!("<th>{side}</th><td class=\"num\">"));
    let (a1, a2) = (admitted(&before), admitted(&after));
    let (r1, r2) = (refused(&before), refused(&after));
    assert!(a1 > 0 && a2 > a1, "admitted {a1} then {a2}");
    assert!(r2 > r1, "refused {r1} then {r2}");
    assert!(routed(&before, "stable") < routed(&after, "stable"));
    assert!(routed(&before, "canary") < routed(&after, "canary"));

    // The canary fails until it is rolled back: the longest decisions, in words.
    canary.fail(true);
    let phase = rolled_back(&gw).await;
    assert_eq!(
        phase, "rolledBack",
        "the failing canary was not rolled back"
    );
    let screen = (1400, 900);
    let rolled = dump_dom(&browser, dir.path(), "three", &url, screen).await;
    fits(&rolled, screen);
    let decision = decision(&rolled);
    assert!(decision.starts_with("rolled back: "), "{decision}");
    assert!(
        rolled.contains("<b class=\"bad\">rolled back</b>"),
        "{rolled}"
    );

    let shot = screenshot(&browser, dir.path(), &url, screen).await;
    let kept = target_dir().join("dashboard.png");
    std::fs::copy(&shot, &kept).unwrap();
    eprintln!("dashboard screenshot: {}", kept.display());

    for task in traffic {
        task.abort();
    }
    // The page is served and the API answers while the browser is gone, too.
    let page = send(Method::GET, &url, &[], "").await;
    assert!(page.body.contains("chart-upstreams"));
}

/// Waits (at most 20 s) for the gateway's canary to be rolled back; its last phase.
async fn rolled_back(gw: &Running) -> String {
    let mut phase = String::new();
    for _ in 0..80 {
        let answer = send(Method::GET, &gw.admin_url("/api/status"), &[], "").await;
        let status: Status = serde_json::from_str(&answer.body).unwrap();
        let canaries = status.canaries.unwrap_or_default();
        phase = canaries
            .into_values()
            .next()
            .map(|c| c.phase)
            .unwrap_or_default();
        if phase == "rolledBack" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    phase
}

/// Asserts that the page fit its `(width, height)` window: its own measurement, `scrollWidth
/// innerWidth clipped` in `body[data-layout]`, shows no horizontal scroll and no table too wide
/// for its card.
fn fits(dom: &str, (width, _): (u32, u32)) {
    let marker = "data-layout=\"";
    let at = dom
        .find(marker)
        .unwrap_or_else(|| panic!("no layout measured:\n{dom}"))
        + marker.len();
    let measured: Vec<u32> = dom[at..]
        .split('"')
        .next()
        .unwrap_or("")
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    let [scroll, inner, clipped] = measured[..] else {
        panic!("layout {measured:?}")
    };
    assert_eq!(inner, width, "the window is not {width} wide");
    assert!(
        scroll <= inner,
        "the page scrolls sideways at {width}px: {scroll} > {inner}"
    );
    assert_eq!(
        clipped, 0,
        "{clipped} tables are too wide for their card at {width}px"
    );
}

/// The canary's last decision, as the page shows it.
fn decision(dom: &str) -> String {
    let marker = "class=\"what\">";
    let part = section(dom, "canary");
    let at = part
        .find(marker)
        .unwrap_or_else(|| panic!("no decision:\n{part}"))
        + marker.len();
    let words = &part[at..part[at..]
        .find("</span>")
        .map_or(part.len(), |end| at + end)];
    assert!(
        !words.contains('{') && words.contains(' '),
        "not words: {words}"
    );
    words.to_owned()
}

/// Sends `GET url` as client `client` every `every`, until aborted.
fn traffic(url: String, client: &'static str, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            send(Method::GET, &url, &[("x-client-id", client)], "").await;
        }
    })
}

/// `chromium` from `PATH`.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|candidate| candidate.is_file())
}

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Runs headless Chromium with a fresh profile under `dir` and `extra` arguments, bounded by
/// [`BROWSER_LIMIT`] (killed past it); returns its stdout.
async fn run_chromium(browser: &Path, dir: &Path, profile: &str, extra: &[String]) -> String {
    let profile = dir.join(profile);
    let mut command = Command::new(browser);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(BROWSER_LIMIT, command.output())
        .await
        .expect("chromium took too long (killed)")
        .expect("chromium could not be started");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "chromium failed: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

/// The page's DOM after a few polls, in a `(width, height)` window (virtual time: the budget passes as fast as the page allows).
async fn dump_dom(
    browser: &Path,
    dir: &Path,
    profile: &str,
    url: &str,
    (width, height): (u32, u32),
) -> String {
    let args = [
        "--virtual-time-budget=4500".to_owned(),
        format!("--window-size={width},{height}"),
        "--dump-dom".to_owned(),
        url.to_owned(),
    ];
    run_chromium(browser, dir, profile, &args).await
}

/// A screenshot of the page after a few polls, in a `(width, height)` window; returns its path.
async fn screenshot(browser: &Path, dir: &Path, url: &str, (width, height): (u32, u32)) -> PathBuf {
    let shot = dir.join("dashboard.png");
    let args = [
        "--virtual-time-budget=6000".to_owned(),
        format!("--window-size={width},{height}"),
        format!("--screenshot={}", shot.display()),
        url.to_owned(),
    ];
    run_chromium(browser, dir, "shot", &args).await;
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    shot
}

/// Where cargo builds: `CARGO_TARGET_DIR`, or the folder three levels above this test binary
/// (`target/debug/deps/dashboard-…`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// The part of `dom` from the element `id="ID"` on.
fn section<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    &dom[at..]
}

/// The number right after the first `marker` in `text`.
fn number_after(text: &str, marker: &str) -> u64 {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in {text}"));
    let digits: String = text[at + marker.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {marker:?}"))
}

/// The most points of one line in the chart `chart-NAME`.
fn chart_points(dom: &str, chart: &str) -> usize {
    let svg = section(dom, &format!("chart-{chart}"));
    let svg = &svg[..svg.find("</svg>").unwrap_or(svg.len())];
    svg.split("points=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap_or("").split(' ').count())
        .max()
        .unwrap_or(0)
}
