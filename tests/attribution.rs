//! Attribution: `idrift scan` with `[attribution] enabled = true` looks up
//! who made each unexpected finding's change in the audit log. AWS tests
//! use the fake CloudTrail in front of the fake IAM, the `entra` tests the
//! fake Graph's directory audits, and the `google` tests the fake Cloud
//! Logging.
//!
//! Each test scans a baseline, changes the scope (on AWS, a new user
//! `user-03` with an access key and a console password), fills the log,
//! scans again and reads the attribution from the report.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tempfile::TempDir;

use common::fake_cloudtrail::{FakeCloudTrail, Fault, TrailEvent};
use common::fake_iam::{Account, FakeAccessKey, FakeIam};
use common::schemas::{sarif_schema, validate_against, validate_ocsf};

const ACTOR: &str = "arn:aws:iam::123456789012:user/ana";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// A fake IAM account and a fake CloudTrail, with a config for both.
struct Setup {
    folder: TempDir,
    config: PathBuf,
    iam: FakeIam,
    trail: FakeCloudTrail,
}

impl Setup {
    /// Starts the fakes with two users; `extra` is appended to the
    /// `[attribution.aws]` table.
    fn new(extra: &str) -> Setup {
        let iam = FakeIam::start(Account::with_users(2));
        let trail = FakeCloudTrail::start();
        let folder = tempfile::tempdir().expect("temporary folder");
        let attribution = format!(
            "\n[attribution]\nenabled = true\n\n[attribution.aws]\nendpoint_url = \"{}\"\n{extra}",
            trail.endpoint
        );
        let config = common::write_config(folder.path(), &iam.endpoint, &attribution);
        Setup {
            folder,
            config,
            iam,
            trail,
        }
    }

    fn snapshots(&self) -> PathBuf {
        self.folder.path().join("snapshots")
    }

    /// Runs `idrift scan` with extra arguments; returns the exit code,
    /// stdout and stderr.
    fn scan(&self, extra: &[&str]) -> (i32, String, String) {
        let mut command = common::idrift(self.folder.path());
        command
            .arg("scan")
            .arg("--config")
            .arg(&self.config)
            .arg("--snapshots")
            .arg(self.snapshots())
            .args(extra);
        common::run(&mut command)
    }

    /// Scans the baseline, then adds `user-03` to the account.
    fn baseline_then_new_user(&self) {
        let (code, stdout, stderr) = self.scan(&["--format", "json"]);
        assert_eq!(code, 0, "baseline scan:\n{stdout}\n{stderr}");
        assert!(
            self.trail.requests().is_empty(),
            "a baseline has no findings to look up"
        );
        self.iam.set_account(Account::with_users(3));
    }

    /// Scans again and returns the exit code, the JSON report and stderr.
    fn scan_json(&self) -> (i32, Value, String) {
        let (code, stdout, stderr) = self.scan(&["--format", "json"]);
        let report = serde_json::from_str(&stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}):\n{stdout}\n{stderr}"));
        (code, report, stderr)
    }
}

/// Adds `scan --config CONFIG --snapshots FOLDER/snapshots --format json`
/// to a command, runs it and returns the exit code, the report and stderr.
fn scan_json(command: &mut Command, config: &Path, folder: &Path) -> (i32, Value, String) {
    command
        .arg("scan")
        .arg("--config")
        .arg(config)
        .arg("--snapshots")
        .arg(folder.join("snapshots"))
        .args(["--format", "json"]);
    let (code, stdout, stderr) = common::run(command);
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}):\n{stdout}\n{stderr}"));
    (code, report, stderr)
}

/// Returns the attribution of the finding about `user-03`'s creation.
fn new_user_attribution(report: &Value) -> &Value {
    let finding = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["identity_name"] == "user-03" && f["change"] == "identity_added")
        .unwrap_or_else(|| panic!("no finding about user-03: {report:#}"));
    &finding["attribution"]
}

/// Asserts that an attribution found exactly one event, and returns it.
fn single_event(attribution: &Value) -> &Value {
    assert_eq!(attribution["status"], "found", "{attribution:#}");
    let events = attribution["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{attribution:#}");
    &events[0]
}

fn create_user(id: &str, time: i64, actor: &str) -> TrailEvent {
    TrailEvent::iam(id, "CreateUser", time, actor, &["user-03"])
}

#[test]
fn one_actor_found() {
    let setup = Setup::new("");
    setup.baseline_then_new_user();
    setup
        .trail
        .add_event(create_user("event-1", now() - 5, ACTOR));
    // Events on the same name that are not its creation are left out.
    let key = TrailEvent::iam("event-2", "TagUser", now() - 4, ACTOR, &["user-03"]);
    setup.trail.add_event(key);

    let (code, report, stderr) = setup.scan_json();
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    let event = single_event(new_user_attribution(&report));
    assert_eq!(event["actor"], ACTOR);
    assert_eq!(event["event_id"], "event-1");
    assert_eq!(event["event_name"], "CreateUser");
    assert_eq!(event["source_ip"], "203.0.113.7");
    assert_eq!(event["user_agent"], "aws-cli/2.15.0 Python/3.11");
    let command = event["open_command"].as_str().expect("open_command");
    assert!(
        command.contains("AttributeKey=EventId,AttributeValue=event-1"),
        "{command}"
    );

    let requests = setup.trail.requests();
    assert_eq!(requests.len(), 1, "one lookup for one finding");
    assert_eq!(requests[0].attribute_value(), Some("user-03"));
    let start = requests[0].body["StartTime"].as_f64().expect("StartTime");
    let end = requests[0].body["EndTime"].as_f64().expect("EndTime");
    assert!(
        end - start < 3600.0,
        "the window runs from the previous scan: {start}..{end}"
    );
}

#[test]
fn two_candidates_are_listed() {
    let setup = Setup::new("");
    setup.baseline_then_new_user();
    let other = "arn:aws:sts::123456789012:assumed-role/ci/session";
    setup
        .trail
        .add_event(create_user("event-1", now() - 9, ACTOR));
    setup
        .trail
        .add_event(create_user("event-2", now() - 5, other));

    let (_, report, _) = setup.scan_json();
    let attribution = new_user_attribution(&report);
    assert_eq!(attribution["status"], "found");
    let actors: Vec<&str> = attribution["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| event["actor"].as_str().expect("actor"))
        .collect();
    assert_eq!(actors, [ACTOR, other], "oldest first");
    let note = attribution["note"].as_str().expect("note");
    assert!(note.starts_with("2 matching events"), "{note}");
}

#[test]
fn no_event_in_window_says_so() {
    let setup = Setup::new("");
    setup.baseline_then_new_user();
    // Two days old: before the previous scan, so outside the window.
    setup
        .trail
        .add_event(create_user("old", now() - 2 * 86_400, ACTOR));

    let (code, report, _) = setup.scan_json();
    assert_eq!(code, 1);
    let attribution = new_user_attribution(&report);
    assert_eq!(attribution["status"], "not_found", "{attribution:#}");
    assert_eq!(attribution["events"], Value::Array(Vec::new()));
    let note = attribution["note"].as_str().expect("note");
    let start = attribution["window_start"].as_str().expect("window_start");
    assert!(note.starts_with("no matching event in "), "{note}");
    assert!(note.contains(start), "{note}");
}

#[test]
fn permission_denied_is_unavailable() {
    let setup = Setup::new("");
    setup.baseline_then_new_user();
    setup.trail.add_fault(Fault::Denied);

    let (code, report, stderr) = setup.scan_json();
    assert_eq!(code, 1, "exit code as without attribution: {report:#}");
    assert_eq!(report["errors"], Value::Array(Vec::new()));
    assert_eq!(report["summary"]["failed_scopes"], 0);
    let attribution = new_user_attribution(&report);
    assert_eq!(attribution["status"], "unavailable");
    let note = attribution["note"].as_str().expect("note");
    assert!(note.starts_with("attribution unavailable: "), "{note}");
    assert!(note.contains("AccessDeniedException"), "{note}");
    assert!(note.contains("cloudtrail:LookupEvents"), "{note}");
    assert!(stderr.contains("attribution unavailable"), "{stderr}");
}

#[test]
fn throttled_then_found() {
    let setup = Setup::new("");
    setup.baseline_then_new_user();
    setup
        .trail
        .add_event(create_user("event-1", now() - 5, ACTOR));
    setup.trail.add_fault(Fault::Throttle { times: 2 });

    let (_, report, stderr) = setup.scan_json();
    let attribution = new_user_attribution(&report);
    assert_eq!(attribution["status"], "found", "{attribution:#}\n{stderr}");
    let statuses: Vec<u16> = setup.trail.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400, 400, 200]);
}

#[test]
fn pages_are_followed_at_two_per_second() {
    let setup = Setup::new("calls_per_second = 2\n");
    setup.baseline_then_new_user();
    setup.trail.set_page_size(1);
    let time = now() - 5;
    for (id, name) in [("a", "CreateLoginProfile"), ("b", "CreateAccessKey")] {
        let event = TrailEvent::iam(id, name, time + 1, ACTOR, &["user-03"]);
        setup.trail.add_event(event);
    }
    setup.trail.add_event(create_user("c", time, ACTOR));

    let (_, report, _) = setup.scan_json();
    let attribution = new_user_attribution(&report);
    let events = attribution["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{attribution:#}");
    assert_eq!(
        events[0]["event_id"], "c",
        "the creation is on the last page"
    );

    let requests = setup.trail.requests();
    let tokens: Vec<Option<&str>> = requests.iter().map(|r| r.next_token()).collect();
    assert_eq!(
        tokens,
        [None, Some("fake-token-1"), Some("fake-token-2")],
        "every page is read once"
    );
    for pair in requests.windows(2) {
        let gap = pair[1].received - pair[0].received;
        assert!(gap.as_millis() >= 450, "calls 2 per second: {gap:?}");
    }
}

#[test]
fn disabled_attribution_makes_no_call() {
    let setup = Setup::new("");
    let text = std::fs::read_to_string(&setup.config).expect("config");
    std::fs::write(
        &setup.config,
        text.replace("enabled = true", "enabled = false"),
    )
    .expect("config");
    setup.baseline_then_new_user();
    setup
        .trail
        .add_event(create_user("event-1", now() - 5, ACTOR));

    let (code, report, _) = setup.scan_json();
    assert_eq!(code, 1);
    assert!(new_user_attribution(&report).is_null());
    assert!(setup.trail.requests().is_empty());
}

#[test]
fn attribution_in_every_format() {
    let setup = Setup::new("");
    setup.baseline_then_new_user();
    setup
        .trail
        .add_event(create_user("event-1", now() - 5, ACTOR));
    let out = setup.folder.path().join("out");
    std::fs::create_dir_all(&out).expect("output folder");
    let flag = |format: &str, file: &str| format!("{format}={}", out.join(file).display());
    let outputs = [
        flag("json", "report.json"),
        flag("markdown", "report.md"),
        flag("sarif", "report.sarif"),
        flag("ocsf", "report.ocsf.jsonl"),
    ];
    let mut arguments = Vec::new();
    for output in &outputs {
        arguments.extend(["--output", output.as_str()]);
    }
    let (code, table, stderr) = setup.scan(&arguments);
    assert_eq!(code, 1, "{table}\n{stderr}");

    assert!(table.contains("attribution: 1 matching event"), "{table}");
    assert!(
        table.contains(&format!("actor {ACTOR} from 203.0.113.7")),
        "{table}"
    );
    let markdown = read(&out.join("report.md"));
    assert!(
        markdown.contains("- **Attribution:** 1 matching event"),
        "{markdown}"
    );
    assert!(markdown.contains(&format!("`{ACTOR}`")), "{markdown}");

    let report: Value = serde_json::from_str(&read(&out.join("report.json"))).expect("JSON");
    assert_eq!(new_user_attribution(&report)["events"][0]["actor"], ACTOR);
    let (_, schema, _) = common::run(common::idrift(setup.folder.path()).arg("schema"));
    let schema_file = setup.folder.path().join("report-schema.json");
    std::fs::write(&schema_file, schema).expect("write schema");
    validate_against(&schema_file, &out.join("report.json"), true);

    let sarif: Value = serde_json::from_str(&read(&out.join("report.sarif"))).expect("SARIF");
    let result = sarif["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["properties"]["identity_name"] == "user-03")
        .expect("a result about user-03");
    assert_eq!(
        result["properties"]["attribution"]["events"][0]["actor"],
        ACTOR
    );
    let message = result["message"]["text"].as_str().expect("message");
    assert!(message.contains(&format!("by {ACTOR}")), "{message}");
    validate_against(sarif_schema(), &out.join("report.sarif"), false);

    let ocsf = read(&out.join("report.ocsf.jsonl"));
    let event: Value = ocsf
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("OCSF line"))
        .find(|event| event["resources"][0]["name"] == "user-03")
        .expect("an OCSF event about user-03");
    assert_eq!(event["evidences"][0]["actor"]["user"]["uid"], ACTOR);
    assert_eq!(event["evidences"][0]["src_endpoint"]["ip"], "203.0.113.7");
    assert_eq!(event["evidences"][0]["api"]["operation"], "CreateUser");
    assert_eq!(
        event["unmapped"]["idrift"]["attribution"]["status"],
        "found"
    );
    validate_ocsf(
        "1.5.0",
        "detection_finding",
        "cloud",
        &out.join("report.ocsf.jsonl"),
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn lookups_capped_per_scope() {
    let setup = Setup::new("");
    let text = std::fs::read_to_string(&setup.config).expect("config");
    let capped = text.replace(
        "enabled = true",
        "enabled = true\nmax_lookups_per_scope = 1",
    );
    std::fs::write(&setup.config, capped).expect("config");
    setup.baseline_then_new_user();
    // Two new users: user-03 and user-04.
    setup.iam.set_account(Account::with_users(4));

    let (code, report, _) = setup.scan_json();
    assert_eq!(code, 1);
    let attributions: Vec<&Value> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|finding| &finding["attribution"])
        .collect();
    assert_eq!(attributions.len(), 2, "{report:#}");
    let capped: Vec<&&Value> = attributions
        .iter()
        .filter(|a| {
            a["note"]
                .as_str()
                .is_some_and(|n| n.contains("max_lookups_per_scope"))
        })
        .collect();
    assert_eq!(capped.len(), 1, "{report:#}");
    assert_eq!(capped[0]["status"], "unavailable");
    assert_eq!(
        setup.trail.requests().len(),
        1,
        "one lookup for the one finding allowed"
    );
}

#[test]
fn expected_findings_only_with_all_findings() {
    let rule = "\n[[expected]]\nowner = \"identity-team\"\nreason = \"numbered users\"\n\
                provider = \"aws\"\nname = \"user-*\"\n\
                changes = [\"identity_added\", \"credential_added\"]\n";
    let setup = Setup::new(rule);
    setup.baseline_then_new_user();
    setup
        .trail
        .add_event(create_user("event-1", now() - 5, ACTOR));

    let (code, report, _) = setup.scan_json();
    assert_eq!(code, 0, "{report:#}");
    assert!(
        new_user_attribution(&report).is_null(),
        "expected findings are not looked up"
    );
    assert!(setup.trail.requests().is_empty());

    let text = std::fs::read_to_string(&setup.config).expect("config");
    let all = text.replace("enabled = true", "enabled = true\nall_findings = true");
    std::fs::write(&setup.config, all).expect("config");
    // A second scan finds no change. A new baseline and a new user make one again.
    std::fs::remove_dir_all(setup.snapshots()).expect("remove snapshots");
    setup.iam.set_account(Account::with_users(2));
    setup.baseline_then_new_user();
    let (_, report, _) = setup.scan_json();
    assert_eq!(
        new_user_attribution(&report)["status"],
        "found",
        "{report:#}"
    );
}

// The judge's use of the actor.

#[test]
fn actor_rule_mutes_finding() {
    let rule = format!(
        "\n[[expected]]\nowner = \"identity-team\"\nreason = \"users made by ana\"\n\
         provider = \"aws\"\nactor = \"{ACTOR}\"\n\
         changes = [\"identity_added\", \"credential_added\"]\n"
    );
    let setup = Setup::new(&rule);
    setup.baseline_then_new_user();
    setup
        .trail
        .add_event(create_user("event-1", now() - 5, ACTOR));

    let (code, report, stderr) = setup.scan_json();
    assert_eq!(code, 0, "the only finding is muted: {report:#}\n{stderr}");
    let finding = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["identity_name"] == "user-03")
        .expect("a finding about user-03");
    assert_eq!(finding["expected"], true, "{finding:#}");
    let reason = finding["expected_reason"]
        .as_str()
        .expect("expected_reason");
    assert!(reason.contains("users made by ana"), "{reason}");
}

#[test]
fn actor_rule_needs_its_actor() {
    let rule = "\n[[expected]]\nowner = \"identity-team\"\nreason = \"users made by ana\"\n\
                provider = \"aws\"\nactor = \"arn:aws:iam::123456789012:user/ana\"\n\
                changes = [\"identity_added\", \"credential_added\"]\n";
    let setup = Setup::new(rule);
    setup.baseline_then_new_user();
    let other = "arn:aws:iam::123456789012:user/eve";
    setup
        .trail
        .add_event(create_user("event-1", now() - 5, other));

    let (code, report, _) = setup.scan_json();
    assert_eq!(code, 1, "{report:#}");
    let finding = &report["findings"][0];
    assert_eq!(finding["expected"], false, "{finding:#}");
}

#[test]
fn new_user_making_key_raises_severity() {
    let setup = Setup::new("");
    // user-02 without its admin policy, so that a new key on it is high, not critical.
    let mut account = Account::with_users(2);
    account.users[1].inline_policies.clear();
    setup.iam.set_account(account.clone());
    let (code, _, stderr) = setup.scan(&["--format", "json"]);
    assert_eq!(code, 0, "baseline: {stderr}");

    // user-03 is new, and user-02 has a second key that user-03 made.
    let new_key = "AKIAINTRUDERKEY00001";
    account.users[1].access_keys.push(FakeAccessKey {
        id: new_key.to_string(),
        status: "Active".to_string(),
    });
    account.users.push(Account::with_users(3).users[2].clone());
    setup.iam.set_account(account);
    let intruder = "arn:aws:iam::123456789012:user/user-03";
    setup
        .trail
        .add_event(create_user("event-1", now() - 9, ACTOR));
    let mut key = TrailEvent::iam(
        "event-2",
        "CreateAccessKey",
        now() - 5,
        intruder,
        &["user-02"],
    );
    key.response =
        serde_json::json!({"accessKey": {"accessKeyId": new_key, "userName": "user-02"}});
    setup.trail.add_event(key);

    let (_, report, _) = setup.scan_json();
    let finding = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["identity_name"] == "user-02" && f["change"] == "credential_added")
        .unwrap_or_else(|| panic!("no new key on user-02: {report:#}"));
    assert_eq!(finding["attribution"]["events"][0]["actor"], intruder);
    assert_eq!(finding["severity"], "critical", "{finding:#}");
    let reason = finding["severity_reason"]
        .as_str()
        .expect("severity_reason");
    assert!(reason.contains("raised from high"), "{reason}");
    assert!(reason.contains("IAM user user-03"), "{reason}");
    assert_eq!(finding["evidence"]["made_by_new_identity"], intruder);

    // The creation, by a principal that was there before, is not raised.
    let creation = new_user_attribution(&report);
    assert_eq!(creation["events"][0]["actor"], ACTOR);
    let creation_finding = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["identity_name"] == "user-03")
        .expect("the creation of user-03");
    let reason = creation_finding["severity_reason"]
        .as_str()
        .expect("reason");
    assert!(!reason.contains("raised from"), "{reason}");
}

// Entra ID: Graph directory audits.

mod entra {
    use super::*;
    use common::fake_cloudtrail::format_time;
    use common::fake_graph::{
        DIRECTORY_AUDITS_PATH, FakeGraph, FakeServicePrincipal, Fault as GraphFault, TENANT_ID,
        Tenant, directory_audit,
    };

    const UPN: &str = "ana@fake.onmicrosoft.com";

    /// A fake tenant with a config that scans it and attributes its findings.
    struct Tenancy {
        folder: TempDir,
        config: PathBuf,
        graph: FakeGraph,
    }

    impl Tenancy {
        fn new() -> Tenancy {
            let graph = FakeGraph::start(Tenant::sample());
            let folder = tempfile::tempdir().expect("temporary folder");
            let config = folder.path().join("idrift.toml");
            let text = format!(
                "[retry]\nmax_attempts = 3\ninitial_backoff_ms = 10\nmax_backoff_ms = 50\n\
                 attempt_timeout_seconds = 10\n\n\
                 [[azure.tenants]]\ntenant_id = \"{TENANT_ID}\"\ncredential = \"managed_identity\"\n\
                 graph_url = \"{}\"\n\n[attribution]\nenabled = true\n",
                graph.endpoint
            );
            std::fs::write(&config, text).expect("write the config");
            Tenancy {
                folder,
                config,
                graph,
            }
        }

        fn scan(&self) -> (i32, Value, String) {
            let mut command = common::idrift(self.folder.path());
            for (name, _) in std::env::vars() {
                if name.starts_with("AZURE_") || name.starts_with("IDENTITY_") {
                    command.env_remove(name);
                }
            }
            command.envs(self.graph.identity_env());
            scan_json(&mut command, &self.config, self.folder.path())
        }

        /// Scans the baseline, then adds service principal 5; returns its id.
        fn baseline_then_new_principal(&self) -> String {
            let (code, report, stderr) = self.scan();
            assert_eq!(code, 0, "baseline: {report:#}\n{stderr}");
            let principal = FakeServicePrincipal::application(5);
            let id = principal.id.clone();
            self.graph
                .edit_tenant(|tenant| tenant.service_principals.push(principal));
            id
        }
    }

    fn principal_attribution<'a>(report: &'a Value, id: &str) -> &'a Value {
        let finding = report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .find(|f| f["identity_id"] == id && f["change"] == "identity_added")
            .unwrap_or_else(|| panic!("no finding about {id}: {report:#}"));
        &finding["attribution"]
    }

    #[test]
    fn actor_from_directory_audit() {
        let tenancy = Tenancy::new();
        let id = tenancy.baseline_then_new_principal();
        let time = format_time(now() - 5);
        let audit = directory_audit("audit-1", "Add service principal", &time, &id, UPN);
        tenancy.graph.add_directory_audit(audit);
        // Another activity on the same object is not its creation.
        let update = directory_audit("audit-2", "Update service principal", &time, &id, UPN);
        tenancy.graph.add_directory_audit(update);
        // Throttled once, then served.
        tenancy.graph.add_fault(GraphFault::Throttle {
            path: DIRECTORY_AUDITS_PATH.to_string(),
            times: 1,
            retry_after_seconds: 0,
        });

        let (code, report, stderr) = tenancy.scan();
        assert_eq!(code, 1, "{report:#}\n{stderr}");
        let event = single_event(principal_attribution(&report, &id));
        assert_eq!(event["actor"], UPN);
        assert_eq!(event["source_ip"], "198.51.100.23");
        assert_eq!(event["user_agent"], "Mozilla/5.0 (fake portal)");
        assert_eq!(event["event_name"], "Add service principal");
        let command = event["open_command"].as_str().expect("open_command");
        assert!(
            command.contains("/v1.0/auditLogs/directoryAudits/audit-1"),
            "{command}"
        );

        let requests = tenancy.graph.requests_for(DIRECTORY_AUDITS_PATH);
        let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [429, 200]);
        let filter = requests[1].param("$filter").expect("$filter");
        assert!(
            filter.contains(&format!("targetResources/any(t:t/id eq '{id}')")),
            "{filter}"
        );
        assert!(filter.starts_with("activityDateTime ge "), "{filter}");
    }

    #[test]
    fn application_actor_and_paging() {
        let tenancy = Tenancy::new();
        let id = tenancy.baseline_then_new_principal();
        tenancy.graph.set_page_size(1);
        let app_id = "11111111-2222-4333-8444-555555555555";
        for (number, offset) in [(1, 9), (2, 7), (3, 5)] {
            let audit = directory_audit(
                &format!("audit-{number}"),
                "Add service principal",
                &format_time(now() - offset),
                &id,
                app_id,
            );
            tenancy.graph.add_directory_audit(audit);
        }
        // Outside the window.
        let old = directory_audit(
            "old",
            "Add service principal",
            "2020-01-01T00:00:00Z",
            &id,
            UPN,
        );
        tenancy.graph.add_directory_audit(old);

        let (_, report, _) = tenancy.scan();
        let attribution = principal_attribution(&report, &id);
        let ids: Vec<&str> = attribution["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|event| event["event_id"].as_str().expect("event_id"))
            .collect();
        assert_eq!(ids, ["audit-1", "audit-2", "audit-3"], "oldest first");
        assert_eq!(attribution["events"][0]["actor"], app_id);
        assert!(attribution["events"][0].get("source_ip").is_none());
        let pages = tenancy.graph.requests_for(DIRECTORY_AUDITS_PATH).len();
        assert_eq!(pages, 3, "one page per audit");
    }

    #[test]
    fn missing_permission_is_unavailable() {
        let tenancy = Tenancy::new();
        let id = tenancy.baseline_then_new_principal();
        tenancy.graph.add_fault(GraphFault::Forbidden {
            path: DIRECTORY_AUDITS_PATH.to_string(),
        });

        let (code, report, stderr) = tenancy.scan();
        assert_eq!(code, 1, "{report:#}");
        assert_eq!(report["summary"]["failed_scopes"], 0);
        let attribution = principal_attribution(&report, &id);
        assert_eq!(attribution["status"], "unavailable");
        let note = attribution["note"].as_str().expect("note");
        assert!(
            note.contains("HTTP 403 Authorization_RequestDenied"),
            "{note}"
        );
        assert!(stderr.contains("attribution unavailable"), "{stderr}");
    }

    #[test]
    fn no_audit_says_so() {
        let tenancy = Tenancy::new();
        let id = tenancy.baseline_then_new_principal();

        let (_, report, _) = tenancy.scan();
        let attribution = principal_attribution(&report, &id);
        assert_eq!(attribution["status"], "not_found");
        let note = attribution["note"].as_str().expect("note");
        assert!(note.starts_with("no matching event in "), "{note}");
    }
}

// Google Cloud: Cloud Logging entries:list over the Admin Activity log.

mod google {
    use super::*;
    use common::fake_cloudtrail::format_time;
    use common::fake_gcp::{
        FakeGcp, FakeProject, Fault as GcpFault, LOG_ENTRIES_LIST_PATH, Organization,
        audit_log_entry,
    };

    const PRINCIPAL: &str = "mallory@example.com";

    /// A fake project with a config that scans it and attributes its findings.
    struct Project {
        folder: TempDir,
        config: PathBuf,
        credentials: PathBuf,
        gcp: FakeGcp,
        id: String,
    }

    impl Project {
        fn new() -> Project {
            let project = FakeProject::sample(1);
            let id = project.project_id.clone();
            let gcp = FakeGcp::start(Organization {
                projects: vec![project],
            });
            let folder = tempfile::tempdir().expect("temporary folder");
            let credentials = folder.path().join("adc.json");
            std::fs::write(&credentials, gcp.authorized_user_json().to_string())
                .expect("write credentials");
            let config = folder.path().join("idrift.toml");
            let text = format!(
                "[retry]\nmax_attempts = 3\ninitial_backoff_ms = 10\nmax_backoff_ms = 50\n\
                 attempt_timeout_seconds = 10\n\n[gcp]\nprojects = [\"{id}\"]\n\
                 iam_url = \"{endpoint}\"\nresource_manager_url = \"{endpoint}\"\n\n\
                 [attribution]\nenabled = true\n\n[attribution.gcp]\nlogging_url = \"{endpoint}\"\n",
                endpoint = gcp.endpoint
            );
            std::fs::write(&config, text).expect("write the config");
            Project {
                folder,
                config,
                credentials,
                gcp,
                id,
            }
        }

        fn scan(&self) -> (i32, Value, String) {
            let mut command = common::idrift(self.folder.path());
            for (name, _) in std::env::vars() {
                if name.starts_with("GOOGLE_") || name.starts_with("GCE_") {
                    command.env_remove(name);
                }
            }
            command
                .env("GCE_METADATA_HOST", self.gcp.metadata_host())
                .env("GOOGLE_APPLICATION_CREDENTIALS", &self.credentials);
            scan_json(&mut command, &self.config, self.folder.path())
        }

        /// Scans the baseline, then adds account 2; returns its email.
        fn baseline_then_new_account(&self) -> String {
            let (code, report, stderr) = self.scan();
            assert_eq!(code, 0, "baseline: {report:#}\n{stderr}");
            let mut email = String::new();
            self.gcp.edit_organization(|organization| {
                let project = organization.project_mut(&self.id);
                let account = project.numbered_account(2);
                email = account.email.clone();
                project.service_accounts.push(account);
            });
            email
        }

        fn entry(&self, insert_id: &str, method: &str, age: i64, subject: &str) -> Value {
            let time = format_time(now() - age);
            audit_log_entry(insert_id, method, &time, &self.id, subject, PRINCIPAL)
        }
    }

    fn attribution_of<'a>(report: &'a Value, name: &str, change: &str) -> &'a Value {
        let finding = report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .find(|f| f["identity_name"] == name && f["change"] == change)
            .unwrap_or_else(|| panic!("no {change} finding about {name}: {report:#}"));
        &finding["attribution"]
    }

    #[test]
    fn account_creator_found() {
        let project = Project::new();
        let email = project.baseline_then_new_account();
        let create = "google.iam.admin.v1.CreateServiceAccount";
        project
            .gcp
            .add_log_entry(project.entry("entry-1", create, 5, &email));
        // A key for the account is not its creation.
        let key = "google.iam.admin.v1.CreateServiceAccountKey";
        project
            .gcp
            .add_log_entry(project.entry("entry-2", key, 4, &email));
        // Another account's creation.
        let other = format!("sa-099@{}.iam.gserviceaccount.com", project.id);
        project
            .gcp
            .add_log_entry(project.entry("entry-3", create, 3, &other));
        project.gcp.add_fault(GcpFault::Throttle {
            path: LOG_ENTRIES_LIST_PATH.to_string(),
            times: 1,
        });

        let (code, report, stderr) = project.scan();
        assert_eq!(code, 1, "{report:#}\n{stderr}");
        let event = single_event(attribution_of(&report, &email, "identity_added"));
        assert_eq!(event["actor"], PRINCIPAL);
        assert_eq!(event["event_id"], "entry-1");
        assert_eq!(event["event_name"], create);
        assert_eq!(event["source_ip"], "192.0.2.44");
        assert_eq!(event["user_agent"], "google-cloud-sdk gcloud/470.0.0");
        let command = event["open_command"].as_str().expect("open_command");
        assert!(
            command.starts_with("gcloud logging read 'insertId=\"entry-1\"'"),
            "{command}"
        );

        let requests = project.gcp.requests_for(LOG_ENTRIES_LIST_PATH);
        let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [429, 200]);
        let body = requests[1].body_json();
        assert_eq!(body["resourceNames"][0], format!("projects/{}", project.id));
        let filter = body["filter"].as_str().expect("filter");
        assert!(
            filter.contains("cloudaudit.googleapis.com%2Factivity"),
            "{filter}"
        );
    }

    #[test]
    fn policy_grant_pages_and_candidates() {
        let project = Project::new();
        project.baseline_then_new_account();
        let member = "user:eve@example.com";
        project.gcp.edit_organization(|organization| {
            organization
                .project_mut(&project.id)
                .grant("roles/editor", member);
        });
        project.gcp.set_page_size(1);
        project
            .gcp
            .add_log_entry(project.entry("grant-1", "SetIamPolicy", 9, member));
        project
            .gcp
            .add_log_entry(project.entry("grant-2", "SetIamPolicy", 5, member));

        let (_, report, _) = project.scan();
        let attribution = attribution_of(&report, "eve@example.com", "identity_added");
        let ids: Vec<&str> = attribution["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|event| event["event_id"].as_str().expect("event_id"))
            .collect();
        assert_eq!(ids, ["grant-1", "grant-2"], "{attribution:#}");
        let note = attribution["note"].as_str().expect("note");
        assert!(note.starts_with("2 matching events"), "{note}");
        let tokens = project
            .gcp
            .requests_for(LOG_ENTRIES_LIST_PATH)
            .iter()
            .filter(|request| request.body_json()["pageToken"].is_string())
            .count();
        assert!(tokens >= 1, "the second page is requested with its token");
    }

    #[test]
    fn missing_logging_permission_is_unavailable() {
        let project = Project::new();
        let email = project.baseline_then_new_account();
        project.gcp.add_fault(GcpFault::Forbidden {
            path: LOG_ENTRIES_LIST_PATH.to_string(),
        });

        let (code, report, stderr) = project.scan();
        assert_eq!(code, 1, "exit code as without attribution: {report:#}");
        assert_eq!(report["summary"]["failed_scopes"], 0);
        let attribution = attribution_of(&report, &email, "identity_added");
        assert_eq!(attribution["status"], "unavailable");
        let note = attribution["note"].as_str().expect("note");
        assert!(note.contains("HTTP 403 PERMISSION_DENIED"), "{note}");
        assert!(note.contains("roles/logging.viewer"), "{note}");
        assert!(stderr.contains("attribution unavailable"), "{stderr}");
    }
}
