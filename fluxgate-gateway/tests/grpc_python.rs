//! gRPC through the gateway with another implementation: Python's `grpcio` (gRPC C-core) as the
//! upstream server (health-checked by the gateway's gRPC probe) and as a client, next to tonic.
//!
//! Needs `python3` with `grpcio` and `grpcio-health-checking` (`pip install grpcio
//! grpcio-health-checking`); without them the test prints why and passes without checking.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fluxgate_balance::Health;
use fluxgate_core::store::PolicyStore;
use fluxgate_gateway::stack::{Gateway, StackConfig};
use support::{serve, within};
use tonic::transport::Endpoint;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const POLICY: &str = r"
apiVersion: fluxgate.io/v1beta1
kind: TrafficPolicy
metadata: {name: python, namespace: test}
spec:
  loadBalancing:
    healthCheck: {interval: 100ms, unhealthyThreshold: 1, healthyThreshold: 1}
";

/// A grpcio health server on a loopback port it prints; `down` on stdin makes `shop.Orders`
/// NOT_SERVING.
const SERVER: &str = r#"
import sys
from concurrent import futures
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
servicer = health.HealthServicer()
health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
servicer.set("", health_pb2.HealthCheckResponse.SERVING)
servicer.set("shop.Orders", health_pb2.HealthCheckResponse.SERVING)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
for line in sys.stdin:
    if line.strip() == "down":
        servicer.set("shop.Orders", health_pb2.HealthCheckResponse.NOT_SERVING)
server.stop(0)
"#;

/// A grpcio client: Check of the server (SERVING) and of a missing service (NOT_FOUND)
/// through the address in argv[1].
const CLIENT: &str = r#"
import sys
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

with grpc.insecure_channel(sys.argv[1]) as channel:
    stub = health_pb2_grpc.HealthStub(channel)
    answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING, answer
    try:
        stub.Check(health_pb2.HealthCheckRequest(service="shop.Missing"), timeout=5)
        sys.exit("no error for a missing service")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND, error
print("python client ok", flush=True)
"#;

/// A child process, killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python_has_grpc() -> Result<(), String> {
    let output = Command::new("python3")
        .args(["-c", "import grpc, grpc_health.v1.health"])
        .output()
        .map_err(|error| format!("python3 cannot run: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(stderr.lines().last().unwrap_or("import failed").to_owned())
    }
}

fn request(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

#[tokio::test]
async fn grpcio_server_and_client_through_the_gateway() {
    if let Err(reason) = python_has_grpc() {
        println!(
            "SKIPPED: python3 with grpcio and grpcio-health-checking is needed \
             (pip install grpcio grpcio-health-checking): {reason}"
        );
        return;
    }
    let mut server = Killed(
        Command::new("python3")
            .args(["-c", SERVER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = server.0.stdout.take().unwrap();
    let port = within(tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line.trim().parse::<u16>().unwrap()
    }))
    .await
    .unwrap();

    let store = PolicyStore::new();
    let report = store.apply_bytes(POLICY.as_bytes(), None).unwrap();
    let id = report.changes[0].id().clone();
    let spec = format!("http://127.0.0.1:{port},protocol=grpc")
        .parse()
        .unwrap();
    let gateway = Gateway::build(&store, &id, &StackConfig::new(vec![spec])).unwrap();
    let proxy = serve(gateway.service()).await;
    // Rounds of gRPC health checks against grpcio keep the endpoint in.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let snapshot = gateway.stable().snapshot();
    assert_eq!(snapshot[0].health, Health::Healthy, "{snapshot:?}");

    // tonic client → gateway → grpcio server: unary, a status, server streaming.
    let channel = Endpoint::from_shared(format!("http://{}", proxy.local_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let serving = within(client.check(request("shop.Orders"))).await.unwrap();
    assert_eq!(serving.get_ref().status, ServingStatus::Serving as i32);
    let missing = within(client.check(request("shop.Missing")))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let mut watch = within(client.watch(request("shop.Orders")))
        .await
        .unwrap()
        .into_inner();
    let first = within(watch.message()).await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let stdin = server.0.stdin.as_mut().unwrap();
    stdin.write_all(b"down\n").unwrap();
    stdin.flush().unwrap();
    let second = within(watch.message()).await.unwrap().unwrap();
    assert_eq!(second.status, ServingStatus::NotServing as i32);

    // grpcio client → gateway → grpcio server.
    let address = proxy.local_addr().to_string();
    let output = within(tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", CLIENT, &address])
            .output()
            .unwrap()
    }))
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
