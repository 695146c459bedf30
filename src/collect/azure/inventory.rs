//! A tenant's records being assembled from the listings that succeeded,
//! shared by the API collector and the offline export reader.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use tracing::warn;

use super::records::{self, Converted};
use crate::collect::Collected;
use crate::model::{CollectionName, Completeness, Identity, IdentityKind, Provider, Snapshot};
use crate::report::sanitize;

/// A tenant's records being assembled from the listings that succeeded.
#[derive(Debug, Default)]
pub struct TenantInventory {
    identities: Vec<Identity>,
    collections: BTreeMap<CollectionName, Completeness>,
}

impl TenantInventory {
    pub fn incomplete(&mut self, name: CollectionName, reason: String) {
        warn!(collection = %name, reason = %sanitize(&reason), "listing incomplete");
        self.collections.insert(
            name,
            Completeness::Incomplete {
                reason,
                kept_previous: false,
                unlisted: Vec::new(),
            },
        );
    }

    pub fn not_collected(&mut self, name: CollectionName, reason: &str) {
        self.collections.insert(
            name,
            Completeness::NotCollected {
                reason: reason.to_string(),
                kept_previous: false,
            },
        );
    }

    /// Adds an identity listing, or marks it incomplete with the failure.
    pub fn add_listing(&mut self, name: CollectionName, listed: Result<Converted, String>) {
        match listed {
            Ok(converted) => {
                if converted.dropped > 0 {
                    warn!(collection = %name, dropped = converted.dropped, "records without an id were skipped");
                }
                self.identities.extend(converted.identities);
                self.collections.insert(name, Completeness::Complete);
            }
            Err(reason) => self.incomplete(name, reason),
        }
    }

    /// Attaches each app's federated credentials; any failure marks the collection incomplete.
    pub fn add_federated_credentials(
        &mut self,
        results: Vec<(String, Result<Vec<Value>, String>)>,
    ) {
        let mut failures = Vec::new();
        let apps: HashMap<String, usize> = self
            .identities
            .iter()
            .enumerate()
            .filter(|(_, identity)| identity.kind == IdentityKind::AzureApplication)
            .map(|(index, identity)| (identity.id.clone(), index))
            .collect();
        for (app_id, listed) in results {
            match (listed, apps.get(&app_id)) {
                (Ok(found), Some(&index)) => {
                    self.identities[index]
                        .credentials
                        .extend(records::federated_credentials(&found));
                }
                (Ok(_), None) => {}
                (Err(reason), _) => failures.push(reason),
            }
        }
        match failures.first() {
            None => {
                self.collections
                    .insert(CollectionName::FederatedCredentials, Completeness::Complete);
            }
            Some(first) => {
                let reason = format!("{first} ({} apps failed)", failures.len());
                self.incomplete(CollectionName::FederatedCredentials, reason);
            }
        }
    }

    /// Attaches federated credential listings read from an export, each
    /// keyed by its app's object id or appId. Apps without a listing keep
    /// their previous credentials (the collection is incomplete, naming
    /// them). Returns the keys that match no app.
    pub fn add_exported_federated_credentials(
        &mut self,
        listings: impl IntoIterator<Item = (String, Vec<Value>)>,
    ) -> Vec<String> {
        let mut apps: HashMap<String, usize> = HashMap::new();
        for (position, identity) in self.identities.iter().enumerate() {
            if identity.kind != IdentityKind::AzureApplication {
                continue;
            }
            apps.insert(identity.id.clone(), position);
            if let Some(app_id) = identity
                .attributes
                .get(crate::model::azure_attribute::APP_ID)
            {
                apps.insert(app_id.clone(), position);
            }
        }

        let mut listed = vec![false; self.identities.len()];
        let mut unknown = Vec::new();
        for (key, found) in listings {
            let Some(&position) = apps.get(&key) else {
                unknown.push(key);
                continue;
            };
            listed[position] = true;
            let credentials = &mut self.identities[position].credentials;
            for credential in records::federated_credentials(&found) {
                if !credentials
                    .iter()
                    .any(|seen| seen.kind == credential.kind && seen.id == credential.id)
                {
                    credentials.push(credential);
                }
            }
        }

        let unlisted: Vec<&Identity> = self
            .identities
            .iter()
            .enumerate()
            .filter(|(position, identity)| {
                identity.kind == IdentityKind::AzureApplication && !listed[*position]
            })
            .map(|(_, identity)| identity)
            .collect();
        if unlisted.is_empty() {
            self.collections
                .insert(CollectionName::FederatedCredentials, Completeness::Complete);
        } else {
            let names: Vec<&str> = unlisted
                .iter()
                .take(3)
                .map(|app| app.name.as_str())
                .collect();
            let reason = format!(
                "{} applications have no federated credential file in the export, among them {}",
                unlisted.len(),
                names.join(", ")
            );
            warn!(collection = %CollectionName::FederatedCredentials, reason = %sanitize(&reason), "listing incomplete");
            let unlisted = unlisted.iter().map(|app| app.id.clone()).collect();
            self.collections.insert(
                CollectionName::FederatedCredentials,
                Completeness::Incomplete {
                    reason,
                    kept_previous: false,
                    unlisted,
                },
            );
        }
        unknown.sort();
        unknown.dedup();
        unknown
    }

    /// Records privileged role assignments as admin grants on their principals.
    pub fn add_role_assignments(&mut self, listed: Result<Vec<records::RoleAssignment>, String>) {
        let assignments = match listed {
            Ok(assignments) => assignments,
            Err(reason) => return self.incomplete(CollectionName::Privileges, reason),
        };
        let index: HashMap<String, usize> = self
            .identities
            .iter()
            .enumerate()
            .map(|(position, identity)| (identity.id.clone(), position))
            .collect();
        // An assignment to a principal whose listing failed has no record
        // to sit on, so the grants cannot be vouched for.
        let principal_listings: Vec<Completeness> =
            [CollectionName::Users, CollectionName::ServicePrincipals]
                .iter()
                .map(|name| {
                    self.collections
                        .get(name)
                        .cloned()
                        .unwrap_or(Completeness::Complete)
                })
                .collect();
        for assignment in &assignments {
            // NOTE: assignments to groups (role-assignable groups) have no
            // identity record here and are not reported yet.
            if let Some(&position) = index.get(&assignment.principal_id) {
                self.identities[position]
                    .admin_grants
                    .push(records::grant_of(assignment));
            }
        }
        let reason = "role assignments cannot be matched to principals whose listing is missing";
        if principal_listings
            .iter()
            .any(|listing| matches!(listing, Completeness::Incomplete { .. }))
        {
            self.incomplete(CollectionName::Privileges, reason.to_string());
        } else if principal_listings.iter().all(Completeness::is_complete) {
            self.collections
                .insert(CollectionName::Privileges, Completeness::Complete);
        } else {
            self.not_collected(CollectionName::Privileges, reason);
        }
    }

    pub fn into_collected(self, tenant_id: &str, api_calls: u64) -> Collected {
        Collected {
            snapshot: Snapshot::new(
                Provider::Azure,
                tenant_id,
                self.collections,
                self.identities,
            ),
            api_calls,
        }
    }
}
