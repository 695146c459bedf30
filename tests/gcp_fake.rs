//! The fake Google Cloud of `common::fake_gcp`. The first tests check it with
//! plain HTTP/1.1 requests over `std::net::TcpStream`: the metadata server,
//! the OAuth token endpoint, paging, the faults and the bearer token check.
//!
//! The last tests drive the real google-cloud-auth crate against it. Its
//! Application Default Credentials read `GOOGLE_APPLICATION_CREDENTIALS`,
//! `HOME` and `GCE_METADATA_HOST` from the process environment. So each of
//! those tests runs an `#[ignore]`d test of this binary in a child process
//! whose environment contains only what the parent sets: a temporary
//! `HOME`, `GCE_METADATA_HOST` pointing at the fake, and for credential
//! files `GOOGLE_APPLICATION_CREDENTIALS`. No request can reach a real
//! metadata server or Google endpoint.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use common::fake_gcp::{
    DEFAULT_PAGE_SIZE, DEFAULT_TOKEN_LIFETIME_SECONDS, FakeBinding, FakeGcp, FakeKey, FakeProject,
    Fault, IssuedToken, KEY_VALID_FOREVER, LastPageToken, MAX_PAGE_SIZE, METADATA_EMAIL_PATH,
    METADATA_PROJECT_ID, METADATA_PROJECT_NUMBER, METADATA_TOKEN_PATH,
    METADATA_UNIVERSE_DOMAIN_PATH, OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET, OAUTH_TOKEN_PATH,
    ORGANIZATION, Organization, PROJECTS_SEARCH_PATH, REFRESH_TOKEN, TOKEN_PREFIX, TokenSource,
    USER_EMAIL, default_compute_email, generate_access_token_path, iam_policy_path, key_id,
    keys_path, service_accounts_path, unique_id,
};
use common::fake_gcp::{
    EMPTY_POLICY_ETAG, FakeIssuer, FakePool, FakeProvider, account_policy_path, pools_path,
    providers_path,
};
use common::fake_graph::Editable;

/// The read-only scope that the google-cloud-auth tests request.
const READ_ONLY_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform.read-only";

/// A response read off the wire.
#[derive(Debug)]
struct HttpResponse {
    status: u16,
    /// Headers with lowercase names, in order.
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("the body is not JSON ({error}): {}", self.body))
    }
}

/// Sends one request with extra headers and a body over a new connection
/// and reads the whole response, which the fake ends by closing the connection.
fn http_request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{url} is not an http:// URL"));
    let (authority, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = TcpStream::connect(authority).expect("connect to the fake");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set a read timeout");

    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: {authority}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    stream
        .write_all(request.as_bytes())
        .expect("send the request");

    let mut raw = String::new();
    stream
        .read_to_string(&mut raw)
        .expect("read the response to the end");
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("the response has no header end: {raw}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("invalid status line {status_line:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Gets a URL of the metadata server with `Metadata-Flavor: Google`.
fn metadata_get(fake: &FakeGcp, path: &str) -> HttpResponse {
    let url = format!("{}{path}", fake.endpoint);
    http_request("GET", &url, &[("Metadata-Flavor", "Google")], "")
}

/// Gets a token from the fake metadata server.
fn fetch_token(fake: &FakeGcp) -> String {
    let response = metadata_get(fake, METADATA_TOKEN_PATH);
    assert_eq!(response.status, 200, "{response:?}");
    response.json()["access_token"]
        .as_str()
        .expect("access_token is a string")
        .to_string()
}

/// Gets an API path (with its query) with a bearer token.
fn api_get(fake: &FakeGcp, target: &str, token: &str) -> HttpResponse {
    let authorization = format!("Bearer {token}");
    let url = format!("{}{target}", fake.endpoint);
    http_request(
        "GET",
        &url,
        &[("Authorization", authorization.as_str())],
        "",
    )
}

/// Posts a JSON body to an API path with a bearer token.
fn api_post(fake: &FakeGcp, path: &str, token: &str, body: &Value) -> HttpResponse {
    let authorization = format!("Bearer {token}");
    let url = format!("{}{path}", fake.endpoint);
    let headers = [
        ("Authorization", authorization.as_str()),
        ("Content-Type", "application/json"),
    ];
    http_request("POST", &url, &headers, &body.to_string())
}

/// Posts `getIamPolicy` with `requestedPolicyVersion` 3.
fn get_policy(fake: &FakeGcp, project_id: &str, token: &str) -> HttpResponse {
    let body = json!({"options": {"requestedPolicyVersion": 3}});
    api_post(fake, &iam_policy_path(project_id), token, &body)
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

/// Lists every page of a listing path (which may carry a query) from `pageSize` and the
/// `nextPageToken` of each page, and returns the bodies.
fn all_pages(fake: &FakeGcp, path: &str, page_size: Option<usize>, token: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut page_token = String::new();
    loop {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut target = format!("{path}{separator}pageToken={}", encode(&page_token));
        if let Some(size) = page_size {
            target.push_str(&format!("&pageSize={size}"));
        }
        let response = api_get(fake, &target, token);
        assert_eq!(response.status, 200, "{target}: {response:?}");
        let body = response.json();
        let next = body["nextPageToken"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        pages.push(body);
        if next.is_empty() {
            return pages;
        }
        page_token = next;
        assert!(pages.len() < 100, "the listing did not end");
    }
}

/// Returns the values of a string field of the records under `list` in some pages.
fn field_of(pages: &[Value], list: &str, field: &str) -> Vec<String> {
    pages
        .iter()
        .flat_map(|page| page[list].as_array().cloned().unwrap_or_default())
        .map(|record| record[field].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Returns the records' count of each page under `list`.
fn page_sizes(pages: &[Value], list: &str) -> Vec<usize> {
    pages
        .iter()
        .map(|page| page[list].as_array().map_or(0, Vec::len))
        .collect()
}

/// Returns the unique ids of accounts 1 to `count` of project 1.
fn account_ids(count: u64) -> Vec<String> {
    let project = FakeProject::numbered(1);
    (1..=count)
        .map(|number| unique_id(project.project_number, number))
        .collect()
}

#[test]
fn metadata_server_issues_tokens() {
    let fake = FakeGcp::start(Organization::default());
    let target = format!("{METADATA_TOKEN_PATH}?scopes=a%2Cb");
    let response = metadata_get(&fake, &target);

    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.header("metadata-flavor"), Some("Google"));
    let body = response.json();
    assert_eq!(body["access_token"], format!("{TOKEN_PREFIX}1"));
    assert_eq!(body["expires_in"], DEFAULT_TOKEN_LIFETIME_SECONDS);
    assert_eq!(body["token_type"], "Bearer");
    let issued = fake.issued_tokens();
    assert_eq!(
        issued,
        vec![IssuedToken {
            token: format!("{TOKEN_PREFIX}1"),
            source: TokenSource::Metadata,
            principal: default_compute_email(METADATA_PROJECT_NUMBER),
            scopes: vec!["a".to_string(), "b".to_string()],
        }]
    );

    let email = metadata_get(&fake, METADATA_EMAIL_PATH);
    assert_eq!(email.body, default_compute_email(METADATA_PROJECT_NUMBER));
    let universe = metadata_get(&fake, METADATA_UNIVERSE_DOMAIN_PATH);
    assert_eq!(universe.body, "googleapis.com");
    let project = metadata_get(&fake, "/computeMetadata/v1/project/project-id");
    assert_eq!(project.body, METADATA_PROJECT_ID);
    assert_eq!(
        metadata_get(&fake, "/computeMetadata/v1/instance/zone").status,
        404
    );

    let requests = fake.token_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].param("scopes"), Some("a,b"));
    assert_eq!(requests[0].header("Metadata-Flavor"), Some("Google"));
    assert!(requests[0].is_metadata_request());
    assert_eq!(
        fake.metadata_host(),
        fake.endpoint.trim_start_matches("http://")
    );
}

#[test]
fn metadata_server_checks_headers() {
    let fake = FakeGcp::start(Organization::default());
    let url = format!("{}{METADATA_TOKEN_PATH}", fake.endpoint);
    let cases: [(&[(&str, &str)], u16); 4] = [
        (&[], 403),
        (&[("Metadata-Flavor", "google")], 403),
        (
            &[
                ("Metadata-Flavor", "Google"),
                ("X-Forwarded-For", "10.0.0.1"),
            ],
            403,
        ),
        (&[("Metadata-Flavor", "Google")], 200),
    ];
    for (headers, expected) in cases {
        let response = http_request("GET", &url, headers, "");
        assert_eq!(response.status, expected, "{headers:?}: {response:?}");
        assert_eq!(response.header("metadata-flavor"), Some("Google"));
    }
    assert_eq!(fake.issued_tokens().len(), 1);

    fake.add_fault(Fault::TokenUnavailable { times: 1 });
    let statuses: Vec<u16> = (0..2)
        .map(|_| metadata_get(&fake, METADATA_TOKEN_PATH).status)
        .collect();
    assert_eq!(statuses, vec![503, 200]);
    assert_eq!(fake.issued_tokens().len(), 2);
}

#[test]
fn oauth_endpoint_grants_refresh_tokens() {
    let fake = FakeGcp::start(Organization::default());
    let url = fake.token_uri();
    let json_body = json!({
        "grant_type": "refresh_token",
        "client_id": OAUTH_CLIENT_ID,
        "client_secret": OAUTH_CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
        "scope": READ_ONLY_SCOPE,
    });
    let json_type = [("Content-Type", "application/json")];
    let granted = http_request("POST", &url, &json_type, &json_body.to_string());

    assert_eq!(granted.status, 200, "{granted:?}");
    let body = granted.json();
    assert_eq!(body["access_token"], format!("{TOKEN_PREFIX}1"));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], DEFAULT_TOKEN_LIFETIME_SECONDS);
    assert_eq!(body["scope"], READ_ONLY_SCOPE);
    assert_eq!(fake.issued_tokens()[0].source, TokenSource::RefreshToken);
    assert_eq!(fake.issued_tokens()[0].principal, USER_EMAIL);

    let form = format!(
        "grant_type=refresh_token&client_id={}&client_secret={OAUTH_CLIENT_SECRET}\
         &refresh_token={}",
        encode(OAUTH_CLIENT_ID),
        encode(REFRESH_TOKEN)
    );
    let form_type = [("Content-Type", "application/x-www-form-urlencoded")];
    let from_form = http_request("POST", &url, &form_type, &form);
    assert_eq!(from_form.status, 200, "{from_form:?}");
    assert_eq!(
        from_form.json()["scope"],
        "https://www.googleapis.com/auth/cloud-platform"
    );

    let requests = fake.requests_for(OAUTH_TOKEN_PATH);
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body_json(), json_body);
    assert!(requests[1].body.starts_with("grant_type=refresh_token"));
}

#[test]
fn oauth_endpoint_rejects_bad_grants() {
    let fake = FakeGcp::start(Organization::default());
    let url = fake.token_uri();
    let good = json!({
        "grant_type": "refresh_token",
        "client_id": OAUTH_CLIENT_ID,
        "client_secret": OAUTH_CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
    });
    let with = |name: &str, value: &str| {
        let mut body = good.clone();
        body[name] = json!(value);
        body.to_string()
    };
    let json_type = [("Content-Type", "application/json")];
    let cases = [
        (
            with("grant_type", "password"),
            400,
            "unsupported_grant_type",
        ),
        (with("client_secret", "wrong"), 401, "invalid_client"),
        (with("refresh_token", "1//stolen"), 400, "invalid_grant"),
        ("not json".to_string(), 400, "invalid_request"),
    ];
    for (body, status, error) in cases {
        let response = http_request("POST", &url, &json_type, &body);
        assert_eq!(response.status, status, "{body}: {response:?}");
        assert_eq!(response.json()["error"], error, "{body}");
    }
    assert_eq!(http_request("GET", &url, &[], "").status, 405);

    fake.add_fault(Fault::TokenUnavailable { times: 1 });
    let statuses: Vec<u16> = (0..2)
        .map(|_| http_request("POST", &url, &json_type, &good.to_string()).status)
        .collect();
    assert_eq!(statuses, vec![503, 200]);
    assert_eq!(
        fake.issued_tokens().len(),
        1,
        "only the last request got a token"
    );
}

#[test]
fn api_requires_issued_token() {
    let fake = FakeGcp::start(Organization::sample());
    let target = service_accounts_path("idrift-fake-01");

    let missing = http_request("GET", &format!("{}{target}", fake.endpoint), &[], "");
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Bearer realm=\"https://accounts.google.com/\"")
    );
    let error = &missing.json()["error"];
    assert_eq!(error["code"], 401);
    assert_eq!(error["status"], "UNAUTHENTICATED");
    assert_eq!(error["details"][0]["reason"], "CREDENTIALS_MISSING");
    assert_eq!(
        error["details"][0]["metadata"]["service"],
        "iam.googleapis.com"
    );
    assert_eq!(
        error["details"][0]["metadata"]["method"],
        "google.iam.admin.v1.IAM.ListServiceAccounts"
    );

    let unknown = api_get(&fake, &target, "ya29.not-from-the-fake");
    assert_eq!(unknown.status, 401);
    let reason = &unknown.json()["error"]["details"][0]["reason"];
    assert_eq!(reason, "ACCESS_TOKEN_TYPE_UNSUPPORTED");

    let token = fetch_token(&fake);
    assert_eq!(api_get(&fake, &target, &token).status, 200);
    let lowercase_scheme = format!("bearer {token}");
    let url = format!("{}{target}", fake.endpoint);
    let lowercase = http_request("GET", &url, &[("Authorization", &lowercase_scheme)], "");
    assert_eq!(lowercase.status, 200, "the scheme is case-insensitive");

    fake.revoke_tokens();
    let revoked = api_get(&fake, &target, &token);
    assert_eq!(revoked.status, 401);
    let reason = &revoked.json()["error"]["details"][0]["reason"];
    assert_eq!(reason, "ACCESS_TOKEN_EXPIRED");

    fake.set_token_lifetime(0);
    let expired = fetch_token(&fake);
    assert_eq!(api_get(&fake, &target, &expired).status, 401);

    let recorded = fake.requests_for(&target);
    let tokens: Vec<Option<&str>> = recorded.iter().map(|r| r.bearer_token()).collect();
    assert_eq!(
        tokens,
        vec![
            None,
            Some("ya29.not-from-the-fake"),
            Some(token.as_str()),
            Some(token.as_str()),
            Some(token.as_str()),
            Some(expired.as_str()),
        ]
    );
    let statuses: Vec<u16> = recorded.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![401, 401, 200, 200, 401, 401]);
}

#[test]
fn service_accounts_page_by_token() {
    let fake = FakeGcp::start(Organization {
        projects: vec![FakeProject::with_accounts(1, 300)],
    });
    let token = fetch_token(&fake);
    let path = service_accounts_path("idrift-fake-01");
    let pages = all_pages(&fake, &path, Some(100), &token);

    assert_eq!(page_sizes(&pages, "accounts"), vec![100, 100, 100]);
    assert_eq!(field_of(&pages, "accounts", "uniqueId"), account_ids(300));
    assert!(pages[2].get("nextPageToken").is_none(), "{:#}", pages[2]);

    let requests = fake.requests_for(&path);
    assert_eq!(requests.len(), 3);
    for pair in requests.windows(2) {
        assert_eq!(
            pair[1].param("pageToken"),
            pair[0].next_page_token.as_deref()
        );
    }
    let pages_seen: Vec<Option<usize>> = requests.iter().map(|r| r.page).collect();
    assert_eq!(pages_seen, vec![Some(1), Some(2), Some(3)]);
    let counts: Vec<Option<usize>> = requests.iter().map(|r| r.record_count).collect();
    assert_eq!(counts, vec![Some(100), Some(100), Some(100)]);
    let first_token = requests[0].next_page_token.clone().unwrap_or_default();
    assert!(
        first_token.contains(['+', '/', '=']),
        "the token needs escaping: {first_token}"
    );
    assert!(
        !requests[1].url.contains(&first_token),
        "the request escaped the token: {}",
        requests[1].url
    );
}

#[test]
fn page_size_defaults_and_caps() {
    let fake = FakeGcp::start(Organization {
        projects: vec![FakeProject::with_accounts(1, 250)],
    });
    let token = fetch_token(&fake);
    let path = service_accounts_path("idrift-fake-01");

    let default_pages = all_pages(&fake, &path, None, &token);
    assert_eq!(default_pages.len(), 250_usize.div_ceil(DEFAULT_PAGE_SIZE));
    assert_eq!(
        default_pages[0]["accounts"].as_array().map(Vec::len),
        Some(20)
    );
    let zero_pages = all_pages(&fake, &path, Some(0), &token);
    assert_eq!(zero_pages.len(), default_pages.len(), "0 means the default");

    let capped = all_pages(&fake, &path, Some(500), &token);
    assert_eq!(
        page_sizes(&capped, "accounts"),
        vec![MAX_PAGE_SIZE, 100, 50]
    );

    fake.set_page_size(7);
    let small = all_pages(&fake, &path, Some(100), &token);
    assert_eq!(small.len(), 36);
    assert_eq!(field_of(&small, "accounts", "uniqueId"), account_ids(250));

    for size in ["-1", "many"] {
        let response = api_get(&fake, &format!("{path}?pageSize={size}"), &token);
        assert_eq!(response.status, 400, "pageSize={size}");
        assert_eq!(response.json()["error"]["status"], "INVALID_ARGUMENT");
    }
}

#[test]
fn last_page_token_empty_or_omitted() {
    let fake = FakeGcp::start(Organization {
        projects: vec![FakeProject::with_accounts(1, 3), FakeProject::numbered(2)],
    });
    let token = fetch_token(&fake);
    let path = service_accounts_path("idrift-fake-01");

    let omitted = api_get(&fake, &path, &token).json();
    assert!(omitted.get("nextPageToken").is_none(), "{omitted:#}");

    fake.set_last_page_token(LastPageToken::Empty);
    let empty = api_get(&fake, &path, &token).json();
    assert_eq!(empty["nextPageToken"], "");
    assert_eq!(empty["accounts"].as_array().map(Vec::len), Some(3));

    let no_accounts = api_get(&fake, &service_accounts_path("idrift-fake-02"), &token);
    assert_eq!(no_accounts.json(), json!({"nextPageToken": ""}));
    fake.set_last_page_token(LastPageToken::Omitted);
    let no_accounts = api_get(&fake, &service_accounts_path("idrift-fake-02"), &token);
    assert_eq!(
        no_accounts.json(),
        json!({}),
        "accounts is left out when empty"
    );
}

#[test]
fn page_tokens_are_checked() {
    let fake = FakeGcp::start(Organization {
        projects: vec![
            FakeProject::with_accounts(1, 30),
            FakeProject::with_accounts(2, 30),
        ],
    });
    let token = fetch_token(&fake);
    let first = api_get(&fake, &service_accounts_path("idrift-fake-01"), &token).json();
    let page_token = first["nextPageToken"].as_str().expect("page 1 has a token");

    let other_listing = format!(
        "{}?pageToken={}",
        service_accounts_path("idrift-fake-02"),
        encode(page_token)
    );
    let unknown = format!(
        "{}?pageToken=bm90LWEtdG9rZW4",
        service_accounts_path("idrift-fake-01")
    );
    for target in [other_listing, unknown] {
        let response = api_get(&fake, &target, &token);
        assert_eq!(response.status, 400, "{target}");
        assert_eq!(response.json()["error"]["status"], "INVALID_ARGUMENT");
    }
}

#[test]
fn throttle_three_times_then_success() {
    let fake = FakeGcp::start(Organization::sample());
    let token = fetch_token(&fake);
    let path = service_accounts_path("idrift-fake-01");
    fake.add_fault(Fault::Throttle {
        path: path.clone(),
        times: 3,
    });
    fake.add_fault(Fault::Throttle {
        path: iam_policy_path("idrift-fake-01"),
        times: 1,
    });

    for _ in 0..3 {
        let response = api_get(&fake, &path, &token);
        assert_eq!(response.status, 429);
        let error = &response.json()["error"];
        assert_eq!(error["code"], 429);
        assert_eq!(error["status"], "RESOURCE_EXHAUSTED");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("Quota exceeded for quota metric"),
            "{message}"
        );
        let info = &error["details"][0];
        assert_eq!(info["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
        assert_eq!(info["reason"], "RATE_LIMIT_EXCEEDED");
        assert_eq!(info["domain"], "googleapis.com");
        assert_eq!(info["metadata"]["service"], "iam.googleapis.com");
        assert_eq!(
            info["metadata"]["consumer"],
            format!("projects/{METADATA_PROJECT_NUMBER}")
        );
        assert_eq!(
            error["details"][1]["@type"],
            "type.googleapis.com/google.rpc.Help"
        );
        assert_eq!(response.header("retry-after"), None);
    }
    assert_eq!(api_get(&fake, &path, &token).status, 200);

    let throttled = get_policy(&fake, "idrift-fake-01", &token);
    assert_eq!(throttled.status, 429);
    let metadata = &throttled.json()["error"]["details"][0]["metadata"];
    assert_eq!(metadata["service"], "cloudresourcemanager.googleapis.com");
    assert_eq!(metadata["quota_limit_value"], "2400");
    assert_eq!(get_policy(&fake, "idrift-fake-01", &token).status, 200);
}

#[test]
fn unavailable_then_success() {
    let fake = FakeGcp::start(Organization::sample());
    let token = fetch_token(&fake);
    let path = keys_path("idrift-fake-01", &default_compute_email(415_104_041_201));
    fake.add_fault(Fault::Unavailable {
        path: "/v1/projects/idrift-fake-01/serviceAccounts/*".to_string(),
        times: 2,
    });

    for _ in 0..2 {
        let response = api_get(&fake, &path, &token);
        assert_eq!(response.status, 503);
        assert_eq!(
            response.json(),
            json!({"error": {
                "code": 503,
                "message": "The service is currently unavailable.",
                "status": "UNAVAILABLE",
            }})
        );
    }
    assert_eq!(api_get(&fake, &path, &token).status, 200);
    let list = api_get(&fake, &service_accounts_path("idrift-fake-01"), &token);
    assert_eq!(list.status, 200, "the pattern does not match the listing");
}

#[test]
fn permission_denied_on_one_project() {
    let fake = FakeGcp::start(Organization::sample());
    fake.add_fault(Fault::PermissionDenied {
        project_id: "idrift-fake-02".to_string(),
    });
    let token = fetch_token(&fake);
    let compute = default_compute_email(415_104_041_202);

    let denied = [
        api_get(&fake, &service_accounts_path("idrift-fake-02"), &token),
        api_get(&fake, &keys_path("idrift-fake-02", &compute), &token),
        get_policy(&fake, "idrift-fake-02", &token),
    ];
    let permissions = [
        "iam.serviceAccounts.list",
        "iam.serviceAccountKeys.list",
        "resourcemanager.projects.getIamPolicy",
    ];
    for (response, permission) in denied.iter().zip(permissions) {
        assert_eq!(response.status, 403, "{response:?}");
        let error = &response.json()["error"];
        assert_eq!(error["status"], "PERMISSION_DENIED");
        assert_eq!(error["details"][0]["reason"], "IAM_PERMISSION_DENIED");
        assert_eq!(error["details"][0]["metadata"]["permission"], permission);
        assert_eq!(
            error["details"][0]["metadata"]["resource"],
            "projects/idrift-fake-02"
        );
    }

    let allowed = api_get(&fake, &service_accounts_path("idrift-fake-01"), &token);
    assert_eq!(allowed.status, 200);
    assert_eq!(get_policy(&fake, "idrift-fake-01", &token).status, 200);
    let missing = api_get(&fake, &service_accounts_path("no-such-project"), &token);
    assert_eq!(
        missing.status, 403,
        "an unknown project looks like a denied one"
    );
}

#[test]
fn revoked_token_mid_scan() {
    let fake = FakeGcp::start(Organization {
        projects: vec![FakeProject::with_accounts(1, 5)],
    });
    let path = service_accounts_path("idrift-fake-01");
    fake.add_fault(Fault::RevokeToken {
        path: path.clone(),
        page: 2,
    });
    let token = fetch_token(&fake);
    let first = api_get(&fake, &format!("{path}?pageSize=2"), &token).json();
    let page_token = first["nextPageToken"].as_str().expect("page 1 has a token");
    let second = format!("{path}?pageSize=2&pageToken={}", encode(page_token));

    let rejected = api_get(&fake, &second, &token);
    assert_eq!(rejected.status, 401);
    assert_eq!(
        rejected.json()["error"]["details"][0]["reason"],
        "ACCESS_TOKEN_EXPIRED"
    );
    assert_eq!(
        api_get(&fake, &second, &token).status,
        401,
        "the token stays revoked"
    );

    let fresh = fetch_token(&fake);
    assert_ne!(fresh, token);
    let retried = api_get(&fake, &second, &fresh);
    assert_eq!(retried.status, 200, "{retried:?}");
    let pages = [retried.json()];
    assert_eq!(
        field_of(&pages, "accounts", "uniqueId"),
        account_ids(4)[2..]
    );
}

#[test]
fn empty_page_keeps_token() {
    let fake = FakeGcp::start(Organization {
        projects: vec![FakeProject::with_accounts(1, 4)],
    });
    let path = service_accounts_path("idrift-fake-01");
    fake.add_fault(Fault::EmptyPage {
        path: path.clone(),
        page: 2,
    });
    let token = fetch_token(&fake);
    let pages = all_pages(&fake, &path, Some(2), &token);

    assert_eq!(page_sizes(&pages, "accounts"), vec![2, 0, 2]);
    assert!(pages[1].get("accounts").is_none(), "{:#}", pages[1]);
    assert!(pages[1]["nextPageToken"].is_string(), "{:#}", pages[1]);
    assert_eq!(field_of(&pages, "accounts", "uniqueId"), account_ids(4));
}

#[test]
fn repeated_page_token_never_advances() {
    let fake = FakeGcp::start(Organization {
        projects: vec![FakeProject::with_accounts(1, 6)],
    });
    let path = service_accounts_path("idrift-fake-01");
    fake.add_fault(Fault::RepeatedPageToken { path: path.clone() });
    let token = fetch_token(&fake);
    let first = api_get(&fake, &format!("{path}?pageSize=2"), &token).json();
    let page_token = first["nextPageToken"].as_str().expect("page 1 has a token");
    let second_target = format!("{path}?pageSize=2&pageToken={}", encode(page_token));

    for _ in 0..3 {
        let second = api_get(&fake, &second_target, &token).json();
        assert_eq!(second["nextPageToken"].as_str(), Some(page_token));
        let pages = [second];
        assert_eq!(
            field_of(&pages, "accounts", "uniqueId"),
            account_ids(4)[2..]
        );
    }
}

#[test]
fn malformed_page_is_cut_json() {
    let fake = FakeGcp::start(Organization {
        projects: vec![FakeProject::with_accounts(1, 4)],
    });
    let path = service_accounts_path("idrift-fake-01");
    fake.add_fault(Fault::MalformedPage {
        path: path.clone(),
        page: 1,
    });
    let token = fetch_token(&fake);
    let response = api_get(&fake, &path, &token);

    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .unwrap_or_default()
            .starts_with("application/json")
    );
    assert!(
        response.body.starts_with("{\"accounts\":["),
        "{}",
        response.body
    );
    assert!(serde_json::from_str::<Value>(&response.body).is_err());
}

#[test]
fn keys_by_email_or_unique_id() {
    let mut project = FakeProject::sample(1);
    let mut account = project.numbered_account(2);
    account.keys = vec![
        FakeKey::system_managed(21),
        FakeKey::user_managed(22),
        FakeKey {
            disabled: true,
            ..FakeKey::user_managed(23)
        },
    ];
    project.service_accounts.push(account.clone());
    let fake = FakeGcp::start(Organization {
        projects: vec![project],
    });
    let token = fetch_token(&fake);

    let by_email = api_get(&fake, &keys_path("idrift-fake-01", &account.email), &token);
    assert_eq!(by_email.status, 200, "{by_email:?}");
    let keys = by_email.json()["keys"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(keys.len(), 3);
    let name = format!(
        "projects/idrift-fake-01/serviceAccounts/{}/keys/{}",
        account.email,
        key_id(22)
    );
    assert_eq!(keys[1]["name"], name);
    assert_eq!(keys[1]["keyType"], "USER_MANAGED");
    assert_eq!(keys[1]["keyOrigin"], "GOOGLE_PROVIDED");
    assert_eq!(keys[1]["keyAlgorithm"], "KEY_ALG_RSA_2048");
    assert_eq!(keys[1]["validBeforeTime"], KEY_VALID_FOREVER);
    assert!(keys[1].get("disabled").is_none(), "{:#}", keys[1]);
    assert_eq!(keys[0]["keyType"], "SYSTEM_MANAGED");
    assert_eq!(keys[2]["disabled"], true);

    let escaped = keys_path("idrift-fake-01", &account.email.replace('@', "%40"));
    let by_id = keys_path("-", &account.unique_id);
    for target in [escaped, by_id] {
        let response = api_get(&fake, &target, &token);
        assert_eq!(
            response.json()["keys"].as_array().map(Vec::len),
            Some(3),
            "{target}"
        );
    }
    assert_eq!(
        fake.requests_for(&keys_path("idrift-fake-01", &account.email))
            .len(),
        2
    );

    let filter = format!(
        "{}?keyTypes=USER_MANAGED",
        keys_path("idrift-fake-01", &account.email)
    );
    let user_keys = api_get(&fake, &filter, &token).json();
    assert_eq!(user_keys["keys"].as_array().map(Vec::len), Some(2));

    let keyless = account_email(1);
    let none = api_get(&fake, &keys_path("idrift-fake-01", &keyless), &token);
    assert_eq!(none.json(), json!({}), "keys is left out when empty");
    let gone = api_get(
        &fake,
        &keys_path("idrift-fake-01", "gone@x.iam.gserviceaccount.com"),
        &token,
    );
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["error"]["status"], "NOT_FOUND");
}

/// Returns the email of user-created account `number` of project 1.
fn account_email(number: u64) -> String {
    FakeProject::numbered(1).numbered_account(number).email
}

#[test]
fn sample_project_records_look_real() {
    let fake = FakeGcp::start(Organization::sample());
    let token = fetch_token(&fake);
    let accounts = api_get(&fake, &service_accounts_path("idrift-fake-01"), &token).json();
    let accounts = accounts["accounts"].as_array().cloned().unwrap_or_default();

    assert_eq!(accounts.len(), 2);
    let compute = &accounts[0];
    assert_eq!(
        compute["email"],
        "415104041201-compute@developer.gserviceaccount.com"
    );
    assert_eq!(
        compute["displayName"],
        "Compute Engine default service account"
    );
    assert_eq!(
        compute["name"],
        "projects/idrift-fake-01/serviceAccounts/415104041201-compute@developer.gserviceaccount.com"
    );
    assert_eq!(compute["projectId"], "idrift-fake-01");
    for account in &accounts {
        let id = account["uniqueId"].as_str().unwrap_or_default();
        assert_eq!(id.len(), 21, "{account:#}");
        assert!(id.bytes().all(|byte| byte.is_ascii_digit()), "{id}");
        assert_eq!(account["oauth2ClientId"], account["uniqueId"]);
        assert!(account["etag"].is_string(), "{account:#}");
        assert!(account.get("disabled").is_none(), "{account:#}");
    }
    assert_eq!(
        accounts[1]["email"],
        "sa-001@idrift-fake-01.iam.gserviceaccount.com"
    );
    assert!(accounts[1]["description"].is_string());

    let keys = api_get(
        &fake,
        &keys_path("idrift-fake-01", &default_compute_email(415_104_041_201)),
        &token,
    );
    let key_name = keys.json()["keys"][0]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let key = key_name.rsplit('/').next().unwrap_or_default();
    assert_eq!(key.len(), 40);
    assert!(key.bytes().all(|byte| byte.is_ascii_hexdigit()), "{key}");

    let policy = get_policy(&fake, "idrift-fake-01", &token).json();
    assert_eq!(policy["version"], 1);
    assert!(
        policy["etag"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Bw"),
        "{policy:#}"
    );
    let roles: Vec<&str> = policy["bindings"]
        .as_array()
        .map(|bindings| bindings.iter().filter_map(|b| b["role"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        roles,
        vec!["roles/compute.serviceAgent", "roles/editor", "roles/owner"]
    );
    assert_eq!(
        policy["bindings"][0]["members"][0],
        "serviceAccount:service-415104041201@compute-system.iam.gserviceaccount.com"
    );
}

#[test]
fn scenario_changes_show_in_listings() {
    let fake = FakeGcp::start(Organization::sample());
    let token = fetch_token(&fake);
    let baseline_policy = get_policy(&fake, "idrift-fake-01", &token).json();
    let sa_001 = account_email(1);
    let old_id = unique_id(415_104_041_201, 1);

    fake.edit_organization(|organization| {
        let project = organization.project_mut("idrift-fake-01");
        let mut new_account = project.numbered_account(7);
        new_account.keys.push(FakeKey::user_managed(70));
        project.service_accounts.push(new_account);
        let compute = default_compute_email(project.project_number);
        project
            .account_mut(&compute)
            .keys
            .push(FakeKey::user_managed(71));
        project.account_mut(&compute).keys[0] = FakeKey::system_managed(72);
        project.recreate_account(&sa_001, 500);
        project.grant("roles/owner", "user:mallory@evil.example");
        let agent = project.service_agent_member("pubsub");
        project.grant("roles/pubsub.serviceAgent", &agent);
    });

    let accounts = api_get(&fake, &service_accounts_path("idrift-fake-01"), &token).json();
    let emails = field_of(std::slice::from_ref(&accounts), "accounts", "email");
    assert_eq!(emails.len(), 3);
    assert_eq!(emails[2], "sa-007@idrift-fake-01.iam.gserviceaccount.com");
    let ids = field_of(&[accounts], "accounts", "uniqueId");
    assert_eq!(emails[1], sa_001, "the re-created account keeps its email");
    assert_ne!(ids[1], old_id);
    assert_eq!(ids[1], unique_id(415_104_041_201, 500));

    let compute_keys = api_get(
        &fake,
        &keys_path("idrift-fake-01", &default_compute_email(415_104_041_201)),
        &token,
    )
    .json();
    let key_types = field_of(std::slice::from_ref(&compute_keys), "keys", "keyType");
    assert_eq!(key_types, vec!["SYSTEM_MANAGED", "USER_MANAGED"]);
    let names = field_of(&[compute_keys], "keys", "name");
    assert!(
        names[0].ends_with(&key_id(72)),
        "the system key rotated: {names:?}"
    );

    let policy = get_policy(&fake, "idrift-fake-01", &token).json();
    assert_ne!(policy["etag"], baseline_policy["etag"]);
    let owners = &policy["bindings"][2];
    assert_eq!(owners["role"], "roles/owner");
    assert_eq!(owners["members"][1], "user:mallory@evil.example");
    assert_eq!(policy["bindings"][3]["role"], "roles/pubsub.serviceAgent");
    assert_eq!(
        policy["bindings"][3]["members"][0],
        "serviceAccount:service-415104041201@gcp-sa-pubsub.iam.gserviceaccount.com"
    );
}

#[test]
fn iam_policy_versions_and_conditions() {
    let mut project = FakeProject::sample(1);
    project.policy.bindings.push(
        FakeBinding::new("roles/owner", &["user:contractor@example.com"]).with_condition(
            "until March",
            "request.time < timestamp(\"2025-03-01T00:00:00Z\")",
        ),
    );
    let fake = FakeGcp::start(Organization {
        projects: vec![project],
    });
    let token = fetch_token(&fake);
    let path = iam_policy_path("idrift-fake-01");

    let version_3 = get_policy(&fake, "idrift-fake-01", &token).json();
    assert_eq!(version_3["version"], 3);
    assert_eq!(
        version_3["bindings"][3]["condition"]["title"],
        "until March"
    );
    assert_eq!(version_3["bindings"][3]["role"], "roles/owner");

    let version_1 = api_post(&fake, &path, &token, &json!({})).json();
    assert_eq!(version_1["version"], 1);
    let role = version_1["bindings"][3]["role"]
        .as_str()
        .unwrap_or_default();
    assert!(role.starts_with("roles/owner_withcond_"), "{role}");
    assert!(version_1["bindings"][3].get("condition").is_none());

    let recorded = fake.requests_for(&path);
    assert_eq!(
        recorded[0].body_json(),
        json!({"options": {"requestedPolicyVersion": 3}})
    );
    assert_eq!(recorded[0].method, "POST");

    let bad_version = json!({"options": {"requestedPolicyVersion": 2}});
    assert_eq!(api_post(&fake, &path, &token, &bad_version).status, 400);
    let authorization = format!("Bearer {token}");
    let url = format!("{}{path}", fake.endpoint);
    let headers = [("Authorization", authorization.as_str())];
    assert_eq!(http_request("POST", &url, &headers, "{oops").status, 400);
    assert_eq!(
        api_get(&fake, &path, &token).status,
        404,
        "getIamPolicy is a POST"
    );
}

#[test]
fn projects_search_filters_and_pages() {
    let mut organization = Organization::sample();
    let mut deleted = FakeProject::numbered(3);
    deleted.state = "DELETE_REQUESTED".to_string();
    organization.projects.push(deleted);
    let mut in_folder = FakeProject::numbered(4).with_field("labels", json!({"env": "prod"}));
    in_folder.parent = "folders/876".to_string();
    organization.projects.push(in_folder);
    let fake = FakeGcp::start(organization);
    let token = fetch_token(&fake);

    let all = all_pages(&fake, PROJECTS_SEARCH_PATH, Some(3), &token);
    assert_eq!(page_sizes(&all, "projects"), vec![3, 1]);
    let ids = field_of(&all, "projects", "projectId");
    assert_eq!(
        ids,
        [
            "idrift-fake-01",
            "idrift-fake-02",
            "idrift-fake-03",
            "idrift-fake-04"
        ]
    );
    let first = &all[0]["projects"][0];
    assert_eq!(first["name"], "projects/415104041201");
    assert_eq!(first["parent"], ORGANIZATION);
    assert_eq!(first["state"], "ACTIVE");
    assert!(first["createTime"].is_string());
    assert!(first.get("deleteTime").is_none());
    assert!(all[0]["projects"][2]["deleteTime"].is_string());
    assert_eq!(all[1]["projects"][0]["labels"]["env"], "prod");

    let query = encode(&format!("parent:{ORGANIZATION} state:ACTIVE"));
    let active = api_get(
        &fake,
        &format!("{PROJECTS_SEARCH_PATH}?query={query}"),
        &token,
    )
    .json();
    assert_eq!(
        field_of(&[active], "projects", "projectId"),
        ["idrift-fake-01", "idrift-fake-02"]
    );
    let unsupported = api_get(
        &fake,
        &format!("{PROJECTS_SEARCH_PATH}?query=labels.env%3Aprod"),
        &token,
    );
    assert_eq!(unsupported.status, 400);
}

#[test]
fn generate_access_token_impersonates() {
    let fake = FakeGcp::start(Organization::sample());
    let caller = fetch_token(&fake);
    let target = FakeProject::numbered(1).numbered_account(1).email;
    let path = generate_access_token_path(&target);
    let body = json!({"scope": [READ_ONLY_SCOPE], "lifetime": "600s"});

    let response = api_post(&fake, &path, &caller, &body);
    assert_eq!(response.status, 200, "{response:?}");
    let granted = response.json();
    let token = granted["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(token.starts_with(TOKEN_PREFIX), "{token}");
    let expire_time = granted["expireTime"].as_str().unwrap_or_default();
    assert_eq!(expire_time.len(), 20, "{expire_time}");
    assert!(expire_time.ends_with('Z'), "{expire_time}");
    assert_eq!(expire_time.as_bytes()[10], b'T', "{expire_time}");
    let issued = fake.issued_tokens();
    assert_eq!(issued[1].source, TokenSource::Impersonation);
    assert_eq!(issued[1].principal, target);
    assert_eq!(issued[1].scopes, vec![READ_ONLY_SCOPE.to_string()]);
    let listed = api_get(&fake, &service_accounts_path("idrift-fake-01"), &token);
    assert_eq!(listed.status, 200);

    let unknown = generate_access_token_path("nobody@idrift-fake-01.iam.gserviceaccount.com");
    assert_eq!(api_post(&fake, &unknown, &caller, &body).status, 404);
    assert_eq!(
        api_post(&fake, &path, &caller, &json!({"scope": []})).status,
        400
    );
    assert_eq!(api_post(&fake, &path, "ya29.forged", &body).status, 401);
}

#[test]
fn credential_files_point_at_fake() {
    let fake = FakeGcp::start(Organization::default());
    let user = fake.authorized_user_json();
    assert_eq!(user["type"], "authorized_user");
    assert_eq!(user["token_uri"], format!("{}/token", fake.endpoint));

    let email = "sa-001@idrift-fake-01.iam.gserviceaccount.com";
    let impersonated = fake.impersonated_credentials_json(email);
    assert_eq!(impersonated["type"], "impersonated_service_account");
    assert_eq!(
        impersonated["service_account_impersonation_url"],
        format!(
            "{}/v1/projects/-/serviceAccounts/{email}:generateAccessToken",
            fake.endpoint
        )
    );
    assert_eq!(impersonated["source_credentials"], user);
}

// The tests below run google-cloud-auth in a child process. Each parent test
// starts the fake, runs one `child_*` test with a sealed environment, reads
// the JSON line the child prints and checks it and the fake's records.

/// The variable that gives a child the fake's endpoint; without it a child test does nothing.
const CHILD_ENDPOINT: &str = "IDRIFT_GCP_CHILD_ENDPOINT";
/// The start of the line on which a child prints its results.
const CHILD_RESULT: &str = "IDRIFT_CHILD_RESULT ";

/// Runs `test` of this binary, by itself, with an environment of only
/// `env`, and returns the JSON its result line carries.
fn run_child(test: &str, env: &[(&str, String)]) -> Value {
    let binary = std::env::current_exe().expect("the test binary's path");
    let output = Command::new(binary)
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
        .output()
        .expect("run the test binary as a child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{test} failed:\n{stdout}\n{stderr}"
    );
    // libtest prints the test's name on the same line, before the result.
    let line = stdout
        .lines()
        .find_map(|line| Some(line.split_once(CHILD_RESULT)?.1))
        .unwrap_or_else(|| panic!("{test} printed no result:\n{stdout}\n{stderr}"));
    serde_json::from_str(line).expect("the result line is JSON")
}

/// Returns a sealed environment for a child: a temporary `HOME` without
/// gcloud files, `GCE_METADATA_HOST` at the fake, and the fake's endpoint.
fn child_env(fake: &FakeGcp, home: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("HOME", home.display().to_string()),
        ("GCE_METADATA_HOST", fake.metadata_host()),
        (CHILD_ENDPOINT, fake.endpoint.clone()),
    ]
}

/// Writes a credential file into `folder` and returns its path.
fn write_credentials(folder: &Path, json: &Value) -> String {
    let path = folder.join("credentials.json");
    std::fs::write(&path, json.to_string()).expect("write the credential file");
    path.display().to_string()
}

#[test]
fn google_auth_adc_uses_fake_metadata_server() {
    let fake = FakeGcp::start(Organization::sample());
    let home = tempfile::tempdir().expect("create a temporary HOME");
    // GOOGLE_APPLICATION_CREDENTIALS stays unset, because when it is set,
    // ADC reads that file and never calls the metadata server.
    let result = run_child("child_adc_token", &child_env(&fake, home.path()));

    let issued = fake.issued_tokens();
    assert_eq!(
        issued.len(),
        1,
        "one token, then the cached one: {issued:?}"
    );
    assert_eq!(issued[0].source, TokenSource::Metadata);
    assert_eq!(issued[0].scopes, vec![READ_ONLY_SCOPE.to_string()]);
    assert_eq!(result["token"], issued[0].token);
    assert_eq!(
        result["authorization"],
        format!("Bearer {}", issued[0].token)
    );
    assert_eq!(result["api_status"], 200);
    assert_eq!(result["universe_domain"], "googleapis.com");

    let token_requests = fake.requests_for(METADATA_TOKEN_PATH);
    assert_eq!(token_requests.len(), 1);
    assert_eq!(token_requests[0].header("metadata-flavor"), Some("Google"));
    assert_eq!(token_requests[0].param("scopes"), Some(READ_ONLY_SCOPE));
    assert_eq!(fake.requests_for(METADATA_UNIVERSE_DOMAIN_PATH).len(), 1);
    assert!(fake.requests_for(OAUTH_TOKEN_PATH).is_empty());
    let listed = fake.requests_for(&service_accounts_path("idrift-fake-01"));
    assert_eq!(listed[0].bearer_token(), Some(issued[0].token.as_str()));
}

#[test]
fn google_auth_authorized_user_uses_fake_token_uri() {
    let fake = FakeGcp::start(Organization::sample());
    let home = tempfile::tempdir().expect("create a temporary HOME");
    let file = write_credentials(home.path(), &fake.authorized_user_json());
    let mut env = child_env(&fake, home.path());
    env.push(("GOOGLE_APPLICATION_CREDENTIALS", file));
    let result = run_child("child_adc_token", &env);

    let issued = fake.issued_tokens();
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(issued[0].source, TokenSource::RefreshToken);
    assert_eq!(result["token"], issued[0].token);
    assert_eq!(result["api_status"], 200);
    assert_eq!(result["universe_domain"], "googleapis.com");

    let token_requests = fake.requests_for(OAUTH_TOKEN_PATH);
    assert_eq!(token_requests.len(), 1);
    let request = &token_requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.body_json(),
        json!({
            "grant_type": "refresh_token",
            "client_id": OAUTH_CLIENT_ID,
            "client_secret": OAUTH_CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
            "scope": READ_ONLY_SCOPE,
        })
    );
    let metadata: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.is_metadata_request())
        .collect();
    assert!(metadata.is_empty(), "{metadata:?}");
}

#[test]
fn google_auth_impersonates_through_fake() {
    let fake = FakeGcp::start(Organization::sample());
    let home = tempfile::tempdir().expect("create a temporary HOME");
    let target = FakeProject::numbered(1).numbered_account(1).email;
    let file = write_credentials(home.path(), &fake.impersonated_credentials_json(&target));
    let mut env = child_env(&fake, home.path());
    env.push(("GOOGLE_APPLICATION_CREDENTIALS", file));
    let result = run_child("child_adc_token", &env);

    let issued = fake.issued_tokens();
    let sources: Vec<TokenSource> = issued.iter().map(|token| token.source).collect();
    assert_eq!(
        sources,
        vec![TokenSource::RefreshToken, TokenSource::Impersonation]
    );
    assert_eq!(issued[1].principal, target);
    assert_eq!(issued[1].scopes, vec![READ_ONLY_SCOPE.to_string()]);
    assert_eq!(result["token"], issued[1].token);
    assert_eq!(result["api_status"], 200);

    let generate = fake.requests_for(&generate_access_token_path(&target));
    assert_eq!(generate.len(), 1);
    assert_eq!(generate[0].bearer_token(), Some(issued[0].token.as_str()));
    let body = generate[0].body_json();
    assert_eq!(body["scope"], json!([READ_ONLY_SCOPE]));
    assert_eq!(body["lifetime"], "3600s");
    assert_eq!(
        fake.requests_for(OAUTH_TOKEN_PATH)[0]
            .body_json()
            .get("scope"),
        None,
        "the source credential asks for no scope"
    );
}

#[test]
fn google_auth_metadata_failure_is_quick() {
    let fake = FakeGcp::start(Organization::default());
    fake.add_fault(Fault::TokenUnavailable { times: 100 });
    let home = tempfile::tempdir().expect("create a temporary HOME");
    let failing = run_child("child_adc_failure", &child_env(&fake, home.path()));

    assert_eq!(failing["transient"], true, "{failing:#}");
    let message = failing["error"].as_str().unwrap_or_default();
    assert!(message.contains("transient errors"), "{message}");
    let causes = failing["causes"].to_string();
    assert!(causes.contains("failed to fetch token"), "{causes}");
    assert!(causes.contains("[503]"), "{causes}");
    assert!(
        failing["elapsed_ms"].as_u64().unwrap_or(u64::MAX) < 5_000,
        "{failing:#}"
    );
    assert_eq!(fake.requests_for(METADATA_TOKEN_PATH).len(), 1, "no retry");

    let closed_port = common::free_port();
    let mut env = child_env(&fake, home.path());
    env[1].1 = format!("127.0.0.1:{closed_port}");
    let refused = run_child("child_adc_failure", &env);
    assert_eq!(refused["transient"], true, "{refused:#}");
    let causes = refused["causes"].to_string();
    assert!(causes.contains("Connection refused"), "{causes}");
    assert!(
        refused["elapsed_ms"].as_u64().unwrap_or(u64::MAX) < 5_000,
        "{refused:#}"
    );
}

#[test]
fn google_auth_keeps_revoked_token_until_rebuilt() {
    let fake = FakeGcp::start(Organization::sample());
    fake.add_fault(Fault::RevokeToken {
        path: service_accounts_path("idrift-fake-01"),
        page: 1,
    });
    let home = tempfile::tempdir().expect("create a temporary HOME");
    let result = run_child("child_revoked_token", &child_env(&fake, home.path()));

    assert_eq!(result["first_status"], 401);
    assert_eq!(result["cached_token_unchanged"], true, "{result:#}");
    assert_eq!(result["cached_status"], 401);
    assert_eq!(result["rebuilt_token_differs"], true, "{result:#}");
    assert_eq!(result["rebuilt_status"], 200);
    assert_eq!(fake.requests_for(METADATA_TOKEN_PATH).len(), 2);
}

/// Reads the fake's endpoint in a child, or returns `None` when the test
/// runs without a parent.
fn child_endpoint() -> Option<String> {
    let endpoint = std::env::var(CHILD_ENDPOINT).ok();
    if endpoint.is_none() {
        eprintln!(
            "{CHILD_ENDPOINT} is not set: this test runs only as a child of a google_auth_* test"
        );
    }
    endpoint
}

/// Builds ADC with the read-only scope, as the collector will.
fn build_adc() -> google_cloud_auth::credentials::AccessTokenCredentials {
    google_cloud_auth::credentials::Builder::default()
        .with_scopes([READ_ONLY_SCOPE])
        .build_access_token_credentials()
        .expect("build Application Default Credentials")
}

/// Returns the `Authorization` header that credentials build.
async fn authorization_header(
    credentials: &google_cloud_auth::credentials::AccessTokenCredentials,
) -> String {
    use google_cloud_auth::credentials::{CacheableResource, CredentialsProvider};
    let headers = credentials
        .headers(http::Extensions::new())
        .await
        .expect("build the auth headers");
    let CacheableResource::New { data, .. } = headers else {
        panic!("headers without an entity tag are always new");
    };
    let value = data
        .get(http::header::AUTHORIZATION)
        .expect("an Authorization header");
    value.to_str().expect("the header is text").to_string()
}

/// Lists project 1's service accounts with an `Authorization` header, and returns the status.
async fn list_accounts(endpoint: &str, authorization: &str) -> u16 {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("build an HTTP client");
    let url = format!("{endpoint}{}", service_accounts_path("idrift-fake-01"));
    let response = client
        .get(url)
        .header("Authorization", authorization)
        .send()
        .await
        .expect("reach the fake");
    response.status().as_u16()
}

fn print_result(result: &Value) {
    println!("{CHILD_RESULT}{result}");
}

#[tokio::test]
#[ignore = "runs only as a child of google_auth_* tests, which set its environment"]
async fn child_adc_token() {
    let Some(endpoint) = child_endpoint() else {
        return;
    };
    let credentials = build_adc();
    let token = credentials.access_token().await.expect("get a token").token;
    let authorization = authorization_header(&credentials).await;
    let api_status = list_accounts(&endpoint, &authorization).await;

    use google_cloud_auth::credentials::CredentialsProvider;
    let universe_domain = credentials.universe_domain().await;
    print_result(&json!({
        "token": token,
        "authorization": authorization,
        "api_status": api_status,
        "universe_domain": universe_domain,
    }));
}

#[tokio::test]
#[ignore = "runs only as a child of google_auth_* tests, which set its environment"]
async fn child_adc_failure() {
    if child_endpoint().is_none() {
        return;
    }
    let started = Instant::now();
    let credentials = build_adc();
    let error = credentials
        .access_token()
        .await
        .expect_err("the metadata server fails");
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    print_result(&json!({
        "error": error.to_string(),
        "causes": causes,
        "transient": error.is_transient(),
        "elapsed_ms": started.elapsed().as_millis() as u64,
    }));
}

#[tokio::test]
#[ignore = "runs only as a child of google_auth_* tests, which set its environment"]
async fn child_revoked_token() {
    let Some(endpoint) = child_endpoint() else {
        return;
    };
    let credentials = build_adc();
    let first = authorization_header(&credentials).await;
    let first_status = list_accounts(&endpoint, &first).await;

    let cached = authorization_header(&credentials).await;
    let cached_status = list_accounts(&endpoint, &cached).await;

    let rebuilt = authorization_header(&build_adc()).await;
    let rebuilt_status = list_accounts(&endpoint, &rebuilt).await;
    print_result(&json!({
        "first_status": first_status,
        "cached_token_unchanged": cached == first,
        "cached_status": cached_status,
        "rebuilt_token_differs": rebuilt != first,
        "rebuilt_status": rebuilt_status,
    }));
}

/// Builds sample project 1 with pools `pool-1` to `pool-3` and a deleted
/// `gone`, and in `pool-1` providers `p-1` to `p-5` and a deleted `p-old`.
fn federated_organization() -> Organization {
    let mut organization = Organization::sample();
    let project = &mut organization.projects[0];
    for number in 1..=3 {
        project.pools.push(FakePool::new(&format!("pool-{number}")));
    }
    let mut gone = FakePool::new("gone");
    gone.state = "DELETED".to_string();
    project.pools.push(gone);
    let providers = &mut project.pools[0].providers;
    for number in 1..=5 {
        providers.push(FakeProvider::new(
            &format!("p-{number}"),
            FakeIssuer::github(),
        ));
    }
    let mut old = FakeProvider::new(
        "p-old",
        FakeIssuer::Aws {
            account_id: "999988887777".to_string(),
        },
    );
    old.state = "DELETED".to_string();
    providers.push(old);
    organization
}

#[test]
fn pools_and_providers_page_and_hide_deleted() {
    let fake = FakeGcp::start(federated_organization());
    let token = fetch_token(&fake);
    let project = "idrift-fake-01";

    let pages = all_pages(&fake, &pools_path(project), Some(2), &token);
    assert_eq!(page_sizes(&pages, "workloadIdentityPools"), vec![2, 1]);
    let names = field_of(&pages, "workloadIdentityPools", "name");
    assert_eq!(
        names[0], "projects/415104041201/locations/global/workloadIdentityPools/pool-1",
        "names carry the project number"
    );
    let with_deleted = all_pages(
        &fake,
        &format!("{}?showDeleted=true", pools_path(project)),
        Some(2),
        &token,
    );
    assert_eq!(
        page_sizes(&with_deleted, "workloadIdentityPools"),
        vec![2, 2]
    );
    let states = field_of(&with_deleted, "workloadIdentityPools", "state");
    assert_eq!(states[3], "DELETED");

    let target = format!("{}?showDeleted=true", providers_path(project, "pool-1"));
    let providers = all_pages(&fake, &target, Some(4), &token);
    assert_eq!(
        page_sizes(&providers, "workloadIdentityPoolProviders"),
        vec![4, 2]
    );
    let first = &providers[0]["workloadIdentityPoolProviders"][0];
    assert_eq!(
        first["oidc"]["issuerUri"],
        "https://token.actions.githubusercontent.com"
    );
    assert_eq!(first["attributeMapping"]["google.subject"], "assertion.sub");
    assert!(first.get("disabled").is_none(), "false is left out");
    let old = &providers[1]["workloadIdentityPoolProviders"][1];
    assert_eq!(old["aws"]["accountId"], "999988887777");
    assert_eq!(old["state"], "DELETED");

    let empty = api_get(&fake, &providers_path(project, "pool-2"), &token);
    assert_eq!(empty.status, 200);
    assert_eq!(empty.json(), json!({}), "an empty list is left out");
    let missing = api_get(&fake, &providers_path(project, "no-such-pool"), &token);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["status"], "NOT_FOUND");
}

#[test]
fn account_policies_and_their_faults() {
    let mut organization = Organization::sample();
    let project = &mut organization.projects[0];
    let email = format!("sa-001@{}.iam.gserviceaccount.com", project.project_id);
    let unique = project.account_mut(&email).unique_id.clone();
    project.account_mut(&email).grant(
        "roles/iam.serviceAccountTokenCreator",
        "user:eve@example.com",
    );
    let compute = default_compute_email(project.project_number);
    let fake = FakeGcp::start(organization);
    let token = fetch_token(&fake);
    let body = json!({"options": {"requestedPolicyVersion": 3}});

    for account in [email.as_str(), unique.as_str()] {
        let policy = api_post(
            &fake,
            &account_policy_path("idrift-fake-01", account),
            &token,
            &body,
        );
        assert_eq!(policy.status, 200, "{account}");
        let bindings = &policy.json()["bindings"];
        assert_eq!(bindings[0]["role"], "roles/iam.serviceAccountTokenCreator");
        assert_eq!(bindings[0]["members"], json!(["user:eve@example.com"]));
    }
    let empty = api_post(
        &fake,
        &account_policy_path("idrift-fake-01", &compute),
        &token,
        &body,
    );
    assert_eq!(empty.json(), json!({"etag": EMPTY_POLICY_ETAG}));
    let get = api_get(
        &fake,
        &account_policy_path("idrift-fake-01", &compute),
        &token,
    );
    assert_eq!(get.status, 404, "getIamPolicy is a POST");

    fake.add_fault(Fault::Forbidden {
        path: account_policy_path("idrift-fake-01", &email),
    });
    fake.add_fault(Fault::Throttle {
        path: pools_path("idrift-fake-01"),
        times: 1,
    });
    let denied = api_post(
        &fake,
        &account_policy_path("idrift-fake-01", &email),
        &token,
        &body,
    );
    assert_eq!(denied.status, 403);
    let error = &denied.json()["error"];
    assert_eq!(error["status"], "PERMISSION_DENIED");
    assert_eq!(error["details"][0]["reason"], "IAM_PERMISSION_DENIED");
    assert_eq!(
        error["details"][0]["metadata"]["permission"],
        "iam.serviceAccounts.getIamPolicy"
    );
    assert_eq!(
        error["details"][0]["metadata"]["resource"],
        format!("projects/idrift-fake-01/serviceAccounts/{email}")
    );
    let other = api_post(
        &fake,
        &account_policy_path("idrift-fake-01", &compute),
        &token,
        &body,
    );
    assert_eq!(other.status, 200, "only the one path is denied");

    let throttled = api_get(&fake, &pools_path("idrift-fake-01"), &token);
    assert_eq!(throttled.status, 429);
    let info = &throttled.json()["error"]["details"][0];
    assert_eq!(info["reason"], "RATE_LIMIT_EXCEEDED");
    assert_eq!(info["metadata"]["service"], "iam.googleapis.com");
    assert_eq!(
        api_get(&fake, &pools_path("idrift-fake-01"), &token).status,
        200
    );
}
