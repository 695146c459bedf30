//! Webhook notification after a scan: the JSON report, or a Slack-compatible
//! `{"text": ...}` message, posted to a URL taken from the environment.
//!
//! Settings come from environment variables only, never from the config
//! file, because a webhook URL usually carries its secret token in the path:
//!
//! - `IDRIFT_WEBHOOK_URL`: the `http` or `https` URL; unset or empty turns
//!   notification off.
//! - `IDRIFT_WEBHOOK_FORMAT`: `json` (default, the JSON report) or `slack`.
//! - `IDRIFT_WEBHOOK_WHEN`: `attention` (default: only when the exit code is
//!   not 0) or `always`.
//! - `IDRIFT_WEBHOOK_TIMEOUT`: seconds per attempt, default 10.
//! - `IDRIFT_WEBHOOK_ATTEMPTS`: attempts in all, default 3.
//!
//! Connection failures, timeouts, HTTP 408, 429 and 5xx are retried with
//! exponential backoff, or after the `Retry-After` of a 429 (up to 30 s).
//! Other statuses, redirects included, fail at once. A failed notification is an
//! error of the run (exit code 2); the snapshot is already written by then.
//! Logs and errors name the URL's host only.

use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};
use tracing::{debug, info, warn};

use crate::report::{Report, sanitize};

/// The variable that contains the webhook URL.
pub const URL_VARIABLE: &str = "IDRIFT_WEBHOOK_URL";
/// The variable that picks the payload format.
pub const FORMAT_VARIABLE: &str = "IDRIFT_WEBHOOK_FORMAT";
/// The variable that picks when to notify.
pub const WHEN_VARIABLE: &str = "IDRIFT_WEBHOOK_WHEN";
/// The variable that sets the time limit of one attempt, in seconds.
pub const TIMEOUT_VARIABLE: &str = "IDRIFT_WEBHOOK_TIMEOUT";
/// The variable that sets the number of attempts.
pub const ATTEMPTS_VARIABLE: &str = "IDRIFT_WEBHOOK_ATTEMPTS";

/// Backoff before the first retry; it doubles with each retry.
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Maximum wait between two attempts, `Retry-After` included.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// Slack cuts messages longer than 40,000 characters; stay below that.
const SLACK_TEXT_LIMIT: usize = 35_000;

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// The JSON report, as `--format json` prints it.
    Json,
    /// `{"text": ...}` with Slack's mrkdwn, which Slack incoming webhooks
    /// and many chat tools accept.
    Slack,
}

/// When a scan notifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyWhen {
    /// When the exit code is not 0: unexpected findings or a failed run.
    Attention,
    /// After every scan.
    Always,
}

/// Webhook settings, read from the environment.
#[derive(Clone)]
pub struct WebhookSettings {
    /// The URL, secret token included; never logged.
    url: reqwest::Url,
    /// The body format.
    pub format: WebhookFormat,
    /// When to send.
    pub when: NotifyWhen,
    /// Time limit of one attempt.
    pub timeout: Duration,
    /// Attempts in all, the first included.
    pub attempts: u32,
}

// The URL's path and query usually carry the webhook's secret.
impl fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("host", &self.host())
            .field("format", &self.format)
            .field("when", &self.when)
            .field("timeout", &self.timeout)
            .field("attempts", &self.attempts)
            .finish()
    }
}

/// A webhook that is misconfigured or could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// An environment variable has a value idrift cannot use.
    #[error("{variable} is invalid: {reason}")]
    InvalidSetting {
        /// The variable.
        variable: &'static str,
        /// The problem and the accepted values, never the URL itself.
        reason: String,
    },
    /// Every attempt failed.
    #[error(
        "the webhook notification to {host} failed after {attempts} {noun}: {reason}; \
         the report and snapshot are unaffected, check {URL_VARIABLE}",
        noun = if *.attempts == 1 { "attempt" } else { "attempts" }
    )]
    Failed {
        /// The URL's host.
        host: String,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's failure.
        reason: String,
    },
}

impl WebhookSettings {
    /// Reads the settings from the environment; `None` when
    /// `IDRIFT_WEBHOOK_URL` is unset or empty.
    pub fn from_env() -> Result<Option<WebhookSettings>, NotifyError> {
        WebhookSettings::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, which returns a variable's value.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<WebhookSettings>, NotifyError> {
        let Some(url) = lookup(URL_VARIABLE).filter(|url| !url.trim().is_empty()) else {
            return Ok(None);
        };
        let invalid = |variable, reason: &str| NotifyError::InvalidSetting {
            variable,
            reason: reason.to_string(),
        };
        let url = reqwest::Url::parse(url.trim())
            .map_err(|error| invalid(URL_VARIABLE, &format!("not a URL ({error})")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid(URL_VARIABLE, "expected an http:// or https:// URL"));
        }

        let format = match lookup(FORMAT_VARIABLE).as_deref() {
            None | Some("") | Some("json") => WebhookFormat::Json,
            Some("slack") => WebhookFormat::Slack,
            Some(_) => return Err(invalid(FORMAT_VARIABLE, "expected json or slack")),
        };
        let when = match lookup(WHEN_VARIABLE).as_deref() {
            None | Some("") | Some("attention") => NotifyWhen::Attention,
            Some("always") => NotifyWhen::Always,
            Some(_) => return Err(invalid(WHEN_VARIABLE, "expected attention or always")),
        };
        let timeout = match lookup(TIMEOUT_VARIABLE).filter(|value| !value.is_empty()) {
            None => Duration::from_secs(10),
            Some(value) => value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|seconds| *seconds > 0.0 && *seconds <= 300.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    invalid(TIMEOUT_VARIABLE, "expected seconds above 0, at most 300")
                })?,
        };
        let attempts = match lookup(ATTEMPTS_VARIABLE).filter(|value| !value.is_empty()) {
            None => 3,
            Some(value) => value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|attempts| (1..=10).contains(attempts))
                .ok_or_else(|| {
                    invalid(ATTEMPTS_VARIABLE, "expected a whole number from 1 to 10")
                })?,
        };
        Ok(Some(WebhookSettings {
            url,
            format,
            when,
            timeout,
            attempts,
        }))
    }

    /// Returns the URL's host, the only part of it that is logged.
    pub fn host(&self) -> String {
        self.url.host_str().unwrap_or("unknown host").to_string()
    }

    /// Returns true when a report calls for a notification.
    pub fn should_send(&self, report: &Report) -> bool {
        match self.when {
            NotifyWhen::Always => true,
            NotifyWhen::Attention => report.exit_code != crate::exit::CLEAN,
        }
    }
}

/// Sends the notification a report calls for, and records a failure as an
/// error of the run, which makes its exit code 2.
pub async fn notify(report: &mut Report, settings: &WebhookSettings) {
    if !settings.should_send(report) {
        debug!(host = %settings.host(), "nothing needs attention; no webhook notification");
        return;
    }
    match send(report, settings).await {
        Ok(attempts) => info!(host = %settings.host(), attempts, "webhook notification sent"),
        Err(error) => report.add_error(error.to_string()),
    }
}

/// Posts the report's payload, retrying transient failures, and returns the
/// number of attempts it took.
pub async fn send(report: &Report, settings: &WebhookSettings) -> Result<u32, NotifyError> {
    let host = settings.host();
    let failed = |attempts, reason| NotifyError::Failed {
        host: host.clone(),
        attempts,
        reason,
    };
    let client = reqwest::Client::builder()
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("idrift/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| failed(0, crate::collect::error_chain(&error.without_url())))?;
    let body = serde_json::to_vec(&payload(report, settings.format)).unwrap_or_default();

    for attempt in 1..=settings.attempts {
        debug!(host = %host, attempt, "posting webhook notification");
        let sent = client
            .post(settings.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        let failure = match sent {
            Ok(response) if response.status().is_success() => return Ok(attempt),
            Ok(response) => Failure::from_response(&response),
            Err(error) => Failure::from_error(error, settings.timeout),
        };
        if !failure.retryable || attempt == settings.attempts {
            return Err(failed(attempt, failure.reason));
        }
        let wait = failure
            .retry_after
            .unwrap_or_else(|| backoff(attempt))
            .min(MAX_WAIT);
        warn!(
            host = %host,
            attempt,
            reason = %failure.reason,
            wait_ms = wait.as_millis() as u64,
            "webhook notification failed; retrying"
        );
        tokio::time::sleep(wait).await;
    }
    Err(failed(settings.attempts, "no attempt was made".to_string()))
}

/// The failure of one attempt, and whether another may succeed.
struct Failure {
    reason: String,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl Failure {
    fn from_response(response: &reqwest::Response) -> Failure {
        let status = response.status();
        let mut reason = format!("HTTP {status}");
        if status.is_redirection() {
            reason.push_str(" (redirects are not followed; use the final URL)");
        }
        let retry_after = crate::collect::retry_after(response);
        Failure {
            reason,
            retryable: status.is_server_error() || matches!(status.as_u16(), 408 | 429),
            retry_after: if status.as_u16() == 429 {
                retry_after
            } else {
                None
            },
        }
    }

    fn from_error(error: reqwest::Error, timeout: Duration) -> Failure {
        // reqwest puts the whole URL, secret included, in its messages.
        let error = error.without_url();
        let reason = if error.is_timeout() {
            format!("timed out after {} s", timeout.as_secs_f64())
        } else {
            crate::collect::error_chain(&error)
        };
        Failure {
            reason,
            retryable: true,
            retry_after: None,
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    INITIAL_BACKOFF.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
}

/// Builds the body: the JSON report itself, or a Slack message.
pub fn payload(report: &Report, format: WebhookFormat) -> Value {
    match format {
        WebhookFormat::Json => serde_json::to_value(report).unwrap_or_default(),
        WebhookFormat::Slack => json!({ "text": slack_text(report) }),
    }
}

/// Writes a Slack mrkdwn message: the counts, the run's errors, then each
/// finding with its severity, reason, technique and response commands,
/// until Slack's length limit.
pub fn slack_text(report: &Report) -> String {
    let summary = &report.summary;
    let mut text = format!(
        "*idrift {}*: {}, {} {} attention; {} failed, {} incomplete; exit code {}\n",
        report.command,
        crate::report::counted(summary.findings, "finding", "findings"),
        summary.needs_attention,
        crate::report::need_verb(summary.needs_attention),
        crate::report::counted(summary.failed_scopes, "scope", "scopes"),
        crate::report::counted(summary.incomplete_collections, "collection", "collections"),
        report.exit_code
    );
    for error in &report.errors {
        text.push_str(&format!("error: {}\n", slack_escape(error)));
    }
    for (index, finding) in report.findings.iter().enumerate() {
        let entry = slack_finding(finding);
        if text.len() + entry.len() > SLACK_TEXT_LIMIT {
            let left = report.findings.len() - index;
            text.push_str(&format!(
                "… and {left} more findings; see the full report\n"
            ));
            break;
        }
        text.push_str(&entry);
    }
    text
}

fn slack_finding(finding: &crate::judge::Finding) -> String {
    let verdict = if finding.expected { " (expected)" } else { "" };
    let technique = finding
        .technique
        .as_ref()
        .map_or(String::new(), |technique| {
            format!(" — {} {}", technique.id, technique.name)
        });
    let mut entry = format!(
        "• *{}*{verdict} {} ({} {}){technique}\n    why: {}\n",
        finding.severity.as_str(),
        slack_escape(&finding.summary),
        finding.provider,
        slack_escape(&finding.scope),
        slack_escape(&finding.severity_reason),
    );
    if let Some(reason) = &finding.expected_reason {
        entry.push_str(&format!("    expected: {}\n", slack_escape(reason)));
    }
    for command in &finding.response {
        entry.push_str(&format!("    respond: `{}`\n", slack_escape(command)));
    }
    entry
}

/// Escapes the three characters Slack reserves for links and mentions, so
/// text from the cloud cannot ping a channel, after removing control
/// characters.
fn slack_escape(text: &str) -> String {
    sanitize(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        }
    }

    #[test]
    fn settings_default_when_only_url_set() {
        let settings = WebhookSettings::from_lookup(lookup(&[(
            URL_VARIABLE,
            "https://hooks.example.com/services/SECRET",
        )]))
        .expect("valid")
        .expect("set");
        assert_eq!(settings.format, WebhookFormat::Json);
        assert_eq!(settings.when, NotifyWhen::Attention);
        assert_eq!(settings.timeout, Duration::from_secs(10));
        assert_eq!(settings.attempts, 3);
        assert_eq!(settings.host(), "hooks.example.com");
    }

    #[test]
    fn settings_debug_hides_url_secret() {
        let settings = WebhookSettings::from_lookup(lookup(&[(
            URL_VARIABLE,
            "https://hooks.example.com/services/SECRET?token=SECRET",
        )]))
        .expect("valid")
        .expect("set");
        let debug = format!("{settings:?}");
        assert!(!debug.contains("SECRET"), "{debug}");
        assert!(debug.contains("hooks.example.com"), "{debug}");
    }

    #[test]
    fn settings_unset_or_empty_is_off() {
        assert!(
            WebhookSettings::from_lookup(lookup(&[]))
                .expect("valid")
                .is_none()
        );
        let empty = WebhookSettings::from_lookup(lookup(&[(URL_VARIABLE, " ")]));
        assert!(empty.expect("valid").is_none());
    }

    #[test]
    fn settings_reject_bad_values() {
        let url = (URL_VARIABLE, "https://hooks.example.com/x");
        let cases = [
            vec![(URL_VARIABLE, "ftp://hooks.example.com/SECRET")],
            vec![(URL_VARIABLE, "not a url SECRET")],
            vec![url, (FORMAT_VARIABLE, "teams")],
            vec![url, (WHEN_VARIABLE, "never")],
            vec![url, (TIMEOUT_VARIABLE, "0")],
            vec![url, (TIMEOUT_VARIABLE, "ten")],
            vec![url, (ATTEMPTS_VARIABLE, "0")],
            vec![url, (ATTEMPTS_VARIABLE, "11")],
        ];
        for case in cases {
            let error = WebhookSettings::from_lookup(lookup(&case)).expect_err("invalid");
            assert!(!error.to_string().contains("SECRET"), "{error}");
        }
    }

    #[test]
    fn slack_escape_blocks_mentions() {
        assert_eq!(slack_escape("<!channel> & co"), "&lt;!channel&gt; &amp; co");
    }

    #[test]
    fn backoff_doubles() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(3), Duration::from_secs(2));
    }
}
