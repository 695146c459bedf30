//! Google Cloud IAM records (API pages or `gcloud` exports) to identity
//! records.
//!
//! Parsing is lenient field by field: a missing `disabled` means enabled,
//! an unknown key type is skipped and counted, and one odd record never
//! fails its page. Only a service account without a `uniqueId` is dropped,
//! and counted.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::collect::aws::details::normalize_timestamp;
use crate::judge::gcp::{is_admin_role, is_impersonation_role};
use crate::model::gcp_attribute as attribute;
use crate::model::{AdminGrant, Credential, CredentialKind, Identity, IdentityKind};

fn text<'a>(record: &'a Value, key: &str) -> Option<&'a str> {
    record
        .get(key)
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty())
}

fn set_attribute(identity: &mut Identity, key: &str, value: Option<&str>) {
    if let Some(value) = value {
        identity
            .attributes
            .insert(key.to_string(), value.to_string());
    }
}

/// Returns the body of a recorded API response (`{"headers", "body"}`), or
/// the value itself.
pub fn unwrap_recording(value: &Value) -> &Value {
    match value.get("body") {
        Some(body) if value.get("headers").is_some() => body,
        _ => value,
    }
}

/// Service accounts converted from one listing.
#[derive(Debug, Default)]
pub struct Accounts {
    /// The service accounts.
    pub identities: Vec<Identity>,
    /// Records dropped because they carry no `uniqueId`.
    pub dropped: usize,
}

/// Converts `serviceAccounts.list` records (`accounts`, or the array that
/// `gcloud iam service-accounts list --format=json` prints).
pub fn service_accounts(records: &[Value]) -> Accounts {
    let mut accounts = Accounts::default();
    let mut seen = BTreeSet::new();
    for record in records {
        let Some(unique_id) = text(record, "uniqueId") else {
            accounts.dropped += 1;
            continue;
        };
        if !seen.insert(unique_id.to_string()) {
            continue;
        }
        let email = text(record, "email").unwrap_or(unique_id);
        let mut identity = Identity::new(unique_id, IdentityKind::GcpServiceAccount, email);
        // The API leaves `disabled` out when it is false.
        let disabled = record
            .get("disabled")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        identity.enabled = Some(!disabled);
        set_attribute(
            &mut identity,
            attribute::OAUTH2_CLIENT_ID,
            text(record, "oauth2ClientId"),
        );
        set_attribute(
            &mut identity,
            attribute::PROJECT_ID,
            text(record, "projectId"),
        );
        accounts.identities.push(identity);
    }
    accounts
}

/// Keys converted from one service account's listing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Keys {
    /// User-managed keys.
    pub credentials: Vec<Credential>,
    /// System-managed keys, which Google rotates itself and which are not recorded.
    pub system_managed: usize,
    /// Keys of an unknown type, or without a name, which are not recorded.
    pub skipped: usize,
}

/// Returns the service account a key's `name` names
/// (`projects/P/serviceAccounts/EMAIL/keys/ID`) and the key id.
pub fn key_owner(name: &str) -> Option<(&str, &str)> {
    let (account, key) = name.split_once("/keys/")?;
    let email = account.rsplit_once("/serviceAccounts/")?.1;
    (!email.is_empty() && !key.is_empty() && !key.contains('/')).then_some((email, key))
}

/// Converts `serviceAccounts.keys.list` records, keeping user-managed keys only.
pub fn keys(records: &[Value]) -> Keys {
    let mut keys = Keys::default();
    for record in records {
        let key_id = text(record, "name").and_then(key_owner).map(|(_, id)| id);
        match (text(record, "keyType"), key_id) {
            (Some("USER_MANAGED"), Some(key_id)) => {
                keys.credentials.push(user_managed_key(record, key_id));
            }
            (Some("SYSTEM_MANAGED"), _) => keys.system_managed += 1,
            _ => keys.skipped += 1,
        }
    }
    keys
}

fn user_managed_key(record: &Value, key_id: &str) -> Credential {
    let disabled = record
        .get("disabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let detail: Vec<String> = ["keyOrigin", "keyAlgorithm"]
        .iter()
        .filter_map(|key| text(record, key).map(|value| format!("{key} {value}")))
        .collect();
    Credential {
        kind: CredentialKind::ServiceAccountKey,
        id: key_id.to_string(),
        status: Some(if disabled { "Disabled" } else { "Enabled" }.to_string()),
        created: text(record, "validAfterTime").map(normalize_timestamp),
        expires: text(record, "validBeforeTime").map(normalize_timestamp),
        display_name: None,
        detail: (!detail.is_empty()).then(|| detail.join(", ")),
    }
}

/// One member of an IAM policy, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<'a> {
    /// The member string as the policy writes it.
    pub raw: &'a str,
    /// `user`, `group`, `serviceAccount`, `domain`, `principal`,
    /// `principalSet`, `allUsers`, `allAuthenticatedUsers`, or another prefix.
    pub member_type: &'a str,
    /// The email, domain or identifier after the prefix.
    pub value: &'a str,
    /// The numeric uid of a `deleted:` member.
    pub deleted_uid: Option<&'a str>,
}

/// Parses a member such as `user:ana@example.com`,
/// `deleted:serviceAccount:sa@p.iam.gserviceaccount.com?uid=123` or
/// `principal://iam.googleapis.com/...`.
pub fn parse_member(raw: &str) -> Member<'_> {
    if let Some(rest) = raw.strip_prefix("deleted:") {
        let (inner, uid) = match rest.split_once("?uid=") {
            Some((inner, uid)) => (inner, Some(uid)),
            None => (rest, None),
        };
        let (member_type, value) = inner.split_once(':').unwrap_or((inner, ""));
        return Member {
            raw,
            member_type,
            value,
            deleted_uid: uid.filter(|uid| !uid.is_empty()),
        };
    }
    // `principal://` and `principalSet://` carry the whole URI as their value.
    let (member_type, value) = match raw.split_once("://") {
        Some((scheme, _)) => (scheme, raw),
        None => raw.split_once(':').unwrap_or((raw, "")),
    };
    Member {
        raw,
        member_type,
        value,
        deleted_uid: None,
    }
}

/// One role a policy grants a member, with its condition's title.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    role: String,
    condition: Option<String>,
}

impl Grant {
    fn label(&self) -> String {
        match &self.condition {
            Some(title) => format!("{} [{title}]", self.role),
            None => self.role.clone(),
        }
    }

    fn admin_grant(&self) -> AdminGrant {
        AdminGrant {
            via: "iam_policy".to_string(),
            policy: self.role.clone(),
            group: None,
            group_id: None,
            reason: match &self.condition {
                Some(title) => format!("{} with condition {title}", self.role),
                None => self.role.clone(),
            },
            assignment_id: None,
        }
    }
}

/// The principals, roles and admin grants that a project's IAM policy adds.
#[derive(Debug, Default)]
pub struct PolicyMembers {
    /// Principals that the policy names and the service account listing
    /// does not contain.
    pub principals: Vec<Identity>,
    /// Roles the policy grants to listed service accounts, by `uniqueId`.
    pub account_roles: BTreeMap<String, Vec<String>>,
    /// Admin grants to listed service accounts, by `uniqueId`.
    pub account_grants: BTreeMap<String, Vec<AdminGrant>>,
}

/// Checks that a value reads as an IAM policy whose bindings can all be
/// read, so that an error body or a mangled file never reads as a policy
/// that grants nothing.
pub fn check_policy(policy: &Value) -> Result<(), String> {
    let Some(object) = policy.as_object() else {
        return Err(format!(
            "an IAM policy must be a JSON object, found {policy}"
        ));
    };
    if let Some(error) = object.get("error") {
        let message = error.get("message").and_then(Value::as_str).unwrap_or("");
        return Err(format!(
            "the response is an error, not an IAM policy: {message}"
        ));
    }
    let known = ["bindings", "etag", "version", "auditConfigs"];
    if !known.iter().any(|key| object.contains_key(*key)) {
        return Err("not an IAM policy: it has no bindings, etag or version".to_string());
    }
    let bindings = match object.get("bindings") {
        None => return Ok(()),
        Some(Value::Array(bindings)) => bindings,
        Some(other) => return Err(format!("bindings must be a list, found {other}")),
    };
    for binding in bindings {
        let role = binding.get("role").and_then(Value::as_str);
        let members = binding.get("members").and_then(Value::as_array);
        let readable = role.is_some()
            && members.is_some_and(|members| members.iter().all(Value::is_string))
            && binding.get("condition").is_none_or(Value::is_object);
        if !readable {
            return Err(format!(
                "a binding must have a role, a list of members and at most a condition object, \
                 found {binding}"
            ));
        }
    }
    Ok(())
}

/// Returns a policy's bindings; Google leaves an empty list out.
fn bindings(policy: &Value) -> &[Value] {
    policy
        .get("bindings")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Reads a policy's bindings (`getIamPolicy`, or `gcloud projects
/// get-iam-policy --format=json`), tying `serviceAccount:` and `deleted:`
/// members to the listed accounts they name.
pub fn policy_members(policy: &Value, accounts: &[Identity]) -> PolicyMembers {
    let by_email: HashMap<&str, &str> = accounts
        .iter()
        .map(|account| (account.name.as_str(), account.id.as_str()))
        .collect();
    let by_uid: BTreeSet<&str> = accounts.iter().map(|account| account.id.as_str()).collect();

    let mut grants: BTreeMap<String, BTreeSet<Grant>> = BTreeMap::new();
    for binding in bindings(policy) {
        let Some(role) = text(binding, "role") else {
            continue;
        };
        let condition = binding
            .get("condition")
            .map(|condition| text(condition, "title").unwrap_or("untitled").to_string());
        let members = binding.get("members").and_then(Value::as_array);
        for member in members.into_iter().flatten().filter_map(Value::as_str) {
            grants.entry(member.to_string()).or_default().insert(Grant {
                role: role.to_string(),
                condition: condition.clone(),
            });
        }
    }

    let mut found = PolicyMembers::default();
    for (raw, member_grants) in grants {
        let member = parse_member(&raw);
        let account = match (member.member_type, member.deleted_uid) {
            (_, Some(uid)) if by_uid.contains(uid) => Some(uid.to_string()),
            ("serviceAccount", None) => by_email.get(member.value).map(|id| id.to_string()),
            _ => None,
        };
        let roles: Vec<String> = member_grants.iter().map(Grant::label).collect();
        let admin: Vec<AdminGrant> = member_grants
            .iter()
            .filter(|grant| is_admin_role(&grant.role))
            .map(Grant::admin_grant)
            .collect();
        match account {
            Some(unique_id) => {
                found
                    .account_roles
                    .entry(unique_id.clone())
                    .or_default()
                    .extend(roles);
                found
                    .account_grants
                    .entry(unique_id)
                    .or_default()
                    .extend(admin);
            }
            None => found.principals.push(principal(&member, roles, admin)),
        }
    }
    found
}

fn principal(member: &Member<'_>, roles: Vec<String>, admin: Vec<AdminGrant>) -> Identity {
    let name = if member.value.is_empty() {
        member.raw
    } else {
        member.value
    };
    let mut identity = Identity::new(member.raw, IdentityKind::GcpPrincipal, name);
    set_attribute(
        &mut identity,
        attribute::MEMBER_TYPE,
        Some(member.member_type),
    );
    set_attribute(&mut identity, attribute::DELETED_UID, member.deleted_uid);
    set_attribute(&mut identity, attribute::ROLES, Some(&roles.join(", ")));
    identity.admin_grants = admin;
    identity
}

/// Adds a policy's roles and admin grants to the service accounts it names.
pub fn apply_to_accounts(found: &PolicyMembers, accounts: &mut [Identity]) {
    for account in accounts {
        if let Some(roles) = found.account_roles.get(&account.id) {
            let mut roles = roles.clone();
            roles.sort();
            roles.dedup();
            set_attribute(account, attribute::ROLES, Some(&roles.join(", ")));
        }
        if let Some(grants) = found.account_grants.get(&account.id) {
            account.admin_grants.extend(grants.iter().cloned());
        }
    }
}

/// Converts a service account's own IAM policy (`serviceAccounts.getIamPolicy`,
/// or `gcloud iam service-accounts get-iam-policy --format=json`) into one
/// impersonation grant per member and role that lets the member act as the
/// account. Bindings of other roles are not recorded.
pub fn impersonation_grants(policy: &Value) -> Vec<Credential> {
    let mut grants = Vec::new();
    for binding in bindings(policy) {
        let Some(role) = text(binding, "role").filter(|role| is_impersonation_role(role)) else {
            continue;
        };
        let condition = binding.get("condition");
        let title = condition.map(|condition| text(condition, "title").unwrap_or("untitled"));
        let detail = condition.map(|condition| {
            let expression = text(condition, "expression").unwrap_or("");
            format!("condition {}: {expression}", title.unwrap_or("untitled"))
        });
        let members = binding.get("members").and_then(Value::as_array);
        for member in members.into_iter().flatten().filter_map(Value::as_str) {
            let id = match title {
                Some(title) => format!("{role} {member} [{title}]"),
                None => format!("{role} {member}"),
            };
            grants.push(Credential {
                kind: CredentialKind::ImpersonationGrant,
                id,
                status: None,
                created: None,
                expires: None,
                display_name: Some(member.to_string()),
                detail: detail.clone(),
            });
        }
    }
    grants
}

/// Returns the role and member of an impersonation grant, whose id is
/// `ROLE MEMBER` or `ROLE MEMBER [condition title]` and whose display name
/// is the member.
pub fn impersonation_parts(credential: &Credential) -> Option<(&str, &str)> {
    let role = credential.id.split(' ').next()?;
    let member = credential.display_name.as_deref()?;
    (credential.kind == CredentialKind::ImpersonationGrant).then_some((role, member))
}

/// Workload identity providers converted from the listings of one project.
#[derive(Debug, Default)]
pub struct Providers {
    /// One identity per provider.
    pub identities: Vec<Identity>,
    /// Records dropped because their `name` is not a provider's resource name.
    pub dropped: usize,
}

/// Returns the pool id and provider id of a provider's resource name
/// (`projects/N/locations/global/workloadIdentityPools/POOL/providers/ID`).
pub fn provider_parts(name: &str) -> Option<(&str, &str)> {
    let (pool_path, provider) = name.split_once("/providers/")?;
    let pool = pool_path.rsplit_once("/workloadIdentityPools/")?.1;
    let valid = |part: &str| !part.is_empty() && !part.contains('/');
    (valid(pool) && valid(provider)).then_some((pool, provider))
}

/// Returns the pool id of a pool's resource name
/// (`projects/N/locations/global/workloadIdentityPools/POOL`).
pub fn pool_id(name: &str) -> Option<&str> {
    let pool = name.rsplit_once("/workloadIdentityPools/")?.1;
    (!pool.is_empty() && !pool.contains('/')).then_some(pool)
}

/// Converts `workloadIdentityPools.providers.list` records (or `gcloud iam
/// workload-identity-pools providers list --format=json`), with the state
/// of their pools from the pool listing.
pub fn workload_identity_providers(pools: &[Value], providers: &[Value]) -> Providers {
    let pool_records: HashMap<&str, &Value> = pools
        .iter()
        .filter_map(|pool| Some((text(pool, "name").and_then(pool_id)?, pool)))
        .collect();
    let mut found = Providers::default();
    let mut seen = BTreeSet::new();
    for record in providers {
        let Some(name) = text(record, "name") else {
            found.dropped += 1;
            continue;
        };
        let Some((pool, provider)) = provider_parts(name) else {
            found.dropped += 1;
            continue;
        };
        if !seen.insert(name.to_string()) {
            continue;
        }
        let pool_record = pool_records.get(pool).copied();
        let mut identity = Identity::new(
            name,
            IdentityKind::GcpWorkloadIdentityProvider,
            format!("{pool}/{provider}"),
        );
        let disabled = |record: Option<&Value>| {
            record
                .and_then(|record| record.get("disabled"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        // A disabled pool disables every provider in it.
        identity.enabled = Some(!disabled(Some(record)) && !disabled(pool_record));
        set_attribute(&mut identity, attribute::STATE, text(record, "state"));
        set_attribute(
            &mut identity,
            attribute::POOL_STATE,
            pool_record.and_then(|pool| text(pool, "state")),
        );
        set_attribute(
            &mut identity,
            attribute::ATTRIBUTE_CONDITION,
            text(record, "attributeCondition"),
        );
        let mapping = attribute_mapping(record);
        set_attribute(
            &mut identity,
            attribute::ATTRIBUTE_MAPPING,
            mapping.as_deref(),
        );
        set_issuer(&mut identity, record);
        found.identities.push(identity);
    }
    found
}

/// Returns a provider's attribute mapping as `key=value` pairs sorted by key.
fn attribute_mapping(record: &Value) -> Option<String> {
    let mapping = record.get("attributeMapping")?.as_object()?;
    let pairs: BTreeMap<&str, &str> = mapping
        .iter()
        .filter_map(|(key, value)| Some((key.as_str(), value.as_str()?)))
        .collect();
    let pairs: Vec<String> = pairs
        .into_iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    (!pairs.is_empty()).then(|| pairs.join("; "))
}

/// Records who issues the tokens a provider accepts, and a digest of any
/// keys it trusts in place of the issuer's published ones.
fn set_issuer(identity: &mut Identity, record: &Value) {
    let sha256 = |value: &str| {
        openssl::sha::sha256(value.as_bytes())
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<String>()
    };
    if let Some(oidc) = record.get("oidc") {
        set_attribute(identity, attribute::PROVIDER_TYPE, Some("oidc"));
        set_attribute(identity, attribute::ISSUER, text(oidc, "issuerUri"));
        let audiences: Vec<&str> = oidc
            .get("allowedAudiences")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let audiences = audiences.join(", ");
        set_attribute(
            identity,
            attribute::ALLOWED_AUDIENCES,
            Some(audiences.as_str()).filter(|list| !list.is_empty()),
        );
        let keys = text(oidc, "jwksJson").map(sha256);
        set_attribute(identity, attribute::TRUSTED_KEYS, keys.as_deref());
    } else if let Some(aws) = record.get("aws") {
        set_attribute(identity, attribute::PROVIDER_TYPE, Some("aws"));
        set_attribute(identity, attribute::ISSUER, text(aws, "accountId"));
    } else if let Some(saml) = record.get("saml") {
        set_attribute(identity, attribute::PROVIDER_TYPE, Some("saml"));
        let metadata = text(saml, "idpMetadataXml");
        let entity = metadata.and_then(saml_entity_id);
        set_attribute(identity, attribute::ISSUER, entity);
        let keys = metadata.map(sha256);
        set_attribute(identity, attribute::TRUSTED_KEYS, keys.as_deref());
    } else if let Some(x509) = record.get("x509") {
        set_attribute(identity, attribute::PROVIDER_TYPE, Some("x509"));
        set_attribute(identity, attribute::ISSUER, Some("x509"));
        let keys = sha256(&x509.to_string());
        set_attribute(identity, attribute::TRUSTED_KEYS, Some(&keys));
    }
}

/// Returns the `entityID` attribute of SAML metadata.
fn saml_entity_id(metadata: &str) -> Option<&str> {
    let start = metadata.find("entityID=")? + "entityID=".len();
    let rest = &metadata[start..];
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    let end = value.find(quote)?;
    Some(&value[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_parse() {
        let deleted = parse_member("deleted:serviceAccount:old@p.iam.gserviceaccount.com?uid=123");
        assert_eq!(deleted.member_type, "serviceAccount");
        assert_eq!(deleted.value, "old@p.iam.gserviceaccount.com");
        assert_eq!(deleted.deleted_uid, Some("123"));

        let user = parse_member("user:ana@example.com");
        assert_eq!((user.member_type, user.value), ("user", "ana@example.com"));

        let everyone = parse_member("allUsers");
        assert_eq!((everyone.member_type, everyone.value), ("allUsers", ""));

        let pool = "principalSet://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/*";
        let set = parse_member(pool);
        assert_eq!((set.member_type, set.value), ("principalSet", pool));
    }

    #[test]
    fn key_names_split() {
        assert_eq!(
            key_owner("projects/p/serviceAccounts/a@p.iam.gserviceaccount.com/keys/abc"),
            Some(("a@p.iam.gserviceaccount.com", "abc"))
        );
        assert_eq!(key_owner("projects/p/serviceAccounts/a/keys/"), None);
        assert_eq!(key_owner("keys/abc"), None);
    }

    #[test]
    fn only_user_managed_keys_are_kept() {
        let records = [
            json!({"name": "projects/p/serviceAccounts/a@x/keys/k1", "keyType": "USER_MANAGED",
                   "validAfterTime": "2024-01-02T03:04:05Z", "validBeforeTime": "9999-12-31T23:59:59Z",
                   "keyOrigin": "GOOGLE_PROVIDED"}),
            json!({"name": "projects/p/serviceAccounts/a@x/keys/k2", "keyType": "SYSTEM_MANAGED"}),
            json!({"name": "projects/p/serviceAccounts/a@x/keys/k3", "keyType": "KEY_TYPE_NEW"}),
            json!({"name": "projects/p/serviceAccounts/a@x/keys/k4", "keyType": "USER_MANAGED", "disabled": true}),
        ];
        let keys = keys(&records);
        assert_eq!(keys.system_managed, 1);
        assert_eq!(keys.skipped, 1);
        let ids: Vec<&str> = keys.credentials.iter().map(|key| key.id.as_str()).collect();
        assert_eq!(ids, vec!["k1", "k4"]);
        assert_eq!(
            keys.credentials[0].expires.as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
        assert_eq!(keys.credentials[1].status.as_deref(), Some("Disabled"));
    }

    #[test]
    fn policy_ties_members_to_accounts() {
        let mut accounts = service_accounts(&[
            json!({"uniqueId": "111", "email": "app@p.iam.gserviceaccount.com"}),
            json!({"uniqueId": "222", "email": "gone@p.iam.gserviceaccount.com", "disabled": true}),
        ])
        .identities;
        let policy = json!({"bindings": [
            {"role": "roles/owner", "members": ["user:ana@example.com", "serviceAccount:app@p.iam.gserviceaccount.com"]},
            {"role": "roles/viewer", "members": ["deleted:serviceAccount:gone@p.iam.gserviceaccount.com?uid=222",
                                                 "deleted:serviceAccount:older@p.iam.gserviceaccount.com?uid=333"]},
            {"role": "roles/storage.admin", "members": ["user:ana@example.com"],
             "condition": {"title": "until June", "expression": "request.time < timestamp('2025-06-01T00:00:00Z')"}},
        ]});
        let found = policy_members(&policy, &accounts);
        apply_to_accounts(&found, &mut accounts);

        assert_eq!(accounts[0].admin_grants.len(), 1);
        assert_eq!(accounts[0].attributes[attribute::ROLES], "roles/owner");
        assert_eq!(accounts[1].enabled, Some(false));
        assert_eq!(accounts[1].attributes[attribute::ROLES], "roles/viewer");

        let ids: Vec<&str> = found.principals.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            vec![
                "deleted:serviceAccount:older@p.iam.gserviceaccount.com?uid=333",
                "user:ana@example.com"
            ]
        );
        let ana = &found.principals[1];
        assert_eq!(
            ana.attributes[attribute::ROLES],
            "roles/owner, roles/storage.admin [until June]"
        );
        assert_eq!(ana.admin_grants.len(), 2);
        assert_eq!(
            found.principals[0].attributes[attribute::DELETED_UID],
            "333"
        );
    }

    #[test]
    fn policy_check_rejects_unreadable_policies() {
        let readable = [
            json!({"etag": "ACAB"}),
            json!({"version": 3, "etag": "BwX=", "bindings": [
                {"role": "roles/owner", "members": ["user:a@example.com"],
                 "condition": {"title": "t", "expression": "true"}}
            ]}),
        ];
        for policy in readable {
            assert_eq!(check_policy(&policy), Ok(()), "{policy}");
        }
        let unreadable = [
            json!([]),
            json!({}),
            json!({"error": {"code": 403, "message": "Permission denied", "status": "PERMISSION_DENIED"}}),
            json!({"etag": "x", "bindings": {"role": "roles/owner", "members": ["user:a@example.com"]}}),
            json!({"etag": "x", "bindings": [{"role": "roles/owner", "members": "user:a@example.com"}]}),
            json!({"etag": "x", "bindings": [{"members": ["user:a@example.com"]}]}),
            json!({"etag": "x", "bindings": [{"role": "roles/owner", "members": [7]}]}),
            json!({"etag": "x", "bindings": [{"role": "roles/owner", "members": [], "condition": "x"}]}),
        ];
        for policy in unreadable {
            assert!(check_policy(&policy).is_err(), "{policy}");
        }
    }

    #[test]
    fn impersonation_grants_are_read() {
        let policy = json!({"version": 3, "etag": "BwX=", "bindings": [
            {"role": "roles/iam.serviceAccountTokenCreator", "members": ["user:ana@example.com", "allUsers"]},
            {"role": "roles/iam.serviceAccountUser", "members": ["group:ops@example.com"],
             "condition": {"title": "weekdays", "expression": "request.time.getDayOfWeek() < 5"}},
            {"role": "roles/viewer", "members": ["user:bob@example.com"]},
        ]});
        let grants = impersonation_grants(&policy);
        let ids: Vec<&str> = grants.iter().map(|grant| grant.id.as_str()).collect();
        assert_eq!(
            ids,
            vec![
                "roles/iam.serviceAccountTokenCreator user:ana@example.com",
                "roles/iam.serviceAccountTokenCreator allUsers",
                "roles/iam.serviceAccountUser group:ops@example.com [weekdays]",
            ]
        );
        assert_eq!(
            impersonation_parts(&grants[2]),
            Some(("roles/iam.serviceAccountUser", "group:ops@example.com"))
        );
        assert_eq!(
            grants[2].detail.as_deref(),
            Some("condition weekdays: request.time.getDayOfWeek() < 5")
        );
        assert!(impersonation_grants(&json!({"etag": "ACAB"})).is_empty());
    }

    #[test]
    fn providers_record_their_issuer() {
        let pools = [
            json!({"name": "projects/1/locations/global/workloadIdentityPools/ci", "state": "ACTIVE", "disabled": true}),
        ];
        let saml = r#"<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID='https://idp.example.com/saml'>"#;
        let providers = [
            json!({"name": "projects/1/locations/global/workloadIdentityPools/ci/providers/gh", "state": "ACTIVE",
                   "attributeCondition": "assertion.repository_owner == 'example'",
                   "attributeMapping": {"google.subject": "assertion.sub", "attribute.actor": "assertion.actor"},
                   "oidc": {"issuerUri": "https://token.actions.githubusercontent.com",
                            "allowedAudiences": ["a", "b"], "jwksJson": "{\"keys\": []}"}}),
            json!({"name": "projects/1/locations/global/workloadIdentityPools/ci/providers/idp", "state": "DELETED",
                   "saml": {"idpMetadataXml": saml}}),
            json!({"name": "projects/1/locations/global/workloadIdentityPools/ci/providers/aws", "aws": {"accountId": "999988887777"}}),
            json!({"name": "projects/1/locations/global/workloadIdentityPools/ci"}),
        ];
        let found = workload_identity_providers(&pools, &providers);
        assert_eq!(found.dropped, 1);

        let github = &found.identities[0];
        assert_eq!(github.name, "ci/gh");
        assert_eq!(github.enabled, Some(false), "the pool is disabled");
        assert_eq!(
            github.attributes[attribute::ISSUER],
            "https://token.actions.githubusercontent.com"
        );
        assert_eq!(github.attributes[attribute::ALLOWED_AUDIENCES], "a, b");
        assert_eq!(
            github.attributes[attribute::ATTRIBUTE_MAPPING],
            "attribute.actor=assertion.actor; google.subject=assertion.sub"
        );
        assert_eq!(github.attributes[attribute::TRUSTED_KEYS].len(), 64);
        assert_eq!(github.attributes[attribute::POOL_STATE], "ACTIVE");

        let idp = &found.identities[1];
        assert_eq!(
            idp.attributes[attribute::ISSUER],
            "https://idp.example.com/saml"
        );
        assert_eq!(idp.attributes[attribute::STATE], "DELETED");

        let aws = &found.identities[2];
        assert_eq!(aws.attributes[attribute::PROVIDER_TYPE], "aws");
        assert_eq!(aws.attributes[attribute::ISSUER], "999988887777");
    }
}
