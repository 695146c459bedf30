//! Git operations on the snapshot folder: committing a scan's snapshots and
//! reading earlier snapshots back from the history.
//!
//! idrift runs the `git` command-line tool rather than linking a git library:
//! it costs nothing to build, and the user's own git config, identity, hooks
//! and signing settings apply to the commits it makes.
//!
//! Every command runs with `-C <snapshot folder>` and pathspecs limited to
//! that folder, minus its `.idrift` folder (scan metadata and the lock,
//! which change on every run and would otherwise make a commit each time).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::model::{Provider, Snapshot};
use crate::report::{Report, ScopeStatus};
use crate::store::{self, StoreError};

/// Pathspecs for the snapshot folder without its `.idrift` folder, relative
/// to the folder that git runs in.
const SNAPSHOT_PATHSPECS: [&str; 2] = [".", ":(exclude).idrift"];

/// A git operation that failed or was rejected.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The snapshot folder is not inside a git work tree.
    #[error(
        "snapshot folder {}: not in a git repository, so --commit cannot commit it; \
         run `git init` in it or a parent folder, or scan without --commit",
        folder.display()
    )]
    NotARepository {
        /// The snapshot folder.
        folder: PathBuf,
    },
    /// The snapshot folder whose history is asked for is not in a git
    /// work tree, or does not exist.
    #[error(
        "snapshot folder {}: missing or not in a git repository, so it has no history to \
         read; pass --snapshots DIR for a snapshot folder kept in git (see scan --commit). \
         diff's OLD and NEW are read as paths only when both exist",
        folder.display()
    )]
    NoHistory {
        /// The snapshot folder.
        folder: PathBuf,
    },
    /// Changes outside the snapshot folder are staged.
    #[error(
        "snapshot folder {}: the git index has staged changes outside it ({}); \
         commit or unstage them (`git restore --staged <file>`) before scanning with --commit",
        folder.display(), files.join(", ")
    )]
    UnrelatedStaged {
        /// The snapshot folder.
        folder: PathBuf,
        /// Staged files outside it, relative to the repository root.
        files: Vec<String>,
    },
    /// The `git` program could not be started.
    #[error("cannot run git: {source}; install git or put it on PATH")]
    Spawn {
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A git command exited with an error.
    #[error("`git {command}` in {} failed: {stderr}", folder.display())]
    Failed {
        /// The folder git ran in.
        folder: PathBuf,
        /// The git arguments.
        command: String,
        /// The error output of git.
        stderr: String,
    },
    /// A diff argument is not a revision, and the two arguments are not
    /// both existing paths.
    #[error(
        "{revision:?} is not a git revision of the snapshot folder {} ({reason}); OLD and \
         NEW are read as paths only when both exist, so check both paths, or pass \
         --snapshots DIR for the folder whose history to read",
        folder.display()
    )]
    UnknownRevision {
        /// The argument.
        revision: String,
        /// The snapshot folder whose history was searched.
        folder: PathBuf,
        /// The error git returned.
        reason: String,
    },
    /// A snapshot file in the history is not a valid snapshot.
    #[error("commit {commit}: {source}")]
    Snapshot {
        /// The commit that contains the file.
        commit: String,
        /// The problem with the file.
        source: StoreError,
    },
}

/// One commit that touched the snapshot folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Full commit hash.
    pub hash: String,
    /// Committer date, ISO 8601 with offset.
    pub date: String,
    /// First line of the message.
    pub subject: String,
}

impl Commit {
    /// Returns the abbreviated hash, as git shows it by default.
    pub fn short_hash(&self) -> &str {
        &self.hash[..self.hash.len().min(12)]
    }
}

/// Runs git in a folder and returns its stdout, or the error it reported.
fn git(folder: &Path, args: &[&str]) -> Result<String, GitError> {
    let output = Command::new("git")
        .arg("-C")
        .arg(folder)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| GitError::Spawn { source })?;
    if !output.status.success() {
        return Err(GitError::Failed {
            folder: folder.to_path_buf(),
            command: args.join(" "),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Checks that `--commit` can commit the folder: it is in a git work tree
/// and nothing outside it is staged.
pub fn check_commit_ready(folder: &Path) -> Result<(), GitError> {
    let inside = git(folder, &["rev-parse", "--is-inside-work-tree"]);
    if !inside.is_ok_and(|text| text.trim() == "true") {
        return Err(GitError::NotARepository {
            folder: folder.to_path_buf(),
        });
    }
    let staged = git(
        folder,
        &[
            "diff",
            "--cached",
            "--name-only",
            "--no-renames",
            "--",
            ":(top)",
            ":(exclude).",
        ],
    )?;
    let files: Vec<String> = staged.lines().map(str::to_string).collect();
    if !files.is_empty() {
        return Err(GitError::UnrelatedStaged {
            folder: folder.to_path_buf(),
            files,
        });
    }
    Ok(())
}

/// Checks that the folder is in a git work tree, so that its history can
/// be read.
pub fn check_history_ready(folder: &Path) -> Result<(), GitError> {
    let inside = git(folder, &["rev-parse", "--is-inside-work-tree"]);
    if inside.is_ok_and(|text| text.trim() == "true") {
        Ok(())
    } else {
        Err(GitError::NoHistory {
            folder: folder.to_path_buf(),
        })
    }
}

/// Stages and commits the snapshot folder, and only it, with a message.
///
/// Returns the new commit, or `None` when no snapshot changed.
pub fn commit_snapshots(folder: &Path, message: &str) -> Result<Option<Commit>, GitError> {
    check_commit_ready(folder)?;
    let mut add = vec!["add", "--all", "--"];
    add.extend(SNAPSHOT_PATHSPECS);
    git(folder, &add)?;

    let mut changed = vec!["diff", "--cached", "--name-only", "--"];
    changed.extend(SNAPSHOT_PATHSPECS);
    if git(folder, &changed)?.trim().is_empty() {
        return Ok(None);
    }

    // `--only` with pathspecs commits those paths and nothing else that
    // might be staged.
    let mut commit = vec!["commit", "--quiet", "--only", "-m", message, "--"];
    commit.extend(SNAPSHOT_PATHSPECS);
    git(folder, &commit)?;
    let head = git(folder, &["log", "-1", "--format=%H%x09%cI%x09%s"])?;
    Ok(parse_log(&head).into_iter().next())
}

/// Writes the commit message of a scan: the counts by severity in the
/// subject, and the incomplete and failed scopes in the body.
pub fn commit_message(report: &Report) -> String {
    let summary = &report.summary;
    let severities: Vec<String> = crate::report::severities_descending()
        .iter()
        .filter_map(|severity| {
            let count = summary.by_severity.get(severity.as_str())?;
            Some(format!("{count} {}", severity.as_str()))
        })
        .collect();
    let findings = match summary.findings {
        0 => "no findings".to_string(),
        1 => format!("1 finding ({})", severities.join(", ")),
        count => format!("{count} findings ({})", severities.join(", ")),
    };
    let incomplete_scopes = report
        .scopes
        .iter()
        .filter(|scope| !scope.incomplete.is_empty() || scope.status == ScopeStatus::Failed)
        .count();
    let mut subject = format!("idrift scan: {findings}");
    if incomplete_scopes > 0 {
        subject.push_str(&format!(", {incomplete_scopes} scope(s) incomplete"));
    }

    let mut body = vec![format!(
        "{} need attention (unexpected, low or above).",
        summary.needs_attention
    )];
    for scope in &report.scopes {
        body.push(scope_line(scope));
    }
    format!("{subject}\n\n{}\n", body.join("\n"))
}

fn scope_line(scope: &crate::report::ScopeSummary) -> String {
    let status = serde_json::to_value(scope.status)
        .ok()
        .and_then(|value| value.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut line = format!(
        "- {} {}: {status}, {} identities",
        scope.provider, scope.scope, scope.identities
    );
    for entry in &scope.incomplete {
        line.push_str(&format!(
            "; {} incomplete: {}",
            entry.collection, entry.reason
        ));
    }
    if let Some(error) = &scope.error {
        line.push_str(&format!("; failed: {error}"));
    }
    crate::report::sanitize(&line)
}

/// Lists the commits that touched the snapshot folder, oldest first.
///
/// `range` is a git revision range such as `A..B`; `since` limits to commits
/// made on or after a date git understands (`2026-01-31`, `2 weeks ago`).
///
/// NOTE: only the first-parent line is walked, so that consecutive commits
/// are consecutive states of the folder. Changes made and undone on a
/// merged side branch are not seen.
pub fn folder_commits(
    folder: &Path,
    range: Option<&str>,
    since: Option<&str>,
) -> Result<Vec<Commit>, GitError> {
    let since_flag = since.map(|date| format!("--since={date}"));
    let mut args = vec![
        "log",
        "--first-parent",
        "--reverse",
        "--format=%H%x09%cI%x09%s",
    ];
    args.extend(since_flag.as_deref());
    args.extend(range);
    args.push("--");
    args.extend(SNAPSHOT_PATHSPECS);
    Ok(parse_log(&git(folder, &args)?))
}

/// Returns the newest commit that touched the folder before a date, which
/// is the folder's state at that date, or `None` when there is none.
pub fn folder_commit_before(folder: &Path, date: &str) -> Result<Option<Commit>, GitError> {
    let until = format!("--until={date}");
    let mut args = vec![
        "log",
        "--first-parent",
        "-1",
        "--format=%H%x09%cI%x09%s",
        until.as_str(),
        "--",
    ];
    args.extend(SNAPSHOT_PATHSPECS);
    Ok(parse_log(&git(folder, &args)?).into_iter().next())
}

/// Resolves a revision to its commit.
pub fn resolve_commit(folder: &Path, revision: &str) -> Result<Commit, GitError> {
    let unknown = |reason: String| GitError::UnknownRevision {
        revision: revision.to_string(),
        folder: folder.to_path_buf(),
        reason,
    };
    let text = git(
        folder,
        &[
            "log",
            "-1",
            "--format=%H%x09%cI%x09%s",
            "--end-of-options",
            revision,
            "--",
        ],
    )
    .map_err(|error| match error {
        GitError::Failed { stderr, .. } => unknown(stderr),
        other => other,
    })?;
    let commit = parse_log(&text).into_iter().next();
    commit.ok_or_else(|| unknown("no such commit".to_string()))
}

fn parse_log(text: &str) -> Vec<Commit> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, '\t');
            Some(Commit {
                hash: fields.next()?.to_string(),
                date: fields.next()?.to_string(),
                subject: fields.next().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

/// Loads every `<provider>/<scope>.json` snapshot of the folder as it was in
/// a commit.
pub fn snapshots_at(folder: &Path, commit: &str) -> Result<Vec<Snapshot>, GitError> {
    let prefix = git(folder, &["rev-parse", "--show-prefix"])?;
    let prefix = prefix.trim_end_matches('\n');
    let listing = git(
        folder,
        &[
            "ls-tree",
            "-r",
            "--name-only",
            "--full-name",
            commit,
            "--",
            ".",
        ],
    )?;

    let mut snapshots = Vec::new();
    for full_path in listing.lines() {
        let relative = full_path.strip_prefix(prefix).unwrap_or(full_path);
        let Some((provider, file)) = relative.split_once('/') else {
            continue;
        };
        let (Some(provider), Some(_scope)) =
            (Provider::parse(provider), file.strip_suffix(".json"))
        else {
            continue;
        };
        if file.contains('/') || file.starts_with('.') {
            continue;
        }
        let text = git(folder, &["show", &format!("{commit}:{full_path}")])?;
        let snapshot = store::parse_snapshot(&text, Path::new(full_path)).map_err(|source| {
            GitError::Snapshot {
                commit: commit.to_string(),
                source,
            }
        })?;
        if snapshot.provider == provider {
            snapshots.push(snapshot);
        }
    }
    Ok(snapshots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::NotCompared;
    use crate::model::CollectionName;
    use crate::report::ScopeSummary;

    fn scope(name: &str, status: ScopeStatus, incomplete: Vec<NotCompared>) -> ScopeSummary {
        ScopeSummary {
            provider: "aws".to_string(),
            scope: name.to_string(),
            status,
            identities: 4,
            not_compared: Vec::new(),
            incomplete,
            error: None,
            snapshot: None,
        }
    }

    #[test]
    fn commit_message_counts_incomplete_scopes() {
        let throttled = NotCompared {
            collection: CollectionName::AccessKeys,
            reason: "throttled".to_string(),
            only: Vec::new(),
        };
        let scopes = vec![
            scope("111122223333", ScopeStatus::Compared, vec![throttled]),
            scope("444455556666", ScopeStatus::Compared, Vec::new()),
        ];
        let report = Report::new("scan", scopes, Vec::new(), Vec::new());
        let message = commit_message(&report);
        let mut lines = message.lines();

        assert_eq!(
            lines.next(),
            Some("idrift scan: no findings, 1 scope(s) incomplete")
        );
        assert_eq!(lines.next(), Some(""));
        assert!(
            message.contains("- aws 111122223333: compared, 4 identities; "),
            "{message}"
        );
        assert!(message.contains("incomplete: throttled"), "{message}");
        assert!(
            message.contains("- aws 444455556666: compared, 4 identities\n"),
            "{message}"
        );
    }

    #[test]
    fn parse_log_splits_fields() {
        let commits = parse_log("abc\t2026-01-02T03:04:05+00:00\tidrift scan: no findings\n");
        assert_eq!(commits.len(), 1);
        assert_eq!(commits[0].hash, "abc");
        assert_eq!(commits[0].date, "2026-01-02T03:04:05+00:00");
        assert_eq!(commits[0].subject, "idrift scan: no findings");
    }
}
