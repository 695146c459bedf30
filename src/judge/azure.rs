//! Entra ID knowledge for the judge: which creations are the platform's own
//! (Microsoft first-party service principals, system-assigned managed
//! identities), severities, and `az` response commands.
//!
//! Built-in knowledge lowers the severity of a creation only. A credential
//! on any app or service principal, a directory role, or a first-party
//! lookalike owned by the tenant is never expected. The one exception is an
//! Azure RBAC role of a Microsoft first-party service principal without
//! credentials: Azure services assign those roles to their own service
//! principals, whose credentials Microsoft keeps outside the tenant.

use super::{Severity, Verdict, shell_quote};
use crate::diff::{Change, ChangeKind, ScopeDiff};
use crate::model::azure_attribute as attribute;
use crate::model::{
    AZURE_RBAC_VIA, AdminGrant, Credential, CredentialKind, Identity, IdentityKind, Owner,
};

/// Tenant id that owns Microsoft's first-party applications.
pub const MICROSOFT_TENANT_ID: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";

fn attribute<'a>(identity: &'a Identity, key: &str) -> Option<&'a str> {
    identity.attributes.get(key).map(String::as_str)
}

/// Azure RBAC roles that can grant access to others, by role definition
/// id (the same in every tenant): Owner, User Access Administrator and
/// Role Based Access Control Administrator.
const RBAC_ACCESS_ROLES: [&str; 3] = [
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
];

/// Judges one change of an Entra tenant.
pub(super) fn assess(diff: &ScopeDiff, change: &Change) -> Verdict {
    let identity = &change.identity;
    match &change.kind {
        ChangeKind::PrivilegeAdded { grant } if grant.via == AZURE_RBAC_VIA => {
            assess_rbac_grant(identity, grant)
        }
        ChangeKind::OwnerAdded { owner } => assess_owner(diff, identity, owner),
        ChangeKind::CredentialAdded { credential }
            if identity.kind == IdentityKind::AzureManagedIdentity
                && credential.kind == CredentialKind::FederatedCredential =>
        {
            let severity = if identity.is_admin() {
                Severity::Critical
            } else {
                Severity::High
            };
            Verdict::new(
                severity,
                "new federated credential on a managed identity: tokens from its issuer \
                 and subject now sign in as the identity",
            )
        }
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

/// Judges a new Azure RBAC grant: roles that can grant access are
/// critical, Contributor is high, and a first-party service principal
/// without credentials is expected.
fn assess_rbac_grant(identity: &Identity, grant: &AdminGrant) -> Verdict {
    if let Some(reason) = first_party_rbac(identity) {
        let mut verdict = Verdict::new(
            Severity::Low,
            format!(
                "Azure RBAC role {} of a service principal that Microsoft owns",
                grant.policy
            ),
        );
        verdict.expected_reason = Some(reason);
        return verdict;
    }
    if grants_access(grant) {
        Verdict::new(
            Severity::Critical,
            format!(
                "new Azure RBAC role assignment {}: the role can grant any access in its scope",
                grant.policy
            ),
        )
    } else {
        Verdict::new(
            Severity::High,
            format!(
                "new Azure RBAC role assignment {}: the role can change every resource in its scope",
                grant.policy
            ),
        )
    }
}

/// Returns true for a grant of Owner, User Access Administrator or Role
/// Based Access Control Administrator.
fn grants_access(grant: &AdminGrant) -> bool {
    RBAC_ACCESS_ROLES
        .iter()
        .any(|role| grant.reason.contains(role))
}

/// Returns why a first-party service principal's Azure RBAC roles are the
/// platform's own: it is Microsoft's, without credentials or directory roles.
fn first_party_rbac(identity: &Identity) -> Option<String> {
    let rbac_only = identity
        .admin_grants
        .iter()
        .all(|grant| grant.via == AZURE_RBAC_VIA);
    let first_party = identity.kind == IdentityKind::AzureServicePrincipal
        && attribute(identity, attribute::APP_OWNER_ORGANIZATION_ID) == Some(MICROSOFT_TENANT_ID);
    (first_party && rbac_only && identity.credentials.is_empty()).then(|| {
        "Microsoft first-party service principal: Azure services assign RBAC roles to their \
         own service principals"
            .to_string()
    })
}

/// Judges a new owner of an app registration or service principal. An
/// owner can add a credential and sign in as what it owns, so the verdict
/// rises with what the target can do and with how unusual the owner is.
fn assess_owner(diff: &ScopeDiff, identity: &Identity, owner: &Owner) -> Verdict {
    let app_privileged = identity.kind == IdentityKind::AzureApplication
        && attribute(identity, attribute::APP_ID)
            .is_some_and(|app_id| diff.privileged_app_ids.contains(app_id));
    if identity.is_admin() || app_privileged {
        return Verdict::new(
            Severity::Critical,
            "new owner of an identity with an admin grant: the owner can add a credential \
             and act with that grant",
        );
    }
    let is_guest = owner.user_type.as_deref() == Some("Guest")
        || owner
            .name
            .as_deref()
            .is_some_and(|name| name.contains("#EXT#"));
    if is_guest {
        return Verdict::new(
            Severity::High,
            "new owner who is a guest from another tenant: the owner can add credentials",
        );
    }
    let owner_is_new = diff.changes.iter().any(|other| {
        other.identity.id == owner.id
            && matches!(
                other.kind,
                ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. }
            )
    });
    if owner_is_new {
        return Verdict::new(
            Severity::High,
            "new owner that is itself new since the last scan: the owner can add credentials",
        );
    }
    Verdict::new(
        Severity::Medium,
        "new owner: the owner can add credentials and sign in as the app or service principal",
    )
}

/// Severity of a new identity; the platform's own identities are expected.
pub(super) fn assess_creation(identity: &Identity) -> Verdict {
    if let Some(reason) = first_party_rbac(identity).filter(|_| identity.is_admin()) {
        let mut verdict = Verdict::new(
            Severity::Low,
            "created by the platform, with Azure RBAC roles that Azure services assign",
        );
        verdict.expected_reason = Some(reason);
        return verdict;
    }
    if let Some(grant) = identity
        .admin_grants
        .iter()
        .find(|grant| grant.via != AZURE_RBAC_VIA)
    {
        return Verdict::new(
            Severity::Critical,
            format!(
                "new identity with a privileged directory role ({})",
                grant.policy
            ),
        );
    }
    if let Some(grant) = identity.admin_grants.first() {
        return Verdict::new(
            Severity::Critical,
            format!(
                "new identity with the Azure RBAC role assignment {}",
                grant.policy
            ),
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
        ChangeKind::OwnerAdded { owner } => remove_owner(identity, owner),
        _ => Vec::new(),
    }
}

/// Returns the command that removes an owner from an app registration or
/// service principal.
fn remove_owner(identity: &Identity, owner: &Owner) -> Vec<String> {
    let owner_id = shell_quote(&owner.id);
    match identity.kind {
        IdentityKind::AzureApplication => vec![format!(
            "az ad app owner remove --id {} --owner-object-id {owner_id}",
            shell_quote(&identity.id)
        )],
        // `az ad sp owner` has no remove command, so the Graph call is sent directly.
        _ => vec![format!(
            "az rest --method DELETE --url {}",
            shell_quote(&format!(
                "https://graph.microsoft.com/v1.0/servicePrincipals/{}/owners/{}/$ref",
                identity.id, owner.id
            ))
        )],
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
    if grant.via == AZURE_RBAC_VIA {
        return grant
            .assignment_id
            .iter()
            .map(|assignment| {
                format!(
                    "az role assignment delete --ids {}",
                    shell_quote(assignment)
                )
            })
            .collect();
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
    // Azure RBAC grants outlive a disabled service principal's sign-in, so
    // they are deleted too. Directory roles are left for review.
    commands.extend(
        identity
            .admin_grants
            .iter()
            .filter(|grant| grant.via == AZURE_RBAC_VIA && grant.group_id.is_none())
            .flat_map(|grant| revoke_grant(identity, grant)),
    );
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
        CredentialKind::FederatedCredential
            if identity.kind == IdentityKind::AzureManagedIdentity =>
        {
            delete_managed_identity_credential(&credential.id)
        }
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

/// Returns the command that deletes a managed identity's federated
/// credential, from the credential's Azure Resource Manager id
/// (`/subscriptions/S/resourceGroups/G/providers/Microsoft.ManagedIdentity/
/// userAssignedIdentities/N/federatedIdentityCredentials/F`).
fn delete_managed_identity_credential(arm_id: &str) -> Vec<String> {
    let segments: Vec<&str> = arm_id.trim_matches('/').split('/').collect();
    let after = |key: &str| {
        segments
            .iter()
            .position(|segment| segment.eq_ignore_ascii_case(key))
            .and_then(|position| segments.get(position + 1))
            .map(|value| shell_quote(value))
    };
    let parts = (
        after("subscriptions"),
        after("resourceGroups"),
        after("userAssignedIdentities"),
        after("federatedIdentityCredentials"),
    );
    match parts {
        (Some(subscription), Some(group), Some(identity), Some(name)) => vec![format!(
            "az identity federated-credential delete --name {name} --identity-name {identity} \
             --resource-group {group} --subscription {subscription} --yes"
        )],
        _ => vec![format!("az resource delete --ids {}", shell_quote(arm_id))],
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

    fn secret() -> Credential {
        Credential {
            kind: CredentialKind::ClientSecret,
            id: "key-1".to_string(),
            status: None,
            created: None,
            expires: None,
            display_name: None,
            detail: None,
        }
    }

    #[test]
    fn first_party_with_secret_is_not_expected() {
        let mut identity = service_principal(MICROSOFT_TENANT_ID);
        identity.credentials.push(secret());
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

    fn rbac_grant(role_id: &str, role: &str) -> AdminGrant {
        AdminGrant {
            via: AZURE_RBAC_VIA.to_string(),
            policy: format!("{role} at /subscriptions/s1"),
            group: None,
            group_id: None,
            reason: format!("role definition {role_id}"),
            assignment_id: Some(
                "/subscriptions/s1/providers/Microsoft.Authorization/roleAssignments/a1"
                    .to_string(),
            ),
        }
    }

    fn empty_diff() -> ScopeDiff {
        ScopeDiff {
            provider: crate::model::Provider::Azure,
            scope: "t1".to_string(),
            changes: Vec::new(),
            not_compared: Vec::new(),
            privileged_app_ids: Default::default(),
        }
    }

    #[test]
    fn rbac_roles_are_critical_or_high() {
        let owner = rbac_grant("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner");
        let contributor = rbac_grant("b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor");
        let principal = service_principal("11111111-2222-3333-4444-555555555555");
        assert_eq!(
            assess_rbac_grant(&principal, &owner).severity,
            Severity::Critical
        );
        assert_eq!(
            assess_rbac_grant(&principal, &contributor).severity,
            Severity::High
        );

        let mut created = principal.clone();
        created.admin_grants.push(owner.clone());
        let verdict = assess_creation(&created);
        assert_eq!(verdict.severity, Severity::Critical);
        assert!(
            verdict.reason.contains("Owner at /subscriptions/s1"),
            "{}",
            verdict.reason
        );
        let commands = disable_identity(&created);
        assert!(
            commands
                .iter()
                .any(|command| command
                    .starts_with("az role assignment delete --ids /subscriptions/s1/")),
            "{commands:?}"
        );
    }

    #[test]
    fn first_party_rbac_is_expected_unless_credentialed() {
        let contributor = rbac_grant("b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor");
        let mut first_party = service_principal(MICROSOFT_TENANT_ID);
        first_party.admin_grants.push(contributor.clone());
        let verdict = assess_rbac_grant(&first_party, &contributor);
        assert!(verdict.expected_reason.is_some());
        assert_eq!(verdict.severity, Severity::Low);
        assert!(assess_creation(&first_party).expected_reason.is_some());

        // A directory role or a credential voids the expectation.
        let mut directory = first_party.clone();
        directory.admin_grants.push(AdminGrant {
            via: "directory_role".to_string(),
            reason: "role template 62e90394-69f5-4237-9190-012177145e10".to_string(),
            policy: "Global Administrator".to_string(),
            ..contributor.clone()
        });
        assert!(
            assess_rbac_grant(&directory, &contributor)
                .expected_reason
                .is_none()
        );
        assert_eq!(assess_creation(&directory).severity, Severity::Critical);
        let mut credentialed = first_party;
        credentialed.credentials.push(secret());
        assert!(
            assess_rbac_grant(&credentialed, &contributor)
                .expected_reason
                .is_none()
        );
    }

    #[test]
    fn owner_severity_follows_reach() {
        let owner = |user_type: Option<&str>| Owner {
            id: "u9".to_string(),
            kind: Some("user".to_string()),
            name: Some("someone@x".to_string()),
            user_type: user_type.map(str::to_string),
        };
        let mut app = Identity::new("o1", IdentityKind::AzureApplication, "deploy");
        app.attributes
            .insert(attribute::APP_ID.to_string(), "a1".to_string());
        let mut diff = empty_diff();
        assert_eq!(
            assess_owner(&diff, &app, &owner(Some("Member"))).severity,
            Severity::Medium
        );
        assert_eq!(
            assess_owner(&diff, &app, &owner(Some("Guest"))).severity,
            Severity::High
        );
        diff.changes.push(Change {
            kind: ChangeKind::IdentityAdded,
            identity: Identity::new("u9", IdentityKind::AzureUser, "someone@x"),
        });
        assert_eq!(
            assess_owner(&diff, &app, &owner(None)).severity,
            Severity::High
        );
        diff.privileged_app_ids.insert("a1".to_string());
        assert_eq!(
            assess_owner(&diff, &app, &owner(None)).severity,
            Severity::Critical
        );
        let commands = remove_owner(&app, &owner(None));
        assert_eq!(
            commands,
            vec!["az ad app owner remove --id o1 --owner-object-id u9".to_string()]
        );
    }

    #[test]
    fn managed_identity_credential_command_names_its_parts() {
        let id = "/subscriptions/s1/resourcegroups/rg-1/providers/Microsoft.ManagedIdentity/\
                  userAssignedIdentities/mi-1/federatedIdentityCredentials/gh";
        assert_eq!(
            delete_managed_identity_credential(id),
            vec![
                "az identity federated-credential delete --name gh --identity-name mi-1 \
                 --resource-group rg-1 --subscription s1 --yes"
                    .to_string()
            ]
        );
        assert_eq!(
            delete_managed_identity_credential("/odd/id"),
            vec!["az resource delete --ids /odd/id".to_string()]
        );
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
