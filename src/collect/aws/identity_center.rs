//! IAM Identity Center: the identity store's users and the permission-set
//! assignments that give users and groups roles in the organization's
//! accounts. Listed only for accounts whose config enables it.
//!
//! Call plan, for U users, P permission sets and A accounts each set is
//! provisioned to. `sso:ListInstances` runs once, unless the config names
//! both the instance and its identity store. `identitystore:ListUsers`
//! takes `ceil(U/100)` pages and `sso:ListPermissionSets` `ceil(P/100)`.
//! Each permission set then costs `DescribePermissionSet`,
//! `ListManagedPoliciesInPermissionSet`, `GetInlinePolicyForPermissionSet`
//! and `ListAccountsForProvisionedPermissionSet`, plus one
//! `ListAccountAssignments` per account: `4P + A·P` calls beyond the
//! listings. Every listing is paged with `NextToken`, so larger ones cost
//! a call per page more.

use std::collections::HashMap;

use super::api::{Page, denied_hint, describe_error, read_pages};
use super::details::{format_timestamp, normalize_timestamp};
use super::policy::{ADMINISTRATOR_ACCESS_ARN, admin_reason, decode_document_text};
use crate::model::{AdminGrant, Identity, IdentityKind, aws_attribute};
use crate::settings::IdentityCenterSettings;

/// One identity store user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityCenterUser {
    /// The identity store's immutable `UserId`.
    pub user_id: String,
    /// The sign-in name.
    pub user_name: String,
    /// The display name.
    pub display_name: Option<String>,
    /// The primary email address, or the first one.
    pub email: Option<String>,
    /// `ENABLED` or `DISABLED`, where the store reports it.
    pub status: Option<String>,
    /// The identity store that contains the user.
    pub identity_store_id: String,
    /// Creation time, RFC 3339 in UTC.
    pub created: Option<String>,
    /// The principal that created the user, where the store reports it.
    pub created_by: Option<String>,
}

impl IdentityCenterUser {
    /// Builds the user's record.
    pub fn to_identity(&self) -> Identity {
        let mut identity = Identity::new(
            &self.user_id,
            IdentityKind::AwsIdentityCenterUser,
            &self.user_name,
        );
        identity.created = self.created.as_deref().map(normalize_timestamp);
        identity.enabled = self.status.as_deref().map(|status| status != "DISABLED");
        let attributes = [
            (
                aws_attribute::IDENTITY_STORE_ID,
                Some(&self.identity_store_id),
            ),
            (aws_attribute::DISPLAY_NAME, self.display_name.as_ref()),
            (aws_attribute::EMAIL, self.email.as_ref()),
            ("created_by", self.created_by.as_ref()),
        ];
        for (key, value) in attributes {
            if let Some(value) = value.filter(|value| !value.is_empty()) {
                identity.attributes.insert(key.to_string(), value.clone());
            }
        }
        identity
    }
}

/// One permission set, with the grants that make it admin-like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionSet {
    /// `arn:aws:sso:::permissionSet/ssoins-.../ps-...`.
    pub arn: String,
    /// The name, when it was read.
    pub name: Option<String>,
    /// Grants that make it admin: `AdministratorAccess` attached or an
    /// inline policy that allows `*` on `*`.
    pub admin_grants: Vec<AdminGrant>,
}

/// One assignment of a permission set to a user or group in an account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// The Identity Center instance.
    pub instance_arn: String,
    /// The account the permission set is assigned in.
    pub target_account: String,
    /// `USER` or `GROUP`.
    pub principal_type: String,
    /// The identity store id of the user or group.
    pub principal_id: String,
}

/// Returns the id that ends a permission set's ARN (`ps-...`).
fn permission_set_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Returns the instance ARN that a permission set's ARN names
/// (`arn:aws:sso:::permissionSet/ssoins-x/ps-y` belongs to `arn:aws:sso:::instance/ssoins-x`).
pub fn instance_of_permission_set(arn: &str) -> Option<String> {
    let (prefix, rest) = arn.split_once(":permissionSet/")?;
    let (instance, _) = rest.split_once('/')?;
    Some(format!("{prefix}:instance/{instance}"))
}

impl Assignment {
    /// Builds the assignment's record. `user_names` maps identity store
    /// user ids to names, so the record names the assigned user.
    pub fn to_identity(
        &self,
        permission_set: &PermissionSet,
        user_names: &HashMap<String, String>,
    ) -> Identity {
        let set_id = permission_set_id(&permission_set.arn);
        let id = format!(
            "{}/{set_id}/{}/{}",
            self.target_account, self.principal_type, self.principal_id
        );
        let set_name = permission_set.name.as_deref().unwrap_or(set_id);
        let name = format!(
            "{set_name} for {} {} in {}",
            self.principal_type, self.principal_id, self.target_account
        );
        let mut identity = Identity::new(id, IdentityKind::AwsPermissionSetAssignment, name);
        identity.arn = Some(permission_set.arn.clone());
        identity.admin_grants = permission_set.admin_grants.clone();

        let mut attributes = vec![
            (aws_attribute::INSTANCE_ARN, self.instance_arn.clone()),
            (aws_attribute::TARGET_ACCOUNT, self.target_account.clone()),
            (aws_attribute::PRINCIPAL_TYPE, self.principal_type.clone()),
            (aws_attribute::PRINCIPAL_ID, self.principal_id.clone()),
        ];
        if let Some(name) = &permission_set.name {
            attributes.push((aws_attribute::PERMISSION_SET_NAME, name.clone()));
        }
        if let Some(user_name) = user_names.get(&self.principal_id) {
            attributes.push((aws_attribute::PRINCIPAL_NAME, user_name.clone()));
        }
        for (key, value) in attributes {
            identity.attributes.insert(key.to_string(), value);
        }
        identity
    }
}

/// AWS managed policies that grant admin by idrift's rule (`*` or `iam:*`
/// on `*`), with the reason recorded. A permission set names managed
/// policies by ARN only, so their documents are not read.
const ADMIN_MANAGED_POLICIES: [(&str, &str); 2] = [
    (ADMINISTRATOR_ACCESS_ARN, "AdministratorAccess"),
    (
        "arn:aws:iam::aws:policy/IAMFullAccess",
        "IAMFullAccess (Allow iam:* on *)",
    ),
];

/// Returns the admin grants of a permission set from its managed policy
/// ARNs and its inline policy document, if it has one.
// NOTE: customer managed policy references and permissions boundaries are
// not read, because their documents live in each target account.
pub fn permission_set_grants(
    managed_arns: &[String],
    inline_policy: Option<&str>,
) -> Result<Vec<AdminGrant>, String> {
    let mut grants = Vec::new();
    for (arn, reason) in ADMIN_MANAGED_POLICIES {
        if managed_arns.iter().any(|attached| attached == arn) {
            grants.push(AdminGrant {
                via: "permission_set_managed".to_string(),
                policy: arn.to_string(),
                group: None,
                group_id: None,
                reason: reason.to_string(),
                assignment_id: None,
            });
        }
    }
    let inline = inline_policy.filter(|text| !text.trim().is_empty());
    if let Some(text) = inline {
        let document = decode_document_text(text)?;
        if let Some(reason) = admin_reason(&document) {
            grants.push(AdminGrant {
                via: "permission_set_inline".to_string(),
                policy: "inline".to_string(),
                group: None,
                group_id: None,
                reason,
                assignment_id: None,
            });
        }
    }
    Ok(grants)
}

/// The SDK clients Identity Center needs, in its own region.
pub struct Clients {
    /// sso-admin, for instances, permission sets and assignments.
    pub sso_admin: aws_sdk_ssoadmin::Client,
    /// identitystore, for users.
    pub identity_store: aws_sdk_identitystore::Client,
}

/// The records of one Identity Center listing, or why each part failed.
pub struct Listing {
    /// User records, or why they could not be listed.
    pub users: Result<Vec<Identity>, String>,
    /// Assignment records, or why they could not be listed.
    pub assignments: Result<Vec<Identity>, String>,
}

/// The instance whose users and assignments are read.
struct Instance {
    arn: String,
    identity_store_id: String,
}

/// Page size for Identity Center listings (the identity store's maximum).
const PAGE_SIZE: i32 = 100;

/// Builds a page from a `NextToken`-paged response; an empty token ends the listing.
fn token_page<T>(items: T, next_token: Option<&str>) -> Page<T> {
    Page {
        items,
        is_truncated: next_token.is_some_and(|token| !token.is_empty()),
        marker: next_token.map(str::to_string),
    }
}

/// Lists the users and assignments of the configured instance.
pub async fn collect(
    clients: &Clients,
    settings: &IdentityCenterSettings,
    account_id: &str,
) -> Listing {
    let instance = match find_instance(&clients.sso_admin, settings, account_id).await {
        Ok(instance) => instance,
        Err(reason) => {
            return Listing {
                users: Err(reason.clone()),
                assignments: Err(reason),
            };
        }
    };
    let users = list_users(&clients.identity_store, &instance, account_id).await;
    // NOTE: when the user listing fails, assignments lose their
    // principal_name attribute, which the diff reports as an info-level
    // attribute change. The assignments themselves are still compared.
    let user_names: HashMap<String, String> = users
        .iter()
        .flatten()
        .map(|user| (user.id.clone(), user.name.clone()))
        .collect();
    let assignments =
        list_assignments(&clients.sso_admin, &instance, account_id, &user_names).await;
    Listing { users, assignments }
}

/// Finds the instance the config names, or the only one there is.
async fn find_instance(
    sso_admin: &aws_sdk_ssoadmin::Client,
    settings: &IdentityCenterSettings,
    account_id: &str,
) -> Result<Instance, String> {
    if let (Some(arn), Some(store)) = (&settings.instance_arn, &settings.identity_store_id) {
        return Ok(Instance {
            arn: arn.clone(),
            identity_store_id: store.clone(),
        });
    }

    const ACTION: &str = "sso:ListInstances";
    let pages = read_pages(ACTION, |token| async move {
        let output = sso_admin
            .list_instances()
            .set_next_token(token)
            .send()
            .await
            .map_err(|error| denied_hint(account_id, ACTION, &describe_error(ACTION, &error)))?;
        let found: Vec<Instance> = output
            .instances()
            .iter()
            .filter_map(|instance| {
                Some(Instance {
                    arn: instance.instance_arn()?.to_string(),
                    identity_store_id: instance.identity_store_id()?.to_string(),
                })
            })
            .collect();
        Ok(token_page(found, output.next_token()))
    })
    .await?;

    let is_selected = |instance: &Instance| {
        settings
            .instance_arn
            .as_ref()
            .is_none_or(|arn| *arn == instance.arn)
            && settings
                .identity_store_id
                .as_ref()
                .is_none_or(|store| *store == instance.identity_store_id)
    };
    let mut matching: Vec<Instance> = pages.into_iter().flatten().filter(is_selected).collect();
    match matching.len() {
        1 => Ok(matching.remove(0)),
        0 => Err(format!(
            "account {account_id}: sso:ListInstances found no IAM Identity Center instance{} in \
             this region; set identity_center_region to the instance's region",
            match (&settings.instance_arn, &settings.identity_store_id) {
                (Some(arn), _) => format!(" {arn}"),
                (None, Some(store)) => format!(" with identity store {store}"),
                (None, None) => String::new(),
            }
        )),
        _ => Err(format!(
            "account {account_id}: sso:ListInstances found {} IAM Identity Center instances ({}); \
             set identity_center_instance_arn to the one to read",
            matching.len(),
            matching
                .iter()
                .map(|instance| instance.arn.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Lists every user of the instance's identity store.
async fn list_users(
    identity_store: &aws_sdk_identitystore::Client,
    instance: &Instance,
    account_id: &str,
) -> Result<Vec<Identity>, String> {
    const ACTION: &str = "identitystore:ListUsers";
    let store = instance.identity_store_id.as_str();
    let pages = read_pages(ACTION, |token| async move {
        let output = identity_store
            .list_users()
            .identity_store_id(store)
            .max_results(PAGE_SIZE)
            .set_next_token(token)
            .send()
            .await
            .map_err(|error| {
                let description = describe_error(&format!("{ACTION} of {store}"), &error);
                denied_hint(account_id, ACTION, &description)
            })?;
        let users: Vec<Identity> = output
            .users()
            .iter()
            .map(|user| convert_user(user).to_identity())
            .collect();
        Ok(token_page(users, output.next_token()))
    })
    .await?;
    Ok(pages.into_iter().flatten().collect())
}

fn convert_user(user: &aws_sdk_identitystore::types::User) -> IdentityCenterUser {
    let emails = user.emails();
    let email = emails
        .iter()
        .find(|email| email.primary())
        .or_else(|| emails.first())
        .and_then(|email| email.value())
        .map(str::to_string);
    IdentityCenterUser {
        user_id: user.user_id().to_string(),
        user_name: user.user_name().unwrap_or_default().to_string(),
        display_name: user.display_name().map(str::to_string),
        email,
        status: user.user_status().map(|status| status.as_str().to_string()),
        identity_store_id: user.identity_store_id().to_string(),
        created: user.created_at().map(format_timestamp),
        created_by: user.created_by().map(str::to_string),
    }
}

/// Lists every assignment of every permission set of the instance.
async fn list_assignments(
    sso_admin: &aws_sdk_ssoadmin::Client,
    instance: &Instance,
    account_id: &str,
    user_names: &HashMap<String, String>,
) -> Result<Vec<Identity>, String> {
    let mut identities = Vec::new();
    for arn in list_permission_sets(sso_admin, instance, account_id).await? {
        let permission_set = describe_permission_set(sso_admin, instance, &arn, account_id).await?;
        for target in list_provisioned_accounts(sso_admin, instance, &arn, account_id).await? {
            let assignments =
                list_account_assignments(sso_admin, instance, &arn, &target, account_id).await?;
            identities.extend(
                assignments
                    .iter()
                    .map(|assignment| assignment.to_identity(&permission_set, user_names)),
            );
        }
    }
    Ok(identities)
}

async fn list_permission_sets(
    sso_admin: &aws_sdk_ssoadmin::Client,
    instance: &Instance,
    account_id: &str,
) -> Result<Vec<String>, String> {
    const ACTION: &str = "sso:ListPermissionSets";
    let pages = read_pages(ACTION, |token| async move {
        let output = sso_admin
            .list_permission_sets()
            .instance_arn(&instance.arn)
            .max_results(PAGE_SIZE)
            .set_next_token(token)
            .send()
            .await
            .map_err(|error| denied_hint(account_id, ACTION, &describe_error(ACTION, &error)))?;
        Ok(token_page(
            output.permission_sets().to_vec(),
            output.next_token(),
        ))
    })
    .await?;
    Ok(pages.into_iter().flatten().collect())
}

/// Reads a permission set's name and the policies that can make it admin.
async fn describe_permission_set(
    sso_admin: &aws_sdk_ssoadmin::Client,
    instance: &Instance,
    arn: &str,
    account_id: &str,
) -> Result<PermissionSet, String> {
    const DESCRIBE: &str = "sso:DescribePermissionSet";
    const MANAGED: &str = "sso:ListManagedPoliciesInPermissionSet";
    const INLINE: &str = "sso:GetInlinePolicyForPermissionSet";
    let fail = |action: &str, description: String| denied_hint(account_id, action, &description);

    let described = sso_admin
        .describe_permission_set()
        .instance_arn(&instance.arn)
        .permission_set_arn(arn)
        .send()
        .await
        .map_err(|error| {
            fail(
                DESCRIBE,
                describe_error(&format!("{DESCRIBE} {arn}"), &error),
            )
        })?;
    let name = described
        .permission_set()
        .and_then(|set| set.name())
        .map(str::to_string);

    let listing = format!("{MANAGED} {arn}");
    let pages = read_pages(&listing, |token| async move {
        let output = sso_admin
            .list_managed_policies_in_permission_set()
            .instance_arn(&instance.arn)
            .permission_set_arn(arn)
            .set_next_token(token)
            .send()
            .await
            .map_err(|error| fail(MANAGED, describe_error(&format!("{MANAGED} {arn}"), &error)))?;
        let arns: Vec<String> = output
            .attached_managed_policies()
            .iter()
            .filter_map(|policy| policy.arn().map(str::to_string))
            .collect();
        Ok(token_page(arns, output.next_token()))
    })
    .await?;
    let managed: Vec<String> = pages.into_iter().flatten().collect();

    let inline = sso_admin
        .get_inline_policy_for_permission_set()
        .instance_arn(&instance.arn)
        .permission_set_arn(arn)
        .send()
        .await
        .map_err(|error| fail(INLINE, describe_error(&format!("{INLINE} {arn}"), &error)))?;
    let admin_grants = permission_set_grants(&managed, inline.inline_policy())
        .map_err(|error| format!("account {account_id}: inline policy of {arn}: {error}"))?;
    Ok(PermissionSet {
        arn: arn.to_string(),
        name,
        admin_grants,
    })
}

async fn list_provisioned_accounts(
    sso_admin: &aws_sdk_ssoadmin::Client,
    instance: &Instance,
    arn: &str,
    account_id: &str,
) -> Result<Vec<String>, String> {
    const ACTION: &str = "sso:ListAccountsForProvisionedPermissionSet";
    let listing = format!("{ACTION} {arn}");
    let pages = read_pages(&listing, |token| async move {
        let output = sso_admin
            .list_accounts_for_provisioned_permission_set()
            .instance_arn(&instance.arn)
            .permission_set_arn(arn)
            .set_next_token(token)
            .send()
            .await
            .map_err(|error| {
                denied_hint(
                    account_id,
                    ACTION,
                    &describe_error(&format!("{ACTION} {arn}"), &error),
                )
            })?;
        Ok(token_page(
            output.account_ids().to_vec(),
            output.next_token(),
        ))
    })
    .await?;
    let mut accounts: Vec<String> = pages.into_iter().flatten().collect();
    accounts.sort();
    accounts.dedup();
    Ok(accounts)
}

async fn list_account_assignments(
    sso_admin: &aws_sdk_ssoadmin::Client,
    instance: &Instance,
    arn: &str,
    target: &str,
    account_id: &str,
) -> Result<Vec<Assignment>, String> {
    const ACTION: &str = "sso:ListAccountAssignments";
    let listing = format!("{ACTION} {arn} in account {target}");
    let pages = read_pages(&listing, |token| async move {
        let output = sso_admin
            .list_account_assignments()
            .instance_arn(&instance.arn)
            .account_id(target)
            .permission_set_arn(arn)
            .max_results(PAGE_SIZE)
            .set_next_token(token)
            .send()
            .await
            .map_err(|error| {
                let operation = format!("{ACTION} {arn} in account {target}");
                denied_hint(account_id, ACTION, &describe_error(&operation, &error))
            })?;
        // An assignment without its principal cannot be keyed, and leaving
        // it out would read as a removed assignment, so it fails the listing.
        let assignments = output
            .account_assignments()
            .iter()
            .map(|assignment| {
                let principal_type = assignment.principal_type().map(|kind| kind.as_str());
                let principal_id = assignment.principal_id().filter(|id| !id.is_empty());
                match (principal_type, principal_id) {
                    (Some(principal_type), Some(principal_id)) => Ok(Assignment {
                        instance_arn: instance.arn.clone(),
                        target_account: assignment.account_id().unwrap_or(target).to_string(),
                        principal_type: principal_type.to_string(),
                        principal_id: principal_id.to_string(),
                    }),
                    _ => Err(format!(
                        "{ACTION} {arn} in account {target}: an assignment has no principal type \
                         or id"
                    )),
                }
            })
            .collect::<Result<Vec<Assignment>, String>>()?;
        Ok(token_page(assignments, output.next_token()))
    })
    .await?;
    Ok(pages.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_arn_comes_from_permission_set_arn() {
        assert_eq!(
            instance_of_permission_set("arn:aws:sso:::permissionSet/ssoins-1234/ps-abcd"),
            Some("arn:aws:sso:::instance/ssoins-1234".to_string())
        );
        assert_eq!(instance_of_permission_set("arn:aws:sso:::instance/x"), None);
    }

    #[test]
    fn admin_permission_sets_are_recognized() {
        let managed = vec![ADMINISTRATOR_ACCESS_ARN.to_string()];
        assert_eq!(permission_set_grants(&managed, None).unwrap().len(), 1);
        let iam = vec!["arn:aws:iam::aws:policy/IAMFullAccess".to_string()];
        assert_eq!(permission_set_grants(&iam, None).unwrap().len(), 1);
        let star = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
        let grants = permission_set_grants(&[], Some(star)).unwrap();
        assert_eq!(grants[0].via, "permission_set_inline");
        let read_only = vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".to_string()];
        assert!(
            permission_set_grants(&read_only, Some(""))
                .unwrap()
                .is_empty()
        );
        assert!(permission_set_grants(&[], Some("not json")).is_err());
    }
}
