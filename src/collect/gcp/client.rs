//! A Google Cloud REST client over reqwest: request headers from
//! google-cloud-auth, retries of throttling and unavailability, and paging
//! by `nextPageToken`.

use std::collections::HashSet;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use google_cloud_auth::credentials::{CacheableResource, Credentials};
use serde_json::Value;
use tokio::sync::Semaphore;
use tracing::debug;

use crate::collect::error_chain;
use crate::settings::RetrySettings;

/// A failed call, as a message that names the call and what to do.
pub type Failure = String;

/// Pages read from one listing before it is given up as endless.
const MAX_PAGES: usize = 10_000;

/// The longest `Retry-After` idrift waits for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// A request that failed before any response: the credential could not
/// produce headers. The whole scope is then unavailable.
#[derive(Debug)]
pub enum CallError {
    /// google-cloud-auth could not produce a token.
    Credentials(String),
    /// The call failed: an HTTP error, a network failure or a malformed body.
    Failed(Failure),
}

impl CallError {
    /// Returns the message.
    pub fn message(&self) -> &str {
        match self {
            CallError::Credentials(message) | CallError::Failed(message) => message,
        }
    }
}

/// Advice that an error message gives the user, per kind of failure. Each
/// text follows the failure in parentheses or after a semicolon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hints {
    /// After the API could not be reached: the settings that name it.
    pub unreachable: String,
    /// After HTTP 403: the role or permission to grant.
    pub forbidden: String,
    /// After HTTP 404: the value to check.
    pub not_found: String,
}

impl Default for Hints {
    /// Returns the hints for the IAM and Cloud Resource Manager APIs.
    fn default() -> Hints {
        Hints {
            unreachable: "check iam_url and resource_manager_url, the network and proxy settings"
                .to_string(),
            forbidden: "grant the scanning principal roles/iam.securityReviewer on the project, \
                        or the permissions in the README"
                .to_string(),
            not_found: "check the project id".to_string(),
        }
    }
}

/// Builds credentials, once at the start and again after a 401.
pub type CredentialsFactory = Box<dyn Fn() -> Result<Credentials, Failure> + Send + Sync>;

/// A client for the IAM and Cloud Resource Manager REST APIs.
pub struct GcpClient {
    http: reqwest::Client,
    /// The credentials, with a generation that grows each time they are replaced.
    credentials: RwLock<(u64, Credentials)>,
    new_credentials: CredentialsFactory,
    /// The credentials' source, named in error messages.
    source: String,
    retry: RetrySettings,
    /// Requests in flight at once, across every project.
    permits: Semaphore,
    hints: Hints,
}

impl GcpClient {
    /// Creates a client that authorizes every request with credentials
    /// from `new_credentials`, described by `source` in error messages.
    pub fn new(
        new_credentials: CredentialsFactory,
        source: String,
        retry: &RetrySettings,
        concurrency: usize,
    ) -> Result<GcpClient, Failure> {
        let credentials = new_credentials()?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(retry.attempt_timeout)
            .build()
            .map_err(|error| format!("cannot set up the HTTP client: {}", error_chain(&error)))?;
        Ok(GcpClient {
            http,
            credentials: RwLock::new((0, credentials)),
            new_credentials,
            source,
            retry: retry.clone(),
            permits: Semaphore::new(concurrency.max(1)),
            hints: Hints::default(),
        })
    }

    /// Replaces the hints that error messages give, for an API other than
    /// IAM and Cloud Resource Manager.
    pub fn with_hints(mut self, hints: Hints) -> GcpClient {
        self.hints = hints;
        self
    }

    /// Reads every page of a list: `url` plus `pageToken` for as long as the
    /// previous page returned a non-empty `nextPageToken`. Returns the
    /// records under `field`, and counts each request in `calls`.
    ///
    /// Fails when a call fails, a page is malformed, a token repeats (the
    /// listing did not advance), or after [`MAX_PAGES`] pages.
    pub async fn list(
        &self,
        calls: &AtomicU64,
        what: &str,
        url: &str,
        field: &str,
    ) -> Result<Vec<Value>, CallError> {
        let mut records = Vec::new();
        let mut seen_tokens = HashSet::new();
        let mut token: Option<String> = None;
        let separator = if url.contains('?') { '&' } else { '?' };

        for page_number in 1..=MAX_PAGES {
            let page_url = match &token {
                Some(token) => format!("{url}{separator}pageToken={}", encode(token)),
                None => url.to_string(),
            };
            let page = self
                .send(calls, what, reqwest::Method::GET, &page_url, None)
                .await?;
            check_page(what, page_number, &page)?;
            // Google leaves an empty list out of the response.
            match page.get(field) {
                None | Some(Value::Null) => {}
                Some(Value::Array(values)) => records.extend(values.iter().cloned()),
                Some(other) => {
                    return Err(CallError::Failed(format!(
                        "{what}: page {page_number} is malformed: \"{field}\" is not a list but {}",
                        kind_of(other)
                    )));
                }
            }
            token = match page.get("nextPageToken") {
                None | Some(Value::Null) => None,
                Some(Value::String(next)) if next.is_empty() => None,
                Some(Value::String(next)) => Some(next.clone()),
                Some(other) => {
                    return Err(CallError::Failed(format!(
                        "{what}: page {page_number} has a malformed nextPageToken: {other}"
                    )));
                }
            };
            match &token {
                None => return Ok(records),
                Some(next) if !seen_tokens.insert(next.clone()) => {
                    return Err(CallError::Failed(format!(
                        "{what}: the listing did not advance: nextPageToken repeated after page {page_number}"
                    )));
                }
                Some(_) => debug!(what, page = page_number, "reading next page"),
            }
        }
        Err(CallError::Failed(format!(
            "{what}: stopped after {MAX_PAGES} pages"
        )))
    }

    /// Sends one request and returns its JSON body, retrying throttling
    /// (429) and unavailability (500, 502, 503, 504, network errors) with
    /// `Retry-After` or exponential backoff. Counts each request in `calls`.
    pub async fn send(
        &self,
        calls: &AtomicU64,
        what: &str,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let mut attempt = 1;
        let mut refreshed = false;
        loop {
            let (generation, credentials) = self.current_credentials();
            let headers = self.headers(what, &credentials).await?;
            calls.fetch_add(1, Ordering::Relaxed);
            let permit = self.permits.acquire().await;
            let mut request = self
                .http
                .request(method.clone(), url)
                .headers(headers)
                .header("Accept", "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) if attempt < self.retry.max_attempts => {
                    debug!(what, attempt, error = %error, "request failed; retrying");
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                    attempt += 1;
                    continue;
                }
                Err(error) => {
                    return Err(CallError::Failed(format!(
                        "{what}: could not reach the API after {attempt} attempts ({}); {}",
                        error_chain(&error),
                        self.hints.unreachable
                    )));
                }
            };

            let status = response.status().as_u16();
            let retry_after = crate::collect::retry_after(&response);
            let text = response.text().await.unwrap_or_default();
            drop(permit);
            let retryable = matches!(status, 429 | 500 | 502 | 503 | 504);
            match status {
                200 => {
                    return serde_json::from_str(&text).map_err(|error| {
                        CallError::Failed(format!(
                            "{what}: the response is not valid JSON: {error}"
                        ))
                    });
                }
                401 if !refreshed => {
                    // google-cloud-auth keeps serving a cached token that the
                    // API rejected, so fresh credentials replace it.
                    debug!(what, "401 from the API; retrying with fresh credentials");
                    self.replace_credentials(generation)
                        .map_err(CallError::Credentials)?;
                    refreshed = true;
                }
                _ if retryable && retry_after.is_some_and(|wait| wait > MAX_RETRY_AFTER) => {
                    return Err(CallError::Failed(format!(
                        "{what}: the API asked to wait {} s (Retry-After), longer than idrift waits; scan later",
                        retry_after.unwrap_or_default().as_secs()
                    )));
                }
                _ if retryable && attempt < self.retry.max_attempts => {
                    let wait = retry_after.unwrap_or_else(|| self.retry.backoff(attempt));
                    debug!(
                        what,
                        status,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "throttled or unavailable; waiting"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => {
                    return Err(CallError::Failed(describe_status(
                        what,
                        status,
                        &text,
                        attempt,
                        &self.hints,
                    )));
                }
            }
        }
    }

    fn current_credentials(&self) -> (u64, Credentials) {
        self.credentials
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Replaces the credentials whose token the API rejected, unless a
    /// request rejected at the same time already did.
    fn replace_credentials(&self, rejected_generation: u64) -> Result<(), Failure> {
        let mut guard = self
            .credentials
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.0 == rejected_generation {
            *guard = (rejected_generation + 1, (self.new_credentials)()?);
        }
        Ok(())
    }

    /// Returns the authorization headers, from google-cloud-auth's cache or
    /// a new token. The attempt timeout bounds the token request, because
    /// google-cloud-auth sets no limit and a silent metadata server would
    /// block it.
    async fn headers(
        &self,
        what: &str,
        credentials: &Credentials,
    ) -> Result<reqwest::header::HeaderMap, CallError> {
        let failed = |reason: String| {
            CallError::Credentials(format!(
                "{what}: could not get a Google Cloud access token from {}: {reason}; set \
                 GOOGLE_APPLICATION_CREDENTIALS to a credential file, or run `gcloud auth \
                 application-default login`",
                self.source
            ))
        };
        let fetched = tokio::time::timeout(
            self.retry.attempt_timeout,
            credentials.headers(http::Extensions::new()),
        )
        .await
        .map_err(|_| {
            failed(format!(
                "timed out after {} s",
                self.retry.attempt_timeout.as_secs_f64()
            ))
        })?
        .map_err(|error| failed(error_chain(&error)))?;
        match fetched {
            CacheableResource::New { data, .. } => Ok(data),
            // Only requests that pass an entity tag get this result.
            CacheableResource::NotModified => Err(CallError::Credentials(format!(
                "{what}: google-cloud-auth returned no headers"
            ))),
        }
    }
}

/// Percent-encodes a query value or path segment.
pub fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Describes a failed response by status and Google's error status and
/// message. Older APIs such as the Admin SDK may send no `status`, only a
/// legacy `errors` list, whose first `reason` is used in its place.
fn describe_status(what: &str, status: u16, body: &str, attempts: u32, hints: &Hints) -> Failure {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let code = parsed["error"]["status"]
        .as_str()
        .or(parsed["error"]["errors"][0]["reason"].as_str())
        .unwrap_or("unknown error");
    let message = parsed["error"]["message"].as_str().unwrap_or("");
    let hint = match status {
        401 => " (the token was refused; check the credential)".to_string(),
        403 => format!(" ({})", hints.forbidden),
        404 => format!(" ({})", hints.not_found),
        429 | 500 | 502 | 503 | 504 => {
            " (still throttled or unavailable after every retry; raise retry.max_attempts or scan later)"
                .to_string()
        }
        _ => String::new(),
    };
    format!("{what} failed with HTTP {status} {code}: {message}{hint} after {attempts} attempts")
}

/// Fails a listing page that is not a JSON object, or that carries an
/// `error` object despite its success status: such a page lists nothing,
/// and reading it as empty would report every record as removed.
fn check_page(what: &str, page_number: usize, page: &Value) -> Result<(), CallError> {
    let Some(object) = page.as_object() else {
        return Err(CallError::Failed(format!(
            "{what}: page {page_number} is malformed: not a JSON object but {}",
            kind_of(page)
        )));
    };
    match object.get("error") {
        Some(error) => Err(CallError::Failed(format!(
            "{what}: page {page_number} carries an error with a success status: {}",
            error["message"].as_str().unwrap_or("no message")
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod page_tests {
    use super::*;

    #[test]
    fn page_with_error_body_is_not_empty() {
        let page = serde_json::json!({"error": {"code": 403, "message": "denied"}});
        let Err(CallError::Failed(reason)) = check_page("service accounts", 1, &page) else {
            panic!("an error body read as a page");
        };
        assert!(reason.contains("denied"), "{reason}");
        assert!(check_page("x", 1, &serde_json::json!([])).is_err());
        assert!(check_page("x", 1, &serde_json::json!({"accounts": []})).is_ok());
    }
}
