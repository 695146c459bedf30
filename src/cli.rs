//! Command-line parsing and settings resolution. Nothing here touches a
//! cloud or a snapshot: flags and the config file become validated
//! settings, which the commands then run on.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{self, ConfigError};
use crate::notify::{NotifyError, WebhookSettings};
use crate::report::output::{self, OutputTarget};
use crate::rules::{Date, RuleSet};
use crate::settings::{
    AwsAccountSettings, AwsOrganizationSettings, AzureTenantSettings, GcpSettings,
    GworkspaceSettings, ReportFormat, RetrySettings, ScopeLimits,
};

/// Finds cloud identities nobody meant to create: snapshots them, diffs the
/// snapshots and reports new accounts, credentials and admin grants.
#[derive(Debug, Parser)]
#[command(name = "idrift", version, about, max_term_width = 100)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Collect every configured scope, write the snapshot, diff it with the
    /// previous one and report the changes.
    Scan(ScanArgs),
    /// Compare two snapshot folders or files, or two git revisions of the
    /// snapshot folder, without touching any cloud.
    Diff(DiffArgs),
    /// Print one identity's life in the snapshot folder's git history:
    /// first seen, changes, credentials, last seen.
    History(HistoryArgs),
    /// Review the config's expected-account rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Print the JSON Schema of the JSON report (`--format json`).
    Schema,
}

/// Output format flag.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// Aligned text for people.
    Table,
    /// JSON for machines (fields in docs/report-json.md, schema from `idrift schema`).
    Json,
    /// Markdown for a pull request or a ticket.
    #[value(alias = "md")]
    Markdown,
    /// SARIF 2.1.0 for code scanning, located on the snapshot files.
    Sarif,
    /// OCSF Detection Finding events, one a line, for SIEMs.
    Ocsf,
}

/// Output format flag of `idrift rules check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormatArg {
    /// Aligned text for people.
    Table,
    /// JSON for machines (fields in docs/report-json.md).
    Json,
}

impl From<CheckFormatArg> for ReportFormat {
    fn from(format: CheckFormatArg) -> ReportFormat {
        match format {
            CheckFormatArg::Table => ReportFormat::Table,
            CheckFormatArg::Json => ReportFormat::Json,
        }
    }
}

impl From<FormatArg> for ReportFormat {
    fn from(format: FormatArg) -> ReportFormat {
        match format {
            FormatArg::Table => ReportFormat::Table,
            FormatArg::Json => ReportFormat::Json,
            FormatArg::Markdown => ReportFormat::Markdown,
            FormatArg::Sarif => ReportFormat::Sarif,
            FormatArg::Ocsf => ReportFormat::Ocsf,
        }
    }
}

/// Flags of `idrift scan`.
#[derive(Debug, Args)]
#[command(
    after_help = "Set IDRIFT_WEBHOOK_URL to post the report to a webhook after the scan; \
    the README describes the other IDRIFT_WEBHOOK_* variables."
)]
pub struct ScanArgs {
    /// Config file (TOML); see config.example.toml.
    #[arg(long, env = "IDRIFT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Snapshot folder [default: the config's `snapshots`, else ./snapshots].
    #[arg(long, value_name = "DIR")]
    pub snapshots: Option<PathBuf>,
    /// Report format on stdout [default: table].
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Also write the report in FORMAT (table, json, markdown, sarif, ocsf)
    /// to FILE, or to stdout with `-` in place of --format; repeatable.
    #[arg(long = "output", value_name = "FORMAT=FILE", value_parser = output::parse_target)]
    pub outputs: Vec<OutputTarget>,
    /// Read CLI exports instead of calling the API: one AWS
    /// authorization-details file, or a folder laid out aws/<account-id>/,
    /// azure/<tenant-id>/, gcp/<project-id>/, gworkspace/<customer-id>/.
    #[arg(long, value_name = "PATH")]
    pub from_export: Option<PathBuf>,
    /// Compare with the snapshots on disk but write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Commit the snapshot folder to its git repository after the scan,
    /// with the findings counted in the message. Checked before scanning:
    /// the folder must be in a git work tree with nothing else staged.
    #[arg(long, conflicts_with = "dry_run")]
    pub commit: bool,
}

/// Flags of `idrift diff`.
#[derive(Debug, Args)]
#[command(
    after_help = "When OLD and NEW are not both existing paths, they are git revisions \
    of the snapshot folder (--snapshots): every commit between them that touched the folder is \
    diffed with the one before, so identities created and deleted in between are reported too."
)]
pub struct DiffArgs {
    /// The older snapshot folder or file, or a git revision.
    #[arg(required_unless_present = "since", conflicts_with = "since")]
    pub old: Option<String>,
    /// The newer snapshot folder or file, or a git revision.
    #[arg(required_unless_present = "since")]
    pub new: Option<String>,
    /// Report every change committed to the snapshot folder since DATE
    /// (any date git accepts, such as 2026-01-31 or "2 weeks ago").
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Snapshot folder whose git history is read for --since and for
    /// revisions [default: the config's `snapshots`, else ./snapshots].
    #[arg(long, value_name = "DIR")]
    pub snapshots: Option<PathBuf>,
    /// Config file whose [[expected]] rules apply; its other tables are
    /// validated but unused.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Report format on stdout [default: table].
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Also write the report in FORMAT (table, json, markdown, sarif, ocsf)
    /// to FILE, or to stdout with `-` in place of --format; repeatable.
    #[arg(long = "output", value_name = "FORMAT=FILE", value_parser = output::parse_target)]
    pub outputs: Vec<OutputTarget>,
}

/// Source of a scan's identities.
#[derive(Debug, Clone)]
pub enum Source {
    /// The providers' APIs, for the configured scopes.
    Api {
        /// AWS accounts.
        aws_accounts: Vec<AwsAccountSettings>,
        /// AWS organizations whose member accounts are scanned too.
        aws_organizations: Vec<AwsOrganizationSettings>,
        /// How many scopes are collected at once.
        scope_limits: ScopeLimits,
        /// Entra tenants.
        azure_tenants: Vec<AzureTenantSettings>,
        /// Google Cloud projects.
        gcp: Box<GcpSettings>,
        /// Google Workspace customers.
        gworkspace: GworkspaceSettings,
        /// Retry policy.
        retry: RetrySettings,
    },
    /// Offline exports under a path.
    Export(PathBuf),
}

/// Resolved settings of `idrift scan`.
#[derive(Debug, Clone)]
pub struct ScanSettings {
    /// Snapshot folder.
    pub snapshots: PathBuf,
    /// Report format.
    pub format: ReportFormat,
    /// Source to collect from.
    pub source: Source,
    /// Write nothing.
    pub dry_run: bool,
    /// Commit the snapshot folder to git after the scan.
    pub commit: bool,
    /// Expected-account rules, judged as of today.
    pub rules: RuleSet,
    /// The webhook to notify after the scan, from `IDRIFT_WEBHOOK_URL`.
    pub notify: Option<WebhookSettings>,
    /// Audit-log lookups of who made each finding's change (API scans only).
    pub attribution: crate::settings::AttributionSettings,
}

/// The two ends of a history diff.
#[derive(Debug, Clone)]
pub enum HistoryRange {
    /// From the folder's state at a date to its newest commit.
    Since {
        /// A date git accepts.
        date: String,
    },
    /// From one revision to another.
    Revisions {
        /// The older revision.
        old: String,
        /// The newer revision.
        new: String,
    },
}

/// Resolved settings of `idrift diff`.
#[derive(Debug, Clone)]
pub struct DiffSettings {
    /// Older side; the snapshot folder for a history diff.
    pub old: PathBuf,
    /// Newer side; the snapshot folder for a history diff.
    pub new: PathBuf,
    /// The revisions to read from git, when not comparing paths.
    pub history: Option<HistoryRange>,
    /// Report format.
    pub format: ReportFormat,
    /// Expected-account rules, judged as of today.
    pub rules: RuleSet,
}

/// Settings could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The config file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Nothing to scan.
    #[error(
        "nothing to scan: the config lists no [[aws.accounts]], [[aws.organizations]], [[azure.tenants]], [gcp] projects or [gworkspace] customers and no --from-export was given; \
         pass --config FILE (see config.example.toml) or --from-export PATH"
    )]
    NoScopes,
    /// A webhook variable is unusable.
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

impl ScanArgs {
    /// Merges the flags with the config file.
    pub fn resolve(&self) -> Result<ScanSettings, SettingsError> {
        let config = match &self.config {
            Some(path) => config::load(path)?,
            None => config::Config::default(),
        };
        let source = match &self.from_export {
            Some(path) => Source::Export(path.clone()),
            None if config.aws_accounts.is_empty()
                && config.aws_organizations.is_empty()
                && config.azure_tenants.is_empty()
                && config.gcp.is_empty()
                && config.gworkspace.is_empty() =>
            {
                return Err(SettingsError::NoScopes);
            }
            None => Source::Api {
                aws_accounts: config.aws_accounts.clone(),
                aws_organizations: config.aws_organizations.clone(),
                scope_limits: config.scope_limits,
                azure_tenants: config.azure_tenants.clone(),
                gcp: Box::new(config.gcp.clone()),
                gworkspace: config.gworkspace.clone(),
                retry: config.retry.clone(),
            },
        };
        let snapshots = self
            .snapshots
            .clone()
            .or(config.snapshots)
            .unwrap_or_else(|| PathBuf::from("snapshots"));
        Ok(ScanSettings {
            snapshots,
            format: self.format.map_or_else(ReportFormat::default, Into::into),
            source,
            dry_run: self.dry_run,
            commit: self.commit,
            attribution: config.attribution,
            rules: RuleSet::new(config.expected, Date::today()),
            notify: WebhookSettings::from_env()?,
        })
    }
}

impl DiffArgs {
    /// Resolves the flags, reading the rules of `--config` when given.
    pub fn resolve(&self) -> Result<DiffSettings, SettingsError> {
        let (expected, folder) = rules_and_folder(self.config.as_deref(), &self.snapshots)?;
        let (old, new, history) = match (&self.since, &self.old, &self.new) {
            (Some(date), _, _) => (
                folder.clone(),
                folder,
                Some(HistoryRange::Since { date: date.clone() }),
            ),
            (None, Some(old), Some(new)) if Path::new(old).exists() && Path::new(new).exists() => {
                (PathBuf::from(old), PathBuf::from(new), None)
            }
            (None, old, new) => (
                folder.clone(),
                folder,
                Some(HistoryRange::Revisions {
                    old: old.clone().unwrap_or_default(),
                    new: new.clone().unwrap_or_default(),
                }),
            ),
        };
        Ok(DiffSettings {
            old,
            new,
            history,
            format: self.format.map_or_else(ReportFormat::default, Into::into),
            rules: RuleSet::new(expected, Date::today()),
        })
    }
}

/// Subcommands of `idrift rules`.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate the [[expected]] rules and list the identities each one
    /// matches in the snapshots. Exits 0 when every rule is in force and
    /// matches something, 1 when a rule is expired or matches nothing, 2
    /// when the config or the snapshots cannot be read.
    Check(RulesCheckArgs),
}

/// Flags of `idrift rules check`.
#[derive(Debug, Args)]
pub struct RulesCheckArgs {
    /// Config file (TOML) with the [[expected]] rules.
    #[arg(long, env = "IDRIFT_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
    /// Snapshot folder [default: the config's `snapshots`, else ./snapshots].
    #[arg(long, value_name = "DIR")]
    pub snapshots: Option<PathBuf>,
    /// Judge expiry as of this date (YYYY-MM-DD, UTC) instead of today,
    /// such as the end of the quarter.
    #[arg(long, value_name = "DATE", value_parser = Date::parse)]
    pub as_of: Option<Date>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: CheckFormatArg,
}

/// Resolved settings of `idrift rules check`.
#[derive(Debug, Clone)]
pub struct RulesCheckSettings {
    /// The config file, for messages.
    pub config: PathBuf,
    /// Snapshot folder.
    pub snapshots: PathBuf,
    /// The rules, judged as of `--as-of` or today.
    pub rules: RuleSet,
    /// Output format.
    pub format: ReportFormat,
}

impl RulesCheckArgs {
    /// Reads and validates the config and picks the snapshot folder.
    pub fn resolve(&self) -> Result<RulesCheckSettings, SettingsError> {
        let config = config::load(&self.config)?;
        let snapshots = self
            .snapshots
            .clone()
            .or(config.snapshots)
            .unwrap_or_else(|| PathBuf::from("snapshots"));
        let today = self.as_of.unwrap_or_else(Date::today);
        Ok(RulesCheckSettings {
            config: self.config.clone(),
            snapshots,
            rules: RuleSet::new(config.expected, today),
            format: self.format.into(),
        })
    }
}

/// Flags of `idrift history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The identity's immutable id: AWS UserId or RoleId, Entra object id,
    /// GCP uniqueId or Workspace user id.
    pub id: String,
    /// Snapshot folder whose git history is read [default: the config's
    /// `snapshots`, else ./snapshots].
    #[arg(long, value_name = "DIR")]
    pub snapshots: Option<PathBuf>,
    /// Config file whose [[expected]] rules judge the changes.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Resolved settings of `idrift history`.
#[derive(Debug, Clone)]
pub struct HistorySettings {
    /// The identity's immutable id.
    pub id: String,
    /// Snapshot folder.
    pub snapshots: PathBuf,
    /// Expected-account rules, judged as of today.
    pub rules: RuleSet,
}

impl HistoryArgs {
    /// Resolves the flags, reading the rules of `--config` when given.
    pub fn resolve(&self) -> Result<HistorySettings, SettingsError> {
        let (expected, snapshots) = rules_and_folder(self.config.as_deref(), &self.snapshots)?;
        Ok(HistorySettings {
            id: self.id.clone(),
            snapshots,
            rules: RuleSet::new(expected, Date::today()),
        })
    }
}

/// Reads the expected-account rules of `--config`, when given, and picks
/// the snapshot folder: `--snapshots`, else the config's `snapshots`, else
/// `./snapshots`, as `scan` does.
fn rules_and_folder(
    config_path: Option<&Path>,
    snapshots: &Option<PathBuf>,
) -> Result<(Vec<crate::rules::ExpectedRule>, PathBuf), SettingsError> {
    let (expected, configured) = match config_path {
        Some(path) => {
            let config = config::load(path)?;
            (config.expected, config.snapshots)
        }
        None => (Vec::new(), None),
    };
    let folder = snapshots
        .clone()
        .or(configured)
        .unwrap_or_else(|| PathBuf::from("snapshots"));
    Ok((expected, folder))
}
