//! The diff: two snapshots of one scope in, a list of changes out.
//!
//! A collection is compared only when the old side has complete records
//! (listed in full then, or kept from the last complete listing) and the new
//! side was listed in full now. Everything else is reported as not compared.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::model::{
    AdminGrant, CollectionName, Credential, CredentialKind, Identity, IdentityKind, Owner,
    Provider, Snapshot, TrustPrincipal,
};

/// Kind of change to one identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new identity.
    IdentityAdded,
    /// An identity that is gone.
    IdentityRemoved,
    /// A name that returned with a new immutable id.
    IdentityRecreated {
        /// The id the name had before.
        previous_id: String,
    },
    /// The name changed (same id).
    Renamed {
        /// Old name.
        from: String,
    },
    /// The IAM path changed.
    PathChanged {
        /// Old path.
        from: Option<String>,
    },
    /// The identity was enabled or disabled.
    EnabledChanged {
        /// Old state.
        from: Option<bool>,
    },
    /// A provider-specific attribute changed, such as an Entra user's type.
    AttributeChanged {
        /// The attribute's name.
        key: String,
        /// Old value; absent when the attribute was not set.
        from: Option<String>,
        /// New value; absent when the attribute is gone.
        to: Option<String>,
    },
    /// A principal was added to or removed from a role's trust policy. The
    /// diff emits one change per principal, so that each new way to assume
    /// the role is judged on its own: one of the lists contains that principal
    /// and the other is empty.
    TrustChanged {
        /// Principals now trusted that were not before.
        added: Vec<TrustPrincipal>,
        /// Principals no longer trusted.
        removed: Vec<TrustPrincipal>,
    },
    /// A new credential on an existing identity.
    CredentialAdded {
        /// The new credential.
        credential: Credential,
    },
    /// A credential that is gone.
    CredentialRemoved {
        /// The removed credential.
        credential: Credential,
    },
    /// A credential's status changed (for example Inactive to Active).
    CredentialStatusChanged {
        /// The credential as it is now.
        credential: Credential,
        /// The old status.
        from: Option<String>,
    },
    /// A new admin grant on an existing identity.
    PrivilegeAdded {
        /// The grant.
        grant: AdminGrant,
    },
    /// An admin grant that is gone.
    PrivilegeRemoved {
        /// The grant.
        grant: AdminGrant,
    },
    /// A new owner of an Entra app registration or service principal, who
    /// can add credentials to it.
    OwnerAdded {
        /// The new owner.
        owner: Owner,
    },
    /// An owner that is gone.
    OwnerRemoved {
        /// The removed owner.
        owner: Owner,
    },
}

impl ChangeKind {
    /// The name of every kind of change, in declaration order.
    pub const NAMES: [&'static str; 15] = [
        "identity_added",
        "identity_removed",
        "identity_recreated",
        "renamed",
        "path_changed",
        "enabled_changed",
        "attribute_changed",
        "trust_changed",
        "credential_added",
        "credential_removed",
        "credential_status_changed",
        "privilege_added",
        "privilege_removed",
        "owner_added",
        "owner_removed",
    ];

    /// Returns the snake_case name of the change, as in the JSON report.
    pub fn name(&self) -> &'static str {
        match self {
            ChangeKind::IdentityAdded => "identity_added",
            ChangeKind::IdentityRemoved => "identity_removed",
            ChangeKind::IdentityRecreated { .. } => "identity_recreated",
            ChangeKind::Renamed { .. } => "renamed",
            ChangeKind::PathChanged { .. } => "path_changed",
            ChangeKind::EnabledChanged { .. } => "enabled_changed",
            ChangeKind::AttributeChanged { .. } => "attribute_changed",
            ChangeKind::TrustChanged { .. } => "trust_changed",
            ChangeKind::CredentialAdded { .. } => "credential_added",
            ChangeKind::CredentialRemoved { .. } => "credential_removed",
            ChangeKind::CredentialStatusChanged { .. } => "credential_status_changed",
            ChangeKind::PrivilegeAdded { .. } => "privilege_added",
            ChangeKind::PrivilegeRemoved { .. } => "privilege_removed",
            ChangeKind::OwnerAdded { .. } => "owner_added",
            ChangeKind::OwnerRemoved { .. } => "owner_removed",
        }
    }
}

/// One change to one identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What changed.
    pub kind: ChangeKind,
    /// The identity as it is now (as it was, for a removal).
    pub identity: Identity,
}

/// A collection that was not compared, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotCompared {
    /// The collection.
    pub collection: CollectionName,
    /// Why: the incomplete side's reason.
    pub reason: String,
    /// The identities whose part of the collection was missed, when the
    /// listing missed only some; empty when the whole collection is in doubt.
    #[serde(skip)]
    pub only: Vec<String>,
}

impl NotCompared {
    /// Returns true when the identity's part of the collection is in doubt.
    pub fn covers(&self, identity_id: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|id| id == identity_id)
    }
}

/// The changes of one scope between two snapshots.
#[derive(Debug, Clone)]
pub struct ScopeDiff {
    /// The provider.
    pub provider: Provider,
    /// The scope id.
    pub scope: String,
    /// Changes, in identity order.
    pub changes: Vec<Change>,
    /// Collections left out of the comparison.
    pub not_compared: Vec<NotCompared>,
    /// Application (client) ids whose service principal in the new
    /// snapshot has an admin grant. An owner of such an app registration
    /// can add a credential and act with that grant.
    pub privileged_app_ids: BTreeSet<String>,
}

/// Splits collections into those both snapshots allow comparing and the rest.
/// Collections that can be compared: in full, or for every identity but
/// the ones a partly failed listing missed.
#[derive(Debug, Default)]
struct Comparable {
    full: BTreeSet<CollectionName>,
    except: BTreeMap<CollectionName, BTreeSet<String>>,
}

impl Comparable {
    fn contains(&self, name: &CollectionName) -> bool {
        self.full.contains(name)
    }

    /// Returns true when a collection can be compared for one identity.
    fn covers(&self, name: CollectionName, id: &str) -> bool {
        self.full.contains(&name)
            || self
                .except
                .get(&name)
                .is_some_and(|unlisted| !unlisted.contains(id))
    }
}

fn comparable_collections(old: &Snapshot, new: &Snapshot) -> (Comparable, Vec<NotCompared>) {
    let mut comparable = Comparable::default();
    let mut not_compared = Vec::new();
    let names: BTreeSet<CollectionName> = old
        .collections
        .keys()
        .chain(new.collections.keys())
        .copied()
        .collect();

    for name in names {
        let before = old.completeness(name);
        let after = new.completeness(name);
        if before.holds_complete_records() && after.is_complete() {
            comparable.full.insert(name);
            continue;
        }
        if before.holds_complete_records() && !after.unlisted().is_empty() {
            // Only some identities were missed: the rest are compared.
            let unlisted: BTreeSet<String> = after.unlisted().iter().cloned().collect();
            not_compared.push(NotCompared {
                collection: name,
                reason: format!(
                    "new snapshot, for {} only: {}",
                    if unlisted.len() == 1 {
                        "1 identity".to_string()
                    } else {
                        format!("{} identities", unlisted.len())
                    },
                    after.reason().unwrap_or("incomplete")
                ),
                only: unlisted.iter().cloned().collect(),
            });
            comparable.except.insert(name, unlisted);
            continue;
        }
        let reason = match (after.reason(), before.reason()) {
            (Some(reason), _) => format!("new snapshot: {reason}"),
            (None, Some(reason)) => format!("old snapshot: {reason}"),
            (None, None) => "incomplete".to_string(),
        };
        not_compared.push(NotCompared {
            collection: name,
            reason,
            only: Vec::new(),
        });
    }
    (comparable, not_compared)
}

/// Compares two snapshots of the same provider and scope.
pub fn diff_snapshots(old: &Snapshot, new: &Snapshot) -> ScopeDiff {
    let (comparable, not_compared) = comparable_collections(old, new);
    let old_by_id: BTreeMap<(&str, IdentityKind), &Identity> = old
        .identities
        .iter()
        .map(|identity| ((identity.id.as_str(), identity.kind), identity))
        .collect();
    let new_by_id: BTreeMap<(&str, IdentityKind), &Identity> = new
        .identities
        .iter()
        .map(|identity| ((identity.id.as_str(), identity.kind), identity))
        .collect();
    let listed = |kind: IdentityKind| comparable.contains(&kind.collection());

    let mut changes = Vec::new();
    let mut added: Vec<&Identity> = Vec::new();
    let mut removed: Vec<&Identity> = Vec::new();

    for (key, identity) in &new_by_id {
        match old_by_id.get(key) {
            Some(before) => changes.extend(compare_identity(before, identity, &comparable)),
            None if listed(identity.kind) => added.push(identity),
            None => {}
        }
    }
    for (key, identity) in &old_by_id {
        if !new_by_id.contains_key(key) && listed(identity.kind) {
            removed.push(identity);
        }
    }

    changes.extend(pair_recreations(added, removed));
    changes.sort_by(|a, b| (&a.identity.id, a.kind.name()).cmp(&(&b.identity.id, b.kind.name())));
    ScopeDiff {
        provider: new.provider,
        scope: new.scope.clone(),
        changes,
        not_compared,
        privileged_app_ids: privileged_app_ids(new),
    }
}

/// Returns the application ids of the snapshot's service principals that
/// hold an admin grant.
fn privileged_app_ids(snapshot: &Snapshot) -> BTreeSet<String> {
    snapshot
        .identities
        .iter()
        .filter(|identity| identity.is_admin())
        .filter_map(|identity| {
            identity
                .attributes
                .get(crate::model::azure_attribute::APP_ID)
        })
        .cloned()
        .collect()
}

/// Turns additions and removals into changes, pairing a removed and an added
/// identity of the same kind and name as one re-creation.
fn pair_recreations(added: Vec<&Identity>, removed: Vec<&Identity>) -> Vec<Change> {
    let mut removed_by_name: BTreeMap<(IdentityKind, &str), &Identity> = removed
        .iter()
        .map(|identity| ((identity.kind, identity.name.as_str()), *identity))
        .collect();
    let mut changes = Vec::new();

    for identity in added {
        let kind = match removed_by_name.remove(&(identity.kind, identity.name.as_str())) {
            Some(previous) => ChangeKind::IdentityRecreated {
                previous_id: previous.id.clone(),
            },
            None => ChangeKind::IdentityAdded,
        };
        changes.push(Change {
            kind,
            identity: identity.clone(),
        });
    }
    for identity in removed_by_name.into_values() {
        changes.push(Change {
            kind: ChangeKind::IdentityRemoved,
            identity: identity.clone(),
        });
    }
    changes
}

/// Compares one identity present on both sides, collection by collection.
fn compare_identity(old: &Identity, new: &Identity, comparable: &Comparable) -> Vec<Change> {
    let mut kinds = Vec::new();
    if comparable.contains(&new.kind.collection()) {
        kinds.extend(compare_attributes(old, new));
    }
    // Each credential is compared under the collection that lists it: its
    // own (access keys) or its identity's (Entra secrets and certificates).
    let credential_collections: BTreeSet<CollectionName> = old
        .credentials
        .iter()
        .chain(&new.credentials)
        .map(|credential| credential.kind.collection_on(new.kind))
        .collect();
    for name in credential_collections {
        if comparable.covers(name, &new.id) {
            kinds.extend(compare_credentials(old, new, name));
        }
    }
    // Each grant is compared under the collection that lists it: Azure
    // RBAC grants apart from directory roles and IAM policies.
    let grant_collections: BTreeSet<CollectionName> = old
        .admin_grants
        .iter()
        .chain(&new.admin_grants)
        .map(|grant| grant.collection_on(new.kind))
        .collect();
    for name in grant_collections {
        if comparable.covers(name, &new.id) {
            kinds.extend(compare_grants(old, new, name));
        }
    }
    if comparable.covers(CollectionName::Owners, &new.id) {
        kinds.extend(compare_owners(old, new));
    }
    kinds
        .into_iter()
        .map(|kind| Change {
            kind,
            identity: new.clone(),
        })
        .collect()
}

fn compare_attributes(old: &Identity, new: &Identity) -> Vec<ChangeKind> {
    let mut kinds = Vec::new();
    if old.name != new.name {
        kinds.push(ChangeKind::Renamed {
            from: old.name.clone(),
        });
    }
    if old.path != new.path {
        kinds.push(ChangeKind::PathChanged {
            from: old.path.clone(),
        });
    }
    if old.enabled != new.enabled {
        kinds.push(ChangeKind::EnabledChanged { from: old.enabled });
    }
    kinds.extend(compare_trust(old, new));
    let keys: BTreeSet<&String> = old.attributes.keys().chain(new.attributes.keys()).collect();
    for key in keys {
        let (from, to) = (old.attributes.get(key), new.attributes.get(key));
        if from != to {
            kinds.push(ChangeKind::AttributeChanged {
                key: key.clone(),
                from: from.cloned(),
                to: to.cloned(),
            });
        }
    }
    kinds
}

/// Returns one change per principal added to or removed from the trust
/// policy. A principal whose statement gained or lost a condition counts as
/// removed in one form and added in the other.
fn compare_trust(old: &Identity, new: &Identity) -> Vec<ChangeKind> {
    let added = new
        .trust
        .iter()
        .filter(|principal| !old.trust.contains(principal))
        .map(|principal| ChangeKind::TrustChanged {
            added: vec![principal.clone()],
            removed: Vec::new(),
        });
    let removed = old
        .trust
        .iter()
        .filter(|principal| !new.trust.contains(principal))
        .map(|principal| ChangeKind::TrustChanged {
            added: Vec::new(),
            removed: vec![principal.clone()],
        });
    added.chain(removed).collect()
}

fn compare_credentials(
    old: &Identity,
    new: &Identity,
    collection: CollectionName,
) -> Vec<ChangeKind> {
    let of_collection = |identity: &Identity| -> BTreeMap<String, Credential> {
        identity
            .credentials
            .iter()
            .filter(|credential| credential.kind.collection_on(identity.kind) == collection)
            .map(|credential| (credential.id.clone(), credential.clone()))
            .collect()
    };
    let before = of_collection(old);
    let after = of_collection(new);
    let mut kinds = Vec::new();

    for (id, credential) in &after {
        match before.get(id) {
            None => kinds.push(ChangeKind::CredentialAdded {
                credential: credential.clone(),
            }),
            Some(previous) if previous.status != credential.status => {
                kinds.push(ChangeKind::CredentialStatusChanged {
                    credential: credential.clone(),
                    from: previous.status.clone(),
                })
            }
            // An impersonation grant's id names its condition by title only,
            // so a new condition expression under the same title (an expired
            // one made `true`, say) is the grant given again.
            Some(previous)
                if credential.kind == CredentialKind::ImpersonationGrant
                    && previous.detail != credential.detail =>
            {
                kinds.push(ChangeKind::CredentialAdded {
                    credential: credential.clone(),
                })
            }
            Some(_) => {}
        }
    }
    for (id, credential) in &before {
        if !after.contains_key(id) {
            kinds.push(ChangeKind::CredentialRemoved {
                credential: credential.clone(),
            });
        }
    }
    kinds
}

fn compare_grants(old: &Identity, new: &Identity, collection: CollectionName) -> Vec<ChangeKind> {
    let of_collection = |identity: &Identity| -> Vec<AdminGrant> {
        identity
            .admin_grants
            .iter()
            .filter(|grant| grant.collection_on(identity.kind) == collection)
            .cloned()
            .collect()
    };
    let (old_grants, new_grants) = (of_collection(old), of_collection(new));
    let keys = |grants: &[AdminGrant]| -> BTreeSet<AdminGrant> {
        grants.iter().map(AdminGrant::match_key).collect()
    };
    let (old_keys, new_keys) = (keys(&old_grants), keys(&new_grants));
    let mut kinds: Vec<ChangeKind> = new_grants
        .iter()
        .filter(|grant| !old_keys.contains(&grant.match_key()))
        .map(|grant| ChangeKind::PrivilegeAdded {
            grant: grant.clone(),
        })
        .collect();
    kinds.extend(
        old_grants
            .iter()
            .filter(|grant| !new_keys.contains(&grant.match_key()))
            .map(|grant| ChangeKind::PrivilegeRemoved {
                grant: grant.clone(),
            }),
    );
    kinds
}

/// Compares the owners of an app registration or service principal by object id.
fn compare_owners(old: &Identity, new: &Identity) -> Vec<ChangeKind> {
    let ids = |identity: &Identity| -> BTreeSet<String> {
        identity
            .owners
            .iter()
            .map(|owner| owner.id.clone())
            .collect()
    };
    let (old_ids, new_ids) = (ids(old), ids(new));
    let mut kinds: Vec<ChangeKind> = new
        .owners
        .iter()
        .filter(|owner| !old_ids.contains(&owner.id))
        .map(|owner| ChangeKind::OwnerAdded {
            owner: owner.clone(),
        })
        .collect();
    kinds.extend(
        old.owners
            .iter()
            .filter(|owner| !new_ids.contains(&owner.id))
            .map(|owner| ChangeKind::OwnerRemoved {
                owner: owner.clone(),
            }),
    );
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Completeness, CredentialKind};

    fn complete_snapshot(identities: Vec<Identity>) -> Snapshot {
        let collections = CollectionName::AWS
            .iter()
            .map(|name| (*name, Completeness::Complete))
            .collect();
        Snapshot::new(Provider::Aws, "123456789012", collections, identities)
    }

    fn user(id: &str, name: &str) -> Identity {
        Identity::new(id, IdentityKind::AwsUser, name)
    }

    fn key(id: &str) -> Credential {
        Credential {
            kind: CredentialKind::AccessKey,
            id: id.to_string(),
            status: Some("Active".to_string()),
            created: None,
            expires: None,
            display_name: None,
            detail: None,
        }
    }

    #[test]
    fn group_rename_changes_no_grant() {
        let grant = |group: &str, group_id: &str| AdminGrant {
            via: "directory_role".to_string(),
            policy: "Global Administrator".to_string(),
            group: Some(group.to_string()),
            group_id: Some(group_id.to_string()),
            reason: "role template 62e90394-69f5-4237-9190-012177145e10".to_string(),
            assignment_id: Some("ra-1".to_string()),
        };
        let mut before = user("AIDA1", "alice");
        before.admin_grants.push(grant("admins", "g-1"));
        let mut renamed = before.clone();
        renamed.admin_grants = vec![grant("tier-0 admins", "g-1")];
        let mut other_group = before.clone();
        other_group.admin_grants = vec![grant("admins", "g-2")];

        let renamed_diff = diff_snapshots(
            &complete_snapshot(vec![before.clone()]),
            &complete_snapshot(vec![renamed]),
        );
        assert!(
            renamed_diff.changes.is_empty(),
            "{:?}",
            renamed_diff.changes
        );
        let moved_diff = diff_snapshots(
            &complete_snapshot(vec![before]),
            &complete_snapshot(vec![other_group]),
        );
        assert_eq!(moved_diff.changes.len(), 2, "{:?}", moved_diff.changes);
    }

    #[test]
    fn names_list_every_change_kind() {
        let owner = Owner {
            id: "u1".to_string(),
            kind: Some("user".to_string()),
            name: None,
            user_type: None,
        };
        let grant = AdminGrant {
            via: "attached".to_string(),
            policy: "arn:aws:iam::aws:policy/AdministratorAccess".to_string(),
            group: None,
            group_id: None,
            reason: "AdministratorAccess".to_string(),
            assignment_id: None,
        };
        let kinds = [
            ChangeKind::IdentityAdded,
            ChangeKind::IdentityRemoved,
            ChangeKind::IdentityRecreated {
                previous_id: "AIDA0".to_string(),
            },
            ChangeKind::Renamed {
                from: "old".to_string(),
            },
            ChangeKind::PathChanged { from: None },
            ChangeKind::EnabledChanged { from: None },
            ChangeKind::AttributeChanged {
                key: "user_type".to_string(),
                from: None,
                to: None,
            },
            ChangeKind::TrustChanged {
                added: Vec::new(),
                removed: Vec::new(),
            },
            ChangeKind::CredentialAdded {
                credential: key("AKIA1"),
            },
            ChangeKind::CredentialRemoved {
                credential: key("AKIA1"),
            },
            ChangeKind::CredentialStatusChanged {
                credential: key("AKIA1"),
                from: None,
            },
            ChangeKind::PrivilegeAdded {
                grant: grant.clone(),
            },
            ChangeKind::PrivilegeRemoved { grant },
            ChangeKind::OwnerAdded {
                owner: owner.clone(),
            },
            ChangeKind::OwnerRemoved { owner },
        ];
        let names: Vec<&str> = kinds.iter().map(ChangeKind::name).collect();
        assert_eq!(names, ChangeKind::NAMES);
    }

    #[test]
    fn trust_change_is_one_change_per_principal() {
        let principal = |kind: &str, value: &str| TrustPrincipal {
            kind: kind.to_string(),
            value: value.to_string(),
            conditional: false,
        };
        let mut before = Identity::new("AROA1", IdentityKind::AwsRole, "deploy");
        before.trust = vec![principal("service", "ec2.amazonaws.com")];
        let mut after = before.clone();
        after.trust = vec![
            principal("aws", "arn:aws:iam::999988887777:root"),
            principal("federated", "accounts.google.com"),
        ];
        let diff = diff_snapshots(
            &complete_snapshot(vec![before]),
            &complete_snapshot(vec![after]),
        );
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for change in &diff.changes {
            let ChangeKind::TrustChanged {
                added: these_added,
                removed: these_removed,
            } = &change.kind
            else {
                panic!("unexpected change {change:?}");
            };
            assert_eq!(these_added.len() + these_removed.len(), 1, "{change:?}");
            added.extend(these_added.iter().map(|p| p.value.clone()));
            removed.extend(these_removed.iter().map(|p| p.value.clone()));
        }
        added.sort();
        assert_eq!(
            added,
            vec!["accounts.google.com", "arn:aws:iam::999988887777:root"]
        );
        assert_eq!(removed, vec!["ec2.amazonaws.com"]);
    }

    #[test]
    fn same_name_new_id_is_recreation() {
        let old = complete_snapshot(vec![user("AIDAOLD", "deploy")]);
        let new = complete_snapshot(vec![user("AIDANEW", "deploy")]);
        let diff = diff_snapshots(&old, &new);
        assert_eq!(diff.changes.len(), 1);
        assert_eq!(
            diff.changes[0].kind,
            ChangeKind::IdentityRecreated {
                previous_id: "AIDAOLD".to_string()
            }
        );
    }

    #[test]
    fn key_added_and_removed() {
        let mut before = user("AIDA1", "alice");
        before.credentials.push(key("AKIAOLD"));
        let mut after = user("AIDA1", "alice");
        after.credentials.push(key("AKIANEW"));
        let diff = diff_snapshots(
            &complete_snapshot(vec![before]),
            &complete_snapshot(vec![after]),
        );
        let names: Vec<&str> = diff
            .changes
            .iter()
            .map(|change| change.kind.name())
            .collect();
        assert_eq!(names, vec!["credential_added", "credential_removed"]);
    }

    #[test]
    fn incomplete_collection_is_not_compared() {
        let mut before = user("AIDA1", "alice");
        before.credentials.push(key("AKIAOLD"));
        let old = complete_snapshot(vec![before]);
        let mut new = complete_snapshot(vec![user("AIDA1", "alice"), user("AIDA2", "bob")]);
        new.collections.insert(
            CollectionName::AccessKeys,
            Completeness::Incomplete {
                reason: "AccessDenied".to_string(),
                kept_previous: false,
                unlisted: Vec::new(),
            },
        );
        let diff = diff_snapshots(&old, &new);
        let names: Vec<&str> = diff
            .changes
            .iter()
            .map(|change| change.kind.name())
            .collect();
        assert_eq!(names, vec!["identity_added"]);
        assert_eq!(diff.not_compared.len(), 1);
        assert_eq!(diff.not_compared[0].collection, CollectionName::AccessKeys);
        assert!(diff.not_compared[0].reason.contains("AccessDenied"));
    }

    #[test]
    fn kept_previous_records_are_compared_later() {
        let mut old = complete_snapshot(vec![user("AIDA1", "alice")]);
        old.collections.insert(
            CollectionName::AccessKeys,
            Completeness::Incomplete {
                reason: "throttled".to_string(),
                kept_previous: true,
                unlisted: Vec::new(),
            },
        );
        let mut after = user("AIDA1", "alice");
        after.credentials.push(key("AKIANEW"));
        let diff = diff_snapshots(&old, &complete_snapshot(vec![after]));
        assert_eq!(diff.changes.len(), 1);
        assert!(diff.not_compared.is_empty());
    }
}
