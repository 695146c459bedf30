//! Shared test harness: runs the `idrift` binary with an environment that
//! cannot reach any cloud or metadata address, and starts moto on 127.0.0.1.

#![allow(dead_code)]

pub mod aws_gate;
pub mod fake_arm;
pub mod fake_cloudtrail;
pub mod fake_entra;
pub mod fake_gcp;
pub mod fake_graph;
pub mod fake_iam;
pub mod pki;
pub mod schemas;
pub mod tls_front;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of the public sample exports shared with the project.
///
/// They sit beside the checkout, not in it; `IDRIFT_PUBLIC_FIXTURES` points
/// elsewhere.
pub fn public_fixtures() -> PathBuf {
    let folder = std::env::var_os("IDRIFT_PUBLIC_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/public"));
    assert!(
        folder.join("aws").is_dir(),
        "public sample exports not found in {}; set IDRIFT_PUBLIC_FIXTURES to their folder",
        folder.display()
    );
    folder
}

/// Returns a command for the idrift binary with a sealed environment:
/// static test credentials, no shared config files, no instance metadata.
pub fn idrift(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_idrift"));
    seal_environment(&mut command, home);
    command
}

/// Removes every AWS and webhook variable of the caller and sets safe ones.
pub fn seal_environment(command: &mut Command, home: &Path) {
    for (name, _) in std::env::vars() {
        if name.starts_with("AWS_")
            || name.starts_with("IDRIFT_WEBHOOK_")
            || name == "RUST_LOG"
            || name == "IDRIFT_CONFIG"
        {
            command.env_remove(name);
        }
    }
    command
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", home.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.join("no-aws-credentials"),
        )
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIAIDRIFTTESTKEY000")
        .env("AWS_SECRET_ACCESS_KEY", "idrift-test-secret-not-real");
}

/// Runs a command and returns its output, stdout and stderr as text.
pub fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("the idrift binary runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// Writes a config file that scans one account at an endpoint with fast retries.
pub fn write_config(folder: &Path, endpoint: &str, extra: &str) -> PathBuf {
    let path = folder.join("idrift.toml");
    let text = format!(
        "[retry]\nmax_attempts = 4\ninitial_backoff_ms = 10\nmax_backoff_ms = 50\nattempt_timeout_seconds = 10\n\n\
         [[aws.accounts]]\naccount_id = \"123456789012\"\nendpoint_url = \"{endpoint}\"\n{extra}"
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// Returns the static credentials that [`seal_environment`] gives idrift,
/// for SDK clients that seed moto.
pub fn test_credentials() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(
        "AKIAIDRIFTTESTKEY000",
        "idrift-test-secret-not-real",
        None,
        None,
        "idrift-tests",
    )
}

/// A moto server on 127.0.0.1, stopped when dropped.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

/// Finds `moto_server`: `$IDRIFT_MOTO_SERVER`, the project's `.venv`, then `PATH`.
fn moto_server_path() -> PathBuf {
    if let Ok(path) = std::env::var("IDRIFT_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    if local.exists() {
        return local;
    }
    PathBuf::from("moto_server")
}

impl Moto {
    /// Starts moto and waits until it accepts connections.
    pub fn start() -> Moto {
        let port = free_port();
        let server = moto_server_path();
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // moto leaves out the AWS managed policies (AdministratorAccess among them) unless asked.
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start {}: {error}. Install moto with `bash .ci/run` or \
                     `python3 -m venv .venv && .venv/bin/pip install \"moto[server]\"`",
                    server.display()
                )
            });
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto did not start on port {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Builds an IAM client for seeding moto, with the same static credentials.
    pub async fn iam_client(&self) -> aws_sdk_iam::Client {
        let credentials = aws_sdk_iam::config::Credentials::new(
            "AKIAIDRIFTTESTKEY000",
            "idrift-test-secret-not-real",
            None,
            None,
            "idrift-tests",
        );
        let config = aws_sdk_iam::Config::builder()
            .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
            .region(aws_sdk_iam::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(credentials)
            .build();
        aws_sdk_iam::Client::from_conf(config)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
