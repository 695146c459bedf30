//! AWS knowledge for the judge: severities of IAM changes, service-linked
//! roles, IAM Identity Center roles, trust from outside the account, and
//! `aws iam` response commands.

use super::{Severity, Verdict, shell_quote};
use crate::collect::aws::policy::principal_account;
use crate::diff::{Change, ChangeKind};
use crate::model::{CredentialKind, Identity, IdentityKind};

pub(super) fn assess(scope: &str, change: &Change) -> Verdict {
    if let Some(verdict) = super::aws_access::assess(scope, change) {
        return verdict;
    }
    let identity = &change.identity;
    match &change.kind {
        ChangeKind::IdentityAdded => assess_creation(scope, identity),
        ChangeKind::IdentityRecreated { .. } => assess_creation(scope, identity).for_recreation(),
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
        ChangeKind::TrustChanged { added, removed } => match added.first() {
            Some(principal) => {
                super::aws_access::assess_trust_principal(scope, identity, principal)
            }
            None => Verdict::new(
                Severity::Info,
                format!(
                    "the role no longer trusts {}",
                    removed
                        .iter()
                        .map(|principal| principal.value.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        },
        ChangeKind::EnabledChanged { .. } => {
            Verdict::new(Severity::Low, "the identity was enabled or disabled")
        }
        ChangeKind::CredentialStatusChanged { .. }
        | ChangeKind::IdentityRemoved
        | ChangeKind::Renamed { .. }
        | ChangeKind::PathChanged { .. }
        | ChangeKind::AttributeChanged { .. }
        | ChangeKind::CredentialRemoved { .. }
        | ChangeKind::PrivilegeRemoved { .. }
        // IAM records carry no owners; only Entra objects do.
        | ChangeKind::OwnerAdded { .. }
        | ChangeKind::OwnerRemoved { .. } => {
            Verdict::new(Severity::Info, "removes access or renames; no new way in")
        }
    }
}

/// Severity of a new identity, from what it can do and who can use it.
pub(super) fn assess_creation(scope: &str, identity: &Identity) -> Verdict {
    if let Some(reason) = service_linked_role(identity) {
        let mut verdict = Verdict::new(
            Severity::Low,
            "AWS creates service-linked roles when a service is enabled",
        );
        verdict.expected_reason = Some(reason);
        return verdict;
    }
    if let Some(reason) = identity_center_role(scope, identity) {
        let mut verdict = Verdict::new(
            Severity::Low,
            "IAM Identity Center creates AWSReservedSSO_ roles when it provisions a permission set",
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

/// Returns why a role is a service-linked role, if it is one: a path under
/// `/aws-service-role/` (AWS uses `/aws-service-role/<service>/`), a trust
/// policy of AWS service principals only, the service the path names among
/// them, and no admin grant. Mixed trust never qualifies, and a role with
/// admin rights is judged on those, whatever its path.
pub(super) fn service_linked_role(identity: &Identity) -> Option<String> {
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

/// Returns why a role is an IAM Identity Center role, if it is one. Such a
/// role has a name starting `AWSReservedSSO_` and the path
/// `/aws-reserved/sso.amazonaws.com/`, with a region folder after it when
/// Identity Center runs outside us-east-1. Its trust policy names only the
/// account's own Identity Center SAML provider
/// (`saml-provider/AWSSSO_<id>_DO_NOT_DELETE`), and it has no admin grant:
/// a permission set with admin rights is judged on those.
// NOTE: an intruder who can create both a SAML provider and a role can
// build a role that passes these checks; they tell Identity Center's roles
// from lookalikes that trust a user, service or other account, no more.
pub(super) fn identity_center_role(scope: &str, identity: &Identity) -> Option<String> {
    let is_role = identity.kind == IdentityKind::AwsRole;
    let reserved_name = identity.name.starts_with("AWSReservedSSO_");
    let reserved_path = identity
        .path
        .as_deref()
        .and_then(|path| path.strip_prefix("/aws-reserved/sso.amazonaws.com/"))
        .is_some_and(|rest| rest.is_empty() || is_region_folder(rest));
    let own_provider_only = !identity.trust.is_empty()
        && identity.trust.iter().all(|principal| {
            principal.kind == "federated" && is_identity_center_provider(scope, &principal.value)
        });
    let qualifies =
        is_role && reserved_name && reserved_path && own_provider_only && !identity.is_admin();
    qualifies.then(|| "IAM Identity Center role for a permission set".to_string())
}

/// Returns true for a path rest such as `eu-west-1/`.
fn is_region_folder(rest: &str) -> bool {
    rest.strip_suffix('/').is_some_and(|region| {
        !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

/// Returns true for `arn:<partition>:iam::<scope>:saml-provider/AWSSSO_<id>_DO_NOT_DELETE`.
pub(super) fn is_identity_center_provider(scope: &str, arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    let [arn_prefix, partition, service, region, account, resource] = parts.as_slice() else {
        return false;
    };
    let provider_name = resource.strip_prefix("saml-provider/");
    *arn_prefix == "arn"
        && partition.starts_with("aws")
        && *service == "iam"
        && region.is_empty()
        && *account == scope
        && provider_name.is_some_and(|name| {
            name.starts_with("AWSSSO_") && name.ends_with("_DO_NOT_DELETE") && !name.contains('/')
        })
}

/// Returns true for a trust principal outside the scope's account: another
/// account, `*`, or a `NotPrincipal` (everyone but the named principals).
pub(super) fn is_outside(scope: &str, principal: &crate::model::TrustPrincipal) -> bool {
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

/// Returns the `aws` CLI commands that contain a change, with real names and ids.
pub(super) fn response_commands(change: &Change) -> Vec<String> {
    if let Some(commands) = super::aws_access::response_commands(change) {
        return commands;
    }
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
        // Entra and Google Cloud credentials never sit on an IAM user.
        CredentialKind::ClientSecret
        | CredentialKind::Certificate
        | CredentialKind::FederatedCredential
        | CredentialKind::ServiceAccountKey
        | CredentialKind::ImpersonationGrant => Vec::new(),
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
