//! Offline input: the public AWS CLI exports and the bundled demo account,
//! scanned with `--from-export`, with counts checked by hand against the files.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

use common::{idrift, public_fixtures, run};

fn scan_export(home: &Path, export: &Path, snapshots: &Path, extra: &[&str]) -> (i32, Value) {
    let (code, stdout, stderr) = run(idrift(home)
        .arg("scan")
        .arg("--from-export")
        .arg(export)
        .arg("--snapshots")
        .arg(snapshots)
        .args(["--format", "json"])
        .args(extra));
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("report is JSON: {error}\n{stdout}\n{stderr}"));
    (code, report)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read file")).expect("valid JSON")
}

fn names_of(snapshot: &Value, kind: &str) -> Vec<String> {
    let mut names: Vec<String> = snapshot["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .filter(|identity| identity["kind"] == kind)
        .map(|identity| identity["name"].as_str().expect("name").to_string())
        .collect();
    names.sort();
    names
}

fn admin_names(snapshot: &Value) -> Vec<String> {
    let mut names: Vec<String> = snapshot["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .filter(|identity| {
            identity["admin_grants"]
                .as_array()
                .is_some_and(|grants| !grants.is_empty())
        })
        .map(|identity| identity["name"].as_str().expect("name").to_string())
        .collect();
    names.sort();
    names
}

/// Expected contents of one public authorization-details file, counted by hand.
struct PublicExport {
    file: &'static str,
    account: &'static str,
    users: &'static [&'static str],
    roles: &'static [&'static str],
    admins: &'static [&'static str],
}

const PUBLIC_EXPORTS: &[PublicExport] = &[
    PublicExport {
        file: "cloudsplaining-example-authz-details.json",
        account: "012345678901",
        users: &["biden", "obama", "userwithlotsofpermissions"],
        roles: &["MyOtherRole", "MyRole", "OverprivilegedEC2"],
        admins: &["obama", "userwithlotsofpermissions"],
    },
    PublicExport {
        file: "cloudsplaining-example-authz-v2.json",
        account: "012345678901",
        users: &["BlakeBortles"],
        roles: &["GOAT", "MyOtherRole"],
        admins: &["BlakeBortles"],
    },
    // Two roles of this demo export share one RoleId (bad_role and level1);
    // the first one listed is kept, so 3 of its 4 roles remain.
    PublicExport {
        file: "cloudmapper-demo-authz-details.json",
        account: "123456789012",
        users: &["USER", "USER_WITH_BAD_INLINE_POLICY"],
        roles: &["bad_role", "exfiller", "level3"],
        admins: &["bad_role"],
    },
];

#[test]
fn public_exports_scan_with_hand_counts() {
    for expected in PUBLIC_EXPORTS {
        let work = tempfile::tempdir().expect("temp dir");
        let snapshots = work.path().join("snapshots");
        let export = public_fixtures().join("aws").join(expected.file);

        let (code, report) = scan_export(work.path(), &export, &snapshots, &[]);
        assert_eq!(code, 0, "{}: {report:#}", expected.file);
        assert_eq!(
            report["scopes"][0]["status"], "baseline",
            "{}",
            expected.file
        );

        let snapshot_path = snapshots
            .join("aws")
            .join(format!("{}.json", expected.account));
        let snapshot = read_json(&snapshot_path);
        assert_eq!(snapshot["scope"], expected.account, "{}", expected.file);
        assert_eq!(
            names_of(&snapshot, "aws_user"),
            expected.users,
            "{}",
            expected.file
        );
        assert_eq!(
            names_of(&snapshot, "aws_role"),
            expected.roles,
            "{}",
            expected.file
        );
        assert_eq!(admin_names(&snapshot), expected.admins, "{}", expected.file);
        assert_eq!(
            snapshot["collections"]["access_keys"]["status"], "not_collected",
            "{}",
            expected.file
        );

        let before = std::fs::read(&snapshot_path).expect("snapshot");
        let (code, report) = scan_export(work.path(), &export, &snapshots, &[]);
        assert_eq!(code, 0, "{}: second scan: {report:#}", expected.file);
        assert_eq!(
            report["findings"].as_array().map(Vec::len),
            Some(0),
            "{}",
            expected.file
        );
        assert_eq!(
            std::fs::read(&snapshot_path).expect("snapshot"),
            before,
            "{}: bytes changed",
            expected.file
        );
    }
}

#[test]
fn public_trust_principals_are_parsed() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let export = public_fixtures().join("aws/cloudmapper-demo-authz-details.json");
    scan_export(work.path(), &export, &snapshots, &[]);

    let snapshot = read_json(&snapshots.join("aws/123456789012.json"));
    let bad_role = snapshot["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .find(|identity| identity["name"] == "bad_role")
        .expect("bad_role");
    assert_eq!(bad_role["trust"][0]["kind"], "aws");
    assert_eq!(bad_role["trust"][0]["value"], "*");
    assert_eq!(bad_role["admin_grants"][0]["via"], "inline");
    assert_eq!(bad_role["admin_grants"][0]["policy"], "dostuff");
}

/// Builds `aws/<account>/` out of symbolic links to public files.
fn linked_export(root: &Path, account: &str, files: &[&str]) -> PathBuf {
    let folder = root.join("export/aws").join(account);
    std::fs::create_dir_all(&folder).expect("create export folder");
    for file in files {
        std::os::unix::fs::symlink(public_fixtures().join("aws").join(file), folder.join(file))
            .expect("link");
    }
    root.join("export")
}

#[test]
fn credential_report_beside_details_completes_collections() {
    let work = tempfile::tempdir().expect("temp dir");
    let export = linked_export(
        work.path(),
        "123456789012",
        &[
            "cloudmapper-demo-authz-details.json",
            "cloudmapper-demo-credential-report.json",
        ],
    );
    let snapshots = work.path().join("snapshots");
    let (code, report) = scan_export(work.path(), &export, &snapshots, &[]);
    assert_eq!(code, 0, "{report:#}");

    let snapshot = read_json(&snapshots.join("aws/123456789012.json"));
    assert_eq!(snapshot["collections"]["access_keys"]["status"], "complete");
    assert_eq!(
        snapshot["collections"]["console_passwords"]["status"],
        "complete"
    );
}

#[test]
fn folder_name_must_match_arns() {
    let work = tempfile::tempdir().expect("temp dir");
    let export = linked_export(
        work.path(),
        "999999999999",
        &["cloudsplaining-example-authz-v2.json"],
    );
    let snapshots = work.path().join("snapshots");
    let (code, report) = scan_export(work.path(), &export, &snapshots, &[]);
    assert_eq!(code, 2);
    let error = report["errors"][0].as_str().expect("error");
    assert!(error.contains("999999999999"), "{error}");
    assert!(error.contains("012345678901"), "{error}");
    assert!(!snapshots.exists());
}

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo")
}

#[test]
fn demo_baseline_matches_day_one_export() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let (code, report) = scan_export(work.path(), &demo().join("day-1"), &snapshots, &[]);
    assert_eq!(code, 0, "{report:#}");

    let fresh =
        std::fs::read_to_string(snapshots.join("aws/111122223333.json")).expect("fresh snapshot");
    let bundled = std::fs::read_to_string(demo().join("snapshots/aws/111122223333.json"))
        .expect("bundled snapshot");
    assert_eq!(
        fresh, bundled,
        "examples/demo/snapshots is stale: rerun the day-1 scan into it"
    );
}

#[test]
fn demo_day_two_reports_the_intrusion() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    scan_export(work.path(), &demo().join("day-1"), &snapshots, &[]);
    let snapshot_path = snapshots.join("aws/111122223333.json");
    let before = std::fs::read(&snapshot_path).expect("snapshot");

    let (code, report) = scan_export(
        work.path(),
        &demo().join("day-2"),
        &snapshots,
        &["--dry-run"],
    );
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        std::fs::read(&snapshot_path).expect("snapshot"),
        before,
        "--dry-run wrote the snapshot"
    );

    let mut seen: Vec<(String, String, String, bool)> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|finding| {
            (
                finding["change"].as_str().expect("change").to_string(),
                finding["identity_name"].as_str().expect("name").to_string(),
                finding["severity"].as_str().expect("severity").to_string(),
                finding["expected"].as_bool().expect("expected"),
            )
        })
        .collect();
    seen.sort();
    let expected = [
        ("credential_added", "ci-deploy", "high", false),
        (
            "identity_added",
            "AWSServiceRoleForAutoScaling",
            "low",
            true,
        ),
        ("identity_added", "svc-backup", "critical", false),
        ("identity_added", "vendor-audit", "high", false),
        ("identity_recreated", "reporting", "high", false),
        ("identity_removed", "old-contractor", "info", false),
        ("privilege_added", "bob", "critical", false),
    ];
    let expected: Vec<(String, String, String, bool)> = expected
        .iter()
        .map(|(change, name, severity, is_expected)| {
            (
                change.to_string(),
                name.to_string(),
                severity.to_string(),
                *is_expected,
            )
        })
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn diff_command_compares_folders() {
    let work = tempfile::tempdir().expect("temp dir");
    let old = work.path().join("old");
    let new = work.path().join("new");
    scan_export(work.path(), &demo().join("day-1"), &old, &[]);
    scan_export(work.path(), &demo().join("day-2"), &new, &[]);

    let (code, stdout, _) = run(idrift(work.path())
        .arg("diff")
        .arg(&old)
        .arg(&new)
        .args(["--format", "json"]));
    assert_eq!(code, 1, "{stdout}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["findings"].as_array().map(Vec::len), Some(7));
    assert_eq!(report["schema_version"], 1);

    let (code, stdout, _) = run(idrift(work.path()).arg("diff").arg(&old).arg(&old));
    assert_eq!(code, 0, "{stdout}");
}
