//! AWS IAM: one scope per 12-digit account, collected from the API or
//! from the JSON that the AWS CLI exports.

pub mod api;
pub mod details;
pub mod export;
mod export_access;
pub mod identity_center;
pub mod organizations;
pub mod policy;
pub mod providers;

use std::collections::{BTreeMap, HashMap};

use crate::collect::Collected;
use crate::model::{
    CollectionName, Completeness, Credential, CredentialKind, Identity, IdentityKind, Provider,
    Snapshot,
};
use details::AuthorizationDetails;

/// Returns true for a 12-digit AWS account id.
pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Id recorded for a user's one console password (login profile).
pub const CONSOLE_PASSWORD_ID: &str = "console-password";

/// One access key's metadata; the secret is never read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyRecord {
    /// The owning user's name.
    pub user_name: String,
    /// The key id (`AKIA...`).
    pub access_key_id: String,
    /// `Active`, `Inactive` or `Expired`.
    pub status: Option<String>,
    /// Creation time, RFC 3339 in UTC.
    pub created: Option<String>,
}

/// An account's records being assembled from the collections that succeeded.
#[derive(Debug)]
pub struct AccountInventory {
    account_id: String,
    identities: Vec<Identity>,
    collections: BTreeMap<CollectionName, Completeness>,
    details_failed: bool,
}

impl AccountInventory {
    /// Starts an inventory in which nothing has been collected yet.
    pub fn new(account_id: String) -> AccountInventory {
        let collections = CollectionName::AWS
            .iter()
            .map(|name| {
                let missing = Completeness::NotCollected {
                    reason: format!("{name} were not collected"),
                    kept_previous: false,
                };
                (*name, missing)
            })
            .collect();
        AccountInventory {
            account_id,
            identities: Vec::new(),
            collections,
            details_failed: false,
        }
    }

    /// Records users, roles and admin grants from complete authorization details.
    pub fn set_details(&mut self, details: AuthorizationDetails) {
        let built = details.build_identities();
        self.identities = built.identities;
        let listing = match built.listing_problems.first() {
            None => Completeness::Complete,
            Some(first) => Completeness::Incomplete {
                reason: format!(
                    "the listing is inconsistent ({} records dropped); first: {first}",
                    built.listing_problems.len()
                ),
                kept_previous: false,
                unlisted: Vec::new(),
            },
        };
        self.collections
            .insert(CollectionName::Users, listing.clone());
        self.collections
            .insert(CollectionName::InstanceProfiles, listing.clone());
        // Trust is compared with the roles, so a trust policy that cannot be
        // read leaves the roles incomplete rather than empty.
        let roles = match (&listing, built.trust_problems.first()) {
            (Completeness::Complete, Some(first)) => Completeness::Incomplete {
                reason: format!(
                    "{} role trust policies could not be read; first: {first}",
                    built.trust_problems.len()
                ),
                kept_previous: false,
                unlisted: Vec::new(),
            },
            _ => listing,
        };
        self.collections.insert(CollectionName::Roles, roles);

        let privileges = if built.privilege_problems.is_empty() {
            Completeness::Complete
        } else {
            let count = built.privilege_problems.len();
            Completeness::Incomplete {
                reason: format!(
                    "{count} policies could not be evaluated; first: {}",
                    built.privilege_problems[0]
                ),
                kept_previous: false,
                unlisted: Vec::new(),
            }
        };
        self.collections
            .insert(CollectionName::Privileges, privileges);
    }

    /// Marks every collection that depends on the authorization details as incomplete.
    pub fn fail_details(&mut self, reason: &str) {
        self.details_failed = true;
        for name in CollectionName::AWS {
            let completeness = match name {
                CollectionName::Users
                | CollectionName::Roles
                | CollectionName::Privileges
                | CollectionName::InstanceProfiles => Completeness::Incomplete {
                    reason: reason.to_string(),
                    kept_previous: false,
                    unlisted: Vec::new(),
                },
                _ => Completeness::NotCollected {
                    reason: "not listed because the user listing failed".to_string(),
                    kept_previous: false,
                },
            };
            self.collections.insert(name, completeness);
        }
    }

    /// Returns true when the authorization details could not be read. The
    /// account then counts as not scanned, so the other listings are skipped.
    pub fn details_failed(&self) -> bool {
        self.details_failed
    }

    /// Returns true when the user listing was read, even if some of its
    /// records had to be dropped; the listed users' credentials can be read.
    pub fn has_users(&self) -> bool {
        !matches!(
            self.collections[&CollectionName::Users],
            Completeness::NotCollected { .. }
        ) && !self.details_failed
    }

    /// Returns the names of every user, for the per-user credential calls.
    pub fn user_names(&self) -> Vec<String> {
        self.users().map(|user| user.name.clone()).collect()
    }

    fn users(&self) -> impl Iterator<Item = &Identity> {
        self.identities
            .iter()
            .filter(|identity| identity.kind == IdentityKind::AwsUser)
    }

    /// Returns the index of each user by name.
    fn user_index(&self) -> HashMap<String, usize> {
        self.identities
            .iter()
            .enumerate()
            .filter(|(_, identity)| identity.kind == IdentityKind::AwsUser)
            .map(|(index, identity)| (identity.name.clone(), index))
            .collect()
    }

    /// Attaches access keys to their users; `failure` marks the collection incomplete.
    pub fn set_access_keys(&mut self, keys: Vec<AccessKeyRecord>, failure: Option<String>) {
        let index = self.user_index();
        for key in keys {
            let Some(&position) = index.get(&key.user_name) else {
                tracing::warn!(user = ?key.user_name, "skipping an access key of a user not in the user listing");
                continue;
            };
            self.identities[position].credentials.push(Credential {
                kind: CredentialKind::AccessKey,
                id: key.access_key_id,
                status: key.status,
                created: key.created,
                expires: None,
                display_name: None,
                detail: None,
            });
        }
        self.collections
            .insert(CollectionName::AccessKeys, api::completeness_from(failure));
    }

    /// Attaches console passwords (user name to creation time) to their users.
    pub fn set_console_passwords(
        &mut self,
        passwords: BTreeMap<String, Option<String>>,
        failure: Option<String>,
    ) {
        let index = self.user_index();
        for (user_name, created) in passwords {
            let Some(&position) = index.get(&user_name) else {
                continue;
            };
            self.identities[position].credentials.push(Credential {
                kind: CredentialKind::ConsolePassword,
                id: CONSOLE_PASSWORD_ID.to_string(),
                status: None,
                created,
                expires: None,
                display_name: None,
                detail: None,
            });
        }
        self.collections.insert(
            CollectionName::ConsolePasswords,
            api::completeness_from(failure),
        );
    }

    /// Records which users an incomplete collection missed, by name. A
    /// failure that names no user (an empty name) leaves the whole
    /// collection in doubt, so nothing is recorded then.
    pub fn mark_unlisted(&mut self, name: CollectionName, user_names: &[String]) {
        if user_names.is_empty() || user_names.iter().any(String::is_empty) {
            return;
        }
        let ids: Vec<String> = self
            .users()
            .filter(|user| user_names.contains(&user.name))
            .map(|user| user.id.clone())
            .collect();
        if let Some(Completeness::Incomplete { unlisted, .. }) = self.collections.get_mut(&name) {
            *unlisted = ids;
        }
    }

    /// Adds the records of a collection listed on its own (identity
    /// providers, Identity Center), or marks it incomplete with the reason.
    /// A record listed twice, as pages exported twice can be, is kept once.
    pub fn set_listed(&mut self, name: CollectionName, listing: Result<Vec<Identity>, String>) {
        match listing {
            Ok(identities) => {
                let mut seen = std::collections::HashSet::new();
                let unique = identities
                    .into_iter()
                    .filter(|identity| seen.insert((identity.id.clone(), identity.kind)));
                self.identities.extend(unique);
                self.collections.insert(name, Completeness::Complete);
            }
            Err(reason) => {
                tracing::warn!(account = %self.account_id, collection = %name, reason = %crate::report::sanitize(&reason), "listing incomplete");
                self.collections
                    .insert(name, api::completeness_from(Some(reason)));
            }
        }
    }

    /// Sets a collection's completeness directly (for offline input).
    pub fn set_completeness(&mut self, name: CollectionName, completeness: Completeness) {
        self.collections.insert(name, completeness);
    }

    /// Finishes the inventory as a snapshot with the scan's call count.
    pub fn into_collected(self, api_calls: u64) -> Collected {
        Collected {
            snapshot: Snapshot::new(
                Provider::Aws,
                self.account_id,
                self.collections,
                self.identities,
            ),
            api_calls,
        }
    }
}
