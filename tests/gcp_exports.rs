//! Google Cloud offline input: `gcloud` exports of a project on two days,
//! judged, and public API recordings read with counts checked by hand.

mod common;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use common::{idrift, public_fixtures, run};

const PROJECT: &str = "demo-project";
const COMPUTE: &str = "123456789012-compute@developer.gserviceaccount.com";
const AGENT: &str = "service-123456789012@compute-system.iam.gserviceaccount.com";

fn write(path: &Path, value: &Value) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create folder");
    std::fs::write(
        path,
        serde_json::to_string_pretty(value).expect("serialize"),
    )
    .expect("write");
}

fn account(unique_id: &str, name: &str) -> Value {
    let email = if name.contains('@') {
        name.to_string()
    } else {
        format!("{name}@{PROJECT}.iam.gserviceaccount.com")
    };
    json!({"name": format!("projects/{PROJECT}/serviceAccounts/{email}"), "projectId": PROJECT,
           "uniqueId": unique_id, "email": email, "displayName": name,
           "etag": "MDEwMjE5MjA=", "oauth2ClientId": unique_id})
}

fn key(email: &str, id: &str, key_type: &str) -> Value {
    json!({"name": format!("projects/{PROJECT}/serviceAccounts/{email}/keys/{id}"),
           "keyAlgorithm": "KEY_ALG_RSA_2048", "keyOrigin": "GOOGLE_PROVIDED", "keyType": key_type,
           "validAfterTime": "2024-05-01T10:00:00Z", "validBeforeTime": "9999-12-31T23:59:59Z"})
}

/// One day's `gcloud` output for the project.
struct Day {
    accounts: Vec<Value>,
    keys: Vec<(String, Vec<Value>)>,
    bindings: Vec<Value>,
}

impl Day {
    fn first() -> Day {
        let app = format!("app@{PROJECT}.iam.gserviceaccount.com");
        let old = format!("old@{PROJECT}.iam.gserviceaccount.com");
        Day {
            accounts: vec![
                account("100000000000000001001", "app"),
                account("100000000000000001002", COMPUTE),
                account("100000000000000001003", "old"),
            ],
            keys: vec![
                (
                    app.clone(),
                    vec![
                        key(
                            &app,
                            "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
                            "USER_MANAGED",
                        ),
                        key(
                            &app,
                            "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e01",
                            "SYSTEM_MANAGED",
                        ),
                    ],
                ),
                (
                    COMPUTE.to_string(),
                    vec![key(
                        COMPUTE,
                        "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e02",
                        "SYSTEM_MANAGED",
                    )],
                ),
                (old, Vec::new()),
            ],
            bindings: vec![
                json!({"role": "roles/editor", "members": [format!("serviceAccount:{COMPUTE}")]}),
                json!({"role": "roles/owner", "members": ["user:admin@example.com"]}),
                json!({"role": "roles/viewer", "members": [format!("serviceAccount:{app}")]}),
                json!({"role": "roles/compute.serviceAgent", "members": [format!("serviceAccount:{AGENT}")]}),
            ],
        }
    }

    /// Day 2: a new account with a key, a user-managed key on the default
    /// compute account, `old` deleted and created again, owner to an
    /// outside user, a new service agent, and a system-managed key rotation.
    fn second() -> Day {
        let mut day = Day::first();
        let new = format!("new@{PROJECT}.iam.gserviceaccount.com");
        day.accounts.push(account("100000000000000001004", "new"));
        day.keys.push((
            new.clone(),
            vec![key(
                &new,
                "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2",
                "USER_MANAGED",
            )],
        ));
        day.keys[1].1.push(key(
            COMPUTE,
            "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3",
            "USER_MANAGED",
        ));
        day.accounts[2] = account("100000000000000001005", "old");
        day.bindings
            .push(json!({"role": "roles/owner", "members": ["user:mallory@gmail.com"]}));
        day.bindings.push(json!({"role": "roles/pubsub.serviceAgent",
            "members": ["serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com"]}));
        let app = day.keys[0].0.clone();
        day.keys[0].1[1] = key(
            &app,
            "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e03",
            "SYSTEM_MANAGED",
        );
        day
    }

    fn write_to(&self, root: &Path) -> PathBuf {
        let folder = root.join("gcp").join(PROJECT);
        write(
            &folder.join("service-accounts.json"),
            &Value::from(self.accounts.clone()),
        );
        for (email, keys) in &self.keys {
            write(
                &folder.join(format!("keys-{email}.json")),
                &Value::from(keys.clone()),
            );
        }
        write(
            &folder.join("iam-policy.json"),
            &json!({"version": 1, "etag": "BwYGazsSkKc=", "bindings": self.bindings}),
        );
        root.to_path_buf()
    }
}

fn scan(home: &Path, export: &Path, snapshots: &Path) -> (i32, Value, String) {
    let (code, stdout, stderr) = run(idrift(home)
        .arg("scan")
        .arg("--from-export")
        .arg(export)
        .arg("--snapshots")
        .arg(snapshots)
        .args(["--format", "json"]));
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("report is JSON: {error}\n{stdout}\n{stderr}"));
    (code, report, stderr)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("JSON")
}

fn finding_lines(report: &Value) -> Vec<String> {
    let mut seen: Vec<String> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|finding| {
            format!(
                "{} {} {} {}",
                finding["change"].as_str().unwrap_or("?"),
                finding["identity_name"].as_str().unwrap_or("?"),
                finding["severity"].as_str().unwrap_or("?"),
                if finding["expected"] == true {
                    "expected"
                } else {
                    "unexpected"
                }
            )
        })
        .collect();
    seen.sort();
    seen
}

#[test]
fn gcp_day_two_is_judged() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let day_1 = Day::first().write_to(&work.path().join("day-1"));
    let (code, report, stderr) = scan(work.path(), &day_1, &snapshots);
    assert_eq!(code, 0, "{report:#}\n{stderr}");

    let snapshot_path = snapshots.join(format!("gcp/{PROJECT}.json"));
    let snapshot = read_json(&snapshot_path);
    for collection in ["service_accounts", "service_account_keys", "iam_policy"] {
        assert_eq!(
            snapshot["collections"][collection]["status"], "complete",
            "{collection}"
        );
    }
    let text = snapshot.to_string();
    assert!(
        !text.contains("5e5e5e5e"),
        "system-managed keys are not recorded"
    );
    assert!(!text.contains("etag"), "no volatile fields");

    let day_2 = Day::second().write_to(&work.path().join("day-2"));
    let (code, report, stderr) = scan(work.path(), &day_2, &snapshots);
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    let expected = vec![
        format!("credential_added {COMPUTE} critical unexpected"),
        format!("identity_added mallory@gmail.com critical unexpected"),
        format!("identity_added new@{PROJECT}.iam.gserviceaccount.com high unexpected"),
        "identity_added service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com low expected"
            .to_string(),
        format!("identity_recreated old@{PROJECT}.iam.gserviceaccount.com high unexpected"),
    ];
    assert_eq!(finding_lines(&report), expected, "{report:#}");

    let findings = report["findings"].as_array().expect("findings");
    let owner = findings
        .iter()
        .find(|finding| finding["identity_name"] == "mallory@gmail.com")
        .expect("owner finding");
    assert_eq!(owner["technique"]["id"], "T1136.003");
    assert_eq!(
        owner["response"][0],
        "gcloud projects remove-iam-policy-binding demo-project --member=user:mallory@gmail.com --role=roles/owner --all"
    );
    let key = findings
        .iter()
        .find(|finding| finding["change"] == "credential_added")
        .expect("key finding");
    assert_eq!(
        key["response"][0],
        format!(
            "gcloud iam service-accounts keys disable c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3 --iam-account={COMPUTE} --project=demo-project"
        )
    );
    assert_eq!(key["technique"]["id"], "T1098.001");
}

#[test]
fn three_clouds_share_one_report() {
    let work = tempfile::tempdir().expect("temp dir");
    let export = Day::first().write_to(&work.path().join("export"));
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo/day-1/aws/111122223333");
    let aws_folder = export.join("aws/111122223333");
    std::fs::create_dir_all(&aws_folder).expect("aws folder");
    for entry in std::fs::read_dir(demo).expect("demo").flatten() {
        std::fs::copy(entry.path(), aws_folder.join(entry.file_name())).expect("copy demo file");
    }
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    write(
        &export.join(format!("azure/{tenant}/users.json")),
        &json!([{"id": "u-alice", "userPrincipalName": "alice@contoso.com", "userType": "Member"}]),
    );

    let snapshots = work.path().join("snapshots");
    let (code, report, stderr) = scan(work.path(), &export, &snapshots);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let mut scopes: Vec<String> = report["scopes"]
        .as_array()
        .expect("scopes")
        .iter()
        .map(|scope| {
            format!(
                "{} {}",
                scope["provider"].as_str().unwrap_or("?"),
                scope["scope"].as_str().unwrap_or("?")
            )
        })
        .collect();
    scopes.sort();
    assert_eq!(
        scopes,
        vec![
            "aws 111122223333".to_string(),
            format!("azure {tenant}"),
            format!("gcp {PROJECT}")
        ]
    );
    for file in [
        "aws/111122223333.json".to_string(),
        format!("azure/{tenant}.json"),
        format!("gcp/{PROJECT}.json"),
    ] {
        assert!(snapshots.join(&file).is_file(), "{file}");
    }
}

#[test]
fn missing_key_files_are_not_empty() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let day_1 = Day::first().write_to(&work.path().join("day-1"));
    let (code, report, _) = scan(work.path(), &day_1, &snapshots);
    assert_eq!(code, 0, "{report:#}");

    // Day 2 lacks the app account's key file: its key is kept, not removed.
    let day_2 = Day::first().write_to(&work.path().join("day-2"));
    std::fs::remove_file(day_2.join(format!(
        "gcp/{PROJECT}/keys-app@{PROJECT}.iam.gserviceaccount.com.json"
    )))
    .expect("remove key file");
    let (code, report, _) = scan(work.path(), &day_2, &snapshots);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["findings"], json!([]), "{report:#}");
    let incomplete = report["scopes"][0]["incomplete"].to_string();
    assert!(incomplete.contains("service_account_keys"), "{incomplete}");
    assert!(
        incomplete.contains("(1 service account without one)"),
        "{incomplete}"
    );
    let not_compared = report["scopes"][0]["not_compared"].to_string();
    assert!(
        not_compared.contains("new snapshot, for 1 identity only"),
        "{not_compared}"
    );
    let snapshot = read_json(&snapshots.join(format!("gcp/{PROJECT}.json")));
    assert!(snapshot.to_string().contains("a1a1a1a1"), "the key is kept");

    // Without a policy file, the policy is not collected: a source absent
    // by choice is not a failure, and nothing reads as removed.
    let day_3 = Day::first().write_to(&work.path().join("day-3"));
    std::fs::remove_file(day_3.join(format!("gcp/{PROJECT}/iam-policy.json"))).expect("remove");
    let (code, report, _) = scan(work.path(), &day_3, &snapshots);
    assert_eq!(code, 0, "{report:#}");
    let not_compared = report["scopes"][0]["not_compared"].to_string();
    assert!(not_compared.contains("iam_policy"), "{not_compared}");
    assert_eq!(report["findings"], json!([]), "{report:#}");
}

#[test]
fn bad_project_folder_is_rejected() {
    let work = tempfile::tempdir().expect("temp dir");
    let export = work.path().join("export");
    write(
        &export.join("gcp/Bad_Project/service-accounts.json"),
        &json!([]),
    );
    let (code, report, _) = scan(work.path(), &export, &work.path().join("snapshots"));
    assert_eq!(code, 2, "{report:#}");
    let error = report["errors"][0].as_str().expect("error");
    assert!(error.contains("Bad_Project"), "{error}");
    assert!(error.contains("project id"), "{error}");
}

/// Lays out the public gcpdiag recordings of project `gcpdiag-gce3-aaaa`.
fn public_project(root: &Path) -> PathBuf {
    let public = public_fixtures().join("gcp");
    let folder = root.join("gcp/gcpdiag-gce3-aaaa");
    std::fs::create_dir_all(&folder).expect("folder");
    for name in [
        "gcpdiag-gce3-iam-service-accounts.json",
        "gcpdiag-gce3-project-iam-policy.json",
    ] {
        std::fs::copy(public.join(name), folder.join(name)).expect("copy");
    }
    let accounts = read_json(&public.join("gcpdiag-gce3-iam-service-accounts.json"));
    for account in accounts["accounts"].as_array().expect("accounts") {
        let email = account["email"].as_str().expect("email");
        write(&folder.join(format!("keys-{email}.json")), &json!([]));
    }
    root.to_path_buf()
}

#[test]
fn public_gcpdiag_project_parses() {
    let work = tempfile::tempdir().expect("temp dir");
    let export = public_project(&work.path().join("export"));
    let snapshots = work.path().join("snapshots");
    let (code, report, stderr) = scan(work.path(), &export, &snapshots);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let snapshot = read_json(&snapshots.join("gcp/gcpdiag-gce3-aaaa.json"));
    let identities = snapshot["identities"].as_array().expect("identities");
    let count = |kind: &str| {
        identities
            .iter()
            .filter(|identity| identity["kind"] == kind)
            .count()
    };
    // 6 service accounts; the policy names 46 members, 3 of them those accounts.
    assert_eq!(count("gcp_service_account"), 6);
    assert_eq!(count("gcp_principal"), 43);

    let appspot = identities
        .iter()
        .find(|identity| identity["name"] == "gcpdiag-gce3-aaaa@appspot.gserviceaccount.com")
        .expect("App Engine account");
    assert_eq!(appspot["admin_grants"][0]["policy"], "roles/editor");
    let user = identities
        .iter()
        .find(|identity| identity["id"] == "user:testuser@example.com")
        .expect("test user");
    let grants: Vec<&str> = user["admin_grants"]
        .as_array()
        .expect("grants")
        .iter()
        .map(|grant| grant["policy"].as_str().unwrap_or("?"))
        .collect();
    assert!(grants.contains(&"roles/aiplatform.admin"), "{grants:?}");
    assert!(
        !grants.contains(&"roles/iam.serviceAccountTokenCreator"),
        "{grants:?}"
    );
}

#[test]
fn public_recordings_are_recognized() {
    let public = public_fixtures().join("gcp");
    let work = tempfile::tempdir().expect("temp dir");
    let folder = work.path().join("export/gcp/cloud-custodian");
    std::fs::create_dir_all(&folder).expect("folder");
    // Recordings wrap the API response as {"headers", "body"}.
    for name in [
        "custodian-sa-keys-list.json",
        "custodian-org-iam-policy.json",
        "custodian-projects-list.json",
    ] {
        std::fs::copy(public.join(name), folder.join(name)).expect("copy");
    }
    let accounts = json!([account(
        "100000000000000002001",
        "test-cutodian-scc@cloud-custodian.iam.gserviceaccount.com"
    )]);
    write(&folder.join("service-accounts.json"), &accounts);
    let snapshots = work.path().join("snapshots");
    let (code, report, stderr) = scan(work.path(), &work.path().join("export"), &snapshots);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let snapshot = read_json(&snapshots.join("gcp/cloud-custodian.json"));
    let identities = snapshot["identities"].as_array().expect("identities");
    let account = identities
        .iter()
        .find(|identity| identity["kind"] == "gcp_service_account")
        .expect("account");
    // One user-managed key (id 2); the system-managed key 1 is not recorded.
    assert_eq!(account["credentials"].as_array().map(Vec::len), Some(1));
    assert_eq!(account["credentials"][0]["id"], "2");
    // The org policy names 7 members: 2 service accounts, 2 users, a
    // group, allUsers and one malformed member ("abcdefg").
    let principals: Vec<&str> = identities
        .iter()
        .filter(|identity| identity["kind"] == "gcp_principal")
        .map(|identity| identity["id"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(principals.len(), 7, "{principals:?}");
    let everyone = identities
        .iter()
        .find(|identity| identity["id"] == "allUsers")
        .expect("allUsers");
    assert_eq!(everyone["admin_grants"][0]["policy"], "roles/editor");
}

#[test]
fn domain_scoped_project_is_saved() {
    let work = tempfile::tempdir().expect("temp dir");
    let folder = work.path().join("export/gcp/example.com:tools-1");
    write(
        &folder.join("service-accounts.json"),
        &json!([account(
            "100000000000000003001",
            "app@tools-1.example.com.iam.gserviceaccount.com"
        )]),
    );
    let snapshots = work.path().join("snapshots");
    let (code, report, stderr) = scan(work.path(), &work.path().join("export"), &snapshots);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert!(snapshots.join("gcp/example.com:tools-1.json").is_file());
    // The scan metadata is kept out of git by a .gitignore of its own.
    let ignore =
        std::fs::read_to_string(snapshots.join(".idrift/.gitignore")).expect("ignore file");
    assert!(ignore.lines().any(|line| line == "*"), "{ignore}");
}

const POOLS: &str = "projects/123456789012/locations/global/workloadIdentityPools";

fn provider(pool: &str, id: &str, issuer_uri: &str) -> Value {
    json!({"name": format!("{POOLS}/{pool}/providers/{id}"), "displayName": id, "state": "ACTIVE",
           "attributeMapping": {"google.subject": "assertion.sub"},
           "attributeCondition": "assertion.repository_owner == 'example'",
           "oidc": {"issuerUri": issuer_uri}})
}

/// Writes a day's service account policies and workload identity files
/// beside the other exports: `policies` by account email, and the
/// providers of pool `ci`. Pool `empty` has no providers.
fn write_trust(folder: &Path, policies: &[(&str, Value)], providers: &[Value]) {
    for (email, policy) in policies {
        write(&folder.join(format!("sa-policy-{email}.json")), policy);
    }
    let pools: Vec<Value> = ["ci", "empty"]
        .iter()
        .map(|pool| json!({"name": format!("{POOLS}/{pool}"), "displayName": pool, "state": "ACTIVE"}))
        .collect();
    write(
        &folder.join("workload-identity-pools.json"),
        &Value::from(pools),
    );
    write(
        &folder.join("providers-ci.json"),
        &Value::from(providers.to_vec()),
    );
    write(&folder.join("providers-empty.json"), &json!([]));
}

#[test]
fn gcp_impersonation_exports_are_judged() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let app = format!("app@{PROJECT}.iam.gserviceaccount.com");
    let old = format!("old@{PROJECT}.iam.gserviceaccount.com");
    let empty = json!({"etag": "ACAB"});
    let compute_policy = json!({"version": 1, "etag": "BwYGazsSkKc=", "bindings": [
        {"role": "roles/iam.serviceAccountUser", "members": [format!("serviceAccount:{app}")]}]});
    let github = "https://token.actions.githubusercontent.com";

    let day_1 = Day::first().write_to(&work.path().join("day-1"));
    let folder_1 = day_1.join("gcp").join(PROJECT);
    let policies_1 = [
        (app.as_str(), empty.clone()),
        (COMPUTE, compute_policy.clone()),
        (old.as_str(), empty.clone()),
    ];
    write_trust(&folder_1, &policies_1, &[provider("ci", "actions", github)]);
    let (code, report, stderr) = scan(work.path(), &day_1, &snapshots);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let snapshot = read_json(&snapshots.join(format!("gcp/{PROJECT}.json")));
    for collection in ["service_account_policies", "workload_identity_providers"] {
        assert_eq!(
            snapshot["collections"][collection]["status"], "complete",
            "{collection}"
        );
    }
    let text = snapshot.to_string();
    assert!(
        text.contains("roles/iam.serviceAccountUser serviceAccount:app@"),
        "{text}"
    );
    assert!(text.contains("ci/actions"), "{text}");

    // Day 2: an outside user and a service agent may act as `app`, and the
    // pool trusts a second issuer.
    let agent = "serviceAccount:service-123456789012@gcp-sa-cloudbuild.iam.gserviceaccount.com";
    let app_policy = json!({"version": 1, "etag": "BwYGazsSkKd=", "bindings": [
        {"role": "roles/iam.serviceAccountTokenCreator", "members": ["user:mallory@gmail.com", agent]}]});
    let day_2 = Day::first().write_to(&work.path().join("day-2"));
    let folder_2 = day_2.join("gcp").join(PROJECT);
    let policies_2 = [
        (app.as_str(), app_policy),
        (COMPUTE, compute_policy.clone()),
        (old.as_str(), empty.clone()),
    ];
    let providers_2 = [
        provider("ci", "actions", github),
        provider("ci", "gitlab", "https://gitlab.example.com"),
    ];
    write_trust(&folder_2, &policies_2, &providers_2);
    let (code, report, stderr) = scan(work.path(), &day_2, &snapshots);
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    let expected = vec![
        format!("credential_added {app} high unexpected"),
        format!("credential_added {app} low expected"),
        "identity_added ci/gitlab high unexpected".to_string(),
    ];
    assert_eq!(finding_lines(&report), expected, "{report:#}");
    let findings = report["findings"].as_array().expect("findings");
    let outsider = findings
        .iter()
        .find(|finding| finding["evidence"]["credential_name"] == "user:mallory@gmail.com")
        .expect("outsider finding");
    assert_eq!(outsider["technique"]["id"], "T1548.005");
    assert_eq!(
        outsider["response"][0],
        format!(
            "gcloud iam service-accounts remove-iam-policy-binding {app} --member=user:mallory@gmail.com --role=roles/iam.serviceAccountTokenCreator --project={PROJECT} --all"
        )
    );
    let gitlab = findings
        .iter()
        .find(|finding| finding["identity_name"] == "ci/gitlab")
        .expect("provider finding");
    assert_eq!(gitlab["evidence"]["issuer"], "https://gitlab.example.com");
    assert_eq!(gitlab["technique"]["id"], "T1098.001");

    // Day 3: the files of `old`'s policy and of pool `empty` are missing.
    // Only `old` is left uncompared, and the providers are kept whole.
    let day_3 = Day::first().write_to(&work.path().join("day-3"));
    let folder_3 = day_3.join("gcp").join(PROJECT);
    let policies_3 = [
        (app.as_str(), json!({"etag": "ACAB"})),
        (COMPUTE, compute_policy),
    ];
    write_trust(&folder_3, &policies_3, &providers_2);
    std::fs::remove_file(folder_3.join("providers-empty.json")).expect("remove");
    let (code, report, stderr) = scan(work.path(), &day_3, &snapshots);
    assert_eq!(code, 2, "{report:#}\n{stderr}");
    assert_eq!(
        finding_lines(&report),
        vec![
            format!("credential_removed {app} info unexpected"),
            format!("credential_removed {app} info unexpected"),
        ],
        "the grants on app were read and are gone; nothing else reads as removed"
    );
    let snapshot = read_json(&snapshots.join(format!("gcp/{PROJECT}.json")));
    let policies = &snapshot["collections"]["service_account_policies"];
    assert_eq!(policies["unlisted"], json!(["100000000000000001003"]));
    let providers = &snapshot["collections"]["workload_identity_providers"];
    assert_eq!(providers["status"], "incomplete");
    assert!(
        providers["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("empty"),
        "{providers}"
    );
    assert!(snapshot.to_string().contains("ci/gitlab"), "providers kept");
}

#[test]
fn account_policy_needs_its_file_name() {
    let work = tempfile::tempdir().expect("temp dir");
    let export = Day::first().write_to(&work.path().join("export"));
    let folder = export.join("gcp").join(PROJECT);
    // Without the sa-policy- name, a second policy reads as the project's.
    write(
        &folder.join("app-policy.json"),
        &json!({"version": 1, "etag": "BwX=", "bindings": []}),
    );
    let (code, report, _) = scan(work.path(), &export, &work.path().join("snapshots"));
    assert_eq!(code, 2, "{report:#}");
    let error = report["errors"][0].as_str().expect("error");
    assert!(error.contains("second IAM policy"), "{error}");

    std::fs::remove_file(folder.join("app-policy.json")).expect("remove");
    write(
        &folder.join("sa-policy-app@demo-project.iam.gserviceaccount.com.json"),
        &json!([]),
    );
    let (code, report, _) = scan(work.path(), &export, &work.path().join("snapshots"));
    assert_eq!(code, 2, "{report:#}");
    let error = report["errors"][0].as_str().expect("error");
    assert!(error.contains("get-iam-policy"), "{error}");
}

#[test]
fn unreadable_policies_are_not_empty() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let app = format!("app@{PROJECT}.iam.gserviceaccount.com");
    let old = format!("old@{PROJECT}.iam.gserviceaccount.com");
    let grant = json!({"version": 1, "etag": "BwYGazsSkKc=", "bindings": [
        {"role": "roles/iam.serviceAccountTokenCreator", "members": ["user:ops@example.com"]}]});
    let empty = json!({"etag": "ACAB"});
    let policies = [
        (app.as_str(), grant.clone()),
        (COMPUTE, empty.clone()),
        (old.as_str(), empty.clone()),
    ];
    let day_1 = Day::first().write_to(&work.path().join("day-1"));
    write_trust(&day_1.join("gcp").join(PROJECT), &policies, &[]);
    let (code, report, stderr) = scan(work.path(), &day_1, &snapshots);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let good = read_json(&snapshots.join(format!("gcp/{PROJECT}.json")));

    // Day 2: `app`'s policy file holds the error that gcloud got, and the
    // project policy's bindings are one object where a list belongs.
    let denied = json!({"error": {"code": 403, "message": "Permission 'iam.serviceAccounts.getIamPolicy' denied", "status": "PERMISSION_DENIED"}});
    let day_2 = Day::first().write_to(&work.path().join("day-2"));
    let folder_2 = day_2.join("gcp").join(PROJECT);
    let policies = [
        (app.as_str(), denied),
        (COMPUTE, empty.clone()),
        (old.as_str(), empty),
    ];
    write_trust(&folder_2, &policies, &[]);
    write(
        &folder_2.join("iam-policy.json"),
        &json!({"version": 1, "etag": "BwYGazsSkKc=", "bindings":
            {"role": "roles/owner", "members": ["user:admin@example.com"]}}),
    );
    let (code, report, stderr) = scan(work.path(), &day_2, &snapshots);
    assert_eq!(code, 2, "{report:#}\n{stderr}");
    assert_eq!(
        finding_lines(&report),
        Vec::<String>::new(),
        "nothing unread reads as removed"
    );
    let incomplete = report["scopes"][0]["incomplete"].to_string();
    assert!(
        incomplete.contains("PERMISSION_DENIED") || incomplete.contains("denied"),
        "{incomplete}"
    );
    assert!(
        incomplete.contains("bindings must be a list"),
        "{incomplete}"
    );
    let snapshot = read_json(&snapshots.join(format!("gcp/{PROJECT}.json")));
    assert_eq!(snapshot["identities"], good["identities"], "records kept");
}

#[test]
fn records_without_ids_are_not_removals() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let app = format!("app@{PROJECT}.iam.gserviceaccount.com");
    let github = "https://token.actions.githubusercontent.com";
    let day_1 = Day::first().write_to(&work.path().join("day-1"));
    write_trust(
        &day_1.join("gcp").join(PROJECT),
        &[],
        &[provider("ci", "actions", github)],
    );
    let (code, report, stderr) = scan(work.path(), &day_1, &snapshots);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let good = read_json(&snapshots.join(format!("gcp/{PROJECT}.json")));

    // Day 2: `old` lost its uniqueId and `app`'s user-managed key lost its
    // keyType. Neither is gone.
    let mut day = Day::first();
    day.accounts[2]["uniqueId"] = Value::Null;
    day.keys[0].1[0]["keyType"] = json!("KEY_TYPE_UNSPECIFIED");
    let day_2 = day.write_to(&work.path().join("day-2"));
    write_trust(
        &day_2.join("gcp").join(PROJECT),
        &[],
        &[provider("ci", "actions", github)],
    );
    let (code, report, stderr) = scan(work.path(), &day_2, &snapshots);
    assert_eq!(code, 2, "{report:#}\n{stderr}");
    assert_eq!(finding_lines(&report), Vec::<String>::new(), "{report:#}");
    let incomplete = report["scopes"][0]["incomplete"].to_string();
    for expected in ["no uniqueId", "unknown keyType"] {
        assert!(incomplete.contains(expected), "{expected}: {incomplete}");
    }
    assert!(incomplete.contains(&app), "{incomplete}");
    let snapshot = read_json(&snapshots.join(format!("gcp/{PROJECT}.json")));
    assert_eq!(snapshot["identities"], good["identities"], "records kept");
}

#[test]
fn broadened_condition_is_a_new_grant() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let app = format!("app@{PROJECT}.iam.gserviceaccount.com");
    let old = format!("old@{PROJECT}.iam.gserviceaccount.com");
    let empty = json!({"etag": "ACAB"});
    let grant = |expression: &str| {
        json!({"version": 3, "etag": "BwYGazsSkKc=", "bindings": [{
            "role": "roles/iam.serviceAccountTokenCreator",
            "members": ["user:mallory@gmail.com"],
            "condition": {"title": "temporary", "expression": expression}
        }]})
    };
    let scan_day = |name: &str, expression: &str| {
        let day = Day::first().write_to(&work.path().join(name));
        let policies = [
            (app.as_str(), grant(expression)),
            (COMPUTE, empty.clone()),
            (old.as_str(), empty.clone()),
        ];
        write_trust(&day.join("gcp").join(PROJECT), &policies, &[]);
        scan(work.path(), &day, &snapshots)
    };

    let (code, report, stderr) =
        scan_day("day-1", "request.time < timestamp('2020-01-01T00:00:00Z')");
    assert_eq!(code, 0, "{report:#}\n{stderr}");

    // The same title, but the grant now never expires.
    let (code, report, stderr) = scan_day("day-2", "true");
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    assert_eq!(
        finding_lines(&report),
        vec![format!("credential_added {app} high unexpected")],
        "{report:#}"
    );

    // Nothing changed since: nothing to report.
    let (code, report, stderr) = scan_day("day-3", "true");
    assert_eq!(code, 0, "{report:#}\n{stderr}");
}
