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
    /// Exit code of every scan: 2 when the file is inconsistent.
    exit_code: i32,
}

const PUBLIC_EXPORTS: &[PublicExport] = &[
    PublicExport {
        file: "cloudsplaining-example-authz-details.json",
        account: "012345678901",
        users: &["biden", "obama", "userwithlotsofpermissions"],
        roles: &["MyOtherRole", "MyRole", "OverprivilegedEC2"],
        admins: &["obama", "userwithlotsofpermissions"],
        exit_code: 0,
    },
    PublicExport {
        file: "cloudsplaining-example-authz-v2.json",
        account: "012345678901",
        users: &["BlakeBortles"],
        roles: &["GOAT", "MyOtherRole"],
        admins: &["BlakeBortles"],
        exit_code: 0,
    },
    // Two roles of this demo export share one RoleId (bad_role and level1).
    // The first one listed is kept, so 3 of its 4 roles remain, and users and
    // roles are marked incomplete because the listing is inconsistent.
    PublicExport {
        file: "cloudmapper-demo-authz-details.json",
        account: "123456789012",
        users: &["USER", "USER_WITH_BAD_INLINE_POLICY"],
        roles: &["bad_role", "exfiller", "level3"],
        admins: &["bad_role"],
        exit_code: 2,
    },
];

#[test]
fn public_exports_scan_with_hand_counts() {
    for expected in PUBLIC_EXPORTS {
        let work = tempfile::tempdir().expect("temp dir");
        let snapshots = work.path().join("snapshots");
        let export = public_fixtures().join("aws").join(expected.file);

        let (code, report) = scan_export(work.path(), &export, &snapshots, &[]);
        assert_eq!(code, expected.exit_code, "{}: {report:#}", expected.file);
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
        assert_eq!(
            code, expected.exit_code,
            "{}: second scan: {report:#}",
            expected.file
        );
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
/// The demo report's rows name `user` and `auditor_tmp`, while the listing
/// has `USER` and `USER_WITH_BAD_INLINE_POLICY`: the report cannot vouch for them.
fn credential_report_without_rows_is_not_collected() {
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
    assert_eq!(
        code, 2,
        "the shared RoleId makes users and roles incomplete: {report:#}"
    );
    let incomplete = report["scopes"][0]["incomplete"].to_string();
    assert!(incomplete.contains("AROAIBATWWYQXZTTALNCE"), "{incomplete}");

    let snapshot = read_json(&snapshots.join("aws/123456789012.json"));
    for collection in ["access_keys", "console_passwords"] {
        let completeness = &snapshot["collections"][collection];
        assert_eq!(completeness["status"], "not_collected", "{collection}");
        let reason = completeness["reason"].as_str().expect("reason");
        assert!(
            reason.contains("users USER_WITH_BAD_INLINE_POLICY, USER;"),
            "{reason}"
        );
    }
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
    assert_eq!(report["schema_version"], 2);

    let (code, stdout, _) = run(idrift(work.path()).arg("diff").arg(&old).arg(&old));
    assert_eq!(code, 0, "{stdout}");

    // A mistyped NEW path: the error must not call the existing OLD path
    // missing, and must say that both paths have to exist.
    let missing = work.path().join("nwe");
    let (code, stdout, _) = run(idrift(work.path()).arg("diff").arg(&old).arg(&missing));
    assert_eq!(code, 2, "{stdout}");
    assert!(
        !stdout.contains("neither an existing snapshot folder"),
        "{stdout}"
    );
    assert!(
        stdout.contains("read as paths only when both exist"),
        "{stdout}"
    );
}

/// Copies the demo's day-1 export into `root`, letting `edit` change its
/// authorization details first, and returns the export path.
fn demo_variant(root: &Path, edit: impl Fn(&mut Value)) -> PathBuf {
    let source = demo().join("day-1/aws/111122223333");
    let target = root.join("variant/aws/111122223333");
    std::fs::create_dir_all(&target).expect("create variant folder");
    for entry in std::fs::read_dir(&source).expect("read demo").flatten() {
        let text = std::fs::read_to_string(entry.path()).expect("read demo file");
        let mut value: Value = serde_json::from_str(&text).expect("demo JSON");
        if entry.file_name() == "get-account-authorization-details.json" {
            edit(&mut value);
        }
        std::fs::write(target.join(entry.file_name()), value.to_string())
            .expect("write variant file");
    }
    root.join("variant")
}

/// Scans the demo's day-1 export as a baseline, then a variant of it.
fn scan_after_baseline(edit: impl Fn(&mut Value)) -> (i32, Value, Value) {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    scan_export(work.path(), &demo().join("day-1"), &snapshots, &[]);
    let variant = demo_variant(work.path(), edit);
    let (code, report) = scan_export(work.path(), &variant, &snapshots, &[]);
    let snapshot = read_json(&snapshots.join("aws/111122223333.json"));
    (code, report, snapshot)
}

fn changes_of(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|finding| {
            format!(
                "{} {}",
                finding["change"].as_str().unwrap_or("?"),
                finding["identity_name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

#[test]
fn cut_short_export_keeps_previous_users() {
    let (code, report, snapshot) = scan_after_baseline(|details| {
        details["UserDetailList"]
            .as_array_mut()
            .expect("users")
            .truncate(2);
        details["IsTruncated"] = Value::Bool(true);
        details["Marker"] = Value::from("page-2");
    });
    assert_eq!(code, 2, "{report:#}");
    assert!(changes_of(&report).is_empty(), "{:?}", changes_of(&report));
    assert_eq!(snapshot["collections"]["users"]["status"], "incomplete");
    assert_eq!(snapshot["collections"]["users"]["kept_previous"], true);
    assert_eq!(names_of(&snapshot, "aws_user").len(), 5);
}

#[test]
fn filtered_export_reports_no_removals() {
    let (code, report, snapshot) = scan_after_baseline(|details| {
        details
            .as_object_mut()
            .expect("object")
            .remove("UserDetailList");
    });
    assert_eq!(code, 0, "{report:#}");
    assert!(changes_of(&report).is_empty(), "{:?}", changes_of(&report));
    assert_eq!(snapshot["collections"]["users"]["status"], "not_collected");
    assert_eq!(names_of(&snapshot, "aws_user").len(), 5);
}

#[test]
fn missing_policy_document_is_incomplete() {
    let (code, report, snapshot) = scan_after_baseline(|details| {
        let bob = &mut details["UserDetailList"][1];
        assert_eq!(bob["UserName"], "bob");
        let attached = serde_json::json!({"PolicyName": "ops-everything", "PolicyArn": "arn:aws:iam::111122223333:policy/ops-everything"});
        bob["AttachedManagedPolicies"]
            .as_array_mut()
            .expect("attached")
            .push(attached);
    });
    assert_eq!(code, 2, "{report:#}");
    let reason = snapshot["collections"]["privileges"]["reason"]
        .as_str()
        .expect("reason");
    assert!(reason.contains("ops-everything"), "{reason}");
}

#[test]
fn lookalike_service_role_with_admin_is_critical() {
    let (code, report, _) = scan_after_baseline(|details| {
        let mut role = details["RoleDetailList"][1].clone();
        assert_eq!(role["RoleName"], "AWSServiceRoleForSupport");
        role["RoleName"] = Value::from("AWSServiceRoleForBackdoor");
        role["RoleId"] = Value::from("AROABACKDOOR000DEMO9");
        role["AttachedManagedPolicies"] = serde_json::json!([{"PolicyName": "AdministratorAccess", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}]);
        details["RoleDetailList"]
            .as_array_mut()
            .expect("roles")
            .push(role);
    });
    assert_eq!(code, 1, "{report:#}");
    let finding = &report["findings"][0];
    assert_eq!(finding["identity_name"], "AWSServiceRoleForBackdoor");
    assert_eq!(finding["severity"], "critical");
    assert_eq!(finding["expected"], false);
}
