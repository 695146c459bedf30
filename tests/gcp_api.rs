//! The Google Cloud collector end to end: the idrift binary, with its
//! google-cloud-auth credentials, against the project's fake Google Cloud on
//! 127.0.0.1. An `authorized_user` credential file whose `token_uri` is the
//! fake supplies the tokens, and `GCE_METADATA_HOST` points at the fake too,
//! so no request can leave the machine.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use common::fake_gcp::{
    FakeBinding, FakeGcp, FakeIssuer, FakeKey, FakePool, FakeProject, FakeProvider, Fault,
    LastPageToken, Organization, account_policy_path, default_compute_email, iam_policy_path,
    pools_path, providers_path, service_accounts_path,
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
    /// Writes a config whose `[gcp]` table contains `gcp` and the fake's URLs.
    fn new(fake: &FakeGcp, gcp: &str) -> Setup {
        let work = tempfile::tempdir().expect("temp dir");
        let credentials = work.path().join("adc.json");
        std::fs::write(&credentials, fake.authorized_user_json().to_string()).expect("write adc");
        let config = work.path().join("idrift.toml");
        let text = format!(
            "[retry]\nmax_attempts = {MAX_ATTEMPTS}\ninitial_backoff_ms = 10\nmax_backoff_ms = 50\n\
             attempt_timeout_seconds = 10\n\n[gcp]\n{gcp}\niam_url = \"{endpoint}\"\n\
             resource_manager_url = \"{endpoint}\"\n",
            endpoint = fake.endpoint
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

    fn snapshot(&self, project: &str) -> Value {
        let path = self.snapshots().join(format!("gcp/{project}.json"));
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read snapshot")).expect("JSON")
    }

    /// Runs `idrift scan` with an environment sealed to the fake.
    fn scan(&self, fake: &FakeGcp) -> Scan {
        let mut command = command(self.work.path(), fake);
        command
            .env("GOOGLE_APPLICATION_CREDENTIALS", &self.credentials)
            .arg("scan")
            .arg("--config")
            .arg(&self.config)
            .arg("--snapshots")
            .arg(self.snapshots())
            .args(["--format", "json"]);
        let (code, stdout, stderr) = run(&mut command);
        let report = serde_json::from_str(&stdout)
            .unwrap_or_else(|error| panic!("report is JSON: {error}\n{stdout}\n{stderr}"));
        Scan {
            code,
            report,
            stderr,
        }
    }
}

/// Returns the idrift command with no Google, cloud or proxy variables of
/// the caller, a temporary HOME and the metadata server at the fake.
fn command(home: &Path, fake: &FakeGcp) -> Command {
    let mut command = common::idrift(home);
    for (name, _) in std::env::vars() {
        let cloud = name.starts_with("GOOGLE_")
            || name.starts_with("GCE_")
            || name.starts_with("CLOUDSDK_")
            || name.to_ascii_lowercase().ends_with("_proxy");
        if cloud {
            command.env_remove(name);
        }
    }
    command.env("GCE_METADATA_HOST", fake.metadata_host());
    command
}

/// Starts the fake with one project and returns it with the project's id.
fn start_one(project: FakeProject) -> (FakeGcp, String) {
    let project_id = project.project_id.clone();
    let fake = FakeGcp::start(Organization {
        projects: vec![project],
    });
    (fake, project_id)
}

/// Returns the statuses the fake returned on a path, in order.
fn statuses(fake: &FakeGcp, path: &str) -> Vec<u16> {
    fake.requests_for(path)
        .iter()
        .map(|request| request.status)
        .collect()
}

fn finding_lines(report: &Value) -> Vec<String> {
    let mut lines: Vec<String> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|finding| {
            let verdict = if finding["expected"] == true {
                "expected"
            } else {
                "unexpected"
            };
            format!(
                "{} {} {} {verdict}",
                finding["change"].as_str().unwrap_or("?"),
                finding["identity_name"].as_str().unwrap_or("?"),
                finding["severity"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    lines.sort();
    lines
}

fn collection_status(snapshot: &Value, collection: &str) -> String {
    snapshot["collections"][collection]["status"]
        .as_str()
        .unwrap_or("missing")
        .to_string()
}

fn count_kind(snapshot: &Value, kind: &str) -> usize {
    snapshot["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .filter(|identity| identity["kind"] == kind)
        .count()
}

#[test]
fn gcp_day_two_is_judged() {
    let project = FakeProject::sample(1);
    let project_id = project.project_id.clone();
    let number = project.project_number;
    let fake = FakeGcp::start(Organization {
        projects: vec![project],
    });
    let setup = Setup::new(&fake, &format!("projects = [\"{project_id}\"]"));

    let baseline = setup.scan(&fake);
    assert_eq!(
        baseline.code, 0,
        "{:#}\n{}",
        baseline.report, baseline.stderr
    );
    let snapshot = setup.snapshot(&project_id);
    for collection in ["service_accounts", "service_account_keys", "iam_policy"] {
        assert_eq!(
            collection_status(&snapshot, collection),
            "complete",
            "{collection}"
        );
    }
    assert_eq!(count_kind(&snapshot, "gcp_service_account"), 2);
    // owner@example.com, the Google APIs agent and the Compute Engine agent.
    assert_eq!(count_kind(&snapshot, "gcp_principal"), 3);
    let text = snapshot.to_string();
    assert!(!text.contains("ya29."), "no token in the snapshot");

    let compute = default_compute_email(number);
    let pubsub_agent = format!("service-{number}@gcp-sa-pubsub.iam.gserviceaccount.com");
    let first_account = format!("sa-001@{project_id}.iam.gserviceaccount.com");
    fake.edit_organization(|organization| {
        let project = organization.project_mut(&project_id);
        let mut added = project.numbered_account(2);
        added.keys.push(FakeKey::user_managed(2002));
        project.service_accounts.push(added);
        let compute_account = project.account_mut(&compute);
        compute_account.keys = vec![FakeKey::system_managed(9001), FakeKey::user_managed(3003)];
        project.recreate_account(&first_account, 50);
        project.grant("roles/owner", "user:mallory@gmail.com");
        let agent = project.service_agent_member("pubsub");
        project
            .policy
            .bindings
            .push(FakeBinding::new("roles/pubsub.serviceAgent", &[&agent]));
    });

    let day_two = setup.scan(&fake);
    assert_eq!(day_two.code, 1, "{:#}\n{}", day_two.report, day_two.stderr);
    let mut expected = vec![
        format!("credential_added {compute} critical unexpected"),
        "identity_added mallory@gmail.com critical unexpected".to_string(),
        format!("identity_added {pubsub_agent} low expected"),
        format!("identity_added sa-002@{project_id}.iam.gserviceaccount.com high unexpected"),
        format!("identity_recreated {first_account} high unexpected"),
    ];
    expected.sort();
    assert_eq!(
        finding_lines(&day_two.report),
        expected,
        "{:#}",
        day_two.report
    );
}

#[test]
fn three_pages_are_read() {
    for last_page_token in [LastPageToken::Omitted, LastPageToken::Empty] {
        let (fake, project_id) = start_one(FakeProject::with_accounts(1, 300));
        fake.set_last_page_token(last_page_token);
        let setup = Setup::new(
            &fake,
            &format!("projects = [\"{project_id}\"]\npage_size = 100"),
        );

        let scan = setup.scan(&fake);
        assert_eq!(scan.code, 0, "{last_page_token:?}: {}", scan.stderr);
        let pages = fake.requests_for(&service_accounts_path(&project_id));
        assert_eq!(pages.len(), 3, "{last_page_token:?}");
        assert_eq!(pages[0].param("pageSize"), Some("100"));
        let snapshot = setup.snapshot(&project_id);
        assert_eq!(count_kind(&snapshot, "gcp_service_account"), 300);
        assert_eq!(
            collection_status(&snapshot, "service_account_keys"),
            "complete"
        );
        let metadata_path = setup
            .snapshots()
            .join(format!(".idrift/last-scan/gcp/{project_id}.json"));
        let metadata: Value =
            serde_json::from_str(&std::fs::read_to_string(metadata_path).expect("metadata"))
                .expect("JSON");
        // 3 pages, one key listing and one policy per account, the
        // project's policy, and one page of (no) workload identity pools.
        assert_eq!(metadata["api_calls"], json!(3 + 300 + 300 + 1 + 1));
    }
}

#[test]
fn repeated_page_token_is_incomplete() {
    let (fake, project_id) = start_one(FakeProject::with_accounts(1, 150));
    let setup = Setup::new(
        &fake,
        &format!("projects = [\"{project_id}\"]\npage_size = 100"),
    );
    assert_eq!(setup.scan(&fake).code, 0);

    fake.add_fault(Fault::RepeatedPageToken {
        path: service_accounts_path(&project_id),
    });
    let scan = setup.scan(&fake);
    assert_eq!(scan.code, 2, "{:#}", scan.report);
    let incomplete = scan.report["scopes"][0]["incomplete"].to_string();
    assert!(incomplete.contains("did not advance"), "{incomplete}");
    assert_eq!(
        scan.report["findings"],
        json!([]),
        "nothing reads as removed"
    );
    let snapshot = setup.snapshot(&project_id);
    assert_eq!(count_kind(&snapshot, "gcp_service_account"), 150, "kept");
}

#[test]
fn throttling_is_retried() {
    let (fake, project_id) = start_one(FakeProject::sample(1));
    fake.add_fault(Fault::Throttle {
        path: service_accounts_path(&project_id),
        times: 3,
    });
    fake.add_fault(Fault::Unavailable {
        path: iam_policy_path(&project_id),
        times: 2,
    });
    let setup = Setup::new(&fake, &format!("projects = [\"{project_id}\"]"));

    let scan = setup.scan(&fake);
    assert_eq!(scan.code, 0, "{:#}\n{}", scan.report, scan.stderr);
    let account_statuses: Vec<u16> = statuses(&fake, &service_accounts_path(&project_id));
    assert_eq!(account_statuses, vec![429, 429, 429, 200]);
    let policy_statuses: Vec<u16> = statuses(&fake, &iam_policy_path(&project_id));
    assert_eq!(policy_statuses, vec![503, 503, 200]);
    assert_eq!(
        collection_status(&setup.snapshot(&project_id), "iam_policy"),
        "complete"
    );
}

#[test]
fn throttled_out_is_incomplete() {
    let (fake, project_id) = start_one(FakeProject::sample(1));
    for path in [service_accounts_path(&project_id), pools_path(&project_id)] {
        fake.add_fault(Fault::Throttle {
            path,
            times: MAX_ATTEMPTS,
        });
    }
    let setup = Setup::new(&fake, &format!("projects = [\"{project_id}\"]"));

    // With no earlier snapshot, no collection is complete: policy members
    // cannot be matched to the unlisted accounts, and the pools were
    // throttled out too, so nothing is written.
    let first = setup.scan(&fake);
    assert_eq!(first.code, 2, "{:#}", first.report);
    let error = first.report["scopes"][0]["error"].to_string();
    assert!(error.contains("no collection could be listed"), "{error}");
    assert!(!setup.snapshots().join("gcp").exists());

    fake.clear_faults();
    assert_eq!(setup.scan(&fake).code, 0);
    fake.add_fault(Fault::Throttle {
        path: service_accounts_path(&project_id),
        times: MAX_ATTEMPTS,
    });
    let scan = setup.scan(&fake);
    assert_eq!(scan.code, 2, "{:#}", scan.report);
    assert_eq!(scan.report["findings"], json!([]), "no removals");
    let snapshot = setup.snapshot(&project_id);
    assert_eq!(
        collection_status(&snapshot, "service_accounts"),
        "incomplete"
    );
    assert_eq!(count_kind(&snapshot, "gcp_service_account"), 2, "kept");
    let incomplete = scan.report["scopes"][0]["incomplete"].to_string();
    assert!(
        incomplete.contains("429 RESOURCE_EXHAUSTED"),
        "{incomplete}"
    );
    assert!(incomplete.contains(&project_id), "{incomplete}");
}

#[test]
fn forbidden_project_is_incomplete() {
    let fake = FakeGcp::start(Organization::sample());
    let (first, second) = ("idrift-fake-01", "idrift-fake-02");
    let setup = Setup::new(&fake, &format!("projects = [\"{first}\", \"{second}\"]"));
    let baseline = setup.scan(&fake);
    assert_eq!(baseline.code, 0, "{}", baseline.stderr);

    fake.add_fault(Fault::PermissionDenied {
        project_id: second.to_string(),
    });
    let scan = setup.scan(&fake);
    assert_eq!(scan.code, 2, "{:#}", scan.report);
    assert_eq!(scan.report["findings"], json!([]), "no removals");
    let scopes = scan.report["scopes"].as_array().expect("scopes");
    let scope = |name: &str| {
        scopes
            .iter()
            .find(|scope| scope["scope"] == name)
            .unwrap_or_else(|| panic!("scope {name}"))
    };
    assert_eq!(scope(first)["incomplete"], json!([]));
    let denied = scope(second)["incomplete"].to_string();
    assert!(denied.contains("403 PERMISSION_DENIED"), "{denied}");
    assert!(denied.contains("roles/iam.securityReviewer"), "{denied}");

    let kept = setup.snapshot(second);
    assert_eq!(collection_status(&kept, "service_accounts"), "incomplete");
    assert_eq!(
        kept["collections"]["service_accounts"]["kept_previous"],
        true
    );
    assert_eq!(count_kind(&kept, "gcp_service_account"), 2);
    assert_eq!(
        collection_status(&setup.snapshot(first), "iam_policy"),
        "complete"
    );
}

#[test]
fn refused_token_is_replaced() {
    let (fake, project_id) = start_one(FakeProject::sample(1));
    fake.add_fault(Fault::RevokeToken {
        path: service_accounts_path(&project_id),
        page: 1,
    });
    let setup = Setup::new(&fake, &format!("projects = [\"{project_id}\"]"));

    let scan = setup.scan(&fake);
    assert_eq!(scan.code, 0, "{:#}\n{}", scan.report, scan.stderr);
    assert_eq!(
        fake.token_requests().len(),
        2,
        "a second token after the 401"
    );
    let account_statuses: Vec<u16> = statuses(&fake, &service_accounts_path(&project_id));
    assert_eq!(account_statuses, vec![401, 200]);
}

#[test]
fn metadata_server_supplies_tokens() {
    let (fake, project_id) = start_one(FakeProject::sample(1));
    let setup = Setup::new(&fake, &format!("projects = [\"{project_id}\"]"));
    // No credential file: application default credentials fall back to the
    // metadata server, which GCE_METADATA_HOST points at the fake.
    let mut command = command(setup.work.path(), &fake);
    command
        .arg("scan")
        .arg("--config")
        .arg(&setup.config)
        .arg("--snapshots")
        .arg(setup.snapshots())
        .args(["--format", "json"]);
    let (code, stdout, stderr) = run(&mut command);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let tokens = fake.token_requests();
    assert_eq!(tokens.len(), 1);
    assert!(tokens[0].is_metadata_request(), "{:?}", tokens[0].path);
    assert_eq!(
        collection_status(&setup.snapshot(&project_id), "iam_policy"),
        "complete"
    );
}

#[test]
fn organization_is_discovered() {
    let mut organization = Organization::sample();
    organization.projects[1].parent = "folders/777".to_string();
    let mut doomed = FakeProject::sample(3);
    doomed.state = "DELETE_REQUESTED".to_string();
    organization.projects.push(doomed);
    let fake = FakeGcp::start(organization);
    let setup = Setup::new(
        &fake,
        "discover = [\"organizations/123456789012\"]\nexclude = [\"idrift-fake-01\"]",
    );

    let scan = setup.scan(&fake);
    assert_eq!(scan.code, 0, "{:#}\n{}", scan.report, scan.stderr);
    let scopes: Vec<&str> = scan.report["scopes"]
        .as_array()
        .expect("scopes")
        .iter()
        .map(|scope| scope["scope"].as_str().unwrap_or("?"))
        .collect();
    // Project 1 is excluded, 2 is found in folders/777, 3 is being deleted.
    assert_eq!(scopes, vec!["idrift-fake-02"]);
}

#[test]
fn unknown_organization_fails() {
    let fake = FakeGcp::start(Organization::sample());
    let setup = Setup::new(&fake, "discover = [\"organizations/999\"]");
    let scan = setup.scan(&fake);
    assert_eq!(scan.code, 2, "{:#}", scan.report);
    let error = scan.report["scopes"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("organizations/999"), "{error}");
    assert!(error.contains("roles/browser"), "{error}");
}

#[test]
fn malformed_credential_file_fails() {
    let fake = FakeGcp::start(Organization::sample());
    let setup = Setup::new(&fake, "projects = [\"idrift-fake-01\"]");
    std::fs::write(&setup.credentials, "{\"type\": \"authorized_user\", ").expect("write");
    let scan = setup.scan(&fake);
    assert_eq!(scan.code, 2, "{:#}", scan.report);
    let error = scan.report["scopes"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("adc.json"), "{error}");
    assert!(error.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{error}");
    assert_eq!(scan.report["scopes"][0]["provider"], "gcp");
    assert!(!setup.snapshots().join("gcp").exists(), "nothing written");
    assert!(fake.requests().is_empty(), "no request was sent");
}

#[test]
fn unreachable_token_endpoint_fails_project() {
    let fake = FakeGcp::start(Organization::sample());
    let setup = Setup::new(&fake, "projects = [\"idrift-fake-01\"]");
    let mut adc = fake.authorized_user_json();
    adc["token_uri"] = json!("http://127.0.0.1:1/token");
    std::fs::write(&setup.credentials, adc.to_string()).expect("write");
    let scan = setup.scan(&fake);
    assert_eq!(scan.code, 2, "{:#}", scan.report);
    let error = scan.report["scopes"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(scan.report["scopes"][0]["scope"], "idrift-fake-01");
    assert!(error.contains("access token"), "{error}");
    assert!(!error.contains("ya29."), "{error}");
}

#[test]
fn bad_project_id_is_a_config_error() {
    let fake = FakeGcp::start(Organization::sample());
    let setup = Setup::new(&fake, "projects = [\"My Project\"]");
    let scan = setup.scan(&fake);
    assert_eq!(scan.code, 2);
    let error = scan.report["errors"][0].as_str().unwrap_or_default();
    assert!(error.contains("gcp.projects[0]"), "{error}");
    assert!(error.contains("not a project id"), "{error}");
    assert!(fake.requests().is_empty());
}

/// Returns the findings of a scan about one identity name and change.
fn findings_of<'a>(report: &'a Value, change: &str, name: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|finding| finding["change"] == change && finding["identity_name"] == name)
        .collect()
}

/// Returns the one finding whose evidence names `member` as the credential.
fn grant_finding<'a>(report: &'a Value, member: &str) -> &'a Value {
    let found: Vec<&Value> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|finding| finding["evidence"]["credential_name"] == member)
        .collect();
    assert_eq!(found.len(), 1, "{member}: {report:#}");
    found[0]
}

/// Builds sample project 1 with a pool `ci` that trusts GitHub Actions of
/// one organization.
fn project_with_pool() -> FakeProject {
    let mut project = FakeProject::sample(1);
    let mut pool = FakePool::new("ci");
    let mut actions = FakeProvider::new("actions", FakeIssuer::github());
    actions.attribute_condition = Some("assertion.repository_owner == 'example'".to_string());
    pool.providers.push(actions);
    project.pools.push(pool);
    project
}

#[test]
fn impersonation_and_providers_are_judged() {
    let (fake, project_id) = start_one(project_with_pool());
    let number = FakeProject::sample(1).project_number;
    let setup = Setup::new(&fake, &format!("projects = [\"{project_id}\"]"));
    let baseline = setup.scan(&fake);
    assert_eq!(
        baseline.code, 0,
        "{:#}\n{}",
        baseline.report, baseline.stderr
    );
    let snapshot = setup.snapshot(&project_id);
    for collection in ["service_account_policies", "workload_identity_providers"] {
        assert_eq!(
            collection_status(&snapshot, collection),
            "complete",
            "{collection}"
        );
    }
    assert_eq!(count_kind(&snapshot, "gcp_workload_identity_provider"), 1);
    let policy_requests = fake.requests_for(&account_policy_path(
        &project_id,
        &format!("sa-001@{project_id}.iam.gserviceaccount.com"),
    ));
    assert_eq!(policy_requests.len(), 1);
    assert_eq!(policy_requests[0].method, "POST");
    assert_eq!(
        policy_requests[0].body_json()["options"]["requestedPolicyVersion"],
        3
    );

    let compute = default_compute_email(number);
    let first = format!("sa-001@{project_id}.iam.gserviceaccount.com");
    let scheduler =
        format!("serviceAccount:service-{number}@gcp-sa-cloudscheduler.iam.gserviceaccount.com");
    let federated = "principalSet://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/ci/attribute.repository/evil/repo";
    fake.edit_organization(|organization| {
        let project = organization.project_mut(&project_id);
        let account = project.account_mut(&first);
        account.grant(
            "roles/iam.serviceAccountTokenCreator",
            "user:mallory@gmail.com",
        );
        account.grant("roles/iam.serviceAccountTokenCreator", &scheduler);
        // The default compute account has roles/editor on the project.
        let compute_account = project.account_mut(&compute);
        compute_account.grant(
            "roles/iam.serviceAccountUser",
            &format!("serviceAccount:{first}"),
        );
        compute_account.grant("roles/iam.workloadIdentityUser", federated);
        let pool = project.pool_mut("ci");
        pool.providers[0].issuer = FakeIssuer::Oidc {
            issuer_uri: "https://tokens.evil.example".to_string(),
            allowed_audiences: Vec::new(),
            jwks_json: None,
        };
        pool.providers.push(FakeProvider::new(
            "aws",
            FakeIssuer::Aws {
                account_id: "999988887777".to_string(),
            },
        ));
    });

    let day_two = setup.scan(&fake);
    assert_eq!(day_two.code, 1, "{:#}\n{}", day_two.report, day_two.stderr);
    let mut expected = vec![
        "attribute_changed ci/actions high unexpected".to_string(),
        format!("credential_added {compute} critical unexpected"),
        format!("credential_added {compute} high unexpected"),
        format!("credential_added {first} high unexpected"),
        format!("credential_added {first} low expected"),
        "identity_added ci/aws high unexpected".to_string(),
    ];
    expected.sort();
    assert_eq!(
        finding_lines(&day_two.report),
        expected,
        "{:#}",
        day_two.report
    );

    let outsider = grant_finding(&day_two.report, "user:mallory@gmail.com");
    assert_eq!(outsider["severity"], "high");
    assert_eq!(outsider["technique"]["id"], "T1548.005");
    assert_eq!(
        outsider["summary"],
        format!(
            "user:mallory@gmail.com can now impersonate service account {first} through roles/iam.serviceAccountTokenCreator"
        )
    );
    assert_eq!(
        outsider["response"][0],
        format!(
            "gcloud iam service-accounts remove-iam-policy-binding {first} --member=user:mallory@gmail.com --role=roles/iam.serviceAccountTokenCreator --project={project_id} --all"
        )
    );
    let agent = grant_finding(&day_two.report, &scheduler);
    assert_eq!(agent["expected"], true);
    assert!(
        agent["expected_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("service agent"),
        "{agent:#}"
    );
    let own = grant_finding(&day_two.report, &format!("serviceAccount:{first}"));
    assert_eq!(
        own["severity"], "high",
        "own account, but the target is an editor"
    );
    let pool_member = grant_finding(&day_two.report, federated);
    assert_eq!(pool_member["severity"], "critical");

    let new_provider = &findings_of(&day_two.report, "identity_added", "ci/aws")[0];
    assert_eq!(new_provider["technique"]["id"], "T1098.001");
    assert_eq!(new_provider["evidence"]["issuer"], "999988887777");
    assert_eq!(
        new_provider["response"][0],
        format!(
            "gcloud iam workload-identity-pools providers disable aws --workload-identity-pool=ci --location=global --project={project_id}"
        )
    );
    let changed = &findings_of(&day_two.report, "attribute_changed", "ci/actions")[0];
    assert_eq!(changed["technique"]["id"], "T1098.001");
    assert!(
        changed["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("https://tokens.evil.example"),
        "{changed:#}"
    );
}

#[test]
fn forbidden_account_policy_is_unlisted() {
    let mut project = FakeProject::sample(1);
    let number = project.project_number;
    let project_id = project.project_id.clone();
    let first = format!("sa-001@{project_id}.iam.gserviceaccount.com");
    let first_id = project.account_mut(&first).unique_id.clone();
    project.account_mut(&first).grant(
        "roles/iam.serviceAccountTokenCreator",
        "user:ci@example.com",
    );
    let (fake, project_id) = start_one(project);
    let setup = Setup::new(&fake, &format!("projects = [\"{project_id}\"]"));
    let baseline = setup.scan(&fake);
    assert_eq!(
        baseline.code, 0,
        "{:#}\n{}",
        baseline.report, baseline.stderr
    );

    // The grant goes away, but the policy cannot be read: nothing may read
    // as removed. A grant on the other account is still reported.
    let compute = default_compute_email(number);
    fake.edit_organization(|organization| {
        let project = organization.project_mut(&project_id);
        project.account_mut(&first).policy.bindings.clear();
        project
            .account_mut(&compute)
            .grant("roles/iam.serviceAccountKeyAdmin", "user:eve@example.com");
    });
    fake.add_fault(Fault::Forbidden {
        path: account_policy_path(&project_id, &first),
    });
    let scan = setup.scan(&fake);
    assert_eq!(scan.code, 2, "{:#}\n{}", scan.report, scan.stderr);
    assert_eq!(
        finding_lines(&scan.report),
        vec![format!("credential_added {compute} critical unexpected")],
        "{:#}",
        scan.report
    );
    let incomplete = scan.report["scopes"][0]["incomplete"].to_string();
    assert!(incomplete.contains("403 PERMISSION_DENIED"), "{incomplete}");
    assert!(incomplete.contains(&first), "{incomplete}");
    let snapshot = setup.snapshot(&project_id);
    let policies = &snapshot["collections"]["service_account_policies"];
    assert_eq!(policies["status"], "incomplete");
    assert_eq!(policies["unlisted"], json!([first_id]));
    assert_eq!(policies["kept_previous"], true);
    assert!(
        snapshot.to_string().contains("user:ci@example.com"),
        "the unread grant is kept"
    );
    assert_eq!(
        collection_status(&snapshot, "service_account_keys"),
        "complete"
    );

    // Once the policy can be read again, the removal shows.
    fake.clear_faults();
    let later = setup.scan(&fake);
    assert_eq!(later.code, 0, "{:#}", later.report);
    assert_eq!(
        finding_lines(&later.report),
        vec![format!("credential_removed {first} info unexpected")]
    );
}

#[test]
fn pools_and_providers_page() {
    let mut project = FakeProject::numbered(1);
    for pool in 1..=5 {
        project.pools.push(FakePool::new(&format!("pool-{pool}")));
    }
    let mut big = FakePool::new("big");
    for provider in 1..=7 {
        big.providers.push(FakeProvider::new(
            &format!("provider-{provider}"),
            FakeIssuer::github(),
        ));
    }
    let mut deleted = FakeProvider::new("deleted", FakeIssuer::github());
    deleted.state = "DELETED".to_string();
    big.providers.push(deleted);
    project.pools.push(big);
    let (fake, project_id) = start_one(project);
    fake.set_page_size(2);
    fake.add_fault(Fault::Throttle {
        path: providers_path(&project_id, "big"),
        times: 1,
    });
    let setup = Setup::new(&fake, &format!("projects = [\"{project_id}\"]"));

    let scan = setup.scan(&fake);
    assert_eq!(scan.code, 0, "{:#}\n{}", scan.report, scan.stderr);
    let pool_pages = fake.requests_for(&pools_path(&project_id));
    assert_eq!(pool_pages.len(), 3, "6 pools, 2 a page");
    assert_eq!(pool_pages[0].param("showDeleted"), None);
    assert_eq!(
        statuses(&fake, &providers_path(&project_id, "big")),
        vec![429, 200, 200, 200, 200],
        "7 providers, 2 a page, after one 429"
    );
    let snapshot = setup.snapshot(&project_id);
    assert_eq!(count_kind(&snapshot, "gcp_workload_identity_provider"), 7);
    assert!(
        !snapshot.to_string().contains("big/deleted"),
        "a deleted provider accepts no tokens and is left out"
    );

    // One pool's providers cannot be listed: the collection is incomplete
    // and keeps every provider, so none reads as removed.
    fake.add_fault(Fault::Forbidden {
        path: providers_path(&project_id, "big"),
    });
    let scan = setup.scan(&fake);
    assert_eq!(scan.code, 2, "{:#}", scan.report);
    assert_eq!(scan.report["findings"], json!([]), "no removals");
    let snapshot = setup.snapshot(&project_id);
    let providers = &snapshot["collections"]["workload_identity_providers"];
    assert_eq!(providers["status"], "incomplete");
    assert_eq!(providers["kept_previous"], true);
    assert_eq!(count_kind(&snapshot, "gcp_workload_identity_provider"), 7);
    let incomplete = scan.report["scopes"][0]["incomplete"].to_string();
    assert!(
        incomplete.contains("iam.workloadIdentityPoolProviders.list"),
        "{incomplete}"
    );
}
