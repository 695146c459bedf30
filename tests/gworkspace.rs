//! The Google Workspace collector end to end: the idrift binary, with its
//! google-cloud-auth credentials, against the Admin SDK Directory API of
//! the project's fake Google Cloud on 127.0.0.1. An `authorized_user`
//! credential file whose `token_uri` is the fake supplies the tokens, and
//! `GCE_METADATA_HOST` points at the fake too, so no request can leave the
//! machine. Offline input is read from saved `users.list` pages.

mod common;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use common::fake_gcp::{
    CUSTOMER_ID, DIRECTORY_USER_READONLY_SCOPE, DIRECTORY_USERS_PATH, FakeGcp, FakeUser, Fault,
    Organization, USER_EMAIL, Workspace,
};
use common::run;

/// Attempts per call in the tests' retry settings.
const MAX_ATTEMPTS: usize = 4;

/// A scan's outcome: exit code, JSON report and stderr.
struct Scan {
    code: i32,
    report: Value,
    stderr: String,
}

/// A test's folder, config and credential file.
struct Setup {
    work: tempfile::TempDir,
    config: PathBuf,
    credentials: PathBuf,
}

impl Setup {
    /// Writes a config whose `[gworkspace]` table contains `table` and the
    /// fake's URL.
    fn new(fake: &FakeGcp, table: &str) -> Setup {
        let work = tempfile::tempdir().expect("temp dir");
        let credentials = work.path().join("adc.json");
        std::fs::write(&credentials, fake.authorized_user_json().to_string()).expect("write adc");
        let config = work.path().join("idrift.toml");
        let text = format!(
            "[retry]\nmax_attempts = {MAX_ATTEMPTS}\ninitial_backoff_ms = 10\nmax_backoff_ms = 50\n\
             attempt_timeout_seconds = 10\n\n[gworkspace]\n{table}\ndirectory_url = \"{}\"\n",
            fake.endpoint
        );
        std::fs::write(&config, text).expect("write config");
        Setup {
            work,
            config,
            credentials,
        }
    }

    fn snapshots(&self) -> PathBuf {
        self.work.path().join("snapshots")
    }

    fn snapshot_path(&self) -> PathBuf {
        self.snapshots()
            .join(format!("gworkspace/{CUSTOMER_ID}.json"))
    }

    fn snapshot(&self) -> Value {
        let text = std::fs::read_to_string(self.snapshot_path()).expect("read snapshot");
        serde_json::from_str(&text).expect("JSON")
    }

    /// Runs `idrift scan` with an environment sealed to the fake.
    fn scan(&self, fake: &FakeGcp) -> Scan {
        let mut command = fake.idrift(self.work.path());
        command
            .env("GOOGLE_APPLICATION_CREDENTIALS", &self.credentials)
            .arg("scan")
            .arg("--config")
            .arg(&self.config)
            .arg("--snapshots")
            .arg(self.snapshots())
            .args(["--format", "json"]);
        parse_scan(run(&mut command))
    }
}

fn parse_scan((code, stdout, stderr): (i32, String, String)) -> Scan {
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("report is JSON: {error}\n{stdout}\n{stderr}"));
    Scan {
        code,
        report,
        stderr,
    }
}

/// Starts the fake with no projects and the sample customer with `users`
/// ordinary users besides its super admin.
fn start(users: u64) -> FakeGcp {
    let fake = FakeGcp::start(Organization::default());
    fake.set_workspace(Workspace::sample(users));
    fake
}

/// Returns `change name severity technique` for each finding, sorted.
fn finding_lines(report: &Value) -> Vec<String> {
    let mut lines: Vec<String> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|finding| {
            format!(
                "{} {} {} {}",
                finding["change"].as_str().unwrap_or("?"),
                finding["identity_name"].as_str().unwrap_or("?"),
                finding["severity"].as_str().unwrap_or("?"),
                finding["technique"]["id"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    lines.sort();
    lines
}

fn finding<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|finding| finding["identity_name"] == name)
        .unwrap_or_else(|| panic!("no finding for {name}: {report:#}"))
}

fn statuses(fake: &FakeGcp) -> Vec<u16> {
    fake.requests_for(DIRECTORY_USERS_PATH)
        .iter()
        .map(|request| request.status)
        .collect()
}

#[test]
fn new_super_admin_is_critical() {
    let fake = start(2);
    let setup = Setup::new(&fake, "customers = [\"my_customer\"]");
    let baseline = setup.scan(&fake);
    assert_eq!(
        baseline.code, 0,
        "{:#}\n{}",
        baseline.report, baseline.stderr
    );
    let scope = &baseline.report["scopes"][0];
    assert_eq!(scope["provider"], "gworkspace");
    assert_eq!(scope["scope"], CUSTOMER_ID, "the real id, not my_customer");
    assert_eq!(scope["status"], "baseline");

    fake.edit_workspace(|workspace| {
        let customer = workspace.customer_mut(CUSTOMER_ID);
        customer
            .users
            .push(FakeUser::new("backdoor@example.com", 90).super_admin());
        customer.user_mut("user-1@example.com").is_admin = true;
        customer.user_mut("user-2@example.com").is_delegated_admin = true;
    });
    let day_two = setup.scan(&fake);
    assert_eq!(day_two.code, 1, "{:#}\n{}", day_two.report, day_two.stderr);
    assert_eq!(
        finding_lines(&day_two.report),
        [
            "identity_added backdoor@example.com critical T1136.003",
            "privilege_added user-1@example.com critical T1098.003",
            "privilege_added user-2@example.com high T1098.003",
        ],
        "{:#}",
        day_two.report
    );

    let backdoor = finding(&day_two.report, "backdoor@example.com");
    assert_eq!(backdoor["provider"], "gworkspace");
    assert_eq!(backdoor["identity_kind"], "gworkspace_user");
    assert!(
        backdoor["evidence"]["admin"]
            .as_str()
            .is_some_and(|admin| admin.contains("Workspace super admin status")),
        "{backdoor:#}"
    );
    let response: Vec<&str> = backdoor["response"]
        .as_array()
        .expect("response")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(response[0].contains("/makeAdmin"), "{response:?}");
    assert!(response[1].starts_with("curl -X PATCH"), "{response:?}");
    let delegated = finding(&day_two.report, "user-2@example.com");
    let listing = delegated["response"][0].as_str().unwrap_or_default();
    assert!(
        listing.contains(&format!("/customer/{CUSTOMER_ID}/roleassignments?userKey=")),
        "{delegated:#}"
    );
}

#[test]
fn new_ordinary_user_is_medium() {
    let fake = start(1);
    let setup = Setup::new(&fake, "customers = [\"my_customer\"]");
    let baseline = setup.scan(&fake);
    assert_eq!(baseline.code, 0, "{}", baseline.stderr);

    fake.edit_workspace(|workspace| {
        let customer = workspace.customer_mut(CUSTOMER_ID);
        customer.users.push(FakeUser::new("intern@example.com", 77));
        customer.user_mut("user-1@example.com").suspended = true;
    });
    let day_two = setup.scan(&fake);
    assert_eq!(day_two.code, 1, "{:#}\n{}", day_two.report, day_two.stderr);
    assert_eq!(
        finding_lines(&day_two.report),
        [
            "enabled_changed user-1@example.com info T1531",
            "identity_added intern@example.com medium T1136.003",
        ]
    );
    let intern = finding(&day_two.report, "intern@example.com");
    assert_eq!(intern["evidence"]["created"], "2024-01-02T03:04:05Z");
    let suspend = intern["response"][0].as_str().unwrap_or_default();
    assert!(suspend.contains("\"suspended\": true"), "{intern:#}");

    let snapshot = setup.snapshot();
    let record = snapshot["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .find(|identity| identity["name"] == "intern@example.com")
        .expect("intern recorded");
    assert_eq!(record["enabled"], true);
    assert!(record.get("admin_grants").is_none(), "{record:#}");
}

#[test]
fn three_pages_are_read() {
    let fake = start(5);
    let setup = Setup::new(&fake, "customers = [\"my_customer\"]\npage_size = 2");
    let scan = setup.scan(&fake);
    assert_eq!(scan.code, 0, "{:#}\n{}", scan.report, scan.stderr);

    let pages = fake.requests_for(DIRECTORY_USERS_PATH);
    assert_eq!(pages.len(), 3);
    for page in &pages {
        assert_eq!(page.param("customer"), Some("my_customer"));
        assert_eq!(page.param("maxResults"), Some("2"));
        assert_eq!(page.param("projection"), Some("basic"));
    }
    assert_eq!(pages[0].param("pageToken"), None);
    assert_eq!(
        pages[1].param("pageToken"),
        pages[0].next_page_token.as_deref()
    );
    assert_eq!(
        pages[2].param("pageToken"),
        pages[1].next_page_token.as_deref()
    );
    assert_eq!(pages[2].next_page_token, None);

    let snapshot = setup.snapshot();
    assert_eq!(snapshot["provider"], "gworkspace");
    assert_eq!(snapshot["scope"], CUSTOMER_ID);
    assert_eq!(snapshot["collections"]["users"]["status"], "complete");
    assert_eq!(snapshot["identities"].as_array().map(Vec::len), Some(6));
    let tokens = fake.issued_tokens();
    assert!(
        tokens[0]
            .scopes
            .iter()
            .any(|scope| scope == DIRECTORY_USER_READONLY_SCOPE),
        "{tokens:?}"
    );

    // lastLoginTime changes between scans but is not recorded.
    let first = std::fs::read(setup.snapshot_path()).expect("snapshot");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again = setup.scan(&fake);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let second = std::fs::read(setup.snapshot_path()).expect("snapshot");
    assert_eq!(first, second, "an unchanged customer gives the same bytes");
}

#[test]
fn forbidden_fails_scope_and_keeps_snapshot() {
    let fake = start(2);
    let setup = Setup::new(&fake, &format!("customers = [\"{CUSTOMER_ID}\"]"));
    let baseline = setup.scan(&fake);
    assert_eq!(baseline.code, 0, "{}", baseline.stderr);
    let before = std::fs::read(setup.snapshot_path()).expect("snapshot");

    // The caller is no longer an admin, and a new user would be missed.
    fake.edit_workspace(|workspace| {
        let customer = workspace.customer_mut(CUSTOMER_ID);
        customer.user_mut(USER_EMAIL).is_admin = false;
        customer.users.push(FakeUser::new("unseen@example.com", 55));
    });
    let denied = setup.scan(&fake);
    assert_eq!(denied.code, 2, "{:#}\n{}", denied.report, denied.stderr);
    assert_eq!(statuses(&fake).last(), Some(&403));
    let scope = &denied.report["scopes"][0];
    assert_eq!(scope["provider"], "gworkspace");
    assert_eq!(scope["scope"], CUSTOMER_ID);
    assert_eq!(scope["status"], "failed");
    let error = scope["error"].as_str().unwrap_or_default();
    for part in [
        CUSTOMER_ID,
        "HTTP 403",
        "Not Authorized to access this resource/api",
        "Users read privilege",
        "admin.directory.user.readonly",
    ] {
        assert!(error.contains(part), "{part}: {error}");
    }
    assert!(
        denied.stderr.contains(&format!("gworkspace {CUSTOMER_ID}")),
        "{}",
        denied.stderr
    );
    assert_eq!(denied.report["findings"], json!([]));
    let after = std::fs::read(setup.snapshot_path()).expect("snapshot");
    assert_eq!(before, after, "the snapshot was left as it was");
}

#[test]
fn disabled_api_names_the_service() {
    let fake = start(1);
    fake.add_fault(Fault::DirectoryApiDisabled);
    let setup = Setup::new(&fake, "customers = [\"my_customer\"]");
    let scan = setup.scan(&fake);
    assert_eq!(scan.code, 2, "{}", scan.stderr);
    let scope = &scan.report["scopes"][0];
    assert_eq!(scope["scope"], "my_customer");
    assert_eq!(scope["status"], "failed");
    let error = scope["error"].as_str().unwrap_or_default();
    assert!(error.contains("PERMISSION_DENIED"), "{error}");
    assert!(error.contains("Admin SDK API has not been used"), "{error}");
    assert!(!setup.snapshot_path().exists());
}

#[test]
fn throttled_then_ok() {
    let fake = start(3);
    fake.add_fault(Fault::Throttle {
        path: DIRECTORY_USERS_PATH.to_string(),
        times: 2,
    });
    let setup = Setup::new(&fake, "customers = [\"my_customer\"]");
    let scan = setup.scan(&fake);
    assert_eq!(scan.code, 0, "{:#}\n{}", scan.report, scan.stderr);
    assert_eq!(statuses(&fake), [429, 429, 200]);
    assert_eq!(
        setup.snapshot()["identities"].as_array().map(Vec::len),
        Some(4)
    );

    // Throttled on every attempt: the scope fails with the status in its error.
    fake.add_fault(Fault::Throttle {
        path: DIRECTORY_USERS_PATH.to_string(),
        times: usize::MAX,
    });
    let throttled = setup.scan(&fake);
    assert_eq!(throttled.code, 2, "{}", throttled.stderr);
    let error = throttled.report["scopes"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("RESOURCE_EXHAUSTED"), "{error}");
    assert!(
        error.contains(&format!("after {MAX_ATTEMPTS} attempts")),
        "{error}"
    );
}

/// Writes one `users.list` page as the Admin SDK returns it.
fn write_page(folder: &Path, name: &str, users: &[Value], next: Option<&str>) {
    let mut page = json!({"kind": "admin#directory#users", "etag": "\"e1\"", "users": users});
    if let Some(token) = next {
        page["nextPageToken"] = json!(token);
    }
    std::fs::create_dir_all(folder).expect("folder");
    std::fs::write(folder.join(name), page.to_string()).expect("write page");
}

fn export_user(id: &str, email: &str, admin: bool) -> Value {
    json!({
        "kind": "admin#directory#user",
        "id": id,
        "primaryEmail": email,
        "isAdmin": admin,
        "isDelegatedAdmin": false,
        "creationTime": "2025-03-04T05:06:07.000Z",
        "suspended": false,
        "customerId": CUSTOMER_ID,
        "orgUnitPath": "/"
    })
}

fn scan_export(work: &Path, export: &Path) -> Scan {
    let mut command = common::idrift(work);
    command
        .arg("scan")
        .arg("--from-export")
        .arg(export)
        .arg("--snapshots")
        .arg(work.join("snapshots"))
        .args(["--format", "json"]);
    parse_scan(run(&mut command))
}

#[test]
fn offline_pages_are_read() {
    let work = tempfile::tempdir().expect("temp dir");
    let admin = export_user("100000000000000000001", "admin@example.com", true);
    let ana = export_user("100000000000000000002", "ana@example.com", false);
    let rogue = export_user("100000000000000000003", "rogue@example.com", true);

    let day_one = work.path().join("day-1");
    let folder = day_one.join(format!("gworkspace/{CUSTOMER_ID}"));
    write_page(
        &folder,
        "page-1.json",
        std::slice::from_ref(&admin),
        Some("T2"),
    );
    write_page(&folder, "page-2.json", std::slice::from_ref(&ana), None);
    let baseline = scan_export(work.path(), &day_one);
    assert_eq!(
        baseline.code, 0,
        "{:#}\n{}",
        baseline.report, baseline.stderr
    );
    assert_eq!(baseline.report["scopes"][0]["scope"], CUSTOMER_ID);
    assert_eq!(baseline.report["scopes"][0]["identities"], 2);

    let day_two = work.path().join("day-2");
    let folder = day_two.join(format!("gworkspace/{CUSTOMER_ID}"));
    write_page(
        &folder,
        "page-1.json",
        &[admin.clone(), ana.clone()],
        Some("T2"),
    );
    write_page(&folder, "page-2.json", std::slice::from_ref(&rogue), None);
    let compared = scan_export(work.path(), &day_two);
    assert_eq!(compared.code, 1, "{:#}", compared.report);
    assert_eq!(
        finding_lines(&compared.report),
        ["identity_added rogue@example.com critical T1136.003"]
    );
    let snapshot_path = work
        .path()
        .join(format!("snapshots/gworkspace/{CUSTOMER_ID}.json"));
    let written = std::fs::read(&snapshot_path).expect("snapshot");

    // The last page is missing: incomplete, compared with nothing.
    let day_three = work.path().join("day-3");
    let folder = day_three.join(format!("gworkspace/{CUSTOMER_ID}"));
    write_page(&folder, "page-1.json", &[admin], Some("T2"));
    let cut = scan_export(work.path(), &day_three);
    assert_eq!(cut.code, 2, "{:#}", cut.report);
    assert_eq!(
        cut.report["findings"],
        json!([]),
        "no user reads as removed"
    );
    let incomplete = &cut.report["scopes"][0]["incomplete"][0];
    assert_eq!(incomplete["collection"], "users");
    assert!(
        incomplete["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("nextPageToken")),
        "{incomplete:#}"
    );
    let snapshot: Value =
        serde_json::from_slice(&std::fs::read(&snapshot_path).expect("snapshot")).expect("JSON");
    assert_eq!(snapshot["identities"].as_array().map(Vec::len), Some(3));
    assert_eq!(snapshot["collections"]["users"]["kept_previous"], true);
    let previous: Value = serde_json::from_slice(&written).expect("JSON");
    assert_eq!(snapshot["identities"], previous["identities"]);

    // A file that is not a users.list page is an error naming it.
    let bad = work.path().join("bad");
    let folder = bad.join(format!("gworkspace/{CUSTOMER_ID}"));
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::write(folder.join("notes.json"), "{\"accounts\": []}").expect("write");
    let rejected = scan_export(work.path(), &bad);
    assert_eq!(rejected.code, 2);
    let errors = rejected.report["errors"].to_string();
    assert!(errors.contains("notes.json"), "{errors}");
    assert!(errors.contains("users.list"), "{errors}");
}

#[test]
fn bad_config_values_are_named() {
    let fake = start(0);
    let cases = [
        (
            "customers = [\"acme\"]",
            "gworkspace.customers[0]",
            "not a customer",
        ),
        (
            "customers = [\"my_customer\", \"my_customer\"]",
            "gworkspace.customers[1]",
            "listed before",
        ),
        (
            "customers = [\"my_customer\"]\npage_size = 501",
            "gworkspace.page_size",
            "use 1 to 500",
        ),
        (
            "[[gworkspace.customers]]\ncustomer = \"my_customer\"\nadmin_email = \"root@example.com\"",
            "gworkspace.customers[0].admin_email",
            "domain-wide delegation is not supported",
        ),
        (
            "[[gworkspace.customers]]\ncustomer = \"C12\"",
            "gworkspace.customers[0].customer",
            "not a customer",
        ),
        (
            "[[gworkspace.customers]]\ndomain = \"example.com\"",
            "gworkspace.customers[0].domain",
            "not a key",
        ),
    ];
    for (table, key, detail) in cases {
        let setup = Setup::new(&fake, "");
        // The case's keys join [gworkspace] after directory_url, and a
        // [[gworkspace.customers]] table starts after them.
        let text = format!(
            "[gworkspace]\ndirectory_url = \"{}\"\n{}\n",
            fake.endpoint,
            table.replace("[[gworkspace.customers]]", "\n[[gworkspace.customers]]")
        );
        std::fs::write(&setup.config, text).expect("write config");
        let scan = setup.scan(&fake);
        assert_eq!(scan.code, 2, "{table}: {}", scan.stderr);
        let errors = scan.report["errors"].to_string();
        assert!(errors.contains(key), "{table}: {errors}");
        assert!(errors.contains(detail), "{table}: {errors}");
    }
    assert!(
        fake.requests().is_empty(),
        "no request before the config is valid"
    );
}

#[test]
fn reports_validate_and_rules_apply() {
    let work = tempfile::tempdir().expect("temp dir");
    let admin = export_user("100000000000000000001", "admin@example.com", true);
    let day_one = work.path().join("day-1");
    let folder = day_one.join(format!("gworkspace/{CUSTOMER_ID}"));
    write_page(&folder, "users.json", std::slice::from_ref(&admin), None);
    let baseline = scan_export(work.path(), &day_one);
    assert_eq!(baseline.code, 0, "{:#}", baseline.report);

    let day_two = work.path().join("day-2");
    let folder = day_two.join(format!("gworkspace/{CUSTOMER_ID}"));
    let users = [
        admin,
        export_user("100000000000000000004", "svc-sync@example.com", false),
        export_user("100000000000000000005", "svc-root@example.com", true),
    ];
    write_page(&folder, "users.json", &users, None);
    let config = work.path().join("idrift.toml");
    let rule = "[[expected]]\nowner = \"it-team\"\nreason = \"directory sync accounts\"\n\
                provider = \"gworkspace\"\nkind = \"gworkspace_user\"\nname = \"svc-*@example.com\"\n";
    std::fs::write(&config, rule).expect("write config");

    let out = work.path().join("out");
    std::fs::create_dir_all(&out).expect("out folder");
    let mut command = common::idrift(work.path());
    command
        .arg("scan")
        .arg("--config")
        .arg(&config)
        .arg("--from-export")
        .arg(&day_two)
        .arg("--snapshots")
        .arg(work.path().join("snapshots"))
        .args(["--format", "json"]);
    for (format, file) in [
        ("json", "report.json"),
        ("sarif", "report.sarif"),
        ("ocsf", "report.ocsf.jsonl"),
    ] {
        command
            .arg("--output")
            .arg(format!("{format}={}", out.join(file).display()));
    }
    let scan = parse_scan(run(&mut command));
    assert_eq!(scan.code, 1, "{:#}\n{}", scan.report, scan.stderr);

    // The rule mutes the plain sync account, but not one that arrives as a
    // super admin, because it does not list privilege_added.
    let sync = finding(&scan.report, "svc-sync@example.com");
    assert_eq!(sync["expected"], true, "{sync:#}");
    assert!(
        sync["expected_reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("it-team")),
        "{sync:#}"
    );
    let root = finding(&scan.report, "svc-root@example.com");
    assert_eq!(root["expected"], false, "{root:#}");
    assert_eq!(root["severity"], "critical");

    let (code, schema, _) = run(common::idrift(work.path()).arg("schema"));
    assert_eq!(code, 0);
    let schema_file = work.path().join("report-schema.json");
    std::fs::write(&schema_file, schema).expect("write schema");
    common::schemas::validate_against(&schema_file, &out.join("report.json"), true);
    common::schemas::validate_against(
        common::schemas::sarif_schema(),
        &out.join("report.sarif"),
        false,
    );
    common::schemas::validate_ocsf(
        "1.5.0",
        "detection_finding",
        "cloud",
        &out.join("report.ocsf.jsonl"),
    );
    let ocsf = std::fs::read_to_string(out.join("report.ocsf.jsonl")).expect("ocsf");
    let event: Value = serde_json::from_str(ocsf.lines().next().expect("an event")).expect("JSON");
    assert_eq!(event["cloud"]["provider"], "Google Workspace");
    assert_eq!(event["cloud"]["account"]["uid"], CUSTOMER_ID);
    let sarif = std::fs::read_to_string(out.join("report.sarif")).expect("sarif");
    assert!(
        sarif.contains(&format!("gworkspace/{CUSTOMER_ID}.json")),
        "results sit on the snapshot file"
    );
}

/// Returns a command with git's identity set and no user or system git config.
fn with_git_identity(mut command: std::process::Command) -> std::process::Command {
    command
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "idrift test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "idrift test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid");
    command
}

#[test]
fn history_follows_workspace_user() {
    let work = tempfile::tempdir().expect("temp dir");
    let repository = work.path().join("repo");
    std::fs::create_dir_all(&repository).expect("repo");
    let mut init = with_git_identity(std::process::Command::new("git"));
    init.arg("-C")
        .arg(&repository)
        .args(["init", "--quiet", "--initial-branch=main"]);
    assert!(init.status().expect("git runs").success());

    let admin = export_user("100000000000000000001", "admin@example.com", true);
    let rogue_id = "100000000000000000003";
    let rogue = export_user(rogue_id, "rogue@example.com", false);
    let mut promoted = rogue.clone();
    promoted["isAdmin"] = json!(true);
    let days = [
        vec![admin.clone()],
        vec![admin.clone(), rogue],
        vec![admin, promoted],
    ];
    for (day, users) in days.iter().enumerate() {
        let export = work.path().join(format!("day-{day}"));
        let folder = export.join(format!("gworkspace/{CUSTOMER_ID}"));
        write_page(&folder, "users.json", users, None);
        let mut scan = with_git_identity(common::idrift(work.path()));
        scan.arg("scan")
            .arg("--from-export")
            .arg(&export)
            .arg("--snapshots")
            .arg(repository.join("snapshots"))
            .arg("--commit");
        let (code, stdout, stderr) = run(&mut scan);
        assert!(
            code == 0 || code == 1,
            "day {day}: {code}\n{stdout}\n{stderr}"
        );
    }

    let mut history = with_git_identity(common::idrift(work.path()));
    history
        .arg("history")
        .arg("--snapshots")
        .arg(repository.join("snapshots"))
        .arg(rogue_id);
    let (code, stdout, stderr) = run(&mut history);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("rogue@example.com"), "{stdout}");
    assert!(
        stdout.contains("gained admin through Workspace super admin status"),
        "{stdout}"
    );

    let mut diff = with_git_identity(common::idrift(work.path()));
    diff.arg("diff")
        .arg("--snapshots")
        .arg(repository.join("snapshots"))
        .args(["HEAD~2", "HEAD", "--format", "json"]);
    let diffed = parse_scan(run(&mut diff));
    assert_eq!(diffed.code, 1, "{:#}\n{}", diffed.report, diffed.stderr);
    assert_eq!(
        finding_lines(&diffed.report),
        [
            "identity_added rogue@example.com medium T1136.003",
            "privilege_added rogue@example.com critical T1098.003",
        ]
    );
}

#[test]
fn service_account_without_admin_role_is_forbidden() {
    let fake = start(1);
    let setup = Setup::new(&fake, "customers = [\"my_customer\"]");
    // No credential file: google-cloud-auth falls back to the fake metadata
    // server, whose default service account is no admin of the customer.
    let mut command = fake.idrift(setup.work.path());
    command
        .arg("scan")
        .arg("--config")
        .arg(&setup.config)
        .arg("--snapshots")
        .arg(setup.snapshots())
        .args(["--format", "json"]);
    let scan = parse_scan(run(&mut command));
    assert_eq!(scan.code, 2, "{:#}\n{}", scan.report, scan.stderr);
    let tokens = fake.issued_tokens();
    assert!(
        tokens.iter().all(|token| token.principal != USER_EMAIL),
        "{tokens:?}"
    );
    assert!(
        tokens[0]
            .scopes
            .iter()
            .any(|scope| scope == DIRECTORY_USER_READONLY_SCOPE),
        "{tokens:?}"
    );
    let error = scan.report["scopes"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("HTTP 403 forbidden"), "{error}");
    assert!(
        error.contains("metadata server"),
        "the source is named: {error}"
    );
}

#[test]
fn missing_credentials_fail_every_customer() {
    let fake = start(0);
    let setup = Setup::new(&fake, "customers = [\"my_customer\", \"C11111111\"]");
    let mut command = fake.idrift(setup.work.path());
    command
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            setup.work.path().join("missing.json"),
        )
        .arg("scan")
        .arg("--config")
        .arg(&setup.config)
        .arg("--snapshots")
        .arg(setup.snapshots())
        .args(["--format", "json"]);
    let scan = parse_scan(run(&mut command));
    assert_eq!(scan.code, 2, "{}", scan.stderr);
    let scopes = scan.report["scopes"].as_array().expect("scopes");
    assert_eq!(scopes.len(), 2, "{:#}", scan.report);
    for (scope, customer) in scopes.iter().zip(["my_customer", "C11111111"]) {
        assert_eq!(scope["scope"], customer);
        assert_eq!(scope["status"], "failed");
        let error = scope["error"].as_str().unwrap_or_default();
        assert!(error.contains("missing.json"), "{error}");
        assert!(
            error.contains("gcloud auth application-default login"),
            "{error}"
        );
    }
    assert!(fake.requests_for(DIRECTORY_USERS_PATH).is_empty());
}

#[test]
fn offline_user_without_id_is_incomplete() {
    let work = tempfile::tempdir().expect("temp dir");
    let admin = export_user("100000000000000000001", "admin@example.com", true);
    let ana = export_user("100000000000000000002", "ana@example.com", false);
    let day_one = work.path().join("day-1");
    let folder = day_one.join(format!("gworkspace/{CUSTOMER_ID}"));
    write_page(&folder, "page-1.json", &[admin.clone(), ana.clone()], None);
    let baseline = scan_export(work.path(), &day_one);
    assert_eq!(baseline.code, 0, "{:#}", baseline.report);

    // Ana's record lost its id (a hand-edited page, a truncated record):
    // she must not read as removed.
    let mut mangled = ana;
    mangled["id"] = Value::Null;
    let day_two = work.path().join("day-2");
    let folder = day_two.join(format!("gworkspace/{CUSTOMER_ID}"));
    write_page(&folder, "page-1.json", &[admin, mangled, json!("x")], None);
    let cut = scan_export(work.path(), &day_two);
    assert_eq!(cut.code, 2, "{:#}", cut.report);
    assert_eq!(cut.report["findings"], json!([]), "{:#}", cut.report);
    let incomplete = cut.report["scopes"][0]["incomplete"].to_string();
    assert!(
        incomplete.contains("2 users.list records have no id"),
        "{incomplete}"
    );
    let snapshot_path = work
        .path()
        .join(format!("snapshots/gworkspace/{CUSTOMER_ID}.json"));
    let snapshot: Value =
        serde_json::from_slice(&std::fs::read(&snapshot_path).expect("snapshot")).expect("JSON");
    assert_eq!(snapshot["identities"].as_array().map(Vec::len), Some(2));
}
