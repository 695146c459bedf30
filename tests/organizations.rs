//! AWS Organizations end to end against moto: member accounts found with
//! `ListAccounts`, each scanned through a role assumed in it.
//!
//! moto's `AssumeRole` succeeds for any role ARN, so a proxy in front of it
//! returns `AccessDenied` for the roles a test must fail to assume.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_organizations::types::OrganizationFeatureSet;
use serde_json::Value;

use common::aws_gate::{AwsGate, GateResponse, access_denied};
use common::{Moto, idrift, run};

/// The account moto gives the test credentials: the management account.
const MANAGEMENT_ACCOUNT: &str = "123456789012";

const MEMBER_ROLE: &str = "idrift-reader";

/// The role in the management account that lists the accounts.
const LISTER_ROLE: &str = "arn:aws:iam::123456789012:role/idrift-lister";

fn credentials() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(
        "AKIAIDRIFTTESTKEY000",
        "idrift-test-secret-not-real",
        None,
        None,
        "idrift-tests",
    )
}

fn organizations_client(endpoint: &str) -> aws_sdk_organizations::Client {
    let config = aws_sdk_organizations::Config::builder()
        .behavior_version(aws_sdk_organizations::config::BehaviorVersion::latest())
        .region(aws_sdk_organizations::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(credentials())
        .build();
    aws_sdk_organizations::Client::from_conf(config)
}

/// Creates an organization and one member account per name; returns their ids.
async fn create_organization(endpoint: &str, names: &[String]) -> Vec<String> {
    let client = organizations_client(endpoint);
    client
        .create_organization()
        .feature_set(OrganizationFeatureSet::All)
        .send()
        .await
        .expect("create organization");
    let mut ids = Vec::new();
    for name in names {
        let created = client
            .create_account()
            .account_name(name)
            .email(format!("{name}@example.com"))
            .send()
            .await
            .expect("create account");
        let status = created.create_account_status().expect("account status");
        ids.push(status.account_id().expect("account id").to_string());
    }
    ids
}

async fn close_account(endpoint: &str, account_id: &str) {
    organizations_client(endpoint)
        .close_account()
        .account_id(account_id)
        .send()
        .await
        .expect("close account");
}

/// Creates an IAM user in a member account, through the member role.
async fn create_member_user(endpoint: &str, account_id: &str, user_name: &str) {
    let sts_config = aws_sdk_sts::Config::builder()
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
        .region(aws_sdk_sts::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(credentials())
        .build();
    let assumed = aws_sdk_sts::Client::from_conf(sts_config)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account_id}:role/{MEMBER_ROLE}"))
        .role_session_name("idrift-tests")
        .send()
        .await
        .expect("assume the member role");
    let session = assumed.credentials().expect("credentials");
    let member_credentials = aws_credential_types::Credentials::new(
        session.access_key_id(),
        session.secret_access_key(),
        Some(session.session_token().to_string()),
        None,
        "idrift-tests",
    );
    let iam_config = aws_sdk_iam::Config::builder()
        .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
        .region(aws_sdk_iam::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(member_credentials)
        .build();
    aws_sdk_iam::Client::from_conf(iam_config)
        .create_user()
        .user_name(user_name)
        .send()
        .await
        .expect("create user");
}

/// Writes a config that scans one organization behind `endpoint`.
fn write_config(folder: &Path, endpoint: &str, organization: &str) -> std::path::PathBuf {
    let path = folder.join("idrift.toml");
    let text = format!(
        "[retry]\nmax_attempts = 2\ninitial_backoff_ms = 10\nmax_backoff_ms = 50\n\
         attempt_timeout_seconds = 10\n\n[scan]\nconcurrency = 3\n\n[aws]\nscopes_in_parallel = 2\n\n\
         [[aws.organizations]]\nmember_role_name = \"{MEMBER_ROLE}\"\nendpoint_url = \"{endpoint}\"\n\
         {organization}"
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn scan(home: &Path, config: &Path) -> (i32, Value, String) {
    let (code, stdout, stderr) = run(idrift(home)
        .arg("scan")
        .arg("--config")
        .arg(config)
        .arg("--snapshots")
        .arg(home.join("snapshots"))
        .args(["--format", "json"])
        .env("RUST_LOG", "info"));
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("report is JSON: {error}\n{stdout}\n{stderr}"));
    (code, report, stderr)
}

fn scope_ids(report: &Value) -> Vec<String> {
    report["scopes"]
        .as_array()
        .expect("scopes")
        .iter()
        .map(|scope| scope["scope"].as_str().expect("scope id").to_string())
        .collect()
}

fn scope<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["scopes"]
        .as_array()
        .expect("scopes")
        .iter()
        .find(|scope| scope["scope"] == id)
        .unwrap_or_else(|| panic!("no scope {id} in {report:#}"))
}

fn snapshot_text(home: &Path, account_id: &str) -> String {
    let path = home.join(format!("snapshots/aws/{account_id}.json"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

fn member_names(count: usize) -> Vec<String> {
    (0..count)
        .map(|number| format!("member-{number:02}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organization_members_scanned_through_role() {
    let moto = Moto::start();
    let ids = create_organization(&moto.endpoint, &member_names(4)).await;
    let (readable, denied, suspended) = (&ids[..2], ids[2].clone(), ids[3].clone());
    for (number, account_id) in readable.iter().enumerate() {
        create_member_user(&moto.endpoint, account_id, &format!("user-{number}")).await;
    }
    close_account(&moto.endpoint, &suspended).await;

    let denied_role = format!("arn:aws:iam::{denied}:role/{MEMBER_ROLE}");
    let denied_form = denied_role.replace(':', "%3A").replace('/', "%2F");
    let gate = AwsGate::start(
        &moto.endpoint,
        Box::new(move |request| {
            let assume = request.body.contains("Action=AssumeRole");
            (assume && request.body.contains(&denied_form)).then(|| access_denied(&denied_role))
        }),
    );
    let home = tempfile::tempdir().expect("temp dir");
    let config = write_config(
        home.path(),
        &gate.endpoint,
        &format!("exclude = [\"{MANAGEMENT_ACCOUNT}\"]\n"),
    );

    let (code, report, stderr) = scan(home.path(), &config);

    assert_eq!(code, 2, "a failed scope exits 2\n{stderr}");
    let mut expected = vec![ids[0].clone(), ids[1].clone(), denied.clone()];
    expected.sort();
    assert_eq!(scope_ids(&report), expected, "scopes in account id order");

    for account_id in readable {
        assert_eq!(
            scope(&report, account_id)["status"],
            "baseline",
            "{report:#}"
        );
    }
    assert!(snapshot_text(home.path(), &ids[0]).contains("user-0"));
    assert!(!snapshot_text(home.path(), &ids[0]).contains("user-1"));
    assert!(snapshot_text(home.path(), &ids[1]).contains("user-1"));

    let failed = scope(&report, &denied);
    assert_eq!(failed["status"], "failed");
    let error = failed["error"].as_str().expect("error");
    assert!(error.contains(&denied), "{error}");
    assert!(error.contains(&format!(":role/{MEMBER_ROLE}")), "{error}");
    assert!(error.contains("AccessDenied"), "{error}");
    assert!(error.contains("trust policy"), "{error}");

    assert!(
        stderr.contains("skipping an account that is not active"),
        "{stderr}"
    );
    assert!(stderr.contains(&suspended), "{stderr}");
    assert!(stderr.contains("skipping an excluded account"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_selects_across_pages() {
    let moto = Moto::start();
    // With the management account, 22 accounts: two ListAccounts pages of 20.
    let ids = create_organization(&moto.endpoint, &member_names(21)).await;
    let list_calls = Arc::new(AtomicUsize::new(0));
    let assumed_roles = Arc::new(Mutex::new(Vec::new()));
    let (counter, roles) = (Arc::clone(&list_calls), Arc::clone(&assumed_roles));
    let gate = AwsGate::start(
        &moto.endpoint,
        Box::new(move |request| {
            if request.target.as_deref() == Some("AWSOrganizationsV20161128.ListAccounts") {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            if request.body.contains("Action=AssumeRole") {
                roles
                    .lock()
                    .unwrap()
                    .push(request.body.replace("%3A", ":").replace("%2F", "/"));
            }
            None
        }),
    );
    let home = tempfile::tempdir().expect("temp dir");
    let included = [ids[20].clone(), ids[3].clone()];
    let config = write_config(
        home.path(),
        &gate.endpoint,
        &format!(
            "role_arn = \"{LISTER_ROLE}\"\ninclude = [\"{}\", \"{}\"]\n",
            included[0], included[1]
        ),
    );

    let (code, report, stderr) = scan(home.path(), &config);

    assert_eq!(code, 0, "{stderr}");
    let mut expected = included.to_vec();
    expected.sort();
    assert_eq!(scope_ids(&report), expected);
    assert_eq!(
        list_calls.load(Ordering::SeqCst),
        2,
        "two pages of accounts"
    );

    let assumed = assumed_roles.lock().unwrap().join("\n");
    assert!(assumed.contains(LISTER_ROLE), "{assumed}");
    for account_id in &included {
        let member_role = format!("arn:aws:iam::{account_id}:role/{MEMBER_ROLE}");
        assert!(assumed.contains(&member_role), "{assumed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_next_token_fails_organization() {
    let moto = Moto::start();
    let gate = AwsGate::start(
        &moto.endpoint,
        Box::new(|request| {
            let listing =
                request.target.as_deref() == Some("AWSOrganizationsV20161128.ListAccounts");
            listing.then(|| GateResponse {
                status: 200,
                content_type: "application/x-amz-json-1.1",
                body: r#"{"Accounts":[],"NextToken":"same-token"}"#.to_string(),
            })
        }),
    );
    let home = tempfile::tempdir().expect("temp dir");
    let config = write_config(home.path(), &gate.endpoint, "");

    let (code, report, stderr) = scan(home.path(), &config);

    assert_eq!(code, 2, "{stderr}");
    let scopes = report["scopes"].as_array().expect("scopes");
    assert_eq!(scopes.len(), 1, "{report:#}");
    assert_eq!(scopes[0]["status"], "failed");
    let error = scopes[0]["error"].as_str().expect("error");
    assert!(error.contains("did not advance"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organization_not_in_use_is_explained() {
    // moto lists no accounts when there is no organization; AWS returns this error.
    let moto = Moto::start();
    let gate = AwsGate::start(
        &moto.endpoint,
        Box::new(|request| {
            let listing =
                request.target.as_deref() == Some("AWSOrganizationsV20161128.ListAccounts");
            listing.then(|| GateResponse {
                status: 400,
                content_type: "application/x-amz-json-1.1",
                body: r#"{"__type":"AWSOrganizationsNotInUseException","Message":"Your account is not a member of an organization."}"#
                    .to_string(),
            })
        }),
    );
    let home = tempfile::tempdir().expect("temp dir");
    let config = write_config(home.path(), &gate.endpoint, "");

    let (code, report, stderr) = scan(home.path(), &config);

    assert_eq!(code, 2, "{stderr}");
    let error = report["scopes"][0]["error"].as_str().expect("error");
    assert!(error.contains("organizations:ListAccounts"), "{error}");
    assert!(
        error.contains("AWSOrganizationsNotInUseException"),
        "{error}"
    );
    assert!(error.contains("management account"), "{error}");
}

/// Writes a config that scans each account through a role, in the order given.
fn write_accounts_config(
    folder: &Path,
    endpoint: &str,
    limits: &str,
    accounts: &[&str],
) -> std::path::PathBuf {
    let path = folder.join("accounts.toml");
    let mut text = format!(
        "[retry]\nmax_attempts = 2\ninitial_backoff_ms = 10\nmax_backoff_ms = 50\n\
         attempt_timeout_seconds = 10\n\n{limits}\n"
    );
    for account_id in accounts {
        text.push_str(&format!(
            "[[aws.accounts]]\naccount_id = \"{account_id}\"\n\
             role_arn = \"arn:aws:iam::{account_id}:role/{MEMBER_ROLE}\"\nendpoint_url = \"{endpoint}\"\n"
        ));
    }
    std::fs::write(&path, text).expect("write config");
    path
}

/// Scans three accounts and returns the scope order and the most
/// `GetCallerIdentity` calls that were in flight at once.
///
/// The proxy delays each such call until a second one arrives, or for 3 s,
/// so that two accounts that may run at once do meet, however slow the
/// machine.
fn scan_slow_accounts(moto: &Moto, limits: &str) -> (Vec<String>, usize) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let (current, max) = (Arc::clone(&in_flight), Arc::clone(&max_in_flight));
    let gate = AwsGate::start(
        &moto.endpoint,
        Box::new(move |request| {
            if request.body.contains("Action=GetCallerIdentity") {
                let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
                while current.load(Ordering::SeqCst) < 2 && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                max.fetch_max(current.load(Ordering::SeqCst), Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(200));
                current.fetch_sub(1, Ordering::SeqCst);
            }
            None
        }),
    );
    let home = tempfile::tempdir().expect("temp dir");
    let accounts = ["333333333333", "111111111111", "222222222222"];
    let config = write_accounts_config(home.path(), &gate.endpoint, limits, &accounts);

    let (code, report, stderr) = scan(home.path(), &config);

    assert_eq!(code, 0, "{stderr}");
    (scope_ids(&report), max_in_flight.load(Ordering::SeqCst))
}

#[test]
fn accounts_scan_in_parallel_in_config_order() {
    let moto = Moto::start();
    let expected = ["333333333333", "111111111111", "222222222222"];

    let (order, in_flight) = scan_slow_accounts(&moto, "[aws]\nscopes_in_parallel = 2\n");
    assert_eq!(order, expected, "scopes in config order");
    assert_eq!(
        in_flight, 2,
        "aws.scopes_in_parallel bounds the accounts at once"
    );

    let (order, in_flight) = scan_slow_accounts(
        &moto,
        "[scan]\nconcurrency = 1\n[aws]\nscopes_in_parallel = 3\n",
    );
    assert_eq!(order, expected, "scopes in config order");
    assert_eq!(in_flight, 1, "scan.concurrency bounds every scope at once");
}

/// Returns an IAM Query-protocol `Throttling` error, as IAM sends it.
fn throttling() -> GateResponse {
    GateResponse {
        status: 400,
        content_type: "text/xml",
        body: "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error>\
               <Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message>\
               </Error><RequestId>idrift-gate</RequestId></ErrorResponse>"
            .to_string(),
    }
}

/// Writes a config for a throttle storm: more attempts than the throttled
/// requests any one account can meet, and every account at once.
fn write_storm_config(folder: &Path, endpoint: &str, max_attempts: u32) -> std::path::PathBuf {
    let path = folder.join("idrift.toml");
    let text = format!(
        "[retry]\nmax_attempts = {max_attempts}\ninitial_backoff_ms = 10\nmax_backoff_ms = 50\n\
         attempt_timeout_seconds = 10\n\n[scan]\nconcurrency = 3\n\n[aws]\nscopes_in_parallel = 3\n\n\
         [[aws.organizations]]\nmember_role_name = \"{MEMBER_ROLE}\"\nendpoint_url = \"{endpoint}\"\n\
         exclude = [\"{MANAGEMENT_ACCOUNT}\"]\n"
    );
    std::fs::write(&path, text).expect("write config");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_storm_across_accounts() {
    let moto = Moto::start();
    let ids = create_organization(&moto.endpoint, &member_names(3)).await;
    for (number, account_id) in ids.iter().enumerate() {
        create_member_user(&moto.endpoint, account_id, &format!("user-{number}")).await;
    }

    // The first nine GetAccountAuthorizationDetails calls, whichever account
    // sends them, are throttled: a storm shared by the scans in parallel.
    let throttled = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(AtomicUsize::new(0));
    let (gate_throttled, gate_seen) = (Arc::clone(&throttled), Arc::clone(&seen));
    let gate = AwsGate::start(
        &moto.endpoint,
        Box::new(move |request| {
            if !request
                .body
                .contains("Action=GetAccountAuthorizationDetails")
            {
                return None;
            }
            gate_seen.fetch_add(1, Ordering::SeqCst);
            let earlier = gate_throttled.fetch_add(1, Ordering::SeqCst);
            if earlier < 9 {
                Some(throttling())
            } else {
                gate_throttled.fetch_sub(1, Ordering::SeqCst);
                None
            }
        }),
    );
    let home = tempfile::tempdir().expect("temp dir");
    let config = write_storm_config(home.path(), &gate.endpoint, 12);

    let (code, report, stderr) = scan(home.path(), &config);

    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(
        throttled.load(Ordering::SeqCst),
        9,
        "every throttle was met"
    );
    assert_eq!(
        seen.load(Ordering::SeqCst),
        9 + 3,
        "one success per account"
    );
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(scope_ids(&report), expected);
    for (number, account_id) in ids.iter().enumerate() {
        assert_eq!(scope(&report, account_id)["status"], "baseline");
        assert_eq!(
            scope(&report, account_id)["incomplete"],
            serde_json::json!([])
        );
        assert!(snapshot_text(home.path(), account_id).contains(&format!("user-{number}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_throttling_is_never_empty() {
    let moto = Moto::start();
    let ids = create_organization(&moto.endpoint, &member_names(2)).await;
    let gate = AwsGate::start(
        &moto.endpoint,
        Box::new(|request| {
            request
                .body
                .contains("Action=GetAccountAuthorizationDetails")
                .then(throttling)
        }),
    );
    let home = tempfile::tempdir().expect("temp dir");
    let config = write_storm_config(home.path(), &gate.endpoint, 3);

    let (code, report, stderr) = scan(home.path(), &config);

    // Throttled out: no scope reads as an empty account.
    assert_eq!(code, 2, "{report:#}\n{stderr}");
    for account_id in &ids {
        let scope = scope(&report, account_id);
        let text = scope.to_string();
        assert!(text.contains("Throttling"), "{text}");
        assert!(
            !home
                .path()
                .join(format!("snapshots/aws/{account_id}.json"))
                .exists(),
            "no snapshot of an account that could not be listed"
        );
    }
}
