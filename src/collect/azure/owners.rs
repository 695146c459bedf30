//! Owners of app registrations and service principals: an owner can add a
//! credential to what it owns and sign in as it.
//!
//! The API collector requests owners from Graph with `$expand=owners` on the
//! application and service principal listings. Graph returns at most 20
//! expanded objects of a directory relationship and no link to the rest
//! (Microsoft Graph known issues, "$expand on relationships of directory
//! objects", updated 2023-06-01). So an object with 20 expanded owners, or
//! without the `owners` field, has its owners listed again from
//! `/{collection}/{id}/owners`, which pages.

use std::collections::HashMap;

use serde_json::Value;
use tracing::warn;

use super::inventory::TenantInventory;
use super::records::text;
use crate::model::azure_attribute as attribute;
use crate::model::{CollectionName, Completeness, IdentityKind, Owner};
use crate::report::sanitize;

/// The most related objects Graph returns for one `$expand` of a directory
/// relationship; a list this long may be cut short.
pub const EXPANDED_OWNERS_LIMIT: usize = 20;

/// The owners read for one app registration or service principal: the
/// listing's records, or why they could not be listed.
pub type OwnerListing = (String, Result<Vec<Value>, String>);

/// Splits listing records by what their expanded `owners` field allows:
/// listings taken as they are, and the object ids whose owners must be
/// listed on their own because the field is missing or may be cut short.
pub fn split_expanded(records: &[Value]) -> (Vec<OwnerListing>, Vec<String>) {
    let mut complete = Vec::new();
    let mut to_list = Vec::new();
    for record in records {
        let Some(id) = record.get("id").and_then(Value::as_str) else {
            continue;
        };
        match record.get("owners").and_then(Value::as_array) {
            Some(owners) if owners.len() < EXPANDED_OWNERS_LIMIT => {
                complete.push((id.to_string(), Ok(owners.clone())));
            }
            _ => to_list.push(id.to_string()),
        }
    }
    (complete, to_list)
}

/// Converts owner records (users, service principals or other directory
/// objects) to owners, skipping those without an id.
pub fn owners(records: &[Value]) -> Vec<Owner> {
    records
        .iter()
        .filter_map(|record| {
            let id = text(record, "id")?;
            Some(Owner {
                id: id.to_string(),
                kind: owner_kind(record),
                name: text(record, "userPrincipalName")
                    .or_else(|| text(record, "displayName"))
                    .map(str::to_string),
                user_type: text(record, "userType").map(str::to_string),
            })
        })
        .collect()
}

/// Returns `user`, `service_principal` or the short `@odata.type` of
/// another object, guessing from the fields when the type is missing.
fn owner_kind(record: &Value) -> Option<String> {
    let kind = match text(record, "@odata.type") {
        Some("#microsoft.graph.user") => "user",
        Some("#microsoft.graph.servicePrincipal") => "service_principal",
        Some(other) => return Some(other.trim_start_matches("#microsoft.graph.").to_string()),
        None if record.get("userPrincipalName").is_some() => "user",
        None if record.get("servicePrincipalType").is_some() => "service_principal",
        None => return None,
    };
    Some(kind.to_string())
}

impl TenantInventory {
    /// Attaches owner listings to their app registrations and service
    /// principals, and fills each owner's user type and name from the user
    /// listing. A failed listing leaves its object's owners uncompared;
    /// without both identity listings, the whole collection is.
    pub fn add_owners(&mut self, listings: Vec<OwnerListing>) {
        let lists_failed = [
            CollectionName::Applications,
            CollectionName::ServicePrincipals,
        ]
        .iter()
        .any(|name| {
            !self
                .collections
                .get(name)
                .is_some_and(Completeness::is_complete)
        });
        let mut failures = Vec::new();
        let mut unlisted = Vec::new();
        let positions = self.owned_positions();
        for (object_id, listed) in listings {
            match (listed, positions.get(&object_id)) {
                (Ok(records), Some(&position)) => {
                    self.identities[position].owners = owners(&records);
                }
                (Ok(_), None) => {}
                (Err(reason), _) => {
                    failures.push(reason);
                    unlisted.push(object_id);
                }
            }
        }
        self.fill_owner_details();

        if lists_failed {
            let reason = "owners cannot be vouched for while the application or service \
                          principal listing is incomplete";
            self.incomplete(CollectionName::Owners, reason.to_string());
        } else if let Some(first) = failures.first() {
            let reason = format!("{first} ({} objects failed)", failures.len());
            self.incomplete_for(CollectionName::Owners, reason, unlisted);
        } else {
            self.collections
                .insert(CollectionName::Owners, Completeness::Complete);
        }
    }

    /// Attaches owner listings read from an export, each keyed by its
    /// object's id. Objects without a listing keep their previous owners
    /// (the collection is incomplete, naming them). Returns the keys that
    /// match no app registration or service principal.
    pub fn add_exported_owners(&mut self, listings: Vec<(String, Vec<Value>)>) -> Vec<String> {
        if listings.is_empty() {
            self.not_collected(
                CollectionName::Owners,
                "the export has no owner listing (one owners-<object id>.json file per app \
                 registration and service principal)",
            );
            return Vec::new();
        }
        let positions = self.owned_positions();
        let mut listed = vec![false; self.identities.len()];
        let mut unknown = Vec::new();
        for (object_id, records) in listings {
            match positions.get(&object_id) {
                Some(&position) => {
                    listed[position] = true;
                    self.identities[position].owners.extend(owners(&records));
                }
                None => unknown.push(object_id),
            }
        }
        self.fill_owner_details();

        let missing: Vec<String> = positions
            .values()
            .filter(|position| !listed[**position])
            .map(|position| self.identities[*position].id.clone())
            .collect();
        if missing.is_empty() {
            self.collections
                .insert(CollectionName::Owners, Completeness::Complete);
        } else {
            let reason = format!(
                "{} app registrations or service principals have no owners-<object id>.json \
                 file in the export, among them {}",
                missing.len(),
                missing
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            self.incomplete_for(CollectionName::Owners, reason, missing);
        }
        unknown.sort();
        unknown
    }

    /// Returns the position of each app registration and service principal, by object id.
    fn owned_positions(&self) -> HashMap<String, usize> {
        self.identities
            .iter()
            .enumerate()
            .filter(|(_, identity)| {
                matches!(
                    identity.kind,
                    IdentityKind::AzureApplication
                        | IdentityKind::AzureServicePrincipal
                        | IdentityKind::AzureManagedIdentity
                )
            })
            .map(|(position, identity)| (identity.id.clone(), position))
            .collect()
    }

    /// Gives each owner that is a listed user its user type and principal
    /// name, which `$expand` does not return.
    fn fill_owner_details(&mut self) {
        let users: HashMap<String, (String, Option<String>)> = self
            .identities
            .iter()
            .filter(|identity| identity.kind == IdentityKind::AzureUser)
            .map(|user| {
                let user_type = user.attributes.get(attribute::USER_TYPE).cloned();
                (user.id.clone(), (user.name.clone(), user_type))
            })
            .collect();
        for identity in &mut self.identities {
            for owner in &mut identity.owners {
                let Some((name, user_type)) = users.get(&owner.id) else {
                    continue;
                };
                owner.name = Some(name.clone());
                owner.user_type = owner.user_type.take().or_else(|| user_type.clone());
                if owner.kind.is_none() {
                    owner.kind = Some("user".to_string());
                }
            }
        }
    }
}

/// Logs owner listings of an export that name no listed object.
pub fn warn_unknown_owner_files(unknown: &[String]) {
    for object_id in unknown {
        warn!(
            object = %sanitize(object_id),
            "skipping an owner listing whose object is neither a listed app registration nor a \
             service principal"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expanded_owners_at_limit_are_listed_again() {
        let full: Vec<Value> = (0..EXPANDED_OWNERS_LIMIT)
            .map(|number| json!({"id": format!("u{number}")}))
            .collect();
        let records = vec![
            json!({"id": "a1", "owners": [{"@odata.type": "#microsoft.graph.user", "id": "u1"}]}),
            json!({"id": "a2", "owners": full}),
            json!({"id": "a3"}),
            json!({"id": "a4", "owners": []}),
        ];
        let (complete, to_list) = split_expanded(&records);
        let complete_ids: Vec<&str> = complete.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(complete_ids, vec!["a1", "a4"]);
        assert_eq!(to_list, vec!["a2".to_string(), "a3".to_string()]);
    }

    #[test]
    fn owner_kinds_come_from_type_or_fields() {
        let records = vec![
            json!({"@odata.type": "#microsoft.graph.servicePrincipal", "id": "s1", "displayName": "ci"}),
            json!({"id": "u1", "userPrincipalName": "eve_x.com#EXT#@t.onmicrosoft.com", "userType": "Guest"}),
            json!({"@odata.type": "#microsoft.graph.device", "id": "d1"}),
            json!({"displayName": "no id"}),
        ];
        let converted = owners(&records);
        let kinds: Vec<Option<&str>> = converted
            .iter()
            .map(|owner| owner.kind.as_deref())
            .collect();
        assert_eq!(
            kinds,
            vec![Some("service_principal"), Some("user"), Some("device")]
        );
        assert_eq!(converted[1].user_type.as_deref(), Some("Guest"));
        assert_eq!(converted[0].name.as_deref(), Some("ci"));
    }
}
