//! A Microsoft Graph v1.0 client over reqwest: bearer tokens from an
//! azure_identity credential, `@odata.nextLink` paging, retries on
//! throttling, and errors that name the collection and what to do.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use serde_json::Value;
use tracing::debug;

use crate::collect::error_chain;
use crate::settings::RetrySettings;

/// Builds a fresh credential, whose token cache starts empty.
pub type CredentialFactory =
    Box<dyn Fn() -> Result<Arc<dyn TokenCredential>, String> + Send + Sync>;

/// Maximum wait a `Retry-After` header may ask for; a longer one gives up
/// the listing as throttled out.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Most pages read from one listing before it is declared cut short.
const MAX_PAGES: usize = 10_000;

/// The conventions of one Microsoft REST API that differ between Graph
/// and Azure Resource Manager: the next-page link and the error hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestApi {
    /// The API's name in messages.
    pub name: &'static str,
    /// The field of a page that contains the URL of the next page.
    pub next_link: &'static str,
    /// The error codes of a 404 that means no object has the requested id.
    pub not_found_codes: &'static [&'static str],
    /// The next step for the user after a 403.
    pub forbidden_hint: &'static str,
}

/// Microsoft Graph v1.0.
pub const GRAPH: RestApi = RestApi {
    name: "Graph",
    next_link: "@odata.nextLink",
    not_found_codes: &["Request_ResourceNotFound"],
    forbidden_hint: "grant the application permissions in the README and admin consent",
};

/// Azure Resource Manager, whose lists page by `nextLink` and whose errors
/// have Graph's `{"error": {"code", "message"}}` shape.
pub const ARM: RestApi = RestApi {
    name: "Azure Resource Manager",
    next_link: "nextLink",
    not_found_codes: &[
        "ResourceNotFound",
        "SubscriptionNotFound",
        "ResourceGroupNotFound",
    ],
    forbidden_hint: "assign the scanning identity the Reader role on that subscription or \
                     management group",
};

/// A Graph (or Azure Resource Manager) client for one tenant.
pub struct GraphClient {
    api: RestApi,
    http: reqwest::Client,
    credential: RwLock<Arc<dyn TokenCredential>>,
    new_credential: CredentialFactory,
    scope: String,
    base_url: String,
    retry: RetrySettings,
    calls: AtomicU64,
}

/// One failed request, described for a person.
type Failure = String;

/// A token request that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFailure {
    /// The error and its causes on one line.
    pub reason: String,
    /// The HTTP status of the token endpoint's error response, or none
    /// when the endpoint could not be reached.
    pub status: Option<u16>,
}

/// Returns the HTTP status of the first error in a chain that carries one.
fn response_status(error: &azure_core::Error) -> Option<u16> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = current {
        let status = cause
            .downcast_ref::<azure_core::Error>()
            .and_then(azure_core::Error::http_status);
        if let Some(status) = status {
            return Some(u16::from(status));
        }
        current = cause.source();
    }
    None
}

impl GraphClient {
    /// Creates a client that sends requests under `base_url` (for example
    /// `https://graph.microsoft.com`) with tokens for `scope`, from the
    /// credentials that `new_credential` builds.
    pub fn new(
        new_credential: CredentialFactory,
        scope: String,
        base_url: String,
        retry: RetrySettings,
    ) -> Result<GraphClient, Failure> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(retry.attempt_timeout)
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
        let credential = new_credential()?;
        Ok(GraphClient {
            api: GRAPH,
            http,
            credential: RwLock::new(credential),
            new_credential,
            scope,
            base_url: base_url.trim_end_matches('/').to_string(),
            retry,
            calls: AtomicU64::new(0),
        })
    }

    /// Makes the client follow another API's conventions, such as [`ARM`].
    pub fn with_api(mut self, api: RestApi) -> GraphClient {
        self.api = api;
        self
    }

    /// Gets a token for the client's scope, which the credential caches for
    /// the requests that follow.
    pub async fn check_token(&self) -> Result<(), TokenFailure> {
        let credential = self.current_credential();
        match credential.get_token(&[self.scope.as_str()], None).await {
            Ok(_) => Ok(()),
            Err(error) => Err(TokenFailure {
                reason: error_chain(&error),
                status: response_status(&error),
            }),
        }
    }

    /// Returns the HTTP requests sent so far, retries included.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Returns the absolute URL of a Graph path such as `/v1.0/users`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base_url)
    }

    /// Reads every page of a listing, following `@odata.nextLink` verbatim
    /// while one is present (past empty pages too), and returns its records
    /// with repeated ids dropped.
    ///
    /// Fails when a request fails, a page is malformed, a next link repeats
    /// (the listing did not advance), or after [`MAX_PAGES`] pages.
    pub async fn list(&self, what: &str, first_url: String) -> Result<Vec<Value>, Failure> {
        let mut records = Vec::new();
        let mut seen_ids = HashSet::new();
        let mut seen_links = HashSet::new();
        let origin = origin_of(&first_url);
        let mut next = Some(first_url);

        for page_number in 1..=MAX_PAGES {
            let Some(url) = next.take() else {
                return Ok(records);
            };
            let page = match self.get_json(what, &url).await? {
                Fetched::Found(page) => page,
                Fetched::NotFound(failure) => return Err(failure),
            };
            let Some(values) = page.get("value").and_then(Value::as_array) else {
                return Err(format!(
                    "{what}: page {page_number} is malformed: it has no \"value\" list"
                ));
            };
            for record in values {
                let id = record.get("id").and_then(Value::as_str).map(str::to_string);
                // Records without an id are kept for the converter to report.
                if id.as_ref().is_none_or(|id| seen_ids.insert(id.clone())) {
                    records.push(record.clone());
                }
            }

            next = match page.get(self.api.next_link) {
                None | Some(Value::Null) => None,
                Some(Value::String(link)) => Some(link.clone()),
                Some(other) => {
                    return Err(format!(
                        "{what}: page {page_number} has a malformed {}: {other}",
                        self.api.next_link
                    ));
                }
            };
            if let Some(link) = &next {
                // The bearer token goes with every page, so a link to
                // another host is refused rather than followed.
                if origin_of(link) != origin {
                    return Err(format!(
                        "{what}: page {page_number} has an @odata.nextLink to another host than \
                         the Graph endpoint: {}",
                        crate::report::sanitize(link)
                    ));
                }
                if !seen_links.insert(link.clone()) {
                    return Err(format!(
                        "{what}: the listing did not advance: the next link repeated after page {page_number}"
                    ));
                }
                debug!(what, page = page_number, "reading next page");
            }
        }
        Err(format!("{what}: stopped after {MAX_PAGES} pages"))
    }

    /// Gets one object, such as `/v1.0/groups/{id}`, with the retries of
    /// [`GraphClient::list`]. Returns `Ok(None)` when Graph returns 404
    /// `Request_ResourceNotFound`, which means no object has that id.
    pub async fn get(&self, what: &str, url: String) -> Result<Option<Value>, Failure> {
        match self.get_json(what, &url).await? {
            Fetched::Found(object) => Ok(Some(object)),
            Fetched::NotFound(failure) => {
                debug!(what, failure = %failure, "not found");
                Ok(None)
            }
        }
    }

    /// Gets one page, retrying throttling (429) and unavailability (503,
    /// 504, connection errors) with `Retry-After` or exponential backoff, and
    /// a 401 once with a fresh token.
    async fn get_json(&self, what: &str, url: &str) -> Result<Fetched, Failure> {
        let mut attempt = 1;
        let mut refreshed = false;
        loop {
            let credential = self.current_credential();
            let token = credential
                .get_token(&[self.scope.as_str()], None)
                .await
                .map_err(|error| {
                    format!(
                        "{what}: could not get a {} token: {}",
                        self.api.name,
                        error_chain(&error)
                    )
                })?;
            self.calls.fetch_add(1, Ordering::Relaxed);
            let sent = self
                .http
                .get(url)
                .bearer_auth(token.token.secret())
                .header("Accept", "application/json")
                .send()
                .await;

            let response = match sent {
                Ok(response) => response,
                Err(error) if attempt < self.retry.max_attempts => {
                    debug!(what, attempt, error = %error, "request failed; retrying");
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                    attempt += 1;
                    continue;
                }
                Err(error) => {
                    return Err(format!(
                        "{what}: could not reach {} after {attempt} attempts ({}); check graph_url or arm_url, the network and proxy settings",
                        self.api.name,
                        error_chain(&error)
                    ));
                }
            };

            let status = response.status().as_u16();
            let retry_after = crate::collect::retry_after(&response);
            let body = response.text().await.unwrap_or_default();
            match status {
                200 => {
                    return serde_json::from_str(&body)
                        .map(Fetched::Found)
                        .map_err(|error| format!("{what}: the page is not valid JSON: {error}"));
                }
                404 if graph_error_code(&body)
                    .is_some_and(|code| self.api.not_found_codes.contains(&code.as_str())) =>
                {
                    let failure = describe_status(&self.api, what, status, &body, attempt);
                    return Ok(Fetched::NotFound(failure));
                }
                401 if !refreshed => {
                    // azure_identity caches tokens and cannot be made to drop
                    // one, so a fresh credential (with an empty cache) replaces it.
                    debug!(
                        what,
                        api = self.api.name,
                        "401; retrying with a fresh token"
                    );
                    self.replace_credential(&credential)?;
                    refreshed = true;
                }
                429 | 503 | 504 if retry_after.is_some_and(|wait| wait > MAX_RETRY_AFTER) => {
                    return Err(format!(
                        "{what}: {} asked to wait {} s (Retry-After), longer than idrift waits; scan later",
                        self.api.name,
                        retry_after.unwrap_or_default().as_secs()
                    ));
                }
                429 | 503 | 504 if attempt < self.retry.max_attempts => {
                    // Retry-After is a minimum; backoff applies without one.
                    let wait = retry_after.unwrap_or_else(|| self.retry.backoff(attempt));
                    debug!(
                        what,
                        status,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "throttled; waiting"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => return Err(describe_status(&self.api, what, status, &body, attempt)),
            }
        }
    }

    fn current_credential(&self) -> Arc<dyn TokenCredential> {
        let guard = self
            .credential
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(&guard)
    }

    /// Replaces the credential that issued a refused token, unless another
    /// request already did.
    fn replace_credential(&self, refused: &Arc<dyn TokenCredential>) -> Result<(), Failure> {
        let mut guard = self
            .credential
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if Arc::ptr_eq(&guard, refused) {
            *guard = (self.new_credential)()?;
        }
        Ok(())
    }
}

/// A response that ends a request: a page or object, or Graph's response
/// that the object does not exist.
enum Fetched {
    /// The JSON body of a 200 response.
    Found(Value),
    /// 404 `Request_ResourceNotFound`, described for a person.
    NotFound(Failure),
}

/// Returns the `error.code` of a Graph error body, if it has one.
fn graph_error_code(body: &str) -> Option<String> {
    let parsed: Value = serde_json::from_str(body).ok()?;
    parsed["error"]["code"].as_str().map(str::to_string)
}

/// Describes a failed response by status and the API's error code and message.
fn describe_status(api: &RestApi, what: &str, status: u16, body: &str, attempts: u32) -> Failure {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let code = parsed["error"]["code"].as_str().unwrap_or("unknown error");
    let message = parsed["error"]["message"].as_str().unwrap_or("");
    let hint = match status {
        401 => " (the token was refused; check the tenant id and the credential)".to_string(),
        403 => format!(" ({})", api.forbidden_hint),
        429 | 503 | 504 => {
            " (still throttled or unavailable after every retry; raise retry.max_attempts or scan later)"
                .to_string()
        }
        _ => String::new(),
    };
    format!("{what} failed with HTTP {status} {code}: {message}{hint} after {attempts} attempts")
}

/// Returns the scheme, host and port of a URL, or none when it does not parse.
fn origin_of(url: &str) -> Option<(String, String, Option<u16>)> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let host = parsed.host_str()?.to_ascii_lowercase();
    Some((
        parsed.scheme().to_string(),
        host,
        parsed.port_or_known_default(),
    ))
}
