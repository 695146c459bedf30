//! Entra ID offline input: `az` exports beside AWS exports, scanned into
//! one report, and the judgement of a tenant's changes between two days.

mod common;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use common::{idrift, run};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const GLOBAL_ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";
const MICROSOFT: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";

fn write(path: &Path, value: &Value) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create folder");
    std::fs::write(
        path,
        serde_json::to_string_pretty(value).expect("serialize"),
    )
    .expect("write");
}

/// A tenant's exports for one day: `az ad user list`, `az ad sp list --all`
/// (as a Graph page dump), `az ad app list --all` and role assignments.
struct Day {
    users: Vec<Value>,
    service_principals: Vec<Value>,
    applications: Vec<Value>,
    role_assignments: Vec<Value>,
}

impl Day {
    fn first() -> Day {
        Day {
            users: vec![
                json!({"id": "u-alice", "userPrincipalName": "alice@contoso.com", "userType": "Member",
                               "accountEnabled": true, "createdDateTime": "2024-01-02T03:04:05Z"}),
            ],
            service_principals: vec![
                json!({"id": "sp-deploy", "appId": "app-id-deploy", "displayName": "deploy",
                                            "servicePrincipalType": "Application", "appOwnerOrganizationId": TENANT,
                                            "accountEnabled": true, "passwordCredentials": [], "keyCredentials": []}),
            ],
            applications: vec![
                json!({"id": "app-deploy", "appId": "app-id-deploy", "displayName": "deploy",
                                      "signInAudience": "AzureADMyOrg", "createdDateTime": "2024-01-02T03:04:05Z",
                                      "passwordCredentials": [], "keyCredentials": []}),
            ],
            role_assignments: Vec::new(),
        }
    }

    /// Day 2: a guest, a secret on the app, Global Administrator for the
    /// app's service principal, a first-party service principal and a
    /// system-assigned managed identity.
    fn second() -> Day {
        let mut day = Day::first();
        day.users.push(json!({"id": "u-eve", "userPrincipalName": "eve_fabrikam.com#EXT#@contoso.onmicrosoft.com",
                              "userType": "Guest", "accountEnabled": true, "createdDateTime": "2024-02-01T00:00:00Z",
                              "creationType": "Invitation", "externalUserState": "Accepted"}));
        day.applications[0]["passwordCredentials"] = json!([{"keyId": "key-new", "displayName": "ci",
            "startDateTime": "2024-02-01T00:00:00Z", "endDateTime": "9999-12-31T23:59:59Z", "secretText": null}]);
        day.role_assignments.push(json!({"id": "ra-1", "principalId": "sp-deploy",
                                         "roleDefinitionId": GLOBAL_ADMINISTRATOR, "directoryScopeId": "/"}));
        day.service_principals.push(json!({"id": "sp-graph", "appId": "00000003-0000-0000-c000-000000000000",
            "displayName": "Microsoft Graph", "servicePrincipalType": "Application", "appOwnerOrganizationId": MICROSOFT,
            "passwordCredentials": [], "keyCredentials": []}));
        day.service_principals.push(json!({"id": "sp-vm", "appId": "app-id-vm", "displayName": "vm1",
            "servicePrincipalType": "ManagedIdentity",
            "alternativeNames": ["isExplicit=False", "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"],
            "passwordCredentials": [], "keyCredentials": []}));
        day
    }

    fn write_to(&self, root: &Path) -> PathBuf {
        let folder = root.join("azure").join(TENANT);
        write(&folder.join("users.json"), &Value::from(self.users.clone()));
        write(
            &folder.join("service-principals.json"),
            &json!({"value": self.service_principals}),
        );
        write(
            &folder.join("applications.json"),
            &Value::from(self.applications.clone()),
        );
        if !self.role_assignments.is_empty() {
            write(
                &folder.join("role-assignments.json"),
                &json!({"value": self.role_assignments}),
            );
        } else {
            // An empty list cannot be recognized, so day 1 dumps one
            // assignment of a role that is not privileged.
            let reader = json!({"value": [{"id": "ra-0", "principalId": "u-alice",
                "roleDefinitionId": "88d8e3e3-8f55-4a1e-953a-9b9898b8876b", "directoryScopeId": "/"}]});
            write(&folder.join("role-assignments.json"), &reader);
        }
        root.to_path_buf()
    }
}

fn scan(home: &Path, export: &Path, snapshots: &Path) -> (i32, Value) {
    let (code, stdout, stderr) = run(idrift(home)
        .arg("scan")
        .arg("--from-export")
        .arg(export)
        .arg("--snapshots")
        .arg(snapshots)
        .args(["--format", "json"]));
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("report is JSON: {error}\n{stdout}\n{stderr}"));
    (code, report)
}

#[test]
fn aws_and_azure_exports_share_one_report() {
    let work = tempfile::tempdir().expect("temp dir");
    let export = Day::first().write_to(&work.path().join("export"));
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo/day-1/aws/111122223333");
    let aws_folder = export.join("aws/111122223333");
    std::fs::create_dir_all(&aws_folder).expect("aws folder");
    for entry in std::fs::read_dir(demo).expect("demo").flatten() {
        std::fs::copy(entry.path(), aws_folder.join(entry.file_name())).expect("copy demo file");
    }

    let snapshots = work.path().join("snapshots");
    let (code, report) = scan(work.path(), &export, &snapshots);
    assert_eq!(code, 0, "{report:#}");
    let scopes: Vec<String> = report["scopes"]
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
    assert_eq!(
        scopes,
        vec!["aws 111122223333".to_string(), format!("azure {TENANT}")],
        "scopes in the order of an API scan: AWS, then Entra ID"
    );
    assert!(snapshots.join("aws/111122223333.json").is_file());
    assert!(snapshots.join(format!("azure/{TENANT}.json")).is_file());
}

#[test]
fn azure_day_two_is_judged() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let (code, report) = scan(
        work.path(),
        &Day::first().write_to(&work.path().join("day-1")),
        &snapshots,
    );
    assert_eq!(code, 0, "{report:#}");
    let snapshot_path = snapshots.join(format!("azure/{TENANT}.json"));
    let snapshot: Value =
        serde_json::from_str(&std::fs::read_to_string(&snapshot_path).expect("snapshot"))
            .expect("JSON");
    assert_eq!(
        snapshot["collections"]["federated_credentials"]["status"],
        "not_collected"
    );

    let (code, report) = scan(
        work.path(),
        &Day::second().write_to(&work.path().join("day-2")),
        &snapshots,
    );
    assert_eq!(code, 1, "{report:#}");
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
    let expected = vec![
        "credential_added deploy high unexpected",
        "identity_added Microsoft Graph low expected",
        "identity_added eve_fabrikam.com#EXT#@contoso.onmicrosoft.com high unexpected",
        "identity_added vm1 low expected",
        "privilege_added deploy critical unexpected",
    ];
    assert_eq!(seen, expected);

    let secret = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|finding| finding["change"] == "credential_added")
        .expect("credential finding");
    assert!(
        secret["response"][0]
            .as_str()
            .expect("command")
            .starts_with("az ad app credential delete --id app-id-deploy --key-id key-new")
    );
    let admin = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|finding| finding["change"] == "privilege_added")
        .expect("privilege finding");
    assert!(
        admin["response"][0]
            .as_str()
            .expect("command")
            .contains("roleAssignments/ra-1")
    );
}

const APP_OBJECT_ID: &str = "0a1b2c3d-0000-4000-8000-00000000a001";
const APP_CLIENT_ID: &str = "0a1b2c3d-0000-4000-8000-00000000c001";

/// Returns a GitHub Actions federated credential as `az ad app federated-credential list` prints it.
fn github_credential(id: &str, repository: &str) -> Value {
    json!({"id": id, "name": format!("gh-{id}"),
           "issuer": "https://token.actions.githubusercontent.com",
           "subject": format!("repo:{repository}:ref:refs/heads/main"),
           "audiences": ["api://AzureADTokenExchange"], "description": null})
}

/// Day 1 with the deploy app under GUIDs, so that files can name it.
fn day_with_named_app() -> Day {
    let mut day = Day::first();
    day.applications[0]["id"] = json!(APP_OBJECT_ID);
    day.applications[0]["appId"] = json!(APP_CLIENT_ID);
    day.service_principals[0]["appId"] = json!(APP_CLIENT_ID);
    day
}

fn federated_ids(snapshot_path: &Path) -> (String, Vec<String>) {
    let snapshot: Value =
        serde_json::from_str(&std::fs::read_to_string(snapshot_path).expect("snapshot"))
            .expect("JSON");
    let status = snapshot["collections"]["federated_credentials"]["status"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    let app = identities_of_kind(&snapshot, "azure_application")
        .into_iter()
        .find(|app| app["id"] == APP_OBJECT_ID)
        .expect("deploy app");
    let ids = app["credentials"]
        .as_array()
        .map(|credentials| {
            credentials
                .iter()
                .filter(|credential| credential["kind"] == "federated_credential")
                .map(|credential| credential["id"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default();
    (status, ids)
}

#[test]
fn federated_credentials_from_export() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let snapshot_path = snapshots.join(format!("azure/{TENANT}.json"));

    // Day 1: the az CLI's list for the app, named by its appId.
    let day_1 = day_with_named_app().write_to(&work.path().join("day-1"));
    let folder_1 = day_1.join(format!("azure/{TENANT}"));
    write(
        &folder_1.join(format!("federated-credentials-{APP_CLIENT_ID}.json")),
        &json!([github_credential("fic-1", "contoso/deploy")]),
    );
    let (code, report) = scan(work.path(), &day_1, &snapshots);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        federated_ids(&snapshot_path),
        ("complete".to_string(), vec!["fic-1".to_string()])
    );

    // Day 2: a Graph dump that names the app by object id in @odata.context.
    let day_2 = day_with_named_app().write_to(&work.path().join("day-2"));
    let context = format!(
        "https://graph.microsoft.com/v1.0/$metadata#applications('{APP_OBJECT_ID}')/federatedIdentityCredentials"
    );
    write(
        &day_2.join(format!("azure/{TENANT}/deploy-fic.json")),
        &json!({"@odata.context": context, "value": [
            github_credential("fic-1", "contoso/deploy"),
            github_credential("fic-2", "mallory/payload"),
        ]}),
    );
    let (code, report) = scan(work.path(), &day_2, &snapshots);
    assert_eq!(code, 1, "{report:#}");
    let findings = report["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{report:#}");
    assert_eq!(findings[0]["change"], "credential_added");
    assert_eq!(findings[0]["identity_name"], "deploy");
    assert!(
        findings[0].to_string().contains("repo:mallory/payload"),
        "{:#}",
        findings[0]
    );

    // Day 3: an empty list for the deploy app, and a new app with no file:
    // the deploy app is still compared, the new one is named as unlisted.
    let mut day = day_with_named_app();
    day.applications
        .push(json!({"id": "0a1b2c3d-0000-4000-8000-00000000a002",
        "appId": "0a1b2c3d-0000-4000-8000-00000000c002", "displayName": "pipeline",
        "signInAudience": "AzureADMyOrg", "createdDateTime": "2024-03-01T00:00:00Z"}));
    let day_3 = day.write_to(&work.path().join("day-3"));
    write(
        &day_3.join(format!(
            "azure/{TENANT}/federated-credentials-{APP_OBJECT_ID}.json"
        )),
        &json!([]),
    );
    let (code, report) = scan(work.path(), &day_3, &snapshots);
    assert_eq!(code, 2, "{report:#}");
    let incomplete = report["scopes"][0]["incomplete"].to_string();
    assert!(incomplete.contains("federated_credentials"), "{incomplete}");
    assert!(incomplete.contains("pipeline"), "{incomplete}");
    let mut changes: Vec<String> = report["findings"]
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
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        vec![
            "credential_removed deploy",
            "credential_removed deploy",
            "identity_added pipeline"
        ],
        "{report:#}"
    );
    assert_eq!(federated_ids(&snapshot_path).1, Vec::<String>::new());
}

#[test]
fn federated_listing_without_app_is_rejected() {
    let work = tempfile::tempdir().expect("temp dir");
    let export = day_with_named_app().write_to(&work.path().join("export"));
    write(
        &export.join(format!("azure/{TENANT}/federated.json")),
        &json!([github_credential("fic-1", "contoso/deploy")]),
    );
    let (code, report) = scan(work.path(), &export, &work.path().join("snapshots"));
    assert_eq!(code, 2, "{report:#}");
    let error = report["errors"][0].as_str().expect("error");
    assert!(error.contains("federated.json"), "{error}");
    assert!(
        error.contains("federated-credentials-<app object id or appId>.json"),
        "{error}"
    );
}

#[test]
fn unrecognized_azure_file_is_rejected() {
    let work = tempfile::tempdir().expect("temp dir");
    let export = Day::first().write_to(&work.path().join("export"));
    write(
        &export.join(format!("azure/{TENANT}/notes.json")),
        &json!([{"hello": "world"}]),
    );
    let (code, report) = scan(work.path(), &export, &work.path().join("snapshots"));
    assert_eq!(code, 2);
    let error = report["errors"][0].as_str().expect("error");
    assert!(error.contains("notes.json"), "{error}");
    assert!(error.contains("not an Entra export"), "{error}");
}

#[test]
fn cut_short_graph_dump_is_incomplete() {
    let work = tempfile::tempdir().expect("temp dir");
    let export = Day::first().write_to(&work.path().join("export"));
    let page = json!({"value": [{"id": "u-alice", "userPrincipalName": "alice@contoso.com"}],
                      "@odata.nextLink": "https://graph.microsoft.com/v1.0/users?$skiptoken=x"});
    write(&export.join(format!("azure/{TENANT}/users.json")), &page);
    let (code, report) = scan(work.path(), &export, &work.path().join("snapshots"));
    assert_eq!(code, 2, "{report:#}");
    let incomplete = report["scopes"][0]["incomplete"].to_string();
    assert!(incomplete.contains("users"), "{incomplete}");
    assert!(incomplete.contains("--paginate"), "{incomplete}");
}

/// Returns the Graph list replies (`{"value": [...]}` from
/// graph.microsoft.com) recorded in an azure-cli test cassette.
fn graph_lists(cassette: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(cassette).expect("read cassette");
    let recording: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("cassette is YAML");
    let interactions = recording["interactions"]
        .as_sequence()
        .expect("interactions");
    interactions
        .iter()
        .filter(|interaction| {
            interaction["request"]["uri"]
                .as_str()
                .is_some_and(|uri| uri.starts_with("https://graph.microsoft.com/"))
        })
        .filter_map(|interaction| interaction["response"]["body"]["string"].as_str())
        .filter_map(|body| serde_json::from_str::<Value>(body).ok())
        .filter(|reply| {
            reply["value"]
                .as_array()
                .is_some_and(|records| !records.is_empty())
        })
        .collect()
}

/// Writes a cassette's Graph lists as an export and scans it.
fn scan_cassette(name: &str) -> (i32, Value, Value) {
    let work = tempfile::tempdir().expect("temp dir");
    let cassette = common::public_fixtures().join("azure").join(name);
    let folder = work.path().join("export/azure").join(TENANT);
    for (index, reply) in graph_lists(&cassette).iter().enumerate() {
        write(&folder.join(format!("reply-{index}.json")), reply);
    }
    let snapshots = work.path().join("snapshots");
    let (code, report) = scan(work.path(), &work.path().join("export"), &snapshots);
    let snapshot = serde_json::from_str(
        &std::fs::read_to_string(snapshots.join(format!("azure/{TENANT}.json")))
            .unwrap_or_default(),
    )
    .unwrap_or(Value::Null);
    (code, report, snapshot)
}

fn identities_of_kind<'a>(snapshot: &'a Value, kind: &str) -> Vec<&'a Value> {
    snapshot["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .filter(|identity| identity["kind"] == kind)
        .collect()
}

#[test]
fn public_rbac_recording_parses() {
    // Its Graph lists hold one service principal and, twice, one application
    // with one password credential (hint nT4, secret text null).
    let (code, report, snapshot) = scan_cassette("azure-cli-rec-create-for-rbac-password.yaml");
    assert_eq!(code, 0, "{report:#}");
    let principals = identities_of_kind(&snapshot, "azure_service_principal");
    assert_eq!(principals.len(), 1);
    assert_eq!(principals[0]["id"], "8a202197-38ac-40eb-8d36-0b9d90ff9ace");
    let applications = identities_of_kind(&snapshot, "azure_application");
    assert_eq!(applications.len(), 1);
    assert_eq!(
        applications[0]["credentials"][0]["id"],
        "fe4edecc-349b-4ace-b843-4816648c34ad"
    );
    assert_eq!(applications[0]["credentials"][0]["kind"], "client_secret");
    assert_eq!(
        applications[0]["credentials"][0]["expires"],
        "2024-02-14T07:55:04Z"
    );
    assert_eq!(snapshot["collections"]["users"]["status"], "not_collected");
}

#[test]
fn public_user_recording_parses() {
    // Its one Graph list is the startswith filter reply: one user whose
    // name contains `$` and `#`, with the default property set (no userType).
    let (code, report, snapshot) = scan_cassette("azure-cli-rec-user-special-characters-upn.yaml");
    assert_eq!(code, 0, "{report:#}");
    let users = identities_of_kind(&snapshot, "azure_user");
    assert_eq!(users.len(), 1);
    assert!(
        users[0]["name"]
            .as_str()
            .expect("name")
            .starts_with("$azure-cli-test-user#000001@")
    );
    assert!(users[0]["attributes"].get("user_type").is_none());
}

#[test]
fn public_arm_recording_has_no_graph_lists() {
    // This recording talks to Azure Resource Manager only.
    let cassette =
        common::public_fixtures().join("azure/azure-cli-rec-role-assignment-at-scope.yaml");
    assert!(graph_lists(&cassette).is_empty());
}

#[test]
fn missing_client_secret_names_the_variable() {
    let work = tempfile::tempdir().expect("temp dir");
    let config = work.path().join("idrift.toml");
    let text = format!(
        "[[azure.tenants]]\ntenant_id = \"{TENANT}\"\ncredential = \"client_secret\"\nclient_id = \"11111111-2222-3333-4444-555555555555\"\ngraph_url = \"http://127.0.0.1:9\"\n"
    );
    std::fs::write(&config, text).expect("config");
    let (code, stdout, _) = run(idrift(work.path())
        .env_remove("AZURE_CLIENT_SECRET")
        .arg("scan")
        .arg("--config")
        .arg(&config)
        .arg("--snapshots")
        .arg(work.path().join("snapshots"))
        .args(["--format", "json"]));
    assert_eq!(code, 2, "{stdout}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["scopes"][0]["provider"], "azure");
    assert_eq!(report["scopes"][0]["scope"], TENANT);
    let error = report["scopes"][0]["error"].as_str().expect("error");
    assert!(error.contains("AZURE_CLIENT_SECRET"), "{error}");
}

const GROUP_ID: &str = "0a1b2c3d-0000-4000-8000-00000000b001";

/// Day 1 with member bob, and Global Administrator given to a
/// role-assignable group, named by an `az ad group list` file.
fn day_with_admin_group() -> Day {
    let mut day = Day::first();
    day.users.push(
        json!({"id": "u-bob", "userPrincipalName": "bob@contoso.com", "userType": "Member",
                          "accountEnabled": true, "createdDateTime": "2024-01-02T03:04:05Z"}),
    );
    day.role_assignments.push(json!({"id": "ra-group", "principalId": GROUP_ID,
                                     "roleDefinitionId": GLOBAL_ADMINISTRATOR, "directoryScopeId": "/"}));
    day
}

/// Writes the day and `az ad group list` output that names the group.
fn write_with_group(day: &Day, root: &Path) -> PathBuf {
    let export = day.write_to(root);
    write(
        &export.join(format!("azure/{TENANT}/groups.json")),
        &json!([{"id": GROUP_ID, "displayName": "Tier 0 Admins", "isAssignableToRole": true,
                 "securityEnabled": true, "mailEnabled": false, "groupTypes": []}]),
    );
    export
}

fn members_file(export: &Path) -> PathBuf {
    export.join(format!("azure/{TENANT}/group-members-{GROUP_ID}.json"))
}

/// Returns `(group, group_id, assignment_id)` of each admin grant of an identity.
fn grants_of(snapshot_path: &Path, id: &str) -> Vec<(String, String, String)> {
    let snapshot: Value =
        serde_json::from_str(&std::fs::read_to_string(snapshot_path).expect("snapshot"))
            .expect("JSON");
    let identity = snapshot["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .find(|identity| identity["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not in the snapshot"))
        .clone();
    let field = |grant: &Value, key: &str| grant[key].as_str().unwrap_or("-").to_string();
    identity["admin_grants"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|grant| {
            (
                field(grant, "group"),
                field(grant, "group_id"),
                field(grant, "assignment_id"),
            )
        })
        .collect()
}

#[test]
fn group_members_file_grants_members() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let snapshot_path = snapshots.join(format!("azure/{TENANT}.json"));

    // Day 1: `az ad group member list` output, a user and a service principal.
    let day_1 = write_with_group(&day_with_admin_group(), &work.path().join("day-1"));
    write(
        &members_file(&day_1),
        &json!([
            {"@odata.type": "#microsoft.graph.user", "id": "u-alice",
             "userPrincipalName": "alice@contoso.com", "displayName": "Alice"},
            {"@odata.type": "#microsoft.graph.servicePrincipal", "id": "sp-deploy",
             "appId": "app-id-deploy", "displayName": "deploy", "servicePrincipalType": "Application"},
        ]),
    );
    let (code, report) = scan(work.path(), &day_1, &snapshots);
    assert_eq!(code, 0, "{report:#}");
    let grant = (
        "Tier 0 Admins".to_string(),
        GROUP_ID.to_string(),
        "ra-group".to_string(),
    );
    assert_eq!(grants_of(&snapshot_path, "u-alice"), vec![grant.clone()]);
    assert_eq!(grants_of(&snapshot_path, "sp-deploy"), vec![grant.clone()]);
    assert_eq!(grants_of(&snapshot_path, "u-bob"), Vec::new());

    // Day 2: an `az rest` dump of transitiveMembers that adds bob.
    let day_2 = write_with_group(&day_with_admin_group(), &work.path().join("day-2"));
    let members = ["u-alice", "sp-deploy", "u-bob"].map(|id| json!({"id": id}));
    write(
        &members_file(&day_2),
        &json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#directoryObjects(id)",
                "value": members}),
    );
    let (code, report) = scan(work.path(), &day_2, &snapshots);
    assert_eq!(code, 1, "{report:#}");
    let findings = report["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{report:#}");
    let finding = &findings[0];
    assert_eq!(finding["change"], "privilege_added", "{finding:#}");
    assert_eq!(finding["identity_id"], "u-bob", "{finding:#}");
    assert_eq!(finding["severity"], "critical", "{finding:#}");
    assert_eq!(finding["evidence"]["group"], "Tier 0 Admins", "{finding:#}");
    assert_eq!(grants_of(&snapshot_path, "u-bob"), vec![grant]);
}

#[test]
fn missing_group_members_file_is_incomplete() {
    let work = tempfile::tempdir().expect("temp dir");
    let export = write_with_group(&day_with_admin_group(), &work.path().join("export"));
    let (code, report) = scan(work.path(), &export, &work.path().join("snapshots"));

    assert_eq!(code, 2, "{report:#}");
    let incomplete = report["scopes"][0]["incomplete"]
        .as_array()
        .expect("incomplete")
        .clone();
    assert_eq!(incomplete.len(), 1, "{incomplete:#?}");
    assert_eq!(incomplete[0]["collection"], "privileges");
    let reason = incomplete[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("ra-group"), "{reason}");
    assert!(
        reason.contains(&format!("group-members-{GROUP_ID}.json")),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("az ad group member list --group {GROUP_ID}")),
        "{reason}"
    );
}

#[test]
fn member_dump_without_group_is_rejected() {
    let work = tempfile::tempdir().expect("temp dir");
    let export = write_with_group(&day_with_admin_group(), &work.path().join("export"));
    write(
        &export.join(format!("azure/{TENANT}/tier0.json")),
        &json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#directoryObjects",
                "value": [{"@odata.type": "#microsoft.graph.user", "id": "u-alice",
                           "userPrincipalName": "alice@contoso.com"}]}),
    );
    let (code, report) = scan(work.path(), &export, &work.path().join("snapshots"));

    assert_eq!(code, 2, "{report:#}");
    let error = report["errors"][0].as_str().expect("error");
    assert!(error.contains("tier0.json"), "{error}");
    assert!(
        error.contains("group-members-<group object id>.json"),
        "{error}"
    );
}

#[test]
fn cut_short_member_dump_is_incomplete() {
    let work = tempfile::tempdir().expect("temp dir");
    let export = write_with_group(&day_with_admin_group(), &work.path().join("export"));
    write(
        &members_file(&export),
        &json!({"value": [{"@odata.type": "#microsoft.graph.user", "id": "u-alice"}],
                "@odata.nextLink": format!(
                    "https://graph.microsoft.com/v1.0/groups/{GROUP_ID}/transitiveMembers?$skiptoken=x")}),
    );
    let (code, report) = scan(work.path(), &export, &work.path().join("snapshots"));

    assert_eq!(code, 2, "{report:#}");
    let incomplete = report["scopes"][0]["incomplete"].to_string();
    assert!(incomplete.contains("privileges"), "{incomplete}");
    assert!(incomplete.contains("--paginate"), "{incomplete}");
}

const SUBSCRIPTION: &str = "5b5c0000-0000-4000-8000-000000000001";
const OWNER_ROLE: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
const ALICE: &str = "00000001-0000-4000-8000-000000000001";
const EVE: &str = "00000001-0000-4000-8000-000000000002";
const DEPLOY_SP: &str = "00000002-0000-4000-8000-000000000001";
const IDENTITY_SP: &str = "00000002-0000-4000-8000-000000000002";
const DEPLOY_APP: &str = "00000003-0000-4000-8000-000000000001";

/// Returns an `az role assignment list` entry of Owner at the subscription.
fn owner_assignment(number: u32, principal: &str, principal_type: &str) -> Value {
    let scope = format!("/subscriptions/{SUBSCRIPTION}");
    json!({
        "condition": null, "conditionVersion": null, "createdBy": null, "createdOn": "2024-03-04T05:06:07.000000+00:00",
        "delegatedManagedIdentityResourceId": null, "description": null,
        "id": format!("{scope}/providers/Microsoft.Authorization/roleAssignments/0000000{number}-0000-4000-8000-000000000000"),
        "name": format!("0000000{number}-0000-4000-8000-000000000000"),
        "principalId": principal, "principalName": "someone", "principalType": principal_type,
        "roleDefinitionId": format!("{scope}/providers/Microsoft.Authorization/roleDefinitions/{OWNER_ROLE}"),
        "roleDefinitionName": "Owner", "scope": scope,
        "type": "Microsoft.Authorization/roleAssignments",
    })
}

/// Writes one day of a tenant with GUID ids: Graph listings, owner files,
/// `az role assignment list`, `az identity list` and the identity's
/// federated credentials.
struct PersistenceDay {
    users: Vec<Value>,
    app_owners: Vec<Value>,
    assignments: Vec<Value>,
    identity_credentials: Vec<Value>,
}

impl PersistenceDay {
    fn first() -> PersistenceDay {
        PersistenceDay {
            users: vec![
                json!({"id": ALICE, "userPrincipalName": "alice@contoso.com", "userType": "Member"}),
            ],
            app_owners: vec![json!({"@odata.type": "#microsoft.graph.user", "id": ALICE,
                                    "userPrincipalName": "alice@contoso.com"})],
            assignments: vec![owner_assignment(1, ALICE, "User")],
            identity_credentials: Vec::new(),
        }
    }

    fn write_to(&self, root: &Path) -> PathBuf {
        let folder = root.join("azure").join(TENANT);
        write(&folder.join("users.json"), &Value::from(self.users.clone()));

        let principals = json!([
            {"id": DEPLOY_SP, "appId": "00000004-0000-4000-8000-000000000001", "displayName": "deploy",
             "servicePrincipalType": "Application", "appOwnerOrganizationId": TENANT,
             "passwordCredentials": [], "keyCredentials": []},
            {"id": IDENTITY_SP, "appId": "00000004-0000-4000-8000-000000000002", "displayName": "uami-deploy",
             "servicePrincipalType": "ManagedIdentity",
             "alternativeNames": ["isExplicit=True", format!("/subscriptions/{SUBSCRIPTION}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami-deploy")],
             "passwordCredentials": [], "keyCredentials": []},
        ]);
        write(&folder.join("service-principals.json"), &principals);
        write(
            &folder.join("applications.json"),
            &json!([{"id": DEPLOY_APP, "appId": "00000004-0000-4000-8000-000000000001", "displayName": "deploy",
                     "signInAudience": "AzureADMyOrg", "passwordCredentials": [], "keyCredentials": []}]),
        );

        write(
            &folder.join(format!("owners-{DEPLOY_APP}.json")),
            &Value::from(self.app_owners.clone()),
        );
        write(&folder.join(format!("owners-{DEPLOY_SP}.json")), &json!([]));
        write(
            &folder.join(format!("owners-{IDENTITY_SP}.json")),
            &json!([]),
        );

        write(
            &folder.join("role-assignments-sub1.json"),
            &Value::from(self.assignments.clone()),
        );
        write(
            &folder.join("identities.json"),
            &json!([{"clientId": "00000004-0000-4000-8000-000000000002",
                     "id": format!("/subscriptions/{SUBSCRIPTION}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami-deploy"),
                     "location": "westeurope", "name": "uami-deploy", "principalId": IDENTITY_SP,
                     "resourceGroup": "rg", "tags": {}, "tenantId": TENANT,
                     "type": "Microsoft.ManagedIdentity/userAssignedIdentities"}]),
        );
        write(
            &folder.join("mi-federated-credentials-uami-deploy.json"),
            &Value::from(self.identity_credentials.clone()),
        );
        root.to_path_buf()
    }
}

/// Reads the tenant's snapshot under a snapshot folder.
fn read_snapshot(snapshots: &Path) -> Value {
    let path = snapshots.join(format!("azure/{TENANT}.json"));
    let text = std::fs::read_to_string(&path).expect("read the snapshot");
    serde_json::from_str(&text).expect("the snapshot is JSON")
}

fn finding_of<'a>(report: &'a Value, change: &str, id: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|finding| finding["change"] == change && finding["identity_id"] == id)
        .unwrap_or_else(|| panic!("no {change} finding for {id}: {report:#}"))
}

#[test]
fn persistence_paths_from_export() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let day_one = PersistenceDay::first().write_to(&work.path().join("day-1"));
    let (code, report) = scan(work.path(), &day_one, &snapshots);
    assert_eq!(code, 0, "{report:#}");
    let snapshot = read_snapshot(&snapshots);
    for name in ["owners", "azure_rbac", "user_assigned_identities"] {
        assert_eq!(
            snapshot["collections"][name]["status"], "complete",
            "{name}: {snapshot:#}"
        );
    }

    let mut day = PersistenceDay::first();
    day.users.push(
        json!({"id": EVE, "userPrincipalName": "eve_fabrikam.com#EXT#@contoso.onmicrosoft.com",
                          "userType": "Guest"}),
    );
    day.app_owners.push(json!({"@odata.type": "#microsoft.graph.user", "id": EVE,
                               "userPrincipalName": "eve_fabrikam.com#EXT#@contoso.onmicrosoft.com"}));
    day.assignments
        .push(owner_assignment(2, DEPLOY_SP, "ServicePrincipal"));
    day.identity_credentials.push(json!({
        "audiences": ["api://AzureADTokenExchange"],
        "id": format!("/subscriptions/{SUBSCRIPTION}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami-deploy/federatedIdentityCredentials/gh"),
        "issuer": "https://token.actions.githubusercontent.com", "name": "gh", "resourceGroup": "rg",
        "subject": "repo:attacker/repo:ref:refs/heads/main",
        "type": "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials"}));
    let day_two = day.write_to(&work.path().join("day-2"));
    let (code, report) = scan(work.path(), &day_two, &snapshots);

    assert_eq!(code, 1, "{report:#}");
    // The app's service principal became Owner of the subscription the
    // same day, so its new owner can act as an Owner.
    let owner = finding_of(&report, "owner_added", DEPLOY_APP);
    assert_eq!(owner["severity"], "critical", "{owner:#}");
    assert_eq!(owner["technique"]["id"], "T1098");
    assert_eq!(owner["evidence"]["owner_user_type"], "Guest");
    let grant = finding_of(&report, "privilege_added", DEPLOY_SP);
    assert_eq!(grant["severity"], "critical", "{grant:#}");
    assert_eq!(grant["technique"]["id"], "T1098.003");
    assert!(
        grant["response"]
            .to_string()
            .contains("az role assignment delete --ids /subscriptions/")
    );
    let credential = finding_of(&report, "credential_added", IDENTITY_SP);
    assert_eq!(credential["severity"], "high", "{credential:#}");
    assert!(
        credential["evidence"]["credential_detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("repo:attacker/repo"))
    );
    assert!(
        credential["response"]
            .to_string()
            .contains("az identity federated-credential delete --name gh --identity-name uami-deploy --resource-group rg")
    );
    // The guest is new too; nothing else changed.
    assert_eq!(
        report["findings"].as_array().map(Vec::len),
        Some(4),
        "{report:#}"
    );
}

#[test]
fn missing_arm_exports_never_read_empty() {
    let work = tempfile::tempdir().expect("temp dir");
    let export = PersistenceDay::first().write_to(&work.path().join("export"));
    let folder = export.join("azure").join(TENANT);
    for file in [
        "role-assignments-sub1.json".to_string(),
        "mi-federated-credentials-uami-deploy.json".to_string(),
        format!("owners-{DEPLOY_APP}.json"),
        format!("owners-{DEPLOY_SP}.json"),
        format!("owners-{IDENTITY_SP}.json"),
    ] {
        std::fs::remove_file(folder.join(file)).expect("remove a file");
    }
    let snapshots = work.path().join("snapshots");
    let (code, report) = scan(work.path(), &export, &snapshots);

    assert_eq!(code, 2, "{report:#}");
    let snapshot = read_snapshot(&snapshots);
    let collections = &snapshot["collections"];
    assert_eq!(
        collections["owners"]["status"], "not_collected",
        "{collections:#}"
    );
    assert_eq!(
        collections["azure_rbac"]["status"], "not_collected",
        "{collections:#}"
    );
    let identities = &collections["user_assigned_identities"];
    assert_eq!(identities["status"], "incomplete", "{identities:#}");
    assert_eq!(identities["unlisted"], json!([IDENTITY_SP]));
    assert!(
        identities["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("mi-federated-credentials-uami-deploy.json")),
        "{identities:#}"
    );
}

#[test]
fn owner_file_must_name_an_object_id() {
    let work = tempfile::tempdir().expect("temp dir");
    let export = PersistenceDay::first().write_to(&work.path().join("export"));
    let folder = export.join("azure").join(TENANT);
    write(&folder.join("owners-deploy.json"), &json!([]));
    let (code, report) = scan(work.path(), &export, &work.path().join("snapshots"));
    assert_eq!(code, 2, "{report:#}");
    let text = report.to_string();
    assert!(text.contains("owners-deploy.json"), "{text}");
    assert!(text.contains("not an object id"), "{text}");
}

/// Returns the ARM replies of a Cloud Custodian cassette whose request path ends with `suffix`.
fn custodian_replies(name: &str, suffix: &str) -> Vec<Value> {
    let path = common::public_fixtures().join("azure").join(name);
    let cassette: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read cassette")).expect("JSON");
    cassette["interactions"]
        .as_array()
        .expect("interactions")
        .iter()
        .filter(|interaction| {
            let uri = interaction["request"]["uri"].as_str().unwrap_or_default();
            uri.split('?')
                .next()
                .is_some_and(|path| path.ends_with(suffix))
        })
        .map(|interaction| interaction["response"]["body"]["data"].clone())
        .collect()
}

/// Returns the ARM reply bodies of an azure-cli cassette whose request path ends with `suffix`.
fn azure_cli_replies(name: &str, suffix: &str) -> Vec<Value> {
    let path = common::public_fixtures().join("azure").join(name);
    let text = std::fs::read_to_string(path).expect("read cassette");
    let recording: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("YAML");
    recording["interactions"]
        .as_sequence()
        .expect("interactions")
        .iter()
        .filter(|interaction| {
            let uri = interaction["request"]["uri"].as_str().unwrap_or_default();
            uri.split('?')
                .next()
                .is_some_and(|path| path.ends_with(suffix))
        })
        .filter_map(|interaction| interaction["response"]["body"]["string"].as_str())
        .filter_map(|body| serde_json::from_str(body).ok())
        .collect()
}

#[test]
fn public_role_assignment_versions_convert() {
    // Cloud Custodian's 2018-09-01-preview listing: 74 assignments. The
    // principals of every Owner at subscription scope are listed as users.
    let replies = custodian_replies(
        "custodian-role-assignments-cassette.json",
        "/providers/Microsoft.Authorization/roleAssignments",
    );
    assert_eq!(replies.len(), 1);
    let records = replies[0]["value"].as_array().expect("value").clone();
    assert_eq!(records.len(), 74);
    let owner_of_subscription = |record: &&Value| {
        let properties = &record["properties"];
        properties["roleDefinitionId"]
            .as_str()
            .is_some_and(|id| id.ends_with(OWNER_ROLE))
            && properties["scope"].as_str().is_some_and(|scope| {
                scope.starts_with("/subscriptions/") && scope.matches('/').count() == 2
            })
    };
    let owners: Vec<&Value> = records.iter().filter(owner_of_subscription).collect();
    assert!(!owners.is_empty());
    let owner_id = owners[0]["properties"]["principalId"]
        .as_str()
        .expect("principal");

    let work = tempfile::tempdir().expect("temp dir");
    let folder = work.path().join("export/azure").join(TENANT);
    write(&folder.join("role-assignments.json"), &replies[0]);
    write(
        &folder.join("users.json"),
        &json!([{"id": owner_id, "userPrincipalName": "owner@contoso.com", "userType": "Member"}]),
    );
    write(
        &folder.join("service-principals.json"),
        &json!([{"id": DEPLOY_SP, "appId": "a", "servicePrincipalType": "Application"}]),
    );
    // The azure-cli 2022-04-01 recording: a managed identity and role
    // assignment lists that hold only Reader at resource group scope.
    let identities = azure_cli_replies(
        "azure-cli-rec-role-assignment-at-scope.yaml",
        "/userAssignedIdentities/clitest000002",
    );
    assert_eq!(identities.len(), 1);
    write(&folder.join("identities.json"), &Value::from(identities));
    for (index, reply) in azure_cli_replies(
        "azure-cli-rec-role-assignment-at-scope.yaml",
        "/providers/Microsoft.Authorization/roleAssignments",
    )
    .iter()
    .enumerate()
    {
        write(&folder.join(format!("cli-assignments-{index}.json")), reply);
    }
    write(
        &folder.join("mi-federated-credentials-clitest000002.json"),
        &json!([]),
    );
    let snapshots = work.path().join("snapshots");
    let (code, report) = scan(work.path(), &work.path().join("export"), &snapshots);

    assert_eq!(code, 0, "{report:#}");
    let snapshot = read_snapshot(&snapshots);
    assert_eq!(snapshot["collections"]["azure_rbac"]["status"], "complete");
    let owner = snapshot["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .find(|identity| identity["id"] == owner_id)
        .expect("the owner is recorded");
    let grants: Vec<&str> = owner["admin_grants"]
        .as_array()
        .expect("grants")
        .iter()
        .filter_map(|grant| grant["policy"].as_str())
        .collect();
    assert!(
        grants
            .iter()
            .any(|policy| policy.starts_with("Owner at /subscriptions/")),
        "{grants:?}"
    );
    // The identity has no service principal in the listing, so it is recorded from ARM.
    let identity = snapshot["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .find(|identity| identity["id"] == "88c53162-584e-4c98-984b-62149c2e9bca")
        .expect("the managed identity is recorded");
    assert_eq!(identity["kind"], "azure_managed_identity");
    assert_eq!(identity["name"], "clitest000002");
    assert_eq!(identity["attributes"]["managed_identity"], "user_assigned");
    assert_eq!(
        snapshot["collections"]["user_assigned_identities"]["status"],
        "complete"
    );
}
