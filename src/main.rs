//! The `idrift` binary: parse flags, set up logging, run a command, write
//! its report to stdout and to each `--output` file, and exit with the code
//! the report carries.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use tracing_subscriber::EnvFilter;

use idrift::cli::{Cli, Command, RulesCommand};
use idrift::report::Report;
use idrift::report::output;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    idrift::progress::enable(!cli.quiet);

    let (stdout_format, outputs) = match &cli.command {
        Command::Scan(args) => (args.format, &args.outputs),
        Command::Diff(args) => (args.format, &args.outputs),
        Command::Schema => {
            print!("{}", idrift::report::schema::REPORT_JSON_SCHEMA);
            return ExitCode::SUCCESS;
        }
        Command::Rules(RulesCommand::Check(args)) => return run_rules_check(args),
        Command::History(args) => return run_history(args),
    };
    let targets = output::plan(stdout_format.map(Into::into), outputs).unwrap_or_else(|message| {
        Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit()
    });

    let mut report = match &cli.command {
        Command::Scan(args) => run_scan(args),
        Command::Diff(args) => match args.resolve() {
            Ok(settings) => idrift::commands::diff::run(&settings),
            Err(error) => Report::failed("diff", error.to_string()),
        },
        Command::Schema | Command::Rules(_) | Command::History(_) => unreachable!("handled above"),
    };
    output::deliver(&mut report, &targets);
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

fn run_history(args: &idrift::cli::HistoryArgs) -> ExitCode {
    let history = match args.resolve() {
        Ok(settings) => idrift::commands::history::run_history(&settings),
        Err(error) => idrift::commands::history::IdentityHistory {
            text: String::new(),
            exit_code: idrift::exit::FAILED,
            errors: vec![error.to_string()],
        },
    };
    for error in &history.errors {
        tracing::error!("{}", idrift::report::sanitize(error));
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(history.text.as_bytes());
    let _ = stdout.flush();
    ExitCode::from(history.exit_code)
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
        .with_writer(idrift::progress::LogWriter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
