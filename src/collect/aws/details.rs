//! The account authorization details that both the API and the offline
//! export produce, and how they become identity records.
//!
//! The field names follow `GetAccountAuthorizationDetails` as the AWS CLI
//! prints it, so an export deserializes straight into these types. The API
//! collector fills the same types from the SDK's output.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Deserialize;
use serde_json::Value;
use tracing::warn;

use super::policy::{self, ADMINISTRATOR_ACCESS_ARN};
use crate::model::{AdminGrant, Identity, IdentityKind, aws_attribute};

/// A managed policy attached to a user, role or group.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttachedPolicy {
    /// The policy ARN.
    #[serde(default)]
    pub policy_arn: String,
    /// The policy name.
    #[serde(default)]
    pub policy_name: String,
}

/// An inline policy with its document, URL-encoded or parsed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InlinePolicy {
    /// The inline policy name.
    #[serde(default)]
    pub policy_name: String,
    /// The document as it arrived.
    #[serde(default)]
    pub policy_document: Value,
}

/// A tag on a user or role.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// Tag key.
    pub key: String,
    /// Tag value.
    #[serde(default)]
    pub value: String,
}

/// One entry of `UserDetailList`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserDetail {
    /// Immutable id (`AIDA...`).
    pub user_id: String,
    /// User name.
    pub user_name: String,
    /// IAM path.
    #[serde(default)]
    pub path: Option<String>,
    /// ARN.
    #[serde(default)]
    pub arn: Option<String>,
    /// Creation time as the source wrote it.
    #[serde(default)]
    pub create_date: Option<String>,
    /// Names of the user's groups.
    #[serde(default)]
    pub group_list: Vec<String>,
    /// Managed policies attached to the user.
    #[serde(default)]
    pub attached_managed_policies: Vec<AttachedPolicy>,
    /// Inline policies.
    #[serde(default)]
    pub user_policy_list: Vec<InlinePolicy>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// One entry of `RoleDetailList`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoleDetail {
    /// Immutable id (`AROA...`).
    pub role_id: String,
    /// Role name.
    pub role_name: String,
    /// IAM path.
    #[serde(default)]
    pub path: Option<String>,
    /// ARN.
    #[serde(default)]
    pub arn: Option<String>,
    /// Creation time as the source wrote it.
    #[serde(default)]
    pub create_date: Option<String>,
    /// The trust policy as it arrived.
    #[serde(default)]
    pub assume_role_policy_document: Value,
    /// Managed policies attached to the role.
    #[serde(default)]
    pub attached_managed_policies: Vec<AttachedPolicy>,
    /// Inline policies.
    #[serde(default)]
    pub role_policy_list: Vec<InlinePolicy>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The instance profiles that hold the role.
    #[serde(default)]
    pub instance_profile_list: Vec<InstanceProfileDetail>,
}

/// One entry of a role's `InstanceProfileList`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceProfileDetail {
    /// Immutable id (`AIPA...`).
    pub instance_profile_id: String,
    /// Instance profile name.
    pub instance_profile_name: String,
    /// IAM path.
    #[serde(default)]
    pub path: Option<String>,
    /// ARN.
    #[serde(default)]
    pub arn: Option<String>,
    /// Creation time as the source wrote it.
    #[serde(default)]
    pub create_date: Option<String>,
    /// The roles in the profile (at most one in current AWS accounts).
    #[serde(default)]
    pub roles: Vec<InstanceProfileRole>,
}

/// A role inside an instance profile; only its name is read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceProfileRole {
    /// Role name.
    #[serde(default)]
    pub role_name: String,
}

/// One entry of `GroupDetailList`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GroupDetail {
    /// Group name, as users' `GroupList` names it.
    pub group_name: String,
    /// Managed policies attached to the group.
    #[serde(default)]
    pub attached_managed_policies: Vec<AttachedPolicy>,
    /// Inline policies.
    #[serde(default)]
    pub group_policy_list: Vec<InlinePolicy>,
}

/// One version of a managed policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyVersion {
    /// The document as it arrived.
    #[serde(default)]
    pub document: Value,
    /// True for the version in force.
    #[serde(default)]
    pub is_default_version: bool,
}

/// One entry of `Policies`: a managed policy with its versions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ManagedPolicy {
    /// The policy ARN.
    pub arn: String,
    /// Every version the listing returned.
    #[serde(default)]
    pub policy_version_list: Vec<PolicyVersion>,
}

/// The four lists of `GetAccountAuthorizationDetails`, across all pages.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuthorizationDetails {
    /// Users.
    #[serde(default)]
    pub user_detail_list: Vec<UserDetail>,
    /// Roles.
    #[serde(default)]
    pub role_detail_list: Vec<RoleDetail>,
    /// Groups.
    #[serde(default)]
    pub group_detail_list: Vec<GroupDetail>,
    /// Managed policies.
    #[serde(default)]
    pub policies: Vec<ManagedPolicy>,
}

/// Identities built from authorization details, with what went wrong on the way.
#[derive(Debug, Default)]
pub struct BuiltIdentities {
    /// Users and roles, with groups, trust and admin grants filled in.
    pub identities: Vec<Identity>,
    /// Problems that lose no identity but leave a privilege unevaluated.
    pub privilege_problems: Vec<String>,
    /// Records that could not be kept: empty or shared immutable ids.
    pub listing_problems: Vec<String>,
    /// Role trust policies that could not be read, so the roles' trust
    /// principals are unknown.
    pub trust_problems: Vec<String>,
}

/// Normalizes an IAM timestamp to RFC 3339 in UTC (`2019-12-18T19:10:08Z`).
///
/// Accepts the wire form, the AWS CLI's `+00:00` form and Python's
/// `2019-12-18 19:10:08+00:00`. Anything else is kept as written.
pub fn normalize_timestamp(raw: &str) -> String {
    use aws_smithy_types::DateTime;
    use aws_smithy_types::date_time::Format;

    let candidate = raw.trim().replacen(' ', "T", 1);
    match DateTime::from_str(&candidate, Format::DateTimeWithOffset) {
        Ok(parsed) => format_timestamp(&parsed),
        Err(_) => raw.to_string(),
    }
}

/// Formats an SDK timestamp as RFC 3339 in UTC, to the second.
pub fn format_timestamp(time: &aws_smithy_types::DateTime) -> String {
    use aws_smithy_types::date_time::Format;

    let whole_seconds = aws_smithy_types::DateTime::from_secs(time.secs());
    whole_seconds
        .fmt(Format::DateTime)
        .unwrap_or_else(|_| time.secs().to_string())
}

impl AuthorizationDetails {
    /// Appends another page of details.
    pub fn extend(&mut self, page: AuthorizationDetails) {
        self.user_detail_list.extend(page.user_detail_list);
        self.role_detail_list.extend(page.role_detail_list);
        self.group_detail_list.extend(page.group_detail_list);
        self.policies.extend(page.policies);
    }

    /// Builds user and role records with their admin grants.
    pub fn build_identities(&self) -> BuiltIdentities {
        let mut built = BuiltIdentities::default();
        let policies = self.managed_policy_documents(&mut built.privilege_problems);
        built
            .privilege_problems
            .extend(self.missing_policy_documents(&policies));
        let groups: HashMap<&str, &GroupDetail> = self
            .group_detail_list
            .iter()
            .map(|group| (group.group_name.as_str(), group))
            .collect();

        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for user in &self.user_detail_list {
            if is_duplicate(
                &mut seen,
                &user.user_id,
                &user.user_name,
                &mut built.listing_problems,
            ) {
                continue;
            }
            let identity = build_user(user, &groups, &policies, &mut built.privilege_problems);
            built.identities.push(identity);
        }
        for role in &self.role_detail_list {
            if is_duplicate(
                &mut seen,
                &role.role_id,
                &role.role_name,
                &mut built.listing_problems,
            ) {
                continue;
            }
            let identity = build_role(role, &policies, &mut built);
            built.identities.push(identity);
        }
        let profiles = build_instance_profiles(
            &self.role_detail_list,
            &built.identities,
            &mut built.listing_problems,
        );
        built.identities.extend(profiles);
        built
    }

    /// Lists attached managed policies whose document the listing lacks
    /// (an export made with `--filter`, say). Without the document a policy
    /// cannot be judged, so it must not read as "no admin".
    fn missing_policy_documents(&self, documents: &HashMap<String, Value>) -> Vec<String> {
        let users = self
            .user_detail_list
            .iter()
            .flat_map(|user| &user.attached_managed_policies);
        let roles = self
            .role_detail_list
            .iter()
            .flat_map(|role| &role.attached_managed_policies);
        let groups = self
            .group_detail_list
            .iter()
            .flat_map(|group| &group.attached_managed_policies);
        let missing: BTreeSet<&str> = users
            .chain(roles)
            .chain(groups)
            .map(|attached| attached.policy_arn.as_str())
            .filter(|arn| *arn != ADMINISTRATOR_ACCESS_ARN && !documents.contains_key(*arn))
            .collect();
        missing
            .into_iter()
            .map(|arn| {
                format!(
                    "managed policy {arn} is attached but its default version is not in the listing"
                )
            })
            .collect()
    }

    /// Maps each managed policy ARN to its default version's decoded document.
    fn managed_policy_documents(&self, problems: &mut Vec<String>) -> HashMap<String, Value> {
        let mut documents = HashMap::new();
        for managed in &self.policies {
            let default = managed
                .policy_version_list
                .iter()
                .find(|version| version.is_default_version);
            let Some(version) = default else { continue };
            match policy::decode_document(&version.document) {
                Ok(document) => {
                    documents.insert(managed.arn.clone(), document);
                }
                Err(error) => problems.push(format!("managed policy {}: {error}", managed.arn)),
            }
        }
        documents
    }
}

/// Returns true when a record must be skipped: its id is empty, or an
/// earlier record took it.
///
/// Real IAM ids are unique. The same id and name twice means a page was
/// served twice and is dropped quietly. Anything else means the listing is
/// inconsistent, which is recorded as a listing problem; the first record wins.
fn is_duplicate(
    seen: &mut BTreeMap<String, String>,
    id: &str,
    name: &str,
    problems: &mut Vec<String>,
) -> bool {
    if id.is_empty() {
        problems.push(format!("{name} has an empty immutable id"));
        return true;
    }
    match seen.get(id) {
        Some(first) if first == name => true,
        Some(first) => {
            warn!(
                id,
                first,
                duplicate = name,
                "two identities share one immutable id"
            );
            problems.push(format!("{first} and {name} share the immutable id {id}"));
            true
        }
        None => {
            seen.insert(id.to_string(), name.to_string());
            false
        }
    }
}

fn tags_of(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|tag| (tag.key.clone(), tag.value.clone()))
        .collect()
}

fn build_user(
    user: &UserDetail,
    groups: &HashMap<&str, &GroupDetail>,
    policies: &HashMap<String, Value>,
    problems: &mut Vec<String>,
) -> Identity {
    let mut identity = Identity::new(&user.user_id, IdentityKind::AwsUser, &user.user_name);
    identity.path = user.path.clone();
    identity.arn = user.arn.clone();
    identity.created = user.create_date.as_deref().map(normalize_timestamp);
    identity.groups = user.group_list.clone();
    identity.tags = tags_of(&user.tags);

    let owner = format!("user {}", user.user_name);
    let mut grants = attached_grants(&user.attached_managed_policies, "attached", None, policies);
    grants.extend(inline_grants(
        &user.user_policy_list,
        "inline",
        None,
        &owner,
        problems,
    ));
    for group_name in &user.group_list {
        let Some(group) = groups.get(group_name.as_str()) else {
            problems.push(format!("{owner}: group {group_name} is not in the listing"));
            continue;
        };
        let group_label = Some(group_name.as_str());
        grants.extend(attached_grants(
            &group.attached_managed_policies,
            "group_attached",
            group_label,
            policies,
        ));
        let group_owner = format!("group {group_name}");
        grants.extend(inline_grants(
            &group.group_policy_list,
            "group_inline",
            group_label,
            &group_owner,
            problems,
        ));
    }
    identity.admin_grants = grants;
    identity
}

fn build_role(
    role: &RoleDetail,
    policies: &HashMap<String, Value>,
    built: &mut BuiltIdentities,
) -> Identity {
    let mut identity = Identity::new(&role.role_id, IdentityKind::AwsRole, &role.role_name);
    identity.path = role.path.clone();
    identity.arn = role.arn.clone();
    identity.created = role.create_date.as_deref().map(normalize_timestamp);
    identity.tags = tags_of(&role.tags);

    let owner = format!("role {}", role.role_name);
    if !role.assume_role_policy_document.is_null() {
        let trust = policy::decode_document(&role.assume_role_policy_document)
            .and_then(|document| policy::trust_principals(&document));
        match trust {
            Ok(principals) => identity.trust = principals,
            Err(error) => built
                .trust_problems
                .push(format!("{owner} trust policy: {error}")),
        }
    }
    let mut grants = attached_grants(&role.attached_managed_policies, "attached", None, policies);
    grants.extend(inline_grants(
        &role.role_policy_list,
        "inline",
        None,
        &owner,
        &mut built.privilege_problems,
    ));
    identity.admin_grants = grants;
    identity
}

/// Builds one record per instance profile named in the roles'
/// `InstanceProfileList`, with the names of its roles and one admin grant
/// per admin role in it.
///
/// NOTE: `GetAccountAuthorizationDetails` reports instance profiles only
/// inside the roles they hold, so a profile without a role is not listed.
/// An empty profile gives no access, and it shows up once a role is added.
fn build_instance_profiles(
    roles: &[RoleDetail],
    identities: &[Identity],
    problems: &mut Vec<String>,
) -> Vec<Identity> {
    let admin_roles: HashMap<&str, &Identity> = identities
        .iter()
        .filter(|identity| identity.kind == IdentityKind::AwsRole && identity.is_admin())
        .map(|identity| (identity.name.as_str(), identity))
        .collect();
    let mut profiles: BTreeMap<&str, (&InstanceProfileDetail, BTreeSet<&str>)> = BTreeMap::new();
    for role in roles {
        for profile in &role.instance_profile_list {
            if profile.instance_profile_id.is_empty() {
                // Without its id the profile would read as deleted.
                problems.push(format!(
                    "role {}: instance profile {} has an empty immutable id",
                    role.role_name, profile.instance_profile_name
                ));
                continue;
            }
            let entry = profiles
                .entry(profile.instance_profile_id.as_str())
                .or_insert_with(|| (profile, BTreeSet::new()));
            entry.1.insert(role.role_name.as_str());
            entry.1.extend(
                profile
                    .roles
                    .iter()
                    .map(|inner| inner.role_name.as_str())
                    .filter(|name| !name.is_empty()),
            );
        }
    }

    profiles
        .into_values()
        .map(|(profile, role_names)| {
            let mut identity = Identity::new(
                &profile.instance_profile_id,
                IdentityKind::AwsInstanceProfile,
                &profile.instance_profile_name,
            );
            identity.path = profile.path.clone();
            identity.arn = profile.arn.clone();
            identity.created = profile.create_date.as_deref().map(normalize_timestamp);
            let names: Vec<&str> = role_names.iter().copied().collect();
            identity
                .attributes
                .insert(aws_attribute::ROLES.to_string(), names.join(", "));
            identity.admin_grants = role_names
                .iter()
                .filter_map(|name| admin_roles.get(name))
                .map(|role| role_grant(role))
                .collect();
            identity
        })
        .collect()
}

/// Returns the admin grant an instance profile gets from an admin role in
/// it. The role's own grants stay out of the key, so that a role gaining a
/// second admin policy is not read as a new grant on the profile.
fn role_grant(role: &Identity) -> AdminGrant {
    AdminGrant {
        via: "instance_profile_role".to_string(),
        policy: role.arn.clone().unwrap_or_else(|| role.name.clone()),
        group: None,
        group_id: None,
        reason: format!("role {} has admin rights", role.name),
        assignment_id: None,
    }
}

/// Returns the admin grants among attached managed policies.
///
/// `AdministratorAccess` counts by ARN even when its document is not in the
/// listing; other policies count when their default version grants admin.
fn attached_grants(
    attached: &[AttachedPolicy],
    via: &str,
    group: Option<&str>,
    policies: &HashMap<String, Value>,
) -> Vec<AdminGrant> {
    let mut grants = Vec::new();
    for policy in attached {
        let reason = if policy.policy_arn == ADMINISTRATOR_ACCESS_ARN {
            Some("AdministratorAccess".to_string())
        } else {
            policies
                .get(&policy.policy_arn)
                .and_then(policy::admin_reason)
        };
        if let Some(reason) = reason {
            grants.push(AdminGrant {
                via: via.to_string(),
                policy: policy.policy_arn.clone(),
                group: group.map(str::to_string),
                group_id: None,
                reason,
                assignment_id: None,
            });
        }
    }
    grants
}

/// Returns the admin grants among inline policies; undecodable ones are problems.
fn inline_grants(
    inline: &[InlinePolicy],
    via: &str,
    group: Option<&str>,
    owner: &str,
    problems: &mut Vec<String>,
) -> Vec<AdminGrant> {
    let mut grants = Vec::new();
    for policy in inline {
        let document = match policy::decode_document(&policy.policy_document) {
            Ok(document) => document,
            Err(error) => {
                problems.push(format!(
                    "{owner} inline policy {}: {error}",
                    policy.policy_name
                ));
                continue;
            }
        };
        if let Some(reason) = policy::admin_reason(&document) {
            grants.push(AdminGrant {
                via: via.to_string(),
                policy: policy.policy_name.clone(),
                group: group.map(str::to_string),
                group_id: None,
                reason,
                assignment_id: None,
            });
        }
    }
    grants
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_normalize_to_utc_seconds() {
        assert_eq!(
            normalize_timestamp("2019-12-18 19:10:08+00:00"),
            "2019-12-18T19:10:08Z"
        );
        assert_eq!(
            normalize_timestamp("2021-03-13T18:42:09+00:00"),
            "2021-03-13T18:42:09Z"
        );
        assert_eq!(
            normalize_timestamp("2016-12-01T22:19:58.123Z"),
            "2016-12-01T22:19:58Z"
        );
        assert_eq!(
            normalize_timestamp("2021-03-13T20:42:09+02:00"),
            "2021-03-13T18:42:09Z"
        );
        assert_eq!(normalize_timestamp("yesterday"), "yesterday");
    }

    #[test]
    fn profile_without_id_is_listing_problem() {
        let details: AuthorizationDetails = serde_json::from_value(serde_json::json!({
            "RoleDetailList": [{
                "RoleName": "app",
                "RoleId": "AROAEXAMPLEAPP000001",
                "InstanceProfileList": [
                    {"InstanceProfileName": "web", "InstanceProfileId": "AIPAEXAMPLEWEB000001"},
                    {"InstanceProfileName": "lost", "InstanceProfileId": ""}
                ]
            }]
        }))
        .expect("details");
        let built = details.build_identities();
        let profiles: Vec<&str> = built
            .identities
            .iter()
            .filter(|identity| identity.kind == IdentityKind::AwsInstanceProfile)
            .map(|identity| identity.name.as_str())
            .collect();
        assert_eq!(profiles, ["web"]);
        assert_eq!(
            built.listing_problems.len(),
            1,
            "{:?}",
            built.listing_problems
        );
        assert!(
            built.listing_problems[0].contains("instance profile lost"),
            "{:?}",
            built.listing_problems
        );
    }
}
