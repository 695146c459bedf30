//! The scan lock: a file in the snapshot folder that keeps two scans from
//! writing the same snapshots at once.
//!
//! The lock is `<root>/.idrift/scan.lock`, created with `create_new` so that
//! only one process can make it, and it contains the owner's PID, host name
//! and start time. It is removed when the [`ScanLock`] is dropped. A lock
//! left by a process that died (the PID is not running on this host) is
//! stale: the next scan takes it over and logs a warning naming the old PID.
//!
//! Plain files keep this free of `libc` and of platform lock calls, at the
//! cost of the limits noted where they apply.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tracing::warn;

/// Name of the lock file, under the snapshot folder's `.idrift` folder.
pub const LOCK_FILE: &str = "scan.lock";

/// A lock that could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another scan, alive or on another host, holds the lock.
    #[error(
        "snapshot folder {}: another scan holds the lock {} (PID {}, host {}, started {}); \
         wait for it to finish, or, if that process is gone, delete the lock file",
        root.display(), path.display(), owner.pid, owner.host, owner.started
    )]
    Held {
        /// The snapshot folder.
        root: PathBuf,
        /// The lock file.
        path: PathBuf,
        /// The process that owns it.
        owner: LockOwner,
    },
    /// The lock file exists but names no process.
    #[error(
        "scan lock {} exists but names no process; another scan may be starting, so \
         wait a moment and retry, and delete the file only if no scan is running",
        path.display()
    )]
    Unknown {
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be created, read or removed.
    #[error("scan lock {}: {action} failed: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The operation that failed.
        action: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// The process recorded in a lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOwner {
    /// Process id.
    pub pid: u32,
    /// Host name, as the kernel reports it.
    pub host: String,
    /// Start time of the scan, RFC 3339 in UTC.
    pub started: String,
}

impl LockOwner {
    /// Describes the current process.
    pub fn current() -> LockOwner {
        LockOwner {
            pid: std::process::id(),
            host: host_name(),
            started: now_rfc3339(),
        }
    }

    /// Renders the lock file's content: `key=value` lines.
    pub fn to_text(&self) -> String {
        format!(
            "pid={}\nhost={}\nstarted={}\n",
            self.pid, self.host, self.started
        )
    }

    /// Parses a lock file's content, or `None` when it has no valid PID.
    pub fn parse(text: &str) -> Option<LockOwner> {
        let value = |key: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .map(str::trim)
        };
        Some(LockOwner {
            pid: value("pid")?.parse().ok()?,
            host: value("host").unwrap_or("unknown").to_string(),
            started: value("started").unwrap_or("unknown").to_string(),
        })
    }

    /// True when the owner is known to be dead: it ran on this host and its
    /// PID is no longer running.
    ///
    /// NOTE: liveness is read from `/proc/<pid>`, so this works on Linux
    /// only. Elsewhere, and for locks from other hosts, a lock is never
    /// judged stale and must be deleted by hand. A PID reused by an
    /// unrelated process also keeps the lock looking alive.
    pub fn is_stale(&self) -> bool {
        let proc = Path::new("/proc");
        self.host == host_name()
            && proc.join("self").exists()
            && !proc.join(self.pid.to_string()).exists()
    }
}

/// A held scan lock, released when dropped.
#[derive(Debug)]
pub struct ScanLock {
    path: PathBuf,
    /// Folders the lock created, innermost first, removed again on release
    /// when they are still empty, so a scan that wrote nothing leaves nothing.
    created: Vec<PathBuf>,
}

impl ScanLock {
    /// Takes the lock of a snapshot folder, creating the folder if needed.
    ///
    /// A stale lock is taken over with a warning that names its PID. A lock
    /// held by a live process, or one whose owner cannot be checked, is
    /// [`LockError::Held`].
    pub fn acquire(root: &Path) -> Result<ScanLock, LockError> {
        let folder = root.join(".idrift");
        let path = folder.join(LOCK_FILE);
        let created: Vec<PathBuf> = [folder.clone(), root.to_path_buf()]
            .into_iter()
            .filter(|candidate| !candidate.exists())
            .collect();
        // Until the lock is taken, an error only removes the empty folders.
        let mut cleanup = FolderCleanup(created);
        fs::create_dir_all(&folder).map_err(io_error(&folder, "creating the folder"))?;

        let owner = LockOwner::current();
        if create_lock(&path, &owner)? {
            let created = cleanup.take();
            return Ok(ScanLock { path, created });
        }
        let text = fs::read_to_string(&path).map_err(io_error(&path, "reading"))?;
        let Some(previous) = LockOwner::parse(&text) else {
            // A lock without a PID may be one another scan is still writing.
            return Err(LockError::Unknown { path });
        };
        if !previous.is_stale() {
            return Err(LockError::Held {
                root: root.to_path_buf(),
                path,
                owner: previous,
            });
        }

        warn!(
            pid = previous.pid,
            host = %previous.host,
            started = %previous.started,
            path = %path.display(),
            "taking over a stale scan lock: its process is no longer running"
        );
        // NOTE: two scans that find the same stale lock at the same moment
        // can both remove it. The rename narrows that window but does not
        // close it.
        let moved = path.with_extension(format!("stale-{}", owner.pid));
        fs::rename(&path, &moved).map_err(io_error(&path, "moving the stale lock"))?;
        let _ = fs::remove_file(&moved);
        if create_lock(&path, &owner)? {
            let created = cleanup.take();
            return Ok(ScanLock { path, created });
        }
        let text = fs::read_to_string(&path).unwrap_or_default();
        Err(LockError::Held {
            root: root.to_path_buf(),
            path: path.clone(),
            owner: LockOwner::parse(&text).unwrap_or(previous),
        })
    }

    /// Returns the lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScanLock {
    fn drop(&mut self) {
        if let Err(error) = fs::remove_file(&self.path) {
            warn!(path = %self.path.display(), %error, "scan lock not removed");
        }
        remove_empty_folders(&self.created);
    }
}

/// Folders to remove on drop when still empty.
struct FolderCleanup(Vec<PathBuf>);

impl FolderCleanup {
    /// Hands the folders over, so that this drop removes none.
    fn take(&mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.0)
    }
}

impl Drop for FolderCleanup {
    fn drop(&mut self) {
        remove_empty_folders(&self.0);
    }
}

/// Removes folders, innermost first; `remove_dir` leaves non-empty ones.
fn remove_empty_folders(folders: &[PathBuf]) {
    for folder in folders {
        let _ = fs::remove_dir(folder);
    }
}

/// Creates the lock file, or returns false when it already exists.
fn create_lock(path: &Path, owner: &LockOwner) -> Result<bool, LockError> {
    let mut file = match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(source) => {
            return Err(LockError::Io {
                path: path.to_path_buf(),
                action: "creating",
                source,
            });
        }
    };
    let written = file
        .write_all(owner.to_text().as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(source) = written {
        let _ = fs::remove_file(path);
        return Err(LockError::Io {
            path: path.to_path_buf(),
            action: "writing",
            source,
        });
    }
    Ok(true)
}

fn io_error(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> LockError {
    let path = path.to_path_buf();
    move |source| LockError::Io {
        path,
        action,
        source,
    }
}

/// Returns the host name from the kernel, else `HOSTNAME`, else `unknown`.
fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

fn now_rfc3339() -> String {
    let now = aws_smithy_types::DateTime::from(SystemTime::now());
    crate::collect::aws::details::format_timestamp(&now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_round_trips_through_text() {
        let owner = LockOwner {
            pid: 42,
            host: "builder".to_string(),
            started: "2026-01-02T03:04:05Z".to_string(),
        };
        assert_eq!(LockOwner::parse(&owner.to_text()), Some(owner));
    }

    #[test]
    fn owner_without_pid_is_rejected() {
        assert_eq!(LockOwner::parse("host=builder\n"), None);
    }

    #[test]
    fn second_acquire_fails_while_held() {
        let root = tempfile::tempdir().expect("temp dir");
        let lock = ScanLock::acquire(root.path()).expect("first lock");
        let error = ScanLock::acquire(root.path()).expect_err("second lock");
        assert!(matches!(error, LockError::Held { .. }), "{error}");
        drop(lock);
        assert!(ScanLock::acquire(root.path()).is_ok());
    }
}
