//! Azure Resource Manager records of a tenant's subscriptions: Azure RBAC
//! role assignments that give control of a subscription or management
//! group, and user-assigned managed identities with their federated
//! identity credentials. Both the API collector and the export reader
//! convert records here; ARM returns fields under `properties`, while the
//! `az` CLI flattens them, so either shape is read.
//!
//! Only four roles are kept: Owner, Contributor, User Access Administrator
//! and Role Based Access Control Administrator, each assigned at a
//! subscription, a management group or the root scope `/`.
// NOTE: assignments at resource group or resource scope, and custom roles
// with the same rights, are not collected.

use std::collections::HashMap;

use serde_json::Value;
use tracing::warn;

use super::inventory::{PrincipalLookup, TenantInventory};
use super::records::{RoleGroup, text};
use crate::model::azure_attribute as attribute;
use crate::model::{
    AZURE_RBAC_VIA, AdminGrant, CollectionName, Completeness, Credential, Identity, IdentityKind,
};
use crate::report::sanitize;
use crate::settings::is_guid;

/// The `api-version` of the role assignment listings.
pub const ROLE_ASSIGNMENTS_API_VERSION: &str = "2022-04-01";
/// The `api-version` of the managed identity listings.
pub const MANAGED_IDENTITY_API_VERSION: &str = "2023-01-31";

/// Built-in Azure roles that give control of a scope, by role definition
/// id (the same in every tenant), from Microsoft's Azure built-in roles reference.
pub const RBAC_ROLES: [(&str, &str); 4] = [
    ("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner"),
    ("b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor"),
    (
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        "User Access Administrator",
    ),
    (
        "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
        "Role Based Access Control Administrator",
    ),
];

/// One Azure RBAC role assignment of a role in [`RBAC_ROLES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbacAssignment {
    /// The assignment's Azure Resource Manager id, which `az role
    /// assignment delete --ids` takes.
    pub id: String,
    /// The object id of the user, service principal or group.
    pub principal_id: String,
    /// `User`, `ServicePrincipal`, `Group`, `ForeignGroup` or `Device`, when given.
    pub principal_type: Option<String>,
    /// The role definition id (a GUID).
    pub role_id: String,
    /// The role's name.
    pub role_name: &'static str,
    /// The scope: `/subscriptions/{id}`, a management group or `/`.
    pub scope: String,
    /// True when the assignment carries an ABAC condition.
    pub conditional: bool,
}

/// Reads a field from `properties`, else from the record itself.
fn field<'a>(record: &'a Value, key: &str) -> Option<&'a str> {
    record
        .get("properties")
        .and_then(|properties| properties.get(key))
        .or_else(|| record.get(key))
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty())
}

/// Returns true for a subscription, management group or root scope.
fn is_tenant_level_scope(scope: &str) -> bool {
    let lower = scope.trim_end_matches('/').to_ascii_lowercase();
    if lower.is_empty() {
        return true;
    }
    if let Some(subscription) = lower.strip_prefix("/subscriptions/") {
        return is_guid(subscription);
    }
    lower
        .strip_prefix("/providers/microsoft.management/managementgroups/")
        .is_some_and(|group| !group.is_empty() && !group.contains('/'))
}

/// Keeps the role assignments of [`RBAC_ROLES`] at subscription,
/// management group or root scope.
pub fn rbac_assignments(records: &[Value]) -> Vec<RbacAssignment> {
    records
        .iter()
        .filter_map(|record| {
            let definition = field(record, "roleDefinitionId")?;
            let role_id = definition.rsplit('/').next()?.to_ascii_lowercase();
            let (_, role_name) = RBAC_ROLES.iter().find(|(id, _)| *id == role_id)?;
            let scope = field(record, "scope")?;
            if !is_tenant_level_scope(scope) {
                return None;
            }
            Some(RbacAssignment {
                id: text(record, "id")?.to_string(),
                principal_id: field(record, "principalId")?.to_ascii_lowercase(),
                principal_type: field(record, "principalType").map(str::to_string),
                role_id,
                role_name,
                scope: scope.to_string(),
                conditional: field(record, "condition").is_some(),
            })
        })
        .collect()
}

/// Turns an Azure RBAC role assignment into the admin grant on its principal.
pub fn rbac_grant(assignment: &RbacAssignment) -> AdminGrant {
    let condition = if assignment.conditional {
        ", with a condition"
    } else {
        ""
    };
    AdminGrant {
        via: AZURE_RBAC_VIA.to_string(),
        policy: format!("{} at {}", assignment.role_name, assignment.scope),
        group: None,
        group_id: None,
        reason: format!("role definition {}{condition}", assignment.role_id),
        assignment_id: Some(assignment.id.clone()),
    }
}

/// One user-assigned managed identity from a subscription's listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAssignedIdentity {
    /// The Azure Resource Manager id.
    pub arm_id: String,
    /// The resource name.
    pub name: String,
    /// The object id of its service principal.
    pub principal_id: String,
    /// The application (client) id.
    pub client_id: Option<String>,
}

/// Converts `userAssignedIdentities` records, skipping those without an id
/// or principal id.
pub fn user_assigned_identities(records: &[Value]) -> Vec<UserAssignedIdentity> {
    records
        .iter()
        .filter_map(|record| {
            let arm_id = text(record, "id")?.to_string();
            let name = text(record, "name")
                .or_else(|| arm_id.rsplit('/').next())?
                .to_string();
            Some(UserAssignedIdentity {
                principal_id: field(record, "principalId")?.to_ascii_lowercase(),
                client_id: field(record, "clientId").map(str::to_string),
                arm_id,
                name,
            })
        })
        .collect()
}

/// Returns true for an Azure Resource Manager id that can go into a URL
/// path as it is: a `/subscriptions/...` path of URL-safe characters.
pub fn is_safe_arm_id(arm_id: &str) -> bool {
    arm_id.starts_with("/subscriptions/")
        && arm_id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"/-_.()".contains(&byte))
}

/// Converts a managed identity's `federatedIdentityCredentials` records,
/// keyed by their Azure Resource Manager id. ARM nests issuer, subject and
/// audiences in `properties`, so they are lifted out first.
pub fn managed_identity_federated_credentials(records: &[Value]) -> Vec<Credential> {
    let flattened: Vec<Value> = records
        .iter()
        .map(|record| {
            let mut flat = record.clone();
            if let (Value::Object(fields), Some(Value::Object(properties))) =
                (&mut flat, record.get("properties"))
            {
                for (key, value) in properties {
                    fields.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
            flat
        })
        .collect();
    super::records::federated_credentials(&flattened)
}

/// One managed identity with its federated credential listing, or why that
/// listing failed.
pub type IdentityCredentials = (UserAssignedIdentity, Result<Vec<Value>, String>);

impl TenantInventory {
    /// Returns the principals of Azure RBAC assignments that match no
    /// listed identity and may be groups, sorted and without repeats.
    pub fn unmatched_rbac_principals(&self, assignments: &[RbacAssignment]) -> Vec<String> {
        let maybe_groups = assignments
            .iter()
            .filter(|assignment| {
                assignment
                    .principal_type
                    .as_deref()
                    .is_none_or(|kind| kind == "Group")
            })
            .map(|assignment| assignment.principal_id.as_str());
        self.unmatched_ids(maybe_groups)
    }

    /// Records Azure RBAC assignments as admin grants on their principals,
    /// and on each listed member of a group principal. An assignment whose
    /// principal the tenant does not have (a deleted object, or a principal
    /// of another tenant) is logged as a warning with the role, scope and
    /// assignment id, and counted in the log's summary line.
    pub fn add_rbac_assignments(
        &mut self,
        tenant_id: &str,
        listed: Result<Vec<RbacAssignment>, String>,
        groups: &HashMap<String, PrincipalLookup>,
    ) {
        let assignments = match listed {
            Ok(assignments) => assignments,
            Err(reason) => {
                let reason = format!("tenant {tenant_id}: {reason}");
                return self.incomplete(CollectionName::AzureRbac, reason);
            }
        };
        let index = self.positions_by_id();
        let mut failures = Vec::new();
        let mut orphans = 0;
        // Without both principal listings, an unmatched principal may be a
        // user or service principal that was not listed, not a deleted one.
        let principals_listed = [CollectionName::Users, CollectionName::ServicePrincipals]
            .iter()
            .all(|name| {
                self.collections
                    .get(name)
                    .is_some_and(Completeness::is_complete)
            });
        for assignment in &assignments {
            let grant = rbac_grant(assignment);
            if let Some(&position) = index.get(&assignment.principal_id) {
                self.identities[position].admin_grants.push(grant);
                continue;
            }
            match groups.get(&assignment.principal_id) {
                Some(PrincipalLookup::Group(group)) => {
                    self.add_rbac_group_grants(&grant, group, &index);
                }
                Some(PrincipalLookup::Failed(reason)) => failures.push(reason.clone()),
                Some(PrincipalLookup::NotFound) | None if principals_listed => {
                    orphans += 1;
                    warn_orphan(assignment);
                }
                Some(PrincipalLookup::NotFound) | None => {}
            }
        }
        if orphans > 0 {
            warn!(
                tenant = tenant_id,
                count = orphans,
                "Azure RBAC role assignments name principals that the tenant does not have; \
                 delete them with `az role assignment delete --ids`, since a restored object \
                 would get the role back"
            );
        }
        self.set_grant_completeness(CollectionName::AzureRbac, failures);
    }

    fn add_rbac_group_grants(
        &mut self,
        grant: &AdminGrant,
        group: &RoleGroup,
        index: &HashMap<String, usize>,
    ) {
        let grant = AdminGrant {
            group: Some(
                group
                    .display_name
                    .clone()
                    .unwrap_or_else(|| group.id.clone()),
            ),
            group_id: Some(group.id.clone()),
            ..grant.clone()
        };
        for member in &group.members {
            match index.get(&member.id) {
                Some(&position) => self.identities[position].admin_grants.push(grant.clone()),
                None => warn!(
                    group = %sanitize(&group.label()),
                    member = %sanitize(&member.id),
                    role = %grant.policy,
                    "skipping a member of a group with an Azure RBAC role: it is not a listed \
                     user or service principal"
                ),
            }
        }
    }

    /// Marks a grant collection complete, or incomplete when a principal
    /// listing is missing or a group could not be read.
    fn set_grant_completeness(&mut self, name: CollectionName, failures: Vec<String>) {
        let principal_listings: Vec<Option<&Completeness>> =
            [CollectionName::Users, CollectionName::ServicePrincipals]
                .iter()
                .map(|listing| self.collections.get(listing))
                .collect();
        if principal_listings
            .iter()
            .any(|listing| listing.is_none_or(|listing| !listing.is_complete()))
        {
            let reason = "role assignments cannot be matched to principals whose listing is \
                          missing or incomplete";
            self.incomplete(name, reason.to_string());
        } else if let Some(first) = failures.first() {
            let reason = format!("{first} ({} groups failed)", failures.len());
            self.incomplete(name, reason);
        } else {
            self.collections.insert(name, Completeness::Complete);
        }
    }

    /// Attaches each user-assigned managed identity's federated credentials
    /// to its managed identity record, found by principal id. An identity
    /// the service principal listing lacks (created since it ran) gets a
    /// record of its own. A failed credential listing leaves that identity
    /// uncompared; a failed identity listing, the whole collection.
    pub fn add_user_assigned_identities(
        &mut self,
        tenant_id: &str,
        listed: Result<Vec<IdentityCredentials>, String>,
    ) {
        let listed = match listed {
            Ok(listed) => listed,
            Err(reason) => {
                let reason = format!("tenant {tenant_id}: {reason}");
                return self.incomplete(CollectionName::UserAssignedIdentities, reason);
            }
        };
        let principals_listed = self
            .collections
            .get(&CollectionName::ServicePrincipals)
            .is_some_and(Completeness::is_complete);
        let mut failures = Vec::new();
        let mut unlisted = Vec::new();
        for (identity, credentials) in listed {
            let position = self.managed_identity_position(&identity);
            match credentials {
                Ok(records) => {
                    let found = managed_identity_federated_credentials(&records);
                    self.identities[position].credentials.extend(found);
                }
                Err(reason) => {
                    failures.push(reason);
                    unlisted.push(identity.principal_id.clone());
                }
            }
        }
        if !principals_listed {
            let reason = "federated credentials cannot be matched to managed identities while \
                          the service principal listing is incomplete";
            self.incomplete(CollectionName::UserAssignedIdentities, reason.to_string());
        } else if let Some(first) = failures.first() {
            let reason = format!(
                "tenant {tenant_id}: {first} ({} identities failed)",
                failures.len()
            );
            self.incomplete_for(CollectionName::UserAssignedIdentities, reason, unlisted);
        } else {
            self.collections.insert(
                CollectionName::UserAssignedIdentities,
                Completeness::Complete,
            );
        }
    }

    /// Returns the position of a user-assigned identity's record, adding
    /// one when the service principal listing has none.
    fn managed_identity_position(&mut self, identity: &UserAssignedIdentity) -> usize {
        let existing = self.identities.iter().position(|record| {
            record.kind == IdentityKind::AzureManagedIdentity && record.id == identity.principal_id
        });
        if let Some(position) = existing {
            return position;
        }
        warn!(
            identity = %sanitize(&identity.arm_id),
            principal = %sanitize(&identity.principal_id),
            "a user-assigned managed identity has no service principal in the listing; \
             recording it from Azure Resource Manager"
        );
        let mut record = Identity::new(
            &identity.principal_id,
            IdentityKind::AzureManagedIdentity,
            &identity.name,
        );
        let attributes = [
            (attribute::MANAGED_IDENTITY, Some("user_assigned")),
            (attribute::RESOURCE_ID, Some(identity.arm_id.as_str())),
            (attribute::APP_ID, identity.client_id.as_deref()),
        ];
        for (key, value) in attributes {
            if let Some(value) = value {
                record.attributes.insert(key.to_string(), value.to_string());
            }
        }
        self.identities.push(record);
        self.identities.len() - 1
    }
}

/// Logs an assignment whose principal the tenant does not have.
fn warn_orphan(assignment: &RbacAssignment) {
    warn!(
        assignment = %sanitize(&assignment.id),
        principal = %sanitize(&assignment.principal_id),
        principal_type = %sanitize(assignment.principal_type.as_deref().unwrap_or("unknown")),
        role = assignment.role_name,
        scope = %sanitize(&assignment.scope),
        "an Azure RBAC role assignment names a principal that is neither a listed user or \
         service principal nor a group Graph finds: a deleted object or a principal of \
         another tenant; it is not recorded on any identity"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn assignment(role: &str, scope: &str) -> Value {
        json!({
            "id": format!("{scope}/providers/Microsoft.Authorization/roleAssignments/a1"),
            "properties": {
                "roleDefinitionId": format!("/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/{role}"),
                "principalId": "P1",
                "principalType": "ServicePrincipal",
                "scope": scope,
            }
        })
    }

    #[test]
    fn keeps_four_roles_at_tenant_level_scopes() {
        let subscription = "/subscriptions/5b5c0000-0000-4000-8000-000000000001";
        let records = vec![
            assignment("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", subscription),
            assignment(
                "B24988AC-6180-42A0-AB88-20F7382DD24C",
                "/providers/Microsoft.Management/managementGroups/corp",
            ),
            assignment("18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", "/"),
            // Reader is not kept, nor a resource group scope.
            assignment("acdd72a7-3385-48ef-bd42-f606fba81ae7", subscription),
            assignment(
                "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
                &format!("{subscription}/resourceGroups/rg"),
            ),
        ];
        let kept = rbac_assignments(&records);
        let roles: Vec<&str> = kept.iter().map(|a| a.role_name).collect();
        assert_eq!(
            roles,
            vec!["Owner", "Contributor", "User Access Administrator"]
        );
        assert_eq!(kept[0].principal_id, "p1");
        let grant = rbac_grant(&kept[0]);
        assert_eq!(grant.policy, format!("Owner at {subscription}"));
        assert!(grant.reason.contains("8e3af657"));
    }

    #[test]
    fn flattened_cli_records_are_read() {
        let records = vec![json!({
            "id": "/subscriptions/5b5c0000-0000-4000-8000-000000000001/providers/Microsoft.Authorization/roleAssignments/a2",
            "principalId": "p2",
            "principalType": "User",
            "roleDefinitionId": "/subscriptions/5b5c0000-0000-4000-8000-000000000001/providers/Microsoft.Authorization/roleDefinitions/f58310d9-a9f6-439a-9e8d-f62e7b41a168",
            "scope": "/subscriptions/5b5c0000-0000-4000-8000-000000000001",
            "condition": "@Resource[x] == 'y'",
        })];
        let kept = rbac_assignments(&records);
        assert_eq!(kept.len(), 1);
        assert!(kept[0].conditional);
        assert!(rbac_grant(&kept[0]).reason.ends_with("with a condition"));
    }

    #[test]
    fn unsafe_arm_ids_are_rejected() {
        assert!(is_safe_arm_id(
            "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mi-1"
        ));
        assert!(!is_safe_arm_id("/subscriptions/s/x?y=1"));
        assert!(!is_safe_arm_id("https://evil.example/subscriptions/s"));
    }
}
