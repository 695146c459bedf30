//! Git and operations: `scan --commit`, history diffs (`diff --since`,
//! `diff REV1 REV2`), `history ID` and the scan lock, all on the bundled
//! demo exports in temporary git repositories.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::{idrift, run};

const ACCOUNT: &str = "111122223333";
const INTRUDER_ID: &str = "AIDAINTRUDER000DEMO99";

fn demo(day: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/demo")
        .join(day)
}

/// Runs git in a folder with no user or system config and a fixed identity.
fn git(folder: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(folder)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "idrift test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "idrift test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Returns an idrift command whose git reads no user or system config.
fn idrift_git(home: &Path) -> Command {
    let mut command = idrift(home);
    command
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "idrift test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "idrift test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid");
    command
}

/// A temporary git repository with a `snapshots` folder in it.
struct Repository {
    _temp: tempfile::TempDir,
    home: PathBuf,
    root: PathBuf,
}

impl Repository {
    fn new() -> Repository {
        let temp = tempfile::tempdir().expect("temp dir");
        let home = temp.path().join("home");
        let root = temp.path().join("repo");
        fs::create_dir_all(&home).expect("home");
        fs::create_dir_all(&root).expect("repo");
        git(&root, &["init", "--quiet", "--initial-branch=main"]);
        Repository {
            _temp: temp,
            home,
            root,
        }
    }

    fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// Scans an export into the repository's snapshot folder with --commit.
    fn scan_commit(&self, export: &Path) -> (i32, Value, String) {
        let (code, stdout, stderr) = run(idrift_git(&self.home)
            .arg("scan")
            .arg("--from-export")
            .arg(export)
            .arg("--snapshots")
            .arg(self.snapshots())
            .args(["--format", "json", "--commit"]));
        let report = serde_json::from_str(&stdout)
            .unwrap_or_else(|error| panic!("report is JSON: {error}\n{stdout}\n{stderr}"));
        (code, report, stderr)
    }

    fn commit_count(&self) -> usize {
        let log = Command::new("git")
            .arg("-C")
            .arg(&self.root)
            .args(["rev-list", "--count", "HEAD"])
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .expect("git runs");
        String::from_utf8_lossy(&log.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }
}

/// Copies the day-1 export and adds or removes the intruder user.
fn write_export(folder: &Path, with_intruder: bool) {
    let source = demo("day-1").join("aws").join(ACCOUNT);
    let target = folder.join("aws").join(ACCOUNT);
    fs::create_dir_all(&target).expect("export folder");
    for entry in fs::read_dir(&source).expect("demo export") {
        let entry = entry.expect("entry");
        fs::copy(entry.path(), target.join(entry.file_name())).expect("copy");
    }
    if !with_intruder {
        return;
    }
    let details = target.join("get-account-authorization-details.json");
    let mut value: Value =
        serde_json::from_str(&fs::read_to_string(&details).expect("read")).expect("JSON");
    let intruder = serde_json::json!({
        "Arn": format!("arn:aws:iam::{ACCOUNT}:user/intruder"),
        "AttachedManagedPolicies": [],
        "CreateDate": "2026-01-02T03:04:05+00:00",
        "GroupList": [],
        "Path": "/",
        "Tags": [],
        "UserId": INTRUDER_ID,
        "UserName": "intruder",
        "UserPolicyList": []
    });
    value["UserDetailList"]
        .as_array_mut()
        .expect("users")
        .push(intruder);
    fs::write(
        &details,
        serde_json::to_string_pretty(&value).expect("JSON"),
    )
    .expect("write");
}

#[test]
fn scan_commit_commits_only_changes() {
    let repository = Repository::new();
    fs::write(repository.root.join("tracked.txt"), "first\n").expect("write");
    git(&repository.root, &["add", "tracked.txt"]);
    git(
        &repository.root,
        &["commit", "--quiet", "-m", "Add a tracked file"],
    );
    // An unstaged edit and an untracked file outside the snapshot folder.
    fs::write(repository.root.join("tracked.txt"), "edited\n").expect("write");
    fs::write(repository.root.join("notes.txt"), "not a snapshot\n").expect("write");

    let (code, report, stderr) = repository.scan_commit(&demo("day-1"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["errors"], serde_json::json!([]));
    assert_eq!(repository.commit_count(), 2);
    let files = git(
        &repository.root,
        &["show", "--name-only", "--format=", "HEAD"],
    );
    assert_eq!(files.trim(), format!("snapshots/aws/{ACCOUNT}.json"));
    let subject = git(&repository.root, &["log", "-1", "--format=%s"]);
    assert_eq!(subject.trim(), "idrift scan: no findings");

    // The same export again: the snapshot is unchanged, so no commit.
    let (code, _, stderr) = repository.scan_commit(&demo("day-1"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(repository.commit_count(), 2);

    // Day 2 changes the account: a commit whose message counts findings.
    let (code, report, stderr) = repository.scan_commit(&demo("day-2"));
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(repository.commit_count(), 3);
    let message = git(&repository.root, &["log", "-1", "--format=%B"]);
    let findings = report["summary"]["findings"].as_u64().expect("count");
    assert!(
        message.starts_with(&format!("idrift scan: {findings} findings (")),
        "{message}"
    );
    assert!(message.contains("critical"), "{message}");
    assert!(
        message.contains(&format!("- aws {ACCOUNT}: compared")),
        "{message}"
    );
    let status = git(
        &repository.root,
        &["status", "--porcelain", "--", "notes.txt"],
    );
    assert_eq!(status.trim(), "?? notes.txt");
}

#[test]
fn scan_commit_outside_git_fails() {
    let temp = tempfile::tempdir().expect("temp dir");
    let snapshots = temp.path().join("snapshots");
    let (code, stdout, stderr) = run(idrift_git(temp.path())
        .arg("scan")
        .arg("--from-export")
        .arg(demo("day-1"))
        .arg("--snapshots")
        .arg(&snapshots)
        .arg("--commit")
        .env("GIT_CEILING_DIRECTORIES", temp.path()));
    assert_eq!(code, 2, "{stdout}");
    assert!(stderr.contains("not in a git repository"), "{stderr}");
    // The check comes before the scan, so nothing is written, and the
    // folder the lock created is removed again.
    assert!(!snapshots.exists());
}

#[test]
fn history_outside_git_says_what_to_pass() {
    let temp = tempfile::tempdir().expect("temp dir");
    let snapshots = temp.path().join("snapshots");
    let (code, _, stderr) = run(idrift_git(temp.path())
        .arg("scan")
        .arg("--from-export")
        .arg(demo("day-1"))
        .arg("--snapshots")
        .arg(&snapshots));
    assert_eq!(code, 0, "{stderr}");
    let runs: [&[&str]; 3] = [
        &["diff", "--since", "2026-01-31"],
        &["diff", "HEAD~1", "HEAD"],
        &["history", "AIDANOSUCHUSER"],
    ];
    for arguments in runs {
        let (code, stdout, stderr) = run(idrift_git(temp.path())
            .args(arguments)
            .arg("--snapshots")
            .arg(&snapshots)
            .env("GIT_CEILING_DIRECTORIES", temp.path()));
        assert_eq!(code, 2, "{arguments:?}: {stdout}");
        assert!(
            stderr.contains("not in a git repository, so it has no history to read"),
            "{arguments:?}: {stderr}"
        );
        assert!(stderr.contains("pass --snapshots DIR"), "{stderr}");
        assert!(!stderr.contains("fatal:"), "{arguments:?}: {stderr}");
    }
}

#[test]
fn history_marks_changes_its_config_expects() {
    let repository = Repository::new();
    for day in ["day-1", "day-2"] {
        let (code, _, stderr) = repository.scan_commit(&demo(day));
        assert!(code == 0 || code == 1, "{day}: exit {code}\n{stderr}");
    }
    let config = repository.home.join("rules.toml");
    fs::write(
        &config,
        "[[expected]]\nowner = \"ci\"\nreason = \"key rotation\"\nname = \"ci-deploy\"\n\
         changes = [\"credential_added\"]\n",
    )
    .expect("write config");
    let history = |extra: &[&str]| {
        let (code, stdout, stderr) = run(idrift_git(&repository.home)
            .arg("history")
            .arg("--snapshots")
            .arg(repository.snapshots())
            .arg("AIDACIDEPLOY000DEMO03")
            .args(extra));
        assert_eq!(code, 0, "{stderr}");
        stdout
    };
    let plain = history(&[]);
    assert!(plain.contains("on IAM user ci-deploy [high]\n"), "{plain}");
    let judged = history(&["--config", config.to_str().expect("path")]);
    assert!(
        judged.contains("on IAM user ci-deploy [high, expected]\n"),
        "{judged}"
    );

    // Without --snapshots, the config's snapshot folder is read, as in a scan.
    let located = repository.home.join("located.toml");
    let rules = fs::read_to_string(&config).expect("read config");
    let text = format!(
        "snapshots = \"{}\"\n{rules}",
        repository.snapshots().display()
    );
    fs::write(&located, text).expect("write config");
    let (code, stdout, stderr) = run(idrift_git(&repository.home)
        .arg("history")
        .arg("--config")
        .arg(&located)
        .arg("AIDACIDEPLOY000DEMO03"));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("[high, expected]\n"), "{stdout}");
}

#[test]
fn scan_commit_rejects_unrelated_staged() {
    let repository = Repository::new();
    fs::write(repository.root.join("notes.txt"), "staged by hand\n").expect("write");
    git(&repository.root, &["add", "notes.txt"]);

    let (code, report, stderr) = repository.scan_commit(&demo("day-1"));
    assert_eq!(code, 2, "{stderr}");
    let error = report["errors"][0].as_str().expect("an error");
    assert!(error.contains("staged changes outside it"), "{error}");
    assert!(error.contains("notes.txt"), "{error}");
    assert_eq!(repository.commit_count(), 0);
    assert!(!repository.snapshots().join("aws").exists());
}

/// Builds day-1, day-1 plus the intruder, day-1 again: three commits.
fn repository_with_intruder() -> (Repository, tempfile::TempDir) {
    let repository = Repository::new();
    let exports = tempfile::tempdir().expect("temp dir");
    let steps = [("plain", false), ("intruder", true), ("removed", false)];
    for (name, with_intruder) in steps {
        let export = exports.path().join(name);
        write_export(&export, with_intruder);
        let (code, _, stderr) = repository.scan_commit(&export);
        assert!(code == 0 || code == 1, "{name}: exit {code}\n{stderr}");
    }
    assert_eq!(repository.commit_count(), 3);
    (repository, exports)
}

fn intruder_changes(report: &Value) -> Vec<String> {
    let mut changes: Vec<String> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|finding| finding["identity_id"] == INTRUDER_ID)
        .map(|finding| finding["change"].as_str().expect("change").to_string())
        .collect();
    changes.sort();
    changes
}

#[test]
fn diff_since_shows_created_then_deleted() {
    let (repository, _exports) = repository_with_intruder();
    let (code, stdout, stderr) = run(idrift_git(&repository.home)
        .current_dir(&repository.root)
        .args(["diff", "--since", "2000-01-01", "--format", "json"]));
    assert_eq!(code, 1, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(
        intruder_changes(&report),
        ["identity_added", "identity_removed"]
    );
    let added = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|finding| finding["change"] == "identity_added")
        .expect("the intruder's creation");
    let second_commit = git(&repository.root, &["rev-parse", "HEAD~1"]);
    assert_eq!(added["evidence"]["commit"], second_commit.trim());

    // The two ends alone are identical; the walk still finds the intruder.
    assert_eq!(
        git(&repository.root, &["diff", "HEAD~2", "HEAD", "--stat"]),
        ""
    );
}

#[test]
fn diff_revisions_walks_between_ends() {
    let (repository, _exports) = repository_with_intruder();
    let (code, stdout, stderr) = run(idrift_git(&repository.home)
        .arg("diff")
        .arg("--snapshots")
        .arg(repository.snapshots())
        .args(["HEAD~2", "HEAD", "--format", "json"]));
    assert_eq!(code, 1, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(
        intruder_changes(&report),
        ["identity_added", "identity_removed"]
    );

    // From the intruder's commit on, only the removal is left.
    let (_, stdout, _) = run(idrift_git(&repository.home)
        .arg("diff")
        .arg("--snapshots")
        .arg(repository.snapshots())
        .args(["HEAD~1", "HEAD", "--format", "json"]));
    let report: Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(intruder_changes(&report), ["identity_removed"]);
}

#[test]
fn history_prints_identity_life() {
    let (repository, _exports) = repository_with_intruder();
    let (code, stdout, stderr) = run(idrift_git(&repository.home)
        .arg("history")
        .arg("--snapshots")
        .arg(repository.snapshots())
        .arg(INTRUDER_ID));
    assert_eq!(code, 0, "{stderr}");
    let second = git(&repository.root, &["rev-parse", "--short=12", "HEAD~1"]);
    let third = git(&repository.root, &["rev-parse", "--short=12", "HEAD"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with(second.trim()), "{stdout}");
    assert!(
        lines[0].contains(&format!("first seen: aws_user intruder in aws {ACCOUNT}")),
        "{stdout}"
    );
    assert!(lines[1].starts_with(third.trim()), "{stdout}");
    assert!(lines[1].ends_with("removed"), "{stdout}");
    assert!(
        stdout.contains("credentials when last seen: none"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("last seen: {}", second.trim())),
        "{stdout}"
    );

    let (code, _, stderr) = run(idrift_git(&repository.home)
        .arg("history")
        .arg("--snapshots")
        .arg(repository.snapshots())
        .arg("AIDANOSUCHUSER"));
    assert_eq!(code, 2);
    assert!(stderr.contains("is in none of the 3 commits"), "{stderr}");
}

fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("host name")
        .trim()
        .to_string()
}

fn write_lock(snapshots: &Path, pid: u32) -> PathBuf {
    let folder = snapshots.join(".idrift");
    fs::create_dir_all(&folder).expect("lock folder");
    let path = folder.join("scan.lock");
    let text = format!(
        "pid={pid}\nhost={}\nstarted=2026-01-02T03:04:05Z\n",
        host_name()
    );
    fs::write(&path, text).expect("write lock");
    path
}

fn scan_plain(home: &Path, snapshots: &Path) -> (i32, String, String) {
    run(idrift(home)
        .arg("scan")
        .arg("--from-export")
        .arg(demo("day-1"))
        .arg("--snapshots")
        .arg(snapshots))
}

#[test]
fn scan_fails_on_live_lock() {
    let temp = tempfile::tempdir().expect("temp dir");
    let snapshots = temp.path().join("snapshots");
    // This test process is alive, so its PID makes a live lock.
    let lock = write_lock(&snapshots, std::process::id());

    let (code, _, stderr) = scan_plain(temp.path(), &snapshots);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("PID {}", std::process::id())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("host {}", host_name())),
        "{stderr}"
    );
    assert!(stderr.contains("started 2026-01-02T03:04:05Z"), "{stderr}");
    assert!(stderr.contains("wait for it to finish"), "{stderr}");
    assert!(lock.exists(), "a live lock is left alone");
    assert!(!snapshots.join("aws").exists(), "nothing is written");
}

#[test]
fn scan_takes_over_stale_lock() {
    let temp = tempfile::tempdir().expect("temp dir");
    let snapshots = temp.path().join("snapshots");
    // A child that has exited and been reaped leaves a PID that is not running.
    let mut child = Command::new("true").spawn().expect("spawn true");
    let dead_pid = child.id();
    child.wait().expect("wait");
    let lock = write_lock(&snapshots, dead_pid);

    let (code, _, stderr) = scan_plain(temp.path(), &snapshots);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("stale scan lock"), "{stderr}");
    assert!(stderr.contains(&format!("pid={dead_pid}")), "{stderr}");
    assert!(
        snapshots
            .join("aws")
            .join(format!("{ACCOUNT}.json"))
            .exists()
    );
    assert!(!lock.exists(), "the lock is released after the scan");
}

#[test]
fn scan_commit_hook_failure_exits_2() {
    use std::os::unix::fs::PermissionsExt;

    let repository = Repository::new();
    let hook = repository.root.join(".git/hooks/pre-commit");
    fs::write(&hook, "#!/bin/sh\necho rejected by the hook >&2\nexit 1\n").expect("write hook");
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).expect("chmod");

    let (code, report, stderr) = repository.scan_commit(&demo("day-1"));
    assert_eq!(code, 2, "{stderr}");
    let error = report["errors"][0].as_str().expect("an error");
    assert!(error.contains("rejected by the hook"), "{error}");
    assert!(error.contains("written but not committed"), "{error}");
    assert!(
        repository
            .snapshots()
            .join(format!("aws/{ACCOUNT}.json"))
            .exists()
    );
    assert_eq!(repository.commit_count(), 0);
}
