//! The judge: turns changes into findings with a severity, an ATT&CK
//! technique, evidence, a verdict (expected or not) and response commands.
//!
//! This first cut recognizes one kind of expected change: the creation of an AWS
//! service-linked role. Built-in knowledge only lowers the severity of a
//! creation; it never mutes a new credential or admin grant.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::collect::aws::policy::principal_account;
use crate::diff::{Change, ChangeKind, ScopeDiff};
use crate::model::{CredentialKind, Identity, IdentityKind, Provider};

/// Urgency of a finding, from `info` to `critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, no action needed (removals, renames).
    Info,
    /// Unusual but of little reach.
    Low,
    /// A new identity without credentials or admin.
    Medium,
    /// A new way in: an identity with a credential, a new credential.
    High,
    /// A way in with admin rights or trust from outside the account.
    Critical,
}

impl Severity {
    /// Returns the lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// A MITRE ATT&CK technique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Technique {
    /// Technique id, such as `T1136.003`.
    pub id: &'static str,
    /// Technique name.
    pub name: &'static str,
    /// Link to the technique's page.
    pub url: &'static str,
}

const CREATE_CLOUD_ACCOUNT: Technique = Technique {
    id: "T1136.003",
    name: "Create Account: Cloud Account",
    url: "https://attack.mitre.org/techniques/T1136/003/",
};
const ADDITIONAL_CLOUD_CREDENTIALS: Technique = Technique {
    id: "T1098.001",
    name: "Account Manipulation: Additional Cloud Credentials",
    url: "https://attack.mitre.org/techniques/T1098/001/",
};
const ADDITIONAL_CLOUD_ROLES: Technique = Technique {
    id: "T1098.003",
    name: "Account Manipulation: Additional Cloud Roles",
    url: "https://attack.mitre.org/techniques/T1098/003/",
};

/// A judged change.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Provider.
    pub provider: Provider,
    /// Scope id.
    pub scope: String,
    /// The change kind, such as `identity_added`.
    pub change: &'static str,
    /// The identity kind, such as `aws_user`.
    pub identity_kind: IdentityKind,
    /// The identity's immutable id.
    pub identity_id: String,
    /// The identity's name.
    pub identity_name: String,
    /// The identity's ARN, where it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// Severity.
    pub severity: Severity,
    /// Reason for the severity.
    pub severity_reason: String,
    /// True when built-in knowledge or a rule explains the change.
    pub expected: bool,
    /// Rule or knowledge that made it expected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_reason: Option<String>,
    /// The ATT&CK technique the change maps to; none for removals and renames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub technique: Option<Technique>,
    /// One line saying what happened.
    pub summary: String,
    /// Ids, names and dates that back the finding.
    pub evidence: BTreeMap<String, String>,
    /// Provider CLI commands that contain the change, filled with real ids.
    pub response: Vec<String>,
}

impl Finding {
    /// Returns true when the finding should fail a cron run (exit code 1):
    /// unexpected and of severity `low` or above.
    pub fn needs_attention(&self) -> bool {
        !self.expected && self.severity >= Severity::Low
    }
}

/// Judges every change of a scope's diff.
pub fn judge(diff: &ScopeDiff) -> Vec<Finding> {
    diff.changes
        .iter()
        .map(|change| judge_change(diff, change))
        .collect()
}

fn judge_change(diff: &ScopeDiff, change: &Change) -> Finding {
    let identity = &change.identity;
    let verdict = assess(&diff.scope, change);
    let verdict_expected = verdict.expected_reason.is_some();
    let mut evidence = identity_evidence(identity);
    evidence.extend(change_evidence(&change.kind));

    Finding {
        provider: diff.provider,
        scope: diff.scope.clone(),
        change: change.kind.name(),
        identity_kind: identity.kind,
        identity_id: identity.id.clone(),
        identity_name: identity.name.clone(),
        arn: identity.arn.clone(),
        severity: verdict.severity,
        severity_reason: verdict.reason,
        expected: verdict.expected_reason.is_some(),
        expected_reason: verdict.expected_reason,
        technique: technique_for(&change.kind),
        summary: summarize(change),
        evidence,
        // Expected changes need no containment, and a service-linked role
        // cannot take a deny policy anyway.
        response: if verdict_expected {
            Vec::new()
        } else {
            response_commands(change)
        },
    }
}

/// Severity, its reason, and what (if anything) makes the change expected.
struct Verdict {
    severity: Severity,
    reason: String,
    expected_reason: Option<String>,
}

impl Verdict {
    fn new(severity: Severity, reason: impl Into<String>) -> Verdict {
        Verdict {
            severity,
            reason: reason.into(),
            expected_reason: None,
        }
    }
}

fn assess(scope: &str, change: &Change) -> Verdict {
    let identity = &change.identity;
    match &change.kind {
        ChangeKind::IdentityAdded => assess_creation(scope, identity),
        ChangeKind::IdentityRecreated { .. } => {
            let mut verdict = assess_creation(scope, identity);
            if verdict.expected_reason.is_none() && verdict.severity < Severity::High {
                verdict.severity = Severity::High;
                verdict.reason = format!("a name re-created with a new id; {}", verdict.reason);
            }
            verdict
        }
        ChangeKind::CredentialAdded { .. } if identity.is_admin() => Verdict::new(
            Severity::Critical,
            "new credential on an identity with admin rights",
        ),
        ChangeKind::CredentialAdded { .. } => {
            Verdict::new(Severity::High, "new credential on an existing identity")
        }
        ChangeKind::CredentialStatusChanged { credential, .. }
            if credential.status.as_deref() == Some("Active") =>
        {
            Verdict::new(Severity::Medium, "a credential was re-activated")
        }
        ChangeKind::PrivilegeAdded { .. } => Verdict::new(Severity::Critical, "new admin grant"),
        ChangeKind::TrustChanged { added, .. } => assess_trust_change(scope, identity, added),
        ChangeKind::EnabledChanged { .. } => {
            Verdict::new(Severity::Low, "the identity was enabled or disabled")
        }
        ChangeKind::CredentialStatusChanged { .. }
        | ChangeKind::IdentityRemoved
        | ChangeKind::Renamed { .. }
        | ChangeKind::PathChanged { .. }
        | ChangeKind::CredentialRemoved { .. }
        | ChangeKind::PrivilegeRemoved { .. } => {
            Verdict::new(Severity::Info, "removes access or renames; no new way in")
        }
    }
}

/// Severity of a new identity, from what it can do and who can use it.
fn assess_creation(scope: &str, identity: &Identity) -> Verdict {
    if let Some(reason) = service_linked_role(identity) {
        let mut verdict = Verdict::new(
            Severity::Low,
            "AWS creates service-linked roles when a service is enabled",
        );
        verdict.expected_reason = Some(reason);
        return verdict;
    }

    let outside = outside_principals(scope, identity);
    let admin = identity.is_admin();
    let has_credential = !identity.credentials.is_empty();
    match (admin, outside.is_empty(), has_credential) {
        (true, false, _) => Verdict::new(
            Severity::Critical,
            format!(
                "new identity with admin rights, trusted from outside the account ({})",
                outside.join(", ")
            ),
        ),
        (true, true, _) => Verdict::new(Severity::Critical, "new identity with admin rights"),
        (false, false, _) => Verdict::new(
            Severity::High,
            format!(
                "new role trusted from outside the account ({})",
                outside.join(", ")
            ),
        ),
        (false, true, true) => Verdict::new(Severity::High, "new identity with a credential"),
        (false, true, false) => Verdict::new(
            Severity::Medium,
            "new identity without credentials or admin rights",
        ),
    }
}

fn assess_trust_change(
    scope: &str,
    identity: &Identity,
    added: &[crate::model::TrustPrincipal],
) -> Verdict {
    let outside: Vec<String> = added
        .iter()
        .filter(|principal| is_outside(scope, principal))
        .map(|principal| principal.value.clone())
        .collect();
    match (outside.is_empty(), identity.is_admin(), added.is_empty()) {
        (false, true, _) => Verdict::new(
            Severity::Critical,
            format!(
                "an admin role now trusts principals outside the account ({})",
                outside.join(", ")
            ),
        ),
        (false, false, _) => Verdict::new(
            Severity::High,
            format!(
                "the role now trusts principals outside the account ({})",
                outside.join(", ")
            ),
        ),
        (true, _, false) => Verdict::new(
            Severity::Medium,
            "the role trusts new principals of this account",
        ),
        (true, _, true) => Verdict::new(
            Severity::Info,
            "principals were removed from the trust policy",
        ),
    }
}

/// Returns why a role is a service-linked role, if it is one: a path under
/// `/aws-service-role/` (AWS uses `/aws-service-role/<service>/`), a trust
/// policy of AWS service principals only, the service the path names among
/// them, and no admin grant. Mixed trust never qualifies, and a role with
/// admin rights is judged on those, whatever its path.
fn service_linked_role(identity: &Identity) -> Option<String> {
    let is_role = identity.kind == IdentityKind::AwsRole;
    let service_in_path = identity
        .path
        .as_deref()
        .and_then(|path| path.strip_prefix("/aws-service-role/"))
        .map(|rest| rest.trim_end_matches('/'));
    let services_only = !identity.trust.is_empty()
        && identity.trust.iter().all(|principal| {
            principal.kind == "service" && principal.value.ends_with(".amazonaws.com")
        });
    let path_matches_trust = match service_in_path {
        None => false,
        Some("") => true,
        Some(service) => identity
            .trust
            .iter()
            .all(|principal| principal.value == service),
    };
    let qualifies = is_role && services_only && path_matches_trust && !identity.is_admin();
    qualifies.then(|| {
        let services: Vec<&str> = identity
            .trust
            .iter()
            .map(|principal| principal.value.as_str())
            .collect();
        format!("AWS service-linked role for {}", services.join(", "))
    })
}

/// Returns true for a trust principal outside the scope's account: another
/// account, `*`, or a `NotPrincipal` (everyone but the named principals).
fn is_outside(scope: &str, principal: &crate::model::TrustPrincipal) -> bool {
    match principal.kind.as_str() {
        "not_principal" => true,
        "aws" => {
            principal.value == "*"
                || principal_account(&principal.value).is_some_and(|account| account != scope)
        }
        _ => false,
    }
}

fn outside_principals(scope: &str, identity: &Identity) -> Vec<String> {
    identity
        .trust
        .iter()
        .filter(|principal| is_outside(scope, principal))
        .map(|principal| {
            if principal.conditional {
                format!("{} (with a condition)", principal.value)
            } else {
                principal.value.clone()
            }
        })
        .collect()
}

fn technique_for(kind: &ChangeKind) -> Option<Technique> {
    match kind {
        ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. } => {
            Some(CREATE_CLOUD_ACCOUNT)
        }
        ChangeKind::CredentialAdded { .. } | ChangeKind::CredentialStatusChanged { .. } => {
            Some(ADDITIONAL_CLOUD_CREDENTIALS)
        }
        ChangeKind::PrivilegeAdded { .. } | ChangeKind::TrustChanged { .. } => {
            Some(ADDITIONAL_CLOUD_ROLES)
        }
        _ => None,
    }
}

fn summarize(change: &Change) -> String {
    let identity = &change.identity;
    let who = format!("{} {}", identity.kind.label(), identity.name);
    match &change.kind {
        ChangeKind::IdentityAdded => format!("new {who}"),
        ChangeKind::IdentityRemoved => format!("{who} was deleted"),
        ChangeKind::IdentityRecreated { previous_id } => {
            format!(
                "{who} was deleted and created again (id {previous_id} is now {})",
                identity.id
            )
        }
        ChangeKind::Renamed { from } => format!(
            "{} {from} was renamed to {}",
            identity.kind.label(),
            identity.name
        ),
        ChangeKind::PathChanged { from } => {
            format!(
                "{who} moved from path {} to {}",
                from.as_deref().unwrap_or("-"),
                identity.path.as_deref().unwrap_or("-")
            )
        }
        ChangeKind::EnabledChanged { .. } => format!("{who} enabled state changed"),
        ChangeKind::TrustChanged { .. } => format!("trust policy of {who} changed"),
        ChangeKind::CredentialAdded { credential } => {
            format!("new {} on {who}", credential_label(credential))
        }
        ChangeKind::CredentialRemoved { credential } => {
            format!("{} of {who} was removed", credential_label(credential))
        }
        ChangeKind::CredentialStatusChanged { credential, from } => format!(
            "{} of {who} went from {} to {}",
            credential_label(credential),
            from.as_deref().unwrap_or("-"),
            credential.status.as_deref().unwrap_or("-")
        ),
        ChangeKind::PrivilegeAdded { grant } => {
            format!("{who} gained admin through {}", grant_source(grant))
        }
        ChangeKind::PrivilegeRemoved { grant } => {
            format!("{who} lost admin through {}", grant_source(grant))
        }
    }
}

/// Names a credential: the kind, and the id where it has one of its own.
fn credential_label(credential: &crate::model::Credential) -> String {
    match credential.kind {
        CredentialKind::ConsolePassword => credential.kind.label().to_string(),
        CredentialKind::AccessKey => format!("{} {}", credential.kind.label(), credential.id),
    }
}

fn grant_source(grant: &crate::model::AdminGrant) -> String {
    match &grant.group {
        Some(group) => format!("group {group} ({} {})", grant.via, grant.policy),
        None => format!("{} policy {}", grant.via, grant.policy),
    }
}

/// Evidence every finding carries about its identity.
fn identity_evidence(identity: &Identity) -> BTreeMap<String, String> {
    let mut evidence = BTreeMap::new();
    if let Some(created) = &identity.created {
        evidence.insert("created".to_string(), created.clone());
    }
    if let Some(path) = &identity.path {
        evidence.insert("path".to_string(), path.clone());
    }
    if !identity.credentials.is_empty() {
        let credentials: Vec<String> = identity
            .credentials
            .iter()
            .map(|credential| {
                let created = credential.created.as_deref().unwrap_or("unknown date");
                format!("{} created {created}", credential_label(credential))
            })
            .collect();
        evidence.insert("credentials".to_string(), credentials.join("; "));
    }
    if identity.is_admin() {
        let grants: Vec<String> = identity
            .admin_grants
            .iter()
            .map(|grant| format!("{} ({})", grant_source(grant), grant.reason))
            .collect();
        evidence.insert("admin".to_string(), grants.join("; "));
    }
    if !identity.trust.is_empty() {
        let trust: Vec<String> = identity
            .trust
            .iter()
            .map(|principal| {
                let condition = if principal.conditional {
                    " (with a condition)"
                } else {
                    ""
                };
                format!("{} {}{condition}", principal.kind, principal.value)
            })
            .collect();
        evidence.insert("trust".to_string(), trust.join("; "));
    }
    if !identity.groups.is_empty() {
        evidence.insert("groups".to_string(), identity.groups.join(", "));
    }
    evidence
}

fn change_evidence(kind: &ChangeKind) -> BTreeMap<String, String> {
    let mut evidence = BTreeMap::new();
    match kind {
        ChangeKind::IdentityRecreated { previous_id } => {
            evidence.insert("previous_id".to_string(), previous_id.clone());
        }
        ChangeKind::Renamed { from } => {
            evidence.insert("previous_name".to_string(), from.clone());
        }
        ChangeKind::CredentialAdded { credential }
        | ChangeKind::CredentialRemoved { credential } => {
            evidence.insert("credential_id".to_string(), credential.id.clone());
            if let Some(created) = &credential.created {
                evidence.insert("credential_created".to_string(), created.clone());
            }
        }
        ChangeKind::TrustChanged { added, removed } => {
            let list = |principals: &[crate::model::TrustPrincipal]| {
                principals
                    .iter()
                    .map(|p| p.value.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            evidence.insert("trust_added".to_string(), list(added));
            evidence.insert("trust_removed".to_string(), list(removed));
        }
        _ => {}
    }
    evidence
}

/// Quotes a value for a POSIX shell when it contains anything but safe characters.
fn shell_quote(value: &str) -> String {
    let safe = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-:/".contains(&b));
    if safe {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// Returns the `aws` CLI commands that contain a change, with real names and ids.
fn response_commands(change: &Change) -> Vec<String> {
    let identity = &change.identity;
    let name = shell_quote(&identity.name);
    let is_user = identity.kind == IdentityKind::AwsUser;
    match &change.kind {
        ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. } if is_user => {
            disable_user(identity)
        }
        ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. } => vec![
            format!(
                "aws iam attach-role-policy --role-name={name} --policy-arn arn:aws:iam::aws:policy/AWSDenyAll"
            ),
            format!("aws iam get-role --role-name={name} --query Role.AssumeRolePolicyDocument"),
        ],
        ChangeKind::CredentialAdded { credential }
        | ChangeKind::CredentialStatusChanged { credential, .. } => {
            disable_credential(&name, credential.kind, &credential.id)
        }
        ChangeKind::PrivilegeAdded { grant } => vec![revoke_grant(&name, is_user, grant)],
        ChangeKind::TrustChanged { .. } => vec![
            format!("aws iam get-role --role-name={name} --query Role.AssumeRolePolicyDocument"),
            format!(
                "aws iam update-assume-role-policy --role-name={name} --policy-document file://trust-policy.json"
            ),
        ],
        _ => Vec::new(),
    }
}

fn disable_user(identity: &Identity) -> Vec<String> {
    let name = shell_quote(&identity.name);
    let mut commands = Vec::new();
    for credential in &identity.credentials {
        commands.extend(disable_credential(&name, credential.kind, &credential.id));
    }
    if identity.credentials.is_empty() {
        commands.push(format!("aws iam list-access-keys --user-name={name}"));
    }
    commands.push(format!("aws iam attach-user-policy --user-name={name} --policy-arn arn:aws:iam::aws:policy/AWSDenyAll"));
    commands
}

fn disable_credential(name: &str, kind: CredentialKind, id: &str) -> Vec<String> {
    match kind {
        CredentialKind::AccessKey => vec![format!(
            "aws iam update-access-key --user-name={name} --access-key-id={} --status Inactive",
            shell_quote(id)
        )],
        CredentialKind::ConsolePassword => {
            vec![format!("aws iam delete-login-profile --user-name={name}")]
        }
    }
}

fn revoke_grant(name: &str, is_user: bool, grant: &crate::model::AdminGrant) -> String {
    let (noun, flag) = if is_user {
        ("user", "--user-name")
    } else {
        ("role", "--role-name")
    };
    let policy = shell_quote(&grant.policy);
    match (grant.via.as_str(), &grant.group) {
        (_, Some(group)) => format!(
            "aws iam remove-user-from-group --user-name={name} --group-name={}",
            shell_quote(group)
        ),
        ("inline", None) => {
            format!("aws iam delete-{noun}-policy {flag}={name} --policy-name={policy}")
        }
        _ => format!("aws iam detach-{noun}-policy {flag}={name} --policy-arn={policy}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TrustPrincipal;

    fn role(path: &str, trust: &[(&str, &str)]) -> Identity {
        let mut identity = Identity::new("AROA1", IdentityKind::AwsRole, "r");
        identity.path = Some(path.to_string());
        identity.trust = trust
            .iter()
            .map(|(kind, value)| TrustPrincipal {
                kind: kind.to_string(),
                value: value.to_string(),
                conditional: false,
            })
            .collect();
        identity
    }

    #[test]
    fn service_linked_role_needs_path_and_services_only() {
        assert!(
            service_linked_role(&role(
                "/aws-service-role/",
                &[("service", "ecs.amazonaws.com")]
            ))
            .is_some()
        );
        assert!(service_linked_role(&role("/", &[("service", "ecs.amazonaws.com")])).is_none());
        let mixed = role(
            "/aws-service-role/",
            &[("service", "ecs.amazonaws.com"), ("aws", "111122223333")],
        );
        assert!(service_linked_role(&mixed).is_none());
        assert!(service_linked_role(&role("/aws-service-role/", &[])).is_none());
        let mismatched = role(
            "/aws-service-role/backdoor.amazonaws.com/",
            &[("service", "ec2.amazonaws.com")],
        );
        assert!(service_linked_role(&mismatched).is_none());
        let mut admin = role(
            "/aws-service-role/ecs.amazonaws.com/",
            &[("service", "ecs.amazonaws.com")],
        );
        admin.admin_grants.push(crate::model::AdminGrant {
            via: "attached".to_string(),
            policy: "arn:aws:iam::aws:policy/AdministratorAccess".to_string(),
            group: None,
            reason: "AdministratorAccess".to_string(),
        });
        assert!(service_linked_role(&admin).is_none());
        assert_eq!(
            assess_creation("123456789012", &admin).severity,
            Severity::Critical
        );
    }

    #[test]
    fn outside_trust_is_high() {
        let identity = role("/", &[("aws", "arn:aws:iam::999988887777:root")]);
        let verdict = assess_creation("123456789012", &identity);
        assert_eq!(verdict.severity, Severity::High);
        let inside = role("/", &[("aws", "arn:aws:iam::123456789012:root")]);
        assert_eq!(
            assess_creation("123456789012", &inside).severity,
            Severity::Medium
        );
    }

    #[test]
    fn response_survives_leading_dash() {
        let mut identity = Identity::new("AIDA1", IdentityKind::AwsUser, "-rf");
        identity.credentials.push(crate::model::Credential {
            kind: CredentialKind::AccessKey,
            id: "AKIA1".to_string(),
            status: Some("Active".to_string()),
            created: None,
        });
        let change = Change {
            kind: ChangeKind::IdentityAdded,
            identity,
        };
        let commands = response_commands(&change);
        assert!(commands[0].contains("--user-name=-rf"), "{commands:?}");
        assert!(
            commands
                .iter()
                .all(|command| !command.contains("--user-name -")),
            "{commands:?}"
        );
    }

    #[test]
    fn shell_quote_wraps_unsafe_names() {
        assert_eq!(shell_quote("deploy-bot"), "deploy-bot");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
