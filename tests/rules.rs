//! Expected-account rules and built-in platform knowledge, through the
//! binary: offline exports of two days per cloud, scanned with a config of
//! `[[expected]]` rules, and `idrift rules check` on the snapshots.

mod common;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use common::{idrift, run};

const ACCOUNT: &str = "123456789012";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const MICROSOFT: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";
const PROJECT: &str = "demo-project";
const GITHUB: &str = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com";
const SSO_PROVIDER: &str =
    "arn:aws:iam::123456789012:saml-provider/AWSSSO_0123456789abcdef_DO_NOT_DELETE";

fn write(path: &Path, value: &Value) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create folder");
    std::fs::write(path, serde_json::to_string_pretty(value).expect("JSON")).expect("write");
}

/// A work folder with an export folder per day, a snapshot folder and a config.
struct Work {
    folder: tempfile::TempDir,
}

impl Work {
    fn new() -> Work {
        Work {
            folder: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self) -> &Path {
        self.folder.path()
    }

    fn export(&self, day: &str) -> PathBuf {
        self.path().join("export").join(day)
    }

    fn snapshots(&self) -> PathBuf {
        self.path().join("snapshots")
    }

    fn config(&self, text: &str) -> PathBuf {
        let path = self.path().join("idrift.toml");
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// Runs `idrift scan --from-export` on a day, with a config when given.
    fn scan(&self, day: &str, config: Option<&Path>, extra: &[&str]) -> (i32, String, String) {
        let mut command = idrift(self.path());
        command
            .arg("scan")
            .arg("--from-export")
            .arg(self.export(day))
            .arg("--snapshots")
            .arg(self.snapshots())
            .args(extra);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        run(&mut command)
    }

    /// Scans a day in JSON without writing the snapshot, so that each call
    /// compares with the same baseline.
    fn scan_json(&self, day: &str, config: Option<&Path>) -> (i32, Value) {
        let (code, stdout, stderr) = self.scan(day, config, &["--format", "json", "--dry-run"]);
        let report = serde_json::from_str(&stdout)
            .unwrap_or_else(|error| panic!("report is JSON: {error}\n{stdout}\n{stderr}"));
        (code, report)
    }

    fn baseline(&self, day: &str) {
        let (code, stdout, stderr) = self.scan(day, None, &["--format", "json"]);
        assert_eq!(code, 0, "baseline scan:\n{stdout}\n{stderr}");
    }

    fn rules_check(&self, config: &Path, extra: &[&str]) -> (i32, String, String) {
        run(idrift(self.path())
            .args(["rules", "check", "--config"])
            .arg(config)
            .arg("--snapshots")
            .arg(self.snapshots())
            .args(extra))
    }
}

/// Returns the finding of a change to the identity with this name.
fn finding<'a>(report: &'a Value, name: &str, change: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|finding| finding["identity_name"] == name && finding["change"] == change)
        .unwrap_or_else(|| panic!("no {change} finding for {name}: {report:#}"))
}

fn findings_of<'a>(report: &'a Value, change: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|finding| finding["change"] == change)
        .collect()
}

// AWS

fn trust_document(principals: &[(&str, &str)]) -> Value {
    let statements: Vec<Value> = principals
        .iter()
        .map(|(kind, value)| {
            json!({"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {*kind: value}})
        })
        .collect();
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn aws_role(
    id: &str,
    name: &str,
    path: &str,
    trust: &[(&str, &str)],
    tags: &[(&str, &str)],
) -> Value {
    let tags: Vec<Value> = tags
        .iter()
        .map(|(key, value)| json!({"Key": key, "Value": value}))
        .collect();
    json!({"RoleId": id, "RoleName": name, "Path": path,
           "Arn": format!("arn:aws:iam::{ACCOUNT}:role{path}{name}"),
           "CreateDate": "2024-05-01T10:00:00+00:00",
           "AssumeRolePolicyDocument": trust_document(trust),
           "AttachedManagedPolicies": [], "RolePolicyList": [], "Tags": tags})
}

fn aws_user(id: &str, name: &str, tags: &[(&str, &str)]) -> Value {
    let tags: Vec<Value> = tags
        .iter()
        .map(|(key, value)| json!({"Key": key, "Value": value}))
        .collect();
    json!({"UserId": id, "UserName": name, "Path": "/",
           "Arn": format!("arn:aws:iam::{ACCOUNT}:user/{name}"),
           "CreateDate": "2024-05-01T10:00:00+00:00", "GroupList": [],
           "AttachedManagedPolicies": [], "UserPolicyList": [], "Tags": tags})
}

/// One day of an AWS account's exports: authorization details and one key
/// listing per user (user name, key ids).
#[derive(Clone)]
struct AwsDay {
    users: Vec<Value>,
    roles: Vec<Value>,
    keys: Vec<(String, Vec<String>)>,
}

impl AwsDay {
    fn first() -> AwsDay {
        AwsDay {
            users: vec![aws_user("AIDAALICE00000000001", "alice", &[])],
            roles: vec![aws_role(
                "AROAAPPSERVER0000001",
                "app-server",
                "/",
                &[("Service", "ec2.amazonaws.com")],
                &[],
            )],
            keys: vec![(
                "alice".to_string(),
                vec!["AKIAALICE00000000001".to_string()],
            )],
        }
    }

    fn write_to(&self, root: &Path) {
        let folder = root.join("aws").join(ACCOUNT);
        write(
            &folder.join("authz.json"),
            &json!({"UserDetailList": self.users, "RoleDetailList": self.roles,
                    "GroupDetailList": [], "Policies": []}),
        );
        for (user, keys) in &self.keys {
            let metadata: Vec<Value> = keys
                .iter()
                .map(|key| {
                    json!({"UserName": user, "AccessKeyId": key, "Status": "Active",
                           "CreateDate": "2024-05-02T10:00:00+00:00"})
                })
                .collect();
            write(
                &folder.join(format!("keys-{user}.json")),
                &json!({"AccessKeyMetadata": metadata}),
            );
        }
    }
}

/// Writes day 1 and day 2 of an AWS account and scans day 1 as the baseline.
fn aws_work(second: &AwsDay) -> Work {
    let work = Work::new();
    AwsDay::first().write_to(&work.export("day-1"));
    second.write_to(&work.export("day-2"));
    work.baseline("day-1");
    work
}

const CI_RULE: &str = "[[expected]]\nowner = \"platform-team\"\nreason = \"CI deploy roles\"\n\
                       provider = \"aws\"\nscope = \"1234*\"\nname = \"ci-deploy-*\"\n\
                       path_prefix = \"/ci/\"\nexpires = 2999-12-31\n";

#[test]
fn aws_rules_match_glob_regex_path_and_tag() {
    let mut second = AwsDay::first();
    let ec2 = [("Service", "ec2.amazonaws.com")];
    second.roles.extend([
        aws_role(
            "AROACIDEPLOYPROD0001",
            "ci-deploy-prod",
            "/ci/",
            &[("Federated", GITHUB)],
            &[],
        ),
        aws_role("AROACIDEPLOYROGUE001", "ci-deploy-rogue", "/", &ec2, &[]),
        aws_role(
            "AROADATALOADER000001",
            "data-loader",
            "/",
            &ec2,
            &[("team", "data")],
        ),
        aws_role(
            "AROADATAOTHER0000001",
            "data-other",
            "/",
            &ec2,
            &[("team", "web")],
        ),
        aws_role("AROAETL7000000000001", "etl-7", "/", &ec2, &[]),
        aws_role("AROAETL7X00000000001", "etl-7x", "/", &ec2, &[]),
    ]);
    let work = aws_work(&second);
    let config = work.config(&format!(
        "{CI_RULE}\n[[expected]]\nowner = \"data-team\"\nreason = \"data loaders\"\n\
         kind = \"aws_role\"\ntag = \"team=data\"\n\n\
         [[expected]]\nowner = \"data-team\"\nreason = \"numbered ETL roles\"\nname_regex = \"etl-[0-9]+\"\n"
    ));

    let (code, report) = work.scan_json("day-2", Some(&config));
    assert_eq!(code, 1, "{report:#}");
    let expected = [
        (
            "ci-deploy-prod",
            "rule expected[0] (owner platform-team): CI deploy roles",
        ),
        (
            "data-loader",
            "rule expected[1] (owner data-team): data loaders",
        ),
        (
            "etl-7",
            "rule expected[2] (owner data-team): numbered ETL roles",
        ),
    ];
    for (name, reason) in expected {
        let found = finding(&report, name, "identity_added");
        assert_eq!(found["expected"], true, "{name}");
        assert_eq!(found["expected_reason"], reason, "{name}");
        // No containment for an expected change, only the audit log lookup.
        let lookup = format!(
            "aws cloudtrail lookup-events --region us-east-1 --lookup-attributes \
             AttributeKey=ResourceName,AttributeValue={name}"
        );
        assert_eq!(found["response"], json!([lookup]), "{name}");
    }
    for name in ["ci-deploy-rogue", "data-other", "etl-7x"] {
        let found = finding(&report, name, "identity_added");
        assert_eq!(found["expected"], false, "{name}");
        assert!(found.get("expected_reason").is_none(), "{name}");
    }
    assert_eq!(report["summary"]["needs_attention"], 3, "{report:#}");

    let (_, table, _) = work.scan("day-2", Some(&config), &["--dry-run"]);
    assert!(
        table.contains("expected: rule expected[0] (owner platform-team): CI deploy roles"),
        "{table}"
    );
}

#[test]
fn new_key_is_muted_only_with_credential_added() {
    let mut second = AwsDay::first();
    second
        .users
        .push(aws_user("AIDACIBOT00000000001", "ci-bot", &[]));
    second.keys = vec![
        (
            "alice".to_string(),
            vec![
                "AKIAALICE00000000001".to_string(),
                "AKIAALICE00000000002".to_string(),
            ],
        ),
        (
            "ci-bot".to_string(),
            vec!["AKIACIBOT00000000001".to_string()],
        ),
    ];
    let work = aws_work(&second);
    let rules = |changes: &str| {
        format!(
            "[[expected]]\nowner = \"platform-team\"\nreason = \"CI users\"\nname = \"ci-*\"\n{changes}\
             [[expected]]\nowner = \"it\"\nreason = \"alice rotates her key\"\nname = \"alice\"\n{changes}"
        )
    };

    let creations_only = work.config(&rules(""));
    let (code, report) = work.scan_json("day-2", Some(&creations_only));
    assert_eq!(code, 1, "{report:#}");
    let new_user = finding(&report, "ci-bot", "identity_added");
    assert_eq!(new_user["expected"], false, "{new_user:#}");
    assert_eq!(new_user["severity"], "high");
    let new_key = finding(&report, "alice", "credential_added");
    assert_eq!(new_key["expected"], false, "{new_key:#}");

    let with_keys = work.config(&rules(
        "changes = [\"identity_added\", \"credential_added\"]\n",
    ));
    let (code, report) = work.scan_json("day-2", Some(&with_keys));
    assert_eq!(code, 0, "{report:#}");
    let new_user = finding(&report, "ci-bot", "identity_added");
    assert_eq!(
        new_user["expected_reason"],
        "rule expected[0] (owner platform-team): CI users"
    );
    let new_key = finding(&report, "alice", "credential_added");
    assert_eq!(
        new_key["expected_reason"],
        "rule expected[1] (owner it): alice rotates her key"
    );
}

#[test]
fn expired_rule_yields_finding_naming_owner() {
    let mut second = AwsDay::first();
    second.roles.push(aws_role(
        "AROACIDEPLOYPROD0001",
        "ci-deploy-prod",
        "/ci/",
        &[("Federated", GITHUB)],
        &[],
    ));
    let work = aws_work(&second);
    let config = work.config(&CI_RULE.replace("2999-12-31", "2000-01-31"));

    let (code, report) = work.scan_json("day-2", Some(&config));
    assert_eq!(code, 1, "{report:#}");
    let role = finding(&report, "ci-deploy-prod", "identity_added");
    assert_eq!(role["expected"], false, "{role:#}");
    let evidence = role["evidence"]["expired_rule"]
        .as_str()
        .expect("expired_rule");
    assert!(evidence.contains("owner platform-team"), "{evidence}");
    assert!(evidence.contains("expired 2000-01-31"), "{evidence}");

    let expired = findings_of(&report, "rule_expired");
    assert_eq!(expired.len(), 1, "{report:#}");
    assert_eq!(expired[0]["scope"], ACCOUNT);
    assert_eq!(expired[0]["identity_id"], "expected[0]");
    assert_eq!(expired[0]["evidence"]["owner"], "platform-team");
    assert_eq!(expired[0]["severity"], "low");
    assert!(
        expired[0].get("identity_kind").is_none(),
        "{:#}",
        expired[0]
    );
    let summary = expired[0]["summary"].as_str().expect("summary");
    assert!(summary.contains("owner platform-team"), "{summary}");

    // With nothing new, the expired rule alone still fails the run.
    let (code, report) = work.scan_json("day-1", Some(&config));
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(findings_of(&report, "rule_expired").len(), 1);

    let (_, table, _) = work.scan("day-1", Some(&config), &["--dry-run"]);
    assert!(table.contains("rule_expired"), "{table}");
    assert!(table.contains("owner platform-team"), "{table}");
}

#[test]
fn invalid_rules_exit_2_naming_rule_and_field() {
    let work = aws_work(&AwsDay::first());
    let good = "[[expected]]\nowner = \"a\"\nreason = \"b\"\nname = \"x\"\n\n";
    let cases = [
        (
            "[[expected]]\nreason = \"r\"\nname = \"x\"\n",
            "expected[1].owner",
        ),
        (
            "[[expected]]\nowner = \"o\"\nname = \"x\"\n",
            "expected[1].reason",
        ),
        (
            "[[expected]]\nowner = \"o\"\nreason = \"r\"\nname_regex = \"ci-(\"\n",
            "expected[1].name_regex",
        ),
        (
            "[[expected]]\nowner = \"o\"\nreason = \"r\"\nname = \"x\"\nexpires = \"31/12/2026\"\n",
            "expected[1].expires",
        ),
        (
            "[[expected]]\nowner = \"o\"\nreason = \"r\"\nname = \"x\"\nexpires = 2026-02-30\n",
            "expected[1].expires",
        ),
        (
            "[[expected]]\nowner = \"o\"\nreason = \"r\"\nname = \"x\"\nowners = \"p\"\n",
            "expected[1].owners",
        ),
        (
            "[[expected]]\nowner = \"o\"\nreason = \"r\"\nkind = \"iam_user\"\n",
            "expected[1].kind",
        ),
        (
            "[[expected]]\nowner = \"o\"\nreason = \"r\"\nname = \"x\"\nchanges = [\"key_added\"]\n",
            "expected[1].changes[0]",
        ),
    ];
    for (rule, key) in cases {
        let config = work.config(&format!("{good}{rule}"));
        let (code, stdout, stderr) = work.scan("day-1", Some(&config), &["--format", "json"]);
        assert_eq!(code, 2, "{rule}\n{stdout}\n{stderr}");
        let report: Value = serde_json::from_str(&stdout).expect("JSON report");
        let errors = report["errors"].to_string();
        assert!(errors.contains(key), "{rule}: {errors}");
        assert!(errors.contains("idrift.toml"), "{rule}: {errors}");

        let (code, stdout, _) = work.rules_check(&config, &[]);
        assert_eq!(code, 2, "rules check: {rule}\n{stdout}");
        assert!(stdout.contains(key), "rules check: {rule}\n{stdout}");
    }
}

#[test]
fn aws_platform_roles_versus_lookalikes() {
    let mut second = AwsDay::first();
    let ecs = ("Service", "ecs.amazonaws.com");
    let slr_path = "/aws-service-role/ecs.amazonaws.com/";
    let sso_path = "/aws-reserved/sso.amazonaws.com/eu-west-1/";
    let outside_provider =
        "arn:aws:iam::999988887777:saml-provider/AWSSSO_0123456789abcdef_DO_NOT_DELETE";
    second.roles.extend([
        aws_role(
            "AROASLR0000000000001",
            "AWSServiceRoleForECS",
            slr_path,
            &[ecs],
            &[],
        ),
        aws_role(
            "AROASLRMIXED00000001",
            "AWSServiceRoleForECSMixed",
            slr_path,
            &[ecs, ("AWS", "arn:aws:iam::999988887777:root")],
            &[],
        ),
        aws_role(
            "AROASSO0000000000001",
            "AWSReservedSSO_ReadOnly_0123456789abcdef",
            sso_path,
            &[("Federated", SSO_PROVIDER)],
            &[],
        ),
        aws_role(
            "AROASSOLOOKALIKE0001",
            "AWSReservedSSO_Admin_0123456789abcdef",
            sso_path,
            &[("Federated", outside_provider)],
            &[],
        ),
    ]);
    let work = aws_work(&second);

    let (code, report) = work.scan_json("day-2", None);
    assert_eq!(code, 1, "{report:#}");
    let platform = [
        ("AWSServiceRoleForECS", "service-linked"),
        (
            "AWSReservedSSO_ReadOnly_0123456789abcdef",
            "Identity Center",
        ),
    ];
    for (name, reason) in platform {
        let found = finding(&report, name, "identity_added");
        assert_eq!(found["expected"], true, "{name}");
        assert_eq!(found["severity"], "low", "{name}");
        let text = found["expected_reason"].as_str().expect("expected_reason");
        assert!(text.contains(reason), "{name}: {text}");
    }
    let mixed = finding(&report, "AWSServiceRoleForECSMixed", "identity_added");
    assert_eq!(mixed["expected"], false, "{mixed:#}");
    assert_eq!(mixed["severity"], "high");
    let lookalike = finding(
        &report,
        "AWSReservedSSO_Admin_0123456789abcdef",
        "identity_added",
    );
    assert_eq!(lookalike["expected"], false, "{lookalike:#}");
}

// Entra ID

fn service_principal(id: &str, name: &str, owner: &str) -> Value {
    json!({"id": id, "appId": format!("app-{id}"), "displayName": name,
           "servicePrincipalType": "Application", "appOwnerOrganizationId": owner,
           "accountEnabled": true, "passwordCredentials": [], "keyCredentials": []})
}

fn write_tenant(root: &Path, service_principals: &[Value]) {
    let folder = root.join("azure").join(TENANT);
    write(
        &folder.join("users.json"),
        &json!([{"id": "u-alice", "userPrincipalName": "alice@contoso.com", "userType": "Member",
                 "accountEnabled": true, "createdDateTime": "2024-01-02T03:04:05Z"}]),
    );
    write(
        &folder.join("service-principals.json"),
        &json!({"value": service_principals}),
    );
    write(&folder.join("applications.json"), &json!([]));
    // An empty list cannot be recognized, so each day dumps one assignment
    // of a role that is not privileged (Directory Readers).
    write(
        &folder.join("role-assignments.json"),
        &json!({"value": [{"id": "ra-0", "principalId": "u-alice",
            "roleDefinitionId": "88d8e3e3-8f55-4a1e-953a-9b9898b8876b", "directoryScopeId": "/"}]}),
    );
}

#[test]
fn azure_first_party_versus_tenant_owned() {
    let work = Work::new();
    let first = [service_principal("sp-deploy", "deploy", TENANT)];
    write_tenant(&work.export("day-1"), &first);
    let mut second = first.to_vec();
    second.extend([
        service_principal("sp-graph", "Microsoft Graph", MICROSOFT),
        service_principal("sp-fake-graph", "Microsoft Graph", TENANT),
        service_principal(
            "sp-vendor",
            "Contoso Vendor Sync (EU)",
            "11111111-2222-3333-4444-555555555555",
        ),
    ]);
    write_tenant(&work.export("day-2"), &second);
    work.baseline("day-1");
    let config = work.config(&format!(
        "[[expected]]\nowner = \"identity-team\"\nreason = \"vendor sync app\"\nprovider = \"azure\"\n\
         scope = \"{TENANT}\"\nkind = \"azure_service_principal\"\nname = \"Contoso Vendor Sync*\"\n"
    ));

    let (code, report) = work.scan_json("day-2", Some(&config));
    assert_eq!(code, 1, "{report:#}");
    let by_id = |id: &str| {
        report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .find(|finding| finding["identity_id"] == id)
            .unwrap_or_else(|| panic!("no finding for {id}: {report:#}"))
            .clone()
    };
    let first_party = by_id("sp-graph");
    assert_eq!(first_party["expected"], true);
    assert_eq!(first_party["severity"], "low");
    let text = first_party["expected_reason"].as_str().expect("reason");
    assert!(text.contains("first-party"), "{text}");

    let tenant_owned = by_id("sp-fake-graph");
    assert_eq!(tenant_owned["expected"], false, "{tenant_owned:#}");
    // The export has no Azure RBAC listing, so idrift cannot tell whether
    // the new service principal has a subscription role.
    assert_eq!(tenant_owned["severity"], "high", "{tenant_owned:#}");
    let why = tenant_owned["severity_reason"].as_str().expect("reason");
    assert!(why.contains("azure_rbac not listed in full"), "{why}");

    let vendor = by_id("sp-vendor");
    assert_eq!(
        vendor["expected_reason"],
        "rule expected[0] (owner identity-team): vendor sync app"
    );
    assert_eq!(report["summary"]["needs_attention"], 1);
}

// Google Cloud

fn gcp_account(unique_id: &str, local: &str) -> Value {
    let email = format!("{local}@{PROJECT}.iam.gserviceaccount.com");
    json!({"name": format!("projects/{PROJECT}/serviceAccounts/{email}"), "projectId": PROJECT,
           "uniqueId": unique_id, "email": email, "displayName": local, "oauth2ClientId": unique_id})
}

fn write_project(root: &Path, accounts: &[Value], bindings: &[Value]) {
    let folder = root.join("gcp").join(PROJECT);
    write(
        &folder.join("service-accounts.json"),
        &Value::from(accounts.to_vec()),
    );
    for account in accounts {
        let email = account["email"].as_str().expect("email");
        write(&folder.join(format!("keys-{email}.json")), &json!([]));
    }
    write(
        &folder.join("iam-policy.json"),
        &json!({"version": 1, "etag": "BwYGazsSkKc=", "bindings": bindings}),
    );
}

#[test]
fn gcp_service_agent_versus_lookalike() {
    let work = Work::new();
    let app = gcp_account("100000000000000001001", "app");
    let viewer = json!({"role": "roles/viewer",
        "members": [format!("serviceAccount:app@{PROJECT}.iam.gserviceaccount.com")]});
    write_project(
        &work.export("day-1"),
        std::slice::from_ref(&app),
        std::slice::from_ref(&viewer),
    );

    let agent = "service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com";
    let outside_lookalike = "service-123456789012@evil-project.iam.gserviceaccount.com";
    let accounts = [
        app,
        gcp_account("100000000000000001002", "service-123456789012"),
        gcp_account("100000000000000001003", "deploy-web"),
    ];
    let bindings = [
        viewer,
        json!({"role": "roles/pubsub.serviceAgent", "members": [format!("serviceAccount:{agent}")]}),
        json!({"role": "roles/iam.serviceAccountTokenCreator",
               "members": [format!("serviceAccount:{outside_lookalike}")]}),
    ];
    write_project(&work.export("day-2"), &accounts, &bindings);
    work.baseline("day-1");
    let config = work.config(
        "[[expected]]\nowner = \"web-team\"\nreason = \"deploy accounts\"\nprovider = \"gcp\"\n\
         scope = \"demo-*\"\nkind = \"gcp_service_account\"\n\
         name = \"deploy-*@demo-project.iam.gserviceaccount.com\"\n",
    );

    let (code, report) = work.scan_json("day-2", Some(&config));
    assert_eq!(code, 1, "{report:#}");
    let service_agent = finding(&report, agent, "identity_added");
    assert_eq!(service_agent["expected"], true, "{service_agent:#}");
    assert_eq!(service_agent["severity"], "low");

    let lookalike_email = format!("service-123456789012@{PROJECT}.iam.gserviceaccount.com");
    let lookalike = finding(&report, &lookalike_email, "identity_added");
    assert_eq!(lookalike["expected"], false, "{lookalike:#}");
    assert_eq!(lookalike["severity"], "medium");

    let outside = finding(&report, outside_lookalike, "identity_added");
    assert_eq!(outside["expected"], false, "{outside:#}");
    // Token creator on the project reaches every service account in it.
    assert_eq!(outside["severity"], "high");

    let deploy_email = format!("deploy-web@{PROJECT}.iam.gserviceaccount.com");
    let deploy = finding(&report, &deploy_email, "identity_added");
    assert_eq!(
        deploy["expected_reason"],
        "rule expected[0] (owner web-team): deploy accounts"
    );
    assert_eq!(report["summary"]["needs_attention"], 2);
}

// idrift rules check and idrift diff

/// Returns an account whose identities match the example config's two AWS rules.
fn example_account() -> AwsDay {
    let mut day = AwsDay::first();
    day.roles.push(aws_role(
        "AROACIDEPLOYPROD0001",
        "ci-deploy-prod",
        "/ci/",
        &[("Federated", GITHUB)],
        &[],
    ));
    day.users.push(aws_user(
        "AIDAETLORDERS0000001",
        "etl-orders-01",
        &[("managed-by", "onboarding")],
    ));
    day.keys.push((
        "etl-orders-01".to_string(),
        vec!["AKIAETLORDERS0000001".to_string()],
    ));
    day
}

#[test]
fn rules_check_lists_reach_of_example_config() {
    let work = Work::new();
    example_account().write_to(&work.export("day-1"));
    work.baseline("day-1");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");

    let (code, stdout, stderr) = work.rules_check(&example, &["--as-of", "2026-01-01"]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("expected[0]: in force until 2027-06-30; owner platform-team"),
        "{stdout}"
    );
    assert!(
        stdout.contains("aws 123456789012 aws_role ci-deploy-prod (AROACIDEPLOYPROD0001)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("aws 123456789012 aws_user etl-orders-01"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("matches nothing in the snapshots").count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("4 rules in"), "{stdout}");
    assert!(stdout.contains("matches 1 identity:"), "{stdout}");
    assert!(stdout.contains("2 matching nothing"), "{stdout}");

    let (code, stdout, _) =
        work.rules_check(&example, &["--as-of", "2027-04-01", "--format", "json"]);
    assert_eq!(code, 1);
    let check: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(check["rules"][0]["status"], "in_force");
    assert_eq!(check["rules"][1]["status"], "expired");
    assert_eq!(check["rules"][1]["owner"], "data-team");
    assert_eq!(check["rules"][1]["matches"][0]["name"], "etl-orders-01");
    assert_eq!(check["rules"][2]["matches"], json!([]));
    assert_eq!(check["summary"]["expired"], 1);
    assert_eq!(check["summary"]["matching_nothing"], 2);
}

#[test]
fn rules_check_exit_codes() {
    let work = Work::new();
    example_account().write_to(&work.export("day-1"));
    work.baseline("day-1");

    let matching = work.config(CI_RULE);
    let (code, stdout, stderr) = work.rules_check(&matching, &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("0 expired, 0 matching nothing"), "{stdout}");

    let creations_only = work
        .config("[[expected]]\nowner = \"data-team\"\nreason = \"ETL users\"\nname = \"etl-*\"\n");
    let (code, stdout, _) = work.rules_check(&creations_only, &[]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("its creation is muted only if changes also lists credential_added"),
        "{stdout}"
    );

    let expired = work.config(&CI_RULE.replace("2999-12-31", "2000-01-31"));
    let (code, stdout, _) = work.rules_check(&expired, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("EXPIRED on 2000-01-31"), "{stdout}");

    let nothing = work.config(&CI_RULE.replace("ci-deploy-*", "no-such-role"));
    let (code, stdout, _) = work.rules_check(&nothing, &[]);
    assert_eq!(code, 1, "{stdout}");

    let (code, stdout, _) = run(idrift(work.path())
        .args(["rules", "check", "--config"])
        .arg(&matching)
        .arg("--snapshots")
        .arg(work.path().join("no-snapshots")));
    assert_eq!(code, 2, "{stdout}");
    assert!(stdout.contains("idrift scan"), "{stdout}");
}

#[test]
fn diff_applies_config_rules() {
    let mut second = AwsDay::first();
    second.roles.push(aws_role(
        "AROACIDEPLOYPROD0001",
        "ci-deploy-prod",
        "/ci/",
        &[("Federated", GITHUB)],
        &[],
    ));
    let work = aws_work(&second);
    let old = work.path().join("old");
    std::fs::rename(work.snapshots(), &old).expect("move day 1 snapshots");
    let (code, _, stderr) = work.scan("day-2", None, &[]);
    assert_eq!(code, 0, "{stderr}");

    let diff = |config: Option<&Path>| {
        let mut command = idrift(work.path());
        command
            .arg("diff")
            .arg(&old)
            .arg(work.snapshots())
            .args(["--format", "json"]);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let (code, stdout, stderr) = run(&mut command);
        let report: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|error| panic!("report is JSON: {error}\n{stdout}\n{stderr}"));
        (code, report)
    };
    let (code, report) = diff(None);
    assert_eq!(code, 1, "{report:#}");
    let config = work.config(CI_RULE);
    let (code, report) = diff(Some(&config));
    assert_eq!(code, 0, "{report:#}");
    let role = finding(&report, "ci-deploy-prod", "identity_added");
    assert_eq!(
        role["expected_reason"],
        "rule expected[0] (owner platform-team): CI deploy roles"
    );
}
