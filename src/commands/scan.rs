//! `idrift scan`: collect, store, diff, judge and report, scope by scope,
//! then notify the webhook, if one is set.

use std::collections::HashSet;
use std::fs;
use std::time::{Instant, SystemTime};

use tracing::{info, warn};

use crate::attribute::{ScopeAccess, ScopeTarget, Window};
use crate::cli::{ScanSettings, Source};
use crate::collect::parallel::ApiScope;
use crate::collect::{CollectError, Collected, parallel};
use crate::diff::{NotCompared, diff_snapshots};
use crate::judge::{Finding, expired_rule_findings, judge_with_rules};
use crate::lock::ScanLock;
use crate::model::{Completeness, Provider, Snapshot};
use crate::report::{Report, ScopeStatus, ScopeSummary, SnapshotLocation};
use crate::store::{self, ScanMetadata, SnapshotStore};

/// The scopes and findings a scan has gathered so far.
#[derive(Default)]
struct ScanResults {
    scopes: Vec<ScopeSummary>,
    findings: Vec<Finding>,
    errors: Vec<String>,
    /// Compared scopes with the time of their previous scan, if recorded.
    compared: Vec<(Provider, String, Option<String>)>,
    /// How to reach the audit log of each scope collected through its API.
    access: Vec<(Provider, String, ScopeAccess)>,
    /// The change behind each finding judged from a diff, in the order of
    /// `findings`.
    changes: Vec<crate::diff::Change>,
}

/// Runs a scan and returns its report.
pub async fn run(settings: &ScanSettings) -> Report {
    // Held until the snapshots are written and committed.
    let _lock = match prepare_to_write(settings) {
        Ok(lock) => lock,
        Err(error) => return Report::failed("scan", error),
    };
    let store = SnapshotStore::new(&settings.snapshots);
    let mut results = ScanResults::default();

    match &settings.source {
        Source::Export(path) => {
            let started = Instant::now();
            info!(path = %path.display(), "reading exports");
            match crate::collect::collect_exports(path) {
                Ok(collected) => {
                    let source = path.display().to_string();
                    for scope in collected {
                        record_scope(&store, settings, scope, started, &source, &mut results);
                    }
                }
                Err(error) => results.errors.push(error.to_string()),
            }
        }
        Source::Api {
            aws_accounts,
            aws_organizations,
            scope_limits,
            azure_tenants,
            gcp,
            gworkspace,
            retry,
        } => {
            let (scopes, failures) =
                parallel::plan_scopes(aws_accounts, aws_organizations, azure_tenants, gcp, retry)
                    .await;
            results.scopes.extend(failures.iter().map(failed_scope));
            // Each scope is recorded as soon as it is collected, into its
            // own results, which are then joined in config order.
            let planned = scopes.clone();
            let mut per_scope: Vec<ScanResults> =
                scopes.iter().map(|_| ScanResults::default()).collect();
            // Config entries without an account id can reach an account that
            // another entry names; each scope is recorded once, by the entry
            // that finishes first.
            let mut recorded: HashSet<(Provider, String)> = HashSet::new();
            let record = |index: usize, outcome: parallel::ScopeOutcome| {
                // The snapshot's metadata times the collection itself, not
                // the wait for a permit.
                let started = Instant::now()
                    .checked_sub(outcome.duration)
                    .unwrap_or_else(Instant::now);
                let slot = &mut per_scope[index];
                match outcome.result {
                    Ok(collected) => {
                        let (provider, scope) = scope_key(&collected);
                        if !recorded.insert((provider, scope.clone())) {
                            slot.scopes
                                .push(duplicate_scope(provider, &scope, &planned[index]));
                            return;
                        }
                        let access = match &planned[index] {
                            ApiScope::Aws(account) => ScopeAccess::Aws(account.clone()),
                            ApiScope::Azure(tenant) => ScopeAccess::Azure(tenant.clone()),
                            ApiScope::Gcp(_) => ScopeAccess::Gcp(gcp.clone()),
                        };
                        slot.access.push((provider, scope, access));
                        record_scope(&store, settings, collected, started, "api", slot)
                    }
                    Err(error) => slot.scopes.push(failed_scope(&error)),
                }
            };
            parallel::collect_scopes(scopes, retry, *scope_limits, record).await;
            for scope in per_scope {
                results.scopes.extend(scope.scopes);
                results.findings.extend(scope.findings);
                results.errors.extend(scope.errors);
                results.compared.extend(scope.compared);
                results.access.extend(scope.access);
                results.changes.extend(scope.changes);
            }
            if !gworkspace.is_empty() {
                let started = Instant::now();
                for result in
                    crate::collect::gworkspace::api::collect_customers(gworkspace, retry).await
                {
                    match result {
                        Ok(collected) => {
                            let (provider, scope) = scope_key(&collected);
                            let access = ScopeAccess::Gworkspace;
                            results.access.push((provider, scope, access));
                            record_scope(&store, settings, collected, started, "api", &mut results)
                        }
                        Err(error) => results.scopes.push(failed_scope(&error)),
                    }
                }
            }
            attribute_findings(&mut results, settings, retry).await;
        }
    }
    let read_scopes = results
        .scopes
        .iter()
        .filter(|scope| scope.status != ScopeStatus::Failed)
        .filter_map(|scope| Some((Provider::parse(&scope.provider)?, scope.scope.as_str())));
    let expired = expired_rule_findings(&settings.rules, read_scopes);
    results.findings.extend(expired);
    let mut report = Report::new("scan", results.scopes, results.findings, results.errors)
        .with_snapshots(SnapshotLocation::Folder(settings.snapshots.clone()));
    if settings.commit {
        commit_snapshots(&mut report, settings);
    }
    // The snapshots are written by now, so a failed notification leaves them as they are.
    if let Some(webhook) = &settings.notify {
        crate::notify::notify(&mut report, webhook).await;
    }
    report
}

fn scope_key(collected: &Collected) -> (Provider, String) {
    (
        collected.snapshot.provider,
        collected.snapshot.scope.clone(),
    )
}

/// Looks up who made the findings of the compared scopes, in the window
/// since each scope's previous scan, then judges the findings again with
/// their actors.
async fn attribute_findings(
    results: &mut ScanResults,
    settings: &ScanSettings,
    retry: &crate::settings::RetrySettings,
) {
    if !settings.attribution.enabled {
        return;
    }
    let now = SystemTime::now();
    let targets: Vec<ScopeTarget> = results
        .compared
        .iter()
        .filter_map(|(provider, scope, previous)| {
            let (_, _, access) = results
                .access
                .iter()
                .find(|(p, s, _)| p == provider && s == scope)?;
            Some(ScopeTarget {
                provider: *provider,
                scope: scope.clone(),
                window: Window::since(previous.as_deref(), now, &settings.attribution),
                access: access.clone(),
            })
        })
        .collect();
    crate::attribute::attribute(
        &mut results.findings,
        &targets,
        &settings.attribution,
        retry,
    )
    .await;
    crate::judge::apply_actors(&mut results.findings, &results.changes, &settings.rules);
}

/// Reports a config entry that reached a scope another entry had already
/// recorded. Its listing is not used, so the snapshot is written once.
fn duplicate_scope(provider: Provider, scope: &str, planned: &ApiScope) -> ScopeSummary {
    let error = format!(
        "{} reached {provider} {scope}, which another config entry already scanned; its \
         listing was not used. Give each entry its account_id, or remove one",
        planned.label()
    );
    warn!(error = %crate::report::sanitize(&error), "scope scanned twice");
    ScopeSummary {
        provider: provider.to_string(),
        scope: scope.to_string(),
        status: ScopeStatus::Failed,
        identities: 0,
        not_compared: Vec::new(),
        incomplete: Vec::new(),
        error: Some(error),
        snapshot: None,
    }
}

fn failed_scope(error: &CollectError) -> ScopeSummary {
    let (provider, scope) = match error {
        CollectError::Unavailable {
            provider, scope, ..
        } => (provider.to_string(), scope.clone()),
        CollectError::Export { path, .. } => ("aws".to_string(), path.display().to_string()),
    };
    tracing::error!(error = %crate::report::sanitize(&error.to_string()), "scope failed");
    ScopeSummary {
        provider,
        scope,
        status: ScopeStatus::Failed,
        identities: 0,
        not_compared: Vec::new(),
        incomplete: Vec::new(),
        error: Some(error.reason().to_string()),
        snapshot: None,
    }
}

/// Collections this scan could not list in full because something failed
/// (not those whose source was absent by choice, such as a missing export).
pub fn incomplete_collections(snapshot: &Snapshot) -> Vec<NotCompared> {
    snapshot
        .collections
        .iter()
        .filter_map(|(name, completeness)| match completeness {
            Completeness::Incomplete { reason, .. } => Some(NotCompared {
                collection: *name,
                reason: reason.clone(),
                only: Vec::new(),
            }),
            _ => None,
        })
        .collect()
}

/// Merges one collected scope with its previous snapshot, writes it, and
/// judges the changes.
fn record_scope(
    store: &SnapshotStore,
    settings: &ScanSettings,
    collected: Collected,
    started: Instant,
    source: &str,
    results: &mut ScanResults,
) {
    let Collected {
        snapshot,
        api_calls,
    } = collected;
    let provider = snapshot.provider;
    let scope = snapshot.scope.clone();
    let mut summary = ScopeSummary {
        provider: provider.to_string(),
        scope: scope.clone(),
        status: ScopeStatus::Failed,
        identities: 0,
        not_compared: Vec::new(),
        incomplete: incomplete_collections(&snapshot),
        error: None,
        snapshot: None,
    };

    let previous = match store.load(provider, &scope) {
        Ok(previous) => previous,
        Err(error) => {
            summary.error = Some(format!("{error}; the snapshot was left as it is"));
            results.scopes.push(summary);
            return;
        }
    };
    let merged = store::carry_over(snapshot, previous.as_ref());
    summary.identities = merged.identities.len();

    if !merged
        .collections
        .values()
        .any(Completeness::holds_complete_records)
    {
        summary.error = Some(
            "no collection could be listed and there is no earlier snapshot to keep".to_string(),
        );
        results.scopes.push(summary);
        return;
    }

    match &previous {
        None => summary.status = ScopeStatus::Baseline,
        Some(previous) => {
            let diff = diff_snapshots(previous, &merged);
            summary.status = ScopeStatus::Compared;
            let previous_scan = store.previous_scan_time(provider, &scope);
            results
                .compared
                .push((provider, scope.clone(), previous_scan));
            summary.not_compared = diff.not_compared.clone();
            results
                .findings
                .extend(judge_with_rules(&diff, &settings.rules));
            results.changes.extend(diff.changes.iter().cloned());
        }
    }

    if !settings.dry_run {
        match write_scope(
            store,
            &merged,
            started,
            api_calls,
            source,
            &summary.incomplete,
        ) {
            Ok(path) => summary.snapshot = Some(path),
            Err(error) => {
                summary.status = ScopeStatus::Failed;
                summary.error = Some(error.to_string());
            }
        }
    }
    results.scopes.push(summary);
}

/// Writes the snapshot when its bytes changed, and the scan metadata.
fn write_scope(
    store: &SnapshotStore,
    snapshot: &Snapshot,
    started: Instant,
    api_calls: u64,
    source: &str,
    incomplete: &[NotCompared],
) -> Result<String, store::StoreError> {
    let path = store.path_for(snapshot.provider, &snapshot.scope)?;
    let unchanged = fs::read_to_string(&path).is_ok_and(|text| text == store::to_json(snapshot));
    if unchanged {
        info!(path = %path.display(), "snapshot unchanged");
    } else {
        store.save(snapshot)?;
        info!(path = %path.display(), "snapshot written");
    }

    let metadata = ScanMetadata {
        scanned_at: now_rfc3339(),
        idrift_version: env!("CARGO_PKG_VERSION").to_string(),
        duration_ms: started.elapsed().as_millis(),
        api_calls,
        source: source.to_string(),
        incomplete: incomplete
            .iter()
            .map(|entry| format!("{}: {}", entry.collection, entry.reason))
            .collect(),
    };
    // The snapshot is already in place; failing to record when it was taken
    // must not make the scope look unscanned.
    if let Err(error) = store.save_metadata(snapshot.provider, &snapshot.scope, &metadata) {
        warn!(error = %crate::report::sanitize(&error.to_string()), "scan metadata not written");
    }
    Ok(path.display().to_string())
}

fn now_rfc3339() -> String {
    let now = aws_smithy_types::DateTime::from(SystemTime::now());
    crate::collect::aws::details::format_timestamp(&now)
}

/// Takes the snapshot folder's lock and, with `--commit`, checks that git can
/// commit the folder, so that a refusal comes before anything is written.
/// A dry run writes nothing and takes no lock.
fn prepare_to_write(settings: &ScanSettings) -> Result<Option<ScanLock>, String> {
    if settings.dry_run {
        return Ok(None);
    }
    let lock = ScanLock::acquire(&settings.snapshots).map_err(|error| error.to_string())?;
    if settings.commit {
        crate::git::check_commit_ready(&settings.snapshots).map_err(|error| error.to_string())?;
    }
    Ok(Some(lock))
}

/// Commits the snapshot folder with a message that summarizes the report;
/// a failure becomes a run-level error (exit 2).
fn commit_snapshots(report: &mut Report, settings: &ScanSettings) {
    let message = crate::git::commit_message(report);
    match crate::git::commit_snapshots(&settings.snapshots, &message) {
        Ok(Some(commit)) => info!(commit = %commit.short_hash(), "snapshots committed"),
        Ok(None) => info!("no snapshot changed; nothing committed"),
        Err(error) => report.add_error(format!(
            "{error}; the snapshots are written but not committed"
        )),
    }
}
