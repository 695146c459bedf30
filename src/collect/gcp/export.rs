//! Offline input for Google Cloud: the JSON of `gcloud iam service-accounts
//! list`, `gcloud iam service-accounts keys list` (one file per account),
//! `gcloud iam service-accounts get-iam-policy` (one file per account),
//! `gcloud projects get-iam-policy`, `gcloud projects list`, `gcloud iam
//! workload-identity-pools list` and `gcloud iam workload-identity-pools
//! providers list` (one or more files per pool), all with `--format=json`,
//! from `gcp/<project-id>/` folders. Raw API responses, and recordings that
//! wrap them as `{"headers", "body"}`, are read too.
//!
//! Files are recognized by their records, not by name; the folder names
//! the project. An empty list names nothing, so it counts only under a name
//! that says what it is: `service-accounts*.json`,
//! `workload-identity-pools*.json`, `keys-<account email>.json` for an
//! account without user-managed keys, or `providers-<pool id>.json` for a
//! pool without providers. A service account's IAM policy does not name
//! the account and reads like a project's, so it counts only in a file
//! named `sa-policy-<account email>.json`. A listing the export lacks is
//! recorded as not collected, never as empty.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tracing::{info, warn};

use super::inventory::{Listing, PoolListings, ProjectListings, assemble};
use super::is_project_id;
use super::records::{key_owner, provider_parts, unwrap_recording};
use crate::collect::{CollectError, Collected};

/// The listings a `gcloud` export file can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ServiceAccounts,
    Keys,
    Policy,
    Projects,
    Pools,
    Providers,
}

/// Records per owner (a service account's email or a pool's id), each
/// listed or failed on its own.
type ListingsByOwner = Vec<(String, Result<Vec<Value>, String>)>;

/// The listings found in one project's folder.
#[derive(Debug, Default)]
struct ProjectExport {
    accounts: Option<Vec<Value>>,
    keys: ListingsByOwner,
    policy: Option<Value>,
    /// Each service account's own IAM policy, by email.
    account_policies: Vec<(String, Result<Value, String>)>,
    pools: Option<Vec<Value>>,
    /// Provider records by pool id.
    providers: ListingsByOwner,
    /// Whether `gcloud projects list` marks the project as being deleted.
    pending_deletion: bool,
}

fn export_error(path: &Path, reason: impl Into<String>) -> CollectError {
    CollectError::Export {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Returns true when the path contains Google Cloud exports: a `gcp/`
/// folder, the `gcp` folder itself, or one project's folder under it.
pub fn is_present(path: &Path) -> bool {
    path.join("gcp").is_dir()
        || path.file_name().is_some_and(|name| name == "gcp")
        || parent_is_gcp(path)
}

fn parent_is_gcp(path: &Path) -> bool {
    path.parent()
        .and_then(Path::file_name)
        .is_some_and(|parent| parent == "gcp")
}

/// Reads every project under an export path.
pub fn collect_exports(path: &Path) -> Result<Vec<Collected>, CollectError> {
    let mut collected = Vec::new();
    for (project, folder) in project_folders(path)? {
        if let Some(project) = read_project(&project, &folder)? {
            collected.push(project);
        }
    }
    Ok(collected)
}

fn folder_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// Finds `gcp/<project-id>/` folders.
fn project_folders(path: &Path) -> Result<Vec<(String, PathBuf)>, CollectError> {
    let bad_name = |folder: &Path| {
        export_error(
            folder,
            "the folder name is not a Google Cloud project id (6 to 30 lowercase letters, digits \
             and hyphens, starting with a letter); name project folders gcp/<project-id>/",
        )
    };
    if parent_is_gcp(path) {
        let name = folder_name(path);
        if !is_project_id(&name) {
            return Err(bad_name(path));
        }
        return Ok(vec![(name, path.to_path_buf())]);
    }

    let gcp_folder = if folder_name(path) == "gcp" {
        path.to_path_buf()
    } else {
        path.join("gcp")
    };
    let mut folders = Vec::new();
    for entry in crate::collect::export_entries(&gcp_folder)? {
        if !entry.is_dir() {
            return Err(export_error(
                &entry,
                "expected only gcp/<project-id>/ folders in gcp/",
            ));
        }
        let name = folder_name(&entry);
        if !is_project_id(&name) {
            return Err(bad_name(&entry));
        }
        folders.push((name, entry));
    }
    if folders.is_empty() {
        return Err(export_error(&gcp_folder, "no project folders in it"));
    }
    Ok(folders)
}

/// Reads one project's folder; `None` when the project is being deleted.
fn read_project(project: &str, folder: &Path) -> Result<Option<Collected>, CollectError> {
    let mut export = ProjectExport::default();
    for file in crate::collect::export_entries(folder)? {
        read_file(project, &mut export, &file)?;
    }
    if export.pending_deletion {
        warn!(
            project,
            "skipping a project that `gcloud projects list` marks as pending deletion"
        );
        return Ok(None);
    }

    let missing = |what: &str| format!("the export has no {what}");
    let listings = ProjectListings {
        accounts: export.accounts.map_or_else(
            || Listing::Missing(missing("service account listing")),
            Listing::Found,
        ),
        keys: if export.keys.is_empty() {
            Listing::Missing(missing(
                "key listing (gcloud iam service-accounts keys list, one file per account)",
            ))
        } else {
            Listing::Found(export.keys)
        },
        policy: export.policy.map_or_else(
            || Listing::Missing(missing("IAM policy (gcloud projects get-iam-policy)")),
            Listing::Found,
        ),
        account_policies: if export.account_policies.is_empty() {
            Listing::Missing(missing(
                "service account IAM policies (gcloud iam service-accounts get-iam-policy, one \
                 sa-policy-<email>.json file per account)",
            ))
        } else {
            Listing::Found(export.account_policies)
        },
        workload_identity: match export.pools {
            Some(pools) => Listing::Found(PoolListings {
                pools,
                providers: export.providers,
            }),
            None if !export.providers.is_empty() => Listing::Missing(missing(
                "workload identity pool listing (gcloud iam workload-identity-pools list), which \
                 the provider files need to be read as complete",
            )),
            None => Listing::Missing(missing(
                "workload identity pool listing (gcloud iam workload-identity-pools list)",
            )),
        },
    };
    Ok(Some(assemble(project, listings, 0)))
}

/// Parses one file, recognizes its listing and adds its records.
fn read_file(project: &str, export: &mut ProjectExport, file: &Path) -> Result<(), CollectError> {
    let text = fs::read_to_string(file)
        .map_err(|error| export_error(file, format!("cannot read it: {error}")))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|error| export_error(file, format!("not valid JSON: {error}")))?;
    let value = unwrap_recording(&value);
    let name = folder_name(file);

    // A service account's policy reads like a project's, so its name decides.
    if let Some(email) = account_policy_file_account(&name) {
        if !value.is_object() {
            return Err(export_error(
                file,
                "expected the JSON object that `gcloud iam service-accounts get-iam-policy \
                 --format=json` prints",
            ));
        }
        info!(file = %file.display(), account = email, "read service account IAM policy");
        export
            .account_policies
            .push((email.to_string(), Ok(value.clone())));
        return Ok(());
    }

    let (kind, records) = match recognize(value) {
        Some(found) => found,
        None => match empty_listing(&name, value) {
            Some(kind) => (kind, Vec::new()),
            None if is_empty_list(value) => {
                warn!(file = %file.display(), "skipping an empty list: its name does not say which listing it is");
                return Ok(());
            }
            None => return Err(not_an_export(file)),
        },
    };
    info!(file = %file.display(), listing = ?kind, "read export file");

    match kind {
        Kind::ServiceAccounts => export.accounts.get_or_insert_with(Vec::new).extend(records),
        Kind::Keys => add_keys(export, file, &name, records)?,
        Kind::Policy => {
            if export.policy.replace(value.clone()).is_some() {
                return Err(export_error(
                    file,
                    "a second IAM policy for the same project",
                ));
            }
        }
        Kind::Pools => export.pools.get_or_insert_with(Vec::new).extend(records),
        Kind::Providers => add_providers(export, file, &name, records)?,
        Kind::Projects => {
            export.pending_deletion |= records.iter().any(|record| {
                record.get("projectId").and_then(Value::as_str) == Some(project)
                    && ["lifecycleState", "state"].iter().any(|key| {
                        record.get(key).and_then(Value::as_str) == Some("DELETE_REQUESTED")
                    })
            });
        }
    }
    Ok(())
}

/// Groups key records by the account their `name` names.
fn add_keys(
    export: &mut ProjectExport,
    file: &Path,
    name: &str,
    records: Vec<Value>,
) -> Result<(), CollectError> {
    if records.is_empty() {
        let email = key_file_account(name).unwrap_or_default();
        export.keys.push((email.to_string(), Ok(Vec::new())));
        return Ok(());
    }
    let owner_of = |name: &str| key_owner(name).map(|(email, _)| email.to_string());
    let malformed = "a key without a name of the form projects/P/serviceAccounts/EMAIL/keys/ID";
    let by_account = group_by_owner(file, records, owner_of, malformed)?;
    export.keys.extend(by_account);
    Ok(())
}

/// Groups provider records by the pool their `name` names.
fn add_providers(
    export: &mut ProjectExport,
    file: &Path,
    name: &str,
    records: Vec<Value>,
) -> Result<(), CollectError> {
    if records.is_empty() {
        let pool = provider_file_pool(name).unwrap_or_default();
        export.providers.push((pool.to_string(), Ok(Vec::new())));
        return Ok(());
    }
    let owner_of = |name: &str| provider_parts(name).map(|(pool, _)| pool.to_string());
    let malformed = "a provider without a name of the form \
                     projects/N/locations/global/workloadIdentityPools/POOL/providers/ID";
    let by_pool = group_by_owner(file, records, owner_of, malformed)?;
    export.providers.extend(by_pool);
    Ok(())
}

/// Groups records by the owner that `owner_of` reads from each `name`, in
/// the order owners first appear. A record without such a name fails the
/// file with the `malformed` message.
fn group_by_owner(
    file: &Path,
    records: Vec<Value>,
    owner_of: impl Fn(&str) -> Option<String>,
    malformed: &str,
) -> Result<ListingsByOwner, CollectError> {
    let mut groups: Vec<(String, Vec<Value>)> = Vec::new();
    for record in records {
        let owner = record
            .get("name")
            .and_then(Value::as_str)
            .and_then(&owner_of)
            .ok_or_else(|| export_error(file, malformed))?;
        match groups.iter_mut().find(|(known, _)| *known == owner) {
            Some((_, group)) => group.push(record),
            None => groups.push((owner, vec![record])),
        }
    }
    Ok(groups
        .into_iter()
        .map(|(owner, group)| (owner, Ok(group)))
        .collect())
}

/// Returns the pool a `providers-<pool id>.json` file name names.
fn provider_file_pool(name: &str) -> Option<&str> {
    let pool = name.strip_prefix("providers-")?.strip_suffix(".json")?;
    (!pool.is_empty()).then_some(pool)
}

/// Returns the account a `sa-policy-<email>.json` file name names.
fn account_policy_file_account(name: &str) -> Option<&str> {
    let email = name.strip_prefix("sa-policy-")?.strip_suffix(".json")?;
    email.contains('@').then_some(email)
}

/// Returns the account a `keys-<email>.json` file name names.
fn key_file_account(name: &str) -> Option<&str> {
    let email = name.strip_prefix("keys-")?.strip_suffix(".json")?;
    email.contains('@').then_some(email)
}

fn is_empty_list(value: &Value) -> bool {
    match value {
        Value::Array(records) => records.is_empty(),
        Value::Object(page) => page.is_empty(),
        _ => false,
    }
}

/// Names the listing of an empty list by its file name.
fn empty_listing(name: &str, value: &Value) -> Option<Kind> {
    if !is_empty_list(value) {
        return None;
    }
    if key_file_account(name).is_some() {
        Some(Kind::Keys)
    } else if name.starts_with("service-accounts") {
        Some(Kind::ServiceAccounts)
    } else if name.starts_with("workload-identity-pools") {
        Some(Kind::Pools)
    } else if provider_file_pool(name).is_some() {
        Some(Kind::Providers)
    } else {
        None
    }
}

/// Recognizes a listing by its shape and the fields of its first record.
fn recognize(value: &Value) -> Option<(Kind, Vec<Value>)> {
    if let Value::Object(page) = value {
        for (key, kind) in [
            ("accounts", Kind::ServiceAccounts),
            ("keys", Kind::Keys),
            ("projects", Kind::Projects),
            ("workloadIdentityPools", Kind::Pools),
            ("workloadIdentityPoolProviders", Kind::Providers),
        ] {
            if let Some(records) = page.get(key).and_then(Value::as_array) {
                let records = records.clone();
                return (records.is_empty() || kind_of(&records[0]) == Some(kind))
                    .then_some((kind, records));
            }
        }
        let is_policy = page.contains_key("bindings")
            || (page.contains_key("etag") && page.contains_key("version"));
        return is_policy.then(|| (Kind::Policy, Vec::new()));
    }
    let records = value.as_array()?;
    let kind = kind_of(records.first()?)?;
    Some((kind, records.clone()))
}

fn kind_of(record: &Value) -> Option<Kind> {
    let has = |key: &str| record.get(key).is_some();
    let name = record.get("name").and_then(Value::as_str).unwrap_or("");
    if name.contains("/workloadIdentityPools/") {
        return Some(if name.contains("/providers/") {
            Kind::Providers
        } else {
            Kind::Pools
        });
    }
    if has("uniqueId") && has("email") {
        Some(Kind::ServiceAccounts)
    } else if has("keyType") || (has("validAfterTime") && has("name")) {
        Some(Kind::Keys)
    } else if has("projectId") && (has("lifecycleState") || has("state") || has("projectNumber")) {
        Some(Kind::Projects)
    } else {
        None
    }
}

fn not_an_export(file: &Path) -> CollectError {
    export_error(
        file,
        "not a Google Cloud export idrift reads: expected the --format=json output of `gcloud iam \
         service-accounts list`, `gcloud iam service-accounts keys list`, `gcloud projects \
         get-iam-policy`, `gcloud projects list`, `gcloud iam workload-identity-pools list` or \
         `gcloud iam workload-identity-pools providers list`, or the matching API response; a \
         service account's policy goes in a file named sa-policy-<email>.json",
    )
}
