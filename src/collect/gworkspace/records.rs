//! Admin SDK `users.list` records to identity records, shared by the API
//! collector and the offline reader.
//!
//! A user without an `id` is dropped and counted, and leaves the users
//! incomplete, because the user it represents would read as removed. Every other field is
//! optional: a missing `suspended` means the user can sign in, a missing
//! `isAdmin` means no admin status.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use tracing::warn;

use crate::collect::Collected;
use crate::collect::aws::details::normalize_timestamp;
use crate::model::gworkspace_attribute as attribute;
use crate::model::{
    AdminGrant, CollectionName, Completeness, Identity, IdentityKind, Provider, Snapshot,
};

/// Users converted from one listing.
#[derive(Debug, Default)]
pub struct Users {
    /// The users.
    pub identities: Vec<Identity>,
    /// The distinct `customerId` values of the records.
    pub customer_ids: BTreeSet<String>,
    /// Records dropped because they carry no `id`.
    pub dropped: usize,
}

fn text<'a>(record: &'a Value, key: &str) -> Option<&'a str> {
    record
        .get(key)
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty())
}

fn flag(record: &Value, key: &str) -> bool {
    record.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn grant(policy: &str, reason: &str) -> AdminGrant {
    AdminGrant {
        via: attribute::ADMIN_STATUS.to_string(),
        policy: policy.to_string(),
        group: None,
        group_id: None,
        reason: reason.to_string(),
        assignment_id: None,
    }
}

/// Converts `users.list` records (the `users` of each page).
pub fn users(records: &[Value]) -> Users {
    let mut users = Users::default();
    let mut seen = BTreeSet::new();
    for record in records {
        let Some(id) = text(record, "id") else {
            users.dropped += 1;
            continue;
        };
        if !seen.insert(id.to_string()) {
            continue;
        }
        if let Some(customer) = text(record, "customerId") {
            users.customer_ids.insert(customer.to_string());
        }
        users.identities.push(user(id, record));
    }
    users
}

fn user(id: &str, record: &Value) -> Identity {
    let email = text(record, "primaryEmail").unwrap_or(id);
    let mut identity = Identity::new(id, IdentityKind::GworkspaceUser, email);
    identity.created = text(record, "creationTime").map(normalize_timestamp);
    identity.enabled = Some(!flag(record, "suspended"));
    if flag(record, "archived") {
        identity
            .attributes
            .insert(attribute::ARCHIVED.to_string(), "true".to_string());
    }
    if let Some(unit) = text(record, "orgUnitPath") {
        identity
            .attributes
            .insert(attribute::ORG_UNIT_PATH.to_string(), unit.to_string());
    }
    if flag(record, "isAdmin") {
        let reason = "isAdmin: super administrator";
        identity
            .admin_grants
            .push(grant(attribute::SUPER_ADMIN, reason));
    }
    if flag(record, "isDelegatedAdmin") {
        let reason = "isDelegatedAdmin: holds an admin role";
        identity
            .admin_grants
            .push(grant(attribute::DELEGATED_ADMIN, reason));
    }
    identity
}

/// Works out the customer id a listing belongs to: the `customerId` its
/// users share, checked against the configured customer unless that is
/// `my_customer`. Users without `customerId` leave the configured id.
pub fn customer_of(configured: &str, customer_ids: &BTreeSet<String>) -> Result<String, String> {
    let my_customer = crate::settings::GworkspaceSettings::MY_CUSTOMER;
    if customer_ids.is_empty() && configured != my_customer {
        return Ok(configured.to_string());
    }
    let mut ids = customer_ids.iter();
    let (Some(found), None) = (ids.next(), ids.next()) else {
        if customer_ids.is_empty() {
            return Err(
                "no user carries a customerId, so the customer id is unknown; list users with \
                 projection=basic or full, or set the customer id in the config"
                    .to_string(),
            );
        }
        let all: Vec<&str> = customer_ids.iter().map(String::as_str).collect();
        return Err(format!(
            "the users belong to several customers ({}); scan each customer on its own",
            all.join(", ")
        ));
    };
    if configured != my_customer && configured != found {
        return Err(format!(
            "the users belong to customer {found}, not to the configured customer {configured}"
        ));
    }
    Ok(found.clone())
}

/// Builds a customer's snapshot from its users, all listed.
pub fn assemble(customer: &str, users: Users, api_calls: u64) -> Collected {
    if users.dropped > 0 {
        warn!(
            customer,
            dropped = users.dropped,
            "users without an id were skipped"
        );
    }
    let listing = if users.dropped == 0 {
        Completeness::Complete
    } else {
        Completeness::Incomplete {
            reason: format!(
                "{} users.list records have no id, so the users they represent are unknown",
                users.dropped
            ),
            kept_previous: false,
            unlisted: Vec::new(),
        }
    };
    let collections = BTreeMap::from([(CollectionName::Users, listing)]);
    Collected {
        snapshot: Snapshot::new(
            Provider::Gworkspace,
            customer,
            collections,
            users.identities,
        ),
        api_calls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_fields_are_read() {
        let records = [
            json!({
                "kind": "admin#directory#user",
                "id": "104478963210987654321",
                "primaryEmail": "ana@example.com",
                "isAdmin": true,
                "isDelegatedAdmin": false,
                "creationTime": "2024-01-02T03:04:05.000Z",
                "suspended": false,
                "archived": true,
                "orgUnitPath": "/Engineering",
                "customerId": "C03az79cb"
            }),
            json!({"primaryEmail": "no-id@example.com"}),
            json!({"id": "2", "isDelegatedAdmin": true, "suspended": true}),
        ];
        let users = users(&records);
        assert_eq!(users.dropped, 1);
        assert_eq!(users.identities.len(), 2);
        let ana = &users.identities[0];
        assert_eq!(ana.name, "ana@example.com");
        assert_eq!(ana.created.as_deref(), Some("2024-01-02T03:04:05Z"));
        assert_eq!(ana.enabled, Some(true));
        assert_eq!(ana.admin_grants.len(), 1);
        assert_eq!(ana.admin_grants[0].policy, attribute::SUPER_ADMIN);
        assert_eq!(ana.attributes[attribute::ARCHIVED], "true");
        assert_eq!(ana.attributes[attribute::ORG_UNIT_PATH], "/Engineering");
        let second = &users.identities[1];
        assert_eq!(second.name, "2");
        assert_eq!(second.enabled, Some(false));
        assert_eq!(second.admin_grants[0].policy, attribute::DELEGATED_ADMIN);
        assert_eq!(users.customer_ids.iter().collect::<Vec<_>>(), ["C03az79cb"]);
    }

    #[test]
    fn customer_must_be_one_and_match() {
        let one = BTreeSet::from(["C03az79cb".to_string()]);
        assert_eq!(customer_of("my_customer", &one).unwrap(), "C03az79cb");
        assert_eq!(customer_of("C03az79cb", &one).unwrap(), "C03az79cb");
        assert!(customer_of("C00000000", &one).is_err());
        assert!(customer_of("my_customer", &BTreeSet::new()).is_err());
        assert_eq!(
            customer_of("C03az79cb", &BTreeSet::new()).unwrap(),
            "C03az79cb"
        );
        let two = BTreeSet::from(["C03az79cb".to_string(), "C11111111".to_string()]);
        assert!(customer_of("my_customer", &two).is_err());
    }
}
