//! Expected-account rules: the config's `[[expected]]` tables, which mark
//! changes a team meant to make (a CI pipeline's roles, a vendor's service
//! principal) so that they stop failing the run.
//!
//! Every match field that a rule sets must match the identity; any rule
//! may match. A rule mutes only the change kinds it lists (creations by
//! default), and a creation that brings a credential or an admin grant
//! with it only when the rule also lists `credential_added` or
//! `privilege_added`. A rule past its `expires` date mutes nothing.

pub mod date;
pub mod glob;
mod parse;

pub use date::Date;
pub use glob::Glob;
pub use parse::{FIELDS, locate, resolve};

use crate::diff::{Change, ChangeKind};
use crate::model::{Identity, IdentityKind, Provider};

/// The change kinds a rule mutes when it lists none.
pub const DEFAULT_CHANGES: [&str; 2] = ["identity_added", "identity_recreated"];

/// A regular expression that must match a whole name.
#[derive(Debug, Clone)]
pub struct NameRegex {
    /// The pattern as the config wrote it.
    pub pattern: String,
    regex: regex_lite::Regex,
}

impl NameRegex {
    /// Compiles a pattern, anchored at both ends.
    pub fn new(pattern: &str) -> Result<NameRegex, String> {
        let anchored = format!("^(?:{pattern})$");
        let regex = regex_lite::Regex::new(&anchored).map_err(|error| {
            let detail = error.to_string().replace('\n', " ");
            format!("{pattern:?} is not a valid regular expression: {detail}")
        })?;
        Ok(NameRegex {
            pattern: pattern.to_string(),
            regex,
        })
    }

    /// Returns true when the whole name matches.
    pub fn is_match(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }
}

/// A tag (or label) that an identity must carry, with this exact value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagMatch {
    /// Tag key.
    pub key: String,
    /// Tag value; may be empty.
    pub value: String,
}

/// The match fields of a rule; each that is set must match.
#[derive(Debug, Clone, Default)]
pub struct RuleMatch {
    /// Provider of the identity.
    pub provider: Option<Provider>,
    /// Pattern for the scope id: account, tenant or project.
    pub scope: Option<Glob>,
    /// Identity kind.
    pub kind: Option<IdentityKind>,
    /// Pattern for the identity's name.
    pub name: Option<Glob>,
    /// Regular expression for the identity's whole name.
    pub name_regex: Option<NameRegex>,
    /// Prefix of the IAM path (AWS only).
    pub path_prefix: Option<String>,
    /// A tag with its value (AWS IAM users and roles only).
    pub tag: Option<TagMatch>,
    /// Pattern that every principal of a role's trust policy must match.
    pub trust: Option<Glob>,
    /// Pattern that the actor of every audit event behind the change must
    /// match: an ARN, user principal name, application id or email.
    pub actor: Option<Glob>,
}

impl RuleMatch {
    /// Returns true when every field that is set matches the identity. A
    /// rule that sets `actor` never matches here, because the actor is
    /// known only from the audit log; see [`RuleMatch::matches_with_actors`].
    pub fn matches(&self, provider: Provider, scope: &str, identity: &Identity) -> bool {
        self.matches_with_actors(provider, scope, identity, &[])
    }

    /// Returns true when every field that is set matches the identity and
    /// the actors of the change's audit events. `actor` matches when there
    /// is at least one actor and every one matches, so an unexplained
    /// actor beside the expected one voids the match.
    pub fn matches_with_actors(
        &self,
        provider: Provider,
        scope: &str,
        identity: &Identity,
        actors: &[&str],
    ) -> bool {
        let actor_matches = self.actor.as_ref().is_none_or(|glob| {
            !actors.is_empty() && actors.iter().all(|actor| glob.matches(actor))
        });
        actor_matches && self.matches_identity(provider, scope, identity)
    }

    /// Returns true when every field that is set, `actor` aside, matches
    /// the identity: what a rule can reach in snapshots, which record no actors.
    pub fn matches_identity(&self, provider: Provider, scope: &str, identity: &Identity) -> bool {
        self.provider.is_none_or(|wanted| wanted == provider)
            && self.scope.as_ref().is_none_or(|glob| glob.matches(scope))
            && self.kind.is_none_or(|kind| kind == identity.kind)
            && self
                .name
                .as_ref()
                .is_none_or(|glob| glob.matches(&identity.name))
            && self
                .name_regex
                .as_ref()
                .is_none_or(|regex| regex.is_match(&identity.name))
            && self.path_prefix.as_ref().is_none_or(|prefix| {
                identity
                    .path
                    .as_deref()
                    .is_some_and(|path| path.starts_with(prefix.as_str()))
            })
            && self
                .tag
                .as_ref()
                .is_none_or(|tag| identity.tags.get(&tag.key).is_some_and(|v| *v == tag.value))
            && self
                .trust
                .as_ref()
                .is_none_or(|glob| trust_matches(glob, identity))
    }

    /// Returns true when the rule matches every scope of a provider, or the
    /// given scope.
    pub fn covers_scope(&self, provider: Provider, scope: &str) -> bool {
        self.provider.is_none_or(|wanted| wanted == provider)
            && self.kind.is_none_or(|kind| kind.provider() == provider)
            && self.scope.as_ref().is_none_or(|glob| glob.matches(scope))
    }

    /// Returns the fields that are set, as `field = value` text, in the
    /// order of [`FIELDS`].
    pub fn describe(&self) -> Vec<String> {
        let mut fields = Vec::new();
        let mut push = |field: &str, value: Option<String>| {
            if let Some(value) = value {
                fields.push(format!("{field} = {value:?}"));
            }
        };
        push("provider", self.provider.map(|p| p.to_string()));
        push("scope", self.scope.as_ref().map(Glob::to_string));
        push("kind", self.kind.map(|kind| kind.as_str().to_string()));
        push("name", self.name.as_ref().map(Glob::to_string));
        let regex = self.name_regex.as_ref();
        push("name_regex", regex.map(|regex| regex.pattern.clone()));
        push("path_prefix", self.path_prefix.clone());
        let tag = self.tag.as_ref();
        push("tag", tag.map(|tag| format!("{}={}", tag.key, tag.value)));
        push("trust", self.trust.as_ref().map(Glob::to_string));
        push("actor", self.actor.as_ref().map(Glob::to_string));
        fields
    }
}

/// Returns true when a role trusts at least one principal and every one of
/// them matches, so that a principal added beside the expected one voids
/// the match.
fn trust_matches(glob: &Glob, identity: &Identity) -> bool {
    !identity.trust.is_empty()
        && identity
            .trust
            .iter()
            .all(|principal| glob.matches(&principal.value))
}

/// One `[[expected]]` table of the config.
#[derive(Debug, Clone)]
pub struct ExpectedRule {
    /// Position in the config, from 0: the rule is `expected[index]`.
    pub index: usize,
    /// Match fields.
    pub matching: RuleMatch,
    /// The team or person responsible for the rule.
    pub owner: String,
    /// The reason the matched identities are expected.
    pub reason: String,
    /// Last day (UTC) on which the rule mutes anything.
    pub expires: Option<Date>,
    /// Change kinds the rule mutes, such as `identity_added`.
    pub changes: Vec<&'static str>,
}

impl ExpectedRule {
    /// Returns the config key of the rule, such as `expected[0]`.
    pub fn key(&self) -> String {
        format!("expected[{}]", self.index)
    }

    /// Returns the line a muted finding shows, naming the rule, its owner
    /// and its reason.
    pub fn label(&self) -> String {
        format!(
            "rule {} (owner {}): {}",
            self.key(),
            self.owner,
            self.reason
        )
    }

    /// Returns true once the expiry date has passed; the rule still mutes
    /// on the expiry date itself.
    pub fn is_expired(&self, today: Date) -> bool {
        self.expires.is_some_and(|expires| expires < today)
    }

    /// Returns true when the rule lists a change kind.
    pub fn lists(&self, change: &str) -> bool {
        self.changes.contains(&change)
    }

    /// Returns true when the rule mutes a change of an identity it matches:
    /// it lists the change kind, and for a creation, also `credential_added`
    /// when the new identity has a credential and `privilege_added` when it
    /// has an admin grant.
    pub fn mutes(&self, change: &Change) -> bool {
        self.lists(change.kind.name()) && self.unlisted_for(change).is_empty()
    }

    /// Returns the change kinds the rule would also need to list to mute a
    /// creation of this identity (empty for other changes).
    pub fn unlisted_for(&self, change: &Change) -> Vec<&'static str> {
        let is_creation = matches!(
            change.kind,
            ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. }
        );
        if !is_creation {
            return Vec::new();
        }
        self.unlisted_for_creation(&change.identity)
    }

    /// Returns the change kinds, beyond the creation itself, that the rule
    /// would need to list to mute the creation of this identity.
    pub fn unlisted_for_creation(&self, identity: &Identity) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if !identity.credentials.is_empty() && !self.lists("credential_added") {
            missing.push("credential_added");
        }
        if identity.is_admin() && !self.lists("privilege_added") {
            missing.push("privilege_added");
        }
        missing
    }
}

/// The config's rules, judged as of one date.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<ExpectedRule>,
    today: Date,
}

/// The rules' verdict on one change.
#[derive(Debug, Default)]
pub struct RuleVerdict<'a> {
    /// The first rule in force that mutes the change.
    pub muted_by: Option<&'a ExpectedRule>,
    /// Expired rules that would have muted it.
    pub expired: Vec<&'a ExpectedRule>,
}

impl RuleSet {
    /// Wraps the rules, to be judged as of `today`.
    pub fn new(rules: Vec<ExpectedRule>, today: Date) -> RuleSet {
        RuleSet { rules, today }
    }

    /// Returns the rules in config order.
    pub fn rules(&self) -> &[ExpectedRule] {
        &self.rules
    }

    /// Returns the date the rules are judged as of.
    pub fn today(&self) -> Date {
        self.today
    }

    /// Returns the rules whose expiry date has passed.
    pub fn expired(&self) -> impl Iterator<Item = &ExpectedRule> {
        self.rules.iter().filter(|rule| rule.is_expired(self.today))
    }

    /// Finds the rule that mutes a change, and the expired ones that would have.
    pub fn judge(&self, provider: Provider, scope: &str, change: &Change) -> RuleVerdict<'_> {
        self.judge_with_actors(provider, scope, change, &[])
    }

    /// Like [`RuleSet::judge`], with the actors of the change's audit
    /// events, which rules that set `actor` need.
    pub fn judge_with_actors(
        &self,
        provider: Provider,
        scope: &str,
        change: &Change,
        actors: &[&str],
    ) -> RuleVerdict<'_> {
        let mut verdict = RuleVerdict::default();
        let matching = self.rules.iter().filter(|rule| {
            rule.matching
                .matches_with_actors(provider, scope, &change.identity, actors)
                && rule.mutes(change)
        });
        for rule in matching {
            if rule.is_expired(self.today) {
                verdict.expired.push(rule);
            } else {
                verdict.muted_by = Some(rule);
                break;
            }
        }
        verdict
    }
}

#[cfg(test)]
mod tests;
