//! The judge's second pass, after attribution has named who made each
//! change. Expected-account rules that set `actor` are applied now. A
//! change made by a principal that is itself new in the same scan (an
//! identity the same diff adds) is raised one severity step, because a new
//! account that at once creates more access is how an intruder spreads.

use super::{Finding, Severity};
use crate::attribute::AttributionStatus;
use crate::diff::{Change, ChangeKind};
use crate::model::{Identity, IdentityKind, Provider, azure_attribute};
use crate::rules::RuleSet;

/// Applies the actor-based judgement to findings, each judged from the
/// change at the same position in `changes`. Findings past the end of
/// `changes` (such as `rule_expired` ones) are left as they are.
pub fn apply_actors(findings: &mut [Finding], changes: &[Change], rules: &RuleSet) {
    let new_identities: Vec<(Provider, &str, &Identity)> = findings
        .iter()
        .zip(changes)
        .filter(|(_, change)| is_creation(change))
        .map(|(finding, change)| (finding.provider, finding.scope.as_str(), &change.identity))
        .collect();
    let mut raised = Vec::new();
    for (index, (finding, change)) in findings.iter().zip(changes).enumerate() {
        let Some(attribution) = &finding.attribution else {
            continue;
        };
        if attribution.status != AttributionStatus::Found {
            continue;
        }
        let creator = attribution.actors().into_iter().find_map(|actor| {
            new_identities
                .iter()
                .filter(|(provider, scope, identity)| {
                    *provider == finding.provider
                        && *scope == finding.scope
                        && identity.id != change.identity.id
                })
                .find(|(_, _, identity)| is_actor(actor, identity))
                .map(|(_, _, identity)| (actor.to_string(), *identity))
        });
        if let Some((actor, identity)) = creator {
            raised.push((index, actor, identity.kind.label(), identity.name.clone()));
        }
    }
    for (index, actor, label, name) in raised {
        raise(&mut findings[index], &actor, label, &name);
    }

    for (finding, change) in findings.iter_mut().zip(changes) {
        let actors: Vec<String> = match &finding.attribution {
            Some(attribution) if attribution.status == AttributionStatus::Found => attribution
                .actors()
                .into_iter()
                .map(str::to_string)
                .collect(),
            _ => continue,
        };
        let actors: Vec<&str> = actors.iter().map(String::as_str).collect();
        let (provider, scope) = (finding.provider, finding.scope.clone());
        super::expected::apply_with_actors(rules, provider, &scope, change, &actors, finding);
    }
}

fn is_creation(change: &Change) -> bool {
    matches!(
        change.kind,
        ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. }
    )
}

/// Raises a finding one severity step, to at most critical, and records the reason.
fn raise(finding: &mut Finding, actor: &str, label: &str, name: &str) {
    let from = finding.severity;
    let cause = format!(
        "the change was made by {actor}, the {label} {name} that is itself new in this scan"
    );
    finding.severity = one_step_up(from);
    finding.severity_reason = if finding.severity == from {
        format!("{}; {cause}", finding.severity_reason)
    } else {
        format!(
            "{}; raised from {} because {cause}",
            finding.severity_reason,
            from.as_str()
        )
    };
    finding
        .evidence
        .insert("made_by_new_identity".to_string(), actor.to_string());
}

fn one_step_up(severity: Severity) -> Severity {
    match severity {
        Severity::Info => Severity::Low,
        Severity::Low => Severity::Medium,
        Severity::Medium => Severity::High,
        Severity::High | Severity::Critical => Severity::Critical,
    }
}

/// Returns true when an audit log actor is the identity: by ARN (an
/// assumed-role session counts as its role), user principal name or
/// application id, or email, compared without case where the provider
/// ignores it.
fn is_actor(actor: &str, identity: &Identity) -> bool {
    match identity.kind {
        IdentityKind::AwsUser => identity.arn.as_deref() == Some(actor),
        IdentityKind::AwsRole => {
            identity.arn.as_deref() == Some(actor)
                || assumed_role_name(actor) == Some(&identity.name)
        }
        IdentityKind::AzureUser => identity.name.eq_ignore_ascii_case(actor),
        IdentityKind::AzureServicePrincipal
        | IdentityKind::AzureManagedIdentity
        | IdentityKind::AzureApplication => identity
            .attributes
            .get(azure_attribute::APP_ID)
            .is_some_and(|app_id| app_id.eq_ignore_ascii_case(actor)),
        IdentityKind::GcpServiceAccount | IdentityKind::GworkspaceUser => {
            identity.name.eq_ignore_ascii_case(actor)
        }
        // Identity Center sessions are named after the user who signed in.
        IdentityKind::AwsIdentityCenterUser => assumed_role_session(actor)
            .is_some_and(|session| session.eq_ignore_ascii_case(&identity.name)),
        // Profiles, providers, assignments and workload identity providers
        // are ways in, not principals that appear in an audit log.
        IdentityKind::AwsInstanceProfile
        | IdentityKind::AwsOidcProvider
        | IdentityKind::AwsSamlProvider
        | IdentityKind::AwsPermissionSetAssignment
        | IdentityKind::GcpWorkloadIdentityProvider => false,
        IdentityKind::GcpPrincipal => identity
            .id
            .split_once(':')
            .is_some_and(|(_, email)| email.eq_ignore_ascii_case(actor)),
    }
}

/// Returns the role name of an STS assumed-role ARN,
/// `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`.
fn assumed_role_name(actor: &str) -> Option<&str> {
    assumed_role_part(actor, 0)
}

/// Returns the session name of an STS assumed-role ARN.
fn assumed_role_session(actor: &str) -> Option<&str> {
    assumed_role_part(actor, 1)
}

/// Returns the part at `position` of an assumed-role ARN's resource,
/// `NAME/SESSION`.
fn assumed_role_part(actor: &str, position: usize) -> Option<&str> {
    let (_, rest) = actor.split_once(":assumed-role/")?;
    rest.split('/').nth(position)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribute::{Attribution, AuditEvent, Window};
    use crate::diff::ScopeDiff;
    use crate::model::{Credential, CredentialKind};

    fn user(id: &str, name: &str) -> Identity {
        let mut identity = Identity::new(id, IdentityKind::AwsUser, name);
        identity.arn = Some(format!("arn:aws:iam::123456789012:user/{name}"));
        identity
    }

    fn found(actor: &str) -> Attribution {
        let event = AuditEvent {
            actor: actor.to_string(),
            source_ip: None,
            user_agent: None,
            time: "2026-01-01T00:00:00Z".to_string(),
            event_id: "e1".to_string(),
            event_name: "CreateAccessKey".to_string(),
            open_command: String::new(),
        };
        Attribution::searched(Window { start: 0, end: 1 }, vec![event])
    }

    /// Builds the changes of a diff in which `intruder` is new and `victim`
    /// gains an access key.
    fn chain() -> Vec<Change> {
        let mut victim = user("AIDAVICTIM", "victim");
        let key = Credential {
            kind: CredentialKind::AccessKey,
            id: "AKIAVICTIM".to_string(),
            status: Some("Active".to_string()),
            created: None,
            expires: None,
            display_name: None,
            detail: None,
        };
        victim.credentials.push(key.clone());
        vec![
            Change {
                kind: ChangeKind::IdentityAdded,
                identity: user("AIDAINTRUDER", "intruder"),
            },
            Change {
                kind: ChangeKind::CredentialAdded { credential: key },
                identity: victim,
            },
        ]
    }

    fn judged(changes: &[Change], rules: &RuleSet) -> Vec<Finding> {
        let diff = ScopeDiff {
            provider: Provider::Aws,
            scope: "123456789012".to_string(),
            changes: changes.to_vec(),
            not_compared: Vec::new(),
            privileged_app_ids: Default::default(),
        };
        super::super::judge_with_rules(&diff, rules)
    }

    fn no_rules() -> RuleSet {
        RuleSet::new(Vec::new(), crate::rules::Date::today())
    }

    #[test]
    fn new_user_making_key_raises_severity() {
        let changes = chain();
        let mut findings = judged(&changes, &no_rules());
        let before = findings[1].severity;
        findings[1].attribution = Some(found("arn:aws:iam::123456789012:user/intruder"));
        apply_actors(&mut findings, &changes, &no_rules());

        assert_eq!(findings[1].severity, one_step_up(before));
        let reason = &findings[1].severity_reason;
        assert!(reason.contains("raised from"), "{reason}");
        assert!(reason.contains("IAM user intruder"), "{reason}");
        assert_eq!(
            findings[1].evidence["made_by_new_identity"],
            "arn:aws:iam::123456789012:user/intruder"
        );
    }

    #[test]
    fn known_actor_leaves_severity() {
        let changes = chain();
        let mut findings = judged(&changes, &no_rules());
        let before = findings[1].severity;
        findings[1].attribution = Some(found("arn:aws:iam::123456789012:user/admin"));
        apply_actors(&mut findings, &changes, &no_rules());
        assert_eq!(findings[1].severity, before);
        assert!(!findings[1].evidence.contains_key("made_by_new_identity"));
    }

    #[test]
    fn assumed_role_session_is_its_role() {
        let role = Identity::new("AROA1", IdentityKind::AwsRole, "deployer");
        assert!(is_actor(
            "arn:aws:sts::123456789012:assumed-role/deployer/session-1",
            &role
        ));
        assert!(!is_actor(
            "arn:aws:sts::123456789012:assumed-role/other/session-1",
            &role
        ));
        let member = Identity::new("user:Eve@example.com", IdentityKind::GcpPrincipal, "x");
        assert!(is_actor("eve@example.com", &member));
    }

    #[test]
    fn actor_rule_mutes_only_with_its_actor() {
        let text = "[[expected]]\nowner = \"platform\"\nreason = \"keys made by the rotation job\"\n\
                    provider = \"aws\"\nactor = \"arn:aws:iam::123456789012:user/rotator\"\n\
                    changes = [\"credential_added\"]\n";
        let config =
            crate::config::parse(std::path::Path::new("idrift.toml"), text).expect("valid config");
        let rules = RuleSet::new(config.expected, crate::rules::Date::today());
        let changes = chain();

        let mut findings = judged(&changes, &rules);
        assert!(
            !findings[1].expected,
            "no actor is known before attribution"
        );
        findings[1].attribution = Some(found("arn:aws:iam::123456789012:user/rotator"));
        apply_actors(&mut findings, &changes, &rules);
        assert!(findings[1].expected);
        let reason = findings[1].expected_reason.as_deref().unwrap_or_default();
        assert!(reason.contains("rotation job"), "{reason}");

        let mut findings = judged(&changes, &rules);
        findings[1].attribution = Some(found("arn:aws:iam::123456789012:user/someone"));
        apply_actors(&mut findings, &changes, &rules);
        assert!(!findings[1].expected);
    }
}
