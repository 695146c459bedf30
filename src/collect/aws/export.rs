//! Offline input: the JSON that the AWS CLI exports, in place of API access.
//!
//! Accepted files, recognized by content and not by name:
//! `aws iam get-account-authorization-details` (one file or several pages),
//! `aws iam get-credential-report` and `aws iam list-access-keys`. The path
//! is one authorization-details file, or a folder laid out
//! `aws/<account-id>/` holding such files under any names.
//!
//! An account folder can also hold the identity providers
//! (`aws iam list-open-id-connect-providers`, `aws iam
//! get-open-id-connect-provider` per provider, `aws iam
//! list-saml-providers`) and IAM Identity Center (`aws identitystore
//! list-users`, `aws sso-admin list-account-assignments` per account and
//! permission set, `aws sso-admin describe-permission-set` for the names).
//! A listing that is missing leaves its collection not collected.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::details::{AuthorizationDetails, normalize_timestamp};
use super::export_access::{AccessExport, AccessFile};
use super::policy::account_of_arn;
use super::{AccessKeyRecord, AccountInventory};
use crate::collect::{CollectError, Collected};
use crate::model::{CollectionName, Completeness};

/// The files found for one account.
#[derive(Debug, Default)]
struct AccountExport {
    details: Option<AuthorizationDetails>,
    /// Authorization-details pages read, and how many of them report more to follow.
    details_pages: usize,
    truncated_pages: usize,
    /// The detail lists that appeared in any page.
    lists_present: BTreeSet<&'static str>,
    credential_report: Option<CredentialReport>,
    key_listings: Vec<AccessKeyRecord>,
    has_key_listing: bool,
    /// Key listing files that report more keys to follow.
    truncated_key_listings: Vec<String>,
    /// Identity providers and Identity Center listings.
    access: AccessExport,
}

/// The four lists of `GetAccountAuthorizationDetails`.
const DETAIL_LISTS: [&str; 4] = [
    "UserDetailList",
    "RoleDetailList",
    "GroupDetailList",
    "Policies",
];

/// `aws iam get-credential-report` output.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CredentialReportFile {
    content: String,
}

/// `aws iam list-access-keys` output.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyListingFile {
    access_key_metadata: Vec<KeyListingEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyListingEntry {
    user_name: String,
    access_key_id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    create_date: Option<String>,
}

/// One user's row of the credential report.
#[derive(Debug, Clone)]
struct ReportRow {
    password_enabled: bool,
    password_last_changed: Option<String>,
    /// For key slots 1 and 2: (active, last rotated) when the slot has a key.
    key_slots: Vec<(usize, bool, String)>,
}

/// The credential report's rows by user name (the root account excluded).
#[derive(Debug, Default)]
struct CredentialReport {
    rows: BTreeMap<String, ReportRow>,
}

/// Kind of export found in a JSON file.
enum ExportFile {
    Details {
        page: AuthorizationDetails,
        /// True when the page reports more pages to follow (`IsTruncated`, or the
        /// AWS CLI's `NextToken` after `--max-items`).
        truncated: bool,
        lists: BTreeSet<&'static str>,
    },
    CredentialReport(CredentialReport),
    KeyListing {
        keys: Vec<AccessKeyRecord>,
        truncated: bool,
    },
    Access(AccessFile),
}

/// Returns true when an AWS CLI page reports that more results follow.
fn is_truncated(object: &serde_json::Map<String, Value>) -> bool {
    object.get("IsTruncated") == Some(&Value::Bool(true)) || object.contains_key("NextToken")
}

/// Reads every account under an export path.
pub fn collect_exports(path: &Path) -> Result<Vec<Collected>, CollectError> {
    let metadata = fs::metadata(path)
        .map_err(|error| export_error(path, format!("cannot read it: {error}")))?;
    if metadata.is_file() {
        return collect_single_file(path).map(|collected| vec![collected]);
    }

    let folders = account_folders(path)?;
    let mut collected = Vec::new();
    for (account_id, folder) in folders {
        collected.push(collect_account_folder(&account_id, &folder)?);
    }
    Ok(collected)
}

fn export_error(path: &Path, reason: String) -> CollectError {
    CollectError::Export {
        path: path.to_path_buf(),
        reason,
    }
}

/// Finds `aws/<account-id>/` folders under the path (or the path itself when
/// it is the `aws` folder or one account's folder).
fn account_folders(path: &Path) -> Result<Vec<(String, PathBuf)>, CollectError> {
    let is_account = |name: &str| name.len() == 12 && name.bytes().all(|b| b.is_ascii_digit());
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let parent_is_aws = path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|parent| parent == "aws");
    if is_account(name) && parent_is_aws {
        return Ok(vec![(name.to_string(), path.to_path_buf())]);
    }

    let aws_folder = if name == "aws" {
        path.to_path_buf()
    } else {
        path.join("aws")
    };
    let entries = fs::read_dir(&aws_folder).map_err(|_| {
        export_error(
            path,
            "no aws/<account-id>/, azure/<tenant-id>/, gcp/<project-id>/ or \
             gworkspace/<customer-id>/ folder in it; lay exports out in such folders (the \
             README's \"Use it\" section) or pass one AWS authorization-details file"
                .to_string(),
        )
    })?;

    let mut folders = Vec::new();
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().to_string();
        if entry_name.starts_with('.') {
            continue;
        }
        let is_folder = fs::metadata(entry.path())
            .map_err(|error| export_error(&entry.path(), format!("cannot read it: {error}")))?;
        if !is_folder.is_dir() {
            return Err(export_error(
                &entry.path(),
                "expected only aws/<account-id>/ folders in aws/".to_string(),
            ));
        }
        if !is_account(&entry_name) {
            return Err(export_error(
                &entry.path(),
                "the folder name is not a 12-digit AWS account id".to_string(),
            ));
        }
        folders.push((entry_name, entry.path()));
    }
    folders.sort();
    if folders.is_empty() {
        return Err(export_error(
            &aws_folder,
            "no account folders in it".to_string(),
        ));
    }
    Ok(folders)
}

/// Reads one authorization-details file and takes the account id from its ARNs.
fn collect_single_file(path: &Path) -> Result<Collected, CollectError> {
    let mut export = AccountExport::default();
    add_export_file(&mut export, path)?;
    let Some(details) = &export.details else {
        return Err(export_error(
            path,
            "a single export file must be `aws iam get-account-authorization-details` output; \
             put credential reports and key listings beside it in aws/<account-id>/"
                .to_string(),
        ));
    };
    let account_id = account_from_arns(details).map_err(|reason| export_error(path, reason))?;
    Ok(build_inventory(account_id, export))
}

/// Reads every file of one account folder; each must be one of the exports.
fn collect_account_folder(account_id: &str, folder: &Path) -> Result<Collected, CollectError> {
    let mut export = AccountExport::default();
    for file in crate::collect::export_entries(folder)? {
        let metadata = fs::metadata(&file)
            .map_err(|error| export_error(&file, format!("cannot read it: {error}")))?;
        if !metadata.is_file() {
            return Err(export_error(
                &file,
                "expected an export file, found a folder".to_string(),
            ));
        }
        add_export_file(&mut export, &file)?;
    }

    let Some(details) = &export.details else {
        return Err(export_error(
            folder,
            "no `aws iam get-account-authorization-details` output in it; without it no user or \
             role can be listed"
                .to_string(),
        ));
    };
    match account_from_arns(details) {
        Ok(found) if found != account_id => {
            return Err(export_error(
                folder,
                format!("the folder names account {account_id} but the ARNs inside name {found}"),
            ));
        }
        Err(reason) if reason.contains("several accounts") => {
            return Err(export_error(folder, reason));
        }
        _ => {}
    }
    let others: Vec<String> = export
        .access
        .provider_accounts()
        .into_iter()
        .filter(|found| found != account_id)
        .collect();
    if !others.is_empty() {
        return Err(export_error(
            folder,
            format!(
                "the folder names account {account_id} but identity provider ARNs inside name {}; \
                 keep each account's provider listings in its own folder",
                others.join(", ")
            ),
        ));
    }
    Ok(build_inventory(account_id.to_string(), export))
}

/// Reads one file into the account's export; a second credential report is an error.
fn add_export_file(export: &mut AccountExport, file: &Path) -> Result<(), CollectError> {
    let parsed = read_export_file(file)?;
    let kind = match &parsed {
        ExportFile::Details { .. } => "authorization details",
        ExportFile::CredentialReport(_) => "credential report",
        ExportFile::KeyListing { .. } => "access key listing",
        ExportFile::Access(access) => access.label(),
    };
    tracing::info!(file = %file.display(), kind, "read export file");
    match parsed {
        ExportFile::Details {
            page,
            truncated,
            lists,
        } => {
            export.details_pages += 1;
            export.truncated_pages += usize::from(truncated);
            export.lists_present.extend(lists);
            match &mut export.details {
                Some(details) => details.extend(page),
                None => export.details = Some(page),
            }
        }
        ExportFile::CredentialReport(report) => {
            if export.credential_report.is_some() {
                return Err(export_error(
                    file,
                    "a second credential report for the same account; keep only the newest"
                        .to_string(),
                ));
            }
            export.credential_report = Some(report);
        }
        ExportFile::KeyListing { keys, truncated } => {
            export.has_key_listing = true;
            if truncated {
                export
                    .truncated_key_listings
                    .push(file.display().to_string());
            }
            export.key_listings.extend(keys);
        }
        ExportFile::Access(access) => export.access.add(access, file),
    }
    Ok(())
}

/// Parses a file and recognizes which export it is by its top-level keys.
fn read_export_file(path: &Path) -> Result<ExportFile, CollectError> {
    let text = fs::read_to_string(path)
        .map_err(|error| export_error(path, format!("cannot read it: {error}")))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|error| export_error(path, format!("not valid JSON: {error}")))?;
    let Some(object) = value.as_object() else {
        return Err(export_error(
            path,
            "expected a JSON object at the top".to_string(),
        ));
    };

    let lists: BTreeSet<&'static str> = DETAIL_LISTS
        .iter()
        .copied()
        .filter(|key| object.contains_key(*key))
        .collect();
    if !lists.is_empty() {
        let truncated = is_truncated(object);
        let page = serde_json::from_value(value).map_err(|error| {
            export_error(path, format!("invalid authorization details: {error}"))
        })?;
        return Ok(ExportFile::Details {
            page,
            truncated,
            lists,
        });
    }
    if object.contains_key("Content")
        && (object.contains_key("ReportFormat") || object.contains_key("GeneratedTime"))
    {
        let file: CredentialReportFile = serde_json::from_value(value)
            .map_err(|error| export_error(path, format!("invalid credential report: {error}")))?;
        let report =
            parse_credential_report(&file.content).map_err(|reason| export_error(path, reason))?;
        return Ok(ExportFile::CredentialReport(report));
    }
    if object.contains_key("AccessKeyMetadata") {
        let truncated = is_truncated(object);
        let file: KeyListingFile = serde_json::from_value(value)
            .map_err(|error| export_error(path, format!("invalid access key listing: {error}")))?;
        let keys = file
            .access_key_metadata
            .into_iter()
            .map(key_record)
            .collect();
        return Ok(ExportFile::KeyListing { keys, truncated });
    }
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().to_string())
        .unwrap_or_default();
    let access =
        AccessFile::recognize(value, &file_name).map_err(|reason| export_error(path, reason))?;
    if let Some(access) = access {
        return Ok(ExportFile::Access(access));
    }
    Err(export_error(
        path,
        "not an AWS export idrift reads: expected the JSON of `aws iam get-account-authorization-details`, \
         `aws iam get-credential-report`, `aws iam list-access-keys`, \
         `aws iam list-open-id-connect-providers`, `aws iam get-open-id-connect-provider`, \
         `aws iam list-saml-providers`, `aws identitystore list-users`, \
         `aws sso-admin list-account-assignments` or `aws sso-admin describe-permission-set` \
         (an empty `aws identitystore list-users` output must be named identity-center-users*.json)"
            .to_string(),
    ))
}

fn key_record(entry: KeyListingEntry) -> AccessKeyRecord {
    AccessKeyRecord {
        user_name: entry.user_name,
        access_key_id: entry.access_key_id,
        status: entry.status,
        created: entry.create_date.as_deref().map(normalize_timestamp),
    }
}

/// Returns the one 12-digit account that the users', roles' and groups' ARNs name.
fn account_from_arns(details: &AuthorizationDetails) -> Result<String, String> {
    let arns = details
        .user_detail_list
        .iter()
        .filter_map(|user| user.arn.as_deref())
        .chain(
            details
                .role_detail_list
                .iter()
                .filter_map(|role| role.arn.as_deref()),
        );
    let accounts: BTreeSet<&str> = arns.filter_map(account_of_arn).collect();

    match accounts.len() {
        1 => Ok(accounts.into_iter().next().unwrap_or_default().to_string()),
        0 => Err(
            "no ARN in it names a 12-digit account; put it in a folder aws/<account-id>/"
                .to_string(),
        ),
        _ => Err(format!(
            "its ARNs name several accounts ({}); split it into aws/<account-id>/ folders",
            accounts.into_iter().collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Decodes the report's CSV, given as plain text or, as the AWS CLI prints it, base64.
fn parse_credential_report(content: &str) -> Result<CredentialReport, String> {
    let text = if content.starts_with("user,") {
        content.to_string()
    } else {
        let bytes = aws_smithy_types::base64::decode(content.trim())
            .map_err(|error| format!("the report's Content is neither CSV nor base64: {error}"))?;
        String::from_utf8(bytes).map_err(|error| format!("the report is not UTF-8: {error}"))?
    };

    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut report = CredentialReport::default();
    for record in reader.deserialize::<BTreeMap<String, String>>() {
        let row = record.map_err(|error| format!("invalid credential report CSV: {error}"))?;
        let field = |name: &str| row.get(name).map(String::as_str).unwrap_or("N/A");
        let user = field("user").to_string();
        if user == "<root_account>" {
            continue;
        }
        let known = |value: &str| {
            (!matches!(value, "N/A" | "not_supported" | "")).then(|| normalize_timestamp(value))
        };

        let mut key_slots = Vec::new();
        for slot in 1..=2 {
            let last_rotated = field(&format!("access_key_{slot}_last_rotated"));
            if let Some(rotated) = known(last_rotated) {
                let active = field(&format!("access_key_{slot}_active")) == "true";
                key_slots.push((slot, active, rotated));
            }
        }
        report.rows.insert(
            user,
            ReportRow {
                password_enabled: field("password_enabled") == "true",
                password_last_changed: known(field("password_last_changed")),
                key_slots,
            },
        );
    }
    Ok(report)
}

/// Builds the account's records and marks what the export did not hold.
fn build_inventory(account_id: String, mut export: AccountExport) -> Collected {
    let mut inventory = AccountInventory::new(account_id);
    if let Some(details) = export.details.take() {
        inventory.set_details(details);
    }
    let user_names = inventory.user_names();

    set_access_keys(&mut inventory, &user_names, &export);
    set_console_passwords(&mut inventory, &user_names, &export);
    mark_detail_gaps(&mut inventory, &export);
    export.access.apply(&mut inventory);
    inventory.into_collected(0)
}

fn not_collected(reason: String) -> Completeness {
    Completeness::NotCollected {
        reason,
        kept_previous: false,
    }
}

/// Marks collections that the authorization details cannot vouch for: a
/// listing cut short, or a list left out (`--filter`).
fn mark_detail_gaps(inventory: &mut AccountInventory, export: &AccountExport) {
    if export.details_pages > 0 && export.truncated_pages == export.details_pages {
        let reason = "the authorization details are cut short: every page says more follow \
                      (IsTruncated or NextToken); export again without --max-items, or add the missing pages"
            .to_string();
        for name in [
            CollectionName::Users,
            CollectionName::Roles,
            CollectionName::Privileges,
            CollectionName::InstanceProfiles,
        ] {
            inventory.set_completeness(
                name,
                Completeness::Incomplete {
                    reason: reason.clone(),
                    kept_previous: false,
                    unlisted: Vec::new(),
                },
            );
        }
        return;
    }

    let missing = |list: &str| !export.lists_present.contains(list);
    let hint = "the export was made with --filter; export without it";
    if missing("UserDetailList") {
        let reason = format!("the export has no UserDetailList ({hint})");
        for name in [
            CollectionName::Users,
            CollectionName::AccessKeys,
            CollectionName::ConsolePasswords,
        ] {
            inventory.set_completeness(name, not_collected(reason.clone()));
        }
    }
    if missing("RoleDetailList") {
        for name in [CollectionName::Roles, CollectionName::InstanceProfiles] {
            inventory.set_completeness(
                name,
                not_collected(format!("the export has no RoleDetailList ({hint})")),
            );
        }
    }
    if missing("GroupDetailList") || missing("Policies") {
        let reason = format!(
            "the export lacks GroupDetailList or Policies, so admin grants cannot be judged ({hint})"
        );
        inventory.set_completeness(CollectionName::Privileges, not_collected(reason));
    }
}

/// Returns the users that the credential report has no row for: users
/// created after it was generated, for example.
fn users_missing_from_report<'a>(
    report: &CredentialReport,
    user_names: &'a [String],
) -> Vec<&'a str> {
    user_names
        .iter()
        .map(String::as_str)
        .filter(|user| !report.rows.contains_key(*user))
        .collect()
}

fn report_gap_reason(missing: &[&str]) -> String {
    format!(
        "the credential report has no row for users {}; it was probably generated before they \
         were created, so generate it again",
        missing.join(", ")
    )
}

/// Takes console passwords from the credential report.
fn set_console_passwords(
    inventory: &mut AccountInventory,
    user_names: &[String],
    export: &AccountExport,
) {
    let Some(report) = &export.credential_report else {
        inventory.set_completeness(
            CollectionName::ConsolePasswords,
            not_collected("the export has no credential report".to_string()),
        );
        return;
    };

    // NOTE: the report gives when the password last changed, not when the
    // login profile was created; for a new password both agree.
    let passwords = report
        .rows
        .iter()
        .filter(|(_, row)| row.password_enabled)
        .map(|(user, row)| (user.clone(), row.password_last_changed.clone()))
        .collect();
    inventory.set_console_passwords(passwords, None);

    let missing = users_missing_from_report(report, user_names);
    if !missing.is_empty() {
        inventory.set_completeness(
            CollectionName::ConsolePasswords,
            not_collected(report_gap_reason(&missing)),
        );
    }
}

/// Takes access keys from key listings, or from the credential report's key
/// slots when there are no listings, and marks users that neither covers.
fn set_access_keys(
    inventory: &mut AccountInventory,
    user_names: &[String],
    export: &AccountExport,
) {
    if export.has_key_listing {
        let listed: BTreeSet<&str> = export
            .key_listings
            .iter()
            .map(|key| key.user_name.as_str())
            .collect();
        let report_shows_no_keys = |user: &str| {
            export
                .credential_report
                .as_ref()
                .and_then(|report| report.rows.get(user))
                .is_some_and(|row| row.key_slots.is_empty())
        };
        let uncovered: Vec<&str> = user_names
            .iter()
            .map(String::as_str)
            .filter(|user| !listed.contains(user) && !report_shows_no_keys(user))
            .collect();
        let failure = (!uncovered.is_empty()).then(|| {
            format!(
                "no access key listing names users {} (an empty listing does not say whose it is; \
                 add the credential report to the export)",
                uncovered.join(", ")
            )
        });
        let failure = failure.map(not_collected);
        inventory.set_access_keys(export.key_listings.clone(), None);
        if let Some(not_collected) = failure {
            inventory.set_completeness(CollectionName::AccessKeys, not_collected);
        }
        if !export.truncated_key_listings.is_empty() {
            let reason = format!(
                "key listings {} are cut short (IsTruncated or NextToken); export them again without --max-items",
                export.truncated_key_listings.join(", ")
            );
            inventory.set_completeness(
                CollectionName::AccessKeys,
                Completeness::Incomplete {
                    reason,
                    kept_previous: false,
                    unlisted: Vec::new(),
                },
            );
        }
        return;
    }

    let Some(report) = &export.credential_report else {
        inventory.set_completeness(
            CollectionName::AccessKeys,
            Completeness::NotCollected {
                reason: "the export has no access key listing or credential report".to_string(),
                kept_previous: false,
            },
        );
        return;
    };

    // The report carries no key ids, so a key is named by its slot and the
    // time it was last rotated: a rotated key shows as a new credential.
    let keys = report
        .rows
        .iter()
        .flat_map(|(user, row)| {
            row.key_slots
                .iter()
                .map(move |(slot, active, rotated)| AccessKeyRecord {
                    user_name: user.clone(),
                    access_key_id: format!("report-slot-{slot}-{rotated}"),
                    status: Some(if *active { "Active" } else { "Inactive" }.to_string()),
                    created: Some(rotated.clone()),
                })
        })
        .collect();
    inventory.set_access_keys(keys, None);

    let missing = users_missing_from_report(report, user_names);
    if !missing.is_empty() {
        inventory.set_completeness(
            CollectionName::AccessKeys,
            not_collected(report_gap_reason(&missing)),
        );
    }
}
