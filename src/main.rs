//! The `idrift` binary: parse flags, set up logging, run a command, print
//! its report on stdout and exit with the code the report carries.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use idrift::cli::{Cli, Command, RulesCommand};
use idrift::report::Report;
use idrift::settings::ReportFormat;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);

    let (report, format) = match &cli.command {
        Command::Scan(args) => {
            let format = args.format.into();
            (run_scan(args), format)
        }
        Command::Diff(args) => {
            let report = match args.resolve() {
                Ok(settings) => idrift::commands::diff::run(&settings),
                Err(error) => Report::failed("diff", error.to_string()),
            };
            (report, args.format.into())
        }
        Command::Rules(RulesCommand::Check(args)) => return run_rules_check(args),
    };
    print_report(&report, format);
    ExitCode::from(report.exit_code)
}

fn run_scan(args: &idrift::cli::ScanArgs) -> Report {
    let settings = match args.resolve() {
        Ok(settings) => settings,
        Err(error) => return Report::failed("scan", error.to_string()),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return Report::failed("scan", format!("cannot start the async runtime: {error}"));
        }
    };
    runtime.block_on(idrift::commands::scan::run(&settings))
}

fn run_rules_check(args: &idrift::cli::RulesCheckArgs) -> ExitCode {
    let check = match args.resolve() {
        Ok(settings) => idrift::commands::rules::run(&settings),
        Err(error) => idrift::commands::rules::RulesCheck::failed(error.to_string()),
    };
    for error in &check.errors {
        tracing::error!("{}", idrift::report::sanitize(error));
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(check.render(args.format.into()).as_bytes());
    let _ = stdout.flush();
    ExitCode::from(check.exit_code)
}

fn print_report(report: &Report, format: ReportFormat) {
    for error in &report.errors {
        tracing::error!("{}", idrift::report::sanitize(error));
    }
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`idrift scan | head`) is not worth a panic.
    let _ = stdout.write_all(report.render(format).as_bytes());
    let _ = stdout.flush();
}

/// Logs to stderr; `RUST_LOG` wins over `-v` and `-q`.
fn init_logging(verbose: u8, quiet: bool) {
    let default_filter = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "idrift=warn,warn",
        (false, 1) => "idrift=info,warn",
        (false, 2) => "idrift=debug,warn",
        (false, _) => "idrift=trace,info",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
