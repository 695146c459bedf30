//! Expected-account rules applied to findings. A rule in force marks a
//! finding expected and names itself in `expected_reason`. An expired rule
//! mutes nothing: the findings it would have muted carry an `expired_rule`
//! evidence line, and the rule yields a `rule_expired` finding that names its
//! owner in every scope it covers.

use std::collections::BTreeMap;

use super::{Finding, Severity};
use crate::diff::{Change, ScopeDiff};
use crate::model::Provider;
use crate::rules::{ExpectedRule, RuleSet};

/// Applies the rules to the finding of one change. A finding that built-in
/// knowledge already explains keeps that explanation.
pub(super) fn apply(rules: &RuleSet, diff: &ScopeDiff, change: &Change, finding: &mut Finding) {
    apply_with_actors(rules, diff.provider, &diff.scope, change, &[], finding);
}

/// Applies the rules to the finding of one change, with the actors that
/// attribution found, which rules that set `actor` need.
pub(super) fn apply_with_actors(
    rules: &RuleSet,
    provider: Provider,
    scope: &str,
    change: &Change,
    actors: &[&str],
    finding: &mut Finding,
) {
    if finding.expected {
        return;
    }
    let verdict = rules.judge_with_actors(provider, scope, change, actors);
    if !verdict.expired.is_empty() {
        let expired: Vec<String> = verdict
            .expired
            .iter()
            .map(|rule| expired_label(rule))
            .collect();
        finding
            .evidence
            .insert("expired_rule".to_string(), expired.join("; "));
    }
    let Some(rule) = verdict.muted_by else {
        return;
    };
    finding.expected = true;
    finding.expected_reason = Some(rule.label());
    if let Some(expires) = rule.expires {
        finding
            .evidence
            .insert("rule_expires".to_string(), expires.to_string());
    }
    // Expected changes need no containment, only a look at who made them.
    finding.response = super::investigate_commands(finding);
}

fn expired_label(rule: &ExpectedRule) -> String {
    let expires = rule
        .expires
        .map(|date| date.to_string())
        .unwrap_or_default();
    format!(
        "rule {} (owner {}, expired {expires}): {}",
        rule.key(),
        rule.owner,
        rule.reason
    )
}

/// Returns a `rule_expired` finding for each expired rule and each scope it
/// covers among `scopes` (by its provider, kind and scope pattern).
pub fn expired_rule_findings<'a>(
    rules: &RuleSet,
    scopes: impl IntoIterator<Item = (Provider, &'a str)>,
) -> Vec<Finding> {
    let scopes: Vec<(Provider, &str)> = scopes.into_iter().collect();
    let mut findings = Vec::new();
    for rule in rules.expired() {
        for (provider, scope) in &scopes {
            if rule.matching.covers_scope(*provider, scope) {
                findings.push(expired_rule_finding(rule, *provider, scope));
            }
        }
    }
    findings
}

fn expired_rule_finding(rule: &ExpectedRule, provider: Provider, scope: &str) -> Finding {
    let expires = rule
        .expires
        .map(|date| date.to_string())
        .unwrap_or_default();
    let mut evidence = BTreeMap::new();
    evidence.insert("rule".to_string(), rule.key());
    evidence.insert("owner".to_string(), rule.owner.clone());
    evidence.insert("reason".to_string(), rule.reason.clone());
    evidence.insert("expires".to_string(), expires.clone());
    evidence.insert("match".to_string(), rule.matching.describe().join(", "));
    evidence.insert("changes".to_string(), rule.changes.join(", "));

    Finding {
        provider,
        scope: scope.to_string(),
        change: "rule_expired",
        identity_kind: None,
        identity_id: rule.key(),
        identity_name: rule.key(),
        arn: None,
        severity: Severity::Low,
        severity_reason: "an expected-account rule is past its expiry date, so the changes \
                          it matches count as unexpected again"
            .to_string(),
        expected: false,
        expected_reason: None,
        technique: None,
        summary: format!(
            "rule {} (owner {}) expired on {expires} and mutes nothing; renew its expires date or remove it",
            rule.key(),
            rule.owner
        ),
        evidence,
        response: Vec::new(),
        attribution: None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::diff::ChangeKind;
    use crate::judge::judge_with_rules;
    use crate::model::{Identity, IdentityKind};
    use crate::rules::Date;

    fn rule_set(text: &str, today: &str) -> RuleSet {
        let config = crate::config::parse(Path::new("idrift.toml"), text).expect("valid config");
        RuleSet::new(config.expected, Date::parse(today).expect("valid date"))
    }

    fn diff_adding(provider: Provider, scope: &str, identity: Identity) -> ScopeDiff {
        ScopeDiff {
            provider,
            scope: scope.to_string(),
            changes: vec![Change {
                kind: ChangeKind::IdentityAdded,
                identity,
            }],
            not_compared: Vec::new(),
            privileged_app_ids: Default::default(),
        }
    }

    const CI_RULE: &str = "[[expected]]\nowner = \"platform-team\"\nreason = \"CI deploy roles\"\n\
                           provider = \"aws\"\nname = \"ci-*\"\nexpires = 2026-06-30\n";

    #[test]
    fn rule_names_itself_in_expected_reason() {
        let role = Identity::new("AROA1", IdentityKind::AwsRole, "ci-deploy");
        let diff = diff_adding(Provider::Aws, "123456789012", role);
        let findings = judge_with_rules(&diff, &rule_set(CI_RULE, "2026-06-30"));

        assert!(findings[0].expected);
        assert_eq!(
            findings[0].expected_reason.as_deref(),
            Some("rule expected[0] (owner platform-team): CI deploy roles")
        );
        assert_eq!(findings[0].evidence["rule_expires"], "2026-06-30");
        // No containment, only the audit log lookup.
        assert_eq!(
            findings[0].response,
            vec![
                "aws cloudtrail lookup-events --region us-east-1 --lookup-attributes \
                  AttributeKey=ResourceName,AttributeValue=ci-deploy"
                    .to_string()
            ]
        );
        assert_eq!(findings[0].severity, Severity::Medium);
    }

    #[test]
    fn expired_rule_stops_muting() {
        let role = Identity::new("AROA1", IdentityKind::AwsRole, "ci-deploy");
        let diff = diff_adding(Provider::Aws, "123456789012", role);
        let rules = rule_set(CI_RULE, "2026-07-01");
        let findings = judge_with_rules(&diff, &rules);

        assert!(!findings[0].expected);
        assert!(findings[0].needs_attention());
        let evidence = &findings[0].evidence["expired_rule"];
        assert!(evidence.contains("owner platform-team"), "{evidence}");
        assert!(evidence.contains("expired 2026-06-30"), "{evidence}");
        assert!(!findings[0].response.is_empty());
    }

    #[test]
    fn expired_rule_finding_per_covered_scope() {
        let rules = rule_set(CI_RULE, "2026-07-01");
        let scopes = [
            (Provider::Aws, "123456789012"),
            (Provider::Aws, "210987654321"),
            (Provider::Gcp, "demo-project"),
        ];
        let findings = expired_rule_findings(&rules, scopes);

        assert_eq!(findings.len(), 2);
        let finding = &findings[0];
        assert_eq!(finding.change, "rule_expired");
        assert_eq!(finding.identity_kind, None);
        assert_eq!(finding.identity_id, "expected[0]");
        assert_eq!(finding.evidence["owner"], "platform-team");
        assert!(
            finding.summary.contains("owner platform-team"),
            "{}",
            finding.summary
        );
        assert!(finding.needs_attention());
        assert!(expired_rule_findings(&rule_set(CI_RULE, "2026-06-30"), scopes).is_empty());
    }

    #[test]
    fn built_in_reason_wins() {
        let mut role = Identity::new("AROA1", IdentityKind::AwsRole, "ci-AWSServiceRoleForECS");
        role.path = Some("/aws-service-role/ecs.amazonaws.com/".to_string());
        role.trust.push(crate::model::TrustPrincipal {
            kind: "service".to_string(),
            value: "ecs.amazonaws.com".to_string(),
            conditional: false,
        });
        let diff = diff_adding(Provider::Aws, "123456789012", role);
        let findings = judge_with_rules(&diff, &rule_set(CI_RULE, "2026-01-01"));
        let reason = findings[0].expected_reason.as_deref().unwrap_or_default();
        assert!(reason.contains("service-linked"), "{reason}");
    }
}
