//! Entra ID knowledge for the judge: which creations are the platform's own
//! (Microsoft first-party service principals, system-assigned managed
//! identities), severities, and `az` response commands.
//!
//! Built-in knowledge lowers the severity of a creation only. A credential
//! on any app or service principal, an admin role, or a first-party
//! lookalike owned by the tenant is never expected.

use super::{Severity, Verdict, shell_quote};
use crate::diff::{Change, ChangeKind};
use crate::model::azure_attribute as attribute;
use crate::model::{AdminGrant, Credential, CredentialKind, Identity, IdentityKind};

/// Tenant id that owns Microsoft's first-party applications.
pub const MICROSOFT_TENANT_ID: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";

fn attribute<'a>(identity: &'a Identity, key: &str) -> Option<&'a str> {
    identity.attributes.get(key).map(String::as_str)
}

/// Judges one change of an Entra tenant.
pub(super) fn assess(change: &Change) -> Verdict {
    let identity = &change.identity;
    match &change.kind {
        ChangeKind::IdentityAdded => assess_creation(identity),
        ChangeKind::IdentityRecreated { .. } => assess_creation(identity).for_recreation(),
        ChangeKind::CredentialAdded { .. } if identity.is_admin() => Verdict::new(
            Severity::Critical,
            "new credential on an identity with a privileged directory role",
        ),
        ChangeKind::CredentialAdded { .. } => {
            Verdict::new(Severity::High, "new credential on an existing identity")
        }
        ChangeKind::PrivilegeAdded { .. } => Verdict::new(
            Severity::Critical,
            "new privileged directory role assignment",
        ),
        ChangeKind::EnabledChanged { from } if *from == Some(false) => {
            Verdict::new(Severity::Low, "a disabled identity was enabled again")
        }
        ChangeKind::AttributeChanged { key, to, .. }
            if key == attribute::USER_TYPE && to.as_deref() == Some("Member") =>
        {
            Verdict::new(Severity::Medium, "a guest became a member")
        }
        _ => Verdict::new(
            Severity::Info,
            "removes access, renames or disables; no new way in",
        ),
    }
}

/// Severity of a new identity; the platform's own identities are expected.
pub(super) fn assess_creation(identity: &Identity) -> Verdict {
    if identity.is_admin() {
        return Verdict::new(
            Severity::Critical,
            "new identity with a privileged directory role",
        );
    }
    let has_credential = !identity.credentials.is_empty();
    if let Some(reason) = platform_identity(identity).filter(|_| !has_credential) {
        let mut verdict = Verdict::new(Severity::Low, "created by the platform, not by a person");
        verdict.expected_reason = Some(reason);
        return verdict;
    }
    match identity.kind {
        IdentityKind::AzureUser if attribute(identity, attribute::USER_TYPE) == Some("Guest") => {
            Verdict::new(Severity::High, "new guest user from another tenant")
        }
        _ if has_credential => Verdict::new(Severity::High, "new identity with a credential"),
        _ => Verdict::new(
            Severity::Medium,
            "new identity without credentials or privileged roles",
        ),
    }
}

/// Returns why a service principal is the platform's own, if it is: a
/// Microsoft first-party application, or a system-assigned managed identity
/// tied to a resource (`alternativeNames` contains its `/subscriptions/...` id).
fn platform_identity(identity: &Identity) -> Option<String> {
    match identity.kind {
        IdentityKind::AzureServicePrincipal
            if attribute(identity, attribute::APP_OWNER_ORGANIZATION_ID)
                == Some(MICROSOFT_TENANT_ID) =>
        {
            Some("Microsoft first-party service principal".to_string())
        }
        IdentityKind::AzureManagedIdentity
            if attribute(identity, attribute::MANAGED_IDENTITY) == Some("system_assigned") =>
        {
            let resource = attribute(identity, attribute::RESOURCE_ID)?;
            Some(format!("system-assigned managed identity of {resource}"))
        }
        _ => None,
    }
}

/// Returns the `az` CLI commands that contain a change, with real ids.
pub(super) fn response_commands(change: &Change) -> Vec<String> {
    let identity = &change.identity;
    match &change.kind {
        ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. } => {
            disable_identity(identity)
        }
        ChangeKind::CredentialAdded { credential } => remove_credential(identity, credential),
        ChangeKind::PrivilegeAdded { grant } => revoke_grant(identity, grant),
        _ => Vec::new(),
    }
}

/// Returns the command that revokes a grant: removing the member from the
/// group that has the role, which keeps the role for the group's other
/// members, or else deleting the role assignment.
fn revoke_grant(identity: &Identity, grant: &AdminGrant) -> Vec<String> {
    if let Some(group_id) = &grant.group_id {
        return vec![format!(
            "az ad group member remove --group {} --member-id {}",
            shell_quote(group_id),
            shell_quote(&identity.id)
        )];
    }
    grant
        .assignment_id
        .iter()
        .map(|assignment| {
            format!(
                "az rest --method DELETE --url https://graph.microsoft.com/v1.0/roleManagement/directory/roleAssignments/{}",
                shell_quote(assignment)
            )
        })
        .collect()
}

fn disable_identity(identity: &Identity) -> Vec<String> {
    let id = shell_quote(&identity.id);
    let mut commands: Vec<String> = identity
        .credentials
        .iter()
        .flat_map(|credential| remove_credential(identity, credential))
        .collect();
    let disable = match identity.kind {
        IdentityKind::AzureUser => format!("az ad user update --id {id} --account-enabled false"),
        IdentityKind::AzureApplication => match attribute(identity, attribute::APP_ID) {
            Some(app_id) => format!(
                "az ad sp update --id {} --set accountEnabled=false",
                shell_quote(app_id)
            ),
            None => format!("az ad app show --id {id}"),
        },
        _ => format!("az ad sp update --id {id} --set accountEnabled=false"),
    };
    commands.push(disable);
    commands
}

fn remove_credential(identity: &Identity, credential: &Credential) -> Vec<String> {
    let target = attribute(identity, attribute::APP_ID).unwrap_or(&identity.id);
    let target = shell_quote(target);
    let key = shell_quote(&credential.id);
    let noun = if identity.kind == IdentityKind::AzureApplication {
        "app"
    } else {
        "sp"
    };
    match credential.kind {
        CredentialKind::ClientSecret => vec![format!(
            "az ad {noun} credential delete --id {target} --key-id {key}"
        )],
        CredentialKind::Certificate => vec![format!(
            "az ad {noun} credential delete --id {target} --key-id {key} --cert"
        )],
        CredentialKind::FederatedCredential => vec![format!(
            "az ad app federated-credential delete --id {target} --federated-credential-id {key}"
        )],
        // IAM and Google Cloud credentials never sit on an Entra identity.
        CredentialKind::AccessKey
        | CredentialKind::ConsolePassword
        | CredentialKind::ServiceAccountKey
        | CredentialKind::ImpersonationGrant => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service_principal(owner: &str) -> Identity {
        let mut identity = Identity::new(
            "00000000-0000-0000-0000-000000000001",
            IdentityKind::AzureServicePrincipal,
            "Microsoft Graph",
        );
        identity.attributes.insert(
            attribute::APP_OWNER_ORGANIZATION_ID.to_string(),
            owner.to_string(),
        );
        identity
    }

    #[test]
    fn first_party_is_expected_lookalike_is_not() {
        let first_party = assess_creation(&service_principal(MICROSOFT_TENANT_ID));
        assert!(first_party.expected_reason.is_some());
        assert_eq!(first_party.severity, Severity::Low);
        let lookalike = assess_creation(&service_principal("11111111-2222-3333-4444-555555555555"));
        assert!(lookalike.expected_reason.is_none());
        assert_eq!(lookalike.severity, Severity::Medium);
    }

    #[test]
    fn first_party_with_secret_is_not_expected() {
        let mut identity = service_principal(MICROSOFT_TENANT_ID);
        identity.credentials.push(Credential {
            kind: CredentialKind::ClientSecret,
            id: "key-1".to_string(),
            status: None,
            created: None,
            expires: None,
            display_name: None,
            detail: None,
        });
        let verdict = assess_creation(&identity);
        assert!(verdict.expected_reason.is_none());
        assert_eq!(verdict.severity, Severity::High);
    }

    fn managed_identity(assignment: &str, resource: Option<&str>) -> Identity {
        let mut identity = Identity::new("mi-1", IdentityKind::AzureManagedIdentity, "vm1");
        identity.attributes.insert(
            attribute::MANAGED_IDENTITY.to_string(),
            assignment.to_string(),
        );
        if let Some(resource) = resource {
            identity
                .attributes
                .insert(attribute::RESOURCE_ID.to_string(), resource.to_string());
        }
        identity
    }

    #[test]
    fn system_assigned_of_resource_is_expected() {
        let vm =
            "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1";
        let system = assess_creation(&managed_identity("system_assigned", Some(vm)));
        assert_eq!(system.severity, Severity::Low);
        assert!(
            system
                .expected_reason
                .is_some_and(|reason| reason.contains(vm))
        );

        for identity in [
            managed_identity("user_assigned", Some(vm)),
            managed_identity("system_assigned", None),
        ] {
            let verdict = assess_creation(&identity);
            assert!(verdict.expected_reason.is_none(), "{identity:?}");
            assert_eq!(verdict.severity, Severity::Medium, "{identity:?}");
        }
    }

    #[test]
    fn guest_user_is_high() {
        let mut guest = Identity::new("u1", IdentityKind::AzureUser, "eve@example.com");
        guest
            .attributes
            .insert(attribute::USER_TYPE.to_string(), "Guest".to_string());
        assert_eq!(assess_creation(&guest).severity, Severity::High);
    }
}
