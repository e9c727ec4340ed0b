//! The `fluxgate` command line: every option has an environment variable that `--help` names,
//! repeatable options take a list from theirs, and refused arguments name the option and what
//! was expected.

mod binary;
mod support;

use std::time::Duration;

use binary::{Fluxgate, command, run};
use support::gateway::get;
use support::{echo_upstream, within};

#[tokio::test]
async fn help_names_every_environment_variable() {
    let (status, help, _) = run(&["--help"], &[]).await;
    assert!(status.success());
    for var in [
        "FLUXGATE_LISTEN",
        "FLUXGATE_ADMIN",
        "FLUXGATE_ADMIN_TOKEN",
        "FLUXGATE_POLICY",
        "FLUXGATE_UPSTREAMS",
        "FLUXGATE_CANARY_UPSTREAMS",
        "FLUXGATE_REDIS",
        "FLUXGATE_REDIS_CA",
        "FLUXGATE_REDIS_CLUSTER",
        "FLUXGATE_REPLICAS",
        "FLUXGATE_NAMESPACE",
        "FLUXGATE_UPSTREAM_TIMEOUT",
        "FLUXGATE_GRACE_PERIOD",
        "FLUXGATE_ACCESS_LOG",
        "FLUXGATE_PRESERVE_HOST",
    ] {
        assert!(
            help.contains(&format!("[env: {var}")),
            "{var} missing from --help"
        );
    }
    // Every option but the actions has one.
    let options = help
        .lines()
        .filter(|l| l.trim_start().starts_with("--"))
        .count();
    let vars = help.matches("[env: FLUXGATE_").count();
    assert_eq!(
        options,
        vars + 1,
        "--print-policy is the only option without one"
    );
    assert!(help.contains("SIGTERM"));
    assert!(help.contains("separated by spaces or newlines"));
}

/// Arguments, environment, and the parts expected in the error.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);

#[tokio::test]
async fn refused_arguments_name_the_option_and_what_was_expected() {
    let cases: [Case<'_>; 7] = [
        (&["--frob"], &[], &["unexpected argument '--frob'"]),
        (
            &["--upstream", "ftp://x"],
            &[],
            &[
                "'--upstream <URL[,protocol=P][,weight=N]>'",
                "starts with http:// or https://",
            ],
        ),
        (
            &["--upstream", "http://a:1,weight=0"],
            &[],
            &["'--upstream", "weight `0`"],
        ),
        (
            &[],
            &[("FLUXGATE_UPSTREAMS", "http://a:1\nhttp://b:2,wieght=2")],
            &["'--upstream", "unknown upstream option `wieght=2`"],
        ),
        (
            &["--grace-period", "-3"],
            &[],
            &["'--grace-period <SECONDS>'", "at least 0"],
        ),
        (
            &[],
            &[("FLUXGATE_ACCESS_LOG", "xml")],
            &["'--access-log <FORMAT>'", "off, json"],
        ),
        (
            &["--redis", "redis://a:1", "--redis-cluster", "redis://b:1"],
            &[],
            &[
                "'--redis-cluster <URL>'",
                "cannot be used with",
                "'--redis <URL>'",
            ],
        ),
    ];
    for (args, env, expected) in cases {
        let (status, _, stderr) = run(args, env).await;
        assert_eq!(status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        for part in expected {
            assert!(stderr.contains(part), "{args:?} {env:?}: {stderr}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_configures_the_gateway() {
    let a = echo_upstream().await;
    let b = echo_upstream().await;
    let upstreams = format!(
        "http://{},weight=2\n  http://{}",
        a.local_addr(),
        b.local_addr()
    );
    let env = [
        ("FLUXGATE_LISTEN", "127.0.0.1:0"),
        ("FLUXGATE_ADMIN", "127.0.0.1:0"),
        ("FLUXGATE_UPSTREAMS", upstreams.as_str()),
        ("FLUXGATE_ACCESS_LOG", "json"),
        ("FLUXGATE_GRACE_PERIOD", "5"),
        ("FLUXGATE_PRESERVE_HOST", "false"),
    ];
    let mut gateway = Fluxgate::start(command(&[], &env)).await;
    // With the access log on stdout, the banner goes to stderr.
    let banner = gateway.stderr().join("\n");
    assert!(gateway.stdout().is_empty(), "{:?}", gateway.stdout());
    assert!(
        banner.contains(&format!("stable   http://{} (weight 2)", a.local_addr())),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("stable   http://{} (weight 1)", b.local_addr())),
        "{banner}"
    );
    assert!(
        !banner.contains("canary   "),
        "no demo canary with upstreams given: {banner}"
    );
    assert!(banner.contains("grace period 5s"), "{banner}");

    let answer = get(&format!("http://{}/env", gateway.proxy), &[]).await;
    assert_eq!(answer.status, 200);
    // --preserve-host false: the upstream got its own authority.
    let host = support::echoed(&answer.body, "host").unwrap();
    assert!(
        host == a.local_addr().to_string() || host == b.local_addr().to_string(),
        "{host}"
    );
    within(async {
        while !gateway.stdout().iter().any(|l| l.starts_with('{')) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(
        get(&format!("http://{}/readyz", gateway.admin), &[])
            .await
            .status,
        200
    );
    gateway.signal("TERM");
    assert_eq!(gateway.wait().await.code(), Some(0));
}
