//! Offline input for the identity providers and IAM Identity Center: the
//! AWS CLI's JSON, recognized by its top-level keys.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::AccountInventory;
use super::details::normalize_timestamp;
use super::identity_center::{
    Assignment, IdentityCenterUser, PermissionSet, instance_of_permission_set,
};
use super::policy::account_of_arn;
use super::providers::{OidcProvider, SamlProvider};
use crate::model::{CollectionName, Completeness, Identity};

/// `aws iam get-open-id-connect-provider` output (it does not repeat the ARN).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct OidcDetails {
    url: String,
    #[serde(default, rename = "ClientIDList")]
    client_id_list: Vec<String>,
    #[serde(default)]
    thumbprint_list: Vec<String>,
    #[serde(default)]
    create_date: Option<String>,
}

/// One user of `aws identitystore list-users`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StoreUser {
    user_id: String,
    #[serde(default)]
    user_name: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    emails: Vec<StoreEmail>,
    #[serde(default)]
    user_status: Option<String>,
    #[serde(default)]
    identity_store_id: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    created_by: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StoreEmail {
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    primary: bool,
}

/// One entry of `aws sso-admin list-account-assignments`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AssignmentEntry {
    account_id: String,
    permission_set_arn: String,
    principal_type: String,
    principal_id: String,
}

/// An identity-provider or Identity Center export file.
pub(super) enum AccessFile {
    /// `aws iam list-open-id-connect-providers`: the providers' ARNs.
    OidcList(Vec<String>),
    /// `aws iam get-open-id-connect-provider`.
    OidcProvider(OidcDetails),
    /// `aws iam list-saml-providers`.
    SamlList(Vec<SamlProvider>),
    /// `aws identitystore list-users`, and whether it was cut short.
    Users(Vec<IdentityCenterUser>, bool),
    /// `aws sso-admin list-account-assignments`, and whether it was cut short.
    Assignments(Vec<AssignmentEntry>, bool),
    /// `aws sso-admin describe-permission-set`: its ARN and name.
    PermissionSet(String, String),
}

/// Returns true when an AWS CLI page reports that more results follow.
fn has_next_token(object: &serde_json::Map<String, Value>) -> bool {
    object
        .get("NextToken")
        .and_then(Value::as_str)
        .is_some_and(|token| !token.is_empty())
}

/// File names that mark an empty `Users` list as the identity store's.
const IDENTITY_STORE_FILE_PREFIX: &str = "identity-center-users";

/// Returns true for `aws identitystore list-users` output: a `Users` list
/// whose entries carry a `UserId` and no `Arn` (`aws iam list-users`
/// entries have an ARN). An empty list could be either, so it counts only
/// in a file whose name starts with `identity-center-users`.
fn is_identity_store_listing(object: &serde_json::Map<String, Value>, file_name: &str) -> bool {
    let Some(Value::Array(users)) = object.get("Users") else {
        return false;
    };
    if users.is_empty() {
        return file_name.starts_with(IDENTITY_STORE_FILE_PREFIX);
    }
    users
        .iter()
        .all(|user| user.get("UserId").is_some() && user.get("Arn").is_none())
}

/// Checks that a listed ARN is an IAM identity provider's
/// (`arn:aws:iam::<account>:<resource><name>`), because the ARN is the
/// provider's only id.
fn check_provider_arn(arn: &str, resource: &str) -> Result<(), String> {
    let name = arn
        .splitn(6, ':')
        .nth(5)
        .and_then(|path| path.strip_prefix(resource));
    let valid = arn.starts_with("arn:")
        && account_of_arn(arn).is_some()
        && name.is_some_and(|name| !name.is_empty());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{arn:?} is not an identity provider ARN of the form \
             arn:aws:iam::<account id>:{resource}<name>"
        ))
    }
}

impl AccessFile {
    /// Recognizes a file by its keys, and an empty user listing by its file
    /// name; `Ok(None)` when it matches none of them.
    pub(super) fn recognize(value: Value, file_name: &str) -> Result<Option<AccessFile>, String> {
        let Some(object) = value.as_object() else {
            return Ok(None);
        };
        let invalid = |what: &str, error: serde_json::Error| format!("invalid {what}: {error}");
        if let Some(list) = object.get("OpenIDConnectProviderList") {
            let entries: Vec<ArnEntry> = serde_json::from_value(list.clone())
                .map_err(|error| invalid("OIDC provider listing", error))?;
            let arns: Vec<String> = entries.into_iter().map(|entry| entry.arn).collect();
            for arn in &arns {
                check_provider_arn(arn, "oidc-provider/")?;
            }
            return Ok(Some(AccessFile::OidcList(arns)));
        }
        if object.contains_key("Url")
            && (object.contains_key("ClientIDList") || object.contains_key("ThumbprintList"))
        {
            let details = serde_json::from_value(value)
                .map_err(|error| invalid("OIDC provider details", error))?;
            return Ok(Some(AccessFile::OidcProvider(details)));
        }
        if let Some(list) = object.get("SAMLProviderList") {
            let providers: Vec<SamlProvider> = serde_json::from_value(list.clone())
                .map_err(|error| invalid("SAML provider listing", error))?;
            for provider in &providers {
                check_provider_arn(&provider.arn, "saml-provider/")?;
            }
            return Ok(Some(AccessFile::SamlList(providers)));
        }
        if is_identity_store_listing(object, file_name) {
            let truncated = has_next_token(object);
            let users: Vec<StoreUser> = serde_json::from_value(object["Users"].clone())
                .map_err(|error| invalid("identity store user listing", error))?;
            if users.iter().any(|user| user.user_id.trim().is_empty()) {
                return Err(
                    "an identity store user has an empty UserId; export the listing \
                            again with `aws identitystore list-users`"
                        .to_string(),
                );
            }
            let users = users.into_iter().map(store_user).collect();
            return Ok(Some(AccessFile::Users(users, truncated)));
        }
        if let Some(list) = object.get("AccountAssignments") {
            let truncated = has_next_token(object);
            let entries = serde_json::from_value(list.clone())
                .map_err(|error| invalid("account assignment listing", error))?;
            return Ok(Some(AccessFile::Assignments(entries, truncated)));
        }
        if let Some(set) = object.get("PermissionSet") {
            let described: DescribedSet = serde_json::from_value(set.clone())
                .map_err(|error| invalid("permission set description", error))?;
            return Ok(Some(AccessFile::PermissionSet(
                described.permission_set_arn,
                described.name,
            )));
        }
        Ok(None)
    }

    /// Names the kind of file in logs.
    pub(super) fn label(&self) -> &'static str {
        match self {
            AccessFile::OidcList(_) => "OIDC provider listing",
            AccessFile::OidcProvider(_) => "OIDC provider details",
            AccessFile::SamlList(_) => "SAML provider listing",
            AccessFile::Users(..) => "identity store user listing",
            AccessFile::Assignments(..) => "account assignment listing",
            AccessFile::PermissionSet(..) => "permission set description",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArnEntry {
    arn: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribedSet {
    name: String,
    permission_set_arn: String,
}

fn store_user(user: StoreUser) -> IdentityCenterUser {
    let email = user
        .emails
        .iter()
        .find(|email| email.primary)
        .or_else(|| user.emails.first())
        .and_then(|email| email.value.clone());
    IdentityCenterUser {
        user_name: user.user_name.unwrap_or_else(|| user.user_id.clone()),
        user_id: user.user_id,
        display_name: user.display_name,
        email,
        status: user.user_status,
        identity_store_id: user.identity_store_id.unwrap_or_default(),
        created: user.created_at.as_deref().map(normalize_timestamp),
        created_by: user.created_by,
    }
}

/// The identity-provider and Identity Center files of one account folder.
#[derive(Debug, Default)]
pub(super) struct AccessExport {
    oidc_arns: Option<Vec<String>>,
    oidc_details: Vec<OidcDetails>,
    saml: Option<Vec<SamlProvider>>,
    users: Option<Vec<IdentityCenterUser>>,
    truncated_users: Vec<String>,
    assignments: Option<Vec<AssignmentEntry>>,
    truncated_assignments: Vec<String>,
    permission_set_names: BTreeMap<String, String>,
}

impl AccessExport {
    /// Returns the accounts that the listed identity providers' ARNs name.
    pub(super) fn provider_accounts(&self) -> BTreeSet<String> {
        let oidc = self.oidc_arns.iter().flatten();
        let saml = self.saml.iter().flatten().map(|provider| &provider.arn);
        oidc.chain(saml)
            .filter_map(|arn| account_of_arn(arn))
            .map(str::to_string)
            .collect()
    }

    /// Adds one file; several pages of one listing are joined.
    pub(super) fn add(&mut self, file: AccessFile, path: &Path) {
        let name = path.display().to_string();
        match file {
            AccessFile::OidcList(arns) => self.oidc_arns.get_or_insert_default().extend(arns),
            AccessFile::OidcProvider(details) => self.oidc_details.push(details),
            AccessFile::SamlList(providers) => self.saml.get_or_insert_default().extend(providers),
            AccessFile::Users(users, truncated) => {
                self.users.get_or_insert_default().extend(users);
                if truncated {
                    self.truncated_users.push(name);
                }
            }
            AccessFile::Assignments(entries, truncated) => {
                self.assignments.get_or_insert_default().extend(entries);
                if truncated {
                    self.truncated_assignments.push(name);
                }
            }
            AccessFile::PermissionSet(arn, set_name) => {
                self.permission_set_names.insert(arn, set_name);
            }
        }
    }

    /// Adds the records to the inventory and marks what the export lacks.
    pub(super) fn apply(self, inventory: &mut AccountInventory) {
        self.apply_oidc(inventory);
        match &self.saml {
            Some(providers) => {
                let identities = providers.iter().map(SamlProvider::to_identity).collect();
                inventory.set_listed(CollectionName::SamlProviders, Ok(identities));
            }
            None => inventory.set_completeness(
                CollectionName::SamlProviders,
                missing("the export has no `aws iam list-saml-providers` output"),
            ),
        }
        let has_identity_center = self.users.is_some()
            || self.assignments.is_some()
            || !self.permission_set_names.is_empty();
        if has_identity_center {
            self.apply_identity_center(inventory);
        }
    }

    fn apply_oidc(&self, inventory: &mut AccountInventory) {
        let Some(arns) = &self.oidc_arns else {
            inventory.set_completeness(
                CollectionName::OidcProviders,
                missing("the export has no `aws iam list-open-id-connect-providers` output"),
            );
            return;
        };
        let by_url: HashMap<&str, &OidcDetails> = self
            .oidc_details
            .iter()
            .map(|details| (strip_scheme(&details.url), details))
            .collect();
        let mut lacking = Vec::new();
        let mut identities = Vec::new();
        for arn in arns {
            let url = arn
                .rsplit_once(":oidc-provider/")
                .map_or("", |(_, url)| url);
            let provider = match by_url.get(url) {
                Some(details) => OidcProvider {
                    arn: arn.clone(),
                    url: strip_scheme(&details.url).to_string(),
                    client_ids: details.client_id_list.clone(),
                    thumbprints: details.thumbprint_list.clone(),
                    created: details.create_date.as_deref().map(normalize_timestamp),
                },
                None => {
                    lacking.push(arn.as_str());
                    OidcProvider {
                        arn: arn.clone(),
                        url: url.to_string(),
                        ..OidcProvider::default()
                    }
                }
            };
            identities.push(provider.to_identity());
        }
        inventory.set_listed(CollectionName::OidcProviders, Ok(identities));
        if !lacking.is_empty() {
            let reason = format!(
                "no `aws iam get-open-id-connect-provider` output for {}; export it for each \
                 provider so its client ids and thumbprints can be compared",
                lacking.join(", ")
            );
            inventory.set_completeness(CollectionName::OidcProviders, incomplete(reason));
        }
    }

    fn apply_identity_center(self, inventory: &mut AccountInventory) {
        let user_names: HashMap<String, String> = self
            .users
            .iter()
            .flatten()
            .map(|user| (user.user_id.clone(), user.user_name.clone()))
            .collect();
        match &self.users {
            Some(users) => {
                let identities = users.iter().map(IdentityCenterUser::to_identity).collect();
                inventory.set_listed(CollectionName::IdentityCenterUsers, Ok(identities));
                if !self.truncated_users.is_empty() {
                    inventory.set_completeness(
                        CollectionName::IdentityCenterUsers,
                        incomplete(truncated_reason(&self.truncated_users)),
                    );
                }
            }
            None => inventory.set_completeness(
                CollectionName::IdentityCenterUsers,
                missing("the export has no `aws identitystore list-users` output"),
            ),
        }

        let Some(entries) = &self.assignments else {
            inventory.set_completeness(
                CollectionName::PermissionSetAssignments,
                missing("the export has no `aws sso-admin list-account-assignments` output"),
            );
            return;
        };
        // NOTE: the AWS CLI's permission-set policy listings do not name
        // their permission set, so offline assignments carry no admin
        // evaluation. The export cannot show either whether every
        // (account, permission set) pair was listed; missing pairs read as
        // removed assignments.
        let identities: Vec<Identity> = entries
            .iter()
            .map(|entry| self.assignment_identity(entry, &user_names))
            .collect();
        inventory.set_listed(CollectionName::PermissionSetAssignments, Ok(identities));
        if !self.truncated_assignments.is_empty() {
            inventory.set_completeness(
                CollectionName::PermissionSetAssignments,
                incomplete(truncated_reason(&self.truncated_assignments)),
            );
        }
    }

    fn assignment_identity(
        &self,
        entry: &AssignmentEntry,
        user_names: &HashMap<String, String>,
    ) -> Identity {
        let permission_set = PermissionSet {
            arn: entry.permission_set_arn.clone(),
            name: self
                .permission_set_names
                .get(&entry.permission_set_arn)
                .cloned(),
            admin_grants: Vec::new(),
        };
        let assignment = Assignment {
            instance_arn: instance_of_permission_set(&entry.permission_set_arn).unwrap_or_default(),
            target_account: entry.account_id.clone(),
            principal_type: entry.principal_type.clone(),
            principal_id: entry.principal_id.clone(),
        };
        assignment.to_identity(&permission_set, user_names)
    }
}

fn strip_scheme(url: &str) -> &str {
    url.trim_start_matches("https://")
}

fn missing(reason: &str) -> Completeness {
    Completeness::NotCollected {
        reason: reason.to_string(),
        kept_previous: false,
    }
}

fn incomplete(reason: String) -> Completeness {
    Completeness::Incomplete {
        reason,
        kept_previous: false,
        unlisted: Vec::new(),
    }
}

fn truncated_reason(files: &[String]) -> String {
    format!(
        "{} cut short (NextToken); export again without --max-items",
        files.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> serde_json::Map<String, Value> {
        value.as_object().expect("object").clone()
    }

    #[test]
    fn store_user_without_id_rejected() {
        let listing = json!({"Users": [{"UserId": "", "IdentityStoreId": "d-1"}]});
        let Err(error) = AccessFile::recognize(listing, "users.json") else {
            panic!("a user with an empty UserId was accepted");
        };
        assert!(error.contains("empty UserId"), "{error}");
    }

    #[test]
    fn identity_store_listing_is_told_from_iam() {
        let store = object(json!({"Users": [{"UserId": "u-1", "IdentityStoreId": "d-1"}]}));
        assert!(is_identity_store_listing(&store, "users.json"));
        let iam = object(json!({"Users": [{"UserId": "AIDA1", "Arn": "arn:aws:iam::1:user/a"}]}));
        assert!(!is_identity_store_listing(&iam, "users.json"));
        let empty = object(json!({"Users": []}));
        assert!(!is_identity_store_listing(&empty, "users.json"));
        assert!(is_identity_store_listing(
            &empty,
            "identity-center-users.json"
        ));
    }

    #[test]
    fn permission_set_description_is_recognized() {
        let file = AccessFile::recognize(
            json!({"PermissionSet": {"Name": "Admin", "PermissionSetArn": "arn:aws:sso:::permissionSet/ssoins-1/ps-1"}}),
            "set.json",
        )
        .expect("valid")
        .expect("recognized");
        assert!(
            matches!(file, AccessFile::PermissionSet(arn, name) if name == "Admin" && arn.ends_with("ps-1"))
        );
        let unknown = AccessFile::recognize(json!({"Roles": []}), "roles.json").expect("valid");
        assert!(unknown.is_none());
    }
}
