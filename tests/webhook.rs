//! The webhook notification, against a receiver on 127.0.0.1: delivery in
//! both payload formats, a retry after HTTP 500, and a timeout that makes
//! the exit code 2 while the snapshot is written and the report printed.
//! The URL carries a fake secret that must never reach stdout or stderr.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{idrift, run};

/// The secret part of the webhook URL.
const SECRET: &str = "T0000SECRET0TOKEN";

/// What the receiver does with one request.
#[derive(Clone, Copy)]
enum Reply {
    /// Responds with this status.
    Status(u16),
    /// Responds with HTTP 429 and this `Retry-After`, in seconds.
    TooManyRequests(u64),
    /// Holds the request without responding, so the client times out.
    Stall,
}

/// One request the receiver got.
struct Received {
    path: String,
    content_type: String,
    body: String,
}

/// A webhook receiver on 127.0.0.1 that replies to requests in order and
/// stops after the last reply or 20 seconds.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    fn start(replies: Vec<Reply>) -> Receiver {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind the receiver");
        let port = server.server_addr().to_ip().expect("IP address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::spawn(move || serve(server, replies, log, stopped));
        Receiver {
            url: format!("http://127.0.0.1:{port}/services/{SECRET}"),
            received,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the receiver and returns what it got; call it once idrift exited.
    fn finish(mut self) -> Vec<Received> {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            thread.join().expect("receiver thread");
        }
        std::mem::take(&mut *self.received.lock().expect("lock"))
    }
}

fn serve(
    server: tiny_http::Server,
    replies: Vec<Reply>,
    log: Arc<Mutex<Vec<Received>>>,
    stopped: mpsc::Receiver<()>,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stalled = Vec::new();
    for reply in replies {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(mut request)) = server.recv_timeout(left) else {
            break;
        };
        let mut body = String::new();
        let _ = request.as_reader().read_to_string(&mut body);
        let content_type = request
            .headers()
            .iter()
            .find(|header| header.field.equiv("Content-Type"))
            .map(|header| header.value.to_string())
            .unwrap_or_default();
        log.lock().expect("lock").push(Received {
            path: request.url().to_string(),
            content_type,
            body,
        });
        match reply {
            Reply::Status(status) => {
                let _ = request.respond(tiny_http::Response::empty(status));
            }
            Reply::TooManyRequests(seconds) => {
                let header = tiny_http::Header::from_bytes("Retry-After", seconds.to_string())
                    .expect("valid header");
                let _ = request.respond(tiny_http::Response::empty(429).with_header(header));
            }
            Reply::Stall => stalled.push(request),
        }
    }
    // tiny_http responds to a dropped request with HTTP 500, so stalled
    // requests are kept open until the test is done with the receiver.
    if !stalled.is_empty() {
        let _ = stopped.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

/// Copies the demo's day-1 snapshots into `root/snapshots`.
fn copy_demo_snapshots(root: &Path) -> PathBuf {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo");
    let snapshots = root.join("snapshots");
    std::fs::create_dir_all(snapshots.join("aws")).expect("create snapshot folder");
    std::fs::copy(
        demo.join("snapshots/aws/111122223333.json"),
        snapshots.join("aws/111122223333.json"),
    )
    .expect("copy demo snapshot");
    snapshots
}

/// Returns a scan of the demo export of `day` against `snapshots` that
/// notifies `url`, with no proxy in the way.
fn scan(home: &Path, day: &str, snapshots: &Path, url: &str) -> Command {
    let mut command = idrift(home);
    for proxy in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        command.env_remove(proxy).env_remove(proxy.to_lowercase());
    }
    command
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("IDRIFT_WEBHOOK_URL", url)
        .args(["-v", "scan", "--from-export"])
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples/demo")
                .join(day),
        )
        .arg("--snapshots")
        .arg(snapshots)
        .args(["--format", "json"]);
    command
}

fn assert_no_secret(stdout: &str, stderr: &str) {
    assert!(!stdout.contains(SECRET), "stdout shows the URL: {stdout}");
    assert!(!stderr.contains(SECRET), "stderr shows the URL: {stderr}");
}

#[test]
fn webhook_posts_json_report() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = copy_demo_snapshots(work.path());
    let receiver = Receiver::start(vec![Reply::Status(200)]);
    let (code, stdout, stderr) = run(&mut scan(work.path(), "day-2", &snapshots, &receiver.url));
    let received = receiver.finish();

    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert_no_secret(&stdout, &stderr);
    assert!(stderr.contains("webhook notification sent"), "{stderr}");
    assert!(
        stderr.contains("127.0.0.1"),
        "the host is not logged: {stderr}"
    );
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, format!("/services/{SECRET}"));
    assert_eq!(received[0].content_type, "application/json");
    let payload: Value = serde_json::from_str(&received[0].body).expect("JSON body");
    let printed: Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(payload, printed, "the payload is not the JSON report");
}

#[test]
fn webhook_posts_slack_text() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = copy_demo_snapshots(work.path());
    let receiver = Receiver::start(vec![Reply::Status(200)]);
    let (code, stdout, stderr) =
        run(scan(work.path(), "day-2", &snapshots, &receiver.url)
            .env("IDRIFT_WEBHOOK_FORMAT", "slack"));
    let received = receiver.finish();

    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert_eq!(received.len(), 1);
    let payload: Value = serde_json::from_str(&received[0].body).expect("JSON body");
    let text = payload["text"].as_str().expect("text");
    assert_eq!(payload.as_object().map(|fields| fields.len()), Some(1));
    for expected in [
        "*idrift scan*: 7 findings, 5 need attention",
        "*critical* new IAM user svc-backup",
        "new identity with admin rights",
        "T1136.003",
        "aws iam update-access-key --user-name=svc-backup --access-key-id=AKIASVCBACKUPDEMO001",
    ] {
        assert!(text.contains(expected), "{text} lacks {expected}");
    }
}

#[test]
fn webhook_retries_after_server_error() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = copy_demo_snapshots(work.path());
    let receiver = Receiver::start(vec![Reply::Status(500), Reply::Status(200)]);
    let (code, stdout, stderr) = run(&mut scan(work.path(), "day-2", &snapshots, &receiver.url));
    let received = receiver.finish();

    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert_no_secret(&stdout, &stderr);
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].body, received[1].body);
    assert!(stderr.contains("HTTP 500"), "{stderr}");
    assert!(stderr.contains("retrying"), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["errors"].as_array().map(Vec::len), Some(0));
}

#[test]
fn webhook_waits_for_retry_after() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = copy_demo_snapshots(work.path());
    let receiver = Receiver::start(vec![Reply::TooManyRequests(2), Reply::Status(200)]);
    let started = Instant::now();
    let (code, stdout, stderr) = run(&mut scan(work.path(), "day-2", &snapshots, &receiver.url));
    let elapsed = started.elapsed();
    let received = receiver.finish();

    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert_eq!(received.len(), 2);
    assert!(stderr.contains("HTTP 429"), "{stderr}");
    assert!(stderr.contains("wait_ms=2000"), "{stderr}");
    assert!(elapsed >= Duration::from_secs(2), "took {elapsed:?}");
}

#[test]
fn webhook_timeout_exits_two_and_keeps_snapshot() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = copy_demo_snapshots(work.path());
    let snapshot_file = snapshots.join("aws/111122223333.json");
    let before = std::fs::read_to_string(&snapshot_file).expect("snapshot");
    let receiver = Receiver::start(vec![Reply::Stall, Reply::Stall]);
    let started = Instant::now();
    let (code, stdout, stderr) = run(scan(work.path(), "day-2", &snapshots, &receiver.url)
        .env("IDRIFT_WEBHOOK_TIMEOUT", "0.5")
        .env("IDRIFT_WEBHOOK_ATTEMPTS", "2"));
    let elapsed = started.elapsed();
    let received = receiver.finish();

    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert_no_secret(&stdout, &stderr);
    assert_eq!(received.len(), 2);
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");

    let report: Value = serde_json::from_str(&stdout).expect("the report is printed");
    assert_eq!(report["exit_code"], 2);
    assert_eq!(report["findings"].as_array().map(Vec::len), Some(7));
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("to 127.0.0.1 failed after 2 attempts"),
        "{errors}"
    );
    assert!(errors.contains("timed out after 0.5 s"), "{errors}");

    let after = std::fs::read_to_string(&snapshot_file).expect("snapshot");
    assert_ne!(after, before, "the day-2 snapshot was not written");
    assert!(after.contains("AIDASVCBACKUP00DEMO07"), "{after}");
}

#[test]
fn webhook_client_error_is_not_retried() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = copy_demo_snapshots(work.path());
    let receiver = Receiver::start(vec![Reply::Status(302)]);
    let (code, stdout, stderr) = run(&mut scan(work.path(), "day-2", &snapshots, &receiver.url));
    let received = receiver.finish();

    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert_no_secret(&stdout, &stderr);
    assert_eq!(received.len(), 1);
    let report: Value = serde_json::from_str(&stdout).expect("JSON report");
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("failed after 1 attempt: HTTP 302"),
        "{errors}"
    );
    assert!(errors.contains("redirects are not followed"), "{errors}");
}

#[test]
fn webhook_skips_clean_scan() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = copy_demo_snapshots(work.path());
    // No reply planned: the receiver stops at once and a request would fail.
    let receiver = Receiver::start(Vec::new());
    let (code, stdout, stderr) = run(&mut scan(work.path(), "day-1", &snapshots, &receiver.url));
    let received = receiver.finish();

    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(received.is_empty());
}

#[test]
fn webhook_bad_setting_stops_before_scan() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = copy_demo_snapshots(work.path());
    let snapshot_file = snapshots.join("aws/111122223333.json");
    let before = std::fs::read(&snapshot_file).expect("snapshot");
    let receiver = Receiver::start(Vec::new());
    let (code, stdout, stderr) =
        run(scan(work.path(), "day-2", &snapshots, &receiver.url)
            .env("IDRIFT_WEBHOOK_FORMAT", "teams"));
    receiver.finish();

    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert_no_secret(&stdout, &stderr);
    assert!(
        stdout.contains("IDRIFT_WEBHOOK_FORMAT is invalid"),
        "{stdout}"
    );
    assert_eq!(std::fs::read(&snapshot_file).expect("snapshot"), before);
}
