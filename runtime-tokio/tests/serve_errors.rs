//! `vecraft serve` failing to start: the user gets the error on one line and exit code 1, never a
//! panic. The HTTP listener binds after the node loop's own runtime exists, so a port already in
//! use used to drop that runtime inside async code, which tokio turns into a panic (exit 101).

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn an_http_address_in_use_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    // Held for the whole test: the server must find this address taken.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let http = taken.local_addr().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vecraft"))
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--node-id", "1", "--http-addr", &http.to_string()])
        .env_remove("VECRAFT_CONFIG")
        .env_remove("VECRAFT_PEERS")
        .env("VECRAFT_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("vecraft serve kept running with its HTTP address in use");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit code; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "a panic instead of an error:\n{stderr}");
    let error = stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert!(error.contains(&http.to_string()), "the error names the address: {error}");
    drop(taken);
}
