//! The snapshot store: one pretty-printed JSON file per provider and scope,
//! `<root>/<provider>/<scope>.json`, written atomically and checked on load.
//!
//! Scan metadata (time, version, duration, call count) goes to
//! `<root>/.idrift/last-scan/<provider>/<scope>.json`, apart from the records,
//! so that an unchanged cloud leaves the snapshot files byte-identical.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::model::{
    CollectionName, Completeness, Identity, IdentityKind, Provider, SNAPSHOT_FORMAT_VERSION,
    Snapshot,
};

/// A snapshot file or folder that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing failed at the file-system level.
    #[error("snapshot {}: {action} failed: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operation that failed.
        action: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not a valid snapshot.
    #[error(
        "snapshot {}: the file is corrupt ({reason}); restore it from git (`git checkout -- {}`) \
         or move it away to record a new baseline",
        path.display(),
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The problem found.
        reason: String,
    },
    /// The file was written by a newer idrift.
    #[error(
        "snapshot {}: format version {found} is newer than this idrift reads ({SNAPSHOT_FORMAT_VERSION}); \
         upgrade idrift",
        path.display()
    )]
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u64,
    },
    /// A folder that contains no snapshot.
    #[error(
        "snapshot folder {}: no <provider>/<scope>.json files in it; pass the folder that holds aws/",
        path.display()
    )]
    Empty {
        /// The folder.
        path: PathBuf,
    },
    /// A scope id that cannot be used as a file name.
    #[error("scope id {scope:?} cannot be used as a snapshot file name")]
    InvalidScope {
        /// The scope id.
        scope: String,
    },
}

/// Scan metadata, kept apart from the records.
#[derive(Debug, Clone, Serialize)]
pub struct ScanMetadata {
    /// When the scan finished, RFC 3339.
    pub scanned_at: String,
    /// The idrift version that wrote it.
    pub idrift_version: String,
    /// Wall time of the scope's collection, in milliseconds.
    pub duration_ms: u128,
    /// HTTP requests sent, retries included.
    pub api_calls: u64,
    /// `api` or the export path.
    pub source: String,
    /// Collections that were not complete, with reasons.
    pub incomplete: Vec<String>,
}

/// A folder of snapshots.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    root: PathBuf,
}

impl SnapshotStore {
    /// Opens a store rooted at a folder, which need not exist yet.
    pub fn new(root: impl Into<PathBuf>) -> SnapshotStore {
        SnapshotStore { root: root.into() }
    }

    /// Returns the root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Returns the path of a scope's snapshot file.
    pub fn path_for(&self, provider: Provider, scope: &str) -> Result<PathBuf, StoreError> {
        check_scope(scope)?;
        Ok(self
            .root
            .join(provider.as_str())
            .join(format!("{scope}.json")))
    }

    /// Loads a scope's snapshot, or `None` when there is none yet.
    pub fn load(&self, provider: Provider, scope: &str) -> Result<Option<Snapshot>, StoreError> {
        let path = self.path_for(provider, scope)?;

        // Only a missing file means "no snapshot yet". Any other failure (a
        // dangling link, a folder that cannot be read) must stop the scan
        // rather than let it record a fresh baseline over the old file.
        match fs::symlink_metadata(&path) {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None);
            }
            Err(source) => {
                return Err(StoreError::Io {
                    path,
                    action: "checking",
                    source,
                });
            }
        }
        let snapshot = load_file(&path)?;
        if snapshot.provider != provider || snapshot.scope != scope {
            return Err(StoreError::Corrupt {
                path,
                reason: format!(
                    "it holds {} {} where {provider} {scope} belongs",
                    snapshot.provider, snapshot.scope
                ),
            });
        }
        Ok(Some(snapshot))
    }

    /// Writes a scope's snapshot atomically: a temporary file in the same
    /// folder, flushed to disk, then renamed over the old one.
    pub fn save(&self, snapshot: &Snapshot) -> Result<PathBuf, StoreError> {
        let path = self.path_for(snapshot.provider, &snapshot.scope)?;
        write_atomically(&path, to_json(snapshot).as_bytes())?;
        Ok(path)
    }

    /// Writes a scope's scan metadata beside, not inside, the snapshot.
    pub fn save_metadata(
        &self,
        provider: Provider,
        scope: &str,
        metadata: &ScanMetadata,
    ) -> Result<(), StoreError> {
        check_scope(scope)?;
        self.ignore_metadata_folder()?;
        let path = self.metadata_path(provider, scope);
        let mut text = serde_json::to_string_pretty(metadata).unwrap_or_default();
        text.push('\n');
        write_atomically(&path, text.as_bytes())
    }
}

impl SnapshotStore {
    /// Returns when the scope was last scanned (`scanned_at` of its scan
    /// metadata, RFC 3339), or none when no metadata is there or it cannot
    /// be read: the metadata is optional, so its absence is not an error.
    pub fn previous_scan_time(&self, provider: Provider, scope: &str) -> Option<String> {
        check_scope(scope).ok()?;
        let text = fs::read_to_string(self.metadata_path(provider, scope)).ok()?;
        let metadata: serde_json::Value = serde_json::from_str(&text).ok()?;
        metadata["scanned_at"].as_str().map(str::to_string)
    }

    /// Returns the scan metadata file of a scope, beside the snapshots.
    fn metadata_path(&self, provider: Provider, scope: &str) -> PathBuf {
        self.root
            .join(".idrift")
            .join("last-scan")
            .join(provider.as_str())
            .join(format!("{scope}.json"))
    }

    /// Writes `.idrift/.gitignore` so that git ignores the scan metadata and
    /// the lock, which change on every run, unless the file is there already.
    fn ignore_metadata_folder(&self) -> Result<(), StoreError> {
        let path = self.root.join(".idrift").join(".gitignore");
        if path.exists() {
            return Ok(());
        }
        write_atomically(
            &path,
            b"# Written by idrift: scan times and the lock change on every run.\n*\n",
        )
    }
}

/// Rejects scope ids that could escape the folder or hide the file.
fn check_scope(scope: &str) -> Result<(), StoreError> {
    let safe = !scope.is_empty()
        && !scope.starts_with('.')
        && scope
            .bytes()
            // `:` is in older Google Cloud project ids, such as `example.com:tools`.
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b':'));
    if safe {
        Ok(())
    } else {
        Err(StoreError::InvalidScope {
            scope: scope.to_string(),
        })
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let io_error = |action: &'static str| {
        move |source: std::io::Error| StoreError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let folder = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(folder).map_err(io_error("creating the folder"))?;

    let mut temporary = tempfile::Builder::new()
        .prefix(".idrift-")
        .suffix(".tmp")
        .tempfile_in(folder)
        .map_err(io_error("creating a temporary file"))?;
    temporary.write_all(bytes).map_err(io_error("writing"))?;

    // tempfile creates files readable by the owner only, so a snapshot is
    // given the mode of the file it replaces, or the usual 0644 if new.
    let mode = fs::metadata(path).map_or(0o644, |metadata| metadata.permissions().mode());
    fs::set_permissions(temporary.path(), fs::Permissions::from_mode(mode))
        .map_err(io_error("setting permissions"))?;
    temporary
        .as_file()
        .sync_all()
        .map_err(io_error("flushing"))?;
    temporary
        .persist(path)
        .map_err(|error| io_error("renaming the temporary file")(error.error))?;

    // The rename is durable only once the folder itself is flushed.
    if let Ok(handle) = fs::File::open(folder) {
        let _ = handle.sync_all();
    }
    Ok(())
}

/// Serializes a snapshot deterministically: sorted, pretty, trailing newline.
pub fn to_json(snapshot: &Snapshot) -> String {
    let mut sorted = snapshot.clone();
    sorted.normalize();
    let mut text = serde_json::to_string_pretty(&sorted).unwrap_or_default();
    text.push('\n');
    text
}

/// Loads one snapshot file, checking its format version first.
pub fn load_file(path: &Path) -> Result<Snapshot, StoreError> {
    let text = fs::read_to_string(path).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        action: "reading",
        source,
    })?;
    parse_snapshot(&text, path)
}

/// Parses a snapshot's text, checking its format version first; `path`
/// names it in errors, such as a file in a git commit.
pub fn parse_snapshot(text: &str, path: &Path) -> Result<Snapshot, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let value: Value =
        serde_json::from_str(text).map_err(|error| corrupt(format!("not valid JSON: {error}")))?;

    let version = match value.get("format_version") {
        None => return Err(corrupt("no format_version".to_string())),
        Some(found) => found
            .as_u64()
            .filter(|version| *version >= 1)
            .ok_or_else(|| {
                corrupt(format!(
                    "format_version must be a positive integer, found {found}"
                ))
            })?,
    };
    if version > u64::from(SNAPSHOT_FORMAT_VERSION) {
        return Err(StoreError::NewerFormat {
            path: path.to_path_buf(),
            found: version,
        });
    }
    let mut snapshot: Snapshot = serde_json::from_value(value)
        .map_err(|error| corrupt(format!("unexpected content: {error}")))?;
    snapshot.normalize();
    let ids = snapshot.identities.windows(2);
    if let Some(pair) = ids
        .into_iter()
        .find(|pair| pair[0].id == pair[1].id && pair[0].kind == pair[1].kind)
    {
        return Err(corrupt(format!("identity id {} appears twice", pair[0].id)));
    }
    Ok(snapshot)
}

/// Loads a snapshot file, or every `<provider>/<scope>.json` under a folder.
///
/// Each file must contain the scope its name gives. An empty result is an
/// error, because a path without snapshots is a mistake, not an empty cloud.
pub fn load_tree(path: &Path) -> Result<Vec<Snapshot>, StoreError> {
    let io_error = |source| StoreError::Io {
        path: path.to_path_buf(),
        action: "reading",
        source,
    };
    if fs::metadata(path).map_err(io_error)?.is_file() {
        return Ok(vec![load_file(path)?]);
    }

    let mut snapshots = Vec::new();
    for provider in [
        Provider::Aws,
        Provider::Azure,
        Provider::Gcp,
        Provider::Gworkspace,
    ] {
        let folder = path.join(provider.as_str());
        let entries = match fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(StoreError::Io {
                    path: folder,
                    action: "reading",
                    source,
                });
            }
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|file| {
                !file
                    .file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        for file in files {
            snapshots.push(load_named_file(&file, provider)?);
        }
    }
    if snapshots.is_empty() {
        return Err(StoreError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(snapshots)
}

/// Loads `<provider>/<scope>.json` and checks that it contains that provider and scope.
fn load_named_file(file: &Path, provider: Provider) -> Result<Snapshot, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        path: file.to_path_buf(),
        reason,
    };
    let is_json = file
        .extension()
        .is_some_and(|extension| extension == "json");
    if !is_json || !file.is_file() {
        return Err(corrupt(
            "only <scope>.json snapshot files belong in a provider folder".to_string(),
        ));
    }
    let snapshot = load_file(file)?;
    let stem = file
        .file_stem()
        .map(|stem| stem.to_string_lossy().to_string())
        .unwrap_or_default();
    if snapshot.provider != provider || snapshot.scope != stem {
        return Err(corrupt(format!(
            "it holds {} {} but its path names {provider} {stem}",
            snapshot.provider, snapshot.scope
        )));
    }
    Ok(snapshot)
}

/// Merges the previous snapshot into a new one. Each collection that is not
/// complete now keeps the previous records when the previous snapshot had
/// complete ones, and its completeness records that with `kept_previous`.
pub fn carry_over(mut new: Snapshot, previous: Option<&Snapshot>) -> Snapshot {
    let Some(previous) = previous else { return new };

    // A collection the previous snapshot listed and this scan did not look
    // at (an export without Identity Center files, say) is not empty: it is
    // marked not collected, so that its records are kept below.
    // NOTE: this also keeps the records of a collection that the config
    // turned off, such as `identity_center`, until its snapshot is removed.
    for (name, completeness) in &previous.collections {
        if completeness.holds_complete_records() && !new.collections.contains_key(name) {
            let reason = format!("this scan did not list {name}");
            new.collections.insert(
                *name,
                Completeness::NotCollected {
                    reason,
                    kept_previous: false,
                },
            );
        }
    }

    let lacking: Vec<CollectionName> = new
        .collections
        .iter()
        .filter(|(name, completeness)| {
            !completeness.is_complete() && previous.completeness(**name).holds_complete_records()
        })
        .map(|(name, _)| *name)
        .collect();

    // Identity lists first, so that attribute collections below copy onto
    // the records that are kept.
    for name in &lacking {
        let kinds = IdentityKind::listed_by(*name);
        if !kinds.is_empty() {
            new.identities
                .retain(|identity| !kinds.contains(&identity.kind));
            new.identities.extend(
                previous
                    .identities
                    .iter()
                    .filter(|identity| kinds.contains(&identity.kind))
                    .cloned(),
            );
        }
    }
    // A collection can list identities and also add parts to others: a
    // Google Cloud IAM policy lists its principals and grants admin to
    // service accounts.
    for name in &lacking {
        let unlisted = new.completeness(*name).unlisted().to_vec();
        copy_attribute(&mut new.identities, &previous.identities, *name, &unlisted);
    }
    for name in lacking {
        if let Some(completeness) = new.collections.remove(&name) {
            new.collections
                .insert(name, completeness.with_kept_previous());
        }
    }
    new.normalize();
    new
}

/// Replaces, for every identity or only the `unlisted` ones when that list
/// is not empty, the part of the record that a collection owns with the
/// previous values.
fn copy_attribute(
    identities: &mut [Identity],
    previous: &[Identity],
    name: CollectionName,
    unlisted: &[String],
) {
    let previous_by_id: HashMap<(&str, IdentityKind), &Identity> = previous
        .iter()
        .map(|old| ((old.id.as_str(), old.kind), old))
        .collect();
    for identity in identities.iter_mut() {
        if !unlisted.is_empty() && !unlisted.contains(&identity.id) {
            continue;
        }
        // An identity new in this scan has no earlier records: it keeps what
        // this scan found for it, which is all there is to know.
        let Some(old) = previous_by_id.get(&(identity.id.as_str(), identity.kind)) else {
            continue;
        };
        match name {
            CollectionName::Privileges | CollectionName::IamPolicy | CollectionName::AzureRbac
                if identity.kind.grant_collection() == name
                    || name == CollectionName::AzureRbac =>
            {
                // Only the grants this collection lists are replaced: an
                // identity's Azure RBAC grants and directory roles come
                // from different listings.
                let kind = identity.kind;
                identity
                    .admin_grants
                    .retain(|grant| grant.collection_on(kind) != name);
                let kept = old
                    .admin_grants
                    .iter()
                    .filter(|grant| grant.collection_on(kind) == name);
                identity.admin_grants.extend(kept.cloned());
                // A Google Cloud policy also lists every role of the
                // service accounts it names.
                if name == CollectionName::IamPolicy {
                    let roles = crate::model::gcp_attribute::ROLES;
                    match old.attributes.get(roles) {
                        Some(kept) => {
                            identity.attributes.insert(roles.to_string(), kept.clone());
                        }
                        None => {
                            identity.attributes.remove(roles);
                        }
                    }
                }
            }
            CollectionName::Privileges | CollectionName::IamPolicy | CollectionName::AzureRbac => {}
            CollectionName::AccessKeys
            | CollectionName::ConsolePasswords
            | CollectionName::FederatedCredentials
            | CollectionName::ServiceAccountKeys
            | CollectionName::ServiceAccountPolicies
            | CollectionName::UserAssignedIdentities => {
                let kind = identity.kind;
                identity
                    .credentials
                    .retain(|credential| credential.kind.collection_on(kind) != name);
                let kept = old
                    .credentials
                    .iter()
                    .filter(|credential| credential.kind.collection_on(kind) == name);
                identity.credentials.extend(kept.cloned());
            }
            CollectionName::Owners => identity.owners = old.owners.clone(),
            // Identity lists are carried over whole, credentials included.
            CollectionName::Users
            | CollectionName::Roles
            | CollectionName::ServicePrincipals
            | CollectionName::Applications
            | CollectionName::ServiceAccounts
            | CollectionName::InstanceProfiles
            | CollectionName::OidcProviders
            | CollectionName::SamlProviders
            | CollectionName::IdentityCenterUsers
            | CollectionName::WorkloadIdentityProviders => {}
            // An assignment's admin grants come with its own listing.
            CollectionName::PermissionSetAssignments => {}
        }
    }
}
