//! `vecraft serve` processes given their peers by host name: node 1 starts first, with one peer
//! as `localhost:PORT` (not started yet) and one whose name never resolves; it must start, keep
//! retrying, and form a quorum with node 2 as soon as node 2 comes up.

mod cluster_common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vecraft_runtime::cli::client::HttpClient;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port no listener holds, below the ephemeral range (see `cluster_common::free_port`).
fn free_port() -> u16 {
    cluster_common::free_port().port()
}

fn serve(dir: &Path, id: u64, http: u16, cluster: u16, peers: &str) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_vecraft"))
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--node-id", &id.to_string()])
        .args(["--http-addr", &format!("127.0.0.1:{http}")])
        .args(["--cluster-addr", &format!("127.0.0.1:{cluster}")])
        .args(["--peers", peers])
        .env("VECRAFT_CLUSTER_SECRET", "peers-by-name-secret")
        .env_remove("VECRAFT_CONFIG")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    Proc(child)
}

async fn ready(http: u16) -> bool {
    let client = HttpClient::new(&format!("http://127.0.0.1:{http}"), None).unwrap();
    matches!(client.call(hyper::Method::GET, "/readyz", None).await, Ok(a) if a.status.is_success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_named_peers_starts_before_them_and_joins_when_one_appears() {
    let root = tempfile::tempdir().unwrap();
    let (h1, c1, h2, c2) = (free_port(), free_port(), free_port(), free_port());
    let unresolvable = "3=peer-three.invalid:7333";
    let mut n1 = serve(
        &root.path().join("n1"),
        1,
        h1,
        c1,
        &format!("2=localhost:{c2},{unresolvable}"),
    );
    // Node 1 alone: alive (it did not fail on the names), not ready (no quorum).
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = HttpClient::new(&format!("http://127.0.0.1:{h1}"), None).unwrap();
    while !matches!(client.call(hyper::Method::GET, "/livez", None).await, Ok(a) if a.status.is_success())
    {
        assert!(
            n1.0.try_wait().unwrap().is_none(),
            "node 1 exited; see its log"
        );
        assert!(Instant::now() < deadline, "node 1 never answered /livez");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!ready(h1).await, "one node of three cannot be ready");

    let _n2 = serve(
        &root.path().join("n2"),
        2,
        h2,
        c2,
        &format!("1=localhost:{c1},{unresolvable}"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(ready(h1).await && ready(h2).await) {
        assert!(n1.0.try_wait().unwrap().is_none(), "node 1 exited");
        assert!(
            Instant::now() < deadline,
            "nodes 1 and 2 did not form a quorum by name"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(root.path().join("n1/log")).unwrap();
    assert!(
        log.contains("cannot resolve peer address"),
        "no warning for the unresolvable peer:\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}
