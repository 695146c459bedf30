//! `idrift scan` against the fake IAM endpoint: paging by `Marker`, markers
//! that do not advance, throttling and per-user failures.
//!
//! Each test runs the real binary with a sealed environment and checks the
//! snapshot file, the JSON report, the exit code and the requests the fake
//! received. The config from `common::write_config` allows 4 attempts per
//! call with backoffs of at most 50 ms.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use common::fake_iam::{
    ACCOUNT_ID, Account, FakeIam, Fault, GET_ACCOUNT_AUTHORIZATION_DETAILS, GET_LOGIN_PROFILE,
    LIST_ACCESS_KEYS, RecordedRequest, access_key_id, user_name,
};

/// Attempts per call in the config that `common::write_config` writes.
const MAX_ATTEMPTS: usize = 4;

/// Users in the data set of most tests: with 1 group, 2 roles and 2 managed
/// policies, 10 entities, which a page size of 4 splits into 3 pages.
const USERS: usize = 5;

/// Page size that splits the data set of [`USERS`] users into 3 pages.
const THREE_PAGES: usize = 4;

/// A scratch folder with a config for one fake and a snapshot folder.
struct Workspace {
    folder: TempDir,
    config: PathBuf,
}

impl Workspace {
    fn new(fake: &FakeIam) -> Workspace {
        let folder = tempfile::tempdir().expect("create a temporary folder");
        let config = common::write_config(folder.path(), &fake.endpoint, "");
        Workspace { folder, config }
    }

    fn snapshots(&self) -> PathBuf {
        self.folder.path().join("snapshots")
    }

    fn snapshot_path(&self) -> PathBuf {
        self.snapshots()
            .join("aws")
            .join(format!("{ACCOUNT_ID}.json"))
    }

    /// Reads the scan metadata that idrift keeps beside the snapshot.
    fn metadata(&self) -> Value {
        let path = self
            .snapshots()
            .join(format!(".idrift/last-scan/aws/{ACCOUNT_ID}.json"));
        read_json(&path)
    }

    /// Runs `idrift scan --format json` and reads the report and the snapshot.
    fn scan(&self) -> Scan {
        let mut command = common::idrift(self.folder.path());
        command
            .arg("scan")
            .arg("--config")
            .arg(&self.config)
            .arg("--snapshots")
            .arg(self.snapshots())
            .args(["--format", "json"]);
        let (exit_code, stdout, stderr) = common::run(&mut command);

        let report = serde_json::from_str(&stdout).unwrap_or_else(|error| {
            panic!("the report is not JSON ({error}):\n{stdout}\nstderr:\n{stderr}")
        });
        Scan {
            exit_code,
            report,
            snapshot: read_json(&self.snapshot_path()),
            stderr,
        }
    }
}

/// Parses a JSON file, or returns `Value::Null` when there is none.
fn read_json(path: &Path) -> Value {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{} is not JSON: {error}", path.display())),
        Err(_) => Value::Null,
    }
}

/// What one scan produced.
struct Scan {
    exit_code: i32,
    report: Value,
    snapshot: Value,
    stderr: String,
}

impl Scan {
    /// Asserts the exit code, with the report and stderr in the message.
    fn assert_exit(&self, expected: i32) {
        assert_eq!(
            self.exit_code, expected,
            "exit code; report:\n{:#}\nstderr:\n{}",
            self.report, self.stderr
        );
        assert_eq!(
            self.report["exit_code"], expected,
            "exit_code in the report"
        );
    }

    fn identities(&self) -> &Vec<Value> {
        self.snapshot["identities"]
            .as_array()
            .unwrap_or_else(|| panic!("the snapshot has no identities: {:#}", self.snapshot))
    }

    /// Returns the names of the identities of one kind, sorted, duplicates kept.
    fn names_of_kind(&self, kind: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .identities()
            .iter()
            .filter(|identity| identity["kind"] == kind)
            .map(|identity| identity["name"].as_str().unwrap_or_default().to_string())
            .collect();
        names.sort();
        names
    }

    fn user_names(&self) -> Vec<String> {
        self.names_of_kind("aws_user")
    }

    fn user(&self, name: &str) -> &Value {
        self.identities()
            .iter()
            .find(|identity| identity["kind"] == "aws_user" && identity["name"] == name)
            .unwrap_or_else(|| panic!("user {name} is not in the snapshot"))
    }

    /// Returns the ids of a user's credentials of one kind, sorted.
    fn credential_ids(&self, user: &str, kind: &str) -> Vec<String> {
        let credentials = self.user(user)["credentials"].as_array().cloned();
        let mut ids: Vec<String> = credentials
            .unwrap_or_default()
            .iter()
            .filter(|credential| credential["kind"] == kind)
            .map(|credential| credential["id"].as_str().unwrap_or_default().to_string())
            .collect();
        ids.sort();
        ids
    }

    /// Returns a collection's completeness object from the snapshot.
    fn collection(&self, name: &str) -> &Value {
        &self.snapshot["collections"][name]
    }

    fn collection_status(&self, name: &str) -> &str {
        self.collection(name)["status"]
            .as_str()
            .unwrap_or("missing")
    }

    fn collection_reason(&self, name: &str) -> &str {
        self.collection(name)["reason"].as_str().unwrap_or_default()
    }

    /// Returns the `change` of every finding in the report.
    fn finding_changes(&self) -> Vec<String> {
        let findings = self.report["findings"].as_array().cloned();
        findings
            .unwrap_or_default()
            .iter()
            .map(|finding| finding["change"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Returns the collections that the report's only scope lists as incomplete.
    fn report_incomplete(&self) -> Vec<String> {
        let incomplete = self.report["scopes"][0]["incomplete"].as_array().cloned();
        incomplete
            .unwrap_or_default()
            .iter()
            .map(|entry| entry["collection"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn scope_status(&self) -> &str {
        self.report["scopes"][0]["status"]
            .as_str()
            .unwrap_or("missing")
    }
}

fn expected_user_names(count: usize) -> Vec<String> {
    (1..=count).map(user_name).collect()
}

fn assert_all_complete(scan: &Scan) {
    for name in [
        "users",
        "roles",
        "privileges",
        "access_keys",
        "console_passwords",
    ] {
        assert_eq!(
            scan.collection_status(name),
            "complete",
            "{name}: {:#}",
            scan.collection(name)
        );
    }
}

/// Asserts that every request after the first carries the `Marker` of the
/// response before it, and returns those markers.
fn assert_markers_chained(requests: &[RecordedRequest]) -> Vec<String> {
    assert_eq!(
        requests[0].marker(),
        None,
        "the first page is read without a Marker"
    );
    let mut markers = Vec::new();
    for pair in requests.windows(2) {
        let sent = pair[0]
            .response_marker
            .as_deref()
            .expect("every page but the last sends a Marker");
        assert_eq!(pair[1].marker(), Some(sent), "request after {:?}", pair[0]);
        markers.push(sent.to_string());
    }
    let last = requests.last().expect("at least one request");
    assert_eq!(last.response_marker, None, "the last page sends no Marker");
    markers
}

/// Scans the data set in one page and returns the snapshot's identities.
fn identities_in_one_page(account: Account) -> Value {
    let fake = FakeIam::start(account);
    let workspace = Workspace::new(&fake);
    let scan = workspace.scan();
    scan.assert_exit(0);
    assert_eq!(
        fake.requests_for(GET_ACCOUNT_AUTHORIZATION_DETAILS).len(),
        1
    );
    scan.snapshot["identities"].clone()
}

/// Starts a fake with the usual data set in three pages and records a good baseline.
fn fake_with_baseline() -> (FakeIam, Workspace, Scan) {
    let fake = FakeIam::start(Account::with_users(USERS));
    fake.set_page_size(THREE_PAGES);
    let workspace = Workspace::new(&fake);
    let baseline = workspace.scan();
    baseline.assert_exit(0);
    assert_all_complete(&baseline);
    fake.clear_requests();
    (fake, workspace, baseline)
}

#[test]
fn three_pages_follow_markers() {
    let fake = FakeIam::start(Account::with_users(USERS));
    fake.set_page_size(THREE_PAGES);
    let scan = Workspace::new(&fake).scan();

    scan.assert_exit(0);
    assert_eq!(scan.scope_status(), "baseline");
    assert_all_complete(&scan);
    assert_eq!(scan.user_names(), expected_user_names(USERS));
    assert_eq!(
        scan.names_of_kind("aws_role"),
        vec!["deploy", "vendor-audit"]
    );

    let requests = fake.requests_for(GET_ACCOUNT_AUTHORIZATION_DETAILS);
    assert_eq!(requests.len(), 3, "{requests:#?}");
    let markers = assert_markers_chained(&requests);
    assert_ne!(markers[0], markers[1], "each page has its own Marker");

    let expected = identities_in_one_page(Account::with_users(USERS));
    assert_eq!(scan.snapshot["identities"], expected);
}

#[test]
fn page_size_one_gives_same_snapshot() {
    let fake = FakeIam::start(Account::with_users(USERS));
    fake.set_page_size(1);
    let scan = Workspace::new(&fake).scan();

    scan.assert_exit(0);
    assert_all_complete(&scan);
    assert_eq!(scan.user_names(), expected_user_names(USERS));

    // 5 users, 1 group, 2 roles and 2 policies, one page each.
    let requests = fake.requests_for(GET_ACCOUNT_AUTHORIZATION_DETAILS);
    assert_eq!(requests.len(), USERS + 5, "{requests:#?}");
    assert_markers_chained(&requests);

    // The group that makes user-01 an admin is on a later page than the user.
    let grants = &scan.user("user-01")["admin_grants"];
    assert_eq!(grants[0]["group"], "admins", "{grants:#}");

    let expected = identities_in_one_page(Account::with_users(USERS));
    assert_eq!(scan.snapshot["identities"], expected);
}

#[test]
fn truncated_without_marker_is_incomplete() {
    for fault in [Fault::EmptyMarker, Fault::MissingMarker] {
        let (fake, workspace, baseline) = fake_with_baseline();
        fake.add_fault(fault.clone());
        let scan = workspace.scan();

        scan.assert_exit(2);
        let requests = fake.requests_for(GET_ACCOUNT_AUTHORIZATION_DETAILS);
        assert_eq!(requests.len(), 1, "{fault:?}: {requests:#?}");
        for name in ["users", "roles", "privileges"] {
            assert_eq!(
                scan.collection_status(name),
                "incomplete",
                "{fault:?} {name}"
            );
            let reason = scan.collection_reason(name);
            assert!(reason.contains("Marker"), "{fault:?} {name}: {reason}");
            assert_eq!(
                scan.collection(name)["kept_previous"],
                true,
                "{fault:?} {name}"
            );
        }
        assert!(scan.report_incomplete().contains(&"users".to_string()));
        assert_eq!(scan.snapshot["identities"], baseline.snapshot["identities"]);
        assert_eq!(scan.finding_changes(), Vec::<String>::new(), "{fault:?}");
    }
}

#[test]
fn repeated_marker_is_incomplete() {
    let (fake, workspace, baseline) = fake_with_baseline();
    fake.add_fault(Fault::RepeatedMarker);
    let scan = workspace.scan();

    scan.assert_exit(2);
    let requests = fake.requests_for(GET_ACCOUNT_AUTHORIZATION_DETAILS);
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(requests[0].response_marker, requests[1].response_marker);
    for name in ["users", "roles", "privileges"] {
        assert_eq!(scan.collection_status(name), "incomplete", "{name}");
        let reason = scan.collection_reason(name);
        assert!(reason.contains("did not advance"), "{name}: {reason}");
    }
    assert_eq!(scan.snapshot["identities"], baseline.snapshot["identities"]);
    assert_eq!(scan.finding_changes(), Vec::<String>::new());
}

#[test]
fn throttled_page_retries_same_marker() {
    let fake = FakeIam::start(Account::with_users(USERS));
    fake.set_page_size(THREE_PAGES);
    fake.add_fault(Fault::ThrottlePage { page: 2, times: 3 });
    let workspace = Workspace::new(&fake);
    let scan = workspace.scan();

    scan.assert_exit(0);
    assert_eq!(scan.scope_status(), "baseline");
    assert_all_complete(&scan);

    // Page 1, three throttled attempts at page 2, page 2, page 3.
    let requests = fake.requests_for(GET_ACCOUNT_AUTHORIZATION_DETAILS);
    let statuses: Vec<u16> = requests.iter().map(|request| request.status).collect();
    assert_eq!(statuses, vec![200, 400, 400, 400, 200, 200]);
    let page_two_marker = requests[0].response_marker.as_deref();
    assert!(page_two_marker.is_some(), "page 1 sends a Marker");
    for retry in &requests[1..5] {
        assert_eq!(retry.marker(), page_two_marker, "{retry:?}");
    }
    assert_eq!(requests[5].marker(), requests[4].response_marker.as_deref());

    assert_eq!(scan.user_names(), expected_user_names(USERS));
    let ids: BTreeSet<&str> = scan
        .identities()
        .iter()
        .map(|identity| identity["id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        ids.len(),
        scan.identities().len(),
        "identity ids are unique"
    );
    assert_eq!(ids.len(), USERS + 2, "users and roles");

    let api_calls = &workspace.metadata()["api_calls"];
    assert_eq!(
        api_calls,
        fake.requests().len(),
        "api_calls counts every attempt"
    );
}

#[test]
fn endless_throttling_keeps_previous_snapshot() {
    let (fake, workspace, baseline) = fake_with_baseline();
    fake.add_fault(Fault::ThrottleAlways {
        action: GET_ACCOUNT_AUTHORIZATION_DETAILS,
    });
    let started = Instant::now();
    let scan = workspace.scan();
    let elapsed = started.elapsed();

    assert!(
        elapsed < Duration::from_secs(30),
        "the scan took {elapsed:?}"
    );
    scan.assert_exit(2);
    let requests = fake.requests_for(GET_ACCOUNT_AUTHORIZATION_DETAILS);
    assert_eq!(requests.len(), MAX_ATTEMPTS, "{requests:#?}");
    assert!(fake.requests_for(LIST_ACCESS_KEYS).is_empty());

    assert_eq!(scan.snapshot["identities"], baseline.snapshot["identities"]);
    for name in ["users", "roles", "privileges"] {
        assert_eq!(scan.collection_status(name), "incomplete", "{name}");
        let reason = scan.collection_reason(name);
        assert!(reason.contains("Throttling"), "{name}: {reason}");
        assert_eq!(scan.collection(name)["kept_previous"], true, "{name}");
    }
    for name in ["access_keys", "console_passwords"] {
        assert_eq!(scan.collection_status(name), "not_collected", "{name}");
        assert_eq!(scan.collection(name)["kept_previous"], true, "{name}");
    }

    assert_eq!(scan.scope_status(), "compared");
    let changes = scan.finding_changes();
    assert!(
        !changes.contains(&"identity_removed".to_string()),
        "{changes:?}"
    );
    assert_eq!(changes, Vec::<String>::new());
}

#[test]
fn deleted_user_keeps_keys_complete() {
    let fake = FakeIam::start(Account::with_users(USERS));
    let deleted = user_name(3);
    for action in [LIST_ACCESS_KEYS, GET_LOGIN_PROFILE] {
        fake.add_fault(Fault::NoSuchEntity {
            action,
            user_name: deleted.clone(),
        });
    }
    let scan = Workspace::new(&fake).scan();

    scan.assert_exit(0);
    assert_all_complete(&scan);
    let key_requests = fake.requests_for(LIST_ACCESS_KEYS);
    let deleted_requests = key_requests
        .iter()
        .filter(|request| request.user_name() == Some(deleted.as_str()));
    let statuses: Vec<u16> = deleted_requests.map(|request| request.status).collect();
    assert_eq!(statuses, vec![404], "NoSuchEntity is not retried");

    assert_eq!(scan.user_names(), expected_user_names(USERS));
    assert!(scan.credential_ids(&deleted, "access_key").is_empty());
    assert!(scan.credential_ids(&deleted, "console_password").is_empty());
    for number in [1, 2, 4, 5] {
        let user = user_name(number);
        assert_eq!(
            scan.credential_ids(&user, "access_key"),
            vec![access_key_id(number)],
            "{user}"
        );
    }
    assert_eq!(
        scan.credential_ids("user-01", "console_password"),
        vec!["console-password"]
    );
}

#[test]
fn denied_key_listing_keeps_previous_keys() {
    let (fake, workspace, baseline) = fake_with_baseline();
    fake.add_fault(Fault::AccessDenied {
        action: LIST_ACCESS_KEYS,
        user_name: None,
    });
    let scan = workspace.scan();

    scan.assert_exit(2);
    assert_eq!(scan.collection_status("access_keys"), "incomplete");
    let reason = scan.collection_reason("access_keys");
    assert!(reason.contains("AccessDenied"), "{reason}");
    assert_eq!(scan.collection("access_keys")["kept_previous"], true);
    for name in ["users", "roles", "privileges", "console_passwords"] {
        assert_eq!(scan.collection_status(name), "complete", "{name}");
    }
    assert_eq!(scan.report_incomplete(), vec!["access_keys"]);
    assert_eq!(scan.report["summary"]["incomplete_collections"], 1);

    for number in 1..=USERS {
        let user = user_name(number);
        assert_eq!(
            scan.credential_ids(&user, "access_key"),
            vec![access_key_id(number)],
            "{user}"
        );
    }
    assert_eq!(scan.snapshot["identities"], baseline.snapshot["identities"]);

    let changes = scan.finding_changes();
    assert!(
        !changes.contains(&"credential_removed".to_string()),
        "{changes:?}"
    );
    assert_eq!(changes, Vec::<String>::new());
}

/// Returns the report's finding of one change to one identity.
fn finding<'a>(scan: &'a Scan, change: &str, identity_name: &str) -> &'a Value {
    let findings = scan.report["findings"].as_array();
    findings
        .into_iter()
        .flatten()
        .find(|finding| finding["change"] == change && finding["identity_name"] == identity_name)
        .unwrap_or_else(|| panic!("no {change} finding for {identity_name}: {:#}", scan.report))
}

/// A user new in this scan has no previous records, so when the key
/// collection is incomplete it keeps the key that was listed for it.
#[test]
fn new_user_keeps_listed_keys() {
    let (fake, workspace, _baseline) = fake_with_baseline();
    let new_user = user_name(USERS + 1);
    fake.set_account(Account::with_users(USERS + 1));
    fake.add_fault(Fault::AccessDenied {
        action: LIST_ACCESS_KEYS,
        user_name: Some(user_name(2)),
    });
    let scan = workspace.scan();

    scan.assert_exit(2);
    assert_eq!(scan.collection_status("access_keys"), "incomplete");
    assert_eq!(
        scan.credential_ids(&new_user, "access_key"),
        vec![access_key_id(USERS + 1)]
    );
    let added = finding(&scan, "identity_added", &new_user);
    assert_eq!(added["severity"], "high", "{added:#}");
}

/// One user's key listing is denied while another user gets a new key: the
/// new key is still reported, and only the denied user keeps old records.
#[test]
fn partly_denied_listing_still_reports_new_key() {
    let (fake, workspace, _baseline) = fake_with_baseline();
    let mut account = Account::with_users(USERS);
    account.users[0]
        .access_keys
        .push(common::fake_iam::FakeAccessKey {
            id: "AKIANEWKEYFORUSER001".to_string(),
            status: "Active".to_string(),
        });
    fake.set_account(account);
    fake.add_fault(Fault::AccessDenied {
        action: LIST_ACCESS_KEYS,
        user_name: Some(user_name(2)),
    });
    let scan = workspace.scan();

    scan.assert_exit(2);
    assert_eq!(scan.collection_status("access_keys"), "incomplete");
    let unlisted = scan.collection("access_keys")["unlisted"].to_string();
    assert!(
        unlisted.contains(&scan_user_id(&scan, &user_name(2))),
        "{unlisted}"
    );
    assert_eq!(
        scan.credential_ids(&user_name(2), "access_key"),
        vec![access_key_id(2)]
    );

    let added = finding(&scan, "credential_added", &user_name(1));
    assert_eq!(added["evidence"]["credential_id"], "AKIANEWKEYFORUSER001");
    let changes = scan.finding_changes();
    assert_eq!(changes, vec!["credential_added".to_string()], "{changes:?}");
}

/// Returns a user's immutable id from the scan's snapshot.
fn scan_user_id(scan: &Scan, name: &str) -> String {
    scan.snapshot["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .find(|identity| identity["name"] == name)
        .and_then(|identity| identity["id"].as_str())
        .expect("user id")
        .to_string()
}
