//! The human report: scope lines, a findings table, then each finding's
//! evidence and response commands. Text from the cloud is stripped of
//! control characters before it reaches the terminal.

use std::fmt::Write;

use comfy_table::{Table, presets};

use super::{Report, ScopeStatus};
use crate::judge::Finding;

use super::sanitize;

/// Renders the report for a terminal.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for error in &report.errors {
        let one_line = error.split_whitespace().collect::<Vec<_>>().join(" ");
        let _ = writeln!(out, "error: {}", sanitize(&one_line));
    }
    for scope in &report.scopes {
        render_scope(&mut out, scope);
    }
    if !report.findings.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", findings_table(&report.findings));
        for (index, finding) in report.findings.iter().enumerate() {
            render_details(&mut out, index + 1, finding);
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", closing_line(report));
    out
}

fn render_scope(out: &mut String, scope: &super::ScopeSummary) {
    let label = format!("{} {}", scope.provider, sanitize(&scope.scope));
    let status = match scope.status {
        ScopeStatus::Baseline => format!(
            "baseline recorded ({}); nothing to compare yet",
            super::counted(scope.identities, "identity", "identities")
        ),
        ScopeStatus::Compared => format!(
            "compared ({})",
            super::counted(scope.identities, "identity", "identities")
        ),
        ScopeStatus::OnlyInNew => format!(
            "only in the new snapshots ({}); not compared",
            super::counted(scope.identities, "identity", "identities")
        ),
        ScopeStatus::OnlyInOld => "only in the old snapshots; not compared".to_string(),
        ScopeStatus::Failed => format!(
            "FAILED: {}",
            sanitize(scope.error.as_deref().unwrap_or("unknown error"))
        ),
    };
    let _ = writeln!(out, "{label}: {status}");
    for incomplete in &scope.incomplete {
        let _ = writeln!(
            out,
            "  incomplete {}: {}",
            incomplete.collection,
            sanitize(&incomplete.reason)
        );
    }
    for skipped in &scope.not_compared {
        let _ = writeln!(
            out,
            "  not compared {}: {}",
            skipped.collection,
            sanitize(&skipped.reason)
        );
    }
}

fn findings_table(findings: &[Finding]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::ASCII_MARKDOWN);
    table.set_header([
        "#",
        "severity",
        "verdict",
        "change",
        "identity",
        "id",
        "scope",
        "technique",
    ]);
    for (index, finding) in findings.iter().enumerate() {
        let verdict = if finding.expected {
            "expected"
        } else if finding.needs_attention() {
            "UNEXPECTED"
        } else {
            "no action"
        };
        let technique = finding
            .technique
            .as_ref()
            .map_or("-", |technique| technique.id);
        table.add_row([
            (index + 1).to_string(),
            finding.severity.as_str().to_string(),
            verdict.to_string(),
            finding.change.to_string(),
            sanitize(&finding.identity_name),
            sanitize(&finding.identity_id),
            format!("{} {}", finding.provider, sanitize(&finding.scope)),
            technique.to_string(),
        ]);
    }
    table
}

fn render_details(out: &mut String, number: usize, finding: &Finding) {
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "[{number}] {} ({})",
        sanitize(&finding.summary),
        finding.severity.as_str()
    );
    if let Some(arn) = &finding.arn {
        let _ = writeln!(out, "    arn: {}", sanitize(arn));
    }
    let _ = writeln!(
        out,
        "    why {}: {}",
        finding.severity.as_str(),
        sanitize(&finding.severity_reason)
    );
    if let Some(reason) = &finding.expected_reason {
        let _ = writeln!(out, "    expected: {}", sanitize(reason));
    }
    if let Some(technique) = &finding.technique {
        let _ = writeln!(
            out,
            "    technique: {} {} {}",
            technique.id, technique.name, technique.url
        );
    }
    for (key, value) in &finding.evidence {
        let _ = writeln!(out, "    {key}: {}", sanitize(value));
    }
    for command in &finding.response {
        let _ = writeln!(out, "    respond: {}", sanitize(command));
    }
    if let Some(attribution) = &finding.attribution {
        render_attribution(out, attribution);
    }
}

/// Writes who made the change: the note, then one line per event and the
/// command that opens it.
fn render_attribution(out: &mut String, attribution: &crate::attribute::Attribution) {
    let _ = writeln!(out, "    attribution: {}", sanitize(&attribution.note));
    for event in &attribution.events {
        let source = event
            .source_ip
            .as_deref()
            .map(|ip| format!(" from {}", sanitize(ip)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "      actor {}{source} at {}: {} (event {})",
            sanitize(&event.actor),
            sanitize(&event.time),
            sanitize(&event.event_name),
            sanitize(&event.event_id)
        );
        if let Some(agent) = &event.user_agent {
            let _ = writeln!(out, "        user agent: {}", sanitize(agent));
        }
        let _ = writeln!(out, "        open: {}", sanitize(&event.open_command));
    }
}

fn closing_line(report: &Report) -> String {
    let summary = &report.summary;
    let counts: Vec<String> = super::severities_descending()
        .iter()
        .filter_map(|severity| {
            let count = summary.by_severity.get(severity.as_str())?;
            Some(format!("{count} {}", severity.as_str()))
        })
        .collect();
    let counts = if counts.is_empty() {
        String::new()
    } else {
        format!(" ({})", counts.join(", "))
    };
    format!(
        "{}{counts}, {} {} attention; {} failed, {} incomplete; exit code {}",
        super::counted(summary.findings, "finding", "findings"),
        summary.needs_attention,
        super::need_verb(summary.needs_attention),
        super::counted(summary.failed_scopes, "scope", "scopes"),
        super::counted(summary.incomplete_collections, "collection", "collections"),
        report.exit_code
    )
}
