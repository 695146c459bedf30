//! A tenant's records being assembled from the listings that succeeded,
//! shared by the API collector and the offline export reader.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::Value;
use tracing::warn;

use super::records::{self, Converted};
use crate::collect::Collected;
use crate::model::{CollectionName, Completeness, Identity, IdentityKind, Provider, Snapshot};
use crate::report::sanitize;

/// The result of looking up the principal of a privileged role assignment
/// that is not a listed user or service principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalLookup {
    /// A group, whose members each hold the role.
    Group(records::RoleGroup),
    /// Graph has no group with that id (404), so the assignment most likely
    /// names a deleted object.
    NotFound,
    /// The group or its members could not be read, for this reason, which names the group.
    Failed(String),
}

/// A tenant's records being assembled from the listings that succeeded.
#[derive(Debug, Default)]
pub struct TenantInventory {
    pub(super) identities: Vec<Identity>,
    pub(super) collections: BTreeMap<CollectionName, Completeness>,
}

impl TenantInventory {
    /// Marks a collection incomplete with the reason, and logs it.
    pub fn incomplete(&mut self, name: CollectionName, reason: String) {
        self.incomplete_for(name, reason, Vec::new());
    }

    /// Marks a collection incomplete for the `unlisted` identities only
    /// (for all of them when the list is empty), and logs it.
    pub(super) fn incomplete_for(
        &mut self,
        name: CollectionName,
        reason: String,
        unlisted: Vec<String>,
    ) {
        warn!(collection = %name, reason = %sanitize(&reason), "listing incomplete");
        self.collections.insert(
            name,
            Completeness::Incomplete {
                reason,
                kept_previous: false,
                unlisted,
            },
        );
    }

    /// Marks a collection as not collected, for a source that is missing.
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
                self.identities.extend(converted.identities);
                self.collections.insert(name, Completeness::Complete);
                // A record without an id represents an object that would
                // otherwise read as deleted.
                if converted.dropped > 0 {
                    let reason = format!(
                        "{} records have no id, so the objects they represent are unknown",
                        converted.dropped
                    );
                    self.incomplete(name, reason);
                }
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
            let unlisted = unlisted.iter().map(|app| app.id.clone()).collect();
            self.incomplete_for(CollectionName::FederatedCredentials, reason, unlisted);
        }
        unknown.sort();
        unknown.dedup();
        unknown
    }

    /// Returns true when users and service principals were both listed in
    /// full, so that a principal id matching neither is something else.
    pub fn principals_listed(&self) -> bool {
        [CollectionName::Users, CollectionName::ServicePrincipals]
            .iter()
            .all(|name| {
                self.collections
                    .get(name)
                    .is_some_and(Completeness::is_complete)
            })
    }

    /// Returns the principal ids of role assignments that match no listed
    /// identity, sorted and without repeats: groups, or deleted objects.
    pub fn unmatched_principals(&self, assignments: &[records::RoleAssignment]) -> Vec<String> {
        self.unmatched_ids(
            assignments
                .iter()
                .map(|assignment| assignment.principal_id.as_str()),
        )
    }

    /// Returns the position of each identity, by id.
    pub(super) fn positions_by_id(&self) -> HashMap<String, usize> {
        self.identities
            .iter()
            .enumerate()
            .map(|(position, identity)| (identity.id.clone(), position))
            .collect()
    }

    /// Returns the ids that match no listed identity, sorted and without repeats.
    pub(super) fn unmatched_ids<'a>(&self, ids: impl Iterator<Item = &'a str>) -> Vec<String> {
        let known: HashSet<&str> = self
            .identities
            .iter()
            .map(|identity| identity.id.as_str())
            .collect();
        let unmatched: BTreeSet<String> = ids
            .filter(|id| !known.contains(id))
            .map(str::to_string)
            .collect();
        unmatched.into_iter().collect()
    }

    /// Records privileged role assignments as admin grants on their
    /// principals. An assignment to a group gives a grant to each member
    /// that is a listed identity. `groups` maps each principal in
    /// [`TenantInventory::unmatched_principals`] to what it turned out to be.
    ///
    /// Privileges are complete only when users and service principals are,
    /// and every group was read. A principal that Graph does not find is
    /// logged and skipped.
    pub fn add_role_assignments(
        &mut self,
        listed: Result<Vec<records::RoleAssignment>, String>,
        groups: &HashMap<String, PrincipalLookup>,
    ) {
        let assignments = match listed {
            Ok(assignments) => assignments,
            Err(reason) => return self.incomplete(CollectionName::Privileges, reason),
        };
        let index = self.positions_by_id();
        let mut failures: Vec<String> = Vec::new();
        for assignment in &assignments {
            if let Some(&position) = index.get(&assignment.principal_id) {
                self.identities[position]
                    .admin_grants
                    .push(records::grant_of(assignment));
                continue;
            }
            let failure = match groups.get(&assignment.principal_id) {
                Some(PrincipalLookup::Group(group)) => {
                    self.add_group_grants(assignment, group, &index);
                    continue;
                }
                Some(PrincipalLookup::NotFound) => {
                    warn!(
                        assignment = %sanitize(&assignment.id),
                        principal = %sanitize(&assignment.principal_id),
                        role = assignment.role_name,
                        "skipping a role assignment: its principal is neither a listed user or \
                         service principal nor a group that Graph finds (404), so it may be a \
                         deleted object"
                    );
                    continue;
                }
                Some(PrincipalLookup::Failed(reason)) => reason.clone(),
                None => format!(
                    "role assignment {} ({}) names principal {}, which is not a listed user or \
                     service principal and was not read as a group",
                    assignment.id, assignment.role_name, assignment.principal_id
                ),
            };
            if !failures.contains(&failure) {
                failures.push(failure);
            }
        }
        self.set_privileges_completeness(failures);
    }

    /// Gives the assignment's grant to each member of its group.
    fn add_group_grants(
        &mut self,
        assignment: &records::RoleAssignment,
        group: &records::RoleGroup,
        index: &HashMap<String, usize>,
    ) {
        let grant = records::group_grant_of(assignment, group);
        for member in &group.members {
            match index.get(&member.id) {
                Some(&position) => self.identities[position].admin_grants.push(grant.clone()),
                // A user created after the user listing ended lands here too,
                // and the next scan finds it with its grant.
                None => warn!(
                    group = %sanitize(&group.label()),
                    member = %sanitize(&member.id),
                    member_type = %sanitize(member.odata_type.as_deref().unwrap_or("unknown")),
                    role = assignment.role_name,
                    "skipping a member of a group with a privileged role: it is not a listed \
                     user or service principal"
                ),
            }
        }
    }

    /// Marks Privileges complete, or incomplete when a principal listing is
    /// missing or a group could not be read.
    fn set_privileges_completeness(&mut self, group_failures: Vec<String>) {
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
        let reason = "role assignments cannot be matched to principals whose listing is missing";
        if principal_listings
            .iter()
            .any(|listing| matches!(listing, Completeness::Incomplete { .. }))
        {
            self.incomplete(CollectionName::Privileges, reason.to_string());
        } else if !principal_listings.iter().all(Completeness::is_complete) {
            self.not_collected(CollectionName::Privileges, reason);
        } else if let Some(first) = group_failures.first() {
            let reason = match group_failures.len() {
                1 => first.clone(),
                count => format!("{first} (and {} more groups)", count - 1),
            };
            self.incomplete(CollectionName::Privileges, reason);
        } else {
            self.collections
                .insert(CollectionName::Privileges, Completeness::Complete);
        }
    }

    /// Builds the tenant's snapshot from what was added.
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
