//! `idrift rules check`: validates the expected-account rules and lists,
//! for each, the identities of the snapshots it matches, so that a reviewer
//! can check a rule's reach before it mutes anything.
//!
//! Exit codes: 0 when every rule is in force and matches at least one
//! identity, 1 when a rule is expired or matches nothing, 2 when the config
//! or the snapshots cannot be read.

use std::fmt::Write;

use serde::Serialize;

use crate::cli::RulesCheckSettings;
use crate::exit;
use crate::model::{IdentityKind, Provider, Snapshot};
use crate::report::sanitize;
use crate::rules::ExpectedRule;
use crate::settings::ReportFormat;
use crate::store::load_tree;

/// Identities listed per rule in the table; the JSON output lists all.
const TABLE_MATCH_LIMIT: usize = 50;

/// Whether a rule mutes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleStatus {
    /// No expiry date, or not past it.
    InForce,
    /// Past its expiry date: it mutes nothing.
    Expired,
}

/// An identity a rule matches.
#[derive(Debug, Clone, Serialize)]
pub struct MatchedIdentity {
    /// Provider.
    pub provider: Provider,
    /// Scope id.
    pub scope: String,
    /// Identity kind.
    pub kind: IdentityKind,
    /// Immutable id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Change kinds the rule would also have to list to mute this
    /// identity's creation, because it has a credential or an admin grant.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub creation_needs: Vec<&'static str>,
}

/// One rule and its reach.
#[derive(Debug, Clone, Serialize)]
pub struct RuleReach {
    /// The rule's key, such as `expected[0]`.
    pub rule: String,
    /// The team or person responsible for the rule.
    pub owner: String,
    /// The reason its identities are expected.
    pub reason: String,
    /// Last day the rule mutes anything, `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// In force or expired.
    pub status: RuleStatus,
    /// The match fields it sets, as `field = "value"`.
    pub match_fields: Vec<String>,
    /// Change kinds it mutes.
    pub changes: Vec<&'static str>,
    /// Identities of the snapshots it matches.
    pub matches: Vec<MatchedIdentity>,
}

/// Counts over every rule.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RulesSummary {
    /// Rules in the config.
    pub rules: usize,
    /// Rules past their expiry date.
    pub expired: usize,
    /// Rules that match no identity of the snapshots.
    pub matching_nothing: usize,
    /// Scopes in the snapshots.
    pub scopes: usize,
    /// Identities in the snapshots.
    pub identities: usize,
}

/// The outcome of `idrift rules check`.
#[derive(Debug, Clone, Serialize)]
pub struct RulesCheck {
    /// The exit code the run ends with.
    pub exit_code: u8,
    /// The config file the rules come from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The date expiry was judged as of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
    /// Errors that stopped the check.
    pub errors: Vec<String>,
    /// Counts.
    pub summary: RulesSummary,
    /// Every rule, in config order.
    pub rules: Vec<RuleReach>,
}

impl RulesCheck {
    /// Builds the outcome of a check that could not read its input.
    pub fn failed(error: String) -> RulesCheck {
        RulesCheck {
            exit_code: exit::FAILED,
            config: None,
            as_of: None,
            errors: vec![error],
            summary: RulesSummary::default(),
            rules: Vec::new(),
        }
    }

    /// Renders the outcome in a format.
    pub fn render(&self, format: ReportFormat) -> String {
        match format {
            // `idrift rules check` offers only table and JSON.
            ReportFormat::Table
            | ReportFormat::Markdown
            | ReportFormat::Sarif
            | ReportFormat::Ocsf => render_table(self),
            ReportFormat::Json => {
                let mut text = serde_json::to_string_pretty(self).unwrap_or_else(|error| {
                    format!("{{\"errors\": [\"the output could not be serialized: {error}\"]}}")
                });
                text.push('\n');
                text
            }
        }
    }
}

/// Loads the snapshots and matches every rule against their identities.
pub fn run(settings: &RulesCheckSettings) -> RulesCheck {
    let snapshots = match load_tree(&settings.snapshots) {
        Ok(snapshots) => snapshots,
        Err(error) => {
            return RulesCheck::failed(format!(
                "{error}; run idrift scan first, or pass --snapshots DIR"
            ));
        }
    };
    let today = settings.rules.today();
    let rules: Vec<RuleReach> = settings
        .rules
        .rules()
        .iter()
        .map(|rule| reach(rule, rule.is_expired(today), &snapshots))
        .collect();

    let summary = RulesSummary {
        rules: rules.len(),
        expired: count(&rules, |rule| rule.status == RuleStatus::Expired),
        matching_nothing: count(&rules, |rule| rule.matches.is_empty()),
        scopes: snapshots.len(),
        identities: snapshots.iter().map(|s| s.identities.len()).sum(),
    };
    let exit_code = if summary.expired > 0 || summary.matching_nothing > 0 {
        exit::FINDINGS
    } else {
        exit::CLEAN
    };
    RulesCheck {
        exit_code,
        config: Some(settings.config.display().to_string()),
        as_of: Some(today.to_string()),
        errors: Vec::new(),
        summary,
        rules,
    }
}

fn count(rules: &[RuleReach], predicate: impl Fn(&RuleReach) -> bool) -> usize {
    rules.iter().filter(|rule| predicate(rule)).count()
}

fn reach(rule: &ExpectedRule, expired: bool, snapshots: &[Snapshot]) -> RuleReach {
    let mut matches = Vec::new();
    for snapshot in snapshots {
        for identity in &snapshot.identities {
            // The actor is known only at scan time, from the audit log.
            if rule
                .matching
                .matches_identity(snapshot.provider, &snapshot.scope, identity)
            {
                matches.push(MatchedIdentity {
                    provider: snapshot.provider,
                    scope: snapshot.scope.clone(),
                    kind: identity.kind,
                    id: identity.id.clone(),
                    name: identity.name.clone(),
                    creation_needs: rule.unlisted_for_creation(identity),
                });
            }
        }
    }
    RuleReach {
        rule: rule.key(),
        owner: rule.owner.clone(),
        reason: rule.reason.clone(),
        expires: rule.expires.map(|date| date.to_string()),
        status: if expired {
            RuleStatus::Expired
        } else {
            RuleStatus::InForce
        },
        match_fields: rule.matching.describe(),
        changes: rule.changes.clone(),
        matches,
    }
}

fn render_table(check: &RulesCheck) -> String {
    let mut out = String::new();
    if !check.errors.is_empty() {
        for error in &check.errors {
            let one_line = error.split_whitespace().collect::<Vec<_>>().join(" ");
            let _ = writeln!(out, "error: {}", sanitize(&one_line));
        }
        let _ = writeln!(out, "rules not checked; exit code {}", check.exit_code);
        return out;
    }
    if check.rules.is_empty() {
        let _ = writeln!(out, "the config has no [[expected]] rules");
    }
    for rule in &check.rules {
        render_rule(&mut out, rule);
        let _ = writeln!(out);
    }

    let summary = &check.summary;
    let config = check.config.as_deref().unwrap_or("the config");
    let as_of = check.as_of.as_deref().unwrap_or("-");
    let _ = writeln!(
        out,
        "{} in {} as of {as_of}: {} expired, {} matching nothing; {} in {}; exit code {}",
        counted(summary.rules, "rule"),
        sanitize(config),
        summary.expired,
        summary.matching_nothing,
        counted(summary.identities, "identity"),
        counted(summary.scopes, "scope"),
        check.exit_code
    );
    out
}

/// Returns `1 rule`, `2 rules`, `1 identity`, `2 identities`.
fn counted(count: usize, noun: &str) -> String {
    match (count, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) => format!("{count} {stem}ies"),
        (_, None) => format!("{count} {noun}s"),
    }
}

fn render_rule(out: &mut String, rule: &RuleReach) {
    let state = match (rule.status, &rule.expires) {
        (RuleStatus::Expired, Some(date)) => format!("EXPIRED on {date}, mutes nothing"),
        (RuleStatus::Expired, None) => "EXPIRED, mutes nothing".to_string(),
        (RuleStatus::InForce, Some(date)) => format!("in force until {date}"),
        (RuleStatus::InForce, None) => "in force, no expiry date".to_string(),
    };
    let _ = writeln!(
        out,
        "{}: {state}; owner {}",
        rule.rule,
        sanitize(&rule.owner)
    );
    let _ = writeln!(out, "  reason: {}", sanitize(&rule.reason));
    let _ = writeln!(out, "  match: {}", sanitize(&rule.match_fields.join(", ")));
    let _ = writeln!(out, "  mutes: {}", rule.changes.join(", "));
    if rule.matches.is_empty() {
        let _ = writeln!(out, "  matches nothing in the snapshots");
        return;
    }
    let _ = writeln!(
        out,
        "  matches {}:",
        counted(rule.matches.len(), "identity")
    );
    for matched in rule.matches.iter().take(TABLE_MATCH_LIMIT) {
        let note = if matched.creation_needs.is_empty() {
            String::new()
        } else {
            format!(
                "; its creation is muted only if changes also lists {}",
                matched.creation_needs.join(" and ")
            )
        };
        let _ = writeln!(
            out,
            "    {} {} {} {} ({}){note}",
            matched.provider,
            sanitize(&matched.scope),
            matched.kind.as_str(),
            sanitize(&matched.name),
            sanitize(&matched.id)
        );
    }
    if rule.matches.len() > TABLE_MATCH_LIMIT {
        let more = rule.matches.len() - TABLE_MATCH_LIMIT;
        let _ = writeln!(out, "    and {more} more; --format json lists them all");
    }
}
