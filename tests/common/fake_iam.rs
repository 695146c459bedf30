//! A fake IAM and STS endpoint on 127.0.0.1 for the edge cases that moto
//! does not model: paging, throttling and partial failure.
//!
//! It speaks the IAM Query protocol: `POST /` with a form body
//! `Action=<Op>&Version=...&<params>`, and responds with
//! `<{Op}Response><{Op}Result>...</{Op}Result><ResponseMetadata>` XML, or with
//! an `<ErrorResponse>` and the status IAM uses for that error. It implements
//! `sts:GetCallerIdentity` and three IAM operations:
//! `GetAccountAuthorizationDetails` (paged by `Marker`), `ListAccessKeys`
//! and `GetLoginProfile`. Request signatures are not checked.
//!
//! Each test scripts the fake with a data set ([`Account`]), a page size and
//! a list of [`Fault`]s, and reads back every request it received.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};
use tiny_http::{Method, Request, Server, StatusCode};

/// The account id that every ARN of the fake, and `GetCallerIdentity`, carries.
pub const ACCOUNT_ID: &str = "123456789012";

/// The IAM operation that lists users, roles, groups and managed policies.
pub const GET_ACCOUNT_AUTHORIZATION_DETAILS: &str = "GetAccountAuthorizationDetails";
/// The IAM operation that lists one user's access keys.
pub const LIST_ACCESS_KEYS: &str = "ListAccessKeys";
/// The IAM operation that reads one user's console password (login profile).
pub const GET_LOGIN_PROFILE: &str = "GetLoginProfile";
/// The IAM operation that lists OpenID Connect providers, of which the fake has none.
pub const LIST_OPEN_ID_CONNECT_PROVIDERS: &str = "ListOpenIDConnectProviders";
/// The IAM operation that lists SAML providers, of which the fake has none.
pub const LIST_SAML_PROVIDERS: &str = "ListSAMLProviders";
/// The STS operation that names the caller's account.
pub const GET_CALLER_IDENTITY: &str = "GetCallerIdentity";

/// ARN of the AWS managed policy that grants everything.
pub const ADMINISTRATOR_ACCESS_ARN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
/// ARN of the fake's customer managed policy that grants reads only.
pub const READ_ONLY_ARN: &str = "arn:aws:iam::123456789012:policy/ReadOnlyAll";

/// Creation time of every user, role, group and policy.
pub const ENTITY_CREATED: &str = "2024-01-02T03:04:05Z";
/// Creation time of every access key.
pub const ACCESS_KEY_CREATED: &str = "2024-02-03T04:05:06Z";
/// Creation time of every console password.
pub const PASSWORD_CREATED: &str = "2024-03-04T05:06:07Z";

const IAM_NAMESPACE: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
const STS_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// Characters that RFC 3986 allows unencoded: letters, digits and `-._~`.
const URL_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An access key's metadata.
#[derive(Debug, Clone)]
pub struct FakeAccessKey {
    /// The key id (`AKIA...`).
    pub id: String,
    /// `Active` or `Inactive`.
    pub status: String,
}

/// An IAM user.
#[derive(Debug, Clone)]
pub struct FakeUser {
    /// The user name.
    pub name: String,
    /// The immutable id (`AIDA...`).
    pub id: String,
    /// Names of the groups the user is in.
    pub groups: Vec<String>,
    /// ARNs of the managed policies attached to the user.
    pub attached_policy_arns: Vec<String>,
    /// Inline policies: name and document.
    pub inline_policies: Vec<(String, Value)>,
    /// Access keys.
    pub access_keys: Vec<FakeAccessKey>,
    /// True when the user has a console password.
    pub has_password: bool,
}

/// An IAM role.
#[derive(Debug, Clone)]
pub struct FakeRole {
    /// The role name.
    pub name: String,
    /// The immutable id (`AROA...`).
    pub id: String,
    /// The trust policy document.
    pub trust_policy: Value,
    /// ARNs of the managed policies attached to the role.
    pub attached_policy_arns: Vec<String>,
}

/// An IAM group.
#[derive(Debug, Clone)]
pub struct FakeGroup {
    /// The group name.
    pub name: String,
    /// The immutable id (`AGPA...`).
    pub id: String,
    /// ARNs of the managed policies attached to the group.
    pub attached_policy_arns: Vec<String>,
}

/// A managed policy with one version, which is the default.
#[derive(Debug, Clone)]
pub struct FakePolicy {
    /// The policy ARN.
    pub arn: String,
    /// The immutable id (`ANPA...`).
    pub id: String,
    /// The document of the default version.
    pub document: Value,
}

/// The fake's data set: one account's identities, credentials and policies.
#[derive(Debug, Clone, Default)]
pub struct Account {
    /// Users, in listing order.
    pub users: Vec<FakeUser>,
    /// Groups, in listing order.
    pub groups: Vec<FakeGroup>,
    /// Roles, in listing order.
    pub roles: Vec<FakeRole>,
    /// Managed policies, in listing order.
    pub policies: Vec<FakePolicy>,
}

impl Account {
    /// Builds an account of `count` users, one group, two roles and two
    /// managed policies: `count + 5` entities in `GetAccountAuthorizationDetails`.
    ///
    /// Users are `user-01`, `user-02`, ... with ids `AIDAUSER...`. Each has one
    /// active access key `AKIAKEY...`, and users with odd numbers have a
    /// console password. `user-01` is in group `admins` (AdministratorAccess),
    /// `user-02` has an inline `Allow * on *` policy, and the others have
    /// `ReadOnlyAll` attached. Role `deploy` trusts this account and role
    /// `vendor-audit` trusts account 111122223333.
    pub fn with_users(count: usize) -> Account {
        let users = (1..=count).map(numbered_user).collect();
        Account {
            users,
            groups: vec![FakeGroup {
                name: "admins".to_string(),
                id: "AGPAADMINS0000000001".to_string(),
                attached_policy_arns: vec![ADMINISTRATOR_ACCESS_ARN.to_string()],
            }],
            roles: vec![
                role("deploy", 1, "arn:aws:iam::123456789012:root"),
                role("vendor-audit", 2, "arn:aws:iam::111122223333:root"),
            ],
            policies: vec![
                policy(ADMINISTRATOR_ACCESS_ARN, 1, json!(["*"])),
                policy(
                    READ_ONLY_ARN,
                    2,
                    json!(["s3:Get*", "iam:Get*", "iam:List*"]),
                ),
            ],
        }
    }

    /// Returns the user with a name, if there is one.
    pub fn user(&self, name: &str) -> Option<&FakeUser> {
        self.users.iter().find(|user| user.name == name)
    }

    /// Lists every entity in the order `GetAccountAuthorizationDetails` pages them.
    fn entities(&self) -> Vec<Entity<'_>> {
        let users = self.users.iter().map(Entity::User);
        let groups = self.groups.iter().map(Entity::Group);
        let roles = self.roles.iter().map(Entity::Role);
        let policies = self.policies.iter().map(Entity::Policy);
        users.chain(groups).chain(roles).chain(policies).collect()
    }
}

/// Returns the name of user number `number`: `user-01`, `user-02`, ...
pub fn user_name(number: usize) -> String {
    format!("user-{number:02}")
}

/// Returns the access key id of user number `number`.
pub fn access_key_id(number: usize) -> String {
    format!("AKIAKEY{number:013}")
}

fn numbered_user(number: usize) -> FakeUser {
    let mut user = FakeUser {
        name: user_name(number),
        id: format!("AIDAUSER{number:013}"),
        groups: Vec::new(),
        attached_policy_arns: Vec::new(),
        inline_policies: Vec::new(),
        access_keys: vec![FakeAccessKey {
            id: access_key_id(number),
            status: "Active".to_string(),
        }],
        has_password: number % 2 == 1,
    };
    match number {
        1 => user.groups.push("admins".to_string()),
        2 => user
            .inline_policies
            .push(("everything".to_string(), allow_document(json!("*")))),
        _ => user.attached_policy_arns.push(READ_ONLY_ARN.to_string()),
    }
    user
}

fn role(name: &str, number: usize, trusted_principal: &str) -> FakeRole {
    FakeRole {
        name: name.to_string(),
        id: format!("AROAROLE{number:013}"),
        trust_policy: json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": trusted_principal},
                "Action": "sts:AssumeRole"
            }]
        }),
        attached_policy_arns: vec![READ_ONLY_ARN.to_string()],
    }
}

fn policy(arn: &str, number: usize, actions: Value) -> FakePolicy {
    FakePolicy {
        arn: arn.to_string(),
        id: format!("ANPAPOLICY{number:011}"),
        document: allow_document(actions),
    }
}

/// Returns a policy document that allows `actions` on every resource.
fn allow_document(actions: Value) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]
    })
}

/// One entry of `GetAccountAuthorizationDetails`, of any of its four lists.
#[derive(Debug, Clone, Copy)]
enum Entity<'a> {
    User(&'a FakeUser),
    Group(&'a FakeGroup),
    Role(&'a FakeRole),
    Policy(&'a FakePolicy),
}

/// A scripted misbehavior of the fake.
///
/// Faults are checked in the order they were added, and the first one that
/// applies to a request decides its response. Pages of
/// `GetAccountAuthorizationDetails` are numbered from 1 by the `Marker` of
/// the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Returns 400 `Throttling` for the first `times` requests of `action`.
    Throttle {
        /// The operation, such as [`LIST_ACCESS_KEYS`].
        action: &'static str,
        /// How many requests fail before the operation succeeds again.
        times: usize,
    },
    /// Returns 400 `Throttling` for the first `times` requests for one page
    /// of `GetAccountAuthorizationDetails`.
    ThrottlePage {
        /// The page, from 1.
        page: usize,
        /// How many requests for that page fail before it is served.
        times: usize,
    },
    /// Returns 400 `Throttling` for every request of `action`.
    ThrottleAlways {
        /// The operation.
        action: &'static str,
    },
    /// Returns 404 `NoSuchEntity` for requests of `action` about one user,
    /// as IAM does for a user deleted since it was listed.
    NoSuchEntity {
        /// The operation, such as [`LIST_ACCESS_KEYS`].
        action: &'static str,
        /// The `UserName` parameter that fails.
        user_name: String,
    },
    /// Returns 403 `AccessDenied` for requests of `action`.
    AccessDenied {
        /// The operation.
        action: &'static str,
        /// The `UserName` parameter that fails; `None` denies every request of `action`.
        user_name: Option<String>,
    },
    /// Sends `IsTruncated` true with an empty `<Marker></Marker>` on every
    /// page of `GetAccountAuthorizationDetails` that has a next page.
    EmptyMarker,
    /// Sends `IsTruncated` true and no `Marker` element on every page of
    /// `GetAccountAuthorizationDetails` that has a next page.
    MissingMarker,
    /// Sends the first page's `Marker` again on every later page of
    /// `GetAccountAuthorizationDetails`, so the listing never advances.
    RepeatedMarker,
}

/// A fault and how many requests it has failed so far.
#[derive(Debug)]
struct ActiveFault {
    fault: Fault,
    hits: usize,
}

/// One request the fake received, with its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The `Action` parameter; empty when the request had none.
    pub action: String,
    /// Every form parameter, `Action` and `Version` included, decoded.
    pub params: BTreeMap<String, String>,
    /// The HTTP status of the response.
    pub status: u16,
    /// The `Marker` the response carried, when it carried one.
    pub response_marker: Option<String>,
    /// When the fake received the request.
    pub received: Instant,
}

impl RecordedRequest {
    /// Returns the request's `Marker` parameter, if it sent one.
    pub fn marker(&self) -> Option<&str> {
        self.params.get("Marker").map(String::as_str)
    }

    /// Returns the request's `UserName` parameter, if it sent one.
    pub fn user_name(&self) -> Option<&str> {
        self.params.get("UserName").map(String::as_str)
    }
}

/// Everything the fake's handler reads and changes, behind one lock.
#[derive(Debug)]
struct State {
    account: Account,
    /// Entities per page of `GetAccountAuthorizationDetails`, at most the request's `MaxItems`.
    page_size: usize,
    faults: Vec<ActiveFault>,
    requests: Vec<RecordedRequest>,
    /// Wait before each response.
    latency: Duration,
}

/// A fake IAM and STS endpoint on 127.0.0.1, stopped when dropped.
pub struct FakeIam {
    /// `http://127.0.0.1:PORT`, for `endpoint_url` in the config.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    server: Arc<Server>,
    stopping: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl FakeIam {
    /// Starts the fake on a free port with a data set, a page size of 1000
    /// (the largest IAM allows) and no faults.
    pub fn start(account: Account) -> FakeIam {
        let server = Server::http("127.0.0.1:0").expect("bind the fake IAM server");
        let server = Arc::new(server);
        let port = server
            .server_addr()
            .to_ip()
            .expect("the fake IAM server listens on TCP")
            .port();
        let state = Arc::new(Mutex::new(State {
            account,
            page_size: 1000,
            faults: Vec::new(),
            requests: Vec::new(),
            latency: Duration::ZERO,
        }));
        let stopping = Arc::new(AtomicBool::new(false));

        let worker = {
            let server = Arc::clone(&server);
            let state = Arc::clone(&state);
            let stopping = Arc::clone(&stopping);
            std::thread::spawn(move || serve(&server, &state, &stopping))
        };
        FakeIam {
            endpoint: format!("http://127.0.0.1:{port}"),
            state,
            server,
            stopping,
            worker: Some(worker),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the data set, as if the account changed between two scans.
    pub fn set_account(&self, account: Account) {
        self.state().account = account;
    }

    /// Sets how many entities each page of `GetAccountAuthorizationDetails` holds.
    pub fn set_page_size(&self, page_size: usize) {
        assert!(page_size > 0, "a page holds at least one entity");
        self.state().page_size = page_size;
    }

    /// Waits `latency` before each response. The fake serves one request
    /// at a time, so requests sent at once queue behind each other.
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// Adds a fault after those already added.
    pub fn add_fault(&self, fault: Fault) {
        self.state().faults.push(ActiveFault { fault, hits: 0 });
    }

    /// Removes every fault, so that the fake behaves like IAM again.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Returns every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// Returns the requests of one operation, in arrival order.
    pub fn requests_for(&self, action: &str) -> Vec<RecordedRequest> {
        let state = self.state();
        let matching = state
            .requests
            .iter()
            .filter(|request| request.action == action);
        matching.cloned().collect()
    }

    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }
}

impl Drop for FakeIam {
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
            // `recv` fails both when unblocked and on a failed accept; only
            // the first ends the loop.
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(error) => {
                eprintln!("fake IAM: accepting a connection failed: {error}");
                continue;
            }
        };

        let mut body = String::new();
        let body_problem = match request.as_reader().read_to_string(&mut body) {
            Err(_) => Some("the request body could not be read as UTF-8 text"),
            Ok(_) if *request.method() != Method::Post || request.url() != "/" => {
                Some("the fake accepts only POST /")
            }
            Ok(_) => None,
        };
        let received = Instant::now();
        let (reply, latency) = {
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            (
                state.handle(parse_form(&body), body_problem, received),
                state.latency,
            )
        };

        std::thread::sleep(latency);
        write_reply(request, &reply);
    }
}

/// Sends a reply with `Connection: close`, so the client opens a new
/// connection for its next request.
///
/// tiny_http 0.12 serves each connection on a pool thread until the client
/// closes it. When connections arrive in a burst, `TaskPool::spawn` (in its
/// src/util/task_pool.rs) can queue one while every thread waits on an idle
/// keep-alive connection, which stalled requests until the SDK's attempt
/// timeout. `Response` drops a `Connection` header, so the reply is written raw.
fn write_reply(request: Request, reply: &Reply) {
    let reason = StatusCode(reply.status).default_reason_phrase();
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        reply.status,
        reply.body.len()
    );
    let mut writer = request.into_writer();
    let written = writer
        .write_all(head.as_bytes())
        .and_then(|()| writer.write_all(reply.body.as_bytes()))
        .and_then(|()| writer.flush());
    if let Err(error) = written {
        eprintln!("fake IAM: writing the response failed: {error}");
    }
}

/// Parses an `application/x-www-form-urlencoded` body into decoded parameters.
fn parse_form(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_form_text(name), decode_form_text(value))
        })
        .collect()
}

/// Decodes one form name or value: `+` is a space, then percent escapes.
fn decode_form_text(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// An HTTP response: status and XML body.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: String,
    /// The `Marker` in the body, recorded for the tests.
    marker: Option<String>,
}

impl Reply {
    /// Wraps a result in the Query protocol's response envelope.
    fn success(action: &str, namespace: &str, result: &str, request_id: &str) -> Reply {
        let body = format!(
            "<{action}Response xmlns=\"{namespace}\"><{action}Result>{result}</{action}Result>\
             <ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>\
             </{action}Response>"
        );
        Reply {
            status: 200,
            body,
            marker: None,
        }
    }

    fn error(error: &ServiceError, request_id: &str) -> Reply {
        Reply {
            status: error.status,
            body: error.to_xml(request_id),
            marker: None,
        }
    }
}

/// An IAM error response.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServiceError {
    status: u16,
    code: &'static str,
    message: String,
}

impl ServiceError {
    fn throttling() -> ServiceError {
        ServiceError {
            status: 400,
            code: "Throttling",
            message: "Rate exceeded".to_string(),
        }
    }

    fn no_such_entity(message: String) -> ServiceError {
        ServiceError {
            status: 404,
            code: "NoSuchEntity",
            message,
        }
    }

    fn access_denied(action: &str) -> ServiceError {
        ServiceError {
            status: 403,
            code: "AccessDenied",
            message: format!(
                "User: arn:aws:iam::{ACCOUNT_ID}:user/scanner is not authorized to perform: \
                 iam:{action} on resource: arn:aws:iam::{ACCOUNT_ID}:user/*"
            ),
        }
    }

    fn invalid_input(message: &str) -> ServiceError {
        ServiceError {
            status: 400,
            code: "InvalidInput",
            message: message.to_string(),
        }
    }

    /// Renders the Query protocol's `ErrorResponse`; every error here is the sender's fault.
    fn to_xml(&self, request_id: &str) -> String {
        format!(
            "<ErrorResponse xmlns=\"{IAM_NAMESPACE}\"><Error><Type>Sender</Type>\
             <Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId>\
             </ErrorResponse>",
            self.code,
            escape(&self.message)
        )
    }
}

impl State {
    /// Responds to one request and records it. `problem` rejects a request
    /// that is not a form `POST /`, with 400 `InvalidInput`.
    fn handle(
        &mut self,
        params: BTreeMap<String, String>,
        problem: Option<&str>,
        received: Instant,
    ) -> Reply {
        let action = params.get("Action").cloned().unwrap_or_default();
        let request_id = format!("fake-request-{}", self.requests.len() + 1);

        let reply = if let Some(problem) = problem {
            Reply::error(&ServiceError::invalid_input(problem), &request_id)
        } else if let Some(error) = self.injected_error(&action, &params) {
            Reply::error(&error, &request_id)
        } else {
            self.respond(&action, &params, &request_id)
        };
        self.requests.push(RecordedRequest {
            action,
            params,
            status: reply.status,
            response_marker: reply.marker.clone(),
            received,
        });
        reply
    }

    /// Returns the error of the first fault that applies to a request, and counts it.
    fn injected_error(
        &mut self,
        action: &str,
        params: &BTreeMap<String, String>,
    ) -> Option<ServiceError> {
        let page = (action == GET_ACCOUNT_AUTHORIZATION_DETAILS)
            .then(|| self.page_number(params.get("Marker")))
            .flatten();
        let user_name = params.get("UserName").map(String::as_str);

        for active in &mut self.faults {
            let error = match &active.fault {
                Fault::Throttle {
                    action: target,
                    times,
                } if target == &action && active.hits < *times => ServiceError::throttling(),
                Fault::ThrottlePage {
                    page: target,
                    times,
                } if page == Some(*target) && active.hits < *times => ServiceError::throttling(),
                Fault::ThrottleAlways { action: target } if target == &action => {
                    ServiceError::throttling()
                }
                Fault::NoSuchEntity {
                    action: target,
                    user_name: target_user,
                } if target == &action && user_name == Some(target_user.as_str()) => {
                    ServiceError::no_such_entity(format!(
                        "The user with name {target_user} cannot be found."
                    ))
                }
                Fault::AccessDenied {
                    action: target,
                    user_name: target_user,
                } if target == &action
                    && (target_user.is_none() || target_user.as_deref() == user_name) =>
                {
                    ServiceError::access_denied(action)
                }
                _ => continue,
            };
            active.hits += 1;
            return Some(error);
        }
        None
    }

    /// Builds the response to a request that no fault applies to.
    fn respond(&self, action: &str, params: &BTreeMap<String, String>, request_id: &str) -> Reply {
        let user_name = params.get("UserName").map(String::as_str);
        match action {
            GET_CALLER_IDENTITY => caller_identity(request_id),
            GET_ACCOUNT_AUTHORIZATION_DETAILS => self.authorization_details(params, request_id),
            LIST_ACCESS_KEYS => self.access_keys(user_name, request_id),
            GET_LOGIN_PROFILE => self.login_profile(user_name, request_id),
            LIST_OPEN_ID_CONNECT_PROVIDERS => Reply::success(
                action,
                IAM_NAMESPACE,
                &member_list("OpenIDConnectProviderList", Vec::new()),
                request_id,
            ),
            LIST_SAML_PROVIDERS => Reply::success(
                action,
                IAM_NAMESPACE,
                &member_list("SAMLProviderList", Vec::new()),
                request_id,
            ),
            "" => Reply::error(
                &ServiceError::invalid_input("the request has no Action"),
                request_id,
            ),
            other => Reply::error(
                &ServiceError::invalid_input(&format!("the fake does not implement {other}")),
                request_id,
            ),
        }
    }

    /// Returns the page number, from 1, that a `Marker` requests, or `None`
    /// for a marker the fake never sent.
    fn page_number(&self, marker: Option<&String>) -> Option<usize> {
        let offset = match marker {
            None => 0,
            Some(marker) => offset_of_marker(marker)?,
        };
        Some(offset / self.page_size + 1)
    }

    /// Serves one page of `GetAccountAuthorizationDetails`.
    fn authorization_details(&self, params: &BTreeMap<String, String>, request_id: &str) -> Reply {
        let offset = match params.get("Marker") {
            None => 0,
            Some(marker) => match offset_of_marker(marker) {
                Some(offset) => offset,
                None => {
                    let error = ServiceError::invalid_input(&format!("invalid Marker {marker:?}"));
                    return Reply::error(&error, request_id);
                }
            },
        };
        let max_items = params.get("MaxItems").and_then(|text| text.parse().ok());
        let page_size = self.page_size.min(max_items.unwrap_or(100));

        let entities = self.account.entities();
        let end = (offset + page_size).min(entities.len());
        let page = entities.get(offset..end).unwrap_or_default();
        let next_marker = (end < entities.len()).then(|| self.next_marker(end));

        let mut result = details_xml(page);
        result.push_str(&element("IsTruncated", &next_marker.is_some().to_string()));
        let sent_marker = match next_marker {
            Some(PageMarker::Text(marker)) => {
                result.push_str(&element("Marker", &marker));
                Some(marker)
            }
            Some(PageMarker::Omitted) | None => None,
        };

        let mut reply = Reply::success(
            GET_ACCOUNT_AUTHORIZATION_DETAILS,
            IAM_NAMESPACE,
            &result,
            request_id,
        );
        reply.marker = sent_marker;
        reply
    }

    /// Returns the `Marker` for a page that starts at `offset`, as the faults shape it.
    fn next_marker(&self, offset: usize) -> PageMarker {
        let has = |wanted: &Fault| self.faults.iter().any(|active| &active.fault == wanted);
        if has(&Fault::MissingMarker) {
            PageMarker::Omitted
        } else if has(&Fault::EmptyMarker) {
            PageMarker::Text(String::new())
        } else if has(&Fault::RepeatedMarker) {
            PageMarker::Text(marker_for_offset(self.page_size))
        } else {
            PageMarker::Text(marker_for_offset(offset))
        }
    }

    /// Lists one user's access keys, all on one page.
    fn access_keys(&self, user_name: Option<&str>, request_id: &str) -> Reply {
        let user = match self.find_user(user_name) {
            Ok(user) => user,
            Err(error) => return Reply::error(&error, request_id),
        };
        let members = user.access_keys.iter().map(|key| {
            [
                element("UserName", &user.name),
                element("AccessKeyId", &key.id),
                element("Status", &key.status),
                element("CreateDate", ACCESS_KEY_CREATED),
            ]
            .concat()
        });
        let result = [
            member_list("AccessKeyMetadata", members),
            element("IsTruncated", "false"),
        ]
        .concat();
        Reply::success(LIST_ACCESS_KEYS, IAM_NAMESPACE, &result, request_id)
    }

    /// Returns a user's login profile, or 404 `NoSuchEntity` when the user has no password.
    fn login_profile(&self, user_name: Option<&str>, request_id: &str) -> Reply {
        let user = match self.find_user(user_name) {
            Ok(user) => user,
            Err(error) => return Reply::error(&error, request_id),
        };
        if !user.has_password {
            let message = format!("Login Profile for User {} cannot be found.", user.name);
            return Reply::error(&ServiceError::no_such_entity(message), request_id);
        }
        let profile = [
            element("UserName", &user.name),
            element("CreateDate", PASSWORD_CREATED),
            element("PasswordResetRequired", "false"),
        ]
        .concat();
        let result = element_raw("LoginProfile", &profile);
        Reply::success(GET_LOGIN_PROFILE, IAM_NAMESPACE, &result, request_id)
    }

    /// Finds the user a request names.
    // NOTE: IAM falls back to the caller's own user when `UserName` is
    // absent; the fake rejects such requests because idrift always names the user.
    fn find_user(&self, user_name: Option<&str>) -> Result<&FakeUser, ServiceError> {
        let Some(user_name) = user_name else {
            return Err(ServiceError::invalid_input(
                "UserName is required by the fake",
            ));
        };
        self.account.user(user_name).ok_or_else(|| {
            ServiceError::no_such_entity(format!("The user with name {user_name} cannot be found."))
        })
    }
}

/// The `Marker` of a page that has a next page.
enum PageMarker {
    /// A `<Marker>` element with this text, which may be empty.
    Text(String),
    /// No `<Marker>` element.
    Omitted,
}

/// Returns the `Marker` of the page that starts at entity `offset`.
///
/// Markers contain `/`, `+` and `=`, which form encoding must escape, so
/// paging also checks that idrift sends them back intact.
fn marker_for_offset(offset: usize) -> String {
    format!("fake/{offset}+==")
}

/// Returns the entity offset a `Marker` from [`marker_for_offset`] stands for.
fn offset_of_marker(marker: &str) -> Option<usize> {
    marker
        .strip_prefix("fake/")?
        .strip_suffix("+==")?
        .parse()
        .ok()
}

/// Builds the `sts:GetCallerIdentity` response for a scanning user of [`ACCOUNT_ID`].
fn caller_identity(request_id: &str) -> Reply {
    let result = [
        element("Arn", &format!("arn:aws:iam::{ACCOUNT_ID}:user/scanner")),
        element("UserId", "AIDASCANNER"),
        element("Account", ACCOUNT_ID),
    ]
    .concat();
    Reply::success(GET_CALLER_IDENTITY, STS_NAMESPACE, &result, request_id)
}

/// Renders the four lists of one `GetAccountAuthorizationDetails` page.
fn details_xml(page: &[Entity<'_>]) -> String {
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let mut roles = Vec::new();
    let mut policies = Vec::new();
    for entity in page {
        match entity {
            Entity::User(user) => users.push(user_detail_xml(user)),
            Entity::Group(group) => groups.push(group_detail_xml(group)),
            Entity::Role(role) => roles.push(role_detail_xml(role)),
            Entity::Policy(policy) => policies.push(policy_detail_xml(policy)),
        }
    }
    [
        member_list("UserDetailList", users),
        member_list("GroupDetailList", groups),
        member_list("RoleDetailList", roles),
        member_list("Policies", policies),
    ]
    .concat()
}

fn user_detail_xml(user: &FakeUser) -> String {
    let groups = user.groups.iter().map(|group| escape(group));
    [
        element("Path", "/"),
        element("UserName", &user.name),
        element("UserId", &user.id),
        element(
            "Arn",
            &format!("arn:aws:iam::{ACCOUNT_ID}:user/{}", user.name),
        ),
        element("CreateDate", ENTITY_CREATED),
        member_list("GroupList", groups),
        attached_policies_xml(&user.attached_policy_arns),
        inline_policies_xml("UserPolicyList", &user.inline_policies),
    ]
    .concat()
}

fn group_detail_xml(group: &FakeGroup) -> String {
    [
        element("Path", "/"),
        element("GroupName", &group.name),
        element("GroupId", &group.id),
        element(
            "Arn",
            &format!("arn:aws:iam::{ACCOUNT_ID}:group/{}", group.name),
        ),
        element("CreateDate", ENTITY_CREATED),
        member_list("GroupPolicyList", Vec::new()),
        attached_policies_xml(&group.attached_policy_arns),
    ]
    .concat()
}

fn role_detail_xml(role: &FakeRole) -> String {
    [
        element("Path", "/"),
        element("RoleName", &role.name),
        element("RoleId", &role.id),
        element(
            "Arn",
            &format!("arn:aws:iam::{ACCOUNT_ID}:role/{}", role.name),
        ),
        element("CreateDate", ENTITY_CREATED),
        element("AssumeRolePolicyDocument", &url_encode(&role.trust_policy)),
        member_list("InstanceProfileList", Vec::new()),
        member_list("RolePolicyList", Vec::new()),
        attached_policies_xml(&role.attached_policy_arns),
    ]
    .concat()
}

fn policy_detail_xml(policy: &FakePolicy) -> String {
    let version = [
        element("Document", &url_encode(&policy.document)),
        element("VersionId", "v1"),
        element("IsDefaultVersion", "true"),
        element("CreateDate", ENTITY_CREATED),
    ]
    .concat();
    [
        element("PolicyName", policy_name(&policy.arn)),
        element("PolicyId", &policy.id),
        element("Arn", &policy.arn),
        element("Path", "/"),
        element("DefaultVersionId", "v1"),
        element("AttachmentCount", "1"),
        element("IsAttachable", "true"),
        element("CreateDate", ENTITY_CREATED),
        element("UpdateDate", ENTITY_CREATED),
        member_list("PolicyVersionList", [version]),
    ]
    .concat()
}

fn attached_policies_xml(arns: &[String]) -> String {
    let members = arns.iter().map(|arn| {
        [
            element("PolicyName", policy_name(arn)),
            element("PolicyArn", arn),
        ]
        .concat()
    });
    member_list("AttachedManagedPolicies", members)
}

fn inline_policies_xml(name: &str, policies: &[(String, Value)]) -> String {
    let members = policies.iter().map(|(policy_name, document)| {
        [
            element("PolicyName", policy_name),
            element("PolicyDocument", &url_encode(document)),
        ]
        .concat()
    });
    member_list(name, members)
}

/// Returns the last segment of a policy ARN, which is its name.
fn policy_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Serializes a policy document and URL-encodes it, as IAM sends documents.
fn url_encode(document: &Value) -> String {
    utf8_percent_encode(&document.to_string(), URL_ENCODE_SET).to_string()
}

/// Renders `<name>text</name>` with the text escaped.
fn element(name: &str, text: &str) -> String {
    element_raw(name, &escape(text))
}

/// Renders `<name>xml</name>` around XML that is already escaped.
fn element_raw(name: &str, xml: &str) -> String {
    format!("<{name}>{xml}</{name}>")
}

/// Renders a Query protocol list, `<name><member>...</member></name>`, or
/// `<name/>` when empty; each item is XML that is already escaped.
fn member_list(name: &str, items: impl IntoIterator<Item = String>) -> String {
    let members: String = items
        .into_iter()
        .map(|item| element_raw("member", &item))
        .collect();
    if members.is_empty() {
        format!("<{name}/>")
    } else {
        element_raw(name, &members)
    }
}

/// Escapes the five characters that XML text cannot contain as they are.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}
