//! The scheduling examples in `examples/scheduling`: each parses, its
//! schedule is a valid five-field cron expression, it runs `idrift scan
//! --commit`, and every idrift flag it uses exists. The systemd units are
//! checked with `systemd-analyze verify` when that tool is installed.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

use common::{idrift, run};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/scheduling")
        .join(name)
}

fn read(name: &str) -> String {
    fs::read_to_string(example(name)).unwrap_or_else(|error| panic!("{name}: {error}"))
}

fn yaml(name: &str) -> Value {
    serde_yaml_ng::from_str(&read(name)).unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// Checks one field of a cron expression: `*`, numbers, ranges, lists and
/// steps within the field's bounds.
fn cron_field_valid(field: &str, low: u32, high: u32) -> bool {
    field.split(',').all(|part| {
        let (range, step) = part.split_once('/').unwrap_or((part, "1"));
        let step_valid = step.parse::<u32>().is_ok_and(|step| step > 0);
        let in_bounds = |value: &str| {
            value
                .parse::<u32>()
                .is_ok_and(|n| (low..=high).contains(&n))
        };
        let range_valid = range == "*"
            || match range.split_once('-') {
                Some((start, end)) => in_bounds(start) && in_bounds(end),
                None => in_bounds(range),
            };
        step_valid && range_valid
    })
}

fn assert_cron_schedule(schedule: &str) {
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    assert_eq!(fields.len(), 5, "five fields in {schedule:?}");
    let bounds = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    for (field, (low, high)) in fields.iter().zip(bounds) {
        assert!(
            cron_field_valid(field, low, high),
            "field {field:?} of {schedule:?}"
        );
    }
}

/// Checks that the text runs `idrift scan --commit` and that every long
/// flag after `idrift scan` is one that `idrift scan --help` lists.
fn assert_scan_command(name: &str, text: &str) {
    let start = text
        .find("idrift scan --")
        .unwrap_or_else(|| panic!("{name} runs idrift scan"));
    let command: String = text[start..]
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(command.contains("--commit"), "{name}: {command}");

    let home = tempfile::tempdir().expect("temp dir");
    let (code, help, _) = run(idrift(home.path()).args(["scan", "--help"]));
    assert_eq!(code, 0);
    for flag in command
        .split_whitespace()
        .filter(|word| word.starts_with("--"))
    {
        let flag = flag.split('=').next().unwrap_or(flag);
        assert!(
            help.contains(flag),
            "{name}: {flag} is not an idrift scan flag"
        );
    }
}

#[test]
fn crontab_line_is_valid() {
    let text = read("crontab");
    let entries: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .filter(|line| !line.split_whitespace().next().unwrap_or("").contains('='))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let fields: Vec<&str> = entries[0].splitn(6, ' ').collect();
    assert_cron_schedule(&fields[..5].join(" "));
    assert_scan_command("crontab", fields[5]);
}

#[test]
fn systemd_units_verify() {
    let service = read("idrift-scan.service");
    let timer = read("idrift-scan.timer");
    assert!(service.contains("Type=oneshot"));
    assert!(timer.contains("Unit=idrift-scan.service"));
    assert!(timer.contains("OnCalendar="));
    assert_scan_command("idrift-scan.service", &service);

    let available = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !available {
        eprintln!("systemd-analyze not installed; unit files checked by content only");
        return;
    }
    // verify rejects an ExecStart binary that does not exist, so the units
    // are copied with the path of the idrift built for this test.
    let folder = tempfile::tempdir().expect("temp dir");
    let service = service.replace("/usr/local/bin/idrift", env!("CARGO_BIN_EXE_idrift"));
    fs::write(folder.path().join("idrift-scan.service"), service).expect("write");
    fs::write(folder.path().join("idrift-scan.timer"), timer).expect("write");
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(folder.path().join("idrift-scan.service"))
        .arg(folder.path().join("idrift-scan.timer"))
        .output()
        .expect("systemd-analyze runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn kubernetes_cronjob_is_valid() {
    let cronjob = yaml("kubernetes-cronjob.yaml");
    assert_eq!(cronjob["apiVersion"], "batch/v1");
    assert_eq!(cronjob["kind"], "CronJob");
    let spec = &cronjob["spec"];
    assert_cron_schedule(spec["schedule"].as_str().expect("schedule"));
    assert_eq!(spec["concurrencyPolicy"], "Forbid");
    let pod = &spec["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let container = &pod["containers"][0];
    assert!(container["image"].is_string());
    let script = container["args"][0].as_str().expect("script");
    assert_scan_command("kubernetes-cronjob.yaml", script);
    assert!(script.contains("git push"), "{script}");
}

#[test]
fn github_workflow_is_valid() {
    let workflow = yaml("github-actions.yml");
    let schedule = &workflow["on"]["schedule"][0]["cron"];
    assert_cron_schedule(schedule.as_str().expect("cron"));
    assert_eq!(workflow["permissions"]["contents"], "write");

    let job = &workflow["jobs"]["scan"];
    let scopes = job["strategy"]["matrix"]["scope"]
        .as_sequence()
        .expect("a scope matrix");
    assert!(scopes.len() > 1, "one job per scope");
    let steps = job["steps"].as_sequence().expect("steps");
    for step in steps {
        assert!(
            step.get("run").is_some() || step.get("uses").is_some(),
            "{step:?}"
        );
    }
    let scan = steps
        .iter()
        .filter_map(|step| step["run"].as_str())
        .find(|script| script.contains("idrift scan"))
        .expect("a scan step");
    assert!(scan.contains("${{ matrix.scope }}"), "{scan}");
    assert_scan_command("github-actions.yml", &scan.replace("\\\n", " "));
    let pushes = steps
        .iter()
        .filter_map(|step| step["run"].as_str())
        .any(|script| script.contains("git push"));
    assert!(pushes, "the workflow pushes the snapshot commit");
}
