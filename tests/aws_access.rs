//! AWS access paths beyond new users and roles, end to end against moto.
//! The tests cover a principal added to an existing role's trust policy,
//! OIDC and SAML providers, an admin role put in an instance profile, and
//! IAM Identity Center users and permission-set assignments. Denied calls
//! and repeated page tokens go through the gate in front of moto, and
//! offline exports through `--from-export`.

mod common;

use std::path::Path;

use serde_json::Value;

use common::aws_gate::{AwsGate, GateResponse};
use common::{Moto, idrift, run, test_credentials as credentials, write_config};

const ACCOUNT: &str = "123456789012";
const ADMIN_POLICY: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
const EC2_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const OUTSIDE_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"},{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999988887777:root"},"Action":"sts:AssumeRole"}]}"#;
const SAML_METADATA: &str = r#"<?xml version="1.0"?><md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example.com"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"/></md:EntityDescriptor>"#;
const SSO_PROVIDER: &str = "AWSSSO_0123456789abcdef_DO_NOT_DELETE";

/// Runs `idrift scan` on a source (`--config FILE` or `--from-export DIR`)
/// and returns the exit code and the JSON report.
fn scan_source(home: &Path, flag: &str, source: &Path, snapshots: &Path) -> (i32, Value) {
    let (code, stdout, stderr) = run(idrift(home)
        .arg("scan")
        .arg(flag)
        .arg(source)
        .arg("--snapshots")
        .arg(snapshots)
        .args(["--format", "json"]));
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("report is JSON: {error}\n{stdout}\n{stderr}"));
    (code, report)
}

fn scan(home: &Path, config: &Path, snapshots: &Path) -> (i32, Value) {
    scan_source(home, "--config", config, snapshots)
}

fn scan_export(home: &Path, export: &Path, snapshots: &Path) -> (i32, Value) {
    scan_source(home, "--from-export", export, snapshots)
}

fn findings(report: &Value) -> &Vec<Value> {
    report["findings"].as_array().expect("findings")
}

fn finding<'a>(report: &'a Value, change: &str, kind: &str, name: &str) -> &'a Value {
    findings(report)
        .iter()
        .find(|finding| {
            finding["change"] == change
                && finding["identity_kind"] == kind
                && finding["identity_name"] == name
        })
        .unwrap_or_else(|| panic!("no {change} finding for {kind} {name} in {report:#}"))
}

fn read_snapshot(snapshots: &Path) -> Value {
    let text =
        std::fs::read_to_string(snapshots.join(format!("aws/{ACCOUNT}.json"))).expect("snapshot");
    serde_json::from_str(&text).expect("JSON")
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

fn sso_admin_client(endpoint: &str) -> aws_sdk_ssoadmin::Client {
    let config = aws_sdk_ssoadmin::Config::builder()
        .behavior_version(aws_sdk_ssoadmin::config::BehaviorVersion::latest())
        .region(aws_sdk_ssoadmin::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(credentials())
        .build();
    aws_sdk_ssoadmin::Client::from_conf(config)
}

fn identity_store_client(endpoint: &str) -> aws_sdk_identitystore::Client {
    let config = aws_sdk_identitystore::Config::builder()
        .behavior_version(aws_sdk_identitystore::config::BehaviorVersion::latest())
        .region(aws_sdk_identitystore::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(credentials())
        .build();
    aws_sdk_identitystore::Client::from_conf(config)
}

async fn create_role(iam: &aws_sdk_iam::Client, name: &str, admin: bool) {
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(EC2_TRUST)
        .send()
        .await
        .expect("create role");
    if admin {
        iam.attach_role_policy()
            .role_name(name)
            .policy_arn(ADMIN_POLICY)
            .send()
            .await
            .expect("attach policy");
    }
}

async fn create_saml_provider(iam: &aws_sdk_iam::Client, name: &str) {
    iam.create_saml_provider()
        .name(name)
        .saml_metadata_document(SAML_METADATA)
        .send()
        .await
        .expect("create SAML provider");
}

async fn create_oidc_provider(iam: &aws_sdk_iam::Client, url: &str) {
    iam.create_open_id_connect_provider()
        .url(url)
        .client_id_list("sts.amazonaws.com")
        .thumbprint_list("0123456789012345678901234567890123456789")
        .send()
        .await
        .expect("create OIDC provider");
}

/// Two roles, an instance profile holding the one without admin rights,
/// and a SAML provider: the account before the intrusion.
async fn seed_iam(iam: &aws_sdk_iam::Client) {
    create_role(iam, "deploy", false).await;
    create_role(iam, "app", false).await;
    create_role(iam, "break-glass", true).await;
    iam.create_instance_profile()
        .instance_profile_name("web")
        .send()
        .await
        .expect("create instance profile");
    iam.add_role_to_instance_profile()
        .instance_profile_name("web")
        .role_name("app")
        .send()
        .await
        .expect("add role");
    create_saml_provider(iam, "Okta").await;
}

/// Changes IAM as an intruder would, and adds two providers that AWS services make.
async fn intrude_iam(iam: &aws_sdk_iam::Client) {
    iam.update_assume_role_policy()
        .role_name("deploy")
        .policy_document(OUTSIDE_TRUST)
        .send()
        .await
        .expect("update trust policy");
    create_oidc_provider(iam, "https://token.actions.githubusercontent.com").await;
    create_oidc_provider(
        iam,
        "https://oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF",
    )
    .await;
    create_saml_provider(iam, "Shadow").await;
    create_saml_provider(iam, SSO_PROVIDER).await;
    iam.remove_role_from_instance_profile()
        .instance_profile_name("web")
        .role_name("app")
        .send()
        .await
        .expect("remove role");
    iam.add_role_to_instance_profile()
        .instance_profile_name("web")
        .role_name("break-glass")
        .send()
        .await
        .expect("add admin role");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_providers_and_instance_profiles() {
    let moto = Moto::start();
    let iam = moto.iam_client().await;
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let config = write_config(work.path(), &moto.endpoint, "");

    seed_iam(&iam).await;
    let (code, report) = scan(work.path(), &config, &snapshots);
    assert_eq!(code, 0, "baseline: {report:#}");
    let baseline = read_snapshot(&snapshots);
    for collection in ["instance_profiles", "oidc_providers", "saml_providers"] {
        assert_eq!(
            baseline["collections"][collection]["status"], "complete",
            "{collection}"
        );
    }
    assert_eq!(names_of(&baseline, "aws_instance_profile"), ["web"]);
    assert_eq!(names_of(&baseline, "aws_saml_provider"), ["Okta"]);

    intrude_iam(&iam).await;
    let (code, report) = scan(work.path(), &config, &snapshots);
    assert_eq!(code, 1, "after intrusion: {report:#}");
    assert_eq!(findings(&report).len(), 7, "{report:#}");

    let trust = finding(&report, "trust_changed", "aws_role", "deploy");
    assert_eq!(trust["severity"], "high");
    assert_eq!(trust["technique"]["id"], "T1098.003");
    assert_eq!(
        trust["evidence"]["principal"],
        "arn:aws:iam::999988887777:root"
    );
    assert_eq!(
        trust["evidence"]["principal_account"],
        "999988887777 (outside this account)"
    );
    assert_eq!(trust["evidence"]["principal_conditional"], "false");
    assert_eq!(
        trust["summary"],
        "IAM role deploy now trusts aws principal arn:aws:iam::999988887777:root"
    );

    let github = finding(
        &report,
        "identity_added",
        "aws_oidc_provider",
        "token.actions.githubusercontent.com",
    );
    assert_eq!(github["severity"], "high");
    assert_eq!(github["expected"], false);
    assert_eq!(github["technique"]["id"], "T1484.002");
    assert_eq!(github["evidence"]["client_ids"], "sts.amazonaws.com");
    assert!(
        github["response"]
            .to_string()
            .contains("delete-open-id-connect-provider")
    );
    let eks = finding(
        &report,
        "identity_added",
        "aws_oidc_provider",
        "oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF",
    );
    assert_eq!(eks["expected"], true);
    assert_eq!(eks["severity"], "low");

    let shadow = finding(&report, "identity_added", "aws_saml_provider", "Shadow");
    assert_eq!(shadow["severity"], "high");
    assert_eq!(shadow["expected"], false);
    let sso = finding(&report, "identity_added", "aws_saml_provider", SSO_PROVIDER);
    assert_eq!(sso["expected"], true);
    assert_eq!(sso["severity"], "low");

    let profile = finding(&report, "privilege_added", "aws_instance_profile", "web");
    assert_eq!(profile["severity"], "critical");
    assert_eq!(profile["technique"]["id"], "T1098.003");
    assert!(
        profile["response"].to_string().contains(
            "remove-role-from-instance-profile --instance-profile-name=web --role-name=break-glass"
        ),
        "{profile:#}"
    );
    let roles = finding(&report, "attribute_changed", "aws_instance_profile", "web");
    assert_eq!(roles["severity"], "low");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_trust_principal_is_info() {
    let moto = Moto::start();
    let iam = moto.iam_client().await;
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let config = write_config(work.path(), &moto.endpoint, "");

    iam.create_role()
        .role_name("deploy")
        .assume_role_policy_document(OUTSIDE_TRUST)
        .send()
        .await
        .expect("create role");
    let (code, report) = scan(work.path(), &config, &snapshots);
    assert_eq!(code, 0, "baseline: {report:#}");

    iam.update_assume_role_policy()
        .role_name("deploy")
        .policy_document(EC2_TRUST)
        .send()
        .await
        .expect("update trust policy");
    let (code, report) = scan(work.path(), &config, &snapshots);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(findings(&report).len(), 1, "{report:#}");
    let removed = finding(&report, "trust_changed", "aws_role", "deploy");
    assert_eq!(removed["severity"], "info");
    assert_eq!(removed["technique"]["id"], "T1531");
}

/// The instance moto creates, and the permission sets and users made in it.
struct IdentityCenter {
    sso_admin: aws_sdk_ssoadmin::Client,
    identity_store: aws_sdk_identitystore::Client,
    instance_arn: String,
    identity_store_id: String,
}

impl IdentityCenter {
    async fn connect(endpoint: &str) -> IdentityCenter {
        let sso_admin = sso_admin_client(endpoint);
        let instances = sso_admin
            .list_instances()
            .send()
            .await
            .expect("list instances");
        let instance = instances.instances().first().expect("moto's instance");
        IdentityCenter {
            instance_arn: instance.instance_arn().expect("ARN").to_string(),
            identity_store_id: instance.identity_store_id().expect("store").to_string(),
            sso_admin,
            identity_store: identity_store_client(endpoint),
        }
    }

    async fn create_user(&self, name: &str) -> String {
        let user_name = aws_sdk_identitystore::types::Name::builder()
            .given_name(name)
            .family_name("Example")
            .build();
        self.identity_store
            .create_user()
            .identity_store_id(&self.identity_store_id)
            .user_name(name)
            .display_name(name)
            .name(user_name)
            .send()
            .await
            .expect("create user")
            .user_id()
            .to_string()
    }

    async fn create_permission_set(&self, name: &str, managed_policy: &str) -> String {
        let created = self
            .sso_admin
            .create_permission_set()
            .instance_arn(&self.instance_arn)
            .name(name)
            // moto echoes a missing duration as the number 3600, which the
            // SDK rejects; AWS sends an ISO 8601 duration string.
            .session_duration("PT1H")
            .send()
            .await
            .expect("create permission set");
        let arn = created
            .permission_set()
            .and_then(|set| set.permission_set_arn())
            .expect("permission set ARN")
            .to_string();
        self.sso_admin
            .attach_managed_policy_to_permission_set()
            .instance_arn(&self.instance_arn)
            .permission_set_arn(&arn)
            .managed_policy_arn(managed_policy)
            .send()
            .await
            .expect("attach managed policy");
        arn
    }

    /// Assigns a permission set to a user in the account and provisions
    /// it there, as AWS does on assignment.
    async fn assign(&self, permission_set_arn: &str, user_id: &str) {
        self.sso_admin
            .create_account_assignment()
            .instance_arn(&self.instance_arn)
            .target_id(ACCOUNT)
            .target_type(aws_sdk_ssoadmin::types::TargetType::AwsAccount)
            .permission_set_arn(permission_set_arn)
            .principal_type(aws_sdk_ssoadmin::types::PrincipalType::User)
            .principal_id(user_id)
            .send()
            .await
            .expect("create assignment");
        self.sso_admin
            .provision_permission_set()
            .instance_arn(&self.instance_arn)
            .permission_set_arn(permission_set_arn)
            .target_type(aws_sdk_ssoadmin::types::ProvisionTargetType::AwsAccount)
            .target_id(ACCOUNT)
            .send()
            .await
            .expect("provision permission set");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_center_user_and_admin_assignment() {
    let moto = Moto::start();
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let config = write_config(work.path(), &moto.endpoint, "identity_center = true\n");
    let center = IdentityCenter::connect(&moto.endpoint).await;

    let alice = center.create_user("alice").await;
    let read_only = center
        .create_permission_set("ReadOnly", "arn:aws:iam::aws:policy/ReadOnlyAccess")
        .await;
    center.assign(&read_only, &alice).await;
    let (code, report) = scan(work.path(), &config, &snapshots);
    assert_eq!(code, 0, "baseline: {report:#}");
    let baseline = read_snapshot(&snapshots);
    assert_eq!(
        baseline["collections"]["identity_center_users"]["status"],
        "complete"
    );
    assert_eq!(names_of(&baseline, "aws_identity_center_user"), ["alice"]);
    assert_eq!(
        names_of(&baseline, "aws_permission_set_assignment"),
        [format!("ReadOnly for USER {alice} in {ACCOUNT}")]
    );

    // The call plan: STS, authorization details, the two provider listings,
    // ListInstances, ListUsers and ListPermissionSets, then four calls for
    // the one permission set and one ListAccountAssignments for the one
    // account it is provisioned to.
    let metadata =
        std::fs::read_to_string(snapshots.join(format!(".idrift/last-scan/aws/{ACCOUNT}.json")))
            .expect("scan metadata");
    let metadata: Value = serde_json::from_str(&metadata).expect("JSON");
    assert_eq!(metadata["api_calls"], 12, "{metadata:#}");

    let mallory = center.create_user("mallory").await;
    let admin = center.create_permission_set("Admin", ADMIN_POLICY).await;
    center.assign(&admin, &mallory).await;
    let (code, report) = scan(work.path(), &config, &snapshots);
    assert_eq!(code, 1, "after intrusion: {report:#}");
    assert_eq!(findings(&report).len(), 2, "{report:#}");

    let user = finding(
        &report,
        "identity_added",
        "aws_identity_center_user",
        "mallory",
    );
    assert_eq!(user["severity"], "medium");
    assert_eq!(user["technique"]["id"], "T1136.003");
    assert_eq!(user["identity_id"], mallory.as_str());

    let name = format!("Admin for USER {mallory} in {ACCOUNT}");
    let assignment = finding(
        &report,
        "identity_added",
        "aws_permission_set_assignment",
        &name,
    );
    assert_eq!(assignment["severity"], "critical");
    assert_eq!(assignment["technique"]["id"], "T1098.003");
    assert_eq!(assignment["evidence"]["principal_name"], "mallory");
    assert_eq!(assignment["evidence"]["target_account"], ACCOUNT);
    let response = assignment["response"].to_string();
    assert!(response.contains("delete-account-assignment"), "{response}");
    assert!(response.contains(&center.instance_arn), "{response}");
    assert!(response.contains(&mallory), "{response}");
}

/// Returns IAM's Query-protocol `AccessDenied` for an action.
fn query_denied(action: &str) -> GateResponse {
    GateResponse {
        status: 403,
        content_type: "text/xml",
        body: format!(
            "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">\
             <Error><Type>Sender</Type><Code>AccessDenied</Code>\
             <Message>User: arn:aws:iam::{ACCOUNT}:user/idrift is not authorized to perform: \
             iam:{action} on resource: arn:aws:iam::{ACCOUNT}:saml-provider/*</Message></Error>\
             <RequestId>4bd1a2a0-0000-4000-8000-000000000000</RequestId></ErrorResponse>"
        ),
    }
}

/// Returns the JSON-protocol `AccessDeniedException` of the identity store.
fn json_denied(action: &str) -> GateResponse {
    GateResponse {
        status: 400,
        content_type: "application/x-amz-json-1.1",
        body: format!(
            "{{\"__type\":\"AccessDeniedException\",\"Message\":\"User: arn:aws:iam::{ACCOUNT}:user/idrift \
             is not authorized to perform: identitystore:{action}\"}}"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_listing_is_incomplete_not_empty() {
    let moto = Moto::start();
    let iam = moto.iam_client().await;
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let center = IdentityCenter::connect(&moto.endpoint).await;
    create_saml_provider(&iam, "Okta").await;
    center.create_user("alice").await;

    let direct = write_config(work.path(), &moto.endpoint, "identity_center = true\n");
    let (code, report) = scan(work.path(), &direct, &snapshots);
    assert_eq!(code, 0, "baseline: {report:#}");

    let gate = AwsGate::start(
        &moto.endpoint,
        Box::new(|request| {
            if request.body.contains("Action=ListSAMLProviders") {
                return Some(query_denied("ListSAMLProviders"));
            }
            if request.target.as_deref() == Some("AWSIdentityStore.ListUsers") {
                return Some(json_denied("ListUsers"));
            }
            None
        }),
    );
    let gated = write_config(work.path(), &gate.endpoint, "identity_center = true\n");
    let (code, report) = scan(work.path(), &gated, &snapshots);
    assert_eq!(code, 2, "a denied listing fails the run: {report:#}");
    let incomplete = report["scopes"][0]["incomplete"].to_string();
    assert!(incomplete.contains("saml_providers"), "{report:#}");
    assert!(incomplete.contains("identity_center_users"), "{report:#}");
    assert!(findings(&report).is_empty(), "{report:#}");

    let snapshot = read_snapshot(&snapshots);
    let saml = &snapshot["collections"]["saml_providers"];
    assert_eq!(saml["status"], "incomplete");
    assert_eq!(saml["kept_previous"], true);
    let reason = saml["reason"].as_str().expect("reason");
    assert!(reason.contains(ACCOUNT), "{reason}");
    assert!(reason.contains("AccessDenied"), "{reason}");
    assert!(reason.contains("grant iam:ListSAMLProviders"), "{reason}");
    let users = &snapshot["collections"]["identity_center_users"];
    assert_eq!(users["status"], "incomplete");
    assert!(
        users["reason"]
            .as_str()
            .expect("reason")
            .contains("grant identitystore:ListUsers"),
        "{users:#}"
    );
    assert_eq!(names_of(&snapshot, "aws_saml_provider"), ["Okta"]);
    assert_eq!(names_of(&snapshot, "aws_identity_center_user"), ["alice"]);
    assert_eq!(
        snapshot["collections"]["oidc_providers"]["status"],
        "complete"
    );
    assert_eq!(
        snapshot["collections"]["permission_set_assignments"]["status"],
        "complete"
    );
}

/// Writes one account folder of AWS CLI exports, each value a file's JSON.
fn write_export(folder: &Path, files: &[(&str, Value)]) -> std::path::PathBuf {
    let account = folder.join(format!("aws/{ACCOUNT}"));
    if account.exists() {
        std::fs::remove_dir_all(&account).expect("clear the export");
    }
    std::fs::create_dir_all(&account).expect("create the export folder");
    for (name, value) in files {
        let text = serde_json::to_string_pretty(value).expect("JSON");
        std::fs::write(account.join(name), text).expect("write export file");
    }
    folder.to_path_buf()
}

/// `aws iam get-account-authorization-details` with one role in one instance profile.
fn authorization_details() -> Value {
    serde_json::json!({
        "UserDetailList": [],
        "GroupDetailList": [],
        "Policies": [],
        "RoleDetailList": [{
            "Path": "/",
            "RoleName": "app",
            "RoleId": "AROAEXAMPLEAPP000001",
            "Arn": format!("arn:aws:iam::{ACCOUNT}:role/app"),
            "CreateDate": "2024-01-02T03:04:05+00:00",
            "AssumeRolePolicyDocument": serde_json::from_str::<Value>(EC2_TRUST).expect("JSON"),
            "InstanceProfileList": [{
                "Path": "/",
                "InstanceProfileName": "web",
                "InstanceProfileId": "AIPAEXAMPLEWEB000001",
                "Arn": format!("arn:aws:iam::{ACCOUNT}:instance-profile/web"),
                "CreateDate": "2024-01-02T03:04:05+00:00",
                "Roles": [{"RoleName": "app"}]
            }],
            "RolePolicyList": [],
            "AttachedManagedPolicies": []
        }]
    })
}

const PERMISSION_SET: &str =
    "arn:aws:sso:::permissionSet/ssoins-1234567890abcdef/ps-1111111111111111";
const ADMIN_SET: &str = "arn:aws:sso:::permissionSet/ssoins-1234567890abcdef/ps-2222222222222222";

fn store_user(id: &str, name: &str) -> Value {
    serde_json::json!({
        "IdentityStoreId": "d-1234567890",
        "UserId": id,
        "UserName": name,
        "DisplayName": name,
        "Emails": [{"Value": format!("{name}@example.com"), "Type": "work", "Primary": true}]
    })
}

fn assignment(set: &str, user_id: &str) -> Value {
    serde_json::json!({
        "AccountAssignments": [{
            "AccountId": ACCOUNT,
            "PermissionSetArn": set,
            "PrincipalType": "USER",
            "PrincipalId": user_id
        }]
    })
}

#[test]
fn export_versions_show_new_access_paths() {
    let work = tempfile::tempdir().expect("temp dir");
    let export = work.path().join("export");
    let snapshots = work.path().join("snapshots");
    let saml = |names: &[&str]| {
        let list: Vec<Value> = names
            .iter()
            .map(|name| {
                serde_json::json!({
                    "Arn": format!("arn:aws:iam::{ACCOUNT}:saml-provider/{name}"),
                    "ValidUntil": "2125-01-01T00:00:00+00:00",
                    "CreateDate": "2024-01-02T03:04:05+00:00"
                })
            })
            .collect();
        serde_json::json!({ "SAMLProviderList": list })
    };
    let describe = |arn: &str, name: &str| serde_json::json!({"PermissionSet": {"Name": name, "PermissionSetArn": arn, "SessionDuration": "PT1H"}});
    let github_arn =
        format!("arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com");

    // Version 1: the account as it was.
    write_export(
        &export,
        &[
            ("authz.json", authorization_details()),
            (
                "oidc.json",
                serde_json::json!({"OpenIDConnectProviderList": []}),
            ),
            ("saml.json", saml(&["Okta"])),
            (
                "users.json",
                serde_json::json!({"Users": [store_user("u-alice", "alice")]}),
            ),
            ("assign-1.json", assignment(PERMISSION_SET, "u-alice")),
            ("set-1.json", describe(PERMISSION_SET, "ReadOnly")),
        ],
    );
    let (code, report) = scan_export(work.path(), &export, &snapshots);
    assert_eq!(code, 0, "{report:#}");
    let snapshot = read_snapshot(&snapshots);
    assert_eq!(names_of(&snapshot, "aws_instance_profile"), ["web"]);
    assert_eq!(names_of(&snapshot, "aws_saml_provider"), ["Okta"]);
    assert_eq!(names_of(&snapshot, "aws_identity_center_user"), ["alice"]);
    assert_eq!(
        names_of(&snapshot, "aws_permission_set_assignment"),
        [format!("ReadOnly for USER u-alice in {ACCOUNT}")]
    );

    // Version 2: an OIDC provider, Identity Center's SAML provider, a new
    // user and a new assignment.
    write_export(
        &export,
        &[
            ("authz.json", authorization_details()),
            (
                "oidc.json",
                serde_json::json!({"OpenIDConnectProviderList": [{"Arn": github_arn}]}),
            ),
            (
                "oidc-github.json",
                serde_json::json!({
                    "Url": "token.actions.githubusercontent.com",
                    "ClientIDList": ["sts.amazonaws.com"],
                    "ThumbprintList": ["0123456789012345678901234567890123456789"],
                    "CreateDate": "2025-05-06T07:08:09+00:00"
                }),
            ),
            ("saml.json", saml(&["Okta", SSO_PROVIDER])),
            (
                "users.json",
                serde_json::json!({"Users": [store_user("u-alice", "alice"), store_user("u-mallory", "mallory")]}),
            ),
            ("assign-1.json", assignment(PERMISSION_SET, "u-alice")),
            ("assign-2.json", assignment(ADMIN_SET, "u-mallory")),
            ("set-1.json", describe(PERMISSION_SET, "ReadOnly")),
            ("set-2.json", describe(ADMIN_SET, "Admin")),
        ],
    );
    let (code, report) = scan_export(work.path(), &export, &snapshots);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(findings(&report).len(), 4, "{report:#}");
    let github = finding(
        &report,
        "identity_added",
        "aws_oidc_provider",
        "token.actions.githubusercontent.com",
    );
    assert_eq!(github["severity"], "high");
    assert_eq!(github["evidence"]["client_ids"], "sts.amazonaws.com");
    let sso = finding(&report, "identity_added", "aws_saml_provider", SSO_PROVIDER);
    assert_eq!(sso["expected"], true);
    let user = finding(
        &report,
        "identity_added",
        "aws_identity_center_user",
        "mallory",
    );
    assert_eq!(user["severity"], "medium");
    let name = format!("Admin for USER u-mallory in {ACCOUNT}");
    let assigned = finding(
        &report,
        "identity_added",
        "aws_permission_set_assignment",
        &name,
    );
    // The CLI's policy listings do not name their permission set, so an
    // export cannot show admin rights.
    assert_eq!(assigned["severity"], "medium");
    assert_eq!(assigned["technique"]["id"], "T1098.003");
    assert!(
        assigned["response"]
            .to_string()
            .contains("--instance-arn arn:aws:sso:::instance/ssoins-1234567890abcdef"),
        "{assigned:#}"
    );

    // Version 3: the SAML listing and the OIDC details are missing. That is
    // not an empty listing: the previous records stay.
    write_export(
        &export,
        &[
            ("authz.json", authorization_details()),
            (
                "oidc.json",
                serde_json::json!({"OpenIDConnectProviderList": [{"Arn": github_arn}]}),
            ),
            (
                "users.json",
                serde_json::json!({"Users": [store_user("u-alice", "alice"), store_user("u-mallory", "mallory")], "NextToken": "more"}),
            ),
            ("assign-1.json", assignment(PERMISSION_SET, "u-alice")),
            ("assign-2.json", assignment(ADMIN_SET, "u-mallory")),
            ("set-1.json", describe(PERMISSION_SET, "ReadOnly")),
            ("set-2.json", describe(ADMIN_SET, "Admin")),
        ],
    );
    let (code, report) = scan_export(work.path(), &export, &snapshots);
    assert_eq!(code, 2, "listings cut short fail the run: {report:#}");
    assert!(findings(&report).is_empty(), "{report:#}");
    let snapshot = read_snapshot(&snapshots);
    let collections = &snapshot["collections"];
    assert_eq!(collections["saml_providers"]["status"], "not_collected");
    assert_eq!(collections["saml_providers"]["kept_previous"], true);
    assert_eq!(collections["oidc_providers"]["status"], "incomplete");
    assert_eq!(collections["identity_center_users"]["status"], "incomplete");
    assert_eq!(
        names_of(&snapshot, "aws_saml_provider"),
        [SSO_PROVIDER, "Okta"]
    );
    let github = snapshot["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .find(|identity| identity["kind"] == "aws_oidc_provider")
        .expect("the OIDC provider is kept");
    assert_eq!(github["attributes"]["client_ids"], "sts.amazonaws.com");
}

#[test]
fn export_without_identity_center_keeps_it() {
    let work = tempfile::tempdir().expect("temp dir");
    let export = work.path().join("export");
    let snapshots = work.path().join("snapshots");
    write_export(
        &export,
        &[
            ("authz.json", authorization_details()),
            (
                "users.json",
                serde_json::json!({"Users": [store_user("u-alice", "alice")]}),
            ),
            ("assign-1.json", assignment(PERMISSION_SET, "u-alice")),
        ],
    );
    let (code, report) = scan_export(work.path(), &export, &snapshots);
    assert_eq!(code, 0, "{report:#}");

    // The next export has no Identity Center files at all. It did not look
    // at Identity Center, so the snapshot must keep what was listed before.
    write_export(&export, &[("authz.json", authorization_details())]);
    let (code, report) = scan_export(work.path(), &export, &snapshots);
    assert!(findings(&report).is_empty(), "{report:#}");
    assert_ne!(code, 1, "{report:#}");
    let snapshot = read_snapshot(&snapshots);
    assert_eq!(names_of(&snapshot, "aws_identity_center_user"), ["alice"]);
    assert_eq!(
        names_of(&snapshot, "aws_permission_set_assignment").len(),
        1,
        "{snapshot:#}"
    );
    let users = &snapshot["collections"]["identity_center_users"];
    assert_eq!(users["status"], "not_collected", "{snapshot:#}");
    assert_eq!(users["kept_previous"], true, "{snapshot:#}");
}

#[test]
fn unreadable_trust_policy_keeps_trust() {
    let work = tempfile::tempdir().expect("temp dir");
    let export = work.path().join("export");
    let snapshots = work.path().join("snapshots");
    write_export(&export, &[("authz.json", authorization_details())]);
    let (code, report) = scan_export(work.path(), &export, &snapshots);
    assert_eq!(code, 0, "{report:#}");
    let good = read_snapshot(&snapshots);

    let odd_documents = [
        // Cut short.
        Value::String(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow""#.to_string()),
        // A list where IAM has an object: the outside account must not vanish.
        serde_json::json!({"Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"},
            {"Effect": "Allow", "Principal": ["arn:aws:iam::999988887777:root"], "Action": "sts:AssumeRole"}
        ]}),
        serde_json::json!({"Statement": [
            {"Effect": "Allow", "Principal": {"AWS": 999_988_887_777_u64}, "Action": "sts:AssumeRole"}
        ]}),
    ];
    for document in odd_documents {
        let mut details = authorization_details();
        details["RoleDetailList"][0]["AssumeRolePolicyDocument"] = document.clone();
        write_export(&export, &[("authz.json", details)]);
        let (code, report) = scan_export(work.path(), &export, &snapshots);
        assert_eq!(
            code, 2,
            "an unreadable trust policy fails the run: {report:#}"
        );
        assert!(findings(&report).is_empty(), "{document}: {report:#}");
        let incomplete = report["scopes"][0]["incomplete"].to_string();
        assert!(incomplete.contains("role app trust policy"), "{report:#}");
        let snapshot = read_snapshot(&snapshots);
        let role = |snapshot: &Value| {
            snapshot["identities"]
                .as_array()
                .expect("identities")
                .iter()
                .find(|identity| identity["kind"] == "aws_role")
                .map(|role| role["trust"].clone())
        };
        assert_eq!(
            role(&snapshot),
            role(&good),
            "{document}: the trust was lost"
        );
    }
}

#[test]
fn odd_provider_arns_are_rejected() {
    let work = tempfile::tempdir().expect("temp dir");
    let export = work.path().join("export");
    let snapshots = work.path().join("snapshots");
    let saml = |arn: &str| serde_json::json!({"SAMLProviderList": [{"Arn": arn}]});
    write_export(
        &export,
        &[
            ("authz.json", authorization_details()),
            (
                "saml.json",
                saml(&format!("arn:aws:iam::{ACCOUNT}:saml-provider/Okta")),
            ),
        ],
    );
    let (code, report) = scan_export(work.path(), &export, &snapshots);
    assert_eq!(code, 0, "{report:#}");
    let good = std::fs::read(snapshots.join(format!("aws/{ACCOUNT}.json"))).expect("snapshot");

    let cases = [
        (
            "oidc.json",
            serde_json::json!({"OpenIDConnectProviderList": [{"Arn": "garbage"}]}),
            "not an identity provider ARN",
        ),
        ("saml.json", saml(""), "not an identity provider ARN"),
        (
            "saml.json",
            saml(&format!("arn:aws:iam::{ACCOUNT}:saml-provider/")),
            "not an identity provider ARN",
        ),
        (
            "saml.json",
            saml("arn:aws:iam::999988887777:saml-provider/Other"),
            "provider ARNs inside name 999988887777",
        ),
    ];
    for (file, listing, expected) in cases {
        write_export(
            &export,
            &[
                ("authz.json", authorization_details()),
                (file, listing.clone()),
            ],
        );
        let (code, report) = scan_export(work.path(), &export, &snapshots);
        assert_eq!(code, 2, "{listing}: {report:#}");
        let errors = report["errors"].to_string();
        assert!(errors.contains(expected), "{listing}: {errors}");
        let now = std::fs::read(snapshots.join(format!("aws/{ACCOUNT}.json"))).expect("snapshot");
        assert_eq!(now, good, "{listing}: the snapshot changed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assignment_without_principal_is_incomplete() {
    let moto = Moto::start();
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let center = IdentityCenter::connect(&moto.endpoint).await;
    let alice = center.create_user("alice").await;
    let read_only = center
        .create_permission_set("ReadOnly", "arn:aws:iam::aws:policy/ReadOnlyAccess")
        .await;
    center.assign(&read_only, &alice).await;
    let config = write_config(work.path(), &moto.endpoint, "identity_center = true\n");
    let (code, report) = scan(work.path(), &config, &snapshots);
    assert_eq!(code, 0, "baseline: {report:#}");
    let baseline = read_snapshot(&snapshots);

    // The listing now returns alice's assignment without its principal id.
    let gate = AwsGate::start(
        &moto.endpoint,
        Box::new(move |request| {
            (request.target.as_deref() == Some("SWBExternalService.ListAccountAssignments")).then(
                || GateResponse {
                    status: 200,
                    content_type: "application/x-amz-json-1.1",
                    body: format!(
                        r#"{{"AccountAssignments":[{{"AccountId":"{ACCOUNT}","PermissionSetArn":"{read_only}","PrincipalType":"USER"}}]}}"#
                    ),
                },
            )
        }),
    );
    let config = write_config(work.path(), &gate.endpoint, "identity_center = true\n");
    let (code, report) = scan(work.path(), &config, &snapshots);
    assert_eq!(code, 2, "{report:#}");
    assert!(findings(&report).is_empty(), "{report:#}");
    let snapshot = read_snapshot(&snapshots);
    let assignments = &snapshot["collections"]["permission_set_assignments"];
    assert_eq!(assignments["status"], "incomplete", "{assignments:#}");
    let reason = assignments["reason"].as_str().expect("reason");
    assert!(reason.contains("no principal"), "{reason}");
    assert_eq!(
        names_of(&snapshot, "aws_permission_set_assignment"),
        names_of(&baseline, "aws_permission_set_assignment")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_without_arn_is_incomplete() {
    let moto = Moto::start();
    let iam = moto.iam_client().await;
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    create_saml_provider(&iam, "Okta").await;
    let direct = write_config(work.path(), &moto.endpoint, "");
    let (code, report) = scan(work.path(), &direct, &snapshots);
    assert_eq!(code, 0, "baseline: {report:#}");

    // The listing names one provider, without its ARN.
    let gate = AwsGate::start(
        &moto.endpoint,
        Box::new(|request| {
            request.body.contains("Action=ListSAMLProviders").then(|| GateResponse {
                status: 200,
                content_type: "text/xml",
                body: "<ListSAMLProvidersResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">\
                       <ListSAMLProvidersResult><SAMLProviderList><member>\
                       <ValidUntil>2125-01-01T00:00:00Z</ValidUntil>\
                       <CreateDate>2024-01-02T03:04:05Z</CreateDate></member>\
                       </SAMLProviderList></ListSAMLProvidersResult>\
                       <ResponseMetadata><RequestId>4bd1a2a0-0000-4000-8000-000000000001</RequestId>\
                       </ResponseMetadata></ListSAMLProvidersResponse>"
                    .to_string(),
            })
        }),
    );
    let gated = write_config(work.path(), &gate.endpoint, "");
    let (code, report) = scan(work.path(), &gated, &snapshots);
    assert_eq!(code, 2, "{report:#}");
    assert!(findings(&report).is_empty(), "{report:#}");
    let snapshot = read_snapshot(&snapshots);
    let saml = &snapshot["collections"]["saml_providers"];
    assert_eq!(saml["status"], "incomplete", "{saml:#}");
    assert!(
        saml["reason"].to_string().contains("without an ARN"),
        "{saml:#}"
    );
    assert_eq!(names_of(&snapshot, "aws_saml_provider"), ["Okta"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_page_token_is_incomplete() {
    let moto = Moto::start();
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = work.path().join("snapshots");
    let gate = AwsGate::start(
        &moto.endpoint,
        Box::new(|request| {
            (request.target.as_deref() == Some("AWSIdentityStore.ListUsers")).then(|| {
                GateResponse {
                    status: 200,
                    content_type: "application/x-amz-json-1.1",
                    body: r#"{"Users":[{"IdentityStoreId":"d-1234567890","UserId":"u-1","UserName":"loop"}],"NextToken":"same-token"}"#
                        .to_string(),
                }
            })
        }),
    );
    let config = write_config(work.path(), &gate.endpoint, "identity_center = true\n");
    let (code, report) = scan(work.path(), &config, &snapshots);
    assert_eq!(code, 2, "{report:#}");

    let snapshot = read_snapshot(&snapshots);
    let users = &snapshot["collections"]["identity_center_users"];
    assert_eq!(users["status"], "incomplete", "{users:#}");
    let reason = users["reason"].as_str().expect("reason");
    assert!(reason.contains("did not advance"), "{reason}");
    assert!(reason.contains("identitystore:ListUsers"), "{reason}");
    assert!(names_of(&snapshot, "aws_identity_center_user").is_empty());
}
