//! Google Cloud knowledge for the judge: which roles count as admin, which
//! creations are the platform's own (default service accounts, service
//! agents), severities, and `gcloud` response commands.
//!
//! Built-in knowledge lowers the severity of a creation only. A
//! user-managed key on any service account, or an owner, editor or admin
//! grant, is never expected.

use super::{Severity, Verdict, shell_quote};
use crate::diff::{Change, ChangeKind};
use crate::model::gcp_attribute as attribute;
use crate::model::{AdminGrant, Credential, Identity, IdentityKind};

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
    match &change.kind {
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
            if gained_roles(from.as_deref(), to.as_deref()) {
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
    let has_key = !identity.credentials.is_empty();
    if let Some(reason) = platform_identity(project, identity).filter(|_| !has_key) {
        let mut verdict = Verdict::new(Severity::Low, "created by the platform, not by a person");
        verdict.expected_reason = Some(reason);
        return verdict;
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
        IdentityKind::GcpPrincipal => Verdict::new(
            Severity::Medium,
            "new member of the project's IAM policy, without an admin role",
        ),
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
        | ChangeKind::CredentialStatusChanged { credential, .. } => {
            disable_key(&project, identity, credential)
                .into_iter()
                .collect()
        }
        ChangeKind::PrivilegeAdded { grant } => vec![remove_binding(&project, identity, grant)],
        _ => Vec::new(),
    }
}

fn disable_key(project: &str, identity: &Identity, credential: &Credential) -> Option<String> {
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
}
