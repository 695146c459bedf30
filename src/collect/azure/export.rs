//! Offline input for Entra ID: the JSON of `az ad user list`, `az ad sp
//! list --all`, `az ad app list --all`, and `az rest` dumps of Graph pages
//! (`{"value": [...]}`), from `azure/<tenant-id>/` folders.
//!
//! Files are recognized by the fields of their records, not by name. A
//! listing the export lacks is recorded as not collected, never as empty.
//!
//! `az ad app federated-credential list --id APP` names no app in its
//! output, so each app's listing goes in its own file named
//! `federated-credentials-<app object id or appId>.json`. An `az rest` dump
//! of `/applications/{id}/federatedIdentityCredentials` names the app in its
//! `@odata.context` and may have any name.
//!
//! The members of a group that has a privileged role go in a file named
//! `group-members-<group object id>.json`: the output of `az ad group member
//! list --group ID` (user and service principal records, which would
//! otherwise read as a user listing) or an `az rest` dump of
//! `/groups/{id}/transitiveMembers`, whose `@odata.context`
//! (`$metadata#directoryObjects`) does not name the group either. An
//! `az ad group list` file, when present, gives the groups their names.
//!
//! Azure Resource Manager exports sit beside them: `az role assignment list
//! --all --include-inherited` of each subscription (recognized by content,
//! since every entry names its scope), `az identity list`, and each managed
//! identity's `az identity federated-credential list` in a file named
//! `mi-federated-credentials-<identity name or principal id>.json`, because
//! an empty list names no identity. The owners of an app registration or
//! service principal (`az ad app owner list`, `az ad sp owner list`) go in
//! a file named `owners-<object id>.json`, since they are user and service
//! principal records that name no owned object.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tracing::{info, warn};

use super::inventory::{PrincipalLookup, TenantInventory};
use super::records::{self, RoleGroup};
use crate::collect::{CollectError, Collected};
use crate::model::CollectionName;
use crate::settings::is_guid;

/// The listings an Entra export file can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listing {
    Users,
    ServicePrincipals,
    Applications,
    RoleAssignments,
    FederatedCredentials,
    Groups,
    GroupMembers,
    AzureRoleAssignments,
    UserAssignedIdentities,
    Owners,
}

/// The records found for one tenant, by listing, with the pages that report more to follow.
#[derive(Debug, Default)]
struct TenantExport {
    users: Option<Vec<Value>>,
    service_principals: Option<Vec<Value>>,
    applications: Option<Vec<Value>>,
    role_assignments: Option<Vec<Value>>,
    /// Federated credential listings, each with the app its file names.
    federated: Vec<FederatedFile>,
    /// Group records, which name the groups of member listings.
    groups: Option<Vec<Value>>,
    /// Member listings of groups, each with the group its file names.
    group_members: Vec<GroupMembersFile>,
    /// Files whose page carries `@odata.nextLink`: the dump is cut short.
    truncated: Vec<(Listing, String)>,
    /// `az role assignment list` records of Azure RBAC.
    azure_role_assignments: Option<Vec<Value>>,
    /// `az identity list` records.
    user_assigned: Option<Vec<Value>>,
    /// Federated credential listings of managed identities, each with the
    /// identity name or principal id its file names.
    managed_identity_federated: Vec<(String, Vec<Value>)>,
    /// Owner listings, each with the object id its file names.
    owners: Vec<(String, Vec<Value>)>,
}

/// One app's federated credential listing.
#[derive(Debug)]
struct FederatedFile {
    /// The app's object id or appId, from the file name or `@odata.context`.
    app: String,
    records: Vec<Value>,
    file: PathBuf,
}

/// One group's member listing.
#[derive(Debug)]
struct GroupMembersFile {
    /// The group's object id, from the file name.
    group: String,
    records: Vec<Value>,
}

/// The file name prefix of one app's federated credential listing.
const FEDERATED_PREFIX: &str = "federated-credentials-";

/// The file name prefix of one group's member listing.
const GROUP_MEMBERS_PREFIX: &str = "group-members-";

/// The file name prefix of one managed identity's federated credential listing.
const MANAGED_IDENTITY_FEDERATED_PREFIX: &str = "mi-federated-credentials-";

/// The file name prefix of one app registration's or service principal's owner listing.
const OWNERS_PREFIX: &str = "owners-";

fn export_error(path: &Path, reason: String) -> CollectError {
    CollectError::Export {
        path: path.to_path_buf(),
        reason,
    }
}

/// Returns true when the path contains Entra exports: an `azure/` folder, the
/// `azure` folder itself, or one tenant's folder under it.
pub fn is_present(path: &Path) -> bool {
    let (name, parent_is_azure) = name_and_parent(path);
    path.join("azure").is_dir() || name == "azure" || parent_is_azure
}

/// Returns a path's last component and whether its parent is `azure`.
fn name_and_parent(path: &Path) -> (&str, bool) {
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    let parent_is_azure = path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|parent| parent == "azure");
    (name, parent_is_azure)
}

/// Reads every tenant under an export path.
pub fn collect_exports(path: &Path) -> Result<Vec<Collected>, CollectError> {
    let mut collected = Vec::new();
    for (tenant_id, folder) in tenant_folders(path)? {
        collected.push(collect_tenant_folder(&tenant_id, &folder)?);
    }
    Ok(collected)
}

/// Finds `azure/<tenant-id>/` folders.
fn tenant_folders(path: &Path) -> Result<Vec<(String, PathBuf)>, CollectError> {
    let (name, parent_is_azure) = name_and_parent(path);
    if parent_is_azure {
        if !is_guid(name) {
            return Err(export_error(
                path,
                "the folder name is not a tenant id (a GUID)".to_string(),
            ));
        }
        return Ok(vec![(name.to_string(), path.to_path_buf())]);
    }

    let azure_folder = if name == "azure" {
        path.to_path_buf()
    } else {
        path.join("azure")
    };
    let mut folders = Vec::new();
    for entry in crate::collect::export_entries(&azure_folder)? {
        let entry_name = entry
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .to_string();
        let metadata = fs::metadata(&entry)
            .map_err(|error| export_error(&entry, format!("cannot read it: {error}")))?;
        if !metadata.is_dir() || !is_guid(&entry_name) {
            return Err(export_error(
                &entry,
                "expected only azure/<tenant-id>/ folders in azure/".to_string(),
            ));
        }
        folders.push((entry_name, entry));
    }
    if folders.is_empty() {
        return Err(export_error(
            &azure_folder,
            "no tenant folders in it".to_string(),
        ));
    }
    Ok(folders)
}

fn collect_tenant_folder(tenant_id: &str, folder: &Path) -> Result<Collected, CollectError> {
    let mut export = TenantExport::default();
    for file in crate::collect::export_entries(folder)? {
        read_file(&mut export, &file)?;
    }
    Ok(build_inventory(tenant_id, export))
}

/// Parses one file, recognizes its listing and adds its records.
fn read_file(export: &mut TenantExport, file: &Path) -> Result<(), CollectError> {
    let text = fs::read_to_string(file)
        .map_err(|error| export_error(file, format!("cannot read it: {error}")))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|error| export_error(file, format!("not valid JSON: {error}")))?;
    let (records, truncated) = match &value {
        Value::Array(records) => (records.clone(), false),
        Value::Object(page) => match page.get("value").and_then(Value::as_array) {
            Some(records) => (
                records.clone(),
                ["@odata.nextLink", "nextLink"]
                    .iter()
                    .any(|key| page.get(*key).is_some_and(|link| !link.is_null())),
            ),
            None => return Err(not_an_export(file)),
        },
        _ => return Err(not_an_export(file)),
    };
    if read_named_listing(export, file, &records, truncated)? {
        return Ok(());
    }
    if let Some(group) = group_named_by(file)? {
        info!(file = %file.display(), group = %group, "read group member listing");
        if truncated {
            let listing = (Listing::GroupMembers, file.display().to_string());
            export.truncated.push(listing);
        }
        export
            .group_members
            .push(GroupMembersFile { group, records });
        return Ok(());
    }
    if lists_directory_objects(&value) {
        return Err(export_error(
            file,
            format!(
                "a group member listing must name its group: call the file \
                 {GROUP_MEMBERS_PREFIX}<group object id>.json"
            ),
        ));
    }
    let named_app = app_named_by(file, &value);
    let Some(first) = records.first() else {
        // An empty list names no listing by its records, but one app's
        // federated credential file names it by the file name.
        if let Some(app) = named_app.filter(|_| is_federated_file_name(file)) {
            export.federated.push(FederatedFile {
                app,
                records,
                file: file.to_path_buf(),
            });
            return Ok(());
        }
        warn!(file = %file.display(), "skipping an empty list: it does not say which listing it is");
        return Ok(());
    };
    let listing = recognize(first).ok_or_else(|| not_an_export(file))?;
    info!(file = %file.display(), listing = ?listing, "read export file");
    if truncated {
        export.truncated.push((listing, file.display().to_string()));
    }

    let target = match listing {
        Listing::AzureRoleAssignments => &mut export.azure_role_assignments,
        Listing::UserAssignedIdentities => &mut export.user_assigned,
        Listing::Users => &mut export.users,
        Listing::ServicePrincipals => &mut export.service_principals,
        Listing::Applications => &mut export.applications,
        Listing::RoleAssignments => &mut export.role_assignments,
        Listing::Groups => &mut export.groups,
        // Member and owner listings are recognized by file name, never by content.
        Listing::GroupMembers | Listing::Owners => return Err(not_an_export(file)),
        Listing::FederatedCredentials => {
            let app = named_app.ok_or_else(|| {
                export_error(
                    file,
                    format!(
                        "a federated credential listing must name its app: call the file \
                         {FEDERATED_PREFIX}<app object id or appId>.json"
                    ),
                )
            })?;
            export.federated.push(FederatedFile {
                app,
                records,
                file: file.to_path_buf(),
            });
            return Ok(());
        }
    };
    target.get_or_insert_with(Vec::new).extend(records);
    Ok(())
}

/// Reads a file whose name says what it lists: one object's owners or one
/// managed identity's federated credentials. Returns false for other files.
fn read_named_listing(
    export: &mut TenantExport,
    file: &Path,
    records: &[Value],
    truncated: bool,
) -> Result<bool, CollectError> {
    let stem = file
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or_default();
    if let Some(identity) = stem.strip_prefix(MANAGED_IDENTITY_FEDERATED_PREFIX) {
        if identity.is_empty() {
            return Err(export_error(
                file,
                format!(
                    "the file name names no managed identity: call it \
                     {MANAGED_IDENTITY_FEDERATED_PREFIX}<identity name or principal id>.json"
                ),
            ));
        }
        if truncated {
            let listing = (Listing::UserAssignedIdentities, file.display().to_string());
            export.truncated.push(listing);
        }
        info!(file = %file.display(), identity, "read managed identity federated credentials");
        let key = identity.to_ascii_lowercase();
        export
            .managed_identity_federated
            .push((key, records.to_vec()));
        return Ok(true);
    }
    if let Some(object) = stem.strip_prefix(OWNERS_PREFIX) {
        if !is_guid(object) {
            return Err(export_error(
                file,
                format!(
                    "{object:?} is not an object id (a GUID): call the file \
                     {OWNERS_PREFIX}<app registration or service principal object id>.json"
                ),
            ));
        }
        if truncated {
            let listing = (Listing::Owners, file.display().to_string());
            export.truncated.push(listing);
        }
        info!(file = %file.display(), object, "read owner listing");
        export
            .owners
            .push((object.to_ascii_lowercase(), records.to_vec()));
        return Ok(true);
    }
    Ok(false)
}

/// Returns the app a federated credential listing belongs to: the one in a
/// Graph dump's `@odata.context`, else a GUID that ends the file name.
fn app_named_by(file: &Path, value: &Value) -> Option<String> {
    let context = value
        .get("@odata.context")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // Graph writes `...$metadata#applications('<id>')/federatedIdentityCredentials`.
    if let Some((_, rest)) = context.split_once("applications('")
        && let Some((id, _)) = rest.split_once("')")
        && is_guid(id)
    {
        return Some(id.to_string());
    }
    let stem = file.file_stem()?.to_str()?;
    let tail = stem.get(stem.len().checked_sub(36)?..)?;
    is_guid(tail).then(|| tail.to_string())
}

/// Returns the group a `group-members-<group id>.json` file names, `None`
/// for other files, and an error for that prefix without a group id.
fn group_named_by(file: &Path) -> Result<Option<String>, CollectError> {
    let stem = file
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or_default();
    let Some(group) = stem.strip_prefix(GROUP_MEMBERS_PREFIX) else {
        return Ok(None);
    };
    if !is_guid(group) {
        return Err(export_error(
            file,
            format!(
                "{group:?} is not a group object id (a GUID): call the file \
                 {GROUP_MEMBERS_PREFIX}<group object id>.json"
            ),
        ));
    }
    Ok(Some(group.to_ascii_lowercase()))
}

/// Returns true for a Graph dump of a `directoryObject` collection, such as
/// a group's members, which `@odata.context` does not tie to its group.
fn lists_directory_objects(value: &Value) -> bool {
    let context = value
        .get("@odata.context")
        .and_then(Value::as_str)
        .unwrap_or_default();
    context
        .rsplit_once("$metadata#")
        .is_some_and(|(_, entity_set)| entity_set.starts_with("directoryObjects"))
}

fn is_federated_file_name(file: &Path) -> bool {
    file.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with(FEDERATED_PREFIX))
}

fn not_an_export(file: &Path) -> CollectError {
    export_error(
        file,
        "not an Entra export idrift reads: expected the JSON of `az ad user list`, `az ad sp list --all`, \
         `az ad app list --all`, `az ad group list`, `az role assignment list`, `az identity \
         list`, or an `az rest` dump of a Graph list ({\"value\": [...]}) of users, service \
         principals, applications, groups or directory role assignments"
            .to_string(),
    )
}

/// Recognizes a listing by the fields of one of its records.
fn recognize(record: &Value) -> Option<Listing> {
    let has = |key: &str| record.get(key).is_some();
    let resource_type = record
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let arm_field = |key: &str| {
        record
            .get("properties")
            .and_then(|properties| properties.get(key))
            .is_some()
    };
    if resource_type == "microsoft.authorization/roleassignments"
        || (has("scope") && has("roleDefinitionId"))
        || arm_field("roleDefinitionId")
    {
        Some(Listing::AzureRoleAssignments)
    } else if resource_type == "microsoft.managedidentity/userassignedidentities" {
        Some(Listing::UserAssignedIdentities)
    } else if has("roleDefinitionId") && has("principalId") {
        Some(Listing::RoleAssignments)
    } else if has("issuer") && has("subject") {
        Some(Listing::FederatedCredentials)
    } else if has("groupTypes") || has("securityEnabled") {
        Some(Listing::Groups)
    } else if has("userPrincipalName") || has("userType") {
        Some(Listing::Users)
    } else if has("servicePrincipalType")
        || has("appOwnerOrganizationId")
        || has("servicePrincipalNames")
    {
        Some(Listing::ServicePrincipals)
    } else if has("appId")
        && (has("signInAudience") || has("createdDateTime") || has("requiredResourceAccess"))
    {
        Some(Listing::Applications)
    } else {
        None
    }
}

fn build_inventory(tenant_id: &str, export: TenantExport) -> Collected {
    let mut inventory = TenantInventory::default();
    let missing = |what: &str| format!("the export has no {what} listing");

    match &export.users {
        Some(found) => inventory.add_listing(CollectionName::Users, Ok(records::users(found))),
        None => inventory.not_collected(CollectionName::Users, &missing("user")),
    }
    match &export.service_principals {
        Some(found) => inventory.add_listing(
            CollectionName::ServicePrincipals,
            Ok(records::service_principals(found)),
        ),
        None => inventory.not_collected(
            CollectionName::ServicePrincipals,
            &missing("service principal"),
        ),
    }
    match &export.applications {
        Some(found) => inventory.add_listing(
            CollectionName::Applications,
            Ok(records::applications(found)),
        ),
        None => inventory.not_collected(CollectionName::Applications, &missing("application")),
    }
    add_federated_credentials(&mut inventory, &export);
    match &export.role_assignments {
        Some(found) => {
            let assignments = records::privileged_assignments(found);
            let groups = exported_groups(&inventory, &export, &assignments);
            inventory.add_role_assignments(Ok(assignments), &groups);
        }
        None => inventory.not_collected(CollectionName::Privileges, &missing("role assignment")),
    }
    add_owners(&mut inventory, &export);
    add_azure_rbac(&mut inventory, tenant_id, &export);
    add_user_assigned(&mut inventory, tenant_id, &export);

    for (listing, file) in &export.truncated {
        let collection = match listing {
            Listing::Users => CollectionName::Users,
            Listing::ServicePrincipals => CollectionName::ServicePrincipals,
            Listing::Applications => CollectionName::Applications,
            Listing::RoleAssignments | Listing::GroupMembers => CollectionName::Privileges,
            Listing::FederatedCredentials => CollectionName::FederatedCredentials,
            Listing::AzureRoleAssignments => CollectionName::AzureRbac,
            Listing::UserAssignedIdentities => CollectionName::UserAssignedIdentities,
            Listing::Owners => CollectionName::Owners,
            // Group records only name groups, so a cut-short listing loses names, not grants.
            Listing::Groups => continue,
        };
        // NOTE: a dump of every page has @odata.nextLink on all but the last.
        // idrift cannot order pages by file, so any such page marks the
        // listing cut short.
        inventory.incomplete(
            collection,
            format!("{file} carries @odata.nextLink, so the dump is cut short; dump every page with `az rest --paginate`"),
        );
    }
    inventory.into_collected(tenant_id, 0)
}

/// Attaches each owner file to the app registration or service principal it names.
fn add_owners(inventory: &mut TenantInventory, export: &TenantExport) {
    if export.applications.is_none() || export.service_principals.is_none() {
        inventory.not_collected(
            CollectionName::Owners,
            "owners need the application and service principal listings to name their objects",
        );
        return;
    }
    let unknown = inventory.add_exported_owners(export.owners.clone());
    super::owners::warn_unknown_owner_files(&unknown);
}

/// Records the Azure RBAC grants of `az role assignment list` files.
fn add_azure_rbac(inventory: &mut TenantInventory, tenant_id: &str, export: &TenantExport) {
    let Some(found) = &export.azure_role_assignments else {
        inventory.not_collected(
            CollectionName::AzureRbac,
            "the export has no `az role assignment list --all --include-inherited` output",
        );
        return;
    };
    let assignments = super::arm::rbac_assignments(found);
    let mut groups = HashMap::new();
    for principal in inventory.unmatched_rbac_principals(&assignments) {
        let lookup = exported_group(export, &principal).unwrap_or_else(|| {
            PrincipalLookup::Failed(format!(
                "an Azure RBAC role assignment names principal {principal}, which is not a \
                 listed user or service principal; if it is a group, add its members as \
                 {GROUP_MEMBERS_PREFIX}{principal}.json (`az ad group member list --group \
                 {principal}`)"
            ))
        });
        groups.insert(principal, lookup);
    }
    inventory.add_rbac_assignments(tenant_id, Ok(assignments), &groups);
}

/// Attaches each `az identity list` entry's federated credential file.
fn add_user_assigned(inventory: &mut TenantInventory, tenant_id: &str, export: &TenantExport) {
    let Some(found) = &export.user_assigned else {
        inventory.not_collected(
            CollectionName::UserAssignedIdentities,
            "the export has no `az identity list` output",
        );
        return;
    };
    let listed = super::arm::user_assigned_identities(found)
        .into_iter()
        .map(|identity| {
            let keys = [
                identity.name.to_ascii_lowercase(),
                identity.principal_id.clone(),
            ];
            let files: Vec<&(String, Vec<Value>)> = export
                .managed_identity_federated
                .iter()
                .filter(|(key, _)| keys.contains(key))
                .collect();
            let credentials = if files.is_empty() {
                Err(format!(
                    "managed identity {name} has no {MANAGED_IDENTITY_FEDERATED_PREFIX}{name}.json \
                     file (`az identity federated-credential list --identity-name {name} \
                     --resource-group <group>`)",
                    name = identity.name
                ))
            } else {
                Ok(files
                    .iter()
                    .flat_map(|(_, records)| records.iter().cloned())
                    .collect())
            };
            (identity, credentials)
        })
        .collect();
    inventory.add_user_assigned_identities(tenant_id, Ok(listed));
}

/// Attaches each app's federated credential file to the app it names.
fn add_federated_credentials(inventory: &mut TenantInventory, export: &TenantExport) {
    if export.federated.is_empty() {
        inventory.not_collected(
            CollectionName::FederatedCredentials,
            &format!(
                "the export has no federated credential listing (one \
                 {FEDERATED_PREFIX}<app>.json file per app)"
            ),
        );
        return;
    }
    if export.applications.is_none() {
        inventory.not_collected(
            CollectionName::FederatedCredentials,
            "federated credentials need the application listing to name their apps",
        );
        return;
    }
    let listings = export
        .federated
        .iter()
        .map(|listing| (listing.app.clone(), listing.records.clone()));
    for unknown in inventory.add_exported_federated_credentials(listings) {
        let files: Vec<String> = export
            .federated
            .iter()
            .filter(|listing| listing.app == unknown)
            .map(|listing| listing.file.display().to_string())
            .collect();
        warn!(app = %unknown, files = ?files, "skipping federated credentials of an app the application listing lacks");
    }
}

/// Looks up each role assignment principal that is not a listed user or
/// service principal among the group member files. A principal without one
/// fails, with the file to add.
fn exported_groups(
    inventory: &TenantInventory,
    export: &TenantExport,
    assignments: &[records::RoleAssignment],
) -> HashMap<String, PrincipalLookup> {
    let mut lookups = HashMap::new();
    for principal in inventory.unmatched_principals(assignments) {
        let lookup = exported_group(export, &principal).unwrap_or_else(|| {
            PrincipalLookup::Failed(missing_members_file(&principal, assignments))
        });
        lookups.insert(principal, lookup);
    }
    lookups
}

/// Returns a principal as a group with the members of its
/// `group-members-<id>.json` files, or `None` when the export has none.
fn exported_group(export: &TenantExport, principal: &str) -> Option<PrincipalLookup> {
    let key = principal.to_ascii_lowercase();
    let files: Vec<&GroupMembersFile> = export
        .group_members
        .iter()
        .filter(|listing| listing.group == key)
        .collect();
    if files.is_empty() {
        return None;
    }
    let members: Vec<Value> = files
        .iter()
        .flat_map(|listing| listing.records.iter().cloned())
        .collect();
    let mut group = RoleGroup::new(principal, group_record(export, principal));
    group.members = records::group_members(&members);
    Some(PrincipalLookup::Group(group))
}

/// Returns the `az ad group list` record of a group, if the export has one.
fn group_record<'a>(export: &'a TenantExport, group_id: &str) -> Option<&'a Value> {
    export.groups.iter().flatten().find(|record| {
        record
            .get("id")
            .and_then(Value::as_str)
            .is_some_and(|id| id.eq_ignore_ascii_case(group_id))
    })
}

/// Explains a role assignment principal that the export cannot resolve.
fn missing_members_file(principal: &str, assignments: &[records::RoleAssignment]) -> String {
    let assignment = assignments
        .iter()
        .find(|assignment| assignment.principal_id == principal);
    let (id, role) = assignment
        .map(|assignment| (assignment.id.as_str(), assignment.role_name))
        .unwrap_or_default();
    format!(
        "role assignment {id} ({role}) names principal {principal}, which is not a listed user \
         or service principal; if it is a group, add its members as \
         {GROUP_MEMBERS_PREFIX}{principal}.json (`az ad group member list --group {principal}`)"
    )
}
