//! JSON Schema checks of reports, through `tests/validate_json.py` and
//! Python's jsonschema package. The SARIF schema is the one the serde-sarif
//! crate ships; the OCSF schema comes from the ocsf-json-schema package.
//!
//! NOTE: the SARIF schema is looked up in cargo's registry cache, so a
//! build from vendored sources (`cargo vendor`) does not find it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Finds Python: `$IDRIFT_PYTHON`, the project's `.venv`, then `python3`.
fn python() -> PathBuf {
    if let Ok(path) = std::env::var("IDRIFT_PYTHON") {
        return PathBuf::from(path);
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if local.exists() {
        return local;
    }
    PathBuf::from("python3")
}

/// Runs the validator script and panics with its output on any violation.
fn validate(arguments: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validate_json.py");
    let python = python();
    let output = Command::new(&python)
        .arg(&script)
        .args(arguments)
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run {}: {error}. Run `bash scripts/test.sh`, or set IDRIFT_PYTHON to a \
                 Python with `pip install jsonschema ocsf-json-schema==1.2.0`",
                python.display()
            )
        });
    let printed = String::from_utf8_lossy(&output.stdout);
    match output.status.code() {
        Some(0) => {}
        Some(3) => panic!(
            "{} lacks a package: {printed}Run `bash scripts/test.sh`, or set IDRIFT_PYTHON",
            python.display()
        ),
        _ => panic!(
            "schema violations ({arguments:?}):\n{printed}{}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// Checks a JSON file against a JSON Schema file; `strict` rejects
/// properties the schema does not list.
pub fn validate_against(schema: &Path, instance: &Path, strict: bool) {
    let schema = schema.to_string_lossy();
    let instance = instance.to_string_lossy();
    let mut arguments = vec!["schema", &schema];
    if strict {
        arguments.push("--strict");
    }
    arguments.push(&instance);
    validate(&arguments);
}

/// Checks every line of a JSON Lines file against an OCSF class, built
/// from the OCSF schema export of `version` with `profiles` applied.
pub fn validate_ocsf(version: &str, class_name: &str, profiles: &str, events: &Path) {
    let events = events.to_string_lossy();
    validate(&["ocsf", version, class_name, profiles, &events]);
}

/// Returns the path of the SARIF 2.1.0 JSON Schema that the serde-sarif
/// crate (a dev-dependency, so already unpacked by cargo) ships: in
/// `$CARGO_HOME/registry/src/<index>/serde-sarif-<version>/src/schema.json`,
/// with the version that Cargo.lock pins.
pub fn sarif_schema() -> &'static Path {
    static SCHEMA: OnceLock<PathBuf> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let lock =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))
                .expect("read Cargo.lock");
        let version = lock
            .split("[[package]]")
            .find(|entry| entry.contains("name = \"serde-sarif\""))
            .and_then(|entry| {
                entry
                    .lines()
                    .find_map(|line| line.strip_prefix("version = "))
            })
            .map(|version| version.trim_matches('"').to_string())
            .expect("Cargo.lock pins serde-sarif");
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
            .expect("CARGO_HOME or HOME is set");
        let registries = cargo_home.join("registry/src");
        let crate_folder = format!("serde-sarif-{version}");
        std::fs::read_dir(&registries)
            .unwrap_or_else(|error| panic!("read {}: {error}", registries.display()))
            .flatten()
            .map(|registry| registry.path().join(&crate_folder).join("src/schema.json"))
            .find(|schema| schema.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "no {crate_folder}/src/schema.json under {}",
                    registries.display()
                )
            })
    })
}
