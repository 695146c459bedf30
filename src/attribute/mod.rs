//! Attribution: finds, in each cloud's audit log, the event that made a
//! finding's change and the principal behind it. It runs after the judge
//! and before the report, and only for findings: CloudTrail `LookupEvents`
//! for AWS ([`aws`]), Graph `directoryAudits` for Entra ID ([`azure`]) and
//! Cloud Logging `entries:list` for Google Cloud ([`gcp`]).
//!
//! The window searched runs from the scope's previous scan to this one,
//! widened by a margin on both sides. Several matching events are all
//! listed, because the log alone cannot tell which one made the change.
//! A lookup that fails (no permission, log unreachable, throttled out)
//! marks the finding `unavailable` with the reason and logs a warning. It
//! never fails the scan or changes its exit code. After the first failure
//! in a scope, the scope's other findings get the same reason without
//! further calls.

pub mod aws;
pub mod azure;
pub mod gcp;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::task::JoinSet;
use tracing::warn;

use crate::judge::Finding;
use crate::model::Provider;
use crate::settings::{
    AttributionSettings, AwsAccountSettings, AzureTenantSettings, GcpSettings, RetrySettings,
};

/// Whether the actor of a finding was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributionStatus {
    /// One or more matching events were found.
    Found,
    /// The log was searched and contains no matching event in the window.
    NotFound,
    /// The log could not be searched, for the reason in the note.
    Unavailable,
}

/// The principal behind a finding's change, from the provider's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attribution {
    /// Whether matching events were found.
    pub status: AttributionStatus,
    /// Start of the window searched, RFC 3339 in UTC.
    pub window_start: String,
    /// End of the window searched, RFC 3339 in UTC.
    pub window_end: String,
    /// The matching events, oldest first; several when the log cannot
    /// tell which one made the change.
    pub events: Vec<AuditEvent>,
    /// One line for people: the number of events, `no matching event in
    /// <window>`, or `attribution unavailable: <reason>`.
    pub note: String,
}

/// One audit-log event that may have made a finding's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// The principal that made the call: an ARN, a user principal name, an
    /// application id or an email address.
    pub actor: String,
    /// The caller's IP address, where the log records one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// The caller's user agent, where the log records one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// When the event happened, RFC 3339.
    pub time: String,
    /// The log's id of the event (CloudTrail `eventID`, Entra audit `id`,
    /// Cloud Logging `insertId`).
    pub event_id: String,
    /// The operation, such as `CreateUser` or `Add service principal`.
    pub event_name: String,
    /// The provider CLI command that shows the event.
    pub open_command: String,
}

impl Attribution {
    /// Builds the attribution of a search, found or not.
    pub fn searched(window: Window, mut events: Vec<AuditEvent>) -> Attribution {
        events.sort_by(|a, b| (&a.time, &a.event_id).cmp(&(&b.time, &b.event_id)));
        events.dedup_by(|a, b| a.event_id == b.event_id);
        let (status, note) = match events.len() {
            0 => (
                AttributionStatus::NotFound,
                format!("no matching event in {}", window.describe()),
            ),
            1 => (AttributionStatus::Found, "1 matching event".to_string()),
            count => (
                AttributionStatus::Found,
                format!("{count} matching events; the log does not tell which one made the change"),
            ),
        };
        Attribution {
            status,
            window_start: window.start_text(),
            window_end: window.end_text(),
            events,
            note,
        }
    }

    /// Builds the attribution of a search that could not be made.
    pub fn unavailable(window: Window, reason: &str) -> Attribution {
        Attribution {
            status: AttributionStatus::Unavailable,
            window_start: window.start_text(),
            window_end: window.end_text(),
            events: Vec::new(),
            note: format!("attribution unavailable: {reason}"),
        }
    }

    /// Returns the actors of the events, without repeats.
    pub fn actors(&self) -> Vec<&str> {
        let mut actors: Vec<&str> = self.events.iter().map(|e| e.actor.as_str()).collect();
        actors.sort_unstable();
        actors.dedup();
        actors
    }
}

/// The time range searched, in whole seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start, inclusive.
    pub start: i64,
    /// End, inclusive.
    pub end: i64,
}

impl Window {
    /// Builds the window from the previous scan time (RFC 3339) to `now`,
    /// each end widened by the margin. Without a readable previous scan
    /// time, the window is `first_window` long.
    pub fn since(
        previous_scan: Option<&str>,
        now: SystemTime,
        settings: &AttributionSettings,
    ) -> Window {
        let now = seconds(now);
        let margin = settings.margin.as_secs() as i64;
        let previous = previous_scan.and_then(parse_time);
        let start = match previous {
            Some(previous) if previous <= now => previous - margin,
            _ => now - settings.first_window.as_secs() as i64,
        };
        Window {
            start,
            end: now + margin,
        }
    }

    /// Returns the start as RFC 3339 text.
    pub fn start_text(&self) -> String {
        format_time(self.start)
    }

    /// Returns the end as RFC 3339 text.
    pub fn end_text(&self) -> String {
        format_time(self.end)
    }

    /// Describes the window as `<start> to <end>`.
    pub fn describe(&self) -> String {
        format!("{} to {}", self.start_text(), self.end_text())
    }

    /// Returns true when an RFC 3339 time falls inside the window. A time
    /// that cannot be read counts as inside, so no event is dropped for it.
    pub fn contains(&self, time: &str) -> bool {
        parse_time(time).is_none_or(|time| (self.start..=self.end).contains(&time))
    }
}

fn seconds(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// Formats seconds since the Unix epoch as RFC 3339 in UTC.
pub fn format_time(seconds: i64) -> String {
    crate::collect::aws::details::format_timestamp(&aws_smithy_types::DateTime::from_secs(seconds))
}

/// Reads an RFC 3339 time, with or without fractional seconds or an
/// offset, as whole seconds since the Unix epoch.
pub fn parse_time(text: &str) -> Option<i64> {
    use aws_smithy_types::date_time::Format;
    aws_smithy_types::DateTime::from_str(text, Format::DateTime)
        .ok()
        .map(|time| time.secs())
}

/// The settings that reach a scope's audit log: the scope's own.
#[derive(Debug, Clone)]
pub enum ScopeAccess {
    /// An AWS account.
    Aws(AwsAccountSettings),
    /// An Entra tenant.
    Azure(AzureTenantSettings),
    /// A Google Cloud project, read with the `[gcp]` settings.
    Gcp(Box<GcpSettings>),
    /// A Google Workspace customer, whose audit log idrift does not read.
    // TODO: look Workspace changes up in the Admin SDK Reports API
    // (`activities.list`, application `admin`).
    Gworkspace,
}

/// The reason a Google Workspace finding carries no actor.
const GWORKSPACE_UNSUPPORTED: &str = "Google Workspace changes are recorded in the Admin SDK \
    Reports API, which idrift does not read yet; run the finding's audit lookup command";

/// One scope whose findings are to be attributed.
#[derive(Debug, Clone)]
pub struct ScopeTarget {
    /// The provider.
    pub provider: Provider,
    /// The scope id: account, tenant or project.
    pub scope: String,
    /// The window searched.
    pub window: Window,
    /// How to reach the scope's log.
    pub access: ScopeAccess,
}

/// The findings of one scope to look up, with their index in the report.
pub type Lookups = Vec<(usize, Finding)>;

/// Attributes the findings of every target scope: unexpected findings
/// (all of them with `all_findings`), at most `max_lookups_per_scope` per
/// scope. Scopes are searched at the same time; each provider module
/// limits its own call rate.
pub async fn attribute(
    findings: &mut [Finding],
    targets: &[ScopeTarget],
    settings: &AttributionSettings,
    retry: &RetrySettings,
) {
    if !settings.enabled {
        return;
    }
    let mut tasks = JoinSet::new();
    for target in targets {
        let mut selected: Lookups = findings
            .iter()
            .enumerate()
            .filter(|(_, finding)| wants_lookup(finding, target, settings))
            .map(|(index, finding)| (index, finding.clone()))
            .collect();
        let skipped = selected.split_off(selected.len().min(settings.max_lookups_per_scope));
        for (index, _) in skipped {
            let reason = format!(
                "{} {} has more than {} findings to look up; raise \
                 attribution.max_lookups_per_scope",
                target.provider, target.scope, settings.max_lookups_per_scope
            );
            findings[index].attribution = Some(Attribution::unavailable(target.window, &reason));
        }
        if selected.is_empty() {
            continue;
        }
        let (target, settings, retry) = (target.clone(), settings.clone(), retry.clone());
        tasks.spawn(async move { attribute_scope(&target, selected, &settings, &retry).await });
    }
    while let Some(joined) = tasks.join_next().await {
        let Ok(results) = joined else {
            warn!("an attribution task stopped before it finished");
            continue;
        };
        for (index, attribution) in results {
            findings[index].attribution = Some(attribution);
        }
    }
}

fn wants_lookup(finding: &Finding, target: &ScopeTarget, settings: &AttributionSettings) -> bool {
    finding.provider == target.provider
        && finding.scope == target.scope
        && finding.identity_kind.is_some()
        && (settings.all_findings || !finding.expected)
}

async fn attribute_scope(
    target: &ScopeTarget,
    lookups: Lookups,
    settings: &AttributionSettings,
    retry: &RetrySettings,
) -> Vec<(usize, Attribution)> {
    match &target.access {
        ScopeAccess::Aws(account) => {
            aws::attribute_account(account, target.window, lookups, settings, retry).await
        }
        ScopeAccess::Azure(tenant) => {
            azure::attribute_tenant(tenant, target.window, lookups, settings, retry).await
        }
        ScopeAccess::Gcp(gcp) => {
            gcp::attribute_project(gcp, &target.scope, target.window, lookups, settings, retry)
                .await
        }
        ScopeAccess::Gworkspace => {
            let (unavailable, _) =
                split_unsearched(lookups, target.window, GWORKSPACE_UNSUPPORTED, |_| true);
            unavailable
        }
    }
}

/// Splits off the lookups whose findings `unsearched` selects, because
/// their changes are in a log that attribution does not read, and marks
/// each unavailable for `reason` without a call. Returns the marked
/// findings and the lookups left to search.
pub(crate) fn split_unsearched(
    lookups: Lookups,
    window: Window,
    reason: &str,
    unsearched: impl Fn(&Finding) -> bool,
) -> (Vec<(usize, Attribution)>, Lookups) {
    let (skipped, searched): (Lookups, Lookups) = lookups
        .into_iter()
        .partition(|(_, finding)| unsearched(finding));
    let marked = skipped
        .into_iter()
        .map(|(index, _)| (index, Attribution::unavailable(window, reason)))
        .collect();
    (marked, searched)
}

/// Looks up each finding in turn with `lookup`. After the first failure,
/// the remaining findings get the same reason without a call, and one
/// warning names the scope.
pub(crate) async fn run_lookups<F, Fut>(
    provider: Provider,
    scope: &str,
    window: Window,
    lookups: Lookups,
    mut lookup: F,
) -> Vec<(usize, Attribution)>
where
    F: FnMut(Finding) -> Fut,
    Fut: Future<Output = Result<Vec<AuditEvent>, String>>,
{
    let mut results = Vec::new();
    let mut failure: Option<String> = None;
    for (index, finding) in lookups {
        if let Some(reason) = &failure {
            results.push((index, Attribution::unavailable(window, reason)));
            continue;
        }
        match lookup(finding).await {
            Ok(events) => results.push((index, Attribution::searched(window, events))),
            Err(reason) => {
                warn!(
                    provider = %provider,
                    scope = %crate::report::sanitize(scope),
                    reason = %crate::report::sanitize(&reason),
                    "attribution unavailable"
                );
                results.push((index, Attribution::unavailable(window, &reason)));
                failure = Some(reason);
            }
        }
    }
    results
}

/// Spaces out calls to at most a number per second.
pub(crate) struct RateLimiter {
    interval: Duration,
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl RateLimiter {
    /// Allows `calls` calls per second.
    pub(crate) fn per_second(calls: u32) -> RateLimiter {
        RateLimiter {
            interval: Duration::from_secs(1) / calls.max(1),
            next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// Waits until the next call is allowed, and books the slot after it.
    pub(crate) async fn wait(&self) {
        let mut next = self.next.lock().await;
        tokio::time::sleep_until(*next).await;
        *next = tokio::time::Instant::now().max(*next) + self.interval;
    }
}

/// Returns a JSON value as text, when it is a non-empty string.
pub(crate) fn text(value: &serde_json::Value) -> Option<String> {
    value
        .as_str()
        .filter(|text| !text.is_empty())
        .map(str::to_string)
}

/// Builds the finding of one change for unit tests: a new identity,
/// then given the change name `change`.
#[cfg(test)]
pub(crate) fn test_finding(
    provider: Provider,
    kind: crate::model::IdentityKind,
    id: &str,
    name: &str,
    change: &'static str,
) -> Finding {
    let identity = crate::model::Identity::new(id, kind, name);
    let diff = crate::diff::ScopeDiff {
        provider,
        scope: "scope".to_string(),
        changes: vec![crate::diff::Change {
            kind: crate::diff::ChangeKind::IdentityAdded,
            identity,
        }],
        not_compared: Vec::new(),
        privileged_app_ids: Default::default(),
    };
    let mut finding = crate::judge::judge(&diff).remove(0);
    finding.change = change;
    finding
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, time: &str) -> AuditEvent {
        AuditEvent {
            actor: "arn:aws:iam::123456789012:user/ana".to_string(),
            source_ip: None,
            user_agent: None,
            time: time.to_string(),
            event_id: id.to_string(),
            event_name: "CreateUser".to_string(),
            open_command: String::new(),
        }
    }

    #[test]
    fn window_runs_from_previous_scan_with_margin() {
        let settings = AttributionSettings::default();
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let window = Window::since(Some("2027-01-15T08:00:00Z"), now, &settings);
        assert_eq!(window.start_text(), "2027-01-15T07:50:00Z");
        assert_eq!(window.end, 1_800_000_000 + 600);
        assert!(window.contains("2027-01-15T07:55:00Z"));
        assert!(!window.contains("2027-01-15T07:45:00Z"));
    }

    #[test]
    fn window_without_previous_scan_is_first_window() {
        let settings = AttributionSettings::default();
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for previous in [None, Some("not a time"), Some("2099-01-01T00:00:00Z")] {
            let window = Window::since(previous, now, &settings);
            assert_eq!(window.start, 1_800_000_000 - 7 * 24 * 3600, "{previous:?}");
        }
    }

    #[test]
    fn searched_sorts_and_counts_events() {
        let window = Window { start: 0, end: 10 };
        let found = Attribution::searched(
            window,
            vec![
                event("b", "2026-01-02T00:00:00Z"),
                event("a", "2026-01-01T00:00:00Z"),
                event("a", "2026-01-01T00:00:00Z"),
            ],
        );
        assert_eq!(found.status, AttributionStatus::Found);
        assert_eq!(found.events.len(), 2);
        assert_eq!(found.events[0].event_id, "a");
        assert!(
            found.note.starts_with("2 matching events"),
            "{}",
            found.note
        );

        let none = Attribution::searched(window, Vec::new());
        assert_eq!(none.status, AttributionStatus::NotFound);
        assert_eq!(
            none.note,
            "no matching event in 1970-01-01T00:00:00Z to 1970-01-01T00:00:10Z"
        );
    }
}
