//! Reads `[[expected]]` tables into rules. Each table is read key by key,
//! so that every error names the rule and the field, such as
//! `expected[2].name_regex`.

use toml::Value;

use super::{DEFAULT_CHANGES, Date, ExpectedRule, Glob, NameRegex, RuleMatch, TagMatch};
use crate::diff::ChangeKind;
use crate::model::{IdentityKind, Provider};

/// Every field an `[[expected]]` table may set: the match fields first.
pub const FIELDS: [&str; 13] = [
    "provider",
    "scope",
    "kind",
    "name",
    "name_regex",
    "path_prefix",
    "tag",
    "trust",
    "actor",
    "owner",
    "reason",
    "expires",
    "changes",
];

/// The number of match fields at the start of [`FIELDS`].
const MATCH_FIELDS: usize = 9;

/// An invalid rule: the key at fault, such as `expected[2].name_regex`,
/// and the problem.
type KeyError = (String, String);

/// Validates the config's `[[expected]]` tables, in order.
pub fn resolve(tables: &[toml::Table]) -> Result<Vec<ExpectedRule>, KeyError> {
    tables
        .iter()
        .enumerate()
        .map(|(index, table)| {
            resolve_rule(index, table)
                .map_err(|(field, message)| (format!("expected[{index}]{field}"), message))
        })
        .collect()
}

/// Validates one table. Errors name the field as a key suffix, such as
/// `.owner` or `.changes[1]`, or an empty suffix for the whole rule.
fn resolve_rule(index: usize, table: &toml::Table) -> Result<ExpectedRule, KeyError> {
    if let Some(unknown) = table.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Err((
            format!(".{unknown}"),
            format!("unknown field; use one of {}", FIELDS.join(", ")),
        ));
    }
    let field = |name: &str| -> Result<Option<&str>, KeyError> {
        match table.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.as_str())),
            Some(other) => Err((
                format!(".{name}"),
                format!("must be a string, found {}", other.type_str()),
            )),
        }
    };
    let owner = required(
        field("owner")?,
        "owner",
        "the team or person responsible for it",
    )?;
    let reason = required(
        field("reason")?,
        "reason",
        "why the identities it matches are expected",
    )?;

    let matching = RuleMatch {
        provider: field("provider")?
            .map(parse_provider)
            .transpose()
            .map_err(at("provider"))?,
        scope: field("scope")?
            .map(Glob::new)
            .transpose()
            .map_err(at("scope"))?,
        kind: field("kind")?
            .map(parse_kind)
            .transpose()
            .map_err(at("kind"))?,
        name: field("name")?
            .map(Glob::new)
            .transpose()
            .map_err(at("name"))?,
        name_regex: field("name_regex")?
            .map(NameRegex::new)
            .transpose()
            .map_err(at("name_regex"))?,
        path_prefix: field("path_prefix")?
            .map(parse_path_prefix)
            .transpose()
            .map_err(at("path_prefix"))?,
        tag: field("tag")?
            .map(parse_tag)
            .transpose()
            .map_err(at("tag"))?,
        trust: field("trust")?
            .map(Glob::new)
            .transpose()
            .map_err(at("trust"))?,
        actor: field("actor")?
            .map(Glob::new)
            .transpose()
            .map_err(at("actor"))?,
    };
    check_match(table, &matching)?;

    let expires = table
        .get("expires")
        .map(parse_expires)
        .transpose()
        .map_err(at("expires"))?;
    let changes = match table.get("changes") {
        Some(value) => parse_changes(value)?,
        None => DEFAULT_CHANGES.to_vec(),
    };
    Ok(ExpectedRule {
        index,
        matching,
        owner,
        reason,
        expires,
        changes,
    })
}

/// Returns the key that a byte offset of the config text falls in, such as
/// `expected[1].expires`, when it is inside an `[[expected]]` table, so that
/// a TOML syntax error there names the rule.
pub fn locate(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset).unwrap_or(text);
    let mut current = None;
    let mut count = 0;
    for line in before.lines() {
        let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.starts_with("[[expected]]") {
            current = Some(count);
            count += 1;
        } else if compact.starts_with('[') {
            current = None;
        }
    }
    let index = current?;

    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = text[line_start..].lines().next().unwrap_or_default();
    let key = line
        .split_once('=')
        .map(|(key, _)| key.trim())
        .filter(|key| FIELDS.contains(key));
    Some(match key {
        Some(key) => format!("expected[{index}].{key}"),
        None => format!("expected[{index}]"),
    })
}

/// Returns a function that puts a message under a field's key suffix.
fn at(name: &'static str) -> impl Fn(String) -> KeyError {
    move |message| (format!(".{name}"), message)
}

fn required(value: Option<&str>, name: &str, meaning: &str) -> Result<String, KeyError> {
    match value.map(str::trim) {
        Some(text) if !text.is_empty() => Ok(text.to_string()),
        Some(_) => Err((format!(".{name}"), format!("is empty; give {meaning}"))),
        None => Err((format!(".{name}"), format!("is required: {meaning}"))),
    }
}

/// Rejects a rule that matches every identity, and fields that cannot
/// match the rule's provider or kind.
fn check_match(table: &toml::Table, matching: &RuleMatch) -> Result<(), KeyError> {
    let has_match_field = FIELDS[..MATCH_FIELDS]
        .iter()
        .any(|name| table.contains_key(*name));
    if !has_match_field {
        return Err((
            String::new(),
            format!(
                "sets no match field, so it would match every identity; set at least one of {}",
                FIELDS[..MATCH_FIELDS].join(", ")
            ),
        ));
    }
    if let (Some(provider), Some(kind)) = (matching.provider, matching.kind)
        && kind.provider() != provider
    {
        return Err((
            ".kind".to_string(),
            format!(
                "{} is not a {provider} identity kind; use one of {}",
                kind.as_str(),
                kinds_of(provider)
            ),
        ));
    }

    let provider = matching
        .provider
        .or(matching.kind.map(IdentityKind::provider));
    let aws_only = [
        ("path_prefix", matching.path_prefix.is_some()),
        ("tag", matching.tag.is_some()),
        ("trust", matching.trust.is_some()),
    ];
    for (name, set) in aws_only {
        if set && provider.is_some_and(|provider| provider != Provider::Aws) {
            return Err((
                format!(".{name}"),
                "applies only to AWS identities: idrift records IAM paths, tags and \
                 trust policies for AWS users and roles only"
                    .to_string(),
            ));
        }
    }
    if matching.trust.is_some() && matching.kind == Some(IdentityKind::AwsUser) {
        return Err((
            ".trust".to_string(),
            "applies only to IAM roles (kind = \"aws_role\"); users have no trust policy"
                .to_string(),
        ));
    }
    Ok(())
}

fn kinds_of(provider: Provider) -> String {
    IdentityKind::ALL
        .iter()
        .filter(|kind| kind.provider() == provider)
        .map(|kind| kind.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_provider(name: &str) -> Result<Provider, String> {
    Provider::parse(name)
        .ok_or_else(|| format!("{name:?} is not a provider; use aws, azure, gcp or gworkspace"))
}

fn parse_kind(name: &str) -> Result<IdentityKind, String> {
    IdentityKind::parse(name).ok_or_else(|| {
        let all: Vec<&str> = IdentityKind::ALL.iter().map(|kind| kind.as_str()).collect();
        format!(
            "{name:?} is not an identity kind; use one of {}",
            all.join(", ")
        )
    })
}

fn parse_path_prefix(prefix: &str) -> Result<String, String> {
    if prefix.starts_with('/') {
        Ok(prefix.to_string())
    } else {
        Err(format!(
            "{prefix:?} is not an IAM path prefix; IAM paths start with /, such as \"/ci/\""
        ))
    }
}

fn parse_tag(text: &str) -> Result<TagMatch, String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok(TagMatch {
            key: key.to_string(),
            value: value.to_string(),
        }),
        _ => Err(format!(
            "{text:?} is not key=value, such as \"team=platform\""
        )),
    }
}

/// Reads a TOML date (`expires = 2026-06-30`) or a string in that form.
fn parse_expires(value: &Value) -> Result<Date, String> {
    match value {
        Value::String(text) => Date::parse(text),
        Value::Datetime(datetime) => match (datetime.date, datetime.time, datetime.offset) {
            // Date::parse checks the day against the month's length.
            (Some(date), None, None) => Date::parse(&format!(
                "{:04}-{:02}-{:02}",
                date.year, date.month, date.day
            )),
            _ => Err(format!(
                "{datetime} is not a plain date; use a date without a time, such as 2026-06-30"
            )),
        },
        other => Err(format!(
            "must be a date such as 2026-06-30, found {}",
            other.type_str()
        )),
    }
}

fn parse_changes(value: &Value) -> Result<Vec<&'static str>, KeyError> {
    let Value::Array(items) = value else {
        return Err((
            ".changes".to_string(),
            format!(
                "must be a list of change kinds, such as [\"identity_added\"], found {}",
                value.type_str()
            ),
        ));
    };
    if items.is_empty() {
        return Err((
            ".changes".to_string(),
            "is empty; list at least one change kind, such as \"identity_added\"".to_string(),
        ));
    }
    let mut changes = Vec::new();
    for (position, item) in items.iter().enumerate() {
        let known = item
            .as_str()
            .and_then(|name| ChangeKind::NAMES.iter().find(|known| **known == name));
        match known {
            Some(name) if !changes.contains(name) => changes.push(*name),
            Some(_) => {}
            None => {
                return Err((
                    format!(".changes[{position}]"),
                    format!(
                        "{item} is not a change kind; use one of {}",
                        ChangeKind::NAMES.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(changes)
}
