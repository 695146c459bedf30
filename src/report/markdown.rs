//! The Markdown report, for a pull request description, a review comment or
//! a ticket: a headline with the counts, the scopes, a findings table, then
//! each finding with its reason, technique, evidence and response commands.
//!
//! Text from the cloud is stripped of control characters and has Markdown
//! punctuation escaped, so a crafted name cannot add links, images or HTML.
//! Response commands go in fenced code blocks, where nothing is rendered.

use std::fmt::Write;

use super::{Report, ScopeStatus, ScopeSummary, sanitize};
use crate::judge::Finding;

/// Renders the report as GitHub-flavoured Markdown.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## {}", headline(report));
    let _ = writeln!(out);
    for error in &report.errors {
        let one_line = error.split_whitespace().collect::<Vec<_>>().join(" ");
        let _ = writeln!(out, "> **Error:** {}", escape(&one_line));
        let _ = writeln!(out);
    }
    if !report.scopes.is_empty() {
        render_scopes(&mut out, &report.scopes);
    }
    if !report.findings.is_empty() {
        render_findings_table(&mut out, &report.findings);
        for (index, finding) in report.findings.iter().enumerate() {
            render_details(&mut out, index + 1, finding);
        }
    }
    out
}

fn headline(report: &Report) -> String {
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
        "idrift {}: {}{counts}, {} {} attention, exit code {}",
        report.command,
        super::counted(summary.findings, "finding", "findings"),
        summary.needs_attention,
        super::need_verb(summary.needs_attention),
        report.exit_code
    )
}

fn render_scopes(out: &mut String, scopes: &[ScopeSummary]) {
    let _ = writeln!(out, "| scope | status | identities | notes |");
    let _ = writeln!(out, "|---|---|---|---|");
    for scope in scopes {
        let status = match scope.status {
            ScopeStatus::Baseline => "baseline recorded",
            ScopeStatus::Compared => "compared",
            ScopeStatus::OnlyInNew => "only in the new snapshots",
            ScopeStatus::OnlyInOld => "only in the old snapshots",
            ScopeStatus::Failed => "**FAILED**",
        };
        let mut notes: Vec<String> = Vec::new();
        if let Some(error) = &scope.error {
            notes.push(escape(error));
        }
        for incomplete in &scope.incomplete {
            let reason = escape(&incomplete.reason);
            notes.push(format!("incomplete {}: {reason}", incomplete.collection));
        }
        for skipped in &scope.not_compared {
            let reason = escape(&skipped.reason);
            notes.push(format!("not compared {}: {reason}", skipped.collection));
        }
        let _ = writeln!(
            out,
            "| {} {} | {status} | {} | {} |",
            scope.provider,
            escape(&scope.scope),
            scope.identities,
            notes.join("<br>")
        );
    }
    let _ = writeln!(out);
}

fn render_findings_table(out: &mut String, findings: &[Finding]) {
    let _ = writeln!(
        out,
        "| # | severity | verdict | change | identity | id | scope | technique |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for (index, finding) in findings.iter().enumerate() {
        let technique = finding
            .technique
            .as_ref()
            .map_or("-".to_string(), |technique| {
                format!("[{}]({})", technique.id, technique.url)
            });
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} {} | {technique} |",
            index + 1,
            finding.severity.as_str(),
            verdict(finding),
            finding.change,
            escape(&finding.identity_name),
            escape(&finding.identity_id),
            finding.provider,
            escape(&finding.scope),
        );
    }
    let _ = writeln!(out);
}

fn verdict(finding: &Finding) -> &'static str {
    if finding.expected {
        "expected"
    } else if finding.needs_attention() {
        "**UNEXPECTED**"
    } else {
        "no action"
    }
}

fn render_details(out: &mut String, number: usize, finding: &Finding) {
    let _ = writeln!(
        out,
        "### {number}. {} ({})",
        escape(&finding.summary),
        finding.severity.as_str()
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "- **Why {}:** {}",
        finding.severity.as_str(),
        escape(&finding.severity_reason)
    );
    if let Some(reason) = &finding.expected_reason {
        let _ = writeln!(out, "- **Expected:** {}", escape(reason));
    }
    if let Some(technique) = &finding.technique {
        let _ = writeln!(
            out,
            "- **ATT&CK technique:** [{} {}]({})",
            technique.id, technique.name, technique.url
        );
    }
    let _ = writeln!(
        out,
        "- **Identity:** {} ({}) in {} {}",
        code_span(&finding.identity_id),
        finding
            .identity_kind
            .map_or("expected-account rule", crate::model::IdentityKind::label),
        finding.provider,
        escape(&finding.scope)
    );
    if let Some(arn) = &finding.arn {
        let _ = writeln!(out, "- **ARN:** {}", code_span(arn));
    }
    if !finding.evidence.is_empty() {
        let _ = writeln!(out, "- **Evidence:**");
        for (key, value) in &finding.evidence {
            let _ = writeln!(out, "  - {key}: {}", escape(value));
        }
    }
    if let Some(attribution) = &finding.attribution {
        render_attribution(out, attribution);
    }
    let _ = writeln!(out);
    if !finding.response.is_empty() {
        let _ = writeln!(out, "Respond:");
        let _ = writeln!(out);
        let commands: Vec<String> = finding
            .response
            .iter()
            .map(|command| sanitize(command))
            .collect();
        let fence = fence_for(&commands.join("\n"));
        let _ = writeln!(out, "{fence}sh");
        for command in &commands {
            let _ = writeln!(out, "{command}");
        }
        let _ = writeln!(out, "{fence}");
        let _ = writeln!(out);
    }
}

/// Writes the attribution as a list item with one nested item per event.
fn render_attribution(out: &mut String, attribution: &crate::attribute::Attribution) {
    let _ = writeln!(out, "- **Attribution:** {}", escape(&attribution.note));
    for event in &attribution.events {
        let source = event
            .source_ip
            .as_deref()
            .map(|ip| format!(" from {}", code_span(ip)))
            .unwrap_or_default();
        let agent = event
            .user_agent
            .as_deref()
            .map(|agent| format!(", user agent {}", code_span(agent)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  - {} by {}{source} at {}{agent}; open: {}",
            escape(&event.event_name),
            code_span(&event.actor),
            escape(&event.time),
            code_span(&event.open_command)
        );
    }
}

/// Sanitizes text and escapes the characters that Markdown, GitHub's table,
/// math and mention syntax or inline HTML would interpret.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in sanitize(text).chars() {
        if matches!(
            c,
            '\\' | '`'
                | '*'
                | '_'
                | '['
                | ']'
                | '<'
                | '>'
                | '|'
                | '~'
                | '#'
                | '&'
                | '!'
                | '$'
                | '@'
        ) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Wraps text in a code span whose backtick fence is longer than any run of
/// backticks inside it. A `|` is still escaped, because GitHub splits table
/// cells on it even inside code spans.
fn code_span(text: &str) -> String {
    let text = sanitize(text).replace('|', "\\|");
    let fence = "`".repeat(longest_backtick_run(&text) + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// Returns a code block fence longer than any run of backticks in `text`
/// and at least three long.
fn fence_for(text: &str) -> String {
    "`".repeat((longest_backtick_run(text) + 1).max(3))
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralizes_links_and_html() {
        assert_eq!(escape("[x](http://e)"), r"\[x\](http://e)");
        assert_eq!(escape("<img src=x>"), r"\<img src=x\>");
        assert_eq!(escape("a|b"), r"a\|b");
        assert_eq!(escape("line\nbreak"), "line?break");
    }

    #[test]
    fn code_span_outgrows_backticks() {
        assert_eq!(code_span("AIDA1"), "`AIDA1`");
        assert_eq!(code_span("a`b"), "``a`b``");
        assert_eq!(code_span("`x"), "`` `x ``");
    }

    #[test]
    fn fence_outgrows_backticks() {
        assert_eq!(fence_for("aws iam list-users"), "```");
        assert_eq!(fence_for("echo ````"), "`````");
    }
}
