//! AWS access paths beyond IAM users and roles: principals added to a
//! role's trust policy, instance profiles, OIDC and SAML identity
//! providers, and IAM Identity Center users and permission-set assignments.
//!
//! Techniques: a new trust principal, an admin role in an instance profile
//! and a permission-set assignment all give someone a role they did not
//! have, which is T1098.003 (Additional Cloud Roles). A new identity
//! provider creates no account: it makes the account trust a new token
//! issuer, which is T1484.002 (Domain or Tenant Policy Modification: Trust
//! Modification). An Identity Center user is a new cloud account, T1136.003.

use std::collections::BTreeMap;

use super::aws::{is_identity_center_provider, is_outside};
use super::{
    ACCOUNT_ACCESS_REMOVAL, ADDITIONAL_CLOUD_ROLES, Severity, TRUST_MODIFICATION, Technique,
    Verdict, shell_quote,
};
use crate::collect::aws::policy::principal_account;
use crate::diff::{Change, ChangeKind};
use crate::model::{Identity, IdentityKind, TrustPrincipal, aws_attribute};

/// Judges changes to the record kinds this module covers, or returns `None`.
pub(super) fn assess(scope: &str, change: &Change) -> Option<Verdict> {
    match change.identity.kind {
        IdentityKind::AwsInstanceProfile => assess_instance_profile(change),
        IdentityKind::AwsOidcProvider | IdentityKind::AwsSamlProvider => {
            assess_provider(scope, change)
        }
        IdentityKind::AwsIdentityCenterUser => assess_identity_center_user(change),
        IdentityKind::AwsPermissionSetAssignment => assess_assignment(change),
        _ => None,
    }
}

/// Severity of one principal added to a trust policy, by how foreign it is:
/// anyone or another account above a federated issuer, above this account,
/// above an AWS service. An admin role raises each of them.
pub(super) fn assess_trust_principal(
    scope: &str,
    identity: &Identity,
    principal: &TrustPrincipal,
) -> Verdict {
    let admin = identity.is_admin();
    let condition = if principal.conditional {
        " (with a condition)"
    } else {
        " (without a condition)"
    };
    let value = &principal.value;
    let open = principal.kind == "not_principal" || (principal.kind == "aws" && value == "*");
    if open {
        let severity = if principal.conditional {
            Severity::High
        } else {
            Severity::Critical
        };
        return Verdict::new(
            severity,
            format!("the role now trusts any AWS principal ({value}){condition}"),
        );
    }
    if is_outside(scope, principal) || principal.kind == "canonical_user" {
        let account = principal_account(value).unwrap_or(value);
        let severity = if admin {
            Severity::Critical
        } else {
            Severity::High
        };
        return Verdict::new(
            severity,
            format!(
                "the role{} now trusts account {account} outside this one{condition}",
                admin_note(admin)
            ),
        );
    }
    match principal.kind.as_str() {
        "federated" if is_identity_center_provider(scope, value) => Verdict::new(
            Severity::Medium,
            format!("the role now trusts this account's IAM Identity Center provider{condition}"),
        ),
        "federated" => {
            let severity = if admin && !principal.conditional {
                Severity::Critical
            } else {
                Severity::High
            };
            Verdict::new(
                severity,
                format!(
                    "the role{} now trusts users of identity provider {}{condition}",
                    admin_note(admin),
                    federated_issuer(value)
                ),
            )
        }
        "service" => Verdict::new(
            if admin {
                Severity::Medium
            } else {
                Severity::Low
            },
            format!(
                "the role{} now trusts the AWS service {value}",
                admin_note(admin)
            ),
        ),
        _ => Verdict::new(
            if admin {
                Severity::High
            } else {
                Severity::Medium
            },
            format!(
                "the role{} now trusts {value} of this account{condition}",
                admin_note(admin)
            ),
        ),
    }
}

fn admin_note(admin: bool) -> &'static str {
    if admin {
        ", which has admin rights,"
    } else {
        ""
    }
}

/// Returns who issues the tokens of a federated principal: the provider's
/// URL or name from its ARN, or the issuer as written (`accounts.google.com`).
fn federated_issuer(value: &str) -> &str {
    value
        .split_once(":oidc-provider/")
        .or_else(|| value.split_once(":saml-provider/"))
        .map_or(value, |(_, issuer)| issuer)
}

fn assess_instance_profile(change: &Change) -> Option<Verdict> {
    let identity = &change.identity;
    let roles = identity
        .attributes
        .get(aws_attribute::ROLES)
        .map_or("", String::as_str);
    let verdict = match &change.kind {
        ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. } if identity.is_admin() => {
            Verdict::new(
                Severity::Critical,
                format!("new instance profile holding an admin role ({roles})"),
            )
        }
        ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. } => Verdict::new(
            Severity::Low,
            format!("new instance profile for role {roles}, which has no admin rights"),
        ),
        ChangeKind::PrivilegeAdded { grant } => Verdict::new(
            Severity::Critical,
            format!(
                "an admin role ({}) is now in the instance profile",
                role_name(&grant.policy)
            ),
        ),
        ChangeKind::AttributeChanged { key, to, .. } if key == aws_attribute::ROLES => {
            Verdict::new(
                Severity::Low,
                format!(
                    "the instance profile now holds role {}",
                    to.as_deref().unwrap_or("-")
                ),
            )
        }
        _ => return None,
    };
    Some(verdict)
}

/// Returns a role's name from its ARN (the last path segment).
fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn assess_provider(scope: &str, change: &Change) -> Option<Verdict> {
    let identity = &change.identity;
    let verdict = match &change.kind {
        ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. } => {
            if let Some(reason) = platform_provider(scope, identity) {
                let mut verdict = Verdict::new(Severity::Low, reason.0);
                verdict.expected_reason = Some(reason.1);
                verdict
            } else {
                Verdict::new(
                    Severity::High,
                    format!(
                        "new {} {}: roles that trust it can be assumed with its tokens",
                        identity.kind.label(),
                        identity.name
                    ),
                )
            }
        }
        ChangeKind::AttributeChanged { key, .. } if key == aws_attribute::CLIENT_IDS => {
            Verdict::new(
                Severity::Medium,
                "the OIDC provider accepts other audiences (client ids)",
            )
        }
        ChangeKind::AttributeChanged { key, .. } if key == aws_attribute::THUMBPRINTS => {
            Verdict::new(
                Severity::Medium,
                "the OIDC provider trusts other server certificates (thumbprints)",
            )
        }
        ChangeKind::AttributeChanged { key, .. } if key == aws_attribute::VALID_UNTIL => {
            Verdict::new(
                Severity::Medium,
                "the SAML provider's metadata, and with it the trusted signing certificate, was replaced",
            )
        }
        _ => return None,
    };
    Some(verdict)
}

/// Returns (severity reason, expected reason) for providers that AWS
/// services create: Identity Center's `AWSSSO_<id>_DO_NOT_DELETE` SAML
/// provider in this account, and EKS clusters' OIDC issuers.
// NOTE: anyone who can create providers can pick these names, so the rule
// only separates the platform's own providers from other issuers.
fn platform_provider(scope: &str, identity: &Identity) -> Option<(String, String)> {
    match identity.kind {
        IdentityKind::AwsSamlProvider if is_identity_center_provider(scope, &identity.id) => {
            Some((
                "IAM Identity Center creates this SAML provider when it is enabled".to_string(),
                "IAM Identity Center SAML provider".to_string(),
            ))
        }
        IdentityKind::AwsOidcProvider if is_eks_issuer(&identity.name) => Some((
            "EKS cluster OIDC issuer, added for IAM roles for service accounts".to_string(),
            "EKS cluster OIDC provider".to_string(),
        )),
        _ => None,
    }
}

/// Returns true for `oidc.eks.<region>.amazonaws.com/id/<hex id>`.
fn is_eks_issuer(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("oidc.eks.") else {
        return false;
    };
    let Some((region, id)) = rest.split_once(".amazonaws.com/id/") else {
        return false;
    };
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    region_ok && !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn assess_identity_center_user(change: &Change) -> Option<Verdict> {
    let verdict = match &change.kind {
        ChangeKind::IdentityAdded => Verdict::new(
            Severity::Medium,
            "new IAM Identity Center user; its access comes from permission-set assignments",
        ),
        ChangeKind::IdentityRecreated { .. } => Verdict::new(
            Severity::Medium,
            "an IAM Identity Center user name was re-created with a new id",
        )
        .for_recreation(),
        _ => return None,
    };
    Some(verdict)
}

fn assess_assignment(change: &Change) -> Option<Verdict> {
    let identity = &change.identity;
    let set = identity
        .attributes
        .get(aws_attribute::PERMISSION_SET_NAME)
        .map_or(identity.arn.as_deref().unwrap_or("-"), String::as_str);
    let account = identity
        .attributes
        .get(aws_attribute::TARGET_ACCOUNT)
        .map_or("-", String::as_str);
    let verdict = match &change.kind {
        ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. } if identity.is_admin() => {
            Verdict::new(
                Severity::Critical,
                format!("new assignment of admin permission set {set} in account {account}"),
            )
        }
        ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. } => Verdict::new(
            Severity::Medium,
            format!(
                "new assignment of permission set {set} in account {account}, without admin rights \
                 that idrift can see"
            ),
        ),
        ChangeKind::PrivilegeAdded { .. } => Verdict::new(
            Severity::Critical,
            format!("permission set {set}, assigned in account {account}, now grants admin rights"),
        ),
        _ => return None,
    };
    Some(verdict)
}

/// Returns the technique for the changes this module judges.
pub(super) fn technique(change: &Change) -> Option<Technique> {
    let kind = change.identity.kind;
    let created = matches!(
        change.kind,
        ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. }
    );
    match (&change.kind, kind) {
        (ChangeKind::TrustChanged { added, .. }, _) if added.is_empty() => {
            Some(ACCOUNT_ACCESS_REMOVAL)
        }
        (ChangeKind::TrustChanged { .. }, _) => Some(ADDITIONAL_CLOUD_ROLES),
        (_, IdentityKind::AwsOidcProvider | IdentityKind::AwsSamlProvider)
            if created || matches!(change.kind, ChangeKind::AttributeChanged { .. }) =>
        {
            Some(TRUST_MODIFICATION)
        }
        (_, IdentityKind::AwsInstanceProfile | IdentityKind::AwsPermissionSetAssignment)
            if created =>
        {
            Some(ADDITIONAL_CLOUD_ROLES)
        }
        _ => None,
    }
}

/// Returns evidence about the one principal a trust change concerns.
pub(super) fn trust_evidence(scope: &str, principal: &TrustPrincipal) -> BTreeMap<String, String> {
    let mut evidence = BTreeMap::new();
    evidence.insert("principal_kind".to_string(), principal.kind.clone());
    evidence.insert("principal".to_string(), principal.value.clone());
    evidence.insert(
        "principal_conditional".to_string(),
        principal.conditional.to_string(),
    );
    match principal.kind.as_str() {
        "aws" => {
            let account = match principal_account(&principal.value) {
                Some(account) if account == scope => format!("{account} (this account)"),
                Some(account) => format!("{account} (outside this account)"),
                None => principal.value.clone(),
            };
            evidence.insert("principal_account".to_string(), account);
        }
        "federated" => {
            evidence.insert(
                "principal_issuer".to_string(),
                federated_issuer(&principal.value).to_string(),
            );
        }
        _ => {}
    }
    evidence
}

/// Returns the `aws` CLI commands for the kinds this module judges, or
/// `None` for the rest.
pub(super) fn response_commands(change: &Change) -> Option<Vec<String>> {
    let identity = &change.identity;
    let created = matches!(
        change.kind,
        ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. }
    );
    let gained_admin = matches!(change.kind, ChangeKind::PrivilegeAdded { .. });
    let arn = shell_quote(identity.arn.as_deref().unwrap_or(&identity.id));
    let commands = match identity.kind {
        IdentityKind::AwsOidcProvider if created => vec![
            format!("aws iam get-open-id-connect-provider --open-id-connect-provider-arn {arn}"),
            format!("aws iam delete-open-id-connect-provider --open-id-connect-provider-arn {arn}"),
        ],
        IdentityKind::AwsSamlProvider if created => vec![
            format!("aws iam get-saml-provider --saml-provider-arn {arn}"),
            format!("aws iam delete-saml-provider --saml-provider-arn {arn}"),
        ],
        IdentityKind::AwsInstanceProfile if created || gained_admin => {
            instance_profile_commands(identity)
        }
        IdentityKind::AwsIdentityCenterUser if created => identity_center_user_commands(identity),
        IdentityKind::AwsPermissionSetAssignment if created || gained_admin => {
            vec![delete_assignment(identity)]
        }
        _ => return None,
    };
    Some(commands)
}

fn instance_profile_commands(identity: &Identity) -> Vec<String> {
    let profile = shell_quote(&identity.name);
    let mut commands = vec![format!(
        "aws iam get-instance-profile --instance-profile-name={profile}"
    )];
    for grant in &identity.admin_grants {
        commands.push(format!(
            "aws iam remove-role-from-instance-profile --instance-profile-name={profile} --role-name={}",
            shell_quote(role_name(&grant.policy))
        ));
    }
    commands
}

fn identity_center_user_commands(identity: &Identity) -> Vec<String> {
    let store = identity
        .attributes
        .get(aws_attribute::IDENTITY_STORE_ID)
        .map_or("<identity-store-id>", String::as_str);
    let store = shell_quote(store);
    let user = shell_quote(&identity.id);
    vec![
        format!("aws identitystore describe-user --identity-store-id {store} --user-id {user}"),
        format!("aws identitystore delete-user --identity-store-id {store} --user-id {user}"),
    ]
}

fn delete_assignment(identity: &Identity) -> String {
    let attribute = |key: &str| {
        shell_quote(
            identity
                .attributes
                .get(key)
                .map_or("<unknown>", String::as_str),
        )
    };
    format!(
        "aws sso-admin delete-account-assignment --instance-arn {} --target-id {} \
         --target-type AWS_ACCOUNT --permission-set-arn {} --principal-type {} --principal-id {}",
        attribute(aws_attribute::INSTANCE_ARN),
        attribute(aws_attribute::TARGET_ACCOUNT),
        shell_quote(identity.arn.as_deref().unwrap_or("<unknown>")),
        attribute(aws_attribute::PRINCIPAL_TYPE),
        attribute(aws_attribute::PRINCIPAL_ID),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPE: &str = "123456789012";

    fn principal(kind: &str, value: &str, conditional: bool) -> TrustPrincipal {
        TrustPrincipal {
            kind: kind.to_string(),
            value: value.to_string(),
            conditional,
        }
    }

    fn role(admin: bool) -> Identity {
        let mut identity = Identity::new("AROA1", IdentityKind::AwsRole, "deploy");
        if admin {
            identity.admin_grants.push(crate::model::AdminGrant {
                via: "attached".to_string(),
                policy: "arn:aws:iam::aws:policy/AdministratorAccess".to_string(),
                group: None,
                group_id: None,
                reason: "AdministratorAccess".to_string(),
                assignment_id: None,
            });
        }
        identity
    }

    #[test]
    fn trust_principal_severity_follows_foreignness() {
        let cases = [
            (principal("aws", "*", false), false, Severity::Critical),
            (principal("aws", "*", true), false, Severity::High),
            (
                principal("not_principal", "arn:aws:iam::123456789012:root", false),
                false,
                Severity::Critical,
            ),
            (
                principal("aws", "arn:aws:iam::999988887777:root", false),
                false,
                Severity::High,
            ),
            (
                principal("aws", "999988887777", true),
                true,
                Severity::Critical,
            ),
            (
                principal(
                    "federated",
                    "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com",
                    true,
                ),
                false,
                Severity::High,
            ),
            (
                principal("federated", "accounts.google.com", false),
                true,
                Severity::Critical,
            ),
            (
                principal(
                    "federated",
                    "arn:aws:iam::123456789012:saml-provider/AWSSSO_0123456789abcdef_DO_NOT_DELETE",
                    false,
                ),
                false,
                Severity::Medium,
            ),
            (
                principal("aws", "arn:aws:iam::123456789012:user/ci", false),
                false,
                Severity::Medium,
            ),
            (
                principal("aws", "arn:aws:iam::123456789012:user/ci", false),
                true,
                Severity::High,
            ),
            (
                principal("service", "lambda.amazonaws.com", false),
                false,
                Severity::Low,
            ),
            (
                principal("service", "lambda.amazonaws.com", false),
                true,
                Severity::Medium,
            ),
        ];
        for (added, admin, expected) in cases {
            let verdict = assess_trust_principal(SCOPE, &role(admin), &added);
            assert_eq!(
                verdict.severity, expected,
                "{added:?} admin={admin}: {}",
                verdict.reason
            );
        }
    }

    #[test]
    fn eks_issuers_are_recognized() {
        assert!(is_eks_issuer(
            "oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"
        ));
        assert!(!is_eks_issuer("oidc.eks.eu-west-1.amazonaws.com/id/"));
        assert!(!is_eks_issuer("oidc.eks.evil.example.com/id/ABC"));
        assert!(!is_eks_issuer("token.actions.githubusercontent.com"));
    }

    #[test]
    fn federated_issuer_strips_provider_arn() {
        assert_eq!(
            federated_issuer(
                "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
            ),
            "token.actions.githubusercontent.com"
        );
        assert_eq!(
            federated_issuer("cognito-identity.amazonaws.com"),
            "cognito-identity.amazonaws.com"
        );
    }
}
