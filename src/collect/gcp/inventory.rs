//! A project's records assembled from the listings that succeeded, shared
//! by the API collector and the offline export reader.

use std::collections::BTreeMap;

use serde_json::Value;
use tracing::warn;

use super::records;
use crate::collect::Collected;
use crate::model::{CollectionName, Completeness, Identity, Provider, Snapshot};
use crate::report::sanitize;

/// The outcome of one listing.
#[derive(Debug, Clone, PartialEq)]
pub enum Listing<T> {
    /// Every page was read.
    Found(T),
    /// The listing failed or was cut short, with the reason.
    Failed(String),
    /// No source was available (an export without that file).
    Missing(String),
}

/// Key records per service account email, or the failure of that account's listing.
pub type KeyListings = Vec<(String, Result<Vec<Value>, String>)>;

/// Each service account's own IAM policy by email, or the failure of its read.
pub type AccountPolicyListings = Vec<(String, Result<Value, String>)>;

/// A project's workload identity pools, and the providers of each pool by
/// pool id, or the failure of that pool's provider listing.
#[derive(Debug, Default)]
pub struct PoolListings {
    /// Pool records.
    pub pools: Vec<Value>,
    /// Provider records per pool id.
    pub providers: Vec<(String, Result<Vec<Value>, String>)>,
}

/// Every listing of one project.
#[derive(Debug)]
pub struct ProjectListings {
    /// Service account records.
    pub accounts: Listing<Vec<Value>>,
    /// Key records per service account email. A listing missing for some
    /// accounts leaves those accounts' keys unknown.
    pub keys: Listing<KeyListings>,
    /// The project's IAM policy.
    pub policy: Listing<Value>,
    /// Each service account's own IAM policy. A policy missing for some
    /// accounts leaves those accounts' impersonation grants unknown.
    pub account_policies: Listing<AccountPolicyListings>,
    /// Workload identity pools and their providers.
    pub workload_identity: Listing<PoolListings>,
}

fn incomplete(reason: String, unlisted: Vec<String>) -> Completeness {
    warn!(reason = %sanitize(&reason), "listing incomplete");
    Completeness::Incomplete {
        reason,
        kept_previous: false,
        unlisted,
    }
}

fn not_collected(reason: impl Into<String>) -> Completeness {
    Completeness::NotCollected {
        reason: reason.into(),
        kept_previous: false,
    }
}

/// Builds a project's snapshot from its listings.
pub fn assemble(project: &str, listings: ProjectListings, api_calls: u64) -> Collected {
    let mut collections = BTreeMap::new();
    let mut identities: Vec<Identity> = Vec::new();

    let accounts_listed = match listings.accounts {
        Listing::Found(records) => {
            let accounts = records::service_accounts(&records);
            if accounts.dropped > 0 {
                warn!(
                    project,
                    dropped = accounts.dropped,
                    "service accounts without a uniqueId were skipped"
                );
            }
            identities = accounts.identities;
            // A record without its id represents an account that would
            // otherwise read as deleted.
            let listing = if accounts.dropped == 0 {
                Completeness::Complete
            } else {
                let reason = format!(
                    "{} service account records have no uniqueId, so the accounts they represent \
                     are unknown",
                    accounts.dropped
                );
                incomplete(reason, Vec::new())
            };
            collections.insert(CollectionName::ServiceAccounts, listing);
            true
        }
        Listing::Failed(reason) => {
            collections.insert(
                CollectionName::ServiceAccounts,
                incomplete(reason, Vec::new()),
            );
            false
        }
        Listing::Missing(reason) => {
            collections.insert(CollectionName::ServiceAccounts, not_collected(reason));
            false
        }
    };

    let keys = if accounts_listed {
        attach_keys(project, &mut identities, listings.keys)
    } else {
        not_collected("keys are listed per service account, and the service account listing failed")
    };
    collections.insert(CollectionName::ServiceAccountKeys, keys);
    let account_policies = if accounts_listed {
        attach_account_policies(project, &mut identities, listings.account_policies)
    } else {
        not_collected(
            "service account policies are read per service account, and the service account \
             listing failed",
        )
    };
    collections.insert(CollectionName::ServiceAccountPolicies, account_policies);
    let providers = match listings.workload_identity {
        Listing::Found(listings) => add_providers(project, &mut identities, listings),
        Listing::Failed(reason) => incomplete(reason, Vec::new()),
        Listing::Missing(reason) => not_collected(reason),
    };
    collections.insert(CollectionName::WorkloadIdentityProviders, providers);

    // A policy that cannot be read in full would read as one granting nothing.
    let policy_listing = match listings.policy {
        Listing::Found(policy) => match records::check_policy(&policy) {
            Ok(()) => Listing::Found(policy),
            Err(error) => Listing::Failed(format!("IAM policy of project {project}: {error}")),
        },
        other => other,
    };
    let policy = match policy_listing {
        Listing::Found(policy) if accounts_listed => {
            let found = records::policy_members(&policy, &identities);
            records::apply_to_accounts(&found, &mut identities);
            identities.extend(found.principals);
            Completeness::Complete
        }
        Listing::Found(_) => not_collected(
            "policy members cannot be told apart from the project's own service accounts, \
             whose listing failed",
        ),
        Listing::Failed(reason) => incomplete(reason, Vec::new()),
        Listing::Missing(reason) => not_collected(reason),
    };
    collections.insert(CollectionName::IamPolicy, policy);

    Collected {
        snapshot: Snapshot::new(Provider::Gcp, project, collections, identities),
        api_calls,
    }
}

/// Attaches each account's user-managed keys and returns the keys'
/// completeness. Accounts whose listing failed or is missing are named as
/// unlisted, so that the other accounts are still compared.
fn attach_keys(
    project: &str,
    accounts: &mut [Identity],
    listing: Listing<KeyListings>,
) -> Completeness {
    let per_account = match listing {
        Listing::Found(per_account) => per_account,
        Listing::Failed(reason) => return incomplete(reason, Vec::new()),
        Listing::Missing(reason) => return not_collected(reason),
    };
    let mut by_email: BTreeMap<String, Result<Vec<Value>, String>> = BTreeMap::new();
    for (email, listed) in per_account {
        match (by_email.get_mut(&email), listed) {
            (Some(Ok(found)), Ok(more)) => found.extend(more),
            (Some(slot), Err(reason)) => *slot = Err(reason),
            (Some(Err(_)), Ok(_)) => {}
            (None, listed) => {
                by_email.insert(email, listed);
            }
        }
    }
    // A key of an unknown type, or without a name, may be a user-managed
    // key that would otherwise read as deleted: its account's keys are unlisted.
    let by_email = by_email
        .into_iter()
        .map(|(email, listed)| {
            let keys = listed.and_then(|found| {
                let keys = records::keys(&found);
                if keys.skipped == 0 {
                    return Ok(keys);
                }
                warn!(project, account = %email, skipped = keys.skipped, "keys of an unknown type or without a name");
                Err(format!(
                    "{} keys of service account {email} have an unknown keyType or no name",
                    keys.skipped
                ))
            });
            (email, keys)
        })
        .collect();
    attach_per_account(
        project,
        accounts,
        by_email,
        "key listing",
        |account, keys| account.credentials.extend(keys.credentials),
    )
}

/// Attaches each account's impersonation grants from its own IAM policy
/// and returns their completeness, as [`attach_keys`] does for keys.
fn attach_account_policies(
    project: &str,
    accounts: &mut [Identity],
    listing: Listing<AccountPolicyListings>,
) -> Completeness {
    let per_account = match listing {
        Listing::Found(per_account) => per_account,
        Listing::Failed(reason) => return incomplete(reason, Vec::new()),
        Listing::Missing(reason) => return not_collected(reason),
    };
    // A failure for an account outweighs a policy read for it elsewhere.
    let mut by_email: BTreeMap<String, Result<Value, String>> = BTreeMap::new();
    for (email, read) in per_account {
        let read = read.and_then(|policy| match records::check_policy(&policy) {
            Ok(()) => Ok(policy),
            Err(error) => Err(format!("IAM policy of service account {email}: {error}")),
        });
        match (by_email.get(&email), read) {
            (Some(Err(_)), _) => {}
            (_, read) => {
                by_email.insert(email, read);
            }
        }
    }
    attach_per_account(
        project,
        accounts,
        by_email,
        "IAM policy",
        |account, policy| {
            account
                .credentials
                .extend(records::impersonation_grants(&policy));
        },
    )
}

/// Hands each account its listed part with `attach`, and returns the
/// completeness: accounts whose listing failed or is missing are named as
/// unlisted, so that the other accounts are still compared.
fn attach_per_account<T>(
    project: &str,
    accounts: &mut [Identity],
    mut by_email: BTreeMap<String, Result<T, String>>,
    what: &str,
    mut attach: impl FnMut(&mut Identity, T),
) -> Completeness {
    let mut unlisted = Vec::new();
    let mut first_failure: Option<String> = None;
    for account in accounts.iter_mut() {
        match by_email.remove(&account.name) {
            Some(Ok(found)) => attach(account, found),
            Some(Err(reason)) => {
                first_failure.get_or_insert(reason);
                unlisted.push(account.id.clone());
            }
            None => {
                first_failure.get_or_insert_with(|| format!("no {what} for {}", account.name));
                unlisted.push(account.id.clone());
            }
        }
    }
    for email in by_email.keys() {
        warn!(project, account = %email, what, "skipping a service account the listing lacks");
    }
    match first_failure {
        None => Completeness::Complete,
        Some(reason) => incomplete(
            format!(
                "{reason} ({} without one)",
                if unlisted.len() == 1 {
                    "1 service account".to_string()
                } else {
                    format!("{} service accounts", unlisted.len())
                }
            ),
            unlisted,
        ),
    }
}

/// Adds every listed workload identity provider and returns the
/// providers' completeness. A pool whose providers were not listed leaves
/// the whole collection incomplete, because a provider missing from it
/// would otherwise read as deleted.
fn add_providers(
    project: &str,
    identities: &mut Vec<Identity>,
    listings: PoolListings,
) -> Completeness {
    let mut providers = Vec::new();
    let mut failures = Vec::new();
    let mut listed_pools = BTreeMap::new();
    for (pool, listed) in listings.providers {
        match listed {
            Ok(records) => {
                providers.extend(records);
                listed_pools.entry(pool).or_insert(true);
            }
            Err(reason) => {
                failures.push(reason);
                listed_pools.insert(pool, false);
            }
        }
    }
    for pool in listings.pools.iter().filter_map(|pool| {
        pool.get("name")
            .and_then(Value::as_str)
            .and_then(records::pool_id)
    }) {
        if !listed_pools.contains_key(pool) {
            failures.push(format!(
                "no provider listing for workload identity pool {pool}"
            ));
        }
    }
    let found = records::workload_identity_providers(&listings.pools, &providers);
    // A record without a valid name represents a provider that would
    // otherwise read as deleted.
    if found.dropped > 0 {
        warn!(
            project,
            dropped = found.dropped,
            "workload identity providers without a valid name were skipped"
        );
        failures.push(format!(
            "{} workload identity providers have no valid name",
            found.dropped
        ));
    }
    let unnamed_pools = listings
        .pools
        .iter()
        .filter(|pool| {
            pool.get("name")
                .and_then(Value::as_str)
                .and_then(records::pool_id)
                .is_none()
        })
        .count();
    if unnamed_pools > 0 {
        failures.push(format!(
            "{unnamed_pools} workload identity pools have no valid name, so their providers \
             cannot be listed"
        ));
    }
    identities.extend(found.identities);
    match failures.first() {
        None => Completeness::Complete,
        Some(reason) => incomplete(
            format!(
                "{reason} ({} pools without a provider listing)",
                failures.len()
            ),
            Vec::new(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const POOLS: &str = "projects/1/locations/global/workloadIdentityPools";

    #[test]
    fn nameless_providers_and_pools_are_incomplete() {
        let pool = json!({"name": format!("{POOLS}/ci"), "state": "ACTIVE"});
        let named = json!({"name": format!("{POOLS}/ci/providers/actions"), "state": "ACTIVE"});
        let nameless = json!({"displayName": "actions", "state": "ACTIVE"});
        let cases = [
            (
                vec![pool.clone()],
                vec![named.clone(), nameless],
                "providers have no valid name",
            ),
            (
                vec![pool, json!({"displayName": "lost"})],
                vec![named],
                "pools have no valid name",
            ),
        ];
        for (pools, providers, expected) in cases {
            let listings = PoolListings {
                pools,
                providers: vec![("ci".to_string(), Ok(providers))],
            };
            let mut identities = Vec::new();
            let completeness = add_providers("demo", &mut identities, listings);
            let reason = completeness.reason().unwrap_or_default().to_string();
            assert!(reason.contains(expected), "{expected}: {completeness:?}");
            assert_eq!(identities.len(), 1);
        }
    }
}
