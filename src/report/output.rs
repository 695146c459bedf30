//! Report destinations: `--format` picks the format on stdout, and each
//! `--output FORMAT=FILE` writes one more rendering of the same report, so
//! a run can print a table and write JSON, SARIF and OCSF files at once.
//!
//! Files are written atomically (a temporary file in the same folder, then a
//! rename), so a code-scanning upload or a SIEM collector never reads half a
//! report. A file that cannot be written is an error of the run (exit code
//! 2), and the other files and stdout are still written.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tracing::{error, info};

use super::{Report, sanitize};
use crate::settings::ReportFormat;

/// The destination of one rendering of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Standard output, written as `-`.
    Stdout,
    /// A file, replaced if it exists.
    File(PathBuf),
}

/// One `--output FORMAT=FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputTarget {
    /// The format.
    pub format: ReportFormat,
    /// The destination.
    pub destination: Destination,
}

/// Parses `FORMAT=FILE`, with `-` as FILE for stdout; clap calls it for
/// each `--output`.
pub fn parse_target(text: &str) -> Result<OutputTarget, String> {
    let Some((name, file)) = text.split_once('=') else {
        return Err(format!(
            "expected FORMAT=FILE, such as sarif=idrift.sarif, got {text:?}"
        ));
    };
    let format = ReportFormat::parse(name).ok_or_else(|| {
        let names: Vec<&str> = ReportFormat::ALL.iter().map(|f| f.as_str()).collect();
        format!("unknown format {name:?}; use one of {}", names.join(", "))
    })?;
    let destination = match file {
        "" => {
            return Err(format!(
                "no file after {name}=; give a path, or - for stdout"
            ));
        }
        "-" => Destination::Stdout,
        path => Destination::File(PathBuf::from(path)),
    };
    Ok(OutputTarget {
        format,
        destination,
    })
}

/// Lists every rendering a run writes: the `--output` targets, plus stdout
/// in the `--format` format (table by default) unless an `--output` already
/// goes to stdout.
///
/// Rejects two renderings to one place: stdout named twice, `--format`
/// given together with `FORMAT=-`, or one file named twice.
pub fn plan(
    stdout_format: Option<ReportFormat>,
    outputs: &[OutputTarget],
) -> Result<Vec<OutputTarget>, String> {
    let to_stdout = outputs
        .iter()
        .filter(|target| target.destination == Destination::Stdout)
        .count();
    if to_stdout > 1 {
        return Err("--output names stdout (-) more than once; keep one".to_string());
    }
    if to_stdout == 1 && stdout_format.is_some() {
        return Err(
            "--format and --output FORMAT=- both set the stdout format; keep one".to_string(),
        );
    }
    for (index, target) in outputs.iter().enumerate() {
        if let Destination::File(path) = &target.destination {
            let again = outputs[index + 1..]
                .iter()
                .any(|other| other.destination == target.destination);
            if again {
                return Err(format!(
                    "--output writes {} more than once; give each format its own file",
                    path.display()
                ));
            }
        }
    }

    let mut targets = outputs.to_vec();
    if to_stdout == 0 {
        targets.push(OutputTarget {
            format: stdout_format.unwrap_or_default(),
            destination: Destination::Stdout,
        });
    }
    Ok(targets)
}

/// Writes every file target, records the ones that failed as errors of the
/// run, logs the run's errors, then prints the stdout target.
pub fn deliver(report: &mut Report, targets: &[OutputTarget]) {
    for target in targets {
        let Destination::File(path) = &target.destination else {
            continue;
        };
        match write_atomically(path, report.render(target.format).as_bytes()) {
            Ok(()) => {
                info!(path = %path.display(), format = target.format.as_str(), "report written")
            }
            Err(error) => report.add_error(format!(
                "the {} report could not be written to {}: {error}",
                target.format.as_str(),
                path.display()
            )),
        }
    }
    for error in &report.errors {
        error!("{}", sanitize(error));
    }
    for target in targets {
        if target.destination == Destination::Stdout {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`idrift scan | head`) is not worth a panic.
            let _ = stdout.write_all(report.render(target.format).as_bytes());
            let _ = stdout.flush();
        }
    }
}

/// Writes a file through a temporary file in its folder and a rename. The
/// file keeps the mode of the one it replaces, or gets 0644 when new.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    let mut temporary = tempfile::Builder::new()
        .prefix(".idrift-report-")
        .tempfile_in(folder)
        .map_err(without_temporary_path)?;
    temporary.write_all(bytes)?;
    let mode = std::fs::metadata(path).map_or(0o644, |metadata| metadata.permissions().mode());
    std::fs::set_permissions(temporary.path(), std::fs::Permissions::from_mode(mode))?;
    temporary.as_file().sync_all()?;
    temporary
        .persist(path)
        .map_err(|error| without_temporary_path(error.error))?;
    Ok(())
}

/// Drops the temporary file's name that tempfile adds to an error: the
/// message names the report file, which is what the user asked for.
fn without_temporary_path(error: std::io::Error) -> std::io::Error {
    let inner_code = error
        .get_ref()
        .and_then(|inner| inner.source())
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .and_then(std::io::Error::raw_os_error);
    match error.raw_os_error().or(inner_code) {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::from(error.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(format: ReportFormat, path: &str) -> OutputTarget {
        OutputTarget {
            format,
            destination: Destination::File(PathBuf::from(path)),
        }
    }

    #[test]
    fn write_error_names_no_temporary_file() {
        let folder = tempfile::tempdir().expect("temp dir");
        let file = folder.path().join("a-file");
        std::fs::write(&file, "x").expect("write");
        let error = write_atomically(&file.join("report.json"), b"{}").expect_err("not a folder");
        assert!(!error.to_string().contains(".idrift-report-"), "{error}");
    }

    #[test]
    fn parse_target_reads_format_and_file() {
        assert_eq!(
            parse_target("sarif=out/idrift.sarif"),
            Ok(file(ReportFormat::Sarif, "out/idrift.sarif"))
        );
        assert_eq!(
            parse_target("md=-").map(|target| target.destination),
            Ok(Destination::Stdout)
        );
        assert!(parse_target("sarif").is_err());
        assert!(parse_target("yaml=x").is_err());
        assert!(parse_target("json=").is_err());
    }

    #[test]
    fn plan_adds_stdout_in_format() {
        let outputs = [file(ReportFormat::Json, "a.json")];
        let targets = plan(Some(ReportFormat::Markdown), &outputs).expect("plan");
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[1].format, ReportFormat::Markdown);
        assert_eq!(targets[1].destination, Destination::Stdout);
        let targets = plan(None, &[]).expect("plan");
        assert_eq!(targets[0].format, ReportFormat::Table);
    }

    #[test]
    fn plan_rejects_two_renderings_to_one_place() {
        let stdout = OutputTarget {
            format: ReportFormat::Sarif,
            destination: Destination::Stdout,
        };
        assert!(plan(None, std::slice::from_ref(&stdout)).is_ok());
        assert!(plan(Some(ReportFormat::Json), std::slice::from_ref(&stdout)).is_err());
        assert!(plan(None, &[stdout.clone(), stdout]).is_err());
        let twice = [
            file(ReportFormat::Json, "a"),
            file(ReportFormat::Sarif, "a"),
        ];
        assert!(plan(None, &twice).is_err());
    }
}
