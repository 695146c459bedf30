//! Google Cloud knowledge for the judge: which roles count as admin or let
//! a member impersonate a service account, which creations are the
//! platform's own (default service accounts, service agents), severities,
//! and `gcloud` response commands.
//!
//! Built-in knowledge lowers the severity of a creation, and of a service
//! agent's token creator or service account user grant, only. A
//! user-managed key on any service account, or an owner, editor or admin
//! grant, is never expected.

use super::{ADDITIONAL_CLOUD_CREDENTIALS, Severity, Technique, Verdict, shell_quote};
use crate::collect::gcp::records::{impersonation_parts, parse_member, provider_parts};
use crate::diff::{Change, ChangeKind};
use crate::model::gcp_attribute as attribute;
use crate::model::{AdminGrant, Credential, CredentialKind, Identity, IdentityKind};

/// ATT&CK's technique for a principal given the right to act as a more
/// privileged cloud identity, such as a service account's token creator.
pub(super) const TEMPORARY_ELEVATED_CLOUD_ACCESS: Technique = Technique {
    id: "T1548.005",
    name: "Abuse Elevation Control Mechanism: Temporary Elevated Cloud Access",
    url: "https://attack.mitre.org/techniques/T1548/005/",
};

/// Roles that, granted on a service account itself, let the member act as
/// it. Token creators and workload identity users mint its tokens and sign
/// as it. Service account users, editors and owners attach it to
/// resources. Key admins create keys for it, and service account admins
/// and owners can grant themselves any of these.
// NOTE: custom roles are not evaluated; a custom role with
// `iam.serviceAccounts.getAccessToken` or `actAs` is not recorded.
const IMPERSONATION_ROLES: [&str; 8] = [
    "roles/iam.serviceAccountTokenCreator",
    "roles/iam.serviceAccountOpenIdTokenCreator",
    "roles/iam.serviceAccountUser",
    "roles/iam.serviceAccountKeyAdmin",
    "roles/iam.workloadIdentityUser",
    "roles/iam.serviceAccountAdmin",
    "roles/owner",
    "roles/editor",
];

/// Roles that Google's setup guides give a service agent on a customer's
/// service account, so that the service can run jobs as that account.
const AGENT_IMPERSONATION_ROLES: [&str; 3] = [
    "roles/iam.serviceAccountTokenCreator",
    "roles/iam.serviceAccountOpenIdTokenCreator",
    "roles/iam.serviceAccountUser",
];

/// Returns true when a role granted on a service account lets the member
/// act as that account.
pub fn is_impersonation_role(role: &str) -> bool {
    IMPERSONATION_ROLES.contains(&role)
}

/// Returns true when a role gives control of the project or of a service:
/// `roles/owner`, `roles/editor`, or a predefined role whose name ends in
/// `admin` or `Admin` (`roles/storage.admin`, `roles/iam.securityAdmin`,
/// `roles/compute.instanceAdmin.v1`).
// NOTE: custom roles (`projects/.../roles/...`) are not evaluated, because
// their permissions are not collected; they never count as admin here.
pub fn is_admin_role(role: &str) -> bool {
    let Some(name) = role.strip_prefix("roles/") else {
        return false;
    };
    if name == "owner" || name == "editor" {
        return true;
    }
    let mut parts: Vec<&str> = name.split('.').collect();
    // Versioned roles end in `.v1`, `.v2`, ...
    if parts.len() > 2
        && parts.last().is_some_and(|last| {
            last.strip_prefix('v').is_some_and(|digits| {
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
            })
        })
    {
        parts.pop();
    }
    parts
        .last()
        .is_some_and(|last| last.to_ascii_lowercase().ends_with("admin"))
}

/// Judges one change of a Google Cloud project.
pub(super) fn assess(project: &str, change: &Change) -> Verdict {
    let identity = &change.identity;
    if identity.kind == IdentityKind::GcpWorkloadIdentityProvider {
        return assess_provider(change);
    }
    match &change.kind {
        ChangeKind::CredentialAdded { credential }
            if credential.kind == CredentialKind::ImpersonationGrant =>
        {
            assess_impersonation(project, identity, credential)
        }
        ChangeKind::IdentityAdded => assess_creation(project, identity),
        ChangeKind::IdentityRecreated { .. } => assess_creation(project, identity).for_recreation(),
        ChangeKind::CredentialAdded { .. } if identity.is_admin() => Verdict::new(
            Severity::Critical,
            "new key on a service account with an owner, editor or admin role",
        ),
        ChangeKind::CredentialAdded { .. } => Verdict::new(
            Severity::High,
            "new user-managed key on an existing service account",
        ),
        ChangeKind::CredentialStatusChanged { credential, .. }
            if credential.status.as_deref() == Some("Enabled") =>
        {
            Verdict::new(Severity::Medium, "a disabled key was enabled again")
        }
        ChangeKind::PrivilegeAdded { .. } if is_public(identity) => Verdict::new(
            Severity::Critical,
            "owner, editor or admin role granted to everyone (allUsers or allAuthenticatedUsers)",
        ),
        ChangeKind::PrivilegeAdded { .. } => Verdict::new(
            Severity::Critical,
            "new owner, editor or admin grant in the project's IAM policy",
        ),
        ChangeKind::EnabledChanged { from } if *from == Some(false) => Verdict::new(
            Severity::Low,
            "a disabled service account was enabled again",
        ),
        ChangeKind::AttributeChanged { key, from, to } if key == attribute::ROLES => {
            if let Some(role) = gained_project_impersonation(from.as_deref(), to.as_deref()) {
                Verdict::new(
                    Severity::High,
                    format!("can now impersonate every service account of the project ({role})"),
                )
            } else if gained_roles(from.as_deref(), to.as_deref()) {
                Verdict::new(
                    Severity::Low,
                    "a policy member gained a role that is not admin",
                )
            } else {
                Verdict::new(Severity::Info, "a policy member lost a role")
            }
        }
        _ => Verdict::new(
            Severity::Info,
            "removes access, renames or disables; no new way in",
        ),
    }
}

/// Returns a project-level role in the `to` role list, and not in the
/// `from` list, that lets a member impersonate every service account of
/// the project. Owner and editor are left out, because they count as admin
/// grants and are judged as such.
fn gained_project_impersonation<'a>(from: Option<&str>, to: Option<&'a str>) -> Option<&'a str> {
    let before: Vec<&str> = from.unwrap_or_default().split(", ").collect();
    to.unwrap_or_default()
        .split(", ")
        .filter(|label| !before.contains(label))
        // A conditional role is written `role [condition title]`.
        .map(|label| label.split(" [").next().unwrap_or(label))
        .find(|role| is_impersonation_role(role) && !is_admin_role(role))
}

/// Returns true when the `to` role list names a role the `from` list lacks.
fn gained_roles(from: Option<&str>, to: Option<&str>) -> bool {
    let split = |list: Option<&str>| -> Vec<String> {
        list.unwrap_or_default()
            .split(", ")
            .filter(|role| !role.is_empty())
            .map(str::to_string)
            .collect()
    };
    let before = split(from);
    split(to).iter().any(|role| !before.contains(role))
}

fn is_public(identity: &Identity) -> bool {
    matches!(
        identity
            .attributes
            .get(attribute::MEMBER_TYPE)
            .map(String::as_str),
        Some("allUsers" | "allAuthenticatedUsers")
    )
}

/// Severity of a new identity; the platform's own identities are expected.
pub(super) fn assess_creation(project: &str, identity: &Identity) -> Verdict {
    if identity.is_admin() {
        let reason = if is_public(identity) {
            "owner, editor or admin role granted to everyone (allUsers or allAuthenticatedUsers)"
        } else {
            "new identity with an owner, editor or admin role"
        };
        return Verdict::new(Severity::Critical, reason);
    }
    let has_key = identity
        .credentials
        .iter()
        .any(|credential| credential.kind == CredentialKind::ServiceAccountKey);
    // The unexpected grant of maximum severity to impersonate the new account.
    let impersonation = identity
        .credentials
        .iter()
        .filter(|credential| credential.kind == CredentialKind::ImpersonationGrant)
        .map(|credential| assess_impersonation(project, identity, credential))
        .filter(|verdict| verdict.expected_reason.is_none())
        .max_by_key(|verdict| verdict.severity);
    if let Some(reason) =
        platform_identity(project, identity).filter(|_| !has_key && impersonation.is_none())
    {
        let mut verdict = Verdict::new(Severity::Low, "created by the platform, not by a person");
        verdict.expected_reason = Some(reason);
        return verdict;
    }
    if let Some(verdict) = impersonation.filter(|verdict| verdict.severity > Severity::Medium) {
        return Verdict::new(
            verdict.severity,
            format!(
                "new service account that others can impersonate: {}",
                verdict.reason
            ),
        );
    }
    match identity.kind {
        _ if has_key => Verdict::new(
            Severity::High,
            "new service account with a user-managed key",
        ),
        IdentityKind::GcpPrincipal if is_public(identity) => Verdict::new(
            Severity::High,
            "a role granted to everyone (allUsers or allAuthenticatedUsers)",
        ),
        IdentityKind::GcpPrincipal => match gained_project_impersonation(
            None,
            identity
                .attributes
                .get(attribute::ROLES)
                .map(String::as_str),
        ) {
            Some(role) => Verdict::new(
                Severity::High,
                format!(
                    "new member of the project's IAM policy that can impersonate every service \
                     account of the project ({role})"
                ),
            ),
            None => Verdict::new(
                Severity::Medium,
                "new member of the project's IAM policy, without an admin role",
            ),
        },
        _ => Verdict::new(
            Severity::Medium,
            "new service account without keys or admin roles",
        ),
    }
}

/// Returns the email of a service account record or `serviceAccount:` member.
fn service_account_email(identity: &Identity) -> Option<&str> {
    match identity.kind {
        IdentityKind::GcpServiceAccount => Some(identity.name.as_str()),
        IdentityKind::GcpPrincipal => identity.id.strip_prefix("serviceAccount:"),
        _ => None,
    }
}

/// Returns why an identity is the platform's own, if it is: the default
/// Compute Engine or App Engine service account, or a Google-managed
/// service agent.
fn platform_identity(project: &str, identity: &Identity) -> Option<String> {
    let email = service_account_email(identity)?;
    let (local, domain) = email.split_once('@')?;
    let all_digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if domain == "developer.gserviceaccount.com"
        && local.strip_suffix("-compute").is_some_and(all_digits)
    {
        return Some("the project's default Compute Engine service account".to_string());
    }
    if domain == "appspot.gserviceaccount.com" && local == project {
        return Some("the project's default App Engine service account".to_string());
    }
    let is_agent =
        is_agent_domain(domain) && local.strip_prefix("service-").is_some_and(all_digits);
    if identity.kind == IdentityKind::GcpPrincipal
        && (is_agent || (domain == "cloudservices.gserviceaccount.com" && all_digits(local)))
    {
        return Some(format!("Google-managed service agent {email}"));
    }
    None
}

/// Google projects whose service accounts are the service agents of
/// services older than the `gcp-sa-` naming.
const LEGACY_AGENT_PROJECTS: [&str; 12] = [
    "compute-system",
    "container-engine-robot",
    "containerregistry",
    "gs-project-accounts",
    "gcf-admin-robot",
    "serverless-robot-prod",
    "dataflow-service-producer-prod",
    "cloud-filer",
    "cloud-ml.google.com",
    "cloudcomposer-accounts",
    "dataproc-accounts",
    "container-analysis",
];

/// Returns true for the domain of a service agent's email. A service
/// account's domain is the id of the project that contains it, and project
/// ids are unique across Google Cloud, so `service-<digits>@<customer
/// project>.iam.gserviceaccount.com` is a lookalike, not an agent.
// NOTE: the `gcp-sa-` prefix is taken to be Google's; idrift does not know
// whether a customer can create a project with such an id. Agents of
// another project (`service-<other number>@...`) also pass, because
// snapshots do not record the project number to compare with.
fn is_agent_domain(domain: &str) -> bool {
    let Some(project) = domain.strip_suffix(".iam.gserviceaccount.com") else {
        return false;
    };
    project.starts_with("gcp-sa-") || LEGACY_AGENT_PROJECTS.contains(&project)
}

/// Returns the `gcloud` commands that contain a change, with real ids.
pub(super) fn response_commands(project: &str, change: &Change) -> Vec<String> {
    let identity = &change.identity;
    let project = shell_quote(project);
    match &change.kind {
        ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. } => {
            if identity.kind == IdentityKind::GcpWorkloadIdentityProvider {
                return disable_provider(&project, identity).into_iter().collect();
            }
            let mut commands: Vec<String> = identity
                .credentials
                .iter()
                .filter_map(|credential| disable_key(&project, identity, credential))
                .collect();
            commands.extend(
                identity
                    .admin_grants
                    .iter()
                    .map(|grant| remove_binding(&project, identity, grant)),
            );
            if identity.kind == IdentityKind::GcpServiceAccount {
                commands.push(format!(
                    "gcloud iam service-accounts disable {} --project={project}",
                    shell_quote(&identity.name)
                ));
            } else {
                commands.extend(remove_other_roles(&project, identity));
            }
            commands
        }
        ChangeKind::CredentialAdded { credential }
            if credential.kind == CredentialKind::ImpersonationGrant =>
        {
            remove_impersonation(&project, identity, credential)
                .into_iter()
                .collect()
        }
        ChangeKind::CredentialAdded { credential }
        | ChangeKind::CredentialStatusChanged { credential, .. } => {
            disable_key(&project, identity, credential)
                .into_iter()
                .collect()
        }
        ChangeKind::PrivilegeAdded { grant } => vec![remove_binding(&project, identity, grant)],
        ChangeKind::AttributeChanged { .. } | ChangeKind::EnabledChanged { .. }
            if identity.kind == IdentityKind::GcpWorkloadIdentityProvider
                && assess_provider(change).severity > Severity::Info =>
        {
            disable_provider(&project, identity).into_iter().collect()
        }
        _ => Vec::new(),
    }
}

fn disable_key(project: &str, identity: &Identity, credential: &Credential) -> Option<String> {
    if credential.kind != CredentialKind::ServiceAccountKey {
        return None;
    }
    let email = service_account_email(identity)?;
    Some(format!(
        "gcloud iam service-accounts keys disable {} --iam-account={} --project={project}",
        shell_quote(&credential.id),
        shell_quote(email)
    ))
}

/// Removes the bindings of a policy member's roles that are not admin
/// grants, which [`remove_binding`] already covers.
fn remove_other_roles(project: &str, identity: &Identity) -> Vec<String> {
    let roles = identity
        .attributes
        .get(attribute::ROLES)
        .map(String::as_str)
        .unwrap_or_default();
    let mut seen = Vec::new();
    for label in roles.split(", ").filter(|label| !label.is_empty()) {
        // A conditional role is written `role [condition title]`.
        let role = label.split(" [").next().unwrap_or(label);
        let granted = identity
            .admin_grants
            .iter()
            .any(|grant| grant.policy == role);
        if !granted && !seen.contains(&role) {
            seen.push(role);
        }
    }
    seen.into_iter()
        .map(|role| {
            format!(
                "gcloud projects remove-iam-policy-binding {project} --member={} --role={} --all",
                shell_quote(&identity.id),
                shell_quote(role)
            )
        })
        .collect()
}

/// Removes every binding of the grant's role to the member, conditional
/// ones included (`--all`).
fn remove_binding(project: &str, identity: &Identity, grant: &AdminGrant) -> String {
    let member = match identity.kind {
        IdentityKind::GcpServiceAccount => format!("serviceAccount:{}", identity.name),
        _ => identity.id.clone(),
    };
    format!(
        "gcloud projects remove-iam-policy-binding {project} --member={} --role={} --all",
        shell_quote(&member),
        shell_quote(&grant.policy)
    )
}

/// Returns the technique of a Google Cloud change that the generic mapping
/// gets wrong. A new impersonation grant is elevation through another
/// identity (T1548.005). A new or re-pointed workload identity provider is
/// a new way to get credentials without a key (T1098.001, as for an Entra
/// federated credential).
pub(super) fn technique(change: &Change) -> Option<Technique> {
    let provider = change.identity.kind == IdentityKind::GcpWorkloadIdentityProvider;
    match &change.kind {
        ChangeKind::CredentialAdded { credential }
            if credential.kind == CredentialKind::ImpersonationGrant =>
        {
            Some(TEMPORARY_ELEVATED_CLOUD_ACCESS)
        }
        ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. } if provider => {
            Some(ADDITIONAL_CLOUD_CREDENTIALS)
        }
        ChangeKind::AttributeChanged { key, .. }
            if provider && TRUST_ATTRIBUTES.contains(&key.as_str()) =>
        {
            Some(ADDITIONAL_CLOUD_CREDENTIALS)
        }
        ChangeKind::AttributeChanged { key, from, to }
            if key == attribute::ROLES
                && gained_project_impersonation(from.as_deref(), to.as_deref()).is_some() =>
        {
            Some(TEMPORARY_ELEVATED_CLOUD_ACCESS)
        }
        _ => None,
    }
}

/// Provider attributes that decide which outside tokens are accepted.
const TRUST_ATTRIBUTES: [&str; 6] = [
    attribute::PROVIDER_TYPE,
    attribute::ISSUER,
    attribute::TRUSTED_KEYS,
    attribute::ATTRIBUTE_CONDITION,
    attribute::ATTRIBUTE_MAPPING,
    attribute::ALLOWED_AUDIENCES,
];

/// Judges a new grant that lets a member act as a service account, by who
/// the member is and what the account can do.
fn assess_impersonation(project: &str, account: &Identity, credential: &Credential) -> Verdict {
    let Some((role, member)) = impersonation_parts(credential) else {
        return Verdict::new(Severity::High, "new grant to impersonate a service account");
    };
    let parsed = parse_member(member);
    let admin = account.is_admin();
    let own_domain = format!("{project}.iam.gserviceaccount.com");
    let own_app_engine = format!("{project}@appspot.gserviceaccount.com");
    let email_domain = parsed.value.split_once('@').map(|(_, domain)| domain);

    let (severity, who) = match (parsed.member_type, parsed.deleted_uid.is_some()) {
        (_, true) => (
            Severity::Low,
            "a deleted principal, which can act only if restored",
        ),
        ("allUsers" | "allAuthenticatedUsers", _) => (Severity::Critical, "everyone"),
        ("serviceAccount", _) if is_service_agent(parsed.value) => {
            if AGENT_IMPERSONATION_ROLES.contains(&role) {
                let mut verdict = Verdict::new(
                    Severity::Low,
                    "a Google service agent may run jobs as this service account",
                );
                verdict.expected_reason = Some(format!(
                    "Google-managed service agent {} given {role}, as Google's setup guides do",
                    parsed.value
                ));
                return verdict;
            }
            (
                Severity::High,
                "a Google service agent, with a role agents are not given",
            )
        }
        ("serviceAccount", _)
            if email_domain == Some(own_domain.as_str()) || parsed.value == own_app_engine =>
        {
            (Severity::Medium, "another service account of this project")
        }
        ("serviceAccount", _) => (Severity::High, "a service account of another project"),
        ("principal" | "principalSet", _) => (
            Severity::High,
            "identities from a workload or workforce identity pool",
        ),
        ("user", _) => (Severity::High, "a user account"),
        ("group", _) => (Severity::High, "every member of a group"),
        ("domain", _) => (Severity::High, "every account of a domain"),
        _ => (Severity::High, "a principal of an unknown type"),
    };
    // Acting as an account with an admin role is having that role.
    let severity = match severity {
        Severity::High if admin => Severity::Critical,
        Severity::Medium if admin => Severity::High,
        other => other,
    };
    let target = if admin {
        "a service account with an owner, editor or admin role"
    } else {
        "a service account"
    };
    Verdict::new(
        severity,
        format!("{who} can now impersonate {target} ({role})"),
    )
}

/// Returns true for the email of a Google-managed service agent.
fn is_service_agent(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let all_digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    (is_agent_domain(domain) && local.strip_prefix("service-").is_some_and(all_digits))
        || (domain == "cloudservices.gserviceaccount.com" && all_digits(local))
}

/// Judges a change to a workload identity provider.
fn assess_provider(change: &Change) -> Verdict {
    let identity = &change.identity;
    let active = identity.enabled != Some(false)
        && identity
            .attributes
            .get(attribute::STATE)
            .map(String::as_str)
            != Some("DELETED");
    match &change.kind {
        ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. } if active => Verdict::new(
            Severity::High,
            "new workload identity provider: tokens of an outside issuer can now be exchanged \
             for Google credentials",
        ),
        ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. } => Verdict::new(
            Severity::Medium,
            "new workload identity provider, disabled or deleted for now",
        ),
        ChangeKind::AttributeChanged { key, .. }
            if [
                attribute::PROVIDER_TYPE,
                attribute::ISSUER,
                attribute::TRUSTED_KEYS,
            ]
            .contains(&key.as_str()) =>
        {
            Verdict::new(
                Severity::High,
                "the provider now trusts another token issuer or signing key",
            )
        }
        ChangeKind::AttributeChanged { key, to: None, .. }
            if key == attribute::ATTRIBUTE_CONDITION =>
        {
            Verdict::new(
                Severity::High,
                "the provider's attribute condition was removed: every identity of the issuer \
                 may now sign in",
            )
        }
        ChangeKind::AttributeChanged { key, .. } if TRUST_ATTRIBUTES.contains(&key.as_str()) => {
            Verdict::new(
                Severity::Medium,
                "the provider's attribute condition, mapping or audiences changed, which can \
                 widen who may sign in",
            )
        }
        ChangeKind::AttributeChanged { key, from, to }
            if (key == attribute::STATE || key == attribute::POOL_STATE)
                && from.as_deref() == Some("DELETED")
                && to.as_deref() == Some("ACTIVE") =>
        {
            Verdict::new(Severity::Medium, "a deleted provider or pool was restored")
        }
        ChangeKind::EnabledChanged { from } if *from == Some(false) => Verdict::new(
            Severity::Medium,
            "a disabled provider or pool was enabled again",
        ),
        _ => Verdict::new(
            Severity::Info,
            "removes access, renames or disables; no new way in",
        ),
    }
}

/// Removes a member's role binding from a service account's own policy,
/// conditional bindings included (`--all`).
fn remove_impersonation(
    project: &str,
    identity: &Identity,
    credential: &Credential,
) -> Option<String> {
    let (role, member) = impersonation_parts(credential)?;
    let email = service_account_email(identity)?;
    Some(format!(
        "gcloud iam service-accounts remove-iam-policy-binding {} --member={} --role={} --project={project} --all",
        shell_quote(email),
        shell_quote(member),
        shell_quote(role)
    ))
}

/// Disables a workload identity provider, which stops new token exchanges
/// through it.
fn disable_provider(project: &str, identity: &Identity) -> Option<String> {
    let (pool, provider) = provider_parts(&identity.id)?;
    Some(format!(
        "gcloud iam workload-identity-pools providers disable {} --workload-identity-pool={} --location=global --project={project}",
        shell_quote(provider),
        shell_quote(pool)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_roles_are_recognized() {
        for role in [
            "roles/owner",
            "roles/editor",
            "roles/storage.admin",
            "roles/iam.securityAdmin",
            "roles/compute.instanceAdmin.v1",
            "roles/resourcemanager.projectIamAdmin",
        ] {
            assert!(is_admin_role(role), "{role}");
        }
        for role in [
            "roles/viewer",
            "roles/container.serviceAgent",
            "roles/compute.instanceAdmin.vx",
            "projects/p/roles/admin",
            "roles/iam.serviceAccountUser",
        ] {
            assert!(!is_admin_role(role), "{role}");
        }
    }

    fn account(email: &str, kind: IdentityKind) -> Identity {
        let id = match kind {
            IdentityKind::GcpPrincipal => format!("serviceAccount:{email}"),
            _ => "112233445566778899001".to_string(),
        };
        Identity::new(id, kind, email)
    }

    #[test]
    fn platform_accounts_are_expected() {
        let expected = [
            account(
                "123456789012-compute@developer.gserviceaccount.com",
                IdentityKind::GcpServiceAccount,
            ),
            account(
                "demo-project@appspot.gserviceaccount.com",
                IdentityKind::GcpServiceAccount,
            ),
            account(
                "service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com",
                IdentityKind::GcpPrincipal,
            ),
            account(
                "123456789012@cloudservices.gserviceaccount.com",
                IdentityKind::GcpPrincipal,
            ),
            account(
                "service-123456789012@compute-system.iam.gserviceaccount.com",
                IdentityKind::GcpPrincipal,
            ),
        ];
        for identity in expected {
            let verdict = assess_creation("demo-project", &identity);
            assert!(verdict.expected_reason.is_some(), "{}", identity.name);
            assert_eq!(verdict.severity, Severity::Low, "{}", identity.name);
        }
    }

    #[test]
    fn lookalike_accounts_are_not_expected() {
        let lookalikes = [
            account(
                "backdoor-compute@developer.gserviceaccount.com",
                IdentityKind::GcpServiceAccount,
            ),
            account(
                "other-project@appspot.gserviceaccount.com",
                IdentityKind::GcpServiceAccount,
            ),
            // A project's own account may be called service-<digits>, but it
            // is listed as a service account, not as an agent.
            account(
                "service-1234@demo-project.iam.gserviceaccount.com",
                IdentityKind::GcpServiceAccount,
            ),
            // So may an account of another customer's project, granted a
            // role here.
            account(
                "service-123456789012@evil-project.iam.gserviceaccount.com",
                IdentityKind::GcpPrincipal,
            ),
            account(
                "service-123456789012@gserviceaccount.com",
                IdentityKind::GcpPrincipal,
            ),
        ];
        for identity in lookalikes {
            let verdict = assess_creation("demo-project", &identity);
            assert!(verdict.expected_reason.is_none(), "{}", identity.name);
        }
    }

    #[test]
    fn default_account_with_key_is_high() {
        let mut identity = account(
            "123456789012-compute@developer.gserviceaccount.com",
            IdentityKind::GcpServiceAccount,
        );
        identity.credentials.push(Credential {
            kind: crate::model::CredentialKind::ServiceAccountKey,
            id: "0123456789abcdef0123456789abcdef01234567".to_string(),
            status: Some("Enabled".to_string()),
            created: None,
            expires: None,
            display_name: None,
            detail: None,
        });
        let verdict = assess_creation("demo-project", &identity);
        assert!(verdict.expected_reason.is_none());
        assert_eq!(verdict.severity, Severity::High);
    }

    #[test]
    fn gained_roles_compares_lists() {
        assert!(gained_roles(
            Some("roles/viewer"),
            Some("roles/browser, roles/viewer")
        ));
        assert!(!gained_roles(
            Some("roles/browser, roles/viewer"),
            Some("roles/viewer")
        ));
        assert!(gained_roles(None, Some("roles/viewer")));
    }

    #[test]
    fn project_token_creator_is_high() {
        let mut identity = Identity::new(
            "user:eve@example.com",
            IdentityKind::GcpPrincipal,
            "eve@example.com",
        );
        identity.attributes.insert(
            attribute::ROLES.to_string(),
            "roles/iam.serviceAccountTokenCreator [weekdays], roles/viewer".to_string(),
        );
        let verdict = assess_creation("demo-project", &identity);
        assert_eq!(verdict.severity, Severity::High);
        let change = Change {
            kind: ChangeKind::AttributeChanged {
                key: attribute::ROLES.to_string(),
                from: Some("roles/viewer".to_string()),
                to: Some("roles/iam.serviceAccountUser, roles/viewer".to_string()),
            },
            identity,
        };
        assert_eq!(assess("demo-project", &change).severity, Severity::High);
        assert_eq!(technique(&change).map(|t| t.id), Some("T1548.005"));
        assert_eq!(
            gained_project_impersonation(Some("roles/viewer"), Some("roles/editor, roles/viewer")),
            None,
            "editor is judged as an admin grant"
        );
    }

    fn grant(member: &str, role: &str) -> Credential {
        Credential {
            kind: CredentialKind::ImpersonationGrant,
            id: format!("{role} {member}"),
            status: None,
            created: None,
            expires: None,
            display_name: Some(member.to_string()),
            detail: None,
        }
    }

    #[test]
    fn impersonation_severity_follows_member() {
        let token_creator = "roles/iam.serviceAccountTokenCreator";
        let account = account(
            "app@demo-project.iam.gserviceaccount.com",
            IdentityKind::GcpServiceAccount,
        );
        let cases = [
            ("allUsers", Severity::Critical),
            ("user:eve@example.com", Severity::High),
            ("group:ops@example.com", Severity::High),
            ("domain:example.com", Severity::High),
            (
                "serviceAccount:ci@other-project.iam.gserviceaccount.com",
                Severity::High,
            ),
            (
                "principalSet://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/ci/*",
                Severity::High,
            ),
            (
                "serviceAccount:ci@demo-project.iam.gserviceaccount.com",
                Severity::Medium,
            ),
            ("deleted:user:old@example.com?uid=123", Severity::Low),
            // A lookalike of a service agent in a customer's project.
            (
                "serviceAccount:service-123@demo-project.iam.gserviceaccount.com",
                Severity::Medium,
            ),
        ];
        for (member, severity) in cases {
            let verdict =
                assess_impersonation("demo-project", &account, &grant(member, token_creator));
            assert_eq!(verdict.severity, severity, "{member}");
            assert!(verdict.expected_reason.is_none(), "{member}");
        }

        let agent = "serviceAccount:service-123@gcp-sa-cloudscheduler.iam.gserviceaccount.com";
        let verdict = assess_impersonation("demo-project", &account, &grant(agent, token_creator));
        assert_eq!(verdict.severity, Severity::Low);
        assert!(verdict.expected_reason.is_some());
        let key_admin = grant(agent, "roles/iam.serviceAccountKeyAdmin");
        let verdict = assess_impersonation("demo-project", &account, &key_admin);
        assert!(verdict.expected_reason.is_none(), "agents get no key admin");
        assert_eq!(verdict.severity, Severity::High);
    }

    #[test]
    fn impersonating_an_admin_is_worse() {
        let mut account = account(
            "app@demo-project.iam.gserviceaccount.com",
            IdentityKind::GcpServiceAccount,
        );
        account.admin_grants.push(AdminGrant {
            via: "iam_policy".to_string(),
            policy: "roles/editor".to_string(),
            group: None,
            group_id: None,
            reason: "roles/editor".to_string(),
            assignment_id: None,
        });
        let role = "roles/iam.serviceAccountUser";
        let outside = assess_impersonation(
            "demo-project",
            &account,
            &grant("user:eve@example.com", role),
        );
        assert_eq!(outside.severity, Severity::Critical);
        let own = grant(
            "serviceAccount:ci@demo-project.iam.gserviceaccount.com",
            role,
        );
        assert_eq!(
            assess_impersonation("demo-project", &account, &own).severity,
            Severity::High
        );
    }

    #[test]
    fn new_account_with_outside_grant_is_high() {
        let mut identity = account(
            "123456789012-compute@developer.gserviceaccount.com",
            IdentityKind::GcpServiceAccount,
        );
        identity.credentials.push(grant(
            "user:eve@example.com",
            "roles/iam.serviceAccountTokenCreator",
        ));
        let verdict = assess_creation("demo-project", &identity);
        assert!(verdict.expected_reason.is_none());
        assert_eq!(verdict.severity, Severity::High);
    }

    fn provider_change(kind: ChangeKind) -> Change {
        let mut identity = Identity::new(
            "projects/1/locations/global/workloadIdentityPools/ci/providers/gh",
            IdentityKind::GcpWorkloadIdentityProvider,
            "ci/gh",
        );
        identity.enabled = Some(true);
        Change { kind, identity }
    }

    #[test]
    fn provider_changes_are_judged() {
        let changed = |key: &str, from: Option<&str>, to: Option<&str>| {
            provider_change(ChangeKind::AttributeChanged {
                key: key.to_string(),
                from: from.map(str::to_string),
                to: to.map(str::to_string),
            })
        };
        let cases = [
            (provider_change(ChangeKind::IdentityAdded), Severity::High),
            (
                changed(attribute::ISSUER, Some("https://a"), Some("https://b")),
                Severity::High,
            ),
            (
                changed(attribute::TRUSTED_KEYS, None, Some("00")),
                Severity::High,
            ),
            (
                changed(attribute::ATTRIBUTE_CONDITION, Some("x"), None),
                Severity::High,
            ),
            (
                changed(attribute::ATTRIBUTE_CONDITION, Some("x"), Some("y")),
                Severity::Medium,
            ),
            (
                changed(attribute::STATE, Some("DELETED"), Some("ACTIVE")),
                Severity::Medium,
            ),
            (
                changed(attribute::STATE, Some("ACTIVE"), Some("DELETED")),
                Severity::Info,
            ),
            (provider_change(ChangeKind::IdentityRemoved), Severity::Info),
        ];
        for (change, severity) in cases {
            assert_eq!(
                assess("demo-project", &change).severity,
                severity,
                "{:?}",
                change.kind
            );
        }
        let added = provider_change(ChangeKind::IdentityAdded);
        assert_eq!(technique(&added).map(|t| t.id), Some("T1098.001"));
        assert_eq!(
            response_commands("demo-project", &added),
            vec![
                "gcloud iam workload-identity-pools providers disable gh --workload-identity-pool=ci --location=global --project=demo-project"
            ]
        );
    }
}
