//! Graph records (API pages or `az` exports) to identity records.
//!
//! Parsing is lenient field by field: an unknown enum value, a null date or
//! a missing boolean leaves that field unknown, and one odd record never
//! fails its page. Only a record without an `id` is dropped, and counted.

use serde_json::Value;

use crate::collect::aws::details::normalize_timestamp;
use crate::model::azure_attribute as attribute;
use crate::model::{AdminGrant, Credential, CredentialKind, Identity, IdentityKind};

/// Identities converted from one listing, with the records that had no id.
#[derive(Debug, Default)]
pub struct Converted {
    /// The identities.
    pub identities: Vec<Identity>,
    /// Records dropped because they carry no `id`.
    pub dropped: usize,
}

/// Returns a non-empty text field of a record.
pub(super) fn text<'a>(record: &'a Value, key: &str) -> Option<&'a str> {
    record
        .get(key)
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty())
}

fn date(record: &Value, key: &str) -> Option<String> {
    text(record, key).map(normalize_timestamp)
}

fn set_attribute(identity: &mut Identity, key: &str, value: Option<&str>) {
    if let Some(value) = value {
        identity
            .attributes
            .insert(key.to_string(), value.to_string());
    }
}

/// Converts records with `convert`, dropping and counting those without an id.
/// Records whose id came before keep the first one, as exports that repeat
/// a listing (or its pages) would otherwise list an identity twice.
fn convert_all(records: &[Value], convert: impl Fn(&Value, &str) -> Identity) -> Converted {
    let mut converted = Converted::default();
    let mut seen = std::collections::HashSet::new();
    for record in records {
        match text(record, "id") {
            Some(id) if seen.insert(id.to_string()) => {
                converted.identities.push(convert(record, id))
            }
            Some(_) => {}
            None => converted.dropped += 1,
        }
    }
    converted
}

/// Converts `/users` records.
pub fn users(records: &[Value]) -> Converted {
    convert_all(records, |record, id| {
        let name = text(record, "userPrincipalName")
            .or_else(|| text(record, "displayName"))
            .unwrap_or(id);
        let mut identity = Identity::new(id, IdentityKind::AzureUser, name);
        identity.created = date(record, "createdDateTime");
        identity.enabled = record.get("accountEnabled").and_then(Value::as_bool);
        set_attribute(
            &mut identity,
            attribute::USER_TYPE,
            text(record, "userType"),
        );
        set_attribute(&mut identity, "display_name", text(record, "displayName"));
        set_attribute(&mut identity, "creation_type", text(record, "creationType"));
        set_attribute(
            &mut identity,
            "external_user_state",
            text(record, "externalUserState"),
        );
        identity
    })
}

/// Converts `/servicePrincipals` records; managed identities get their own
/// kind, distinguished as system- or user-assigned by `alternativeNames`.
pub fn service_principals(records: &[Value]) -> Converted {
    convert_all(records, |record, id| {
        let is_managed = text(record, "servicePrincipalType") == Some("ManagedIdentity");
        let kind = if is_managed {
            IdentityKind::AzureManagedIdentity
        } else {
            IdentityKind::AzureServicePrincipal
        };
        let name = text(record, "displayName").unwrap_or(id);
        let mut identity = Identity::new(id, kind, name);
        identity.enabled = record.get("accountEnabled").and_then(Value::as_bool);
        set_attribute(&mut identity, attribute::APP_ID, text(record, "appId"));
        set_attribute(
            &mut identity,
            "service_principal_type",
            text(record, "servicePrincipalType"),
        );
        set_attribute(
            &mut identity,
            attribute::APP_OWNER_ORGANIZATION_ID,
            text(record, "appOwnerOrganizationId"),
        );
        identity.credentials = credentials_of(record);
        if is_managed {
            set_managed_identity(&mut identity, record);
            // Azure issues and renews a managed identity's certificate itself.
            identity
                .credentials
                .retain(|credential| credential.kind != CredentialKind::Certificate);
        }
        identity
    })
}

/// Reads `alternativeNames`: `isExplicit=True` marks a user-assigned
/// identity, `isExplicit=False` a system-assigned one, and the entry that
/// starts with `/subscriptions/` is the resource it belongs to.
fn set_managed_identity(identity: &mut Identity, record: &Value) {
    let names: Vec<&str> = record
        .get("alternativeNames")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let assignment = if names
        .iter()
        .any(|name| name.eq_ignore_ascii_case("isExplicit=True"))
    {
        Some("user_assigned")
    } else if names
        .iter()
        .any(|name| name.eq_ignore_ascii_case("isExplicit=False"))
    {
        Some("system_assigned")
    } else {
        None
    };
    set_attribute(identity, attribute::MANAGED_IDENTITY, assignment);
    let resource = names
        .iter()
        .find(|name| name.to_ascii_lowercase().starts_with("/subscriptions/"));
    set_attribute(identity, attribute::RESOURCE_ID, resource.copied());
}

/// Converts `/applications` records.
pub fn applications(records: &[Value]) -> Converted {
    convert_all(records, |record, id| {
        let name = text(record, "displayName").unwrap_or(id);
        let mut identity = Identity::new(id, IdentityKind::AzureApplication, name);
        identity.created = date(record, "createdDateTime");
        set_attribute(&mut identity, attribute::APP_ID, text(record, "appId"));
        identity.credentials = credentials_of(record);
        identity
    })
}

/// Reads `passwordCredentials` and `keyCredentials` by key id; secret text
/// and certificate bodies are never read.
fn credentials_of(record: &Value) -> Vec<Credential> {
    let mut credentials = Vec::new();
    for (field, kind) in [
        ("passwordCredentials", CredentialKind::ClientSecret),
        ("keyCredentials", CredentialKind::Certificate),
    ] {
        let entries = record
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for entry in entries {
            let Some(key_id) = text(entry, "keyId") else {
                continue;
            };
            credentials.push(Credential {
                kind,
                id: key_id.to_string(),
                status: None,
                created: date(entry, "startDateTime"),
                expires: date(entry, "endDateTime"),
                display_name: text(entry, "displayName").map(str::to_string),
                detail: None,
            });
        }
    }
    credentials
}

/// Converts one app's `/federatedIdentityCredentials` records.
pub fn federated_credentials(records: &[Value]) -> Vec<Credential> {
    records
        .iter()
        .filter_map(|record| {
            let id = text(record, "id")?;
            let audiences: Vec<&str> = record
                .get("audiences")
                .and_then(Value::as_array)
                .map(|list| list.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let detail = format!(
                "issuer {}, subject {}, audiences {}",
                text(record, "issuer").unwrap_or("-"),
                text(record, "subject").unwrap_or("-"),
                audiences.join(" ")
            );
            Some(Credential {
                kind: CredentialKind::FederatedCredential,
                id: id.to_string(),
                status: None,
                created: None,
                expires: None,
                display_name: text(record, "name").map(str::to_string),
                detail: Some(detail),
            })
        })
        .collect()
}

/// One privileged directory role assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    /// The assignment's id.
    pub id: String,
    /// The object id of the user, service principal or group it is given to.
    pub principal_id: String,
    /// The role's display name.
    pub role_name: &'static str,
    /// The role's template id.
    pub role_template_id: String,
}

/// Keeps the role assignments whose role is in [`PRIVILEGED_ROLES`].
pub fn privileged_assignments(records: &[Value]) -> Vec<RoleAssignment> {
    records
        .iter()
        .filter_map(|record| {
            let role_template_id = text(record, "roleDefinitionId")?.to_ascii_lowercase();
            let role_name = privileged_role_name(&role_template_id)?;
            Some(RoleAssignment {
                id: text(record, "id")?.to_string(),
                principal_id: text(record, "principalId")?.to_string(),
                role_name,
                role_template_id,
            })
        })
        .collect()
}

/// Turns a role assignment into the admin grant recorded on its principal.
pub fn grant_of(assignment: &RoleAssignment) -> AdminGrant {
    AdminGrant {
        via: "directory_role".to_string(),
        policy: assignment.role_name.to_string(),
        group: None,
        group_id: None,
        reason: format!("role template {}", assignment.role_template_id),
        assignment_id: Some(assignment.id.clone()),
    }
}

/// A group that is the principal of a privileged role assignment, with its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGroup {
    /// The group's object id.
    pub id: String,
    /// The display name, when the source gives one.
    pub display_name: Option<String>,
    /// The members, direct and nested.
    pub members: Vec<GroupMember>,
}

/// One member of a [`RoleGroup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// The member's object id.
    pub id: String,
    /// The member's `@odata.type`, such as `#microsoft.graph.user`, when the listing gives one.
    pub odata_type: Option<String>,
}

impl RoleGroup {
    /// Builds a group without members from its id and, when there is one,
    /// its `/groups/{id}` record.
    pub fn new(id: &str, record: Option<&Value>) -> RoleGroup {
        RoleGroup {
            id: id.to_string(),
            display_name: record
                .and_then(|record| text(record, "displayName"))
                .map(str::to_string),
            members: Vec::new(),
        }
    }

    /// Returns the display name and id, for messages.
    pub fn label(&self) -> String {
        match &self.display_name {
            Some(name) => format!("{name} ({})", self.id),
            None => self.id.clone(),
        }
    }
}

/// Converts a group's member records, skipping those without an id.
pub fn group_members(records: &[Value]) -> Vec<GroupMember> {
    records
        .iter()
        .filter_map(|record| {
            Some(GroupMember {
                id: text(record, "id")?.to_string(),
                odata_type: text(record, "@odata.type").map(str::to_string),
            })
        })
        .collect()
}

/// Turns a role assignment to a group into the admin grant recorded on
/// each of the group's members. The diff matches such grants by the
/// group's id, so renaming the group changes no grant.
pub fn group_grant_of(assignment: &RoleAssignment, group: &RoleGroup) -> AdminGrant {
    AdminGrant {
        group: Some(
            group
                .display_name
                .clone()
                .unwrap_or_else(|| group.id.clone()),
        ),
        group_id: Some(group.id.clone()),
        ..grant_of(assignment)
    }
}

/// Built-in Entra roles that Microsoft's role reference marks privileged,
/// by template id (the same in every tenant).
// NOTE: taken from Microsoft's "Microsoft Entra built-in roles" reference;
// roles Microsoft adds to its privileged list later are not known here.
pub const PRIVILEGED_ROLES: &[(&str, &str)] = &[
    (
        "62e90394-69f5-4237-9190-012177145e10",
        "Global Administrator",
    ),
    (
        "e8611ab8-c189-46e8-94e1-60213ab1f814",
        "Privileged Role Administrator",
    ),
    (
        "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
        "Privileged Authentication Administrator",
    ),
    (
        "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
        "Application Administrator",
    ),
    (
        "158c047a-c907-4556-b7ef-446551a6b5f7",
        "Cloud Application Administrator",
    ),
    (
        "c4e39bd9-1100-46d3-8c65-fb160da0071f",
        "Authentication Administrator",
    ),
    (
        "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9",
        "Conditional Access Administrator",
    ),
    (
        "29232cdf-9323-42fd-ade2-1d097af3e4de",
        "Exchange Administrator",
    ),
    (
        "729827e3-9c14-49f7-bb1b-9608f156bbb8",
        "Helpdesk Administrator",
    ),
    (
        "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2",
        "Hybrid Identity Administrator",
    ),
    (
        "3a2c62db-5318-420d-8d74-23affee5d9d5",
        "Intune Administrator",
    ),
    (
        "966707d0-3269-4727-9be2-8c3a10f19b9d",
        "Password Administrator",
    ),
    (
        "194ae4cb-b126-40b2-bd5b-6091b380977d",
        "Security Administrator",
    ),
    (
        "f28a1f50-f6e7-4571-818b-6a12f2af6b6c",
        "SharePoint Administrator",
    ),
    ("fe930be7-5e62-47db-91af-98c3a49a38b1", "User Administrator"),
    (
        "8329153b-31d0-4727-b945-745eb3bc5f31",
        "Domain Name Administrator",
    ),
    (
        "d29b2b05-8046-44ba-8758-1e26182fcf32",
        "Directory Synchronization Accounts",
    ),
    (
        "e00e864a-17c5-4a4b-9c06-f5b95a8d5bd8",
        "Partner Tier2 Support",
    ),
];

fn privileged_role_name(template_id: &str) -> Option<&'static str> {
    PRIVILEGED_ROLES
        .iter()
        .find(|(id, _)| *id == template_id)
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn odd_user_records_are_kept() {
        let records = vec![
            json!({"id": "u1", "userPrincipalName": "a@x", "userType": null, "createdDateTime": null}),
            json!({"id": "u2", "displayName": "b", "userType": "SomethingNew", "createdDateTime": "9999-12-31T23:59:59Z"}),
            json!({"id": "u3", "createdDateTime": "2299-01-01T00:00:00Z", "accountEnabled": "maybe"}),
            json!({"userPrincipalName": "no-id@x"}),
        ];
        let converted = users(&records);
        assert_eq!(converted.identities.len(), 3);
        assert_eq!(converted.dropped, 1);
        assert_eq!(converted.identities[0].created, None);
        assert!(
            !converted.identities[0]
                .attributes
                .contains_key(attribute::USER_TYPE)
        );
        assert_eq!(
            converted.identities[1].created.as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
        assert_eq!(
            converted.identities[1].attributes[attribute::USER_TYPE],
            "SomethingNew"
        );
        assert_eq!(
            converted.identities[2].created.as_deref(),
            Some("2299-01-01T00:00:00Z")
        );
        assert_eq!(converted.identities[2].enabled, None);
        assert_eq!(converted.identities[2].name, "u3");
    }

    #[test]
    fn managed_identities_are_told_apart() {
        let records = vec![
            json!({"id": "s1", "servicePrincipalType": "ManagedIdentity",
                   "alternativeNames": ["isExplicit=False", "/subscriptions/x/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/vm1"]}),
            json!({"id": "s2", "servicePrincipalType": "ManagedIdentity",
                   "alternativeNames": ["isExplicit=True", "/subscriptions/x/resourcegroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mi"]}),
            json!({"id": "s3", "servicePrincipalType": "SocialIdp", "passwordCredentials": [{"keyId": "k1", "secretText": "never-stored"}]}),
        ];
        let converted = service_principals(&records);
        let [system, user, other] = converted.identities.as_slice() else {
            panic!("three identities expected");
        };
        assert_eq!(system.kind, IdentityKind::AzureManagedIdentity);
        assert_eq!(
            system.attributes[attribute::MANAGED_IDENTITY],
            "system_assigned"
        );
        assert!(system.attributes[attribute::RESOURCE_ID].ends_with("vm1"));
        assert_eq!(
            user.attributes[attribute::MANAGED_IDENTITY],
            "user_assigned"
        );
        assert_eq!(other.kind, IdentityKind::AzureServicePrincipal);
        assert_eq!(other.credentials[0].id, "k1");
        assert!(!format!("{other:?}").contains("never-stored"));
    }

    #[test]
    fn group_members_keep_type_and_skip_no_id() {
        let records = vec![
            json!({"@odata.type": "#microsoft.graph.user", "id": "u1"}),
            json!({"id": "s1", "servicePrincipalType": "Application"}),
            json!({"@odata.type": "#microsoft.graph.device"}),
        ];
        let members = group_members(&records);
        let ids: Vec<&str> = members.iter().map(|member| member.id.as_str()).collect();
        assert_eq!(ids, vec!["u1", "s1"]);
        assert_eq!(
            members[0].odata_type.as_deref(),
            Some("#microsoft.graph.user")
        );
        assert_eq!(members[1].odata_type, None);
    }

    #[test]
    fn group_grant_names_group_or_its_id() {
        let assignment = RoleAssignment {
            id: "a1".to_string(),
            principal_id: "g1".to_string(),
            role_name: "Global Administrator",
            role_template_id: "62e90394-69f5-4237-9190-012177145e10".to_string(),
        };
        let named = RoleGroup::new("g1", Some(&json!({"displayName": "Tier 0"})));
        let grant = group_grant_of(&assignment, &named);
        assert_eq!(grant.group.as_deref(), Some("Tier 0"));
        assert_eq!(grant.group_id.as_deref(), Some("g1"));
        assert_eq!(grant.assignment_id.as_deref(), Some("a1"));
        let unnamed = group_grant_of(&assignment, &RoleGroup::new("g1", None));
        assert_eq!(unnamed.group.as_deref(), Some("g1"));
    }

    #[test]
    fn only_privileged_roles_are_kept() {
        let records = vec![
            json!({"id": "a1", "principalId": "p1", "roleDefinitionId": "62E90394-69F5-4237-9190-012177145E10"}),
            json!({"id": "a2", "principalId": "p2", "roleDefinitionId": "88d8e3e3-8f55-4a1e-953a-9b9898b8876b"}),
        ];
        let kept = privileged_assignments(&records);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].role_name, "Global Administrator");
    }
}
