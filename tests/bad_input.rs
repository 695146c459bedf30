//! Bad input: each case must give a clear message that names the file or
//! the provider and scope, exit with 2, and leave a good snapshot as it was.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

use common::{free_port, idrift, public_fixtures, run, write_config};

/// A work folder holding a good snapshot of account 123456789012.
struct Workspace {
    folder: tempfile::TempDir,
    snapshot_bytes: Vec<u8>,
}

impl Workspace {
    fn new() -> Workspace {
        let folder = tempfile::tempdir().expect("temp dir");
        let demo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/demo/snapshots/aws/111122223333.json");
        let text = std::fs::read_to_string(demo).expect("demo snapshot");
        let snapshot_bytes = text.replace("111122223333", "123456789012").into_bytes();
        let target = folder.path().join("snapshots/aws/123456789012.json");
        std::fs::create_dir_all(target.parent().expect("parent")).expect("create folder");
        std::fs::write(&target, &snapshot_bytes).expect("write snapshot");
        Workspace {
            folder,
            snapshot_bytes,
        }
    }

    fn path(&self) -> &Path {
        self.folder.path()
    }

    fn snapshots(&self) -> PathBuf {
        self.path().join("snapshots")
    }

    fn snapshot_file(&self) -> PathBuf {
        self.snapshots().join("aws/123456789012.json")
    }

    /// Runs `idrift scan` with extra arguments and returns the exit code and JSON report.
    fn scan(&self, arguments: &[&str], remove_credentials: bool) -> (i32, Value, String) {
        let mut command = idrift(self.path());
        if remove_credentials {
            command
                .env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY");
        }
        command
            .arg("scan")
            .arg("--snapshots")
            .arg(self.snapshots())
            .args(["--format", "json"])
            .args(arguments);
        let (code, stdout, stderr) = run(&mut command);
        let report = serde_json::from_str(&stdout)
            .unwrap_or_else(|error| panic!("report is JSON: {error}\n{stdout}\n{stderr}"));
        (code, report, stderr)
    }

    fn assert_snapshot_untouched(&self) {
        let now = std::fs::read(self.snapshot_file()).expect("snapshot still there");
        assert_eq!(
            now, self.snapshot_bytes,
            "the good snapshot was overwritten"
        );
    }
}

/// Returns every error and scope error of a report as one string.
fn all_errors(report: &Value) -> String {
    let mut text = report["errors"].to_string();
    for scope in report["scopes"].as_array().into_iter().flatten() {
        text.push_str(&scope["error"].to_string());
    }
    text
}

#[test]
fn malformed_toml_names_line_and_column() {
    let workspace = Workspace::new();
    let config = workspace.path().join("broken.toml");
    std::fs::write(&config, "[retry]\nmax_attempts = \n").expect("write config");

    let (code, report, _) = workspace.scan(&["--config", config.to_str().expect("path")], false);
    assert_eq!(code, 2);
    let errors = all_errors(&report);
    assert!(errors.contains("broken.toml"), "{errors}");
    assert!(errors.contains("line 2"), "{errors}");
    assert!(errors.contains("column"), "{errors}");
    workspace.assert_snapshot_untouched();
}

#[test]
fn unknown_config_key_is_named() {
    let workspace = Workspace::new();
    let config = workspace.path().join("typo.toml");
    std::fs::write(
        &config,
        "[[aws.accounts]]\naccount_id = \"123456789012\"\nprofle = \"audit\"\n",
    )
    .expect("write config");

    let (code, report, _) = workspace.scan(&["--config", config.to_str().expect("path")], false);
    assert_eq!(code, 2);
    let errors = all_errors(&report);
    assert!(errors.contains("typo.toml"), "{errors}");
    assert!(errors.contains("profle"), "{errors}");
    workspace.assert_snapshot_untouched();
}

#[test]
fn missing_credentials_name_the_chain() {
    let workspace = Workspace::new();
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let config = write_config(workspace.path(), &endpoint, "");

    let (code, report, _) = workspace.scan(&["--config", config.to_str().expect("path")], true);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["scopes"][0]["provider"], "aws");
    assert_eq!(report["scopes"][0]["scope"], "123456789012");
    let error = report["scopes"][0]["error"].as_str().expect("scope error");
    assert!(error.contains("no credentials were found"), "{error}");
    assert!(error.contains("AWS_PROFILE"), "{error}");
    workspace.assert_snapshot_untouched();
}

#[test]
fn unreachable_endpoint_is_reported() {
    let workspace = Workspace::new();
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let config = write_config(workspace.path(), &endpoint, "");

    let started = std::time::Instant::now();
    let (code, report, _) = workspace.scan(&["--config", config.to_str().expect("path")], false);
    assert_eq!(code, 2, "{report:#}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "gave up too slowly"
    );
    assert_eq!(report["scopes"][0]["scope"], "123456789012");
    let error = report["scopes"][0]["error"].as_str().expect("scope error");
    assert!(error.contains("could not reach the endpoint"), "{error}");
    assert!(error.contains("Connection refused"), "{error}");
    assert!(error.contains("endpoint_url"), "{error}");
    workspace.assert_snapshot_untouched();
}

#[test]
fn corrupt_snapshot_is_kept_and_named() {
    let workspace = Workspace::new();
    std::fs::write(
        workspace.snapshot_file(),
        "{\"format_version\": 1, \"identities\": [",
    )
    .expect("corrupt it");
    let corrupt = std::fs::read(workspace.snapshot_file()).expect("read");

    let export = public_fixtures().join("aws/cloudmapper-demo-authz-details.json");
    let (code, report, _) =
        workspace.scan(&["--from-export", export.to_str().expect("path")], false);
    assert_eq!(code, 2);
    let error = report["scopes"][0]["error"].as_str().expect("scope error");
    assert!(error.contains("123456789012.json"), "{error}");
    assert!(error.contains("corrupt"), "{error}");
    assert!(error.contains("git checkout"), "{error}");
    assert_eq!(
        std::fs::read(workspace.snapshot_file()).expect("read"),
        corrupt,
        "the corrupt file was replaced"
    );
}

#[test]
fn newer_snapshot_format_is_refused() {
    let workspace = Workspace::new();
    let mut snapshot: Value = serde_json::from_slice(&workspace.snapshot_bytes).expect("JSON");
    snapshot["format_version"] = Value::from(99);
    let newer = serde_json::to_vec_pretty(&snapshot).expect("serialize");
    std::fs::write(workspace.snapshot_file(), &newer).expect("write");

    let export = public_fixtures().join("aws/cloudmapper-demo-authz-details.json");
    let (code, report, _) =
        workspace.scan(&["--from-export", export.to_str().expect("path")], false);
    assert_eq!(code, 2);
    let error = report["scopes"][0]["error"].as_str().expect("scope error");
    assert!(error.contains("format version 99"), "{error}");
    assert!(error.contains("upgrade idrift"), "{error}");
    assert_eq!(
        std::fs::read(workspace.snapshot_file()).expect("read"),
        newer
    );
}

#[test]
fn version_one_snapshot_upgraded() {
    let workspace = Workspace::new();
    let mut snapshot: Value = serde_json::from_slice(&workspace.snapshot_bytes).expect("JSON");
    snapshot["format_version"] = Value::from(1);
    let older = serde_json::to_vec_pretty(&snapshot).expect("serialize");
    std::fs::write(workspace.snapshot_file(), &older).expect("write");

    let export = public_fixtures().join("aws/cloudmapper-demo-authz-details.json");
    let (code, report, _) =
        workspace.scan(&["--from-export", export.to_str().expect("path")], false);
    // This export is inconsistent (exit 2), but the scope is compared:
    // the old file was read, not refused.
    assert_eq!(code, 2);
    assert_eq!(report["scopes"][0]["status"], "compared", "{report:#}");
    let written: Value =
        serde_json::from_slice(&std::fs::read(workspace.snapshot_file()).expect("read"))
            .expect("JSON");
    assert_eq!(written["format_version"], 2);
}

#[test]
fn export_of_another_kind_is_rejected() {
    let workspace = Workspace::new();
    let cases = [
        (
            public_fixtures().join("aws/cloudmapper-demo-credential-report.json"),
            "get-account-authorization-details",
        ),
        (
            public_fixtures().join("gcp/gcpdiag-gce3-iam-service-accounts.json"),
            "not an AWS export",
        ),
        (public_fixtures().join("README.md"), "not valid JSON"),
    ];
    for (export, expected) in cases {
        let (code, report, _) =
            workspace.scan(&["--from-export", export.to_str().expect("path")], false);
        assert_eq!(code, 2, "{}", export.display());
        let errors = all_errors(&report);
        let file_name = export
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        assert!(errors.contains(&file_name), "{errors}");
        assert!(errors.contains(expected), "{errors}");
        workspace.assert_snapshot_untouched();
    }
}

#[test]
fn export_without_layout_names_every_layout() {
    let workspace = Workspace::new();
    // A tenant's export in a folder named after the product, not `azure`.
    let export = workspace.path().join("export");
    std::fs::create_dir_all(export.join("entra/72f988bf-86f1-41af-91ab-2d7cd011db47"))
        .expect("export folder");
    let (code, report, _) =
        workspace.scan(&["--from-export", export.to_str().expect("path")], false);
    assert_eq!(code, 2, "{report:#}");
    let errors = all_errors(&report);
    for layout in [
        "aws/<account-id>/",
        "azure/<tenant-id>/",
        "gcp/<project-id>/",
        "gworkspace/<customer-id>/",
    ] {
        assert!(errors.contains(layout), "{layout} missing: {errors}");
    }
    workspace.assert_snapshot_untouched();
}

#[test]
fn no_scopes_explains_what_to_pass() {
    let workspace = Workspace::new();
    let (code, report, stderr) = workspace.scan(&[], false);
    assert_eq!(code, 2);
    let errors = all_errors(&report);
    assert!(errors.contains("--config"), "{errors}");
    assert!(errors.contains("--from-export"), "{errors}");
    assert!(stderr.contains("nothing to scan"), "{stderr}");
}
