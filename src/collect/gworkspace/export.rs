//! Offline input for Google Workspace: raw Admin SDK `users.list`
//! responses (`{"kind": "admin#directory#users", "users": [...],
//! "nextPageToken": ...}`), one page a file, in `gworkspace/<customer-id>/`
//! folders. Recordings that wrap a response as `{"headers", "body"}` are
//! read too.
//!
//! A listing is complete when exactly one page has no `nextPageToken`: the
//! last one. When every page has a token, the last page is missing and the
//! users collection is incomplete.
// NOTE: a page saved without its request does not say which token fetched
// it, so a missing page in the middle of a listing goes unnoticed when the
// last page is there.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tracing::info;

use super::records::{Users, assemble, customer_of, users};
use crate::collect::gcp::records::unwrap_recording;
use crate::collect::{CollectError, Collected};
use crate::model::{CollectionName, Completeness};
use crate::settings::is_customer_id;

fn export_error(path: &Path, reason: impl Into<String>) -> CollectError {
    CollectError::Export {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn folder_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().to_string())
        .unwrap_or_default()
}

fn parent_is_gworkspace(path: &Path) -> bool {
    path.parent()
        .and_then(Path::file_name)
        .is_some_and(|parent| parent == "gworkspace")
}

/// Returns true when the path contains Workspace exports: a `gworkspace/`
/// folder, that folder itself, or one customer's folder under it.
pub fn is_present(path: &Path) -> bool {
    path.join("gworkspace").is_dir()
        || path.file_name().is_some_and(|name| name == "gworkspace")
        || parent_is_gworkspace(path)
}

/// Reads every customer under an export path.
pub fn collect_exports(path: &Path) -> Result<Vec<Collected>, CollectError> {
    let mut collected = Vec::new();
    for (customer, folder) in customer_folders(path)? {
        collected.push(read_customer(&customer, &folder)?);
    }
    Ok(collected)
}

/// Finds `gworkspace/<customer-id>/` folders.
fn customer_folders(path: &Path) -> Result<Vec<(String, PathBuf)>, CollectError> {
    let checked = |folder: &Path| {
        let name = folder_name(folder);
        if is_customer_id(&name) {
            Ok((name, folder.to_path_buf()))
        } else {
            Err(export_error(
                folder,
                "the folder name is not a Workspace customer id (C and letters and digits, such \
                 as C03az79cb); name customer folders gworkspace/<customer-id>/",
            ))
        }
    };
    if parent_is_gworkspace(path) {
        return Ok(vec![checked(path)?]);
    }
    let root = if folder_name(path) == "gworkspace" {
        path.to_path_buf()
    } else {
        path.join("gworkspace")
    };
    let mut folders = Vec::new();
    for entry in crate::collect::export_entries(&root)? {
        if !entry.is_dir() {
            return Err(export_error(
                &entry,
                "expected only gworkspace/<customer-id>/ folders in gworkspace/",
            ));
        }
        folders.push(checked(&entry)?);
    }
    if folders.is_empty() {
        return Err(export_error(&root, "no customer folders in it"));
    }
    Ok(folders)
}

/// Reads the pages of one customer's folder.
fn read_customer(customer: &str, folder: &Path) -> Result<Collected, CollectError> {
    let mut records = Vec::new();
    let mut pages = 0;
    let mut last_pages = 0;
    for file in crate::collect::export_entries(folder)? {
        let (page_users, next_token) = read_page(&file)?;
        info!(file = %file.display(), users = page_users.len(), "read export file");
        records.extend(page_users);
        pages += 1;
        if next_token.is_none() {
            last_pages += 1;
        }
    }
    if pages == 0 {
        return Err(export_error(
            folder,
            "no users.list pages in it; save each page of GET \
             admin/directory/v1/users?customer=my_customer as a file here",
        ));
    }

    let found: Users = users(&records);
    let customer_id = customer_of(customer, &found.customer_ids)
        .map_err(|reason| export_error(folder, reason))?;
    let mut collected = assemble(&customer_id, found, 0);
    if last_pages == 0 {
        let reason = format!(
            "every one of the {pages} users.list pages in {} has a nextPageToken, so the last \
             page is missing; save the pages up to one without nextPageToken",
            folder.display()
        );
        collected.snapshot.collections.insert(
            CollectionName::Users,
            Completeness::Incomplete {
                reason,
                kept_previous: false,
                unlisted: Vec::new(),
            },
        );
    }
    Ok(collected)
}

/// Parses one `users.list` page: its users and its `nextPageToken`.
fn read_page(file: &Path) -> Result<(Vec<Value>, Option<String>), CollectError> {
    let text = fs::read_to_string(file)
        .map_err(|error| export_error(file, format!("cannot read it: {error}")))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|error| export_error(file, format!("not valid JSON: {error}")))?;
    let page = unwrap_recording(&value);
    let is_page = page.get("kind").and_then(Value::as_str) == Some("admin#directory#users")
        || page.get("users").is_some_and(Value::is_array);
    if !is_page {
        return Err(export_error(
            file,
            "not an Admin SDK users.list response: expected an object with \"kind\": \
             \"admin#directory#users\" and a \"users\" list",
        ));
    }
    // Google leaves an empty list out of the response.
    let records = match page.get("users") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(records)) => records.clone(),
        Some(_) => return Err(export_error(file, "\"users\" is not a list")),
    };
    let next_token = page
        .get("nextPageToken")
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
        .map(str::to_string);
    Ok((records, next_token))
}
