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
            collections.insert(CollectionName::ServiceAccounts, Completeness::Complete);
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

    let policy = match listings.policy {
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
    attach_per_account(
        project,
        accounts,
        by_email,
        "key listing",
        |account, found| {
            let keys = records::keys(&found);
            if keys.skipped > 0 {
                warn!(project, account = %account.name, skipped = keys.skipped, "keys of an unknown type were skipped");
            }
            account.credentials.extend(keys.credentials);
        },
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
    if found.dropped > 0 {
        warn!(
            project,
            dropped = found.dropped,
            "workload identity providers without a valid name were skipped"
        );
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
