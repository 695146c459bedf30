//! One scan of an AWS account, an Entra tenant and two Google Cloud
//! projects, each behind a slow fake: the three providers' scopes share one
//! pool and run at the same time, and the report keeps config order.
//!
//! The fakes serve one request at a time after a fixed wait, so the AWS
//! account and the Entra tenant each take several waits in a row. Overlap
//! is checked from the order in which the fakes received requests, never
//! from elapsed times.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::fake_gcp::{FakeGcp, FakeProject, Organization};
use common::fake_graph::{FakeGraph, TENANT_ID, Tenant};
use common::fake_iam::{ACCOUNT_ID, Account, FakeIam};

/// Each fake's wait before every response.
const LATENCY: Duration = Duration::from_millis(150);

/// Writes a config that scans the three fakes' scopes, the projects in the
/// order given.
fn write_config(
    folder: &Path,
    iam: &FakeIam,
    graph: &FakeGraph,
    gcp: &FakeGcp,
    projects: &[&str],
) -> std::path::PathBuf {
    let projects: Vec<String> = projects
        .iter()
        .map(|project| format!("\"{project}\""))
        .collect();
    let text = format!(
        "[retry]\nmax_attempts = 2\ninitial_backoff_ms = 10\nmax_backoff_ms = 50\n\
         attempt_timeout_seconds = 10\n\n[scan]\nconcurrency = 4\n\n\
         [[aws.accounts]]\naccount_id = \"{ACCOUNT_ID}\"\nendpoint_url = \"{iam}\"\n\n\
         [[azure.tenants]]\ntenant_id = \"{TENANT_ID}\"\ncredential = \"managed_identity\"\n\
         graph_url = \"{graph}\"\n\n\
         [gcp]\nprojects = [{projects}]\nscopes_in_parallel = 2\niam_url = \"{gcp}\"\n\
         resource_manager_url = \"{gcp}\"\n",
        iam = iam.endpoint,
        graph = graph.endpoint,
        gcp = gcp.endpoint,
        projects = projects.join(", "),
    );
    let path = folder.join("idrift.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Returns the idrift command with the caller's Azure, Google and proxy
/// variables removed and every credential pointed at a fake.
fn command(home: &Path, graph: &FakeGraph, gcp: &FakeGcp) -> Command {
    let mut command = common::idrift(home);
    for (name, _) in std::env::vars() {
        let cloud = [
            "AZURE_",
            "IDENTITY_",
            "MSI_",
            "GOOGLE_",
            "GCE_",
            "CLOUDSDK_",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix));
        if cloud || name.to_ascii_lowercase().ends_with("_proxy") {
            command.env_remove(name);
        }
    }
    let credentials = home.join("adc.json");
    std::fs::write(&credentials, gcp.authorized_user_json().to_string()).expect("write adc");
    command
        .envs(graph.identity_env())
        .env("GOOGLE_APPLICATION_CREDENTIALS", credentials)
        .env("GCE_METADATA_HOST", gcp.metadata_host());
    command
}

#[test]
fn google_cloud_projects_run_beside_aws_and_entra() {
    let iam = FakeIam::start(Account::with_users(4));
    iam.set_latency(LATENCY);
    let graph = FakeGraph::start(Tenant::with_members(3));
    graph.set_latency(LATENCY);
    let second = FakeProject::with_accounts(2, 2);
    let first = FakeProject::with_accounts(1, 2);
    let projects = [second.project_id.clone(), first.project_id.clone()];
    let gcp = FakeGcp::start(Organization {
        projects: vec![first, second],
    });

    let home = tempfile::tempdir().expect("temp dir");
    let project_ids = [projects[0].as_str(), projects[1].as_str()];
    let config = write_config(home.path(), &iam, &graph, &gcp, &project_ids);
    let snapshots = home.path().join("snapshots");
    let (code, stdout, stderr) = common::run(
        command(home.path(), &graph, &gcp)
            .arg("scan")
            .arg("--config")
            .arg(&config)
            .arg("--snapshots")
            .arg(&snapshots)
            .args(["--format", "json"]),
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");

    let report: Value = serde_json::from_str(&stdout).expect("report is JSON");
    let scopes: Vec<(String, String)> = report["scopes"]
        .as_array()
        .expect("scopes")
        .iter()
        .map(|scope| {
            let text = |key: &str| scope[key].as_str().unwrap_or_default().to_string();
            (text("provider"), text("scope"))
        })
        .collect();
    let expected = [
        ("aws", ACCOUNT_ID),
        ("azure", TENANT_ID),
        ("gcp", project_ids[0]),
        ("gcp", project_ids[1]),
    ]
    .map(|(provider, scope)| (provider.to_string(), scope.to_string()));
    assert_eq!(scopes, expected, "config order, whatever finished first");

    // The first Google Cloud API request arrived while the AWS account and
    // the Entra tenant were still sending theirs. Had the projects waited
    // for the other providers, it would have come after their last request.
    let first_gcp = gcp
        .requests()
        .iter()
        .filter(|request| !request.is_token_request())
        .map(|request| request.received)
        .min()
        .expect("Google Cloud API requests");
    let last_aws = last_received(iam.requests().iter().map(|request| request.received));
    let last_graph = last_received(
        graph
            .requests()
            .iter()
            .filter(|request| !request.is_token_request())
            .map(|request| request.received),
    );
    assert!(
        first_gcp < last_aws,
        "a Google Cloud request arrived before the last AWS request"
    );
    assert!(
        first_gcp < last_graph,
        "a Google Cloud request arrived before the last Graph request"
    );

    // Each project's scan metadata has its own record.
    for project in project_ids {
        let path = snapshots.join(format!(".idrift/last-scan/gcp/{project}.json"));
        let metadata: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read metadata"))
                .expect("metadata is JSON");
        assert!(metadata["duration_ms"].is_u64(), "{metadata}");
        assert!(metadata["api_calls"].as_u64() >= Some(4), "{metadata}");
    }
}

fn last_received(times: impl Iterator<Item = Instant>) -> Instant {
    times.max().expect("requests")
}
