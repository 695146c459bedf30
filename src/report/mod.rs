//! Reports: what a run found, rendered as a table for people, JSON for
//! machines, Markdown for pull requests and tickets, SARIF for code-scanning
//! tools and OCSF for SIEMs. Every format carries the same findings; the
//! JSON layout is versioned and has a published JSON Schema.

pub mod json;
pub mod markdown;
pub mod ocsf;
pub mod output;
pub mod sarif;
pub mod schema;
pub mod table;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::diff::NotCompared;
use crate::judge::{Finding, Severity};
use crate::settings::ReportFormat;

/// Replaces characters that can change how a terminal shows text with `?`:
/// control characters (escape sequences among them), bidirectional
/// overrides and zero-width characters, which can make one name pass for
/// another. Text from the cloud or from files goes through this before it
/// reaches a terminal or a log line.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if is_deceptive(c) { '?' } else { c })
        .collect()
}

fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Version of the JSON report layout, bumped on any incompatible change.
pub const REPORT_SCHEMA_VERSION: u32 = 2;

/// Outcome of one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeStatus {
    /// First scan of the scope: the snapshot is the baseline, nothing compared.
    Baseline,
    /// Compared with the previous snapshot.
    Compared,
    /// Present only in the new side of a `diff`.
    OnlyInNew,
    /// Present only in the old side of a `diff`.
    OnlyInOld,
    /// Could not be scanned or loaded.
    Failed,
}

/// One scope's line in the report.
#[derive(Debug, Clone, Serialize)]
pub struct ScopeSummary {
    /// Provider name.
    pub provider: String,
    /// Scope id, or the configured label when the id is unknown.
    pub scope: String,
    /// What happened.
    pub status: ScopeStatus,
    /// Identities in the new snapshot.
    pub identities: usize,
    /// Collections that were not compared, with reasons.
    pub not_compared: Vec<NotCompared>,
    /// Collections not complete in this scan, with reasons (the run's exit code is 2).
    pub incomplete: Vec<NotCompared>,
    /// Reason the scope failed, for `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The snapshot file written, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

/// Counts for scripts and for the report's last line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// All findings.
    pub findings: usize,
    /// Findings that need attention: unexpected and severity low or above.
    pub needs_attention: usize,
    /// Findings by severity name.
    pub by_severity: BTreeMap<String, usize>,
    /// Scopes that failed.
    pub failed_scopes: usize,
    /// Collections that this run could not list in full.
    pub incomplete_collections: usize,
}

/// Everything a run reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Layout version; see [`REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The idrift version.
    pub idrift_version: String,
    /// The command: `scan` or `diff`.
    pub command: String,
    /// The exit code the run ends with.
    pub exit_code: u8,
    /// Counts.
    pub summary: Summary,
    /// Errors that stopped the run or a scope.
    pub errors: Vec<String>,
    /// One entry per scope.
    pub scopes: Vec<ScopeSummary>,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// The location of the snapshots the findings come from, so that SARIF
    /// results can point at a line in them. Not part of the JSON report.
    #[serde(skip)]
    pub snapshots: Option<SnapshotLocation>,
}

/// The snapshots a report's findings were judged on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotLocation {
    /// A snapshot folder laid out `<provider>/<scope>.json`.
    Folder(PathBuf),
    /// A single snapshot file, which contains every scope of the report.
    File(PathBuf),
}

impl SnapshotLocation {
    /// Returns the snapshot file of a scope.
    pub fn file_for(&self, provider: &str, scope: &str) -> PathBuf {
        match self {
            SnapshotLocation::Folder(root) => root.join(provider).join(format!("{scope}.json")),
            SnapshotLocation::File(file) => file.clone(),
        }
    }

    /// Returns the folder that paths are relative to outside a git work tree.
    pub fn root(&self) -> &Path {
        match self {
            SnapshotLocation::Folder(root) => root,
            SnapshotLocation::File(file) => file.parent().unwrap_or(Path::new(".")),
        }
    }
}

impl Report {
    /// Builds a report and derives its summary and exit code.
    pub fn new(
        command: &str,
        scopes: Vec<ScopeSummary>,
        mut findings: Vec<Finding>,
        errors: Vec<String>,
    ) -> Report {
        findings.sort_by(|a, b| {
            (b.severity, &a.provider, &a.scope, &a.identity_id, a.change).cmp(&(
                a.severity,
                &b.provider,
                &b.scope,
                &b.identity_id,
                b.change,
            ))
        });
        let summary = summarize(&scopes, &findings);
        let exit_code = crate::exit::exit_code(&summary, errors.len());
        Report {
            schema_version: REPORT_SCHEMA_VERSION,
            idrift_version: env!("CARGO_PKG_VERSION").to_string(),
            command: command.to_string(),
            exit_code,
            summary,
            errors,
            scopes,
            findings,
            snapshots: None,
        }
    }

    /// Records where the findings' snapshots are.
    pub fn with_snapshots(mut self, snapshots: SnapshotLocation) -> Report {
        self.snapshots = Some(snapshots);
        self
    }

    /// Adds a run-level error found after the report was built, such as an
    /// output file that could not be written or a notification that failed,
    /// and derives the exit code again (it becomes 2).
    pub fn add_error(&mut self, error: String) {
        self.errors.push(error);
        self.exit_code = crate::exit::exit_code(&self.summary, self.errors.len());
    }

    /// Builds the report of a run that stopped before any scope was read.
    pub fn failed(command: &str, error: String) -> Report {
        Report::new(command, Vec::new(), Vec::new(), vec![error])
    }

    /// Renders the report in a format.
    pub fn render(&self, format: ReportFormat) -> String {
        match format {
            ReportFormat::Table => table::render(self),
            ReportFormat::Json => json::render(self),
            ReportFormat::Markdown => markdown::render(self),
            ReportFormat::Sarif => sarif::render(self),
            ReportFormat::Ocsf => ocsf::render(self),
        }
    }
}

fn summarize(scopes: &[ScopeSummary], findings: &[Finding]) -> Summary {
    let mut by_severity = BTreeMap::new();
    for finding in findings {
        *by_severity
            .entry(finding.severity.as_str().to_string())
            .or_insert(0) += 1;
    }
    Summary {
        findings: findings.len(),
        needs_attention: findings
            .iter()
            .filter(|finding| finding.needs_attention())
            .count(),
        by_severity,
        failed_scopes: scopes
            .iter()
            .filter(|scope| scope.status == ScopeStatus::Failed)
            .count(),
        incomplete_collections: scopes.iter().map(|scope| scope.incomplete.len()).sum(),
    }
}

/// Returns a count with its noun, singular for one: `1 finding`,
/// `2 findings`.
pub fn counted(count: usize, singular: &str, plural: &str) -> String {
    if count == 1 {
        format!("1 {singular}")
    } else {
        format!("{count} {plural}")
    }
}

/// Returns "need" or, for one, "needs", to follow a count.
pub fn need_verb(count: usize) -> &'static str {
    if count == 1 { "needs" } else { "need" }
}

/// Returns the severity names from most to least severe.
pub fn severities_descending() -> [Severity; 5] {
    [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ]
}

#[cfg(test)]
mod tests {
    use super::{counted, need_verb};

    #[test]
    fn counts_take_the_singular_for_one() {
        assert_eq!(counted(0, "finding", "findings"), "0 findings");
        assert_eq!(counted(1, "identity", "identities"), "1 identity");
        assert_eq!(counted(2, "identity", "identities"), "2 identities");
        assert_eq!(need_verb(1), "needs");
        assert_eq!(need_verb(3), "need");
    }
}
