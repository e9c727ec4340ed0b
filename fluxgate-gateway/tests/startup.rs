//! A gateway refusing to start on a missing policy file says so without claiming that
//! "the policies in force stay": there are none. A second gateway on a port the first listens
//! on is refused, whether it serves with workers (the default) or not.

mod binary;

use std::process::Command;

use binary::{Fluxgate, command, plain, run};

#[test]
fn a_missing_policy_file_is_refused_without_claiming_policies_stay() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_fluxgate"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--policy",
        ])
        .arg(&missing)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.yaml"), "{err}");
    assert!(!err.contains("policies in force stay"), "{err}");
    assert!(err.contains("no policy is in force"), "{err}");
}

#[tokio::test]
async fn a_second_gateway_on_the_same_port_is_refused() {
    // The first serves with two workers.
    let mut args = binary::LOOPBACK.to_vec();
    args.extend(["--workers", "2"]);
    let first = Fluxgate::start(command(&args, &[])).await;
    let taken = first.proxy.to_string();
    for workers in ["0", "1", "2"] {
        let args = [
            "--listen",
            &taken,
            "--admin",
            "127.0.0.1:0",
            "--workers",
            workers,
        ];
        let (status, _, err) = run(&args, &[]).await;
        let err = plain(&err);
        assert!(!status.success(), "--workers {workers}: {err}");
        assert!(
            err.contains(&format!("cannot listen on {taken}")),
            "--workers {workers}: {err}"
        );
    }
    // The first still serves.
    let body = raw_get(first.proxy).await;
    assert!(body.starts_with("HTTP/1.1 "), "{body}");
}

/// A `GET /` over a raw TCP connection: the status line and the rest.
async fn raw_get(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(binary::LIMIT, stream.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&reply).into_owned()
}
