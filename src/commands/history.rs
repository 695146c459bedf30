//! Incident mode: reads the snapshot folder's git history instead of the
//! files on disk.
//!
//! `idrift diff --since DATE` and `idrift diff REV1 REV2` walk every commit
//! that touched the folder between the two ends and diff each version with
//! the one before, so an identity created and deleted in between still shows
//! up, as two findings. `idrift history ID` prints one identity's life.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::cli::{DiffSettings, HistoryRange, HistorySettings};
use crate::diff::diff_snapshots;
use crate::git::{self, Commit, GitError};
use crate::judge::{Finding, judge_with_rules};
use crate::model::{Identity, Provider, Snapshot};
use crate::report::{Report, ScopeStatus, ScopeSummary, SnapshotLocation};
use crate::rules::RuleSet;

type ScopeKey = (Provider, String);

/// The folder's snapshots as of one commit, by scope.
struct Version {
    commit: Commit,
    snapshots: BTreeMap<ScopeKey, Snapshot>,
}

/// Reports every change between two ends of the snapshot folder's history.
pub fn diff_range(settings: &DiffSettings, range: &HistoryRange) -> Report {
    let folder = settings.old.as_path();
    let versions = match load_range(folder, range) {
        Ok(versions) => versions,
        Err(error) => return Report::failed("diff", error.to_string()),
    };
    let Some(last) = versions.last() else {
        let message = format!(
            "snapshot folder {}: no commit touched it in that range",
            folder.display()
        );
        return Report::failed("diff", message);
    };

    let mut findings = Vec::new();
    for pair in versions.windows(2) {
        findings.extend(step_findings(&pair[0], &pair[1], &settings.rules));
    }
    let first = &versions[0];
    let scopes = last
        .snapshots
        .iter()
        .map(|(key, snapshot)| {
            let status = if first.snapshots.contains_key(key) {
                ScopeStatus::Compared
            } else {
                ScopeStatus::OnlyInNew
            };
            scope_summary(snapshot, status)
        })
        .collect();
    Report::new("diff", scopes, findings, Vec::new())
        .with_snapshots(SnapshotLocation::Folder(folder.to_path_buf()))
}

/// Loads the base version and every later version in the range, oldest
/// first.
fn load_range(folder: &Path, range: &HistoryRange) -> Result<Vec<Version>, GitError> {
    git::check_history_ready(folder)?;
    let (base, commits) = match range {
        HistoryRange::Revisions { old, new } => {
            let base = git::resolve_commit(folder, old)?;
            let new = git::resolve_commit(folder, new)?;
            let range = format!("{}..{}", base.hash, new.hash);
            (Some(base), git::folder_commits(folder, Some(&range), None)?)
        }
        HistoryRange::Since { date } => (
            git::folder_commit_before(folder, date)?,
            git::folder_commits(folder, None, Some(date))?,
        ),
    };
    base.into_iter()
        .chain(commits)
        .map(|commit| load_version(folder, commit))
        .collect()
}

fn load_version(folder: &Path, commit: Commit) -> Result<Version, GitError> {
    let snapshots = git::snapshots_at(folder, &commit.hash)?
        .into_iter()
        .map(|snapshot| ((snapshot.provider, snapshot.scope.clone()), snapshot))
        .collect();
    Ok(Version { commit, snapshots })
}

/// Judges the changes between two consecutive versions, each finding marked
/// with the commit that brought it.
fn step_findings(before: &Version, after: &Version, rules: &RuleSet) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (key, new) in &after.snapshots {
        let Some(old) = before.snapshots.get(key) else {
            continue;
        };
        for mut finding in judge_with_rules(&diff_snapshots(old, new), rules) {
            mark_commit(&mut finding, &after.commit);
            findings.push(finding);
        }
    }
    findings
}

fn mark_commit(finding: &mut Finding, commit: &Commit) {
    finding
        .evidence
        .insert("commit".to_string(), commit.hash.clone());
    finding
        .evidence
        .insert("commit_date".to_string(), commit.date.clone());
}

fn scope_summary(snapshot: &Snapshot, status: ScopeStatus) -> ScopeSummary {
    ScopeSummary {
        provider: snapshot.provider.to_string(),
        scope: snapshot.scope.clone(),
        status,
        identities: snapshot.identities.len(),
        not_compared: Vec::new(),
        incomplete: crate::commands::scan::incomplete_collections(snapshot),
        error: None,
        snapshot: None,
    }
}

/// The output of `idrift history`: text and an exit code.
#[derive(Debug)]
pub struct IdentityHistory {
    /// The text for stdout.
    pub text: String,
    /// 0 when the identity was found, 2 when it was not or git failed.
    pub exit_code: u8,
    /// Errors for stderr.
    pub errors: Vec<String>,
}

/// Prints one identity's life in the snapshot folder's history: first seen,
/// each change, its credentials and last seen, each with commit and date.
pub fn run_history(settings: &HistorySettings) -> IdentityHistory {
    let folder = settings.snapshots.as_path();
    let versions = git::check_history_ready(folder)
        .and_then(|()| git::folder_commits(folder, None, None))
        .and_then(|commits| {
            commits
                .into_iter()
                .map(|commit| load_version(folder, commit))
                .collect::<Result<Vec<_>, _>>()
        });
    match versions {
        Ok(versions) => describe_identity(&versions, &settings.id, &settings.rules),
        Err(error) => IdentityHistory {
            text: String::new(),
            exit_code: crate::exit::FAILED,
            errors: vec![error.to_string()],
        },
    }
}

fn find_identity<'a>(version: &'a Version, id: &str) -> Option<(&'a ScopeKey, &'a Identity)> {
    version.snapshots.iter().find_map(|(key, snapshot)| {
        let identity = snapshot
            .identities
            .iter()
            .find(|identity| identity.id == id)?;
        Some((key, identity))
    })
}

fn describe_identity(versions: &[Version], id: &str, rules: &RuleSet) -> IdentityHistory {
    let mut text = String::new();
    let mut first_seen = None;
    let mut last_seen: Option<(&Version, &Identity)> = None;
    let mut previous: Option<&Version> = None;

    for version in versions {
        let found = find_identity(version, id);
        let was_present = previous.is_some_and(|before| find_identity(before, id).is_some());
        let commit = &version.commit;
        match (found, was_present) {
            (Some((key, identity)), false) => {
                let verb = if first_seen.is_none() {
                    "first seen"
                } else {
                    "seen again"
                };
                let _ = writeln!(
                    text,
                    "{} {}  {verb}: {} {} in {} {}",
                    commit.short_hash(),
                    commit.date,
                    identity.kind.as_str(),
                    identity.name,
                    key.0,
                    key.1
                );
                first_seen.get_or_insert(commit);
            }
            (Some(_), true) => {
                let before = previous.unwrap_or(version);
                for finding in step_findings(before, version, rules) {
                    if finding.identity_id == id {
                        // Rules never change a severity, so without this
                        // mark `--config` would change nothing printed.
                        let expected = if finding.expected { ", expected" } else { "" };
                        let _ = writeln!(
                            text,
                            "{} {}  {} [{}{expected}]",
                            commit.short_hash(),
                            commit.date,
                            finding.summary,
                            finding.severity.as_str()
                        );
                    }
                }
            }
            (None, true) => {
                let _ = writeln!(text, "{} {}  removed", commit.short_hash(), commit.date);
            }
            (None, false) => {}
        }
        if let Some((_, identity)) = found {
            last_seen = Some((version, identity));
        }
        previous = Some(version);
    }

    let Some((last_version, identity)) = last_seen else {
        return IdentityHistory {
            text: String::new(),
            exit_code: crate::exit::FAILED,
            errors: vec![format!(
                "identity {id} is in none of the {} commits that touched the snapshot folder; \
                 pass the immutable id (AWS UserId or RoleId, Entra object id, GCP uniqueId, \
                 Workspace user id)",
                versions.len()
            )],
        };
    };
    write_credentials(&mut text, identity);
    let still_present = versions
        .last()
        .is_some_and(|newest| newest.commit.hash == last_version.commit.hash);
    let _ = writeln!(
        text,
        "last seen: {} {}{}",
        last_version.commit.short_hash(),
        last_version.commit.date,
        if still_present {
            " (the newest commit)"
        } else {
            ""
        }
    );
    IdentityHistory {
        text: sanitize_lines(&text),
        exit_code: crate::exit::CLEAN,
        errors: Vec::new(),
    }
}

fn write_credentials(text: &mut String, identity: &Identity) {
    if identity.credentials.is_empty() {
        let _ = writeln!(text, "credentials when last seen: none");
        return;
    }
    let _ = writeln!(text, "credentials when last seen:");
    for credential in &identity.credentials {
        let _ = writeln!(
            text,
            "  {} {} created {} status {}",
            serde_json::to_value(credential.kind)
                .ok()
                .and_then(|kind| kind.as_str().map(str::to_string))
                .unwrap_or_default(),
            credential.id,
            credential.created.as_deref().unwrap_or("unknown"),
            credential.status.as_deref().unwrap_or("-")
        );
    }
}

/// Sanitizes each line of a text that contains names from the cloud.
fn sanitize_lines(text: &str) -> String {
    text.lines()
        .map(|line| crate::report::sanitize(line) + "\n")
        .collect()
}
