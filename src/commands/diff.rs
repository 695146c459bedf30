//! `idrift diff OLD NEW`: compares two snapshot folders or files offline,
//! or passes two git revisions or `--since` to [`super::history`].

use std::collections::BTreeMap;

use crate::cli::DiffSettings;
use crate::diff::diff_snapshots;
use crate::judge::{expired_rule_findings, judge_with_rules};
use crate::model::{Provider, Snapshot};
use crate::report::{Report, ScopeStatus, ScopeSummary, SnapshotLocation};
use crate::store::load_tree;

/// Loads both sides, pairs scopes and judges every change.
pub fn run(settings: &DiffSettings) -> Report {
    if let Some(range) = &settings.history {
        return crate::commands::history::diff_range(settings, range);
    }
    let loaded = load_tree(&settings.old).and_then(|old| Ok((old, load_tree(&settings.new)?)));
    let (old, new) = match loaded {
        Ok(sides) => sides,
        Err(error) => return Report::failed("diff", error.to_string()),
    };

    let key = |snapshot: &Snapshot| (snapshot.provider, snapshot.scope.clone());
    let old_by_scope: BTreeMap<(Provider, String), Snapshot> =
        old.into_iter().map(|s| (key(&s), s)).collect();
    let new_by_scope: BTreeMap<(Provider, String), Snapshot> =
        new.into_iter().map(|s| (key(&s), s)).collect();

    // Two single files are meant to be the same scope; scopes only on one
    // side are expected only when whole folders are compared.
    if settings.old.is_file()
        && settings.new.is_file()
        && old_by_scope.keys().ne(new_by_scope.keys())
    {
        let message = format!(
            "{} and {} hold different scopes; compare two snapshots of the same account",
            settings.old.display(),
            settings.new.display()
        );
        return Report::failed("diff", message);
    }

    let mut scopes = Vec::new();
    let mut findings = Vec::new();
    for (scope_key, after) in &new_by_scope {
        let Some(before) = old_by_scope.get(scope_key) else {
            scopes.push(summary(after, ScopeStatus::OnlyInNew, Vec::new(), true));
            continue;
        };
        let diff = diff_snapshots(before, after);
        findings.extend(judge_with_rules(&diff, &settings.rules));
        scopes.push(summary(
            after,
            ScopeStatus::Compared,
            diff.not_compared,
            true,
        ));
    }
    for (scope_key, before) in &old_by_scope {
        if !new_by_scope.contains_key(scope_key) {
            scopes.push(summary(before, ScopeStatus::OnlyInOld, Vec::new(), false));
        }
    }
    let new_scopes = new_by_scope
        .keys()
        .map(|(provider, scope)| (*provider, scope.as_str()));
    findings.extend(expired_rule_findings(&settings.rules, new_scopes));
    let snapshots = if settings.new.is_file() {
        SnapshotLocation::File(settings.new.clone())
    } else {
        SnapshotLocation::Folder(settings.new.clone())
    };
    Report::new("diff", scopes, findings, Vec::new()).with_snapshots(snapshots)
}

/// Summarizes a scope. Collections that the newer side (`is_newer`) could not
/// list in full count as incomplete, so the run exits with 2.
fn summary(
    snapshot: &Snapshot,
    status: ScopeStatus,
    not_compared: Vec<crate::diff::NotCompared>,
    is_newer: bool,
) -> ScopeSummary {
    let incomplete = if is_newer {
        crate::commands::scan::incomplete_collections(snapshot)
    } else {
        Vec::new()
    };
    ScopeSummary {
        provider: snapshot.provider.to_string(),
        scope: snapshot.scope.clone(),
        status,
        identities: snapshot.identities.len(),
        not_compared,
        incomplete,
        error: None,
        snapshot: None,
    }
}
