//! Entra ID through Microsoft Graph. The first tests check the fake Graph
//! and managed identity token endpoint with plain HTTP/1.1 requests over
//! `std::net::TcpStream`. The rest run `idrift scan` of one tenant through
//! the fake.
//!
//! The scans run the real binary with a sealed environment: its only Azure
//! credential is azure_identity's managed identity credential, which the
//! `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` variables point at the fake.
//! Each test checks the snapshot, the JSON report, the exit code and the
//! requests the fake received.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use common::fake_arm::{
    ArmFault, CONTRIBUTOR, FakeIdentityCredential, FakeRbacAssignment, FakeUserAssignedIdentity,
    OWNER, READER, management_group_scope, subscription_scope,
};
use common::fake_graph::{
    APPLICATIONS_PATH, EXPANDED_OWNERS_LIMIT, Editable, FakeApplication, FakeFederatedCredential,
    FakeGraph, FakeGroup, FakeKeyCredential, FakePasswordCredential, FakeRoleAssignment,
    FakeServicePrincipal, FakeUser, Fault, GLOBAL_ADMINISTRATOR, IDENTITY_HEADER, MAX_PAGE_SIZE,
    MICROSOFT_TENANT_ID, ROLE_ASSIGNMENTS_PATH, RecordedRequest, SERVICE_PRINCIPALS_PATH,
    SUBSCRIPTION_ID, TENANT_ID, TOKEN_PATH, TOKEN_PREFIX, Tenant, USERS_PATH,
    federated_credentials_path, group_members_path, group_path, guid, id_kind, odd_tenant,
    owners_path,
};

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

/// Sends `GET url` with extra headers over a new connection and reads the
/// whole response, which the fake ends by closing the connection.
fn http_get(url: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{url} is not an http:// URL"));
    let (authority, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = TcpStream::connect(authority).expect("connect to the fake");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set a read timeout");

    let mut request = format!("GET {target} HTTP/1.1\r\nHost: {authority}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
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

/// Gets a token from the fake as azure_identity's App Service source does.
fn fetch_token(fake: &FakeGraph) -> String {
    let url = format!(
        "{}?api-version=2019-08-01&resource=https%3A%2F%2Fgraph.microsoft.com",
        fake.token_url()
    );
    let response = http_get(
        &url,
        &[("X-IDENTITY-HEADER", IDENTITY_HEADER), ("metadata", "true")],
    );
    assert_eq!(response.status, 200, "{response:?}");
    let body = response.json();
    body["access_token"]
        .as_str()
        .expect("access_token is a string")
        .to_string()
}

/// Gets one Graph URL with a bearer token.
fn graph_get(url: &str, token: &str) -> HttpResponse {
    let authorization = format!("Bearer {token}");
    http_get(url, &[("Authorization", authorization.as_str())])
}

/// Follows `@odata.nextLink` from a first URL, and returns every page's body.
fn all_pages(first_url: &str, token: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut url = first_url.to_string();
    loop {
        let response = graph_get(&url, token);
        assert_eq!(response.status, 200, "{url}: {response:?}");
        let body = response.json();
        let next = body["@odata.nextLink"].as_str().map(str::to_string);
        pages.push(body);
        match next {
            Some(link) => url = link,
            None => return pages,
        }
        assert!(pages.len() < 100, "the listing did not end");
    }
}

/// Returns the ids in the `value` of some pages, in order.
fn ids_of(pages: &[Value]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|page| page["value"].as_array().cloned().unwrap_or_default())
        .map(|record| record["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn user_ids(numbers: std::ops::RangeInclusive<usize>) -> Vec<String> {
    numbers.map(|number| guid(id_kind::USER, number)).collect()
}

#[test]
fn token_endpoint_issues_tokens() {
    let fake = FakeGraph::start(Tenant::default());
    let url = format!(
        "{}?api-version=2019-08-01&resource=https%3A%2F%2Fgraph.microsoft.com",
        fake.token_url()
    );
    let response = http_get(
        &url,
        &[("X-IDENTITY-HEADER", IDENTITY_HEADER), ("metadata", "true")],
    );

    assert_eq!(response.status, 200, "{response:?}");
    let body = response.json();
    assert_eq!(body["access_token"], format!("{TOKEN_PREFIX}1"));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["resource"], "https://graph.microsoft.com");
    let expires_on: u64 = body["expires_on"]
        .as_str()
        .expect("expires_on is a string")
        .parse()
        .expect("expires_on is Unix seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    assert!(
        (now + 3500..=now + 3700).contains(&expires_on),
        "expires_on {expires_on}, now {now}"
    );

    let requests = fake.token_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].param("resource"),
        Some("https://graph.microsoft.com")
    );
    assert_eq!(requests[0].header("metadata"), Some("true"));
    assert_eq!(fake.issued_tokens(), vec![format!("{TOKEN_PREFIX}1")]);
    let env = fake.identity_env();
    assert_eq!(
        env[0],
        (
            "IDENTITY_ENDPOINT",
            format!("{}{TOKEN_PATH}", fake.endpoint)
        )
    );
    assert_eq!(env[1], ("IDENTITY_HEADER", IDENTITY_HEADER.to_string()));
}

#[test]
fn token_endpoint_rejects_bad_requests() {
    let fake = FakeGraph::start(Tenant::default());
    let good_query = "api-version=2019-08-01&resource=https%3A%2F%2Fgraph.microsoft.com";
    let cases = [
        (good_query, Some("wrong-secret"), 401),
        (good_query, None, 401),
        (
            "api-version=2017-09-01&resource=x",
            Some(IDENTITY_HEADER),
            400,
        ),
        ("api-version=2019-08-01", Some(IDENTITY_HEADER), 400),
    ];
    for (query, header, expected) in cases {
        let url = format!("{}?{query}", fake.token_url());
        let headers: Vec<(&str, &str)> = header
            .map(|value| ("X-IDENTITY-HEADER", value))
            .into_iter()
            .collect();
        let response = http_get(&url, &headers);
        assert_eq!(
            response.status, expected,
            "{query} {header:?}: {response:?}"
        );
        assert!(!response.body.contains(TOKEN_PREFIX), "{response:?}");
    }

    fake.add_fault(Fault::TokenUnavailable { times: 1 });
    let url = format!("{}?{good_query}", fake.token_url());
    let statuses: Vec<u16> = (0..2)
        .map(|_| http_get(&url, &[("X-IDENTITY-HEADER", IDENTITY_HEADER)]).status)
        .collect();
    assert_eq!(statuses, vec![500, 200]);
    assert_eq!(
        fake.issued_tokens().len(),
        1,
        "only the last request got a token"
    );
}

#[test]
fn graph_requires_issued_token() {
    let fake = FakeGraph::start(Tenant::with_members(2));
    let url = format!("{}/users", fake.graph_url());

    let missing = http_get(&url, &[]);
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.json()["error"]["code"],
        "InvalidAuthenticationToken"
    );

    let unknown = graph_get(&url, "not-a-token-of-the-fake");
    assert_eq!(unknown.status, 401);
    let error = &unknown.json()["error"];
    assert_eq!(error["code"], "InvalidAuthenticationToken");
    assert!(error["innerError"]["request-id"].is_string(), "{error:#}");
    assert!(error["innerError"]["date"].is_string(), "{error:#}");

    let token = fetch_token(&fake);
    let listed = graph_get(&url, &token);
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_eq!(listed.header("odata-version"), Some("4.0"));
    let content_type = listed.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json;odata.metadata=minimal"),
        "{content_type}"
    );
    let body = listed.json();
    assert_eq!(
        body["@odata.context"],
        format!("{}/$metadata#users", fake.graph_url())
    );
    assert_eq!(ids_of(&[body]), user_ids(1..=2));

    let recorded = fake.requests_for(USERS_PATH);
    let tokens: Vec<Option<&str>> = recorded.iter().map(|r| r.bearer_token()).collect();
    assert_eq!(
        tokens,
        vec![None, Some("not-a-token-of-the-fake"), Some(token.as_str())]
    );
    let statuses: Vec<u16> = recorded.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![401, 401, 200]);
}

#[test]
fn users_page_by_absolute_next_link() {
    let fake = FakeGraph::start(Tenant::with_members(5));
    let token = fetch_token(&fake);
    let first = format!("{}/users?$select=id,userType&$top=2", fake.graph_url());
    let pages = all_pages(&first, &token);

    assert_eq!(pages.len(), 3);
    assert_eq!(ids_of(&pages), user_ids(1..=5));
    let link = pages[0]["@odata.nextLink"]
        .as_str()
        .expect("page 1 has a nextLink");
    let expected_start = format!(
        "{}/users?$select=id,userType&$top=2&$skiptoken=",
        fake.graph_url()
    );
    assert!(link.starts_with(&expected_start), "{link}");
    assert!(pages[2].get("@odata.nextLink").is_none(), "{:#}", pages[2]);

    let requests = fake.requests_for(USERS_PATH);
    assert_eq!(requests.len(), 3);
    for pair in requests.windows(2) {
        assert_eq!(Some(&pair[1].url), pair[0].next_link.as_ref());
    }
    let pages_seen: Vec<Option<usize>> = requests.iter().map(|r| r.page).collect();
    assert_eq!(pages_seen, vec![Some(1), Some(2), Some(3)]);
    for request in &requests {
        assert_eq!(request.param("$select"), Some("id,userType"));
        assert_eq!(request.param("$top"), Some("2"));
    }
    let counts: Vec<Option<usize>> = requests.iter().map(|r| r.record_count).collect();
    assert_eq!(counts, vec![Some(2), Some(2), Some(1)]);
}

#[test]
fn page_size_caps_top_and_top_is_checked() {
    let fake = FakeGraph::start(Tenant::with_members(1000));
    let token = fetch_token(&fake);

    let default_pages = all_pages(&format!("{}/users", fake.graph_url()), &token);
    let sizes: Vec<usize> = default_pages
        .iter()
        .map(|page| page["value"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(
        sizes,
        [vec![100; 10]].concat(),
        "100 records a page without $top"
    );

    let max_pages = all_pages(&format!("{}/users?$top=999", fake.graph_url()), &token);
    assert_eq!(ids_of(&max_pages), user_ids(1..=1000));
    assert_eq!(max_pages.len(), 2);

    fake.set_page_size(300);
    let capped = all_pages(&format!("{}/users?$top=999", fake.graph_url()), &token);
    assert_eq!(capped.len(), 4);
    assert_eq!(ids_of(&capped), user_ids(1..=1000));

    for top in ["0", "1000", "many"] {
        let response = graph_get(&format!("{}/users?$top={top}", fake.graph_url()), &token);
        assert_eq!(response.status, 400, "$top={top}");
        let message = response.json()["error"]["message"].to_string();
        assert!(message.contains("Invalid page size"), "{message}");
    }
}

#[test]
fn throttle_sends_retry_after() {
    let fake = FakeGraph::start(Tenant::with_members(1));
    let token = fetch_token(&fake);
    fake.add_fault(Fault::Throttle {
        path: USERS_PATH.to_string(),
        times: 2,
        retry_after_seconds: 7,
    });
    fake.add_fault(Fault::Unavailable {
        path: SERVICE_PRINCIPALS_PATH.to_string(),
        times: 1,
        retry_after_seconds: None,
    });
    let users = format!("{}/users", fake.graph_url());

    for _ in 0..2 {
        let response = graph_get(&users, &token);
        assert_eq!(response.status, 429);
        assert_eq!(response.header("retry-after"), Some("7"));
        assert_eq!(response.json()["error"]["code"], "TooManyRequests");
    }
    assert_eq!(graph_get(&users, &token).status, 200);

    let principals = format!("{}/servicePrincipals", fake.graph_url());
    let unavailable = graph_get(&principals, &token);
    assert_eq!(unavailable.status, 503);
    assert_eq!(unavailable.header("retry-after"), None);
    assert_eq!(graph_get(&principals, &token).status, 200);
}

#[test]
fn unauthorized_once_on_page_two() {
    let fake = FakeGraph::start(Tenant::with_members(3));
    fake.add_fault(Fault::Unauthorized {
        path: USERS_PATH.to_string(),
        page: 2,
        revoke_token: true,
    });
    let token = fetch_token(&fake);
    let first = graph_get(&format!("{}/users?$top=2", fake.graph_url()), &token);
    let link = first.json()["@odata.nextLink"]
        .as_str()
        .expect("page 1 has a nextLink")
        .to_string();

    let rejected = graph_get(&link, &token);
    assert_eq!(rejected.status, 401);
    assert_eq!(
        rejected.json()["error"]["code"],
        "InvalidAuthenticationToken"
    );
    assert_eq!(
        graph_get(&link, &token).status,
        401,
        "the token stays revoked"
    );

    let fresh = fetch_token(&fake);
    assert_ne!(fresh, token);
    let retried = graph_get(&link, &fresh);
    assert_eq!(retried.status, 200, "{retried:?}");
    assert_eq!(ids_of(&[retried.json()]), user_ids(3..=3));
}

#[test]
fn forbidden_path_and_unknown_segment() {
    let fake = FakeGraph::start(Tenant::sample());
    fake.add_fault(Fault::Forbidden {
        path: APPLICATIONS_PATH.to_string(),
    });
    let token = fetch_token(&fake);

    let denied = graph_get(&format!("{}/applications", fake.graph_url()), &token);
    assert_eq!(denied.status, 403);
    assert_eq!(
        denied.json()["error"]["code"],
        "Authorization_RequestDenied"
    );
    let users = graph_get(&format!("{}/users", fake.graph_url()), &token);
    assert_eq!(users.status, 200);

    let unknown = graph_get(&format!("{}/groups", fake.graph_url()), &token);
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.json()["error"]["code"], "Request_BadRequest");
}

#[test]
fn empty_page_keeps_next_link() {
    let fake = FakeGraph::start(Tenant::with_members(4));
    fake.add_fault(Fault::EmptyPage {
        path: USERS_PATH.to_string(),
        page: 2,
    });
    let token = fetch_token(&fake);
    let pages = all_pages(&format!("{}/users?$top=2", fake.graph_url()), &token);

    let sizes: Vec<usize> = pages
        .iter()
        .map(|page| page["value"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, vec![2, 0, 2]);
    assert_eq!(ids_of(&pages), user_ids(1..=4));
}

#[test]
fn repeated_next_link_never_advances() {
    let fake = FakeGraph::start(Tenant::with_members(6));
    fake.add_fault(Fault::RepeatedNextLink {
        path: USERS_PATH.to_string(),
    });
    let token = fetch_token(&fake);
    let first = graph_get(&format!("{}/users?$top=2", fake.graph_url()), &token).json();
    let link = first["@odata.nextLink"]
        .as_str()
        .expect("page 1 has a nextLink");
    let second = graph_get(link, &token).json();

    assert_eq!(second["@odata.nextLink"].as_str(), Some(link));
    assert_eq!(ids_of(&[second]), user_ids(3..=4));
}

#[test]
fn overlapping_pages_repeat_one_record() {
    let fake = FakeGraph::start(Tenant::with_members(5));
    fake.add_fault(Fault::OverlappingPages {
        path: USERS_PATH.to_string(),
    });
    let token = fetch_token(&fake);
    let pages = all_pages(&format!("{}/users?$top=2", fake.graph_url()), &token);

    let expected: Vec<String> = [1, 2, 2, 3, 4, 4, 5]
        .into_iter()
        .map(|number| guid(id_kind::USER, number))
        .collect();
    assert_eq!(ids_of(&pages), expected);
}

#[test]
fn sample_tenant_serves_every_list() {
    let mut tenant = Tenant::sample();
    tenant.applications[0]
        .federated_credentials
        .push(FakeFederatedCredential::github(1));
    let fake = FakeGraph::start(tenant);
    let token = fetch_token(&fake);
    let base = fake.graph_url();

    let principals = graph_get(&format!("{base}/servicePrincipals"), &token).json();
    let records = principals["value"].as_array().expect("value is a list");
    assert_eq!(records.len(), 4);
    assert_eq!(records[1]["appOwnerOrganizationId"], MICROSOFT_TENANT_ID);
    assert_eq!(records[2]["servicePrincipalType"], "ManagedIdentity");
    assert_eq!(records[2]["alternativeNames"][0], "isExplicit=False");
    assert!(
        records[2]["alternativeNames"][1]
            .as_str()
            .unwrap_or_default()
            .ends_with("/providers/Microsoft.Compute/virtualMachines/vm1"),
        "{:#}",
        records[2]
    );
    assert_eq!(records[3]["alternativeNames"][0], "isExplicit=True");
    assert_eq!(
        records[2]["keyCredentials"][0]["type"],
        "AsymmetricX509Cert"
    );
    assert_eq!(records[2]["keyCredentials"][0]["key"], Value::Null);

    let filter = "$filter=servicePrincipalType%20eq%20%27ManagedIdentity%27";
    let managed = graph_get(&format!("{base}/servicePrincipals?{filter}"), &token).json();
    let expected_managed = vec![
        guid(id_kind::SERVICE_PRINCIPAL, 3),
        guid(id_kind::SERVICE_PRINCIPAL, 4),
    ];
    assert_eq!(ids_of(&[managed]), expected_managed);

    let applications = graph_get(&format!("{base}/applications"), &token).json();
    let secret = &applications["value"][0]["passwordCredentials"][0];
    assert_eq!(secret["keyId"], guid(id_kind::KEY, 1));
    assert_eq!(secret["secretText"], Value::Null);

    let application_id = guid(id_kind::APPLICATION, 1);
    let federated_url = format!(
        "{}{}",
        fake.endpoint,
        federated_credentials_path(&application_id)
    );
    let federated = graph_get(&federated_url, &token).json();
    assert_eq!(
        federated["value"][0]["subject"],
        "repo:example/repo-1:ref:refs/heads/main"
    );
    assert_eq!(
        federated["@odata.context"],
        format!("{base}/$metadata#applications('{application_id}')/federatedIdentityCredentials")
    );
    let missing_url = format!("{}{}", fake.endpoint, federated_credentials_path("nope"));
    assert_eq!(graph_get(&missing_url, &token).status, 404);

    let assignments = graph_get(
        &format!("{base}/roleManagement/directory/roleAssignments"),
        &token,
    );
    let assignment = &assignments.json()["value"][0];
    assert_eq!(assignment["roleDefinitionId"], GLOBAL_ADMINISTRATOR);
    assert_eq!(assignment["principalId"], guid(id_kind::USER, 1));
    assert_eq!(assignment["directoryScopeId"], "/");
    assert_eq!(fake.requests_for(ROLE_ASSIGNMENTS_PATH).len(), 1);
}

#[test]
fn odd_records_are_served_as_edited() {
    let mut tenant = odd_tenant();
    tenant
        .applications
        .push(FakeApplication::numbered(2).with_field("secretText", Value::Null));
    tenant
        .service_principals
        .push(FakeServicePrincipal::application(3).without_field("appOwnerOrganizationId"));
    let fake = FakeGraph::start(tenant);
    let token = fetch_token(&fake);
    let base = fake.graph_url();

    let users = graph_get(&format!("{base}/users"), &token).json();
    let null_user = &users["value"][0];
    assert_eq!(null_user["userType"], Value::Null);
    assert_eq!(null_user["createdDateTime"], Value::Null);
    assert!(null_user.get("accountEnabled").is_none(), "{null_user:#}");
    assert_eq!(null_user["futureField"]["nested"][2], 3);
    assert_eq!(users["value"][1]["createdDateTime"], "9999-12-31T23:59:59Z");
    assert!(users["value"][2].get("id").is_none());

    let principals = graph_get(&format!("{base}/servicePrincipals"), &token).json();
    assert_eq!(principals["value"][0]["servicePrincipalType"], "SocialIdp");
    assert_eq!(
        principals["value"][0]["passwordCredentials"][0]["endDateTime"],
        "2299-01-01T00:00:00Z"
    );
    assert_eq!(
        principals["value"][1]["servicePrincipalType"],
        "SomethingNew"
    );
    assert!(
        principals["value"][2]
            .get("appOwnerOrganizationId")
            .is_none()
    );

    let applications = graph_get(&format!("{base}/applications"), &token).json();
    assert_eq!(applications["value"][0]["createdDateTime"], Value::Null);
    assert_eq!(
        applications["value"][0]["keyCredentials"][0]["endDateTime"],
        "9999-12-31T23:59:59Z"
    );
}

#[test]
fn groups_serve_object_members_and_404() {
    let members = [
        guid(id_kind::USER, 2),
        guid(id_kind::SERVICE_PRINCIPAL, 1),
        guid(id_kind::USER, 99),
    ];
    let mut tenant = Tenant::sample();
    tenant.groups.push(FakeGroup::role_assignable(1, &members));
    let fake = FakeGraph::start(tenant);
    let token = fetch_token(&fake);
    let group_id = guid(id_kind::GROUP, 1);

    let url = format!("{}{}", fake.endpoint, group_path(&group_id));
    let group = graph_get(&url, &token);
    assert_eq!(group.status, 200, "{group:?}");
    let body = group.json();
    assert_eq!(body["id"], group_id.as_str());
    assert_eq!(body["displayName"], "admins-01");
    assert_eq!(body["isAssignableToRole"], true);
    let context = body["@odata.context"].as_str().unwrap_or_default();
    assert!(context.ends_with("$metadata#groups/$entity"), "{context}");

    let url = format!("{}{}?$top=2", fake.endpoint, group_members_path(&group_id));
    let pages = all_pages(&url, &token);
    assert_eq!(pages.len(), 2);
    assert_eq!(ids_of(&pages), members.to_vec());
    let context = pages[0]["@odata.context"].as_str().unwrap_or_default();
    assert!(context.ends_with("$metadata#directoryObjects"), "{context}");
    let types: Vec<String> = pages
        .iter()
        .flat_map(|page| page["value"].as_array().cloned().unwrap_or_default())
        .map(|member| {
            member["@odata.type"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let expected = [
        "#microsoft.graph.user",
        "#microsoft.graph.servicePrincipal",
        "#microsoft.graph.device",
    ];
    assert_eq!(types, expected.map(String::from));

    let unknown_id = guid(id_kind::GROUP, 9);
    for path in [group_path(&unknown_id), group_members_path(&unknown_id)] {
        let missing = graph_get(&format!("{}{path}", fake.endpoint), &token);
        assert_eq!(missing.status, 404, "{path}: {missing:?}");
        let error = &missing.json()["error"];
        assert_eq!(error["code"], "Request_ResourceNotFound", "{path}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(&unknown_id), "{path}: {message}");
    }
}

// The tests below run `idrift scan` of one tenant through the fake, with
// tokens from azure_identity's managed identity credential (App Service source).

/// Attempts per request, the first included, in the configs that [`Workspace`] writes.
const MAX_ATTEMPTS: usize = 4;

/// A scratch folder with a config for one fake tenant and a snapshot folder.
struct Workspace {
    folder: TempDir,
    config: PathBuf,
}

impl Workspace {
    /// Writes a config that scans [`TENANT_ID`] through the fake with a
    /// managed identity, backoffs of at most 50 ms and `extra_azure` lines
    /// in `[azure]`.
    fn new(fake: &FakeGraph, extra_azure: &str) -> Workspace {
        Workspace::with_max_backoff(fake, 50, extra_azure)
    }

    /// Like [`Workspace::new`], with `retry.max_backoff_ms` set to `max_backoff_ms`.
    fn with_max_backoff(fake: &FakeGraph, max_backoff_ms: u64, extra_azure: &str) -> Workspace {
        let folder = tempfile::tempdir().expect("create a temporary folder");
        let config = folder.path().join("idrift.toml");
        let text = format!(
            "[retry]\nmax_attempts = {MAX_ATTEMPTS}\ninitial_backoff_ms = 10\n\
             max_backoff_ms = {max_backoff_ms}\nattempt_timeout_seconds = 10\n\n\
             [azure]\n{extra_azure}\n\n\
             [[azure.tenants]]\ntenant_id = \"{TENANT_ID}\"\ncredential = \"managed_identity\"\n\
             graph_url = \"{}\"\n",
            fake.endpoint
        );
        std::fs::write(&config, text).expect("write the config");
        Workspace { folder, config }
    }

    fn snapshots(&self) -> PathBuf {
        self.folder.path().join("snapshots")
    }

    fn snapshot_path(&self) -> PathBuf {
        self.snapshots()
            .join("azure")
            .join(format!("{TENANT_ID}.json"))
    }

    /// Returns an `idrift scan` command whose only Azure credential is the fake's managed identity.
    fn scan_command(&self, fake: &FakeGraph, format: &str) -> Command {
        let mut command = common::idrift(self.folder.path());
        for (name, _) in std::env::vars() {
            let azure = name.starts_with("AZURE_") || name.starts_with("IDENTITY_");
            if azure || name.starts_with("MSI_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        command
            .envs(fake.identity_env())
            .arg("scan")
            .arg("--config")
            .arg(&self.config)
            .arg("--snapshots")
            .arg(self.snapshots())
            .args(["--format", format]);
        command
    }

    /// Runs `idrift scan --format json` and reads the report and the snapshot.
    fn scan(&self, fake: &FakeGraph) -> Scan {
        let (exit_code, stdout, stderr) = common::run(&mut self.scan_command(fake, "json"));
        let report = serde_json::from_str(&stdout).unwrap_or_else(|error| {
            panic!("the report is not JSON ({error}):\n{stdout}\nstderr:\n{stderr}")
        });
        Scan {
            exit_code,
            report,
            snapshot: read_json(&self.snapshot_path()),
            stderr,
        }
    }
}

/// Parses a JSON file, or returns `Value::Null` when there is none.
fn read_json(path: &Path) -> Value {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{} is not JSON: {error}", path.display())),
        Err(_) => Value::Null,
    }
}

/// What one scan produced.
struct Scan {
    exit_code: i32,
    report: Value,
    snapshot: Value,
    stderr: String,
}

impl Scan {
    /// Asserts the exit code, with the report and stderr in the message.
    fn assert_exit(&self, expected: i32) {
        assert_eq!(
            self.exit_code, expected,
            "exit code; report:\n{:#}\nstderr:\n{}",
            self.report, self.stderr
        );
        assert_eq!(
            self.report["exit_code"], expected,
            "exit_code in the report"
        );
    }

    fn identities(&self) -> Vec<Value> {
        self.snapshot["identities"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("the snapshot has no identities: {:#}", self.snapshot))
    }

    /// Returns the ids of the identities of one kind, sorted.
    fn ids_of_kind(&self, kind: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .identities()
            .iter()
            .filter(|identity| identity["kind"] == kind)
            .map(|identity| identity["id"].as_str().unwrap_or_default().to_string())
            .collect();
        ids.sort();
        ids
    }

    fn identity(&self, id: &str) -> Value {
        self.identities()
            .into_iter()
            .find(|identity| identity["id"] == id)
            .unwrap_or_else(|| panic!("identity {id} is not in the snapshot: {:#}", self.snapshot))
    }

    fn collection(&self, name: &str) -> &Value {
        &self.snapshot["collections"][name]
    }

    fn collection_status(&self, name: &str) -> &str {
        self.collection(name)["status"]
            .as_str()
            .unwrap_or("missing")
    }

    fn collection_reason(&self, name: &str) -> &str {
        self.collection(name)["reason"].as_str().unwrap_or_default()
    }

    fn findings(&self) -> Vec<Value> {
        self.report["findings"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Returns `(change, identity id)` of every finding, sorted.
    fn finding_keys(&self) -> Vec<(String, String)> {
        let mut keys: Vec<(String, String)> = self
            .findings()
            .iter()
            .map(|finding| {
                let change = finding["change"].as_str().unwrap_or_default();
                let id = finding["identity_id"].as_str().unwrap_or_default();
                (change.to_string(), id.to_string())
            })
            .collect();
        keys.sort();
        keys
    }

    /// Returns the only finding of one change to one identity.
    fn finding(&self, change: &str, identity_id: &str) -> Value {
        let matching: Vec<Value> = self
            .findings()
            .into_iter()
            .filter(|finding| finding["change"] == change && finding["identity_id"] == identity_id)
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "{change} findings for {identity_id}: {:#}",
            self.report
        );
        matching[0].clone()
    }

    /// Returns the collections that the report's only scope lists as incomplete.
    fn report_incomplete(&self) -> Vec<String> {
        let incomplete = self.report["scopes"][0]["incomplete"].as_array().cloned();
        let mut names: Vec<String> = incomplete
            .unwrap_or_default()
            .iter()
            .map(|entry| entry["collection"].as_str().unwrap_or_default().to_string())
            .collect();
        names.sort();
        names
    }

    fn scope_status(&self) -> &str {
        self.report["scopes"][0]["status"]
            .as_str()
            .unwrap_or("missing")
    }
}

/// Every collection of an Entra tenant.
const COLLECTIONS: [&str; 5] = [
    "users",
    "service_principals",
    "applications",
    "federated_credentials",
    "privileges",
];

fn assert_all_complete(scan: &Scan) {
    for name in COLLECTIONS {
        assert_eq!(
            scan.collection_status(name),
            "complete",
            "{name}: {:#}",
            scan.collection(name)
        );
    }
}

/// Asserts that each request after the first requested the nextLink of the
/// response before it, verbatim.
fn assert_links_followed(requests: &[RecordedRequest]) {
    for pair in requests.windows(2) {
        assert_eq!(
            Some(&pair[1].url),
            pair[0].next_link.as_ref(),
            "request after {:#?}",
            pair[0]
        );
    }
    let last = requests.last().expect("at least one request");
    assert_eq!(last.next_link, None, "the last page has no nextLink");
}

/// Asserts that every Graph request carried a token that the fake issued
/// to azure_identity, and that azure_identity sent the identity header.
fn assert_tokens_from_fake(fake: &FakeGraph) {
    let issued = fake.issued_tokens();
    assert!(!issued.is_empty(), "idrift fetched no token from the fake");
    for request in fake.token_requests() {
        assert_eq!(request.header("x-identity-header"), Some(IDENTITY_HEADER));
        assert_eq!(request.param("api-version"), Some("2019-08-01"));
    }
    for request in fake.requests().iter().filter(|r| !r.is_token_request()) {
        let token = request.bearer_token().unwrap_or_default();
        assert!(
            issued.iter().any(|issued| issued == token),
            "{} sent token {token:?}",
            request.url
        );
    }
}

/// Starts a fake with a data set, scans a baseline that must be complete,
/// and clears the baseline's recorded requests.
fn fake_with_baseline(tenant: Tenant, extra_azure: &str) -> (FakeGraph, Workspace, Scan) {
    let fake = FakeGraph::start(tenant);
    let workspace = Workspace::new(&fake, extra_azure);
    let baseline = workspace.scan(&fake);
    baseline.assert_exit(0);
    assert_eq!(baseline.scope_status(), "baseline");
    assert_all_complete(&baseline);
    fake.clear_requests();
    (fake, workspace, baseline)
}

/// Builds the scenario's baseline: [`Tenant::sample`] and application 2
/// with its service principal 5, both without credentials.
fn scenario_tenant() -> Tenant {
    let mut tenant = Tenant::sample();
    tenant.applications.push(FakeApplication::numbered(2));
    let mut principal = FakeServicePrincipal::application(2);
    principal.id = guid(id_kind::SERVICE_PRINCIPAL, 5);
    tenant.service_principals.push(principal);
    tenant
}

#[test]
fn scenario_reports_each_new_way_in() {
    let (fake, workspace, baseline) = fake_with_baseline(scenario_tenant(), "");
    assert_tokens_from_fake(&fake);
    assert_eq!(baseline.ids_of_kind("azure_user"), user_ids(1..=2));
    assert_eq!(
        baseline.ids_of_kind("azure_managed_identity"),
        vec![
            guid(id_kind::SERVICE_PRINCIPAL, 3),
            guid(id_kind::SERVICE_PRINCIPAL, 4)
        ]
    );

    let guest = guid(id_kind::USER, 10);
    let first_party = guid(id_kind::SERVICE_PRINCIPAL, 6);
    let managed = guid(id_kind::SERVICE_PRINCIPAL, 7);
    let principal = guid(id_kind::SERVICE_PRINCIPAL, 1);
    fake.edit_tenant(|tenant| {
        tenant.users.push(FakeUser::guest(10));
        tenant.applications[0]
            .password_credentials
            .push(FakePasswordCredential::numbered(2));
        tenant.applications[1]
            .federated_credentials
            .push(FakeFederatedCredential::github(1));
        tenant
            .role_assignments
            .push(FakeRoleAssignment::tenant_wide(
                2,
                &principal,
                GLOBAL_ADMINISTRATOR,
            ));
        tenant
            .service_principals
            .push(FakeServicePrincipal::first_party(
                6,
                "Office 365 Exchange Online",
            ));
        tenant
            .service_principals
            .push(FakeServicePrincipal::system_assigned(7, "vm2"));
    });
    let scan = workspace.scan(&fake);

    scan.assert_exit(1);
    assert_eq!(scan.scope_status(), "compared");
    assert_all_complete(&scan);
    let application_1 = guid(id_kind::APPLICATION, 1);
    let application_2 = guid(id_kind::APPLICATION, 2);
    let mut expected_keys = vec![
        ("credential_added".to_string(), application_1.clone()),
        ("credential_added".to_string(), application_2.clone()),
        ("identity_added".to_string(), guest.clone()),
        ("identity_added".to_string(), first_party.clone()),
        ("identity_added".to_string(), managed.clone()),
        ("privilege_added".to_string(), principal.clone()),
    ];
    expected_keys.sort();
    assert_eq!(scan.finding_keys(), expected_keys, "{:#}", scan.report);

    // (change, identity, severity, expected, technique)
    let judgements = [
        ("identity_added", &guest, "high", false, "T1136.003"),
        (
            "credential_added",
            &application_1,
            "high",
            false,
            "T1098.001",
        ),
        (
            "credential_added",
            &application_2,
            "high",
            false,
            "T1098.001",
        ),
        (
            "privilege_added",
            &principal,
            "critical",
            false,
            "T1098.003",
        ),
        ("identity_added", &first_party, "low", true, "T1136.003"),
        ("identity_added", &managed, "low", true, "T1136.003"),
    ];
    for (change, id, severity, expected, technique) in judgements {
        let finding = scan.finding(change, id);
        assert_eq!(finding["severity"], severity, "{change} {id}: {finding:#}");
        assert_eq!(finding["expected"], expected, "{change} {id}: {finding:#}");
        assert_eq!(
            finding["technique"]["id"], technique,
            "{change} {id}: {finding:#}"
        );
    }
    assert_eq!(scan.report["summary"]["needs_attention"], 4);

    let guest_record = scan.identity(&guest);
    assert_eq!(guest_record["kind"], "azure_user");
    assert_eq!(guest_record["attributes"]["user_type"], "Guest");
    let managed_record = scan.identity(&managed);
    assert_eq!(managed_record["kind"], "azure_managed_identity");
    assert_eq!(
        managed_record["attributes"]["managed_identity"],
        "system_assigned"
    );

    let secret = scan.finding("credential_added", &application_1);
    let secret_id = guid(id_kind::KEY, 2);
    let commands = secret["response"].to_string();
    assert!(commands.contains(&secret_id), "{secret:#}");
    let federated = scan.finding("credential_added", &application_2);
    let federated_id = guid(id_kind::FEDERATED_CREDENTIAL, 1);
    assert!(
        federated["response"].to_string().contains(&federated_id),
        "{federated:#}"
    );
    let grant = scan.finding("privilege_added", &principal);
    let assignment_id = guid(id_kind::ROLE_ASSIGNMENT, 2);
    assert!(
        grant["response"].to_string().contains(&assignment_id),
        "{grant:#}"
    );
}

#[test]
fn lists_use_select_and_top_999() {
    let fake = FakeGraph::start(Tenant::with_members(1998));
    let scan = Workspace::new(&fake, "").scan(&fake);

    scan.assert_exit(0);
    assert_all_complete(&scan);
    assert_eq!(scan.ids_of_kind("azure_user"), user_ids(1..=1998));
    let requests = fake.requests_for(USERS_PATH);
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_links_followed(&requests);
    let counts: Vec<Option<usize>> = requests.iter().map(|r| r.record_count).collect();
    assert_eq!(counts, vec![Some(999), Some(999)]);

    for path in [USERS_PATH, SERVICE_PRINCIPALS_PATH, APPLICATIONS_PATH] {
        let first = &fake.requests_for(path)[0];
        assert_eq!(first.param("$top"), Some("999"), "{path}");
        let select = first.param("$select").unwrap_or_default();
        assert!(select.contains("id"), "{path}: $select={select}");
    }
    let select = requests[0].param("$select").unwrap_or_default();
    for field in [
        "userPrincipalName",
        "userType",
        "accountEnabled",
        "createdDateTime",
        "creationType",
        "externalUserState",
    ] {
        assert!(select.split(',').any(|f| f == field), "$select={select}");
    }
    assert_tokens_from_fake(&fake);
    assert_eq!(fake.token_requests().len(), 1, "the token is cached");
}

#[test]
fn page_size_one_gives_same_snapshot() {
    let mut tenant = scenario_tenant();
    tenant.applications[0]
        .federated_credentials
        .extend([1, 2, 3].map(FakeFederatedCredential::github));
    let reference = {
        let fake = FakeGraph::start(tenant.clone());
        let scan = Workspace::new(&fake, "").scan(&fake);
        scan.assert_exit(0);
        scan.snapshot["identities"].clone()
    };

    let fake = FakeGraph::start(tenant.clone());
    fake.set_page_size(1);
    let scan = Workspace::new(&fake, "page_size = 1").scan(&fake);

    scan.assert_exit(0);
    assert_all_complete(&scan);
    assert_eq!(scan.snapshot["identities"], reference);
    let lists = [
        (USERS_PATH.to_string(), tenant.users.len()),
        (
            SERVICE_PRINCIPALS_PATH.to_string(),
            tenant.service_principals.len(),
        ),
        (APPLICATIONS_PATH.to_string(), tenant.applications.len()),
        (
            ROLE_ASSIGNMENTS_PATH.to_string(),
            tenant.role_assignments.len(),
        ),
        (
            federated_credentials_path(&guid(id_kind::APPLICATION, 1)),
            3,
        ),
    ];
    for (path, records) in lists {
        let requests = fake.requests_for(&path);
        assert_eq!(requests.len(), records, "{path}: {requests:#?}");
        assert_links_followed(&requests);
    }
    for path in [USERS_PATH, SERVICE_PRINCIPALS_PATH, APPLICATIONS_PATH] {
        let first = &fake.requests_for(path)[0];
        assert_eq!(first.param("$top"), Some("1"), "{path}");
    }
}

#[test]
fn empty_page_with_next_link_continues() {
    let fake = FakeGraph::start(Tenant::with_members(4));
    fake.set_page_size(2);
    fake.add_fault(Fault::EmptyPage {
        path: USERS_PATH.to_string(),
        page: 2,
    });
    let scan = Workspace::new(&fake, "").scan(&fake);

    scan.assert_exit(0);
    assert_all_complete(&scan);
    assert_eq!(scan.ids_of_kind("azure_user"), user_ids(1..=4));
    let requests = fake.requests_for(USERS_PATH);
    let counts: Vec<Option<usize>> = requests.iter().map(|r| r.record_count).collect();
    assert_eq!(counts, vec![Some(2), Some(0), Some(2)]);
    assert_links_followed(&requests);
}

#[test]
fn overlapping_pages_are_deduplicated() {
    let fake = FakeGraph::start(Tenant::with_members(5));
    fake.set_page_size(2);
    fake.add_fault(Fault::OverlappingPages {
        path: USERS_PATH.to_string(),
    });
    let scan = Workspace::new(&fake, "").scan(&fake);

    scan.assert_exit(0);
    assert_all_complete(&scan);
    let counts: Vec<Option<usize>> = fake
        .requests_for(USERS_PATH)
        .iter()
        .map(|request| request.record_count)
        .collect();
    assert_eq!(counts, vec![Some(2), Some(3), Some(2)], "7 records, 5 ids");
    let ids = scan.ids_of_kind("azure_user");
    assert_eq!(ids, user_ids(1..=5), "each user once");
}

#[test]
fn repeated_next_link_is_incomplete() {
    let (fake, workspace, baseline) = fake_with_baseline(Tenant::with_members(5), "");
    fake.set_page_size(2);
    fake.add_fault(Fault::RepeatedNextLink {
        path: USERS_PATH.to_string(),
    });
    let scan = workspace.scan(&fake);

    scan.assert_exit(2);
    let requests = fake.requests_for(USERS_PATH);
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(requests[1].next_link.as_ref(), Some(&requests[1].url));
    assert_eq!(scan.collection_status("users"), "incomplete");
    let reason = scan.collection_reason("users");
    assert!(reason.contains("did not advance"), "{reason}");
    assert_eq!(scan.collection("users")["kept_previous"], true);
    // Role assignments cannot be matched to users that were not all listed.
    assert_eq!(scan.report_incomplete(), vec!["privileges", "users"]);
    assert_eq!(scan.snapshot["identities"], baseline.snapshot["identities"]);
    assert_eq!(scan.finding_keys(), Vec::<(String, String)>::new());
}

#[test]
fn next_link_to_other_host_is_refused() {
    let (fake, workspace, baseline) = fake_with_baseline(Tenant::with_members(5), "");
    let elsewhere = FakeGraph::start(Tenant::with_members(0));
    fake.set_page_size(2);
    fake.add_fault(Fault::ForeignNextLink {
        path: USERS_PATH.to_string(),
        endpoint: elsewhere.endpoint.clone(),
    });
    let scan = workspace.scan(&fake);

    scan.assert_exit(2);
    assert_eq!(
        elsewhere.requests().len(),
        0,
        "the token went to another host: {:#?}",
        elsewhere.requests()
    );
    assert_eq!(scan.collection_status("users"), "incomplete");
    let reason = scan.collection_reason("users");
    assert!(reason.contains("another host"), "{reason}");
    assert_eq!(scan.snapshot["identities"], baseline.snapshot["identities"]);
    assert_eq!(scan.finding_keys(), Vec::<(String, String)>::new());
}

#[test]
fn throttled_three_times_then_complete() {
    let fake = FakeGraph::start(Tenant::with_members(3));
    fake.add_fault(Fault::Throttle {
        path: USERS_PATH.to_string(),
        times: 3,
        retry_after_seconds: 1,
    });
    // Backoffs up to 2 s, so that Retry-After rather than the 10 ms
    // exponential backoff decides each wait.
    let scan = Workspace::with_max_backoff(&fake, 2000, "").scan(&fake);

    scan.assert_exit(0);
    assert_all_complete(&scan);
    assert_eq!(scan.ids_of_kind("azure_user"), user_ids(1..=3));
    let requests = fake.requests_for(USERS_PATH);
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 429, 429, 200]);
    for retry in &requests[1..] {
        assert_eq!(retry.url, requests[0].url, "a retry requests the same page");
    }
    // Graph expects clients to wait at least Retry-After seconds before the
    // next request.
    for pair in requests.windows(2) {
        let waited = pair[1].received.duration_since(pair[0].received);
        assert!(
            waited >= Duration::from_millis(950),
            "waited {waited:?} after Retry-After: 1"
        );
    }
}

#[test]
fn unauthorized_once_retries_same_page() {
    let fake = FakeGraph::start(Tenant::with_members(3));
    fake.set_page_size(2);
    fake.add_fault(Fault::Unauthorized {
        path: USERS_PATH.to_string(),
        page: 2,
        revoke_token: false,
    });
    let scan = Workspace::new(&fake, "").scan(&fake);

    scan.assert_exit(0);
    assert_all_complete(&scan);
    assert_eq!(scan.ids_of_kind("azure_user"), user_ids(1..=3));
    let requests = fake.requests_for(USERS_PATH);
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 401, 200]);
    assert_eq!(requests[2].url, requests[1].url, "the same page is retried");
}

/// A token that Graph stops accepting mid-scan (expired early or revoked)
/// is replaced by a new one from the token endpoint, and the page retried.
#[test]
fn revoked_token_is_replaced() {
    let fake = FakeGraph::start(Tenant::with_members(3));
    fake.set_page_size(2);
    fake.add_fault(Fault::Unauthorized {
        path: USERS_PATH.to_string(),
        page: 2,
        revoke_token: true,
    });
    let scan = Workspace::new(&fake, "").scan(&fake);

    scan.assert_exit(0);
    assert_all_complete(&scan);
    assert_eq!(scan.ids_of_kind("azure_user"), user_ids(1..=3));
    let requests = fake.requests_for(USERS_PATH);
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 401, 200]);
    assert_ne!(
        requests[2].bearer_token(),
        requests[1].bearer_token(),
        "the retry carries a new token"
    );
    assert_eq!(fake.token_requests().len(), 2);
}

#[test]
fn forbidden_applications_keep_other_lists() {
    let (fake, workspace, baseline) = fake_with_baseline(scenario_tenant(), "");
    fake.add_fault(Fault::Forbidden {
        path: APPLICATIONS_PATH.to_string(),
    });
    let scan = workspace.scan(&fake);

    scan.assert_exit(2);
    assert_eq!(scan.collection_status("applications"), "incomplete");
    let reason = scan.collection_reason("applications");
    assert!(reason.contains("Authorization_RequestDenied"), "{reason}");
    assert!(reason.contains("403"), "{reason}");
    assert_eq!(scan.collection("applications")["kept_previous"], true);
    for name in ["users", "service_principals", "privileges"] {
        assert_eq!(scan.collection_status(name), "complete", "{name}");
    }
    assert_ne!(scan.collection_status("federated_credentials"), "complete");
    assert!(
        scan.report_incomplete()
            .contains(&"applications".to_string()),
        "{:?}",
        scan.report_incomplete()
    );
    assert_eq!(
        scan.ids_of_kind("azure_application"),
        baseline.ids_of_kind("azure_application")
    );
    assert_eq!(scan.snapshot["identities"], baseline.snapshot["identities"]);
    assert_eq!(scan.finding_keys(), Vec::<(String, String)>::new());
    assert_eq!(
        fake.requests_for(APPLICATIONS_PATH).len(),
        1,
        "403 is not retried"
    );
}

#[test]
fn odd_records_are_kept() {
    let fake = FakeGraph::start(odd_tenant());
    let scan = Workspace::new(&fake, "").scan(&fake);

    // User 3 has no id, so it cannot be keyed, and a user missing from the
    // listing would read as deleted: the users are incomplete. The rest of
    // its page is kept.
    scan.assert_exit(2);
    assert_eq!(scan.collection_status("users"), "incomplete");
    let reason = scan.collection_reason("users");
    assert!(reason.contains("1 records have no id"), "{reason}");
    for name in COLLECTIONS
        .iter()
        .filter(|name| !["users", "privileges"].contains(name))
    {
        assert_eq!(scan.collection_status(name), "complete", "{name}");
    }
    assert_eq!(scan.ids_of_kind("azure_user"), user_ids(1..=2));
    let null_user = scan.identity(&guid(id_kind::USER, 1));
    assert!(null_user.get("created").is_none(), "{null_user:#}");
    assert!(null_user.get("enabled").is_none(), "{null_user:#}");
    assert!(
        null_user["attributes"].get("user_type").is_none(),
        "{null_user:#}"
    );
    let far_user = scan.identity(&guid(id_kind::USER, 2));
    assert_eq!(far_user["created"], "9999-12-31T23:59:59Z");

    let social = scan.identity(&guid(id_kind::SERVICE_PRINCIPAL, 1));
    assert_eq!(social["kind"], "azure_service_principal");
    assert_eq!(social["attributes"]["service_principal_type"], "SocialIdp");
    assert!(social.get("enabled").is_none(), "{social:#}");
    assert_eq!(social["credentials"][0]["kind"], "client_secret");
    assert_eq!(social["credentials"][0]["expires"], "2299-01-01T00:00:00Z");
    let new_type = scan.identity(&guid(id_kind::SERVICE_PRINCIPAL, 2));
    assert_eq!(new_type["kind"], "azure_service_principal");
    assert_eq!(
        new_type["attributes"]["service_principal_type"],
        "SomethingNew"
    );

    let application = scan.identity(&guid(id_kind::APPLICATION, 1));
    assert!(application.get("created").is_none(), "{application:#}");
    assert_eq!(application["credentials"][0]["kind"], "certificate");
    assert_eq!(
        application["credentials"][0]["expires"],
        "9999-12-31T23:59:59Z"
    );
}

/// Text that must never reach a snapshot, a report or a log.
const SECRET_TEXT: &str = "idrift-fake-secret-text-Qx8";
const CERTIFICATE_BODY: &str = "TUlJRmFrZUNlcnRpZmljYXRlQm9keQ==";

#[test]
fn no_token_or_secret_in_output() {
    let mut tenant = scenario_tenant();
    let mut secret = FakePasswordCredential::numbered(3);
    secret.secret_text = Some(SECRET_TEXT.to_string());
    tenant.service_principals[0]
        .password_credentials
        .push(secret);
    let mut certificate = FakeKeyCredential::numbered(4);
    certificate.key = Some(CERTIFICATE_BODY.to_string());
    tenant.applications[0].key_credentials.push(certificate);
    let fake = FakeGraph::start(tenant);
    let workspace = Workspace::new(&fake, "");

    let mut outputs = Vec::new();
    let baseline = workspace.scan_command(&fake, "json");
    let mut traced = baseline;
    traced.env("RUST_LOG", "trace");
    outputs.push(common::run(&mut traced));
    fake.edit_tenant(|tenant| {
        let mut leaked = FakePasswordCredential::numbered(5);
        leaked.secret_text = Some(SECRET_TEXT.to_string());
        tenant.applications[1].password_credentials.push(leaked);
    });
    outputs.push(common::run(&mut workspace.scan_command(&fake, "table")));
    outputs.push(common::run(&mut workspace.scan_command(&fake, "json")));

    let issued = fake.issued_tokens();
    assert!(!issued.is_empty());
    let forbidden = [TOKEN_PREFIX, IDENTITY_HEADER, SECRET_TEXT, CERTIFICATE_BODY];
    for (index, (exit_code, stdout, stderr)) in outputs.iter().enumerate() {
        assert!(
            [0, 1].contains(exit_code),
            "run {index}: {stdout}\n{stderr}"
        );
        for text in forbidden {
            assert!(!stdout.contains(text), "run {index} stdout has {text}");
            assert!(!stderr.contains(text), "run {index} stderr has {text}");
        }
    }
    assert!(
        outputs[1].1.contains(&guid(id_kind::KEY, 5)),
        "the table names the new secret by key id:\n{}",
        outputs[1].1
    );

    for path in files_under(&workspace.snapshots()) {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for forbidden_text in forbidden {
            assert!(
                !text.contains(forbidden_text),
                "{} has {forbidden_text}",
                path.display()
            );
        }
    }
    let snapshot = read_json(&workspace.snapshot_path());
    assert!(
        snapshot.to_string().contains(&guid(id_kind::KEY, 3)),
        "the secret is recorded by key id"
    );
}

/// Lists every file under a folder, hidden ones included.
fn files_under(folder: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(!files.is_empty(), "no files under {}", folder.display());
    files
}

/// Azure renews the certificate of a managed identity's service principal
/// by itself, so a renewal is no new way in.
#[test]
fn managed_identity_certificate_renewal_is_quiet() {
    let (fake, workspace, _baseline) = fake_with_baseline(Tenant::sample(), "");
    fake.edit_tenant(|tenant| {
        let managed = &mut tenant.service_principals[2];
        assert_eq!(managed.display_name.as_deref(), Some("vm1"));
        managed.key_credentials = vec![FakeKeyCredential::numbered(2000)];
    });
    let scan = workspace.scan(&fake);

    scan.assert_exit(0);
    assert_all_complete(&scan);
    for finding in scan.findings() {
        let quiet = finding["expected"] == true || finding["severity"] == "info";
        assert!(quiet, "{finding:#}");
    }
}

/// Builds [`Tenant::sample`] with member 3, and group 1 (`admins-01`),
/// which has Global Administrator (assignment 2). Its members are member 2,
/// service principal 1 and a device.
fn group_tenant() -> Tenant {
    let mut tenant = Tenant::sample();
    tenant.users.push(FakeUser::member(3));
    let members = [
        guid(id_kind::USER, 2),
        guid(id_kind::SERVICE_PRINCIPAL, 1),
        DEVICE_MEMBER.to_string(),
    ];
    let group = FakeGroup::role_assignable(1, &members);
    tenant
        .role_assignments
        .push(FakeRoleAssignment::tenant_wide(
            2,
            &group.id,
            GLOBAL_ADMINISTRATOR,
        ));
    tenant.groups.push(group);
    tenant
}

/// A member of the group in [`group_tenant`] that is neither a user nor a
/// service principal, so the fake serves it as a device.
const DEVICE_MEMBER: &str = "0000dead-0000-4000-8000-000000000001";

/// Returns the admin grants of an identity in a scan's snapshot.
fn grants_of(scan: &Scan, id: &str) -> Vec<Value> {
    let identity = scan.identity(id);
    identity["admin_grants"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn group_role_reaches_each_member() {
    let fake = FakeGraph::start(group_tenant());
    fake.set_page_size(1);
    let workspace = Workspace::new(&fake, "");
    let baseline = workspace.scan(&fake);

    baseline.assert_exit(0);
    assert_all_complete(&baseline);
    let group_id = guid(id_kind::GROUP, 1);
    let assignment_id = guid(id_kind::ROLE_ASSIGNMENT, 2);
    for member in [guid(id_kind::USER, 2), guid(id_kind::SERVICE_PRINCIPAL, 1)] {
        let grants = grants_of(&baseline, &member);
        assert_eq!(grants.len(), 1, "{member}: {grants:#?}");
        let grant = &grants[0];
        assert_eq!(grant["via"], "directory_role", "{member}");
        assert_eq!(grant["policy"], "Global Administrator", "{member}");
        assert_eq!(grant["group"], "admins-01", "{member}");
        assert_eq!(grant["group_id"], group_id.as_str(), "{member}");
        assert_eq!(grant["assignment_id"], assignment_id.as_str(), "{member}");
    }
    let direct = grants_of(&baseline, &guid(id_kind::USER, 1));
    assert_eq!(direct.len(), 1, "{direct:#?}");
    assert!(direct[0].get("group").is_none(), "{direct:#?}");
    assert_eq!(
        grants_of(&baseline, &guid(id_kind::USER, 3)),
        Vec::<Value>::new()
    );
    assert!(
        baseline.stderr.contains(DEVICE_MEMBER),
        "{}",
        baseline.stderr
    );

    let group_requests = fake.requests_for(&group_path(&group_id));
    assert_eq!(group_requests.len(), 1, "{group_requests:#?}");
    let select = group_requests[0].param("$select").unwrap_or_default();
    assert!(
        select.split(',').any(|field| field == "displayName"),
        "{select}"
    );
    let member_requests = fake.requests_for(&group_members_path(&group_id));
    assert_eq!(member_requests.len(), 3, "one page per member");
    assert_links_followed(&member_requests);
    let group_reads = fake
        .requests()
        .into_iter()
        .filter(|request| request.path.starts_with("/v1.0/groups/"))
        .count();
    assert_eq!(group_reads, 4, "only the group that holds a role is read");

    fake.clear_requests();
    let new_member = guid(id_kind::USER, 3);
    fake.edit_tenant(|tenant| tenant.groups[0].members.push(new_member.clone()));
    let scan = workspace.scan(&fake);

    scan.assert_exit(1);
    assert_all_complete(&scan);
    let expected = vec![("privilege_added".to_string(), new_member.clone())];
    assert_eq!(scan.finding_keys(), expected, "{:#}", scan.report);
    let finding = scan.finding("privilege_added", &new_member);
    assert_eq!(finding["severity"], "critical", "{finding:#}");
    assert_eq!(finding["expected"], false, "{finding:#}");
    assert_eq!(finding["technique"]["id"], "T1098.003", "{finding:#}");
    let summary = finding["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("group admins-01"), "{summary}");
    assert_eq!(finding["evidence"]["group"], "admins-01", "{finding:#}");
    assert_eq!(
        finding["evidence"]["group_id"],
        group_id.as_str(),
        "{finding:#}"
    );
    let admin = finding["evidence"]["admin"].as_str().unwrap_or_default();
    assert!(admin.contains("admins-01"), "{admin}");
    let remove = format!("az ad group member remove --group {group_id} --member-id {new_member}");
    assert_eq!(
        finding["response"],
        serde_json::json!([remove]),
        "{finding:#}"
    );
}

/// A group whose record or members cannot be read leaves Privileges
/// incomplete with the group named, and its members keep their grants.
#[test]
fn unreadable_group_is_incomplete() {
    let group_id = guid(id_kind::GROUP, 1);
    // (fault, page size, what the reason must contain)
    let cases = [
        (
            Fault::Forbidden {
                path: group_members_path(&group_id),
            },
            MAX_PAGE_SIZE,
            "HTTP 403 Authorization_RequestDenied",
        ),
        (
            Fault::Throttle {
                path: group_path(&group_id),
                times: 100,
                retry_after_seconds: 0,
            },
            MAX_PAGE_SIZE,
            "HTTP 429 TooManyRequests",
        ),
        (
            Fault::RepeatedNextLink {
                path: group_members_path(&group_id),
            },
            1,
            "did not advance",
        ),
    ];
    for (fault, page_size, cause) in cases {
        let (fake, workspace, baseline) = fake_with_baseline(group_tenant(), "");
        fake.set_page_size(page_size);
        fake.add_fault(fault.clone());
        let scan = workspace.scan(&fake);

        scan.assert_exit(2);
        assert_eq!(
            scan.collection_status("privileges"),
            "incomplete",
            "{fault:?}"
        );
        let reason = scan.collection_reason("privileges");
        assert!(reason.contains(&group_id), "{fault:?}: {reason}");
        assert!(reason.contains(cause), "{fault:?}: {reason}");
        assert_eq!(
            scan.collection("privileges")["kept_previous"],
            true,
            "{fault:?}"
        );
        assert_eq!(scan.report_incomplete(), vec!["privileges"], "{fault:?}");
        assert_eq!(
            scan.snapshot["identities"], baseline.snapshot["identities"],
            "{fault:?}: the members keep their grants"
        );
        assert_eq!(
            scan.finding_keys(),
            Vec::<(String, String)>::new(),
            "{fault:?}"
        );
    }
}

/// A role assignment whose principal is neither a listed identity nor a
/// group (Graph returns 404, as for a deleted object) is logged, not
/// counted against Privileges.
#[test]
fn unknown_principal_is_a_warning() {
    let deleted = guid(id_kind::GROUP, 9);
    let mut tenant = Tenant::sample();
    tenant
        .role_assignments
        .push(FakeRoleAssignment::tenant_wide(
            3,
            &deleted,
            GLOBAL_ADMINISTRATOR,
        ));
    let fake = FakeGraph::start(tenant);
    let scan = Workspace::new(&fake, "").scan(&fake);

    scan.assert_exit(0);
    assert_all_complete(&scan);
    let assignment_id = guid(id_kind::ROLE_ASSIGNMENT, 3);
    assert!(scan.stderr.contains(&assignment_id), "{}", scan.stderr);
    assert!(scan.stderr.contains("404"), "{}", scan.stderr);
    let statuses: Vec<u16> = fake
        .requests_for(&group_path(&deleted))
        .iter()
        .map(|request| request.status)
        .collect();
    assert_eq!(statuses, vec![404], "read once, not retried");
    assert!(fake.requests_for(&group_members_path(&deleted)).is_empty());
    let holders: Vec<Value> = scan
        .identities()
        .into_iter()
        .filter(|identity| identity.to_string().contains(&assignment_id))
        .collect();
    assert!(holders.is_empty(), "{holders:#?}");
}

/// The second subscription of the Azure Resource Manager tests.
const SECOND_SUBSCRIPTION: &str = "5b5c0000-0000-4000-8000-000000000002";

impl Workspace {
    /// Adds lines to the tenant's table, which ends the config file.
    fn add_tenant_lines(&self, lines: &str) {
        let mut text = std::fs::read_to_string(&self.config).expect("read the config");
        text.push_str(lines);
        std::fs::write(&self.config, text).expect("write the config");
    }
}

/// Returns the owner ids recorded on an identity of a scan's snapshot.
fn owner_ids(scan: &Scan, id: &str) -> Vec<String> {
    let identity = scan.identity(id);
    let owners = identity["owners"].as_array().cloned().unwrap_or_default();
    owners
        .iter()
        .map(|owner| owner["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn new_owners_are_judged_by_reach() {
    // App 1 is owned by member 2. App 2's service principal (5) becomes
    // Global Administrator, so a new owner of app 2 can act as one.
    let mut tenant = scenario_tenant();
    tenant.applications[0].owners = vec![guid(id_kind::USER, 2)];
    let (fake, workspace, baseline) = fake_with_baseline(tenant, "");
    assert_eq!(
        owner_ids(&baseline, &guid(id_kind::APPLICATION, 1)),
        vec![guid(id_kind::USER, 2)]
    );
    assert_eq!(baseline.collection_status("owners"), "complete");

    let guest = guid(id_kind::USER, 10);
    let member = guid(id_kind::USER, 1);
    let principal = guid(id_kind::SERVICE_PRINCIPAL, 5);
    fake.edit_tenant(|tenant| {
        tenant.users.push(FakeUser::guest(10));
        tenant.applications[0].owners.push(guest.clone());
        tenant.applications[1].owners.push(member.clone());
        tenant
            .role_assignments
            .push(FakeRoleAssignment::tenant_wide(
                2,
                &principal,
                GLOBAL_ADMINISTRATOR,
            ));
        tenant.service_principals[0].owners.push(member.clone());
    });
    let scan = workspace.scan(&fake);

    scan.assert_exit(1);
    assert_eq!(scan.collection_status("owners"), "complete");
    let application_1 = guid(id_kind::APPLICATION, 1);
    let application_2 = guid(id_kind::APPLICATION, 2);
    let service_principal_1 = guid(id_kind::SERVICE_PRINCIPAL, 1);
    // (identity, owner, severity)
    let cases = [
        (&application_1, &guest, "high"),
        (&application_2, &member, "critical"),
        (&service_principal_1, &member, "medium"),
    ];
    for (identity, owner, severity) in cases {
        let finding = scan.finding("owner_added", identity);
        assert_eq!(finding["severity"], severity, "{finding:#}");
        assert_eq!(finding["expected"], false, "{finding:#}");
        assert_eq!(finding["technique"]["id"], "T1098", "{finding:#}");
        assert_eq!(
            finding["evidence"]["owner_id"],
            owner.as_str(),
            "{finding:#}"
        );
    }
    let guest_owner = scan.finding("owner_added", &application_1);
    assert_eq!(guest_owner["evidence"]["owner_user_type"], "Guest");
    let commands = guest_owner["response"].to_string();
    assert!(
        commands.contains(&format!(
            "az ad app owner remove --id {application_1} --owner-object-id {guest}"
        )),
        "{commands}"
    );
    let sp_owner = scan.finding("owner_added", &service_principal_1);
    let commands = sp_owner["response"].to_string();
    assert!(commands.contains("/owners/"), "{commands}");
    assert!(commands.contains("$ref"), "{commands}");

    // The owners came from $expand on both lists, with no per-object listing.
    for path in [APPLICATIONS_PATH, SERVICE_PRINCIPALS_PATH] {
        let requests = fake.requests_for(path);
        assert!(!requests.is_empty(), "{path}");
        for request in requests {
            assert_eq!(request.param("$expand"), Some("owners"), "{}", request.url);
        }
    }
    let per_object = fake
        .requests()
        .iter()
        .filter(|request| request.path.ends_with("/owners"))
        .count();
    assert_eq!(per_object, 0);
}

#[test]
fn owners_past_expand_cap_are_listed() {
    // Graph expands at most 20 owners, so an app with 25 has its owners
    // listed on their own, over pages of 10.
    let mut tenant = Tenant::sample();
    tenant.users.extend((3..=27).map(FakeUser::member));
    tenant.applications[0].owners = (3..=27).map(|number| guid(id_kind::USER, number)).collect();
    tenant.service_principals[0].owners =
        (3..=22).map(|number| guid(id_kind::USER, number)).collect();
    let fake = FakeGraph::start(tenant);
    let workspace = Workspace::new(&fake, "page_size = 10");
    let scan = workspace.scan(&fake);

    scan.assert_exit(0);
    assert_eq!(scan.collection_status("owners"), "complete");
    let application = guid(id_kind::APPLICATION, 1);
    let principal = guid(id_kind::SERVICE_PRINCIPAL, 1);
    assert_eq!(owner_ids(&scan, &application).len(), 25);
    // Exactly 20 expanded may be cut short too, so they are listed again.
    assert_eq!(owner_ids(&scan, &principal).len(), EXPANDED_OWNERS_LIMIT);
    let application_owner_pages = fake.requests_for(&owners_path(APPLICATIONS_PATH, &application));
    assert_eq!(
        application_owner_pages.len(),
        3,
        "{application_owner_pages:#?}"
    );
    assert_links_followed(&application_owner_pages);
    assert_eq!(
        fake.requests_for(&owners_path(SERVICE_PRINCIPALS_PATH, &principal))
            .len(),
        2
    );
    let owner = scan.identity(&application)["owners"][0].clone();
    assert_eq!(owner["kind"], "user");
    assert_eq!(owner["user_type"], "Member");
}

#[test]
fn failed_owner_listing_keeps_other_owners() {
    let mut tenant = Tenant::sample();
    tenant.users.extend((3..=22).map(FakeUser::member));
    tenant.applications[0].owners = (3..=22).map(|number| guid(id_kind::USER, number)).collect();
    tenant.service_principals[0].owners = vec![guid(id_kind::USER, 2)];
    let (fake, workspace, _) = fake_with_baseline(tenant, "");
    let application = guid(id_kind::APPLICATION, 1);
    fake.add_fault(Fault::Forbidden {
        path: owners_path(APPLICATIONS_PATH, &application),
    });
    fake.edit_tenant(|tenant| {
        tenant.service_principals[0]
            .owners
            .push(guid(id_kind::USER, 3))
    });
    let scan = workspace.scan(&fake);

    scan.assert_exit(2);
    assert_eq!(scan.collection_status("owners"), "incomplete");
    assert_eq!(
        scan.collection("owners")["unlisted"],
        serde_json::json!([application])
    );
    // The app keeps its 20 owners, and the service principal's new owner is reported.
    assert_eq!(owner_ids(&scan, &application).len(), 20);
    assert_eq!(
        scan.finding_keys(),
        vec![(
            "owner_added".to_string(),
            guid(id_kind::SERVICE_PRINCIPAL, 1)
        )]
    );
}

/// Builds the Azure Resource Manager baseline of [`Tenant::sample`] with
/// two subscriptions. Member 1 is Owner of the first and member 2 its
/// Reader. Service principal 1 is Contributor at a management group. The
/// user-assigned identity `uami-deploy` (service principal 4) has no
/// federated credentials.
fn arm_tenant() -> Tenant {
    let mut tenant = Tenant::sample();
    let arm = &mut tenant.arm;
    arm.subscriptions = vec![SUBSCRIPTION_ID.to_string(), SECOND_SUBSCRIPTION.to_string()];
    let subscription = subscription_scope(SUBSCRIPTION_ID);
    arm.role_assignments = vec![
        FakeRbacAssignment::new(1, &subscription, OWNER, &guid(id_kind::USER, 1), "User"),
        FakeRbacAssignment::new(2, &subscription, READER, &guid(id_kind::USER, 2), "User"),
        FakeRbacAssignment::new(
            3,
            &management_group_scope("corp"),
            CONTRIBUTOR,
            &guid(id_kind::SERVICE_PRINCIPAL, 1),
            "ServicePrincipal",
        ),
    ];
    arm.identities = vec![FakeUserAssignedIdentity::new(
        1,
        SUBSCRIPTION_ID,
        "uami-deploy",
        &guid(id_kind::SERVICE_PRINCIPAL, 4),
    )];
    arm.page_size = 1;
    tenant
}

/// Starts a fake of [`arm_tenant`], scans a baseline that lists both
/// subscriptions and management group `corp`, and clears its requests.
fn arm_baseline() -> (FakeGraph, Workspace, Scan) {
    let fake = FakeGraph::start(arm_tenant());
    let workspace = Workspace::new(&fake, "");
    workspace.add_tenant_lines(&format!(
        "subscriptions = [\"{SUBSCRIPTION_ID}\", \"{SECOND_SUBSCRIPTION}\"]\n\
         management_groups = [\"corp\"]\narm_url = \"{}\"\n",
        fake.arm_url()
    ));
    let baseline = workspace.scan(&fake);
    baseline.assert_exit(0);
    assert_all_complete(&baseline);
    for name in ["owners", "azure_rbac", "user_assigned_identities"] {
        assert_eq!(baseline.collection_status(name), "complete", "{name}");
    }
    fake.clear_requests();
    (fake, workspace, baseline)
}

#[test]
fn rbac_grants_land_on_principals() {
    let (_fake, _workspace, baseline) = arm_baseline();
    let owner_grants = grants_of(&baseline, &guid(id_kind::USER, 1));
    assert_eq!(owner_grants.len(), 2, "{owner_grants:#?}");
    let rbac: Vec<&Value> = owner_grants
        .iter()
        .filter(|grant| grant["via"] == "azure_rbac")
        .collect();
    assert_eq!(rbac.len(), 1);
    assert_eq!(
        rbac[0]["policy"],
        format!("Owner at /subscriptions/{SUBSCRIPTION_ID}")
    );
    assert!(
        rbac[0]["assignment_id"]
            .as_str()
            .is_some_and(|id| id.ends_with(&guid(common::fake_arm::RBAC_ASSIGNMENT_KIND, 1)))
    );
    // Reader is not recorded; the management group's Contributor is,
    // once although both subscriptions list it.
    assert!(grants_of(&baseline, &guid(id_kind::USER, 2)).is_empty());
    let contributor = grants_of(&baseline, &guid(id_kind::SERVICE_PRINCIPAL, 1));
    assert_eq!(contributor.len(), 1, "{contributor:#?}");
    assert_eq!(
        contributor[0]["policy"],
        "Contributor at /providers/Microsoft.Management/managementGroups/corp"
    );
}

#[test]
fn rbac_scenario_reports_each_way_in() {
    let (fake, workspace, _) = arm_baseline();
    let new_principal = guid(id_kind::SERVICE_PRINCIPAL, 8);
    let first_party = guid(id_kind::SERVICE_PRINCIPAL, 2);
    let managed = guid(id_kind::SERVICE_PRINCIPAL, 4);
    let subscription = subscription_scope(SUBSCRIPTION_ID);
    fake.edit_tenant(|tenant| {
        tenant
            .service_principals
            .push(FakeServicePrincipal::application(8));
        let arm = &mut tenant.arm;
        arm.role_assignments.push(FakeRbacAssignment::new(
            4,
            &subscription,
            OWNER,
            &new_principal,
            "ServicePrincipal",
        ));
        arm.role_assignments.push(FakeRbacAssignment::new(
            5,
            &subscription,
            CONTRIBUTOR,
            &first_party,
            "ServicePrincipal",
        ));
        arm.identities[0]
            .credentials
            .push(FakeIdentityCredential::github("gh-prod", "attacker/repo"));
    });
    fake.add_arm_fault(ArmFault::Throttle {
        path: format!("{subscription}/providers/Microsoft.Authorization/roleAssignments"),
        times: 2,
        retry_after_seconds: 1,
    });
    let scan = workspace.scan(&fake);

    scan.assert_exit(1);
    assert_eq!(scan.collection_status("azure_rbac"), "complete");
    let mut expected_keys = vec![
        ("credential_added".to_string(), managed.clone()),
        ("identity_added".to_string(), new_principal.clone()),
        ("privilege_added".to_string(), first_party.clone()),
    ];
    expected_keys.sort();
    assert_eq!(scan.finding_keys(), expected_keys, "{:#}", scan.report);

    let created = scan.finding("identity_added", &new_principal);
    assert_eq!(created["severity"], "critical", "{created:#}");
    assert_eq!(created["expected"], false);
    assert!(
        created["severity_reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("Owner at /subscriptions/")),
        "{created:#}"
    );
    let commands = created["response"].to_string();
    assert!(
        commands.contains(&format!(
            "az role assignment delete --ids {subscription}/providers/Microsoft.Authorization/roleAssignments/"
        )),
        "{commands}"
    );

    let platform = scan.finding("privilege_added", &first_party);
    assert_eq!(platform["expected"], true, "{platform:#}");
    assert_eq!(platform["severity"], "low", "{platform:#}");
    assert_eq!(platform["technique"]["id"], "T1098.003");

    let federated = scan.finding("credential_added", &managed);
    assert_eq!(federated["severity"], "high", "{federated:#}");
    assert_eq!(federated["technique"]["id"], "T1098.001");
    let detail = federated["evidence"]["credential_detail"]
        .as_str()
        .unwrap_or_default();
    assert!(
        detail.contains("https://token.actions.githubusercontent.com"),
        "{detail}"
    );
    assert!(
        detail.contains("repo:attacker/repo:environment:production"),
        "{detail}"
    );
    let commands = federated["response"].to_string();
    assert!(
        commands.contains(&format!(
            "az identity federated-credential delete --name gh-prod --identity-name uami-deploy \
             --resource-group rg-fake --subscription {SUBSCRIPTION_ID} --yes"
        )),
        "{commands}"
    );

    // Both throttled requests were retried, every list followed nextLink
    // one record at a time, and every ARM request carried an ARM token.
    let requests = fake.arm_requests();
    let throttled: Vec<&RecordedRequest> = requests
        .iter()
        .filter(|request| request.status == 429)
        .collect();
    assert_eq!(throttled.len(), 2);
    let role_pages: Vec<RecordedRequest> = requests
        .iter()
        .filter(|request| {
            request.path
                == format!("{subscription}/providers/Microsoft.Authorization/roleAssignments")
                && request.status == 200
        })
        .cloned()
        .collect();
    assert_links_followed(&role_pages);
    assert!(role_pages.len() >= 3, "{role_pages:#?}");
    for request in &requests {
        assert_eq!(
            request.param("$filter").is_some(),
            request.path.ends_with("roleAssignments")
        );
        assert_ne!(request.status, 401, "{}", request.url);
    }
}

#[test]
fn arm_denied_subscription_is_incomplete() {
    let (fake, workspace, baseline) = arm_baseline();
    let member = guid(id_kind::USER, 1);
    assert_eq!(grants_of(&baseline, &member).len(), 2);
    // The second subscription is denied; the first loses member 1's Owner,
    // which must not read as a removal while the collection is incomplete.
    fake.add_arm_fault(ArmFault::Forbidden {
        path: format!(
            "{}/providers/Microsoft.Authorization/roleAssignments",
            subscription_scope(SECOND_SUBSCRIPTION)
        ),
    });
    fake.edit_tenant(|tenant| {
        tenant.arm.role_assignments.remove(0);
    });
    let scan = workspace.scan(&fake);

    scan.assert_exit(2);
    assert_eq!(scan.collection_status("azure_rbac"), "incomplete");
    assert_eq!(scan.collection("azure_rbac")["kept_previous"], true);
    let reason = scan.collection_reason("azure_rbac");
    for needed in [
        TENANT_ID,
        SECOND_SUBSCRIPTION,
        "Reader",
        "AuthorizationFailed",
        "403",
    ] {
        assert!(reason.contains(needed), "{needed} missing from {reason}");
    }
    assert!(scan.findings().is_empty(), "{:#}", scan.report);
    assert!(scan.report_incomplete().contains(&"azure_rbac".to_string()));
    assert_eq!(grants_of(&scan, &member).len(), 2);
    // The directory role listing is unaffected.
    assert_eq!(scan.collection_status("privileges"), "complete");
}

#[test]
fn arm_token_for_graph_is_refused() {
    // A token issued for Graph gets ARM's audience error from the fake.
    let fake = FakeGraph::start(arm_tenant());
    let token = fetch_token(&fake);
    let url = format!(
        "{}/subscriptions/{SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01",
        fake.arm_url()
    );
    let response = graph_get(&url, &token);
    assert_eq!(response.status, 401, "{response:?}");
    assert_eq!(
        response.json()["error"]["code"],
        "InvalidAuthenticationTokenAudience"
    );
}

#[test]
fn rbac_unknown_principals_are_warned() {
    // Owner for a deleted user, and Contributor for a group Graph does not
    // find: neither lands on an identity, and both are named on stderr.
    let deleted_user = guid(id_kind::USER, 90);
    let deleted_group = guid(id_kind::GROUP, 91);
    let mut tenant = arm_tenant();
    let subscription = subscription_scope(SUBSCRIPTION_ID);
    tenant.arm.role_assignments.push(FakeRbacAssignment::new(
        6,
        &subscription,
        OWNER,
        &deleted_user,
        "User",
    ));
    tenant.arm.role_assignments.push(FakeRbacAssignment::new(
        7,
        &subscription,
        CONTRIBUTOR,
        &deleted_group,
        "Group",
    ));
    let fake = FakeGraph::start(tenant);
    let workspace = Workspace::new(&fake, "");
    workspace.add_tenant_lines(&format!(
        "subscriptions = [\"{SUBSCRIPTION_ID}\"]\narm_url = \"{}\"\n",
        fake.arm_url()
    ));
    let scan = workspace.scan(&fake);

    scan.assert_exit(0);
    assert_eq!(scan.collection_status("azure_rbac"), "complete");
    for (number, principal) in [(6, &deleted_user), (7, &deleted_group)] {
        let assignment = guid(common::fake_arm::RBAC_ASSIGNMENT_KIND, number);
        assert!(
            scan.stderr.contains(&assignment),
            "{assignment}: {}",
            scan.stderr
        );
        assert!(
            scan.stderr.contains(principal.as_str()),
            "{principal}: {}",
            scan.stderr
        );
        let holders: Vec<Value> = scan
            .identities()
            .into_iter()
            .filter(|identity| identity.to_string().contains(&assignment))
            .collect();
        assert!(holders.is_empty(), "{holders:#?}");
    }
    assert!(scan.stderr.contains("Owner"), "{}", scan.stderr);
    // The group principal was looked up in Graph once.
    assert_eq!(fake.requests_for(&group_path(&deleted_group)).len(), 1);
}

#[test]
fn rbac_group_grant_reaches_members() {
    // Owner of the subscription through a group of member 2 and service principal 1.
    let members = [guid(id_kind::USER, 2), guid(id_kind::SERVICE_PRINCIPAL, 1)];
    let group = FakeGroup::role_assignable(1, &members);
    let mut tenant = arm_tenant();
    tenant.arm.role_assignments.push(FakeRbacAssignment::new(
        8,
        &subscription_scope(SUBSCRIPTION_ID),
        OWNER,
        &group.id,
        "Group",
    ));
    let group_id = group.id.clone();
    tenant.groups.push(group);
    let fake = FakeGraph::start(tenant);
    let workspace = Workspace::new(&fake, "");
    workspace.add_tenant_lines(&format!(
        "subscriptions = [\"{SUBSCRIPTION_ID}\"]\narm_url = \"{}\"\n",
        fake.arm_url()
    ));
    let scan = workspace.scan(&fake);

    scan.assert_exit(0);
    assert_eq!(scan.collection_status("azure_rbac"), "complete");
    for member in &members {
        let grants = grants_of(&scan, member);
        let through_group: Vec<&Value> = grants
            .iter()
            .filter(|grant| grant["group_id"] == group_id.as_str())
            .collect();
        assert_eq!(through_group.len(), 1, "{member}: {grants:#?}");
        assert_eq!(through_group[0]["via"], "azure_rbac");
    }
}
