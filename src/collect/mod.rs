//! Collectors: turn a cloud's API pages, or its CLI's exports, into a
//! snapshot of identity records per scope.

pub mod aws;
pub mod azure;
pub mod gcp;
pub mod gworkspace;
pub mod parallel;

use std::path::PathBuf;

use crate::model::Snapshot;

/// One scope's records as collected, before the previous snapshot is merged in.
#[derive(Debug)]
pub struct Collected {
    /// Records and per-collection completeness, as this scan found them.
    pub snapshot: Snapshot,
    /// HTTP requests sent, retries included (0 for offline input).
    pub api_calls: u64,
}

/// A scope that could not be collected at all.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The scope could not be identified or reached (credentials, endpoint, account).
    #[error("{provider} {scope}: {reason}")]
    Unavailable {
        /// Provider name.
        provider: &'static str,
        /// The scope as configured: an account id, profile or role.
        scope: String,
        /// The failure and the next step for the user.
        reason: String,
    },
    /// An offline export could not be read.
    #[error("export {}: {reason}", path.display())]
    Export {
        /// The file or folder at fault.
        path: PathBuf,
        /// The problem with it and the next step for the user.
        reason: String,
    },
}

/// Reads every scope under an export path: one AWS authorization-details
/// file, or a folder holding `aws/<account-id>/`, `azure/<tenant-id>/`,
/// `gcp/<project-id>/` and `gworkspace/<customer-id>/` folders (or one of
/// those folders itself).
pub fn collect_exports(path: &std::path::Path) -> Result<Vec<Collected>, CollectError> {
    let azure = azure::export::is_present(path);
    let gcp = gcp::export::is_present(path);
    let gworkspace = gworkspace::export::is_present(path);
    if path.is_file() || (!azure && !gcp && !gworkspace) {
        return aws::export::collect_exports(path);
    }
    // Inside one provider's folder, only that provider is read.
    let provider_folder = [
        path.file_name(),
        path.parent().and_then(|parent| parent.file_name()),
    ]
    .into_iter()
    .flatten()
    .find_map(|name| {
        ["aws", "azure", "gcp", "gworkspace"]
            .into_iter()
            .find(|provider| name == *provider)
    });
    match provider_folder {
        Some("azure") => return azure::export::collect_exports(path),
        Some("gcp") => return gcp::export::collect_exports(path),
        Some("gworkspace") => return gworkspace::export::collect_exports(path),
        Some(_) => return aws::export::collect_exports(path),
        None => {}
    }
    // AWS, Entra ID, Google Cloud, then Workspace: the order of an API scan.
    let mut collected = Vec::new();
    if path.join("aws").is_dir() {
        collected.extend(aws::export::collect_exports(path)?);
    }
    if azure {
        collected.extend(azure::export::collect_exports(path)?);
    }
    if gcp {
        collected.extend(gcp::export::collect_exports(path)?);
    }
    if gworkspace {
        collected.extend(gworkspace::export::collect_exports(path)?);
    }
    Ok(collected)
}

/// Lists an export folder's entries, sorted, leaving out hidden ones
/// (`.name`). An entry that cannot be read is an error, not a gap.
pub fn export_entries(folder: &std::path::Path) -> Result<Vec<PathBuf>, CollectError> {
    let unreadable = |error: std::io::Error| CollectError::Export {
        path: folder.to_path_buf(),
        reason: format!("cannot read the folder: {error}"),
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            paths.push(entry.path());
        }
    }
    paths.sort();
    Ok(paths)
}

/// Reads a response's `Retry-After` header as whole seconds; the HTTP-date
/// form is not read.
pub fn retry_after(response: &reqwest::Response) -> Option<std::time::Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(std::time::Duration::from_secs)
}

/// Joins the messages of an error and its causes on one line, skipping
/// messages that an earlier one already contains.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut messages: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = current {
        let message = cause
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if !message.is_empty() && !messages.iter().any(|seen| seen.contains(&message)) {
            messages.push(message);
        }
        current = cause.source();
    }
    messages.join(": ")
}

impl CollectError {
    /// Returns what failed and what to do, without the provider and scope prefix.
    pub fn reason(&self) -> &str {
        match self {
            CollectError::Unavailable { reason, .. } | CollectError::Export { reason, .. } => {
                reason
            }
        }
    }
}
