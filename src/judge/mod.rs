//! The judge: turns changes into findings with a severity, an ATT&CK
//! technique, evidence, a verdict (expected or not) and response commands.
//!
//! Two things make a change expected. Built-in knowledge of the platforms'
//! own identities (in the per-cloud modules) lowers the severity of a
//! creation, but never explains a new credential or admin grant. The
//! config's expected-account rules (see [`crate::rules`]) mute the changes
//! they list. An expired rule mutes nothing and yields a finding of its own.

use std::collections::BTreeMap;

use serde::Serialize;

mod actors;
mod aws;
mod aws_access;
mod azure;
mod expected;
pub mod gcp;
mod gworkspace;

pub use actors::apply_actors;
pub use expected::expired_rule_findings;

use crate::attribute::Attribution;
use crate::diff::{Change, ChangeKind, ScopeDiff};
use crate::model::{CollectionName, CredentialKind, Identity, IdentityKind, Provider};
use crate::rules::RuleSet;

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
const ACCOUNT_MANIPULATION: Technique = Technique {
    id: "T1098",
    name: "Account Manipulation",
    url: "https://attack.mitre.org/techniques/T1098/",
};
const ACCOUNT_ACCESS_REMOVAL: Technique = Technique {
    id: "T1531",
    name: "Account Access Removal",
    url: "https://attack.mitre.org/techniques/T1531/",
};
const ADDITIONAL_CLOUD_ROLES: Technique = Technique {
    id: "T1098.003",
    name: "Account Manipulation: Additional Cloud Roles",
    url: "https://attack.mitre.org/techniques/T1098/003/",
};
const TRUST_MODIFICATION: Technique = Technique {
    id: "T1484.002",
    name: "Domain or Tenant Policy Modification: Trust Modification",
    url: "https://attack.mitre.org/techniques/T1484/002/",
};

/// A judged change.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Provider.
    pub provider: Provider,
    /// Scope id.
    pub scope: String,
    /// The change kind, such as `identity_added`, or `rule_expired` for an
    /// expected-account rule past its expiry date.
    pub change: &'static str,
    /// The identity kind, such as `aws_user`; absent for `rule_expired`,
    /// which is about a rule, not an identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_kind: Option<IdentityKind>,
    /// The identity's immutable id; the rule's key, such as `expected[0]`,
    /// for `rule_expired`.
    pub identity_id: String,
    /// The identity's name; the rule's key for `rule_expired`.
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
    /// The principal that made the change, from the provider's audit log.
    /// Absent when attribution is off or the finding was not looked up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribution: Option<Attribution>,
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

/// Judges every change of a scope's diff, then marks the findings that an
/// expected-account rule in force mutes.
pub fn judge_with_rules(diff: &ScopeDiff, rules: &RuleSet) -> Vec<Finding> {
    diff.changes
        .iter()
        .map(|change| {
            let mut finding = judge_change(diff, change);
            expected::apply(rules, diff, change, &mut finding);
            finding
        })
        .collect()
}

fn judge_change(diff: &ScopeDiff, change: &Change) -> Finding {
    let identity = &change.identity;
    let verdict = match diff.provider {
        Provider::Aws => aws::assess(&diff.scope, change),
        Provider::Azure => azure::assess(diff, change),
        Provider::Gcp => gcp::assess(&diff.scope, change),
        Provider::Gworkspace => gworkspace::assess(change),
    };
    let verdict = verdict.for_unlisted(diff, change);
    let verdict_expected = verdict.expected_reason.is_some();
    let mut evidence = identity_evidence(identity);
    evidence.extend(change_evidence(&change.kind));
    if let ChangeKind::TrustChanged { added, removed } = &change.kind {
        for principal in added.iter().chain(removed) {
            evidence.extend(aws_access::trust_evidence(&diff.scope, principal));
        }
    }

    let mut finding = Finding {
        provider: diff.provider,
        scope: diff.scope.clone(),
        change: change.kind.name(),
        identity_kind: Some(identity.kind),
        identity_id: identity.id.clone(),
        identity_name: identity.name.clone(),
        arn: identity.arn.clone(),
        severity: verdict.severity,
        severity_reason: verdict.reason,
        expected: verdict.expected_reason.is_some(),
        expected_reason: verdict.expected_reason,
        technique: Some(technique_for(change)),
        summary: summarize(change),
        evidence,
        response: Vec::new(),
        attribution: None,
    };
    // Expected changes need no containment (and a service-linked role
    // cannot take a deny policy anyway), but they can still be reviewed.
    finding.response = match diff.provider {
        _ if verdict_expected => Vec::new(),
        Provider::Aws => aws::response_commands(change),
        Provider::Azure => azure::response_commands(change),
        Provider::Gcp => gcp::response_commands(&diff.scope, change),
        Provider::Gworkspace => gworkspace::response_commands(&diff.scope, change),
    };
    if finding.response.is_empty() {
        finding.response = investigate_commands(&finding);
    }
    finding
}

/// Returns the command that finds, in the provider's audit log, who made
/// the change to the finding's identity: for findings that need no
/// containment (removals, renames, expected changes).
pub(crate) fn investigate_commands(finding: &Finding) -> Vec<String> {
    let id = &finding.identity_id;
    match (finding.provider, finding.identity_kind) {
        (_, None) => Vec::new(),
        // IAM is a global service whose events CloudTrail records in us-east-1.
        (Provider::Aws, Some(_)) => vec![format!(
            "aws cloudtrail lookup-events --region us-east-1 --lookup-attributes AttributeKey=ResourceName,AttributeValue={}",
            shell_quote(&finding.identity_name)
        )],
        (Provider::Azure, Some(_)) => vec![format!(
            "az rest --method GET --url {}",
            shell_quote(&format!(
                "https://graph.microsoft.com/v1.0/auditLogs/directoryAudits?$filter=targetResources/any(t:t/id eq '{id}')"
            ))
        )],
        (Provider::Gcp, Some(IdentityKind::GcpServiceAccount)) => vec![format!(
            "gcloud logging read {} --project={} --freshness=30d",
            shell_quote(&format!(
                "protoPayload.resourceName:\"{}\" OR protoPayload.request.name:\"{}\"",
                finding.identity_name, finding.identity_name
            )),
            shell_quote(&finding.scope)
        )],
        (Provider::Gcp, Some(IdentityKind::GcpWorkloadIdentityProvider)) => vec![format!(
            "gcloud logging read {} --project={} --freshness=30d",
            shell_quote(&format!("protoPayload.resourceName:\"{id}\"")),
            shell_quote(&finding.scope)
        )],
        (Provider::Gcp, Some(_)) => vec![format!(
            "gcloud logging read {} --project={} --freshness=30d",
            shell_quote(&format!(
                "protoPayload.serviceData.policyDelta.bindingDeltas.member=\"{id}\""
            )),
            shell_quote(&finding.scope)
        )],
        (Provider::Gworkspace, Some(_)) => {
            vec![gworkspace::investigate_command(&finding.identity_name)]
        }
    }
}

/// Severity, its reason, and what (if anything) makes the change expected.
struct Verdict {
    severity: Severity,
    reason: String,
    expected_reason: Option<String>,
}

impl Verdict {
    /// Raises the verdict of a creation to at least high when the name
    /// existed before with another id, unless the creation is expected.
    fn for_recreation(mut self) -> Verdict {
        if self.expected_reason.is_none() && self.severity < Severity::High {
            self.severity = Severity::High;
            self.reason = format!("a name re-created with a new id; {}", self.reason);
        }
        self
    }

    /// Raises the verdict of a creation to at least high when a listing
    /// that could give the new identity a credential or admin rights was
    /// not read in full for it. What idrift could not look at is not judged
    /// absent.
    fn for_unlisted(mut self, diff: &ScopeDiff, change: &Change) -> Verdict {
        let creation = matches!(
            change.kind,
            ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. }
        );
        if !creation || self.expected_reason.is_some() || self.severity >= Severity::High {
            return self;
        }
        let identity = &change.identity;
        let doubtful = ways_in(identity.kind);
        let missed: Vec<String> = diff
            .not_compared
            .iter()
            .filter(|skipped| doubtful.contains(&skipped.collection))
            .filter(|skipped| skipped.covers(&identity.id))
            .map(|skipped| skipped.collection.to_string())
            .collect();
        if !missed.is_empty() {
            self.severity = Severity::High;
            self.reason = format!(
                "{}, as far as idrift could see: {} not listed in full, so it may have a \
                 credential or admin rights",
                self.reason,
                missed.join(", ")
            );
        }
        self
    }

    fn new(severity: Severity, reason: impl Into<String>) -> Verdict {
        Verdict {
            severity,
            reason: reason.into(),
            expected_reason: None,
        }
    }
}

/// Returns the collections, other than the identity's own listing, that
/// give an identity of this kind its credentials or admin rights.
fn ways_in(kind: IdentityKind) -> &'static [CollectionName] {
    match kind {
        IdentityKind::AwsUser => &[
            CollectionName::AccessKeys,
            CollectionName::ConsolePasswords,
            CollectionName::Privileges,
        ],
        IdentityKind::AwsRole => &[CollectionName::Privileges],
        IdentityKind::AzureUser | IdentityKind::AzureServicePrincipal => {
            &[CollectionName::Privileges, CollectionName::AzureRbac]
        }
        IdentityKind::AzureManagedIdentity => &[
            CollectionName::Privileges,
            CollectionName::AzureRbac,
            CollectionName::UserAssignedIdentities,
        ],
        IdentityKind::AzureApplication => &[CollectionName::FederatedCredentials],
        IdentityKind::GcpServiceAccount => &[
            CollectionName::ServiceAccountKeys,
            CollectionName::IamPolicy,
        ],
        _ => &[],
    }
}

/// Maps a change to the ATT&CK technique an attacker would use to make
/// it: creations, credentials and roles to the persistence techniques,
/// removals and disabling to Account Access Removal, and other edits to
/// Account Manipulation.
fn technique_for(change: &Change) -> Technique {
    if let Some(technique) = aws_access::technique(change).or_else(|| gcp::technique(change)) {
        return technique;
    }
    match &change.kind {
        ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. } => CREATE_CLOUD_ACCOUNT,
        ChangeKind::CredentialAdded { .. } | ChangeKind::CredentialStatusChanged { .. } => {
            ADDITIONAL_CLOUD_CREDENTIALS
        }
        ChangeKind::PrivilegeAdded { .. } | ChangeKind::TrustChanged { .. } => {
            ADDITIONAL_CLOUD_ROLES
        }
        // An owner can add credentials to what it owns: a path to T1098.001.
        ChangeKind::OwnerAdded { .. } => ACCOUNT_MANIPULATION,
        ChangeKind::IdentityRemoved
        | ChangeKind::CredentialRemoved { .. }
        | ChangeKind::PrivilegeRemoved { .. }
        | ChangeKind::OwnerRemoved { .. } => ACCOUNT_ACCESS_REMOVAL,
        ChangeKind::EnabledChanged { .. } if change.identity.enabled == Some(false) => {
            ACCOUNT_ACCESS_REMOVAL
        }
        ChangeKind::EnabledChanged { .. }
        | ChangeKind::Renamed { .. }
        | ChangeKind::PathChanged { .. }
        | ChangeKind::AttributeChanged { .. } => ACCOUNT_MANIPULATION,
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
        ChangeKind::TrustChanged { added, removed } => match (added.first(), removed.first()) {
            (Some(principal), _) => format!(
                "{who} now trusts {} principal {}{}",
                principal.kind,
                principal.value,
                if principal.conditional {
                    " (with a condition)"
                } else {
                    ""
                }
            ),
            (None, Some(principal)) => format!(
                "{who} no longer trusts {} principal {}",
                principal.kind, principal.value
            ),
            (None, None) => format!("trust policy of {who} changed"),
        },
        ChangeKind::AttributeChanged { key, from, to } => format!(
            "{key} of {who} changed from {} to {}",
            from.as_deref().unwrap_or("-"),
            to.as_deref().unwrap_or("-")
        ),
        ChangeKind::CredentialAdded { credential }
            if credential.kind == CredentialKind::ImpersonationGrant =>
        {
            let (role, member) = gcp_grant_parts(credential);
            format!("{member} can now impersonate {who} through {role}")
        }
        ChangeKind::CredentialRemoved { credential }
            if credential.kind == CredentialKind::ImpersonationGrant =>
        {
            let (role, member) = gcp_grant_parts(credential);
            format!("{member} can no longer impersonate {who} through {role}")
        }
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
        ChangeKind::OwnerAdded { owner } => {
            format!("{} became an owner of {who}", owner_label(owner))
        }
        ChangeKind::OwnerRemoved { owner } => {
            format!("{} is no longer an owner of {who}", owner_label(owner))
        }
    }
}

/// Names an owner: its kind, name and object id, as far as they are known.
fn owner_label(owner: &crate::model::Owner) -> String {
    let kind = owner
        .kind
        .as_deref()
        .unwrap_or("principal")
        .replace('_', " ");
    match &owner.name {
        Some(name) => format!("{kind} {name} ({})", owner.id),
        None => format!("{kind} {}", owner.id),
    }
}

/// Returns the role and member of a Google Cloud impersonation grant, or
/// its whole id for both when the id is malformed.
fn gcp_grant_parts(credential: &crate::model::Credential) -> (&str, &str) {
    crate::collect::gcp::records::impersonation_parts(credential)
        .unwrap_or((&credential.id, &credential.id))
}

/// Names a credential: the kind, and the id where it has one of its own.
fn credential_label(credential: &crate::model::Credential) -> String {
    match credential.kind {
        CredentialKind::ConsolePassword => credential.kind.label().to_string(),
        _ => format!("{} {}", credential.kind.label(), credential.id),
    }
}

fn grant_source(grant: &crate::model::AdminGrant) -> String {
    match (&grant.group, &grant.group_id) {
        (Some(group), Some(id)) if group != id => {
            format!(
                "group {group} ({} {}, group id {id})",
                grant.via, grant.policy
            )
        }
        (Some(group), _) => format!("group {group} ({} {})", grant.via, grant.policy),
        (None, _) if grant.via == crate::model::gworkspace_attribute::ADMIN_STATUS => {
            format!("Workspace {} status", grant.policy.replace('_', " "))
        }
        (None, _) => format!("{} policy {}", grant.via, grant.policy),
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
    if !identity.owners.is_empty() {
        let owners: Vec<String> = identity.owners.iter().map(owner_label).collect();
        evidence.insert("owners".to_string(), owners.join("; "));
    }
    if let Some(roles) = identity.attributes.get(crate::model::gcp_attribute::ROLES) {
        evidence.insert("roles".to_string(), roles.clone());
    }
    // Instance profiles, identity providers and Identity Center records
    // carry their facts (roles, client ids, target account) as attributes.
    let aws_access_kind = identity.kind.provider() == Provider::Aws
        && !matches!(identity.kind, IdentityKind::AwsUser | IdentityKind::AwsRole);
    if aws_access_kind {
        evidence.extend(identity.attributes.clone());
    }
    // A workload identity provider's trust: whose tokens, on what condition.
    for key in [
        crate::model::gcp_attribute::PROVIDER_TYPE,
        crate::model::gcp_attribute::ISSUER,
        crate::model::gcp_attribute::ATTRIBUTE_CONDITION,
    ] {
        if identity.kind == IdentityKind::GcpWorkloadIdentityProvider
            && let Some(value) = identity.attributes.get(key)
        {
            evidence.insert(key.to_string(), value.clone());
        }
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
            let optional = [
                ("credential_created", &credential.created),
                ("credential_expires", &credential.expires),
                ("credential_name", &credential.display_name),
                ("credential_detail", &credential.detail),
            ];
            for (key, value) in optional {
                if let Some(value) = value {
                    evidence.insert(key.to_string(), value.clone());
                }
            }
        }
        ChangeKind::OwnerAdded { owner } | ChangeKind::OwnerRemoved { owner } => {
            evidence.insert("owner_id".to_string(), owner.id.clone());
            let optional = [
                ("owner_kind", &owner.kind),
                ("owner_name", &owner.name),
                ("owner_user_type", &owner.user_type),
            ];
            for (key, value) in optional {
                if let Some(value) = value {
                    evidence.insert(key.to_string(), value.clone());
                }
            }
        }
        ChangeKind::PrivilegeAdded { grant } | ChangeKind::PrivilegeRemoved { grant } => {
            if let Some(assignment) = grant
                .assignment_id
                .as_ref()
                .filter(|_| grant.via == crate::model::AZURE_RBAC_VIA)
            {
                evidence.insert("role_assignment_id".to_string(), assignment.clone());
            }
            if let Some(group) = &grant.group {
                evidence.insert("group".to_string(), group.clone());
            }
            if let Some(group_id) = &grant.group_id {
                evidence.insert("group_id".to_string(), group_id.clone());
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

#[cfg(test)]
mod tests {
    use super::aws::{
        assess_creation, identity_center_role, response_commands, service_linked_role,
    };
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
            group_id: None,
            reason: "AdministratorAccess".to_string(),
            assignment_id: None,
        });
        assert!(service_linked_role(&admin).is_none());
        assert_eq!(
            assess_creation("123456789012", &admin).severity,
            Severity::Critical
        );
    }

    fn sso_role(name: &str, path: &str, trust: &[(&str, &str)]) -> Identity {
        let mut identity = role(path, trust);
        identity.name = name.to_string();
        identity
    }

    const SSO_PROVIDER: &str =
        "arn:aws:iam::123456789012:saml-provider/AWSSSO_0123456789abcdef_DO_NOT_DELETE";

    #[test]
    fn identity_center_role_needs_own_saml_provider() {
        let name = "AWSReservedSSO_ReadOnly_0123456789abcdef";
        let trust = [("federated", SSO_PROVIDER)];
        for path in [
            "/aws-reserved/sso.amazonaws.com/",
            "/aws-reserved/sso.amazonaws.com/eu-west-1/",
        ] {
            let identity = sso_role(name, path, &trust);
            assert!(
                identity_center_role("123456789012", &identity).is_some(),
                "{path}"
            );
            let verdict = assess_creation("123456789012", &identity);
            assert_eq!(verdict.severity, Severity::Low, "{path}");
            assert!(verdict.expected_reason.is_some(), "{path}");
        }

        let path = "/aws-reserved/sso.amazonaws.com/";
        let other_account =
            "arn:aws:iam::999988887777:saml-provider/AWSSSO_0123456789abcdef_DO_NOT_DELETE";
        let other_provider = "arn:aws:iam::123456789012:saml-provider/Okta";
        let lookalikes = [
            sso_role("AWSReservedSSO_x", path, &[("federated", other_account)]),
            sso_role("AWSReservedSSO_x", path, &[("federated", other_provider)]),
            sso_role(
                "AWSReservedSSO_x",
                path,
                &[
                    ("federated", SSO_PROVIDER),
                    ("aws", "arn:aws:iam::999988887777:root"),
                ],
            ),
            sso_role("AWSReservedSSO_x", path, &[("aws", SSO_PROVIDER)]),
            sso_role("AWSReservedSSO_x", path, &[]),
            sso_role("ReservedSSO_x", path, &trust),
            sso_role("AWSReservedSSO_x", "/", &trust),
            sso_role(
                "AWSReservedSSO_x",
                "/aws-reserved/sso.amazonaws.com/a/b/",
                &trust,
            ),
        ];
        for identity in lookalikes {
            assert!(
                identity_center_role("123456789012", &identity).is_none(),
                "{} {:?} {:?}",
                identity.name,
                identity.path,
                identity.trust
            );
        }

        let mut admin = sso_role(name, path, &trust);
        admin.admin_grants.push(crate::model::AdminGrant {
            via: "attached".to_string(),
            policy: "arn:aws:iam::aws:policy/AdministratorAccess".to_string(),
            group: None,
            group_id: None,
            reason: "AdministratorAccess".to_string(),
            assignment_id: None,
        });
        assert!(identity_center_role("123456789012", &admin).is_none());
        let verdict = assess_creation("123456789012", &admin);
        assert_eq!(verdict.severity, Severity::Critical);
        assert!(verdict.expected_reason.is_none());
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
            expires: None,
            display_name: None,
            detail: None,
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

    #[test]
    fn unlisted_credentials_are_not_judged_absent() {
        let user = Identity::new("AIDA1", IdentityKind::AwsUser, "mallory");
        let judged = |only: Vec<String>| {
            let diff = ScopeDiff {
                provider: Provider::Aws,
                scope: "123456789012".to_string(),
                changes: vec![Change {
                    kind: ChangeKind::IdentityAdded,
                    identity: user.clone(),
                }],
                not_compared: vec![crate::diff::NotCompared {
                    collection: CollectionName::AccessKeys,
                    reason: "new snapshot: no key listing".to_string(),
                    only,
                }],
                privileged_app_ids: Default::default(),
            };
            judge(&diff).remove(0)
        };

        let whole = judged(Vec::new());
        assert_eq!(whole.severity, Severity::High);
        assert!(
            whole
                .severity_reason
                .contains("access_keys not listed in full")
        );
        assert_eq!(judged(vec!["AIDA1".to_string()]).severity, Severity::High);
        // A listing that missed only another user does not affect this one.
        assert_eq!(judged(vec!["AIDA2".to_string()]).severity, Severity::Medium);
    }
}
