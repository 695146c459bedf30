//! End to end against moto, a real IAM emulator on 127.0.0.1: seed an
//! account through the SDK, scan, change it the way an intruder would,
//! scan again, and check exactly those findings come out.

mod common;

use std::path::Path;

use serde_json::Value;

use common::{Moto, idrift, run, write_config};

const ADMIN_POLICY: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
const EC2_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

fn scan(home: &Path, config: &Path, snapshots: &Path) -> (i32, Value, String) {
    let (code, stdout, stderr) = run(idrift(home)
        .arg("scan")
        .arg("--config")
        .arg(config)
        .arg("--snapshots")
        .arg(snapshots)
        .args(["--format", "json"]));
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("report is JSON: {error}\n{stdout}\n{stderr}"));
    (code, report, stdout)
}

/// Creates users, a key, a password and a role: the account before the intrusion.
async fn seed_account(iam: &aws_sdk_iam::Client, secrets: &mut Vec<String>) {
    for name in ["alice", "bob"] {
        iam.create_user()
            .user_name(name)
            .send()
            .await
            .expect("create user");
    }
    let key = iam
        .create_access_key()
        .user_name("alice")
        .send()
        .await
        .expect("create key");
    secrets.push(
        key.access_key()
            .expect("key")
            .secret_access_key()
            .to_string(),
    );
    iam.create_login_profile()
        .user_name("bob")
        .password("Correct-Horse-9!")
        .send()
        .await
        .expect("create login profile");
    iam.create_role()
        .role_name("app-server")
        .assume_role_policy_document(EC2_TRUST)
        .send()
        .await
        .expect("create role");
}

/// Does what an intruder would: a new user with a key, admin for an existing
/// user, and (benign) a service-linked role.
async fn intrude(iam: &aws_sdk_iam::Client, secrets: &mut Vec<String>) {
    iam.create_user()
        .user_name("backup-svc")
        .send()
        .await
        .expect("create user");
    let key = iam
        .create_access_key()
        .user_name("backup-svc")
        .send()
        .await
        .expect("create key");
    secrets.push(
        key.access_key()
            .expect("key")
            .secret_access_key()
            .to_string(),
    );
    iam.attach_user_policy()
        .user_name("bob")
        .policy_arn(ADMIN_POLICY)
        .send()
        .await
        .expect("attach policy");
    iam.create_service_linked_role()
        .aws_service_name("autoscaling.amazonaws.com")
        .send()
        .await
        .expect("create service-linked role");
}

fn finding<'a>(report: &'a Value, change: &str, name: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|finding| finding["change"] == change && finding["identity_name"] == name)
        .unwrap_or_else(|| panic!("no {change} finding for {name} in {report:#}"))
}

/// Reads every file under a folder as text.
fn all_text_under(folder: &Path) -> String {
    let mut text = String::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(
                std::fs::read_dir(&path)
                    .expect("read dir")
                    .flatten()
                    .map(|entry| entry.path()),
            );
        } else {
            text.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_scan_finds_intrusion_then_settles() {
    let moto = Moto::start();
    let iam = moto.iam_client().await;
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let config = write_config(work.path(), &moto.endpoint, "");
    let mut secrets = Vec::new();
    let mut reports = String::new();

    seed_account(&iam, &mut secrets).await;
    let (code, report, stdout) = scan(work.path(), &config, &snapshots);
    reports.push_str(&stdout);
    assert_eq!(code, 0, "baseline scan: {report:#}");
    assert_eq!(report["scopes"][0]["status"], "baseline");
    assert_eq!(report["findings"].as_array().map(Vec::len), Some(0));

    let snapshot_path = snapshots.join("aws/123456789012.json");
    let baseline: Value =
        serde_json::from_str(&std::fs::read_to_string(&snapshot_path).expect("snapshot"))
            .expect("JSON");
    for collection in [
        "users",
        "roles",
        "privileges",
        "access_keys",
        "console_passwords",
    ] {
        assert_eq!(
            baseline["collections"][collection]["status"], "complete",
            "{collection}"
        );
    }
    let alice = baseline["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .find(|i| i["name"] == "alice")
        .expect("alice");
    assert_eq!(alice["credentials"][0]["kind"], "access_key");
    let bob = baseline["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .find(|i| i["name"] == "bob")
        .expect("bob");
    assert_eq!(bob["credentials"][0]["kind"], "console_password");

    intrude(&iam, &mut secrets).await;
    let (code, report, stdout) = scan(work.path(), &config, &snapshots);
    reports.push_str(&stdout);
    assert_eq!(code, 1, "scan after intrusion: {report:#}");
    let findings = report["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 3, "exactly three findings: {report:#}");

    let new_user = finding(&report, "identity_added", "backup-svc");
    assert_eq!(new_user["expected"], false);
    assert_eq!(new_user["severity"], "high");
    assert_eq!(new_user["technique"]["id"], "T1136.003");
    assert!(
        new_user["response"]
            .to_string()
            .contains("update-access-key --user-name=backup-svc")
    );

    let admin = finding(&report, "privilege_added", "bob");
    assert_eq!(admin["expected"], false);
    assert_eq!(admin["severity"], "critical");
    assert_eq!(admin["technique"]["id"], "T1098.003");
    assert!(
        admin["response"]
            .to_string()
            .contains("detach-user-policy --user-name=bob")
    );

    let linked = finding(&report, "identity_added", "AWSServiceRoleForAutoScaling");
    assert_eq!(linked["expected"], true, "{linked:#}");
    assert_eq!(linked["severity"], "low");

    let before = std::fs::read(&snapshot_path).expect("snapshot");
    let (code, report, stdout) = scan(work.path(), &config, &snapshots);
    reports.push_str(&stdout);
    assert_eq!(code, 0, "third scan: {report:#}");
    assert_eq!(report["findings"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        std::fs::read(&snapshot_path).expect("snapshot"),
        before,
        "snapshot bytes changed"
    );

    let everything = format!("{}{reports}", all_text_under(&snapshots));
    assert_eq!(secrets.len(), 2);
    for secret in &secrets {
        assert!(!secret.is_empty());
        assert!(
            !everything.contains(secret.as_str()),
            "a secret access key leaked into a snapshot or report"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_wrong_account_is_rejected() {
    let moto = Moto::start();
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let config = work.path().join("idrift.toml");
    let text = format!(
        "[[aws.accounts]]\naccount_id = \"999999999999\"\nendpoint_url = \"{}\"\n",
        moto.endpoint
    );
    std::fs::write(&config, text).expect("config");

    let (code, report, _) = scan(work.path(), &config, &snapshots);
    assert_eq!(code, 2);
    let error = report["scopes"][0]["error"].as_str().expect("error");
    assert!(error.contains("123456789012"), "{error}");
    assert!(error.contains("999999999999"), "{error}");
    assert!(
        !snapshots.join("aws").exists(),
        "no snapshot may be written for a failed scope"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_account_twice_recorded_once() {
    let moto = Moto::start();
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let config = work.path().join("idrift.toml");
    // The second entry names no account id, and its credentials reach the
    // account the first entry names.
    let text = format!(
        "[[aws.accounts]]\naccount_id = \"123456789012\"\nendpoint_url = \"{0}\"\n\
         [[aws.accounts]]\nendpoint_url = \"{0}\"\n",
        moto.endpoint
    );
    std::fs::write(&config, text).expect("config");

    let (code, report, _) = scan(work.path(), &config, &snapshots);
    assert_eq!(code, 2, "{report:#}");
    let scopes = report["scopes"].as_array().expect("scopes");
    assert_eq!(scopes.len(), 2, "{report:#}");
    // The entry that finishes first is recorded; the other one fails.
    let mut statuses: Vec<&str> = scopes
        .iter()
        .map(|scope| scope["status"].as_str().expect("status"))
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, ["baseline", "failed"], "{report:#}");
    let failed = scopes
        .iter()
        .find(|scope| scope["status"] == "failed")
        .expect("failed scope");
    assert_eq!(failed["scope"], "123456789012");
    let error = failed["error"].as_str().expect("error");
    assert!(error.contains("already scanned"), "{error}");
    assert!(error.contains("account_id"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_scan_through_assumed_role() {
    let moto = Moto::start();
    let iam = moto.iam_client().await;
    let reader_trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;
    iam.create_role()
        .role_name("idrift-reader")
        .assume_role_policy_document(reader_trust)
        .send()
        .await
        .expect("create role");
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let extra = "role_arn = \"arn:aws:iam::123456789012:role/idrift-reader\"\nexternal_id = \"idrift-test\"\n";
    let config = write_config(work.path(), &moto.endpoint, extra);

    let (code, stdout, stderr) = run(idrift(work.path())
        .args(["-vv", "scan", "--format", "json", "--config"])
        .arg(&config)
        .arg("--snapshots")
        .arg(&snapshots));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["scopes"][0]["status"], "baseline");
    assert!(
        stderr.contains("assumed-role/idrift-reader/idrift"),
        "the role was not assumed: {stderr}"
    );
    let snapshot: Value = serde_json::from_str(
        &std::fs::read_to_string(snapshots.join("aws/123456789012.json")).expect("snapshot"),
    )
    .expect("JSON");
    let roles: Vec<&Value> = snapshot["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .filter(|i| i["name"] == "idrift-reader")
        .collect();
    assert_eq!(roles.len(), 1);
    assert_eq!(
        roles[0]["trust"][0]["value"],
        "arn:aws:iam::123456789012:root"
    );
}
