//! A fake Google Cloud on 127.0.0.1, for testing the GCP collector without
//! a Google account.
//!
//! One server, under one base URL, plays every Google endpoint the collector
//! and google-cloud-auth 1.19 call:
//!
//! - The GCE metadata server that `GCE_METADATA_HOST=127.0.0.1:PORT` points
//!   google-cloud-auth at ([`FakeGcp::metadata_host`]): the default service
//!   account's token, email and scopes, the universe domain and the project
//!   id. Every metadata request needs the header `Metadata-Flavor: Google`.
//! - The OAuth 2.0 token endpoint of `authorized_user` credential files
//!   (`token_uri`, [`FakeGcp::token_uri`]), which accepts the refresh token
//!   grant as JSON (what google-cloud-auth sends) or as a form.
//! - IAM Credentials `generateAccessToken`, for impersonated service
//!   account credentials ([`FakeGcp::impersonated_credentials_json`]).
//! - IAM v1: service accounts, paged by `pageSize` (default 20, maximum 100)
//!   and an opaque `nextPageToken`, each account's keys (not paged) and
//!   `getIamPolicy` of each account, and workload identity pools and their
//!   providers, paged the same way, with deleted ones only on `showDeleted=true`.
//! - Resource Manager v3: `projects:search`, paged the same way, and
//!   `getIamPolicy` of a project.
//! - Admin SDK Directory `users.list` of a Google Workspace customer
//!   ([`Workspace`]), paged by `maxResults` (default 100, maximum 500). The
//!   token must carry a Directory user scope and belong to a user who is an
//!   admin of the customer; `customer=my_customer` names the caller's own.
//!   Its 403 is the Directory API's legacy body, with an `errors` list and
//!   no `status`.
//! - Cloud Logging v2 `entries:list` (`POST`, paged by `pageToken` in the
//!   body) over the audit log entries of [`FakeGcp::add_log_entry`].
//!
//! Every API request needs `Authorization: Bearer` with a token the fake
//! issued and that has not expired or been revoked. Errors use Google's
//! `{"error": {"code", "message", "status", "details"}}` body.
//!
//! Each test scripts the fake with a data set ([`Organization`]), a page
//! size and a list of [`Fault`]s, and reads back every request it received.
//!
//! Known limits:
//!
//! - `$alt=json;enum-encoding=int`, which the generated google-cloud-rust
//!   clients send, is accepted, but enums are always sent by name.
//! - `fields` (partial responses) is ignored.
//! - `projects:search` evaluates only the query terms `parent`, `state` and `id`.
//! - `entries:list` evaluates a filter only as far as [`log_entries_matching`] describes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};
use tiny_http::{Method, Request, Server, StatusCode};

use super::fake_graph::{Editable, JsonEdits};

/// The organization that is the parent of every project the helpers build.
pub const ORGANIZATION: &str = "organizations/123456789012";

/// The start of every access token the fake issues, for searching output
/// for leaks. Google's OAuth access tokens start with `ya29.`.
pub const TOKEN_PREFIX: &str = "ya29.idrift-fake-";
/// Seconds from issue to expiry of a token, as the metadata server reports
/// a fresh token.
pub const DEFAULT_TOKEN_LIFETIME_SECONDS: u64 = 3599;

/// `client_id` of the authorized user file that [`FakeGcp::authorized_user_json`] builds.
pub const OAUTH_CLIENT_ID: &str = "764086051850-idrift.apps.googleusercontent.com";
/// `client_secret` of that file. The token endpoint rejects any other value.
pub const OAUTH_CLIENT_SECRET: &str = "idrift-fake-client-secret";
/// `refresh_token` of that file. The token endpoint rejects any other value.
pub const REFRESH_TOKEN: &str = "1//idrift-fake-refresh-token";
/// The user whom the refresh token belongs to.
pub const USER_EMAIL: &str = "analyst@example.com";

/// The project that the metadata server reports for the virtual machine.
pub const METADATA_PROJECT_ID: &str = "idrift-host";
/// The number of [`METADATA_PROJECT_ID`], also the quota consumer in 429 bodies.
pub const METADATA_PROJECT_NUMBER: u64 = 764_086_051_850;
/// The universe domain the metadata server reports.
pub const UNIVERSE_DOMAIN: &str = "googleapis.com";

/// Root of the metadata server's paths.
pub const METADATA_ROOT_PATH: &str = "/computeMetadata/v1";
/// Path of the default service account's access token on the metadata server.
pub const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
/// Path of the default service account's email on the metadata server.
pub const METADATA_EMAIL_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/email";
/// Path of the universe domain on the metadata server.
pub const METADATA_UNIVERSE_DOMAIN_PATH: &str = "/computeMetadata/v1/universe/universe-domain";
/// Path of the OAuth 2.0 token endpoint.
pub const OAUTH_TOKEN_PATH: &str = "/token";
/// Path of the Admin SDK Directory API's `users.list`.
pub const DIRECTORY_USERS_PATH: &str = "/admin/directory/v1/users";
/// The read-only Directory scope for users.
pub const DIRECTORY_USER_READONLY_SCOPE: &str =
    "https://www.googleapis.com/auth/admin.directory.user.readonly";
/// The read and write Directory scope for users.
pub const DIRECTORY_USER_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user";
/// `maxResults` of `users.list` when the request sends none.
pub const DIRECTORY_DEFAULT_PAGE_SIZE: usize = 100;
/// The largest `maxResults` that `users.list` accepts.
pub const DIRECTORY_MAX_PAGE_SIZE: usize = 500;
/// The customer id of [`Workspace::sample`].
pub const CUSTOMER_ID: &str = "C03az79cb";
/// Path of Resource Manager's project search.
pub const PROJECTS_SEARCH_PATH: &str = "/v3/projects:search";
/// Path of `folders.list`.
pub const FOLDERS_PATH: &str = "/v3/folders";

/// The page size of `serviceAccounts.list` when a request sends none or 0.
pub const DEFAULT_PAGE_SIZE: usize = 20;
/// The largest page of `serviceAccounts.list`. Larger requests get this many records.
pub const MAX_PAGE_SIZE: usize = 100;
// NOTE: Resource Manager documents no default or maximum page size for
// `projects:search`, so the fake uses the IAM values for both.

/// Creation time of every project the helpers build.
pub const CREATED: &str = "2024-01-02T03:04:05.678Z";
/// Start of validity of every key the helpers build.
pub const KEY_VALID_AFTER: &str = "2024-02-03T04:05:06Z";
/// End of validity that user-managed keys without an expiry show.
pub const KEY_VALID_FOREVER: &str = "9999-12-31T23:59:59Z";
/// End of validity of every system-managed key the helpers build.
pub const SYSTEM_KEY_VALID_BEFORE: &str = "2026-02-03T04:05:06Z";
/// The deprecated `etag` that IAM sends on every service account.
pub const SERVICE_ACCOUNT_ETAG: &str = "MDEwMjE5MjA=";

/// Display name of the Compute Engine default service account.
pub const COMPUTE_DISPLAY_NAME: &str = "Compute Engine default service account";
/// Display name of the App Engine default service account.
pub const APP_ENGINE_DISPLAY_NAME: &str = "App Engine default service account";

/// Content type of Google's JSON responses.
const JSON_CONTENT_TYPE: &str = "application/json; charset=UTF-8";
/// Content type of the metadata server's text responses.
const TEXT_CONTENT_TYPE: &str = "application/text";

/// Returns the path that lists a project's service accounts.
pub fn service_accounts_path(project_id: &str) -> String {
    format!("/v1/projects/{project_id}/serviceAccounts")
}

/// Returns the path that lists a service account's keys, where `account` is
/// its email or unique id.
pub fn keys_path(project_id: &str, account: &str) -> String {
    format!("/v1/projects/{project_id}/serviceAccounts/{account}/keys")
}

/// Returns the path of a service account's `getIamPolicy`, where `account`
/// is its email or unique id.
pub fn account_policy_path(project_id: &str, account: &str) -> String {
    format!("/v1/projects/{project_id}/serviceAccounts/{account}:getIamPolicy")
}

/// Returns the path that lists a project's workload identity pools.
pub fn pools_path(project_id: &str) -> String {
    format!("/v1/projects/{project_id}/locations/global/workloadIdentityPools")
}

/// Returns the path that lists the providers of a workload identity pool.
pub fn providers_path(project_id: &str, pool_id: &str) -> String {
    format!("{}/{pool_id}/providers", pools_path(project_id))
}

/// The etag IAM sends with a policy that has no bindings.
pub const EMPTY_POLICY_ETAG: &str = "ACAB";

/// Returns the path of a project's `getIamPolicy`.
pub fn iam_policy_path(project_id: &str) -> String {
    format!("/v3/projects/{project_id}:getIamPolicy")
}

/// Returns the path of `generateAccessToken` for a service account.
pub fn generate_access_token_path(email: &str) -> String {
    format!("/v1/projects/-/serviceAccounts/{email}:generateAccessToken")
}

/// Returns a 21-digit service account unique id: `1`, the last 8 digits of
/// the project number, then `number` in 12 digits.
pub fn unique_id(project_number: u64, number: u64) -> String {
    format!("1{:08}{number:012}", project_number % 100_000_000)
}

/// Returns a 40-digit hexadecimal key id that follows from `seed`.
pub fn key_id(seed: u64) -> String {
    let mut state = seed;
    let mut text = String::new();
    while text.len() < 40 {
        text.push_str(&format!("{:016x}", splitmix64(&mut state)));
    }
    text.truncate(40);
    text
}

/// Returns the next value of the SplitMix64 generator, for ids that look random.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Returns the email of a project's Compute Engine default service account.
pub fn default_compute_email(project_number: u64) -> String {
    format!("{project_number}-compute@developer.gserviceaccount.com")
}

/// Returns the email of a project's App Engine default service account.
pub fn app_engine_email(project_id: &str) -> String {
    format!("{project_id}@appspot.gserviceaccount.com")
}

/// Returns the email of a project's service agent for a service, such as
/// `service-415104041201@gcp-sa-pubsub.iam.gserviceaccount.com` for `pubsub`.
///
/// Service agents live in Google-owned projects, so they show up only in
/// IAM policies, never in `serviceAccounts.list`.
pub fn service_agent_email(project_number: u64, service: &str) -> String {
    format!("service-{project_number}@gcp-sa-{service}.iam.gserviceaccount.com")
}

/// Applies edits to a record's JSON.
fn apply_edits(edits: &JsonEdits, mut record: Value) -> Value {
    if let Value::Object(fields) = &mut record {
        for (name, value) in &edits.set {
            fields.insert(name.clone(), value.clone());
        }
        for name in &edits.remove {
            fields.remove(name);
        }
    }
    record
}

/// A service account key.
#[derive(Debug, Clone)]
pub struct FakeKey {
    /// The key id, 40 hexadecimal digits.
    pub key_id: String,
    /// `USER_MANAGED` or `SYSTEM_MANAGED`.
    pub key_type: String,
    /// `GOOGLE_PROVIDED` or `USER_PROVIDED`.
    pub key_origin: String,
    /// `KEY_ALG_RSA_2048` or `KEY_ALG_RSA_1024`.
    pub key_algorithm: String,
    /// `validAfterTime`.
    pub valid_after: String,
    /// `validBeforeTime`.
    pub valid_before: String,
    /// Whether the key is disabled. The field is left out when false.
    pub disabled: bool,
    /// Edits to the key's JSON.
    pub edits: JsonEdits,
}

impl FakeKey {
    /// Builds a user-managed RSA 2048 key created through the API, valid
    /// from [`KEY_VALID_AFTER`] to [`KEY_VALID_FOREVER`].
    pub fn user_managed(seed: u64) -> FakeKey {
        FakeKey {
            key_id: key_id(seed),
            key_type: "USER_MANAGED".to_string(),
            key_origin: "GOOGLE_PROVIDED".to_string(),
            key_algorithm: "KEY_ALG_RSA_2048".to_string(),
            valid_after: KEY_VALID_AFTER.to_string(),
            valid_before: KEY_VALID_FOREVER.to_string(),
            disabled: false,
            edits: JsonEdits::default(),
        }
    }

    /// Builds a system-managed key, valid from [`KEY_VALID_AFTER`] to
    /// [`SYSTEM_KEY_VALID_BEFORE`].
    pub fn system_managed(seed: u64) -> FakeKey {
        FakeKey {
            key_type: "SYSTEM_MANAGED".to_string(),
            valid_before: SYSTEM_KEY_VALID_BEFORE.to_string(),
            ..FakeKey::user_managed(seed)
        }
    }

    fn to_json(&self, account_name: &str) -> Value {
        let mut record = json!({
            "name": format!("{account_name}/keys/{}", self.key_id),
            "validAfterTime": self.valid_after,
            "validBeforeTime": self.valid_before,
            "keyAlgorithm": self.key_algorithm,
            "keyOrigin": self.key_origin,
            "keyType": self.key_type,
        });
        if self.disabled {
            record["disabled"] = json!(true);
        }
        apply_edits(&self.edits, record)
    }
}

impl Editable for FakeKey {
    fn edits_mut(&mut self) -> &mut JsonEdits {
        &mut self.edits
    }
}

/// A service account, with its keys.
#[derive(Debug, Clone)]
pub struct FakeServiceAccount {
    /// The email, which names the account and can return with a new unique id.
    pub email: String,
    /// The immutable `uniqueId`, 21 digits.
    pub unique_id: String,
    /// `oauth2ClientId`, the same digits as the unique id for accounts made by IAM.
    pub oauth2_client_id: String,
    /// `displayName`, left out when `None`.
    pub display_name: Option<String>,
    /// `description`, left out when `None`.
    pub description: Option<String>,
    /// Whether the account is disabled. The field is left out when false.
    pub disabled: bool,
    /// Keys, listed at [`keys_path`].
    pub keys: Vec<FakeKey>,
    /// The account's own IAM policy, read at [`account_policy_path`].
    pub policy: FakePolicy,
    /// Edits to the account's JSON.
    pub edits: JsonEdits,
}

impl FakeServiceAccount {
    /// Builds an enabled account with no keys, whose `oauth2ClientId` is its unique id.
    pub fn new(email: &str, unique_id: &str) -> FakeServiceAccount {
        FakeServiceAccount {
            email: email.to_string(),
            unique_id: unique_id.to_string(),
            oauth2_client_id: unique_id.to_string(),
            display_name: None,
            description: None,
            disabled: false,
            keys: Vec::new(),
            policy: FakePolicy::default(),
            edits: JsonEdits::default(),
        }
    }

    /// Adds a member to a role's binding on this account (without a
    /// condition), adding the binding when the role has none.
    pub fn grant(&mut self, role: &str, member: &str) {
        self.policy.grant(role, member);
    }

    fn to_json(&self, project_id: &str) -> Value {
        let mut record = json!({
            "name": format!("projects/{project_id}/serviceAccounts/{}", self.email),
            "projectId": project_id,
            "uniqueId": self.unique_id,
            "email": self.email,
            "etag": SERVICE_ACCOUNT_ETAG,
            "oauth2ClientId": self.oauth2_client_id,
        });
        if let Some(name) = &self.display_name {
            record["displayName"] = json!(name);
        }
        if let Some(description) = &self.description {
            record["description"] = json!(description);
        }
        if self.disabled {
            record["disabled"] = json!(true);
        }
        apply_edits(&self.edits, record)
    }

    /// Returns true when `account` is this account's email or unique id.
    fn is_named(&self, account: &str) -> bool {
        self.email == account || self.unique_id == account
    }
}

impl Editable for FakeServiceAccount {
    fn edits_mut(&mut self) -> &mut JsonEdits {
        &mut self.edits
    }
}

/// One role binding of an IAM policy.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeBinding {
    /// The role, such as `roles/owner`.
    pub role: String,
    /// Members such as `user:eve@example.com` or `serviceAccount:...`.
    pub members: Vec<String>,
    /// The IAM condition (`title`, `description`, `expression`), if any.
    pub condition: Option<Value>,
}

impl FakeBinding {
    /// Builds an unconditional binding.
    pub fn new(role: &str, members: &[&str]) -> FakeBinding {
        FakeBinding {
            role: role.to_string(),
            members: members.iter().map(|member| member.to_string()).collect(),
            condition: None,
        }
    }

    /// Adds a condition with a title and a CEL expression.
    pub fn with_condition(mut self, title: &str, expression: &str) -> FakeBinding {
        self.condition = Some(json!({"title": title, "expression": expression}));
        self
    }
}

/// A project's IAM policy.
#[derive(Debug, Clone, Default)]
pub struct FakePolicy {
    /// The bindings, in the order they are sent.
    pub bindings: Vec<FakeBinding>,
    /// `version`. When `None`, it is 3 if a binding has a condition and 1 otherwise.
    pub version: Option<u32>,
    /// Edits to the policy's JSON.
    pub edits: JsonEdits,
}

impl FakePolicy {
    /// Returns the policy as `getIamPolicy` sends it for a requested version.
    ///
    /// A request for version 1 of a policy with conditions gets each
    /// conditional binding without its condition and with `_withcond_` and a
    /// hash after the role, as Google documents for policy versions.
    fn to_json(&self, requested_version: u32) -> Value {
        let conditional = self.bindings.iter().any(|b| b.condition.is_some());
        let stored_version = self.version.unwrap_or(if conditional { 3 } else { 1 });
        let downgraded = conditional && requested_version < 3;
        let bindings: Vec<Value> = self
            .bindings
            .iter()
            .map(|binding| binding_json(binding, downgraded))
            .collect();

        let mut record = Map::new();
        let version = if downgraded { 1 } else { stored_version };
        record.insert("version".to_string(), json!(version));
        record.insert("etag".to_string(), json!(self.etag()));
        if !bindings.is_empty() {
            record.insert("bindings".to_string(), Value::Array(bindings));
        }
        apply_edits(&self.edits, Value::Object(record))
    }

    /// Adds a member to a role's unconditional binding, adding the binding
    /// when the role has none.
    pub fn grant(&mut self, role: &str, member: &str) {
        let existing = self
            .bindings
            .iter_mut()
            .find(|binding| binding.role == role && binding.condition.is_none());
        match existing {
            Some(binding) if binding.members.iter().any(|m| m == member) => {}
            Some(binding) => binding.members.push(member.to_string()),
            None => self.bindings.push(FakeBinding::new(role, &[member])),
        }
    }

    /// Returns the policy as a service account's `getIamPolicy` sends it:
    /// like a project's, except that a policy without bindings is only
    /// `{"etag": "ACAB"}`, because proto3 JSON leaves out version 0.
    fn to_account_json(&self, requested_version: u32) -> Value {
        if self.bindings.is_empty() {
            return apply_edits(&self.edits, json!({"etag": EMPTY_POLICY_ETAG}));
        }
        self.to_json(requested_version)
    }

    /// Returns an etag that changes whenever the bindings change, in
    /// Google's style: base64 of 8 bytes that start with `0x07 0x0N`, so `Bw`.
    pub fn etag(&self) -> String {
        let mut text = String::new();
        for binding in &self.bindings {
            text.push_str(&format!("{binding:?};"));
        }
        let mut bytes = fnv64(&text).to_be_bytes();
        bytes[0] = 0x07;
        bytes[1] &= 0x0f;
        base64(&bytes)
    }
}

fn binding_json(binding: &FakeBinding, downgraded: bool) -> Value {
    match (&binding.condition, downgraded) {
        (Some(condition), true) => {
            let hash = fnv64(&condition.to_string());
            json!({
                "role": format!("{}_withcond_{hash:016x}", binding.role),
                "members": binding.members,
            })
        }
        (Some(condition), false) => json!({
            "role": binding.role,
            "members": binding.members,
            "condition": condition,
        }),
        (None, _) => json!({"role": binding.role, "members": binding.members}),
    }
}

/// A project with its service accounts and IAM policy.
#[derive(Debug, Clone)]
pub struct FakeProject {
    /// The project id, such as `idrift-fake-01`.
    pub project_id: String,
    /// The project number, 12 digits.
    pub project_number: u64,
    /// `displayName`.
    pub display_name: String,
    /// `organizations/NUMBER` or `folders/NUMBER`.
    pub parent: String,
    /// `ACTIVE` or `DELETE_REQUESTED`.
    pub state: String,
    /// `createTime`.
    pub create_time: String,
    /// Service accounts, in listing order.
    pub service_accounts: Vec<FakeServiceAccount>,
    /// The IAM policy.
    pub policy: FakePolicy,
    /// Workload identity pools, in listing order.
    pub pools: Vec<FakePool>,
    /// Edits to the project's JSON in `projects:search`.
    pub edits: JsonEdits,
}

impl FakeProject {
    /// Builds an active project under [`ORGANIZATION`] with no service
    /// accounts and an empty policy.
    pub fn new(project_id: &str, project_number: u64) -> FakeProject {
        FakeProject {
            project_id: project_id.to_string(),
            project_number,
            display_name: project_id.to_string(),
            parent: ORGANIZATION.to_string(),
            state: "ACTIVE".to_string(),
            create_time: CREATED.to_string(),
            service_accounts: Vec::new(),
            policy: FakePolicy::default(),
            pools: Vec::new(),
            edits: JsonEdits::default(),
        }
    }

    /// Builds project `number`: `idrift-fake-<number>`, number
    /// `415104041200 + number`, with no service accounts and an empty policy.
    pub fn numbered(number: u64) -> FakeProject {
        FakeProject::new(
            &format!("idrift-fake-{number:02}"),
            415_104_041_200 + number,
        )
    }

    /// Builds project `number` with `count` user-created accounts (numbers
    /// 1 to `count`) and nothing else.
    pub fn with_accounts(number: u64, count: u64) -> FakeProject {
        let mut project = FakeProject::numbered(number);
        project.service_accounts = (1..=count)
            .map(|account| project.numbered_account(account))
            .collect();
        project
    }

    /// Builds project `number` the way a project with Compute Engine enabled
    /// looks:
    ///
    /// - the Compute Engine default account, with one system-managed key
    ///   (seed `number * 1000`), and the user-created account 1,
    ///   `sa-001@...`, with no keys;
    /// - `roles/owner` to `user:owner@example.com`, `roles/editor` to the
    ///   default account and the Google APIs service agent
    ///   (`NUMBER@cloudservices.gserviceaccount.com`), and
    ///   `roles/compute.serviceAgent` to the Compute Engine service agent.
    pub fn sample(number: u64) -> FakeProject {
        let mut project = FakeProject::numbered(number);
        let mut compute = project.default_compute_account();
        compute.keys.push(FakeKey::system_managed(number * 1000));
        project.service_accounts = vec![compute, project.numbered_account(1)];

        let project_number = project.project_number;
        let compute_member = format!("serviceAccount:{}", default_compute_email(project_number));
        let apis_member =
            format!("serviceAccount:{project_number}@cloudservices.gserviceaccount.com");
        let agent_member = format!(
            "serviceAccount:service-{project_number}@compute-system.iam.gserviceaccount.com"
        );
        project.policy.bindings = vec![
            FakeBinding::new("roles/compute.serviceAgent", &[&agent_member]),
            FakeBinding::new("roles/editor", &[&compute_member, &apis_member]),
            FakeBinding::new("roles/owner", &["user:owner@example.com"]),
        ];
        project
    }

    /// Builds user-created account `number` of this project:
    /// `sa-<number>@<project>.iam.gserviceaccount.com`, with a display name
    /// and a description.
    pub fn numbered_account(&self, number: u64) -> FakeServiceAccount {
        let email = format!("sa-{number:03}@{}.iam.gserviceaccount.com", self.project_id);
        let mut account = FakeServiceAccount::new(&email, &unique_id(self.project_number, number));
        account.display_name = Some(format!("Service account {number:03}"));
        account.description = Some(format!("Made by the tests as account {number}"));
        account
    }

    /// Builds this project's Compute Engine default account, which has unique id number 0.
    pub fn default_compute_account(&self) -> FakeServiceAccount {
        let email = default_compute_email(self.project_number);
        let mut account = FakeServiceAccount::new(&email, &unique_id(self.project_number, 0));
        account.display_name = Some(COMPUTE_DISPLAY_NAME.to_string());
        account
    }

    /// Builds this project's App Engine default account, which has unique id
    /// number 999999999999.
    pub fn app_engine_account(&self) -> FakeServiceAccount {
        let email = app_engine_email(&self.project_id);
        let number = 999_999_999_999;
        let mut account = FakeServiceAccount::new(&email, &unique_id(self.project_number, number));
        account.display_name = Some(APP_ENGINE_DISPLAY_NAME.to_string());
        account
    }

    /// Returns the policy member of this project's service agent for a
    /// service, such as `serviceAccount:service-NUM@gcp-sa-pubsub...`.
    pub fn service_agent_member(&self, service: &str) -> String {
        let email = service_agent_email(self.project_number, service);
        format!("serviceAccount:{email}")
    }

    /// Adds a member to a role's binding (without a condition), adding the
    /// binding when the role has none.
    pub fn grant(&mut self, role: &str, member: &str) {
        let bindings = &mut self.policy.bindings;
        let existing = bindings
            .iter_mut()
            .find(|binding| binding.role == role && binding.condition.is_none());
        match existing {
            Some(binding) if binding.members.iter().any(|m| m == member) => {}
            Some(binding) => binding.members.push(member.to_string()),
            None => bindings.push(FakeBinding::new(role, &[member])),
        }
    }

    /// Returns the pool with an id to change it.
    ///
    /// # Panics
    ///
    /// When the project has no such pool.
    pub fn pool_mut(&mut self, pool_id: &str) -> &mut FakePool {
        let project_id = self.project_id.clone();
        self.pools
            .iter_mut()
            .find(|pool| pool.pool_id == pool_id)
            .unwrap_or_else(|| panic!("project {project_id} has no pool {pool_id}"))
    }

    /// Returns the account with an email or unique id, if there is one.
    pub fn account(&self, account: &str) -> Option<&FakeServiceAccount> {
        self.service_accounts.iter().find(|sa| sa.is_named(account))
    }

    /// Returns the account with an email or unique id to change it.
    ///
    /// # Panics
    ///
    /// When the project has no such account.
    pub fn account_mut(&mut self, account: &str) -> &mut FakeServiceAccount {
        let project_id = self.project_id.clone();
        self.service_accounts
            .iter_mut()
            .find(|sa| sa.is_named(account))
            .unwrap_or_else(|| panic!("project {project_id} has no service account {account}"))
    }

    /// Deletes the account with an email and creates it again with unique
    /// id number `number` and no keys, in the same place in the listing.
    pub fn recreate_account(&mut self, email: &str, number: u64) {
        let new_id = unique_id(self.project_number, number);
        let account = self.account_mut(email);
        account.unique_id = new_id.clone();
        account.oauth2_client_id = new_id;
        account.keys.clear();
    }

    fn to_json(&self) -> Value {
        let mut record = json!({
            "name": format!("projects/{}", self.project_number),
            "parent": self.parent,
            "projectId": self.project_id,
            "state": self.state,
            "displayName": self.display_name,
            "createTime": self.create_time,
            "updateTime": self.create_time,
            "etag": format!("W/\"{:016x}\"", fnv64(&self.project_id)),
        });
        if self.state == "DELETE_REQUESTED" {
            record["deleteTime"] = json!(self.create_time);
        }
        apply_edits(&self.edits, record)
    }

    /// Returns true when `name` is this project's id or number.
    fn is_named(&self, name: &str) -> bool {
        self.project_id == name || self.project_number.to_string() == name
    }
}

impl Editable for FakeProject {
    fn edits_mut(&mut self) -> &mut JsonEdits {
        &mut self.edits
    }
}

/// The outside issuer whose tokens a workload identity provider accepts.
#[derive(Debug, Clone, PartialEq)]
pub enum FakeIssuer {
    /// An OIDC issuer, with the audiences it accepts.
    Oidc {
        /// `issuerUri`.
        issuer_uri: String,
        /// `allowedAudiences`, left out when empty.
        allowed_audiences: Vec<String>,
        /// `jwksJson`, left out when `None`.
        jwks_json: Option<String>,
    },
    /// An AWS account.
    Aws {
        /// `accountId`, 12 digits.
        account_id: String,
    },
    /// A SAML identity provider, by its metadata XML.
    Saml {
        /// `idpMetadataXml`.
        idp_metadata_xml: String,
    },
}

impl FakeIssuer {
    /// Builds the GitHub Actions OIDC issuer with no allowed audiences set.
    pub fn github() -> FakeIssuer {
        FakeIssuer::Oidc {
            issuer_uri: "https://token.actions.githubusercontent.com".to_string(),
            allowed_audiences: Vec::new(),
            jwks_json: None,
        }
    }
}

/// A workload identity pool provider.
#[derive(Debug, Clone)]
pub struct FakeProvider {
    /// The provider id, the last part of its name.
    pub provider_id: String,
    /// `displayName`, left out when `None`.
    pub display_name: Option<String>,
    /// `ACTIVE` or `DELETED`.
    pub state: String,
    /// Whether the provider is disabled. The field is left out when false.
    pub disabled: bool,
    /// `attributeMapping`.
    pub attribute_mapping: BTreeMap<String, String>,
    /// `attributeCondition`, left out when `None`.
    pub attribute_condition: Option<String>,
    /// Whose tokens it accepts.
    pub issuer: FakeIssuer,
    /// Edits to the provider's JSON.
    pub edits: JsonEdits,
}

impl FakeProvider {
    /// Builds an active provider for `issuer` that maps `google.subject`
    /// to `assertion.sub` and has no attribute condition.
    pub fn new(provider_id: &str, issuer: FakeIssuer) -> FakeProvider {
        let mapping = [("google.subject", "assertion.sub")];
        FakeProvider {
            provider_id: provider_id.to_string(),
            display_name: Some(provider_id.to_string()),
            state: "ACTIVE".to_string(),
            disabled: false,
            attribute_mapping: mapping
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
            attribute_condition: None,
            issuer,
            edits: JsonEdits::default(),
        }
    }

    fn to_json(&self, pool_name: &str) -> Value {
        let mut record = json!({
            "name": format!("{pool_name}/providers/{}", self.provider_id),
            "state": self.state,
            "attributeMapping": self.attribute_mapping,
        });
        if let Some(name) = &self.display_name {
            record["displayName"] = json!(name);
        }
        if self.disabled {
            record["disabled"] = json!(true);
        }
        if let Some(condition) = &self.attribute_condition {
            record["attributeCondition"] = json!(condition);
        }
        if self.state == "DELETED" {
            record["expireTime"] = json!(KEY_VALID_AFTER);
        }
        match &self.issuer {
            FakeIssuer::Oidc {
                issuer_uri,
                allowed_audiences,
                jwks_json,
            } => {
                let mut oidc = json!({"issuerUri": issuer_uri});
                if !allowed_audiences.is_empty() {
                    oidc["allowedAudiences"] = json!(allowed_audiences);
                }
                if let Some(jwks) = jwks_json {
                    oidc["jwksJson"] = json!(jwks);
                }
                record["oidc"] = oidc;
            }
            FakeIssuer::Aws { account_id } => record["aws"] = json!({"accountId": account_id}),
            FakeIssuer::Saml { idp_metadata_xml } => {
                record["saml"] = json!({"idpMetadataXml": idp_metadata_xml});
            }
        }
        apply_edits(&self.edits, record)
    }
}

impl Editable for FakeProvider {
    fn edits_mut(&mut self) -> &mut JsonEdits {
        &mut self.edits
    }
}

/// A workload identity pool, with its providers.
#[derive(Debug, Clone)]
pub struct FakePool {
    /// The pool id, the last part of its name.
    pub pool_id: String,
    /// `displayName`, left out when `None`.
    pub display_name: Option<String>,
    /// `ACTIVE` or `DELETED`.
    pub state: String,
    /// Whether the pool is disabled. The field is left out when false.
    pub disabled: bool,
    /// Providers, in listing order.
    pub providers: Vec<FakeProvider>,
    /// Edits to the pool's JSON.
    pub edits: JsonEdits,
}

impl FakePool {
    /// Builds an active pool with no providers.
    pub fn new(pool_id: &str) -> FakePool {
        FakePool {
            pool_id: pool_id.to_string(),
            display_name: Some(pool_id.to_string()),
            state: "ACTIVE".to_string(),
            disabled: false,
            providers: Vec::new(),
            edits: JsonEdits::default(),
        }
    }

    /// Returns the pool's resource name, which names the project by number
    /// as Google's responses do.
    pub fn name(&self, project_number: u64) -> String {
        format!(
            "projects/{project_number}/locations/global/workloadIdentityPools/{}",
            self.pool_id
        )
    }

    fn to_json(&self, project_number: u64) -> Value {
        let mut record = json!({"name": self.name(project_number), "state": self.state});
        if let Some(name) = &self.display_name {
            record["displayName"] = json!(name);
        }
        if self.disabled {
            record["disabled"] = json!(true);
        }
        if self.state == "DELETED" {
            record["expireTime"] = json!(KEY_VALID_AFTER);
        }
        apply_edits(&self.edits, record)
    }
}

impl Editable for FakePool {
    fn edits_mut(&mut self) -> &mut JsonEdits {
        &mut self.edits
    }
}

/// The fake's data set: the projects the caller can see, in search order.
#[derive(Debug, Clone, Default)]
pub struct Organization {
    /// Projects.
    pub projects: Vec<FakeProject>,
}

impl Organization {
    /// Builds an organization of the sample projects 1 and 2.
    pub fn sample() -> Organization {
        Organization {
            projects: vec![FakeProject::sample(1), FakeProject::sample(2)],
        }
    }

    /// Returns the project with an id or number, if there is one.
    pub fn project(&self, name: &str) -> Option<&FakeProject> {
        self.projects.iter().find(|project| project.is_named(name))
    }

    /// Returns the project with an id or number to change it.
    ///
    /// # Panics
    ///
    /// When there is no such project.
    pub fn project_mut(&mut self, name: &str) -> &mut FakeProject {
        self.projects
            .iter_mut()
            .find(|project| project.is_named(name))
            .unwrap_or_else(|| panic!("no project {name}"))
    }

    /// Returns the service account with an email in any project, and its project.
    fn find_account(&self, email: &str) -> Option<(&FakeProject, &FakeServiceAccount)> {
        self.projects.iter().find_map(|project| {
            let account = project.account(email)?;
            Some((project, account))
        })
    }
}

/// A Google Workspace user, as `users.list` returns it.
#[derive(Debug, Clone)]
pub struct FakeUser {
    /// The immutable numeric `id`, 21 digits.
    pub id: String,
    /// `primaryEmail`, which can be given to a new user with a new id.
    pub primary_email: String,
    /// `isAdmin`: a super administrator.
    pub is_admin: bool,
    /// `isDelegatedAdmin`: has an admin role short of super admin.
    pub is_delegated_admin: bool,
    /// `suspended`.
    pub suspended: bool,
    /// `archived`.
    pub archived: bool,
    /// `orgUnitPath`.
    pub org_unit_path: String,
    /// `creationTime`.
    pub creation_time: String,
    /// Edits to the user's JSON.
    pub edits: JsonEdits,
}

impl FakeUser {
    /// Builds an active user without admin status in the root unit, whose
    /// id is derived from `seed`.
    pub fn new(email: &str, seed: u64) -> FakeUser {
        FakeUser {
            id: user_id(seed),
            primary_email: email.to_string(),
            is_admin: false,
            is_delegated_admin: false,
            suspended: false,
            archived: false,
            org_unit_path: "/".to_string(),
            creation_time: CREATED.to_string(),
            edits: JsonEdits::default(),
        }
    }

    /// Makes the user a super administrator.
    pub fn super_admin(mut self) -> FakeUser {
        self.is_admin = true;
        self
    }

    fn to_json(&self, customer_id: &str) -> Value {
        let local = self.primary_email.split('@').next().unwrap_or_default();
        let record = json!({
            "kind": "admin#directory#user",
            "id": self.id,
            "etag": format!("\"{:016x}\"", fnv64(&self.primary_email)),
            "primaryEmail": self.primary_email,
            "name": {"givenName": local, "familyName": "Example", "fullName": format!("{local} Example")},
            "isAdmin": self.is_admin,
            "isDelegatedAdmin": self.is_delegated_admin,
            "lastLoginTime": rfc3339(unix_now()),
            "creationTime": self.creation_time,
            "agreedToTerms": true,
            "suspended": self.suspended,
            "archived": self.archived,
            "changePasswordAtNextLogin": false,
            "ipWhitelisted": false,
            "emails": [{"address": self.primary_email, "primary": true}],
            "customerId": customer_id,
            "orgUnitPath": self.org_unit_path,
            "isMailboxSetup": true,
            "isEnrolledIn2Sv": false,
            "isEnforcedIn2Sv": false,
            "includeInGlobalAddressList": true,
        });
        apply_edits(&self.edits, record)
    }
}

impl Editable for FakeUser {
    fn edits_mut(&mut self) -> &mut JsonEdits {
        &mut self.edits
    }
}

/// Returns a 21-digit Workspace user id derived from `seed`.
pub fn user_id(seed: u64) -> String {
    // Any u64 has at most 20 digits.
    format!("1{:020}", fnv64(&seed.to_string()))
}

/// A Google Workspace or Cloud Identity customer.
#[derive(Debug, Clone)]
pub struct FakeCustomer {
    /// The customer id, such as [`CUSTOMER_ID`].
    pub customer_id: String,
    /// Users, in listing order.
    pub users: Vec<FakeUser>,
}

impl FakeCustomer {
    /// Returns the user with an email, to change it.
    ///
    /// # Panics
    ///
    /// When there is no such user.
    pub fn user_mut(&mut self, email: &str) -> &mut FakeUser {
        self.users
            .iter_mut()
            .find(|user| user.primary_email == email)
            .unwrap_or_else(|| panic!("no user {email}"))
    }

    /// Returns true when the email is that of one of its admins.
    fn has_admin(&self, email: &str) -> bool {
        self.users.iter().any(|user| {
            user.primary_email == email
                && (user.is_admin || user.is_delegated_admin)
                && !user.suspended
        })
    }

    fn has_user(&self, email: &str) -> bool {
        self.users.iter().any(|user| user.primary_email == email)
    }
}

/// The Workspace customers the fake serves through the Directory API.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    /// Customers; `my_customer` is the one with a user of the caller's email.
    pub customers: Vec<FakeCustomer>,
}

impl Workspace {
    /// Builds one customer, [`CUSTOMER_ID`], whose super admin is the user
    /// of the fake's refresh token ([`USER_EMAIL`]), with `users` more
    /// ordinary users `user-N@example.com`.
    pub fn sample(users: u64) -> Workspace {
        let mut all = vec![FakeUser::new(USER_EMAIL, 0).super_admin()];
        all.extend((1..=users).map(|n| FakeUser::new(&format!("user-{n}@example.com"), n)));
        Workspace {
            customers: vec![FakeCustomer {
                customer_id: CUSTOMER_ID.to_string(),
                users: all,
            }],
        }
    }

    /// Returns the customer with an id, to change it.
    ///
    /// # Panics
    ///
    /// When there is no such customer.
    pub fn customer_mut(&mut self, customer_id: &str) -> &mut FakeCustomer {
        self.customers
            .iter_mut()
            .find(|customer| customer.customer_id == customer_id)
            .unwrap_or_else(|| panic!("no customer {customer_id}"))
    }
}

/// How the last page of a listing marks the end of the listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastPageToken {
    /// No `nextPageToken` field, as proto3 JSON leaves out empty strings.
    Omitted,
    /// `"nextPageToken": ""`.
    Empty,
}

/// A scripted misbehavior of the fake.
///
/// Faults are checked in the order they were added, after the bearer token
/// is checked, and the first error fault that applies to a request decides
/// its response. A `path` is matched exactly, and a path that ends in `*`
/// matches every path that starts with the text before it. Paths are
/// compared after percent-decoding. Pages are numbered from 1 by the
/// `pageToken` of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Returns 429 `RESOURCE_EXHAUSTED`, with the quota details Google
    /// sends, for the first `times` requests of `path`.
    Throttle {
        /// The path, such as [`service_accounts_path`]`("p")`.
        path: String,
        /// How many requests fail.
        times: usize,
    },
    /// Returns 503 `UNAVAILABLE` for the first `times` requests of `path`.
    Unavailable {
        /// The path.
        path: String,
        /// How many requests fail.
        times: usize,
    },
    /// Returns 403 `PERMISSION_DENIED` for every API request about a
    /// project: its service accounts, their keys and policies, its IAM
    /// policy and its workload identity pools.
    PermissionDenied {
        /// The project id, as used in request paths.
        project_id: String,
    },
    /// Returns 403 `PERMISSION_DENIED` for every request of `path`, such
    /// as one account's [`account_policy_path`].
    Forbidden {
        /// The path.
        path: String,
    },
    /// Returns 401 `UNAUTHENTICATED` once, for page `page` of `path`, and
    /// revokes the request's token, so only a new token gets past it.
    RevokeToken {
        /// The path.
        path: String,
        /// The page that fails, from 1.
        page: usize,
    },
    /// Serves page `page` of `path` with no records but with a
    /// `nextPageToken` to the records it would have held, so nothing is lost.
    EmptyPage {
        /// The path.
        path: String,
        /// The page that is empty, from 1.
        page: usize,
    },
    /// Gives every page of `path` after the first the `pageToken` it was
    /// requested with as its `nextPageToken`, so the listing never
    /// advances. The data set needs at least two pages.
    RepeatedPageToken {
        /// The path.
        path: String,
    },
    /// Serves page `page` of `path` as status 200 with JSON cut off halfway.
    MalformedPage {
        /// The path.
        path: String,
        /// The page that is malformed, from 1.
        page: usize,
    },
    /// Returns 403 `PERMISSION_DENIED` with reason `SERVICE_DISABLED` for
    /// every Directory API request, as when the Admin SDK API is not
    /// enabled in the caller's project.
    DirectoryApiDisabled,
    /// Fails the first `times` token requests, to the metadata server or
    /// the OAuth endpoint, with 503.
    TokenUnavailable {
        /// How many token requests fail.
        times: usize,
    },
}

/// A fault and how many requests it has failed so far.
#[derive(Debug)]
struct ActiveFault {
    fault: Fault,
    hits: usize,
}

/// Path of Cloud Logging's `entries:list`.
pub const LOG_ENTRIES_LIST_PATH: &str = "/v2/entries:list";

/// Builds an Admin Activity audit log entry of `project`, made by `principal`.
/// `subject` is the service account email a service account method names
/// (in `response.email` and `resourceName`), or the policy member that a
/// `SetIamPolicy` entry adds (in `serviceData.policyDelta.bindingDeltas`).
pub fn audit_log_entry(
    insert_id: &str,
    method: &str,
    time: &str,
    project: &str,
    subject: &str,
    principal: &str,
) -> Value {
    let mut payload = json!({
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "authenticationInfo": { "principalEmail": principal },
        "requestMetadata": {
            "callerIp": "192.0.2.44",
            "callerSuppliedUserAgent": "google-cloud-sdk gcloud/470.0.0",
        },
        "methodName": method,
    });
    if method == "SetIamPolicy" {
        payload["serviceName"] = json!("cloudresourcemanager.googleapis.com");
        payload["resourceName"] = json!(format!("projects/{project}"));
        payload["serviceData"] = json!({
            "@type": "type.googleapis.com/google.iam.v1.logging.AuditData",
            "policyDelta": { "bindingDeltas": [
                { "action": "ADD", "role": "roles/editor", "member": subject },
            ]},
        });
    } else {
        payload["serviceName"] = json!("iam.googleapis.com");
        payload["resourceName"] = json!(format!("projects/-/serviceAccounts/{subject}"));
        payload["response"] = json!({ "email": subject });
    }
    json!({
        "insertId": insert_id,
        "logName": format!("projects/{project}/logs/cloudaudit.googleapis.com%2Factivity"),
        "protoPayload": payload,
        "resource": { "type": "service_account", "labels": { "project_id": project } },
        "timestamp": time,
        "severity": "NOTICE",
    })
}

/// Keeps the entries of a project that a filter matches, oldest first.
///
/// The fake does not parse the Logging query language. It reads the
/// filter's `timestamp>="…"` and `timestamp<="…"` bounds and its quoted
/// values. An entry is kept when its `logName` is quoted in the filter (if
/// the filter names one) and its `methodName` is quoted. One quoted value
/// must also be the entry's `response.email` or a binding delta's member,
/// or be contained in its `resourceName`.
pub fn log_entries_matching(entries: &[Value], project: &str, filter: &str) -> Vec<Value> {
    let quoted: Vec<&str> = filter.split('"').skip(1).step_by(2).collect();
    let bound = |operator: &str| {
        filter
            .split(&format!("timestamp{operator}\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
    };
    let (start, end) = (bound(">="), bound("<="));
    let names_log = filter.contains("logName=");
    let mut kept: Vec<Value> = entries
        .iter()
        .filter(|entry| {
            let payload = &entry["protoPayload"];
            let text = |value: &Value| value.as_str().unwrap_or_default().to_string();
            let time = text(&entry["timestamp"]);
            let log_name = text(&entry["logName"]);
            let in_project = log_name.starts_with(&format!("projects/{project}/"));
            let in_window = start.is_none_or(|start| time.as_str() >= start)
                && end.is_none_or(|end| time.as_str() <= end);
            let log_ok = !names_log || quoted.contains(&log_name.as_str());
            let method_ok = quoted.contains(&text(&payload["methodName"]).as_str());
            let members: Vec<String> = payload["serviceData"]["policyDelta"]["bindingDeltas"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|delta| text(&delta["member"]))
                .collect();
            let email = text(&payload["response"]["email"]);
            let resource = text(&payload["resourceName"]);
            let subject_ok = quoted.iter().any(|value| {
                !value.is_empty()
                    && (*value == email
                        || members.iter().any(|member| member == value)
                        || resource.contains(value))
            });
            in_project && in_window && log_ok && method_ok && subject_ok
        })
        .cloned()
        .collect();
    kept.sort_by(|a, b| a["timestamp"].as_str().cmp(&b["timestamp"].as_str()));
    kept
}

/// Returns true when a fault's path pattern matches a request path.
fn path_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

/// Where an access token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// The metadata server's default service account.
    Metadata,
    /// The OAuth endpoint's refresh token grant.
    RefreshToken,
    /// `generateAccessToken`.
    Impersonation,
}

/// An access token the fake issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The token.
    pub token: String,
    /// Where it came from.
    pub source: TokenSource,
    /// The email of the account it acts as.
    pub principal: String,
    /// The scopes it was requested with, in request order.
    pub scopes: Vec<String>,
}

/// One request the fake received, with its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The HTTP method, such as `GET`.
    pub method: String,
    /// The absolute URL as requested: the fake's endpoint and the request
    /// target, escapes kept as sent.
    pub url: String,
    /// The path without the query, percent-decoded.
    pub path: String,
    /// The query parameters in request order, percent-decoded.
    pub params: Vec<(String, String)>,
    /// Every header, by lowercase name. A repeated header keeps its last value.
    pub headers: BTreeMap<String, String>,
    /// The request body as text.
    pub body: String,
    /// The HTTP status of the response.
    pub status: u16,
    /// The page number, from 1, of a list request.
    pub page: Option<usize>,
    /// The `nextPageToken` that the response carried, if any.
    pub next_page_token: Option<String>,
    /// The number of records in the response's list, for list responses.
    pub record_count: Option<usize>,
    /// When the fake received the request.
    pub received: Instant,
}

impl RecordedRequest {
    /// Returns a decoded query parameter, such as `pageToken`, if the request
    /// sent it. A repeated parameter returns its first value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Returns a header by case-insensitive name, if the request sent it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Returns the bearer token of the `Authorization` header, if any.
    pub fn bearer_token(&self) -> Option<&str> {
        bearer_token(self.header("authorization")?)
    }

    /// Parses the body as JSON.
    ///
    /// # Panics
    ///
    /// When the body is not JSON.
    pub fn body_json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("the body is not JSON ({error}): {}", self.body))
    }

    /// Returns true for a request to the metadata server or the OAuth token endpoint.
    pub fn is_token_request(&self) -> bool {
        self.path == METADATA_TOKEN_PATH || self.path == OAUTH_TOKEN_PATH
    }

    /// Returns true for a request to the metadata server.
    pub fn is_metadata_request(&self) -> bool {
        self.path.starts_with(METADATA_ROOT_PATH)
    }
}

/// Returns the credentials of an `Authorization: Bearer` value, with the
/// scheme compared case-insensitively.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// An access token's record in the fake's token store.
#[derive(Debug, Clone)]
struct TokenGrant {
    expires_at: Instant,
}

/// Everything the fake's handler reads and changes, behind one lock.
#[derive(Debug)]
struct State {
    /// `http://127.0.0.1:PORT`.
    endpoint: String,
    organization: Organization,
    workspace: Workspace,
    /// Records per page at most, below the request's `pageSize`.
    page_size: usize,
    last_page_token: LastPageToken,
    token_lifetime_seconds: u64,
    /// Tokens the API accepts until they expire.
    valid_tokens: BTreeMap<String, TokenGrant>,
    /// Tokens that a fault or [`FakeGcp::revoke_tokens`] revoked.
    revoked_tokens: BTreeSet<String>,
    issued_tokens: Vec<IssuedToken>,
    /// Every page token handed out, by token: the path it lists and the page it starts.
    page_tokens: BTreeMap<String, (String, Position)>,
    faults: Vec<ActiveFault>,
    requests: Vec<RecordedRequest>,
    /// Audit log entries that `entries:list` serves.
    log_entries: Vec<Value>,
}

/// A fake Google Cloud on 127.0.0.1, stopped when dropped.
pub struct FakeGcp {
    /// `http://127.0.0.1:PORT`, the base URL of every API and of the token endpoints.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    server: Arc<Server>,
    stopping: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl FakeGcp {
    /// Starts the fake on a free port with a data set, no extra page size
    /// limit, last pages without `nextPageToken`, tokens valid for
    /// [`DEFAULT_TOKEN_LIFETIME_SECONDS`] and no faults.
    pub fn start(organization: Organization) -> FakeGcp {
        let server = Server::http("127.0.0.1:0").expect("bind the fake GCP server");
        let server = Arc::new(server);
        let port = server
            .server_addr()
            .to_ip()
            .expect("the fake GCP server listens on TCP")
            .port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let state = Arc::new(Mutex::new(State {
            endpoint: endpoint.clone(),
            organization,
            workspace: Workspace::default(),
            page_size: usize::MAX,
            last_page_token: LastPageToken::Omitted,
            token_lifetime_seconds: DEFAULT_TOKEN_LIFETIME_SECONDS,
            valid_tokens: BTreeMap::new(),
            revoked_tokens: BTreeSet::new(),
            issued_tokens: Vec::new(),
            page_tokens: BTreeMap::new(),
            log_entries: Vec::new(),
            faults: Vec::new(),
            requests: Vec::new(),
        }));
        let stopping = Arc::new(AtomicBool::new(false));

        let worker = {
            let server = Arc::clone(&server);
            let state = Arc::clone(&state);
            let stopping = Arc::clone(&stopping);
            std::thread::spawn(move || serve(&server, &state, &stopping))
        };
        FakeGcp {
            endpoint,
            state,
            server,
            stopping,
            worker: Some(worker),
        }
    }

    /// Returns `127.0.0.1:PORT`, the value for `GCE_METADATA_HOST`.
    pub fn metadata_host(&self) -> String {
        self.endpoint
            .strip_prefix("http://")
            .unwrap_or(&self.endpoint)
            .to_string()
    }

    /// Returns the OAuth token endpoint's URL, for `token_uri`.
    pub fn token_uri(&self) -> String {
        format!("{}{OAUTH_TOKEN_PATH}", self.endpoint)
    }

    /// Returns an `authorized_user` credential file's JSON whose refresh
    /// token the fake's token endpoint accepts, with `token_uri` set to it.
    pub fn authorized_user_json(&self) -> Value {
        json!({
            "type": "authorized_user",
            "client_id": OAUTH_CLIENT_ID,
            "client_secret": OAUTH_CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
            "token_uri": self.token_uri(),
        })
    }

    /// Returns the URL of `generateAccessToken` for a service account at the fake.
    pub fn impersonation_url(&self, email: &str) -> String {
        format!("{}{}", self.endpoint, generate_access_token_path(email))
    }

    /// Returns an `impersonated_service_account` credential file's JSON
    /// that impersonates `email` with the user of
    /// [`FakeGcp::authorized_user_json`] as its source.
    pub fn impersonated_credentials_json(&self, email: &str) -> Value {
        json!({
            "type": "impersonated_service_account",
            "service_account_impersonation_url": self.impersonation_url(email),
            "source_credentials": self.authorized_user_json(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the data set, as if the organization changed between two scans.
    pub fn set_organization(&self, organization: Organization) {
        self.state().organization = organization;
    }

    /// Changes the data set in place.
    pub fn edit_organization(&self, edit: impl FnOnce(&mut Organization)) {
        edit(&mut self.state().organization);
    }

    /// Returns the idrift command with no Google, cloud or proxy variables
    /// of the caller, `home` as HOME and the metadata server at the fake.
    pub fn idrift(&self, home: &std::path::Path) -> std::process::Command {
        let mut command = super::idrift(home);
        for (name, _) in std::env::vars() {
            let cloud = name.starts_with("GOOGLE_")
                || name.starts_with("GCE_")
                || name.starts_with("CLOUDSDK_")
                || name.to_ascii_lowercase().ends_with("_proxy");
            if cloud {
                command.env_remove(name);
            }
        }
        command.env("GCE_METADATA_HOST", self.metadata_host());
        command
    }

    /// Replaces the Workspace customers the Directory API serves.
    pub fn set_workspace(&self, workspace: Workspace) {
        self.state().workspace = workspace;
    }

    /// Changes the Workspace customers in place.
    pub fn edit_workspace(&self, edit: impl FnOnce(&mut Workspace)) {
        edit(&mut self.state().workspace);
    }

    /// Sets the maximum number of records per page of every listing. A
    /// request's `pageSize` can make pages smaller still.
    pub fn set_page_size(&self, page_size: usize) {
        assert!(page_size >= 1, "a page holds at least 1 record");
        self.state().page_size = page_size;
    }

    /// Sets how last pages mark the end of a listing.
    pub fn set_last_page_token(&self, last_page_token: LastPageToken) {
        self.state().last_page_token = last_page_token;
    }

    /// Sets the lifetime of tokens issued from now on. google-cloud-auth
    /// 1.19 fetches a new token once its cached one expires within 240 s.
    pub fn set_token_lifetime(&self, seconds: u64) {
        self.state().token_lifetime_seconds = seconds;
    }

    /// Revokes every token issued so far, so only new tokens pass.
    pub fn revoke_tokens(&self) {
        let mut state = self.state();
        let tokens: Vec<String> = state.valid_tokens.keys().cloned().collect();
        for token in tokens {
            state.revoke(&token);
        }
    }

    /// Adds a fault after those already added.
    pub fn add_fault(&self, fault: Fault) {
        self.state().faults.push(ActiveFault { fault, hits: 0 });
    }

    /// Removes every fault, so that the fake behaves like Google again.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Returns every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// Returns the requests of one decoded path, such as
    /// [`service_accounts_path`]`("p")`, in arrival order.
    pub fn requests_for(&self, path: &str) -> Vec<RecordedRequest> {
        let state = self.state();
        let matching = state.requests.iter().filter(|request| request.path == path);
        matching.cloned().collect()
    }

    /// Returns the requests to the metadata server and the OAuth token
    /// endpoint, in arrival order.
    pub fn token_requests(&self) -> Vec<RecordedRequest> {
        let state = self.state();
        let matching = state.requests.iter().filter(|r| r.is_token_request());
        matching.cloned().collect()
    }

    /// Returns every access token issued so far, in order.
    pub fn issued_tokens(&self) -> Vec<IssuedToken> {
        self.state().issued_tokens.clone()
    }

    /// Adds an audit log entry, such as one from [`audit_log_entry`].
    pub fn add_log_entry(&self, entry: Value) {
        self.state().log_entries.push(entry);
    }

    /// Clears the requests recorded so far.
    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }
}

impl Drop for FakeGcp {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.server.unblock();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Handles requests one at a time until the fake is dropped.
fn serve(server: &Server, state: &Mutex<State>, stopping: &AtomicBool) {
    loop {
        let mut request = match server.recv() {
            Ok(request) => request,
            // `recv` fails both when unblocked and on a failed accept, but
            // only the first ends the loop.
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(error) => {
                eprintln!("fake GCP: accepting a connection failed: {error}");
                continue;
            }
        };

        let headers: BTreeMap<String, String> = request
            .headers()
            .iter()
            .map(|header| {
                let name = header.field.as_str().as_str().to_ascii_lowercase();
                (name, header.value.as_str().to_string())
            })
            .collect();
        let mut body = String::new();
        if let Err(error) = request.as_reader().read_to_string(&mut body) {
            eprintln!("fake GCP: reading the request body failed: {error}");
        }
        let incoming = Incoming::parse(request.method(), request.url(), headers, body);
        let reply = {
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            state.handle(incoming)
        };

        write_reply(request, &reply);
    }
}

/// Sends a reply with `Connection: close`, so the client opens a new
/// connection for its next request.
///
/// tiny_http 0.12 serves each connection on a pool thread until the client
/// closes it, and a burst of connections can wait behind idle keep-alive
/// connections. `Response` drops a `Connection` header, so the reply is written raw.
fn write_reply(request: Request, reply: &Reply) {
    let reason = StatusCode(reply.status).default_reason_phrase();
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");

    let mut writer = request.into_writer();
    let written = writer
        .write_all(head.as_bytes())
        .and_then(|()| writer.write_all(reply.body.as_bytes()))
        .and_then(|()| writer.flush());
    if let Err(error) = written {
        eprintln!("fake GCP: writing the response failed: {error}");
    }
}

/// A parsed request, before the fake responds to it.
#[derive(Debug)]
struct Incoming {
    method: String,
    /// The request target as sent: path and raw query.
    target: String,
    /// The percent-decoded path.
    path: String,
    params: Vec<(String, String)>,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Incoming {
    fn parse(
        method: &Method,
        target: &str,
        headers: BTreeMap<String, String>,
        body: String,
    ) -> Incoming {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let params = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode_query_text(name), decode_query_text(value))
            })
            .collect();
        Incoming {
            method: method.as_str().to_string(),
            target: target.to_string(),
            path: percent_decode_str(path).decode_utf8_lossy().into_owned(),
            params,
            headers,
            body,
        }
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Returns every value of a repeated query parameter, in order.
    fn params_named(&self, name: &str) -> Vec<&str> {
        self.params
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// Decodes one query name or value: `+` is a space, then percent escapes.
fn decode_query_text(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// An HTTP response.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: &'static str,
    /// Headers besides `Content-Type`, `Content-Length` and `Connection`.
    headers: Vec<(&'static str, String)>,
    body: String,
    /// The page number of a list request, recorded for the tests.
    page: Option<usize>,
    /// The `nextPageToken` in the body, recorded for the tests.
    next_page_token: Option<String>,
    /// How many records the body's list contains, recorded for the tests.
    record_count: Option<usize>,
}

impl Reply {
    fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            content_type: JSON_CONTENT_TYPE,
            headers: Vec::new(),
            body: body.to_string(),
            page: None,
            next_page_token: None,
            record_count: None,
        }
    }

    /// Builds a metadata server response, which always carries `Metadata-Flavor: Google`.
    fn metadata(status: u16, content_type: &'static str, body: String) -> Reply {
        Reply {
            status,
            content_type,
            headers: vec![("Metadata-Flavor", "Google".to_string())],
            body,
            page: None,
            next_page_token: None,
            record_count: None,
        }
    }

    /// Builds an OAuth 2.0 error response (RFC 6749 section 5.2).
    fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
        Reply::json(
            status,
            &json!({"error": error, "error_description": description}),
        )
    }
}

/// The Google API method that a request calls, for error details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApiMethod {
    ListServiceAccounts,
    ListServiceAccountKeys,
    GetServiceAccountIamPolicy,
    ListPools,
    ListProviders,
    GetIamPolicy,
    SearchProjects,
    ListFolders,
    GenerateAccessToken,
    ListUsers,
    ListLogEntries,
}

impl ApiMethod {
    /// Returns the API's service name, such as `iam.googleapis.com`.
    fn service(self) -> &'static str {
        match self {
            ApiMethod::ListServiceAccounts
            | ApiMethod::ListServiceAccountKeys
            | ApiMethod::GetServiceAccountIamPolicy
            | ApiMethod::ListPools
            | ApiMethod::ListProviders => "iam.googleapis.com",
            ApiMethod::GetIamPolicy | ApiMethod::SearchProjects | ApiMethod::ListFolders => {
                "cloudresourcemanager.googleapis.com"
            }
            ApiMethod::GenerateAccessToken => "iamcredentials.googleapis.com",
            ApiMethod::ListUsers => "admin.googleapis.com",
            ApiMethod::ListLogEntries => "logging.googleapis.com",
        }
    }

    /// Returns the fully qualified RPC name.
    fn rpc(self) -> &'static str {
        match self {
            ApiMethod::ListServiceAccounts => "google.iam.admin.v1.IAM.ListServiceAccounts",
            ApiMethod::ListServiceAccountKeys => "google.iam.admin.v1.IAM.ListServiceAccountKeys",
            ApiMethod::GetServiceAccountIamPolicy => "google.iam.admin.v1.IAM.GetIamPolicy",
            ApiMethod::ListPools => "google.iam.v1.WorkloadIdentityPools.ListWorkloadIdentityPools",
            ApiMethod::ListProviders => {
                "google.iam.v1.WorkloadIdentityPools.ListWorkloadIdentityPoolProviders"
            }
            ApiMethod::GetIamPolicy => "google.cloud.resourcemanager.v3.Projects.GetIamPolicy",
            ApiMethod::SearchProjects => "google.cloud.resourcemanager.v3.Projects.SearchProjects",
            ApiMethod::ListFolders => "google.cloud.resourcemanager.v3.Folders.ListFolders",
            ApiMethod::GenerateAccessToken => {
                "google.iam.credentials.v1.IAMCredentials.GenerateAccessToken"
            }
            ApiMethod::ListUsers => "ccc.hosted.frontend.directory.v1.DirectoryUsers.List",
            ApiMethod::ListLogEntries => "google.logging.v2.LoggingServiceV2.ListLogEntries",
        }
    }

    /// Returns the IAM permission the method needs.
    fn permission(self) -> &'static str {
        match self {
            ApiMethod::ListServiceAccounts => "iam.serviceAccounts.list",
            ApiMethod::ListServiceAccountKeys => "iam.serviceAccountKeys.list",
            ApiMethod::GetServiceAccountIamPolicy => "iam.serviceAccounts.getIamPolicy",
            ApiMethod::ListPools => "iam.workloadIdentityPools.list",
            ApiMethod::ListProviders => "iam.workloadIdentityPoolProviders.list",
            ApiMethod::GetIamPolicy => "resourcemanager.projects.getIamPolicy",
            ApiMethod::SearchProjects => "resourcemanager.projects.get",
            ApiMethod::ListFolders => "resourcemanager.folders.list",
            ApiMethod::GenerateAccessToken => "iam.serviceAccounts.getAccessToken",
            // Workspace has admin privileges, not IAM permissions.
            ApiMethod::ListUsers => "Users read (admin privilege)",
            ApiMethod::ListLogEntries => "logging.logEntries.list",
        }
    }

    /// Returns the quota limit per minute of read requests, for 429 bodies.
    fn read_quota_per_minute(self) -> u32 {
        match self.service() {
            "cloudresourcemanager.googleapis.com" => 2400,
            _ => 6000,
        }
    }
}

/// A Google API error, sent as `{"error": {"code", "message", "status", "details"}}`.
#[derive(Debug, Clone, PartialEq)]
struct GoogleError {
    code: u16,
    /// The canonical status; empty for a legacy body without one.
    status: &'static str,
    message: String,
    details: Vec<Value>,
    /// The legacy `errors` list of older APIs such as the Directory API.
    errors: Vec<Value>,
}

impl GoogleError {
    fn new(code: u16, status: &'static str, message: impl Into<String>) -> GoogleError {
        GoogleError {
            code,
            status,
            message: message.into(),
            details: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Builds the Directory API's 403 for a caller who is not an admin of
    /// the customer: a legacy body with an `errors` list and no `status`.
    fn directory_forbidden() -> GoogleError {
        let message = "Not Authorized to access this resource/api";
        let mut error = GoogleError::new(403, "", message);
        error
            .errors
            .push(json!({"message": message, "domain": "global", "reason": "forbidden"}));
        error
    }

    /// Builds the 403 of a token without the scope a method needs.
    fn scope_insufficient(method: ApiMethod) -> GoogleError {
        GoogleError::new(
            403,
            "PERMISSION_DENIED",
            "Request had insufficient authentication scopes.",
        )
        .with_reason(
            "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            "googleapis.com",
            json!({"service": method.service(), "method": method.rpc()}),
        )
    }

    /// Builds the 403 of an API that is not enabled in the caller's project.
    fn service_disabled(method: ApiMethod) -> GoogleError {
        let service = method.service();
        let message = format!(
            "Admin SDK API has not been used in project {METADATA_PROJECT_NUMBER} before or it \
             is disabled. Enable it by visiting \
             https://console.developers.google.com/apis/api/{service}/overview?project={METADATA_PROJECT_NUMBER} \
             then retry."
        );
        GoogleError::new(403, "PERMISSION_DENIED", message).with_reason(
            "SERVICE_DISABLED",
            "googleapis.com",
            json!({"consumer": format!("projects/{METADATA_PROJECT_NUMBER}"), "service": service}),
        )
    }

    /// Adds a `google.rpc.ErrorInfo` detail.
    fn with_reason(mut self, reason: &str, domain: &str, metadata: Value) -> GoogleError {
        self.details.push(json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": domain,
            "metadata": metadata,
        }));
        self
    }

    fn unauthenticated(method: Option<ApiMethod>, reason: &str) -> GoogleError {
        let message = if reason == "CREDENTIALS_MISSING" {
            "Request is missing required authentication credential. Expected OAuth 2 access \
             token, login cookie or other valid authentication credential."
        } else {
            "Request had invalid authentication credentials. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential."
        };
        let metadata = match method {
            Some(method) => json!({"service": method.service(), "method": method.rpc()}),
            None => json!({}),
        };
        GoogleError::new(401, "UNAUTHENTICATED", message).with_reason(
            reason,
            "googleapis.com",
            metadata,
        )
    }

    fn throttled(method: ApiMethod) -> GoogleError {
        let service = method.service();
        let limit = method.read_quota_per_minute();
        let message = format!(
            "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per \
             minute' of service '{service}' for consumer 'project_number:{METADATA_PROJECT_NUMBER}'."
        );
        let mut error = GoogleError::new(429, "RESOURCE_EXHAUSTED", message).with_reason(
            "RATE_LIMIT_EXCEEDED",
            "googleapis.com",
            json!({
                "consumer": format!("projects/{METADATA_PROJECT_NUMBER}"),
                "quota_limit": "ReadRequestsPerMinutePerProject",
                "quota_limit_value": limit.to_string(),
                "quota_location": "global",
                "quota_metric": format!("{service}/read_requests"),
                "service": service,
            }),
        );
        error.details.push(json!({
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [{
                "description": "Request a higher quota limit.",
                "url": "https://cloud.google.com/docs/quota#requesting_higher_quota",
            }],
        }));
        error
    }

    fn unavailable() -> GoogleError {
        GoogleError::new(503, "UNAVAILABLE", "The service is currently unavailable.")
    }

    fn permission_denied(method: ApiMethod, resource: &str) -> GoogleError {
        let permission = method.permission();
        let message = format!(
            "Permission '{permission}' denied on resource '{resource}' (or it may not exist)."
        );
        GoogleError::new(403, "PERMISSION_DENIED", message).with_reason(
            "IAM_PERMISSION_DENIED",
            "iam.googleapis.com",
            json!({"permission": permission, "resource": resource}),
        )
    }

    fn not_found(message: impl Into<String>) -> GoogleError {
        GoogleError::new(404, "NOT_FOUND", message)
    }

    fn invalid_argument(message: impl Into<String>) -> GoogleError {
        GoogleError::new(400, "INVALID_ARGUMENT", message)
    }

    fn into_reply(self) -> Reply {
        let mut error = json!({
            "code": self.code,
            "message": self.message,
        });
        if !self.status.is_empty() {
            error["status"] = json!(self.status);
        }
        if !self.details.is_empty() {
            error["details"] = Value::Array(self.details);
        }
        if !self.errors.is_empty() {
            error["errors"] = Value::Array(self.errors);
        }
        let mut reply = Reply::json(self.code, &json!({ "error": error }));
        if self.code == 401 {
            let challenge = "Bearer realm=\"https://accounts.google.com/\"".to_string();
            reply.headers.push(("WWW-Authenticate", challenge));
        }
        reply
    }
}

/// Where a list request starts: the page number and the offset of its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    page: usize,
    offset: usize,
}

/// A parsed API request: which method, and about which project or account.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    ListServiceAccounts {
        project: String,
    },
    ListKeys {
        project: String,
        account: String,
    },
    GetAccountPolicy {
        project: String,
        account: String,
    },
    ListPools {
        project: String,
    },
    ListProviders {
        project: String,
        pool: String,
    },
    GetIamPolicy {
        project: String,
    },
    SearchProjects,
    ListFolders,
    GenerateAccessToken {
        email: String,
    },
    ListUsers,
    /// The project comes from the body's `resourceNames`, filled in by `api`.
    ListLogEntries {
        project: String,
    },
}

impl Route {
    /// Parses a decoded path, or returns `None` for a path the fake does not serve.
    fn parse(path: &str) -> Option<Route> {
        if path == PROJECTS_SEARCH_PATH {
            return Some(Route::SearchProjects);
        }
        if path == FOLDERS_PATH {
            return Some(Route::ListFolders);
        }
        if path == DIRECTORY_USERS_PATH {
            return Some(Route::ListUsers);
        }
        if path == LOG_ENTRIES_LIST_PATH {
            return Some(Route::ListLogEntries {
                project: String::new(),
            });
        }
        if let Some(rest) = path.strip_prefix("/v3/projects/") {
            let project = rest.strip_suffix(":getIamPolicy")?;
            return (!project.contains('/')).then(|| Route::GetIamPolicy {
                project: project.to_string(),
            });
        }
        let rest = path.strip_prefix("/v1/projects/")?;
        let (project, rest) = rest.split_once('/')?;
        if let Some(pools) = rest.strip_prefix("locations/global/workloadIdentityPools") {
            return Route::parse_pools(project, pools);
        }
        let rest = rest.strip_prefix("serviceAccounts")?;
        if rest.is_empty() {
            return Some(Route::ListServiceAccounts {
                project: project.to_string(),
            });
        }
        let rest = rest.strip_prefix('/')?;
        if let Some(email) = rest.strip_suffix(":generateAccessToken") {
            return (project == "-").then(|| Route::GenerateAccessToken {
                email: email.to_string(),
            });
        }
        if let Some(account) = rest.strip_suffix(":getIamPolicy") {
            return (!account.contains('/')).then(|| Route::GetAccountPolicy {
                project: project.to_string(),
                account: account.to_string(),
            });
        }
        let account = rest.strip_suffix("/keys")?;
        (!account.contains('/')).then(|| Route::ListKeys {
            project: project.to_string(),
            account: account.to_string(),
        })
    }

    /// Parses the rest of a path after `.../locations/global/workloadIdentityPools`.
    fn parse_pools(project: &str, rest: &str) -> Option<Route> {
        if rest.is_empty() {
            return Some(Route::ListPools {
                project: project.to_string(),
            });
        }
        let pool = rest.strip_prefix('/')?.strip_suffix("/providers")?;
        (!pool.is_empty() && !pool.contains('/')).then(|| Route::ListProviders {
            project: project.to_string(),
            pool: pool.to_string(),
        })
    }

    fn method(&self) -> ApiMethod {
        match self {
            Route::ListServiceAccounts { .. } => ApiMethod::ListServiceAccounts,
            Route::ListKeys { .. } => ApiMethod::ListServiceAccountKeys,
            Route::GetAccountPolicy { .. } => ApiMethod::GetServiceAccountIamPolicy,
            Route::ListPools { .. } => ApiMethod::ListPools,
            Route::ListProviders { .. } => ApiMethod::ListProviders,
            Route::GetIamPolicy { .. } => ApiMethod::GetIamPolicy,
            Route::SearchProjects => ApiMethod::SearchProjects,
            Route::ListFolders => ApiMethod::ListFolders,
            Route::GenerateAccessToken { .. } => ApiMethod::GenerateAccessToken,
            Route::ListUsers => ApiMethod::ListUsers,
            Route::ListLogEntries { .. } => ApiMethod::ListLogEntries,
        }
    }

    /// Returns the HTTP method Google expects.
    fn http_method(&self) -> &'static str {
        match self {
            Route::GetIamPolicy { .. }
            | Route::GetAccountPolicy { .. }
            | Route::GenerateAccessToken { .. }
            | Route::ListLogEntries { .. } => "POST",
            _ => "GET",
        }
    }

    /// Returns the project in the path, if the route has one.
    fn project(&self) -> Option<&str> {
        match self {
            Route::ListServiceAccounts { project }
            | Route::ListKeys { project, .. }
            | Route::GetAccountPolicy { project, .. }
            | Route::ListPools { project }
            | Route::ListProviders { project, .. }
            | Route::GetIamPolicy { project }
            | Route::ListLogEntries { project } => Some(project),
            Route::SearchProjects
            | Route::ListFolders
            | Route::GenerateAccessToken { .. }
            | Route::ListUsers => None,
        }
    }

    /// Returns the resource a request is about, as a 403 names it.
    fn resource(&self) -> String {
        match self {
            Route::GetAccountPolicy { project, account } | Route::ListKeys { project, account } => {
                format!("projects/{project}/serviceAccounts/{account}")
            }
            Route::ListProviders { project, pool } => {
                format!("projects/{project}/locations/global/workloadIdentityPools/{pool}")
            }
            _ => match self.project() {
                Some(project) => format!("projects/{project}"),
                None => String::new(),
            },
        }
    }

    fn is_listing(&self) -> bool {
        matches!(
            self,
            Route::ListServiceAccounts { .. }
                | Route::ListPools { .. }
                | Route::ListProviders { .. }
                | Route::SearchProjects
                | Route::ListFolders
                | Route::ListUsers
        )
    }
}

/// A failed API request: the error and the page it was for.
type Rejection = (GoogleError, Option<usize>);

impl State {
    /// Responds to one request and records it.
    fn handle(&mut self, incoming: Incoming) -> Reply {
        let received = Instant::now();
        let reply = if incoming.path.starts_with(METADATA_ROOT_PATH) {
            self.metadata(&incoming)
        } else if incoming.path == OAUTH_TOKEN_PATH {
            self.oauth_token(&incoming)
        } else {
            match self.api(&incoming) {
                Ok(reply) => reply,
                Err((error, page)) => {
                    let mut reply = error.into_reply();
                    reply.page = page;
                    reply
                }
            }
        };

        self.requests.push(RecordedRequest {
            method: incoming.method,
            url: format!("{}{}", self.endpoint, incoming.target),
            path: incoming.path,
            params: incoming.params,
            headers: incoming.headers,
            body: incoming.body,
            status: reply.status,
            page: reply.page,
            next_page_token: reply.next_page_token.clone(),
            record_count: reply.record_count,
            received,
        });
        reply
    }

    /// Issues a new token that the API accepts for `lifetime_seconds`.
    fn issue_token(
        &mut self,
        source: TokenSource,
        principal: &str,
        scopes: Vec<String>,
        lifetime_seconds: u64,
    ) -> String {
        let token = format!("{TOKEN_PREFIX}{}", self.issued_tokens.len() + 1);
        let lifetime = Duration::from_secs(lifetime_seconds);
        let grant = TokenGrant {
            expires_at: Instant::now() + lifetime,
        };
        self.valid_tokens.insert(token.clone(), grant);
        self.issued_tokens.push(IssuedToken {
            token: token.clone(),
            source,
            principal: principal.to_string(),
            scopes,
        });
        token
    }

    fn revoke(&mut self, token: &str) {
        self.valid_tokens.remove(token);
        self.revoked_tokens.insert(token.to_string());
    }

    /// Counts a hit on the first [`Fault::TokenUnavailable`] that still
    /// applies, and returns true when there was one.
    fn take_token_fault(&mut self) -> bool {
        for active in &mut self.faults {
            if let Fault::TokenUnavailable { times } = active.fault
                && active.hits < times
            {
                active.hits += 1;
                return true;
            }
        }
        false
    }

    /// Responds to a metadata server request.
    ///
    /// Like the real server, it rejects requests without `Metadata-Flavor:
    /// Google` or with `X-Forwarded-For` with 403, and sends
    /// `Metadata-Flavor: Google` on every response.
    fn metadata(&mut self, incoming: &Incoming) -> Reply {
        let text =
            |status: u16, body: &str| Reply::metadata(status, TEXT_CONTENT_TYPE, body.to_string());
        if incoming.header("metadata-flavor") != Some("Google") {
            return text(403, "Missing Metadata-Flavor:Google header.");
        }
        if incoming.header("x-forwarded-for").is_some() {
            return text(403, "Requests with X-Forwarded-For are rejected.");
        }
        if incoming.method != "GET" {
            return text(405, "Method not allowed.");
        }

        let email = default_compute_email(METADATA_PROJECT_NUMBER);
        match incoming.path.as_str() {
            METADATA_TOKEN_PATH => self.metadata_token(incoming, &email),
            METADATA_EMAIL_PATH => text(200, &email),
            METADATA_UNIVERSE_DOMAIN_PATH => text(200, UNIVERSE_DOMAIN),
            "/computeMetadata/v1/project/project-id" => text(200, METADATA_PROJECT_ID),
            "/computeMetadata/v1/project/numeric-project-id" => {
                text(200, &METADATA_PROJECT_NUMBER.to_string())
            }
            "/computeMetadata/v1/instance/service-accounts/default/scopes" => {
                text(200, "https://www.googleapis.com/auth/cloud-platform\n")
            }
            _ => text(404, "Not Found"),
        }
    }

    /// Issues a token as the metadata server does for the default account.
    fn metadata_token(&mut self, incoming: &Incoming, email: &str) -> Reply {
        if self.take_token_fault() {
            let body = "The metadata server is failing on purpose.".to_string();
            return Reply::metadata(503, TEXT_CONTENT_TYPE, body);
        }
        let scopes = incoming
            .param("scopes")
            .map(|text| text.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        let lifetime = self.token_lifetime_seconds;
        let token = self.issue_token(TokenSource::Metadata, email, scopes, lifetime);
        let body = json!({
            "access_token": token,
            "expires_in": self.token_lifetime_seconds,
            "token_type": "Bearer",
        });
        Reply::metadata(200, "application/json", body.to_string())
    }

    /// Responds to an OAuth 2.0 refresh token grant, sent as JSON or as a form.
    fn oauth_token(&mut self, incoming: &Incoming) -> Reply {
        if incoming.method != "POST" {
            return Reply::oauth_error(
                405,
                "invalid_request",
                "The token endpoint accepts only POST.",
            );
        }
        let Some(fields) = token_request_fields(incoming) else {
            return Reply::oauth_error(
                400,
                "invalid_request",
                "The body is neither JSON nor a form.",
            );
        };
        let field = |name: &str| fields.get(name).map(String::as_str);
        if field("grant_type") != Some("refresh_token") {
            return Reply::oauth_error(400, "unsupported_grant_type", "Invalid grant_type.");
        }
        if field("client_id") != Some(OAUTH_CLIENT_ID)
            || field("client_secret") != Some(OAUTH_CLIENT_SECRET)
        {
            return Reply::oauth_error(401, "invalid_client", "Unauthorized");
        }
        if field("refresh_token") != Some(REFRESH_TOKEN) {
            return Reply::oauth_error(400, "invalid_grant", "Bad Request");
        }
        if self.take_token_fault() {
            return Reply::oauth_error(
                503,
                "temporarily_unavailable",
                "The fake is failing on purpose.",
            );
        }

        let scope = field("scope")
            .unwrap_or("https://www.googleapis.com/auth/cloud-platform")
            .to_string();
        let scopes = scope.split(' ').map(str::to_string).collect();
        let lifetime = self.token_lifetime_seconds;
        let token = self.issue_token(TokenSource::RefreshToken, USER_EMAIL, scopes, lifetime);
        let body = json!({
            "access_token": token,
            "expires_in": self.token_lifetime_seconds,
            "scope": scope,
            "token_type": "Bearer",
        });
        Reply::json(200, &body)
    }

    /// Checks the bearer token of an API request, and returns it.
    fn authenticate(&self, incoming: &Incoming, method: ApiMethod) -> Result<String, GoogleError> {
        let Some(token) = incoming.header("authorization").and_then(bearer_token) else {
            return Err(GoogleError::unauthenticated(
                Some(method),
                "CREDENTIALS_MISSING",
            ));
        };
        let reason = match self.valid_tokens.get(token) {
            Some(grant) if grant.expires_at > Instant::now() => return Ok(token.to_string()),
            Some(_) => "ACCESS_TOKEN_EXPIRED",
            None if self.revoked_tokens.contains(token) => "ACCESS_TOKEN_EXPIRED",
            None => "ACCESS_TOKEN_TYPE_UNSUPPORTED",
        };
        Err(GoogleError::unauthenticated(Some(method), reason))
    }

    /// Responds to an API request, or returns the error and the page it was for.
    fn api(&mut self, incoming: &Incoming) -> Result<Reply, Rejection> {
        let Some(mut route) = Route::parse(&incoming.path) else {
            let message = format!("The fake serves no path {}.", incoming.path);
            return Err((GoogleError::not_found(message), None));
        };
        if let Route::ListLogEntries { project } = &mut route {
            let body: Value = serde_json::from_str(&incoming.body).unwrap_or(Value::Null);
            let name = body["resourceNames"][0].as_str().unwrap_or_default();
            *project = name
                .strip_prefix("projects/")
                .unwrap_or_default()
                .to_string();
        }
        let method = route.method();
        let token = self
            .authenticate(incoming, method)
            .map_err(|error| (error, None))?;
        if incoming.method != route.http_method() {
            let message = format!(
                "{} {} is not a method of the API.",
                incoming.method, incoming.path
            );
            return Err((GoogleError::not_found(message), None));
        }

        let position = if route.is_listing() {
            Some(self.position(incoming).map_err(|error| (error, None))?)
        } else {
            None
        };
        let page = position.map(|position| position.page);
        if let Some(error) = self.injected_error(incoming, &route, page, &token) {
            return Err((error, page));
        }

        let result = match (&route, position) {
            (Route::ListServiceAccounts { project }, Some(position)) => {
                self.list_service_accounts(incoming, project, position)
            }
            (Route::SearchProjects, Some(position)) => self.search_projects(incoming, position),
            (Route::ListFolders, Some(position)) => self.list_folders(incoming, position),
            (Route::ListUsers, Some(position)) => self.list_users(incoming, &token, position),
            (Route::ListPools { project }, Some(position)) => {
                self.list_pools(incoming, project, position)
            }
            (Route::ListProviders { project, pool }, Some(position)) => {
                self.list_providers(incoming, project, pool, position)
            }
            (Route::ListKeys { project, account }, _) => self.list_keys(incoming, project, account),
            (Route::GetAccountPolicy { project, account }, _) => {
                self.get_account_policy(incoming, project, account)
            }
            (Route::GetIamPolicy { project }, _) => self.get_iam_policy(incoming, project),
            (Route::GenerateAccessToken { email }, _) => {
                self.generate_access_token(incoming, email)
            }
            (Route::ListLogEntries { project }, _) => self.list_log_entries(incoming, project),
            _ => unreachable!("listings always have a position"),
        };
        result.map_err(|error| (error, page))
    }

    /// Returns where a listing starts, from its `pageToken`.
    fn position(&self, incoming: &Incoming) -> Result<Position, GoogleError> {
        match incoming.param("pageToken") {
            None | Some("") => Ok(Position { page: 1, offset: 0 }),
            Some(token) => match self.page_tokens.get(token) {
                Some((path, position)) if *path == incoming.path => Ok(*position),
                _ => Err(GoogleError::invalid_argument(format!(
                    "Invalid page token '{token}'."
                ))),
            },
        }
    }

    /// Returns the error of the first error fault that applies to a request, and counts it.
    fn injected_error(
        &mut self,
        incoming: &Incoming,
        route: &Route,
        page: Option<usize>,
        token: &str,
    ) -> Option<GoogleError> {
        let path = incoming.path.as_str();
        let method = route.method();
        let mut revoke = false;
        let mut injected = None;
        for active in &mut self.faults {
            let error = match &active.fault {
                Fault::Throttle {
                    path: pattern,
                    times,
                } if path_matches(pattern, path) && active.hits < *times => {
                    GoogleError::throttled(method)
                }
                Fault::Unavailable {
                    path: pattern,
                    times,
                } if path_matches(pattern, path) && active.hits < *times => {
                    GoogleError::unavailable()
                }
                Fault::DirectoryApiDisabled if *route == Route::ListUsers => {
                    GoogleError::service_disabled(method)
                }
                Fault::PermissionDenied { project_id } if route.project() == Some(project_id) => {
                    GoogleError::permission_denied(method, &format!("projects/{project_id}"))
                }
                Fault::Forbidden { path: pattern } if path_matches(pattern, path) => {
                    GoogleError::permission_denied(method, &route.resource())
                }
                Fault::RevokeToken {
                    path: pattern,
                    page: target,
                } if path_matches(pattern, path)
                    && page.unwrap_or(1) == *target
                    && active.hits == 0 =>
                {
                    revoke = true;
                    GoogleError::unauthenticated(Some(method), "ACCESS_TOKEN_EXPIRED")
                }
                _ => continue,
            };
            active.hits += 1;
            injected = Some(error);
            break;
        }
        if revoke {
            self.revoke(token);
        }
        injected
    }

    /// Returns true when any fault matches `applies`.
    fn has_fault(&self, applies: impl Fn(&Fault) -> bool) -> bool {
        self.faults.iter().any(|active| applies(&active.fault))
    }

    /// Returns the page size of a listing request: `pageSize`, where absent
    /// or 0 means [`DEFAULT_PAGE_SIZE`] and larger than [`MAX_PAGE_SIZE`]
    /// means the maximum, then capped by [`FakeGcp::set_page_size`].
    fn page_size(&self, incoming: &Incoming) -> Result<usize, GoogleError> {
        if incoming.path == DIRECTORY_USERS_PATH {
            return self.directory_page_size(incoming);
        }
        let requested = match incoming.param("pageSize") {
            None | Some("") => 0,
            Some(text) => text.parse::<i64>().map_err(|_| {
                GoogleError::invalid_argument(format!(
                    "Invalid value at 'page_size' (TYPE_INT32), \"{text}\""
                ))
            })?,
        };
        let size = match requested {
            size if size < 0 => {
                return Err(GoogleError::invalid_argument(
                    "page_size must not be negative.",
                ));
            }
            0 => DEFAULT_PAGE_SIZE,
            size => usize::try_from(size)
                .unwrap_or(MAX_PAGE_SIZE)
                .min(MAX_PAGE_SIZE),
        };
        Ok(size.min(self.page_size))
    }

    /// Returns the page size of `users.list`: `maxResults` from 1 to
    /// [`DIRECTORY_MAX_PAGE_SIZE`], [`DIRECTORY_DEFAULT_PAGE_SIZE`] when
    /// absent, then capped by [`FakeGcp::set_page_size`].
    fn directory_page_size(&self, incoming: &Incoming) -> Result<usize, GoogleError> {
        let size = match incoming.param("maxResults") {
            None => DIRECTORY_DEFAULT_PAGE_SIZE,
            Some(text) => match text.parse::<usize>() {
                Ok(size) if (1..=DIRECTORY_MAX_PAGE_SIZE).contains(&size) => size,
                _ => {
                    return Err(GoogleError::invalid_argument(format!(
                        "Invalid value '{text}'. Values must be within the range: [1, 500]"
                    )));
                }
            },
        };
        Ok(size.min(self.page_size))
    }

    /// Lists the users of the customer that `customer` names, for a token
    /// with a Directory user scope whose user is an admin there.
    fn list_users(
        &mut self,
        incoming: &Incoming,
        token: &str,
        position: Position,
    ) -> Result<Reply, GoogleError> {
        let method = ApiMethod::ListUsers;
        let issued = self
            .issued_tokens
            .iter()
            .find(|issued| issued.token == token);
        let scoped = issued.is_some_and(|issued| {
            issued.scopes.iter().any(|scope| {
                scope == DIRECTORY_USER_READONLY_SCOPE || scope == DIRECTORY_USER_SCOPE
            })
        });
        if !scoped {
            return Err(GoogleError::scope_insufficient(method));
        }
        let caller = issued
            .map(|issued| issued.principal.clone())
            .unwrap_or_default();
        let Some(requested) = incoming.param("customer").filter(|c| !c.is_empty()) else {
            return Err(GoogleError::invalid_argument("Bad Request"));
        };
        let customer = self.workspace.customers.iter().find(|customer| {
            if requested == "my_customer" {
                customer.has_user(&caller)
            } else {
                customer.customer_id == requested
            }
        });
        let Some(customer) = customer.filter(|customer| customer.has_admin(&caller)) else {
            return Err(GoogleError::directory_forbidden());
        };
        let customer_id = customer.customer_id.clone();
        let records: Vec<Value> = customer
            .users
            .iter()
            .map(|user| user.to_json(&customer_id))
            .collect();

        let mut reply = self.list_page(incoming, "users", records, position)?;
        // The Directory API names the kind of list and an etag on each page.
        if let Ok(Value::Object(mut body)) = serde_json::from_str::<Value>(&reply.body) {
            body.insert("kind".to_string(), json!("admin#directory#users"));
            body.insert(
                "etag".to_string(),
                json!(format!("\"{:016x}\"", fnv64(&customer_id))),
            );
            reply.body = Value::Object(body).to_string();
        }
        Ok(reply)
    }

    fn list_service_accounts(
        &mut self,
        incoming: &Incoming,
        project_name: &str,
        position: Position,
    ) -> Result<Reply, GoogleError> {
        let Some(project) = self.organization.project(project_name) else {
            let resource = format!("projects/{project_name}");
            return Err(GoogleError::permission_denied(
                ApiMethod::ListServiceAccounts,
                &resource,
            ));
        };
        let project_id = project.project_id.clone();
        let records: Vec<Value> = project
            .service_accounts
            .iter()
            .map(|account| account.to_json(&project_id))
            .collect();
        self.list_page(incoming, "accounts", records, position)
    }

    /// Lists the folders that projects name as their parent, as children
    /// of [`ORGANIZATION`]; the fake has no deeper folder tree.
    fn list_folders(
        &mut self,
        incoming: &Incoming,
        position: Position,
    ) -> Result<Reply, GoogleError> {
        let parent = incoming.param("parent").unwrap_or_default();
        let folders: BTreeSet<&str> = self
            .organization
            .projects
            .iter()
            .map(|project| project.parent.as_str())
            .filter(|name| name.starts_with("folders/"))
            .collect();
        let records: Vec<Value> = folders
            .into_iter()
            .filter(|_| parent == ORGANIZATION)
            .map(|name| json!({"name": name, "parent": ORGANIZATION, "displayName": name, "state": "ACTIVE"}))
            .collect();
        self.list_page(incoming, "folders", records, position)
    }

    fn search_projects(
        &mut self,
        incoming: &Incoming,
        position: Position,
    ) -> Result<Reply, GoogleError> {
        let query = incoming.param("query").unwrap_or_default();
        let terms = parse_project_query(query)?;
        let records: Vec<Value> = self
            .organization
            .projects
            .iter()
            .filter(|project| terms.iter().all(|term| term.matches(project)))
            .map(FakeProject::to_json)
            .collect();
        self.list_page(incoming, "projects", records, position)
    }

    /// Serves one page of a listing, as the request's `pageSize`, the
    /// fake's page size and the shaping faults decide.
    fn list_page(
        &mut self,
        incoming: &Incoming,
        field: &str,
        records: Vec<Value>,
        position: Position,
    ) -> Result<Reply, GoogleError> {
        let size = self.page_size(incoming)?;
        let path = incoming.path.as_str();
        let on_page =
            |pattern: &str, page: usize| path_matches(pattern, path) && page == position.page;
        let empty = self.has_fault(|fault| {
            matches!(fault, Fault::EmptyPage { path: pattern, page } if on_page(pattern, *page))
        });
        let malformed = self.has_fault(|fault| {
            matches!(fault, Fault::MalformedPage { path: pattern, page } if on_page(pattern, *page))
        });
        let repeated = position.page > 1
            && self.has_fault(|fault| {
                matches!(fault, Fault::RepeatedPageToken { path: pattern } if path_matches(pattern, path))
            });

        let end = if empty {
            position.offset
        } else {
            (position.offset + size).min(records.len())
        };
        let page_records = records
            .get(position.offset..end)
            .unwrap_or_default()
            .to_vec();
        let next_page_token = if repeated {
            incoming.param("pageToken").map(str::to_string)
        } else if empty || end < records.len() {
            let next = Position {
                page: position.page + 1,
                offset: end,
            };
            Some(self.page_token(path, next))
        } else {
            None
        };

        let mut body = Map::new();
        let record_count = page_records.len();
        if !page_records.is_empty() {
            body.insert(field.to_string(), Value::Array(page_records));
        }
        match (&next_page_token, self.last_page_token) {
            (Some(token), _) => {
                body.insert("nextPageToken".to_string(), json!(token));
            }
            (None, LastPageToken::Empty) => {
                body.insert("nextPageToken".to_string(), json!(""));
            }
            (None, LastPageToken::Omitted) => {}
        }

        let mut reply = Reply::json(200, &Value::Object(body));
        if malformed {
            let cut = reply.body.len() / 2;
            reply.body.truncate(cut);
        }
        reply.page = Some(position.page);
        reply.next_page_token = next_page_token;
        reply.record_count = Some(record_count);
        Ok(reply)
    }

    /// Hands out an opaque page token for a position of a listing. The
    /// token is base64 with `+`, `/` or `=` in it, so a client that does
    /// not percent-encode it breaks it.
    /// Lists the audit log entries of a project that the body's filter
    /// matches, oldest first, paged by the body's `pageSize` and `pageToken`.
    fn list_log_entries(
        &mut self,
        incoming: &Incoming,
        project: &str,
    ) -> Result<Reply, GoogleError> {
        let body: Value = serde_json::from_str(&incoming.body)
            .map_err(|_| GoogleError::invalid_argument("The request body is not JSON."))?;
        if project.is_empty() || self.organization.project(project).is_none() {
            return Err(GoogleError::permission_denied(
                ApiMethod::ListLogEntries,
                &format!("projects/{project}"),
            ));
        }
        let filter = body["filter"].as_str().unwrap_or_default();
        let records = log_entries_matching(&self.log_entries, project, filter);

        let position = match body["pageToken"].as_str() {
            None | Some("") => Position { page: 1, offset: 0 },
            Some(token) => match self.page_tokens.get(token) {
                Some((path, position)) if *path == incoming.path => *position,
                _ => {
                    return Err(GoogleError::invalid_argument(format!(
                        "Invalid page token '{token}'."
                    )));
                }
            },
        };

        let requested = body["pageSize"].as_u64().unwrap_or(50).clamp(1, 1000) as usize;
        let size = requested.min(self.page_size);
        let end = (position.offset + size).min(records.len());
        let entries = records[position.offset.min(end)..end].to_vec();
        let mut reply_body = json!({ "entries": entries });
        let next = (end < records.len()).then(|| {
            let next = Position {
                page: position.page + 1,
                offset: end,
            };
            self.page_token(&incoming.path, next)
        });
        if let Some(token) = &next {
            reply_body["nextPageToken"] = json!(token);
        }
        let mut reply = Reply::json(200, &reply_body);
        reply.page = Some(position.page);
        reply.next_page_token = next;
        reply.record_count = Some(entries.len());
        Ok(reply)
    }

    fn page_token(&mut self, path: &str, position: Position) -> String {
        let seed = format!("{path}\n{}\n{}", position.page, position.offset);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&fnv64(&seed).to_be_bytes());
        bytes.extend_from_slice(&(position.offset as u64).to_be_bytes());
        bytes.extend_from_slice(&[0xfb, 0xff]);
        let token = base64(&bytes);
        self.page_tokens
            .insert(token.clone(), (path.to_string(), position));
        token
    }

    fn list_keys(
        &self,
        incoming: &Incoming,
        project_name: &str,
        account_name: &str,
    ) -> Result<Reply, GoogleError> {
        let method = ApiMethod::ListServiceAccountKeys;
        let project = if project_name == "-" {
            self.organization
                .projects
                .iter()
                .find(|p| p.account(account_name).is_some())
        } else {
            let project = self.organization.project(project_name);
            if project.is_none() {
                let resource = format!("projects/{project_name}");
                return Err(GoogleError::permission_denied(method, &resource));
            }
            project
        };
        let Some((project, account)) = project.and_then(|p| Some((p, p.account(account_name)?)))
        else {
            return Err(GoogleError::not_found(format!(
                "Service account projects/{project_name}/serviceAccounts/{account_name} does not exist."
            )));
        };

        let wanted = incoming.params_named("keyTypes");
        let name = format!(
            "projects/{}/serviceAccounts/{}",
            project.project_id, account.email
        );
        let keys: Vec<Value> = account
            .keys
            .iter()
            .filter(|key| wanted.is_empty() || wanted.contains(&key.key_type.as_str()))
            .map(|key| key.to_json(&name))
            .collect();
        let mut body = Map::new();
        let record_count = keys.len();
        if !keys.is_empty() {
            body.insert("keys".to_string(), Value::Array(keys));
        }
        let mut reply = Reply::json(200, &Value::Object(body));
        reply.record_count = Some(record_count);
        Ok(reply)
    }

    fn get_iam_policy(
        &self,
        incoming: &Incoming,
        project_name: &str,
    ) -> Result<Reply, GoogleError> {
        let requested_version = requested_policy_version(&incoming.body)?;
        let Some(project) = self.organization.project(project_name) else {
            let resource = format!("projects/{project_name}");
            return Err(GoogleError::permission_denied(
                ApiMethod::GetIamPolicy,
                &resource,
            ));
        };
        let mut reply = Reply::json(200, &project.policy.to_json(requested_version));
        reply.record_count = Some(project.policy.bindings.len());
        Ok(reply)
    }

    /// Returns a project by id or number, or the 403 Google sends for a
    /// project the caller cannot see.
    fn visible_project(&self, name: &str, method: ApiMethod) -> Result<&FakeProject, GoogleError> {
        self.organization
            .project(name)
            .ok_or_else(|| GoogleError::permission_denied(method, &format!("projects/{name}")))
    }

    fn get_account_policy(
        &self,
        incoming: &Incoming,
        project_name: &str,
        account_name: &str,
    ) -> Result<Reply, GoogleError> {
        let requested_version = requested_policy_version(&incoming.body)?;
        let project = self.visible_project(project_name, ApiMethod::GetServiceAccountIamPolicy)?;
        let Some(account) = project.account(account_name) else {
            return Err(GoogleError::not_found(format!(
                "Service account projects/{project_name}/serviceAccounts/{account_name} does not exist."
            )));
        };
        let mut reply = Reply::json(200, &account.policy.to_account_json(requested_version));
        reply.record_count = Some(account.policy.bindings.len());
        Ok(reply)
    }

    /// Returns true when a listing asked for deleted resources too.
    fn shows_deleted(incoming: &Incoming) -> bool {
        incoming.param("showDeleted") == Some("true")
    }

    fn list_pools(
        &mut self,
        incoming: &Incoming,
        project_name: &str,
        position: Position,
    ) -> Result<Reply, GoogleError> {
        let project = self.visible_project(project_name, ApiMethod::ListPools)?;
        let deleted = State::shows_deleted(incoming);
        let records: Vec<Value> = project
            .pools
            .iter()
            .filter(|pool| deleted || pool.state != "DELETED")
            .map(|pool| pool.to_json(project.project_number))
            .collect();
        self.list_page(incoming, "workloadIdentityPools", records, position)
    }

    fn list_providers(
        &mut self,
        incoming: &Incoming,
        project_name: &str,
        pool_id: &str,
        position: Position,
    ) -> Result<Reply, GoogleError> {
        let project = self.visible_project(project_name, ApiMethod::ListProviders)?;
        let Some(pool) = project.pools.iter().find(|pool| pool.pool_id == pool_id) else {
            return Err(GoogleError::not_found(format!(
                "Requested entity was not found: workload identity pool {pool_id}."
            )));
        };
        let pool_name = pool.name(project.project_number);
        let deleted = State::shows_deleted(incoming);
        let records: Vec<Value> = pool
            .providers
            .iter()
            .filter(|provider| deleted || provider.state != "DELETED")
            .map(|provider| provider.to_json(&pool_name))
            .collect();
        self.list_page(incoming, "workloadIdentityPoolProviders", records, position)
    }

    /// Issues a token for a service account to a caller with any valid token.
    fn generate_access_token(
        &mut self,
        incoming: &Incoming,
        email: &str,
    ) -> Result<Reply, GoogleError> {
        let body: Value = serde_json::from_str(&incoming.body).map_err(|error| {
            GoogleError::invalid_argument(format!("Invalid JSON payload received. {error}"))
        })?;
        let scopes: Vec<String> = body["scope"]
            .as_array()
            .map(|scopes| {
                scopes
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if scopes.is_empty() {
            return Err(GoogleError::invalid_argument("Scope required."));
        }
        let lifetime = match body.get("lifetime").and_then(Value::as_str) {
            None => 3600,
            Some(text) => parse_duration_seconds(text).ok_or_else(|| {
                GoogleError::invalid_argument(format!("Invalid lifetime '{text}'."))
            })?,
        };
        if self.organization.find_account(email).is_none() {
            return Err(GoogleError::not_found(format!(
                "Requested entity was not found: service account {email}."
            )));
        }

        let token = self.issue_token(TokenSource::Impersonation, email, scopes, lifetime);
        let expire_time = rfc3339(unix_now() + lifetime);
        Ok(Reply::json(
            200,
            &json!({"accessToken": token, "expireTime": expire_time}),
        ))
    }
}

/// Returns the fields of an OAuth token request, from a JSON object or a form.
fn token_request_fields(incoming: &Incoming) -> Option<BTreeMap<String, String>> {
    let content_type = incoming.header("content-type").unwrap_or_default();
    if content_type.starts_with("application/json") {
        let body: Map<String, Value> = serde_json::from_str(&incoming.body).ok()?;
        let fields = body
            .into_iter()
            .filter_map(|(name, value)| Some((name, value.as_str()?.to_string())))
            .collect();
        return Some(fields);
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let fields = incoming
            .body
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode_query_text(name), decode_query_text(value))
            })
            .collect();
        return Some(fields);
    }
    None
}

/// Returns `options.requestedPolicyVersion` of a `getIamPolicy` body, 0 when absent.
fn requested_policy_version(body: &str) -> Result<u32, GoogleError> {
    if body.trim().is_empty() {
        return Ok(0);
    }
    let parsed: Value = serde_json::from_str(body).map_err(|error| {
        GoogleError::invalid_argument(format!("Invalid JSON payload received. {error}"))
    })?;
    let version = &parsed["options"]["requestedPolicyVersion"];
    match version.as_u64() {
        None if version.is_null() => Ok(0),
        Some(version @ (0 | 1 | 3)) => Ok(version as u32),
        _ => Err(GoogleError::invalid_argument(format!(
            "Invalid requestedPolicyVersion {version}; valid values are 0, 1 and 3."
        ))),
    }
}

/// One `key:value` term of a `projects:search` query.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ProjectTerm {
    Parent(String),
    State(String),
    Id(String),
}

impl ProjectTerm {
    fn matches(&self, project: &FakeProject) -> bool {
        match self {
            ProjectTerm::Parent(parent) => project.parent == *parent,
            ProjectTerm::State(state) => project.state.eq_ignore_ascii_case(state),
            ProjectTerm::Id(id) => project.project_id == *id,
        }
    }
}

/// Parses the subset of `projects:search` queries that the fake evaluates: terms
/// `parent:TYPE/NUMBER`, `state:STATE` and `id:PROJECT_ID` (or
/// `projectId:`), joined by spaces or ` AND `, all of which must match.
fn parse_project_query(query: &str) -> Result<Vec<ProjectTerm>, GoogleError> {
    let mut terms = Vec::new();
    for word in query.split_whitespace().filter(|word| *word != "AND") {
        let (name, value) = word
            .split_once(':')
            .or_else(|| word.split_once('='))
            .ok_or_else(|| unsupported_query(query))?;
        let value = value.trim_matches('"').to_string();
        let term = match name {
            "parent" => ProjectTerm::Parent(value),
            "state" | "lifecycleState" => ProjectTerm::State(value),
            "id" | "projectId" => ProjectTerm::Id(value),
            _ => return Err(unsupported_query(query)),
        };
        terms.push(term);
    }
    Ok(terms)
}

fn unsupported_query(query: &str) -> GoogleError {
    GoogleError::invalid_argument(format!("The fake cannot evaluate the query '{query}'."))
}

/// Parses a protobuf JSON duration such as `3600s` or `3600.5s` into whole seconds.
fn parse_duration_seconds(text: &str) -> Option<u64> {
    let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
    (seconds >= 0.0).then_some(seconds as u64)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// Formats Unix seconds as RFC 3339 UTC, such as `2024-02-03T04:05:06Z`.
fn rfc3339(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let seconds_of_day = unix_seconds % 86_400;
    // Converts days since 1970-01-01 to a civil date, counting in 400-year
    // eras that start on March 1 so that leap days fall at the end of a year.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60
    )
}

/// Returns the 64-bit FNV-1a hash of a text, for stable ids and etags.
fn fnv64(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Encodes bytes as standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let group = chunk.iter().enumerate().fold(0u32, |group, (i, byte)| {
            group | u32::from(*byte) << (16 - 8 * i)
        });
        for i in 0..4 {
            if i <= chunk.len() {
                let index = (group >> (18 - 6 * i)) & 0x3f;
                text.push(char::from(ALPHABET[index as usize]));
            } else {
                text.push('=');
            }
        }
    }
    text
}
