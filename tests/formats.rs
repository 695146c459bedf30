//! Report formats: `--output FORMAT=FILE` for JSON, Markdown, SARIF and OCSF
//! at once, checked against their JSON Schemas (the official SARIF 2.1.0 and
//! OCSF ones, and the report's own from `idrift schema`), on the bundled
//! demo: the day-2 export scanned against a copy of the day-1 snapshots.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

use common::schemas::{sarif_schema, validate_against, validate_ocsf};
use common::{idrift, run};

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo")
}

/// Copies the demo's day-1 snapshots into `root/snapshots`.
fn copy_demo_snapshots(root: &Path) -> PathBuf {
    let snapshots = root.join("snapshots");
    std::fs::create_dir_all(snapshots.join("aws")).expect("create snapshot folder");
    std::fs::copy(
        demo().join("snapshots/aws/111122223333.json"),
        snapshots.join("aws/111122223333.json"),
    )
    .expect("copy demo snapshot");
    snapshots
}

/// Scans the day-2 export into `snapshots` with extra flags; returns the
/// exit code, stdout and stderr.
fn scan_day_two(home: &Path, snapshots: &Path, extra: &[&str]) -> (i32, String, String) {
    run(idrift(home)
        .arg("scan")
        .arg("--from-export")
        .arg(demo().join("day-2"))
        .arg("--snapshots")
        .arg(snapshots)
        .args(extra))
}

/// Scans day 2 with every format written to a file; returns the folder
/// that contains `report.json`, `report.md`, `report.sarif` and `report.ocsf.jsonl`.
fn scan_with_every_output(work: &Path) -> PathBuf {
    let snapshots = copy_demo_snapshots(work);
    let out = work.join("out");
    std::fs::create_dir_all(&out).expect("create output folder");
    let flag = |format: &str, file: &str| format!("{format}={}", out.join(file).display());
    let (code, stdout, stderr) = scan_day_two(
        work,
        &snapshots,
        &[
            "--output",
            &flag("json", "report.json"),
            "--output",
            &flag("markdown", "report.md"),
            "--output",
            &flag("sarif", "report.sarif"),
            "--output",
            &flag("ocsf", "report.ocsf.jsonl"),
        ],
    );
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("need attention; 0 scopes failed"),
        "stdout is not the table: {stdout}"
    );
    out
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn findings(report: &Value) -> &Vec<Value> {
    report["findings"].as_array().expect("findings")
}

fn commands_of(finding: &Value) -> Vec<&str> {
    finding["response"]
        .as_array()
        .expect("response")
        .iter()
        .map(|command| command.as_str().expect("command"))
        .collect()
}

#[test]
fn output_writes_every_format_at_once() {
    let work = tempfile::tempdir().expect("temp dir");
    let out = scan_with_every_output(work.path());

    let report = read_json(&out.join("report.json"));
    assert_eq!(report["schema_version"], 2);
    assert_eq!(findings(&report).len(), 7);
    let sarif = read_json(&out.join("report.sarif"));
    assert_eq!(
        sarif["runs"][0]["results"].as_array().map(Vec::len),
        Some(7)
    );
    let ocsf = std::fs::read_to_string(out.join("report.ocsf.jsonl")).expect("OCSF file");
    assert_eq!(ocsf.lines().count(), 7);
    let markdown = std::fs::read_to_string(out.join("report.md")).expect("Markdown file");
    assert!(
        markdown.starts_with("## idrift scan: 7 findings"),
        "{markdown}"
    );
}

#[test]
fn sarif_validates_against_official_schema() {
    let work = tempfile::tempdir().expect("temp dir");
    let out = scan_with_every_output(work.path());
    validate_against(sarif_schema(), &out.join("report.sarif"), false);

    let text = std::fs::read_to_string(out.join("report.sarif")).expect("SARIF file");
    let typed: serde_sarif::sarif::Sarif =
        serde_json::from_str(&text).expect("serde-sarif reads the log");
    assert_eq!(typed.runs.len(), 1);
}

#[test]
fn sarif_results_carry_finding_facts() {
    let work = tempfile::tempdir().expect("temp dir");
    let out = scan_with_every_output(work.path());
    let report = read_json(&out.join("report.json"));
    let sarif = read_json(&out.join("report.sarif"));
    let run = &sarif["runs"][0];
    let results = run["results"].as_array().expect("results");

    for (finding, result) in findings(&report).iter().zip(results) {
        let properties = &result["properties"];
        assert_eq!(result["ruleId"], finding["change"]);
        assert_eq!(properties["identity_id"], finding["identity_id"]);
        assert_eq!(properties["severity"], finding["severity"]);
        assert_eq!(properties["severity_reason"], finding["severity_reason"]);
        assert_eq!(properties["response"], finding["response"]);
        let message = result["message"]["text"].as_str().expect("message");
        if let Some(technique) = finding["technique"]["id"].as_str() {
            assert_eq!(properties["technique"]["id"], technique);
            assert!(message.contains(technique), "{message}");
        }
        for command in commands_of(finding) {
            assert!(message.contains(command), "{message} lacks {command}");
        }
        let rule =
            &run["tool"]["driver"]["rules"][result["ruleIndex"].as_u64().expect("index") as usize];
        assert_eq!(rule["id"], finding["change"]);
    }

    let level_of = |name: &str| {
        results
            .iter()
            .find(|result| result["properties"]["identity_name"] == name)
            .map(|result| result["level"].as_str().expect("level").to_string())
    };
    assert_eq!(level_of("svc-backup").as_deref(), Some("error"));
    assert_eq!(
        level_of("AWSServiceRoleForAutoScaling").as_deref(),
        Some("note")
    );
    let expected = results
        .iter()
        .find(|result| result["properties"]["expected"] == true)
        .expect("an expected finding");
    assert_eq!(expected["suppressions"][0]["kind"], "external");
}

/// Returns the 1-based line of `"id": "<id>"` in a file.
fn line_of_id(file: &Path, id: &str) -> u64 {
    let needle = format!("\"id\": \"{id}\"");
    let text = std::fs::read_to_string(file).expect("snapshot");
    let index = text
        .lines()
        .position(|line| line.trim_start().starts_with(&needle))
        .unwrap_or_else(|| panic!("{id} not in {}", file.display()));
    index as u64 + 1
}

fn location_of<'a>(sarif: &'a Value, name: &str) -> &'a Value {
    sarif["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|result| result["properties"]["identity_name"] == name)
        .map(|result| &result["locations"][0]["physicalLocation"])
        .unwrap_or_else(|| panic!("no result for {name}"))
}

#[test]
fn sarif_points_at_identity_line_in_git() {
    let work = tempfile::tempdir().expect("temp dir");
    let repository = work.path().join("repository");
    std::fs::create_dir_all(repository.join(".git")).expect("fake git folder");
    let snapshots = copy_demo_snapshots(&repository);
    let sarif_file = work.path().join("idrift.sarif");
    let (code, stdout, stderr) = scan_day_two(
        work.path(),
        &snapshots,
        &["--output", &format!("sarif={}", sarif_file.display())],
    );
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let sarif = read_json(&sarif_file);

    let snapshot_file = snapshots.join("aws/111122223333.json");
    for (name, id) in [
        ("svc-backup", "AIDASVCBACKUP00DEMO07"),
        ("bob", "AIDABOB00000000DEMO02"),
        ("vendor-audit", "AROAVENDORAUDITDEMO04"),
    ] {
        let location = location_of(&sarif, name);
        let artifact = &location["artifactLocation"];
        assert_eq!(artifact["uri"], "snapshots/aws/111122223333.json", "{name}");
        assert_eq!(artifact["uriBaseId"], "%SRCROOT%", "{name}");
        assert_eq!(
            location["region"]["startLine"],
            line_of_id(&snapshot_file, id),
            "{name}"
        );
    }
    // A deleted identity is no longer in the snapshot: the file, no line.
    let removed = location_of(&sarif, "old-contractor");
    assert_eq!(
        removed["artifactLocation"]["uri"],
        "snapshots/aws/111122223333.json"
    );
    assert!(removed.get("region").is_none(), "{removed}");
}

#[test]
fn sarif_outside_git_is_relative_to_snapshots() {
    let work = tempfile::tempdir().expect("temp dir");
    let out = scan_with_every_output(work.path());
    let sarif = read_json(&out.join("report.sarif"));
    let location = location_of(&sarif, "svc-backup");
    assert_eq!(location["artifactLocation"]["uri"], "aws/111122223333.json");
    assert_eq!(location["artifactLocation"]["uriBaseId"], "SNAPSHOTS");
    let base = sarif["runs"][0]["originalUriBaseIds"]["SNAPSHOTS"]["uri"]
        .as_str()
        .expect("base URI");
    assert!(
        base.starts_with("file:///") && base.ends_with("/snapshots/"),
        "{base}"
    );
}

#[test]
fn ocsf_validates_against_official_schema() {
    let work = tempfile::tempdir().expect("temp dir");
    let out = scan_with_every_output(work.path());
    validate_ocsf(
        "1.5.0",
        "detection_finding",
        "cloud",
        &out.join("report.ocsf.jsonl"),
    );
}

#[test]
fn ocsf_events_carry_finding_facts() {
    let work = tempfile::tempdir().expect("temp dir");
    let out = scan_with_every_output(work.path());
    let report = read_json(&out.join("report.json"));
    let text = std::fs::read_to_string(out.join("report.ocsf.jsonl")).expect("OCSF file");
    let events: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON event a line"))
        .collect();

    for (finding, event) in findings(&report).iter().zip(&events) {
        assert_eq!(event["class_uid"], 2004);
        assert_eq!(event["category_uid"], 2);
        assert_eq!(event["metadata"]["product"]["name"], "idrift");
        assert_eq!(event["resources"][0]["uid"], finding["identity_id"]);
        assert_eq!(event["finding_info"]["desc"], finding["severity_reason"]);
        let severity_id = match finding["severity"].as_str().expect("severity") {
            "info" => 1,
            "low" => 2,
            "medium" => 3,
            "high" => 4,
            _ => 5,
        };
        assert_eq!(event["severity_id"], severity_id);
        if let Some(technique) = finding["technique"]["id"].as_str() {
            let attack = &event["finding_info"]["attacks"][0];
            assert_eq!(attack["technique"]["uid"], &technique[..5]);
            if technique.contains('.') {
                assert_eq!(attack["sub_technique"]["uid"], technique);
            } else {
                assert!(attack.get("sub_technique").is_none(), "{attack}");
            }
        }
        let remediation = event["remediation"]["desc"].as_str().unwrap_or("");
        for command in commands_of(finding) {
            assert!(
                remediation.contains(command),
                "{remediation} lacks {command}"
            );
        }
    }
}

#[test]
fn markdown_carries_finding_facts() {
    let work = tempfile::tempdir().expect("temp dir");
    let out = scan_with_every_output(work.path());
    let report = read_json(&out.join("report.json"));
    let markdown = std::fs::read_to_string(out.join("report.md")).expect("Markdown file");

    for finding in findings(&report) {
        let reason = finding["severity_reason"].as_str().expect("reason");
        assert!(markdown.contains(reason), "{markdown} lacks {reason}");
        if let Some(technique) = finding["technique"]["id"].as_str() {
            assert!(markdown.contains(technique), "{markdown} lacks {technique}");
        }
        for command in commands_of(finding) {
            assert!(markdown.contains(command), "{markdown} lacks {command}");
        }
    }
    assert!(markdown.contains("```sh\n"), "{markdown}");
}

#[test]
fn report_json_validates_against_idrift_schema() {
    let work = tempfile::tempdir().expect("temp dir");
    let (code, schema, _) = run(idrift(work.path()).arg("schema"));
    assert_eq!(code, 0);
    let schema_file = work.path().join("report-schema.json");
    std::fs::write(&schema_file, schema).expect("write schema");

    let out = scan_with_every_output(work.path());
    validate_against(&schema_file, &out.join("report.json"), true);

    // A run that failed before any scope has no findings but errors.
    let failed_file = work.path().join("failed.json");
    let (code, stdout, _) = run(idrift(work.path())
        .args(["scan", "--from-export"])
        .arg(work.path().join("no-such-export"))
        .args(["--format", "json"]));
    assert_eq!(code, 2, "{stdout}");
    std::fs::write(&failed_file, stdout).expect("write report");
    validate_against(&schema_file, &failed_file, true);

    // A diff of the two days.
    let diff_file = work.path().join("diff.json");
    let (code, stdout, _) = run(idrift(work.path())
        .arg("diff")
        .arg(demo().join("snapshots"))
        .arg(work.path().join("snapshots"))
        .args(["--format", "json"]));
    assert_eq!(code, 1, "{stdout}");
    std::fs::write(&diff_file, stdout).expect("write report");
    validate_against(&schema_file, &diff_file, true);
}

#[test]
fn output_to_stdout_replaces_format() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = copy_demo_snapshots(work.path());
    let (code, stdout, stderr) = scan_day_two(
        work.path(),
        &snapshots,
        &["--dry-run", "--output", "sarif=-"],
    );
    assert_eq!(code, 1, "{stderr}");
    let sarif: Value = serde_json::from_str(&stdout).expect("SARIF on stdout");
    assert_eq!(sarif["version"], "2.1.0");
}

#[test]
fn output_conflicts_are_rejected() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = copy_demo_snapshots(work.path());
    let before = std::fs::read(snapshots.join("aws/111122223333.json")).expect("snapshot");
    let cases: [&[&str]; 3] = [
        &["--format", "json", "--output", "sarif=-"],
        &["--output", "json=-", "--output", "sarif=-"],
        &["--output", "json=a.out", "--output", "sarif=a.out"],
    ];
    for flags in cases {
        let (code, stdout, stderr) = scan_day_two(work.path(), &snapshots, flags);
        assert_eq!(code, 2, "{flags:?}: {stdout}");
        assert!(stderr.contains("error:"), "{flags:?}: {stderr}");
    }
    assert_eq!(
        std::fs::read(snapshots.join("aws/111122223333.json")).expect("snapshot"),
        before,
        "a rejected command line ran the scan"
    );
    let (code, _, stderr) = scan_day_two(work.path(), &snapshots, &["--output", "yaml=x"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown format"), "{stderr}");
}

#[test]
fn output_write_failure_exits_two() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = copy_demo_snapshots(work.path());
    let missing = work.path().join("no-such-folder/report.sarif");
    let written = work.path().join("report.json");
    let (code, stdout, stderr) = scan_day_two(
        work.path(),
        &snapshots,
        &[
            "--output",
            &format!("sarif={}", missing.display()),
            "--output",
            &format!("json={}", written.display()),
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON report on stdout");
    assert_eq!(report["exit_code"], 2);
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("sarif report could not be written"),
        "{errors}"
    );
    assert_eq!(findings(&report).len(), 7);
    assert!(written.is_file(), "the other output was not written");
}

#[test]
fn diff_outputs_point_at_new_side() {
    let work = tempfile::tempdir().expect("temp dir");
    let new = copy_demo_snapshots(&work.path().join("new"));
    let (code, _, stderr) = scan_day_two(work.path(), &new, &[]);
    assert_eq!(code, 1, "{stderr}");

    let sarif_file = work.path().join("diff.sarif");
    let markdown_file = work.path().join("diff.md");
    let (code, stdout, stderr) = run(idrift(work.path())
        .arg("diff")
        .arg(demo().join("snapshots"))
        .arg(&new)
        .args(["--output", &format!("sarif={}", sarif_file.display())])
        .args(["--output", &format!("md={}", markdown_file.display())]));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let sarif = read_json(&sarif_file);
    let location = location_of(&sarif, "svc-backup");
    assert_eq!(
        location["region"]["startLine"],
        line_of_id(&new.join("aws/111122223333.json"), "AIDASVCBACKUP00DEMO07")
    );
    let markdown = std::fs::read_to_string(&markdown_file).expect("Markdown file");
    assert!(
        markdown.starts_with("## idrift diff: 7 findings"),
        "{markdown}"
    );
}

#[test]
fn expired_rule_finding_validates_everywhere() {
    let work = tempfile::tempdir().expect("temp dir");
    let snapshots = copy_demo_snapshots(work.path());
    let config = work.path().join("idrift.toml");
    std::fs::write(
        &config,
        "[[expected]]\nowner = \"platform-team\"\nreason = \"old migration users\"\n\
         provider = \"aws\"\nname = \"migration-*\"\nexpires = 2020-01-31\n",
    )
    .expect("write config");
    let out = work.path().join("out");
    std::fs::create_dir_all(&out).expect("create output folder");
    let flag = |format: &str, file: &str| format!("{format}={}", out.join(file).display());
    let config_arg = config.display().to_string();
    let (code, stdout, stderr) = scan_day_two(
        work.path(),
        &snapshots,
        &[
            "--config",
            &config_arg,
            "--output",
            &flag("json", "report.json"),
            "--output",
            &flag("sarif", "report.sarif"),
            "--output",
            &flag("ocsf", "report.ocsf.jsonl"),
            "--output",
            &flag("markdown", "report.md"),
        ],
    );
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let report = read_json(&out.join("report.json"));
    let expired: Vec<&Value> = findings(&report)
        .iter()
        .filter(|finding| finding["change"] == "rule_expired")
        .collect();
    assert_eq!(expired.len(), 1, "{report:#}");
    assert!(expired[0].get("identity_kind").is_none());

    let (code, schema, _) = run(idrift(work.path()).arg("schema"));
    assert_eq!(code, 0);
    let schema_file = work.path().join("report-schema.json");
    std::fs::write(&schema_file, schema).expect("write schema");
    validate_against(&schema_file, &out.join("report.json"), true);
    validate_against(sarif_schema(), &out.join("report.sarif"), false);
    validate_ocsf(
        "1.5.0",
        "detection_finding",
        "cloud",
        &out.join("report.ocsf.jsonl"),
    );
    let markdown = std::fs::read_to_string(out.join("report.md")).expect("markdown");
    assert!(markdown.contains("platform-team"), "{markdown}");
}

/// One finding is counted in the singular: `1 finding`, not `1 findings`.
#[test]
fn one_finding_counted_singular() {
    let work = tempfile::tempdir().expect("temp dir");
    let old = demo().join("snapshots/aws/111122223333.json");
    let mut snapshot = read_json(&old);
    let identities = snapshot["identities"].as_array_mut().expect("identities");
    identities.retain(|identity| identity["name"] != "old-contractor");
    assert_eq!(identities.len(), 7, "the demo has old-contractor");
    let new = work.path().join("111122223333.json");
    std::fs::write(
        &new,
        serde_json::to_string_pretty(&snapshot).expect("serialize"),
    )
    .expect("write snapshot");

    let (code, stdout, stderr) = run(idrift(work.path()).arg("diff").arg(&old).arg(&new));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "1 finding (1 info), 0 need attention; 0 scopes failed, \
             0 collections incomplete; exit code 0"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("compared (7 identities)"), "{stdout}");

    let (_, markdown, _) = run(idrift(work.path())
        .arg("diff")
        .arg(&old)
        .arg(&new)
        .args(["--format", "markdown"]));
    assert!(
        markdown.starts_with("## idrift diff: 1 finding (1 info), 0 need attention"),
        "{markdown}"
    );
}
