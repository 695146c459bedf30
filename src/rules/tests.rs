use std::path::Path;

use super::*;
use crate::model::{AdminGrant, Credential, CredentialKind, TrustPrincipal};

const OWNED: &str = "owner = \"platform-team\"\nreason = \"CI deploy roles\"\n";

fn parse_rules(text: &str) -> Result<Vec<ExpectedRule>, String> {
    crate::config::parse(Path::new("/etc/idrift/config.toml"), text)
        .map(|config| config.expected)
        .map_err(|error| error.to_string())
}

fn one_rule(fields: &str) -> ExpectedRule {
    let text = format!("[[expected]]\n{OWNED}{fields}");
    let mut rules = parse_rules(&text).unwrap_or_else(|error| panic!("{error}"));
    rules.remove(0)
}

fn rule_error(fields: &str) -> String {
    let text = format!("[[expected]]\nprovider = \"aws\"\n{OWNED}\n[[expected]]\n{fields}");
    parse_rules(&text).expect_err("the second rule is invalid")
}

fn role(name: &str) -> Identity {
    let mut identity = Identity::new("AROA1", IdentityKind::AwsRole, name);
    identity.path = Some("/ci/".to_string());
    identity
}

fn trust(values: &[&str]) -> Vec<TrustPrincipal> {
    values
        .iter()
        .map(|value| TrustPrincipal {
            kind: "federated".to_string(),
            value: value.to_string(),
            conditional: true,
        })
        .collect()
}

fn access_key() -> Credential {
    Credential {
        kind: CredentialKind::AccessKey,
        id: "AKIA1".to_string(),
        status: Some("Active".to_string()),
        created: None,
        expires: None,
        display_name: None,
        detail: None,
    }
}

fn admin_grant() -> AdminGrant {
    AdminGrant {
        via: "attached".to_string(),
        policy: "arn:aws:iam::aws:policy/AdministratorAccess".to_string(),
        group: None,
        group_id: None,
        reason: "AdministratorAccess".to_string(),
        assignment_id: None,
    }
}

fn added(identity: Identity) -> Change {
    Change {
        kind: ChangeKind::IdentityAdded,
        identity,
    }
}

const SCOPE: &str = "123456789012";

#[test]
fn rule_fields_are_read() {
    let rule = one_rule(
        "provider = \"aws\"\nscope = \"1234*\"\nkind = \"aws_role\"\nname = \"ci-*\"\n\
         name_regex = \"ci-(dev|prod)\"\npath_prefix = \"/ci/\"\ntag = \"team=platform\"\n\
         trust = \"arn:aws:iam::*:oidc-provider/*\"\nexpires = 2026-06-30\n\
         changes = [\"identity_added\", \"credential_added\"]\n",
    );
    assert_eq!(rule.key(), "expected[0]");
    assert_eq!(rule.owner, "platform-team");
    assert_eq!(
        rule.label(),
        "rule expected[0] (owner platform-team): CI deploy roles"
    );
    assert_eq!(rule.expires, Some(Date::parse("2026-06-30").unwrap()));
    assert_eq!(rule.changes, ["identity_added", "credential_added"]);
    assert_eq!(rule.matching.describe().len(), 8);
}

#[test]
fn changes_default_to_creations() {
    let rule = one_rule("name = \"ci-*\"\n");
    assert_eq!(rule.changes, DEFAULT_CHANGES);
    assert_eq!(rule.expires, None);
}

#[test]
fn all_fields_must_match() {
    let rule = one_rule("provider = \"aws\"\nname = \"ci-*\"\npath_prefix = \"/ci/\"\n");
    assert!(
        rule.matching
            .matches(Provider::Aws, SCOPE, &role("ci-deploy"))
    );
    assert!(
        !rule
            .matching
            .matches(Provider::Gcp, SCOPE, &role("ci-deploy"))
    );
    assert!(!rule.matching.matches(Provider::Aws, SCOPE, &role("deploy")));
    let mut elsewhere = role("ci-deploy");
    elsewhere.path = Some("/".to_string());
    assert!(!rule.matching.matches(Provider::Aws, SCOPE, &elsewhere));
    elsewhere.path = None;
    assert!(!rule.matching.matches(Provider::Aws, SCOPE, &elsewhere));
}

#[test]
fn scope_glob_and_name_regex() {
    let rule = one_rule("scope = \"1234567890??\"\nname_regex = \"ci-(dev|prod)-[0-9]+\"\n");
    assert!(
        rule.matching
            .matches(Provider::Aws, SCOPE, &role("ci-dev-12"))
    );
    assert!(
        !rule
            .matching
            .matches(Provider::Aws, "999999999999", &role("ci-dev-12"))
    );
    // The regular expression must match the whole name.
    assert!(
        !rule
            .matching
            .matches(Provider::Aws, SCOPE, &role("x-ci-dev-12"))
    );
    assert!(
        !rule
            .matching
            .matches(Provider::Aws, SCOPE, &role("ci-dev-12-x"))
    );
    assert!(
        !rule
            .matching
            .matches(Provider::Aws, SCOPE, &role("ci-test-12"))
    );
}

#[test]
fn tag_needs_key_and_value() {
    let rule = one_rule("tag = \"team=platform\"\n");
    let mut tagged = role("anything");
    tagged
        .tags
        .insert("team".to_string(), "platform".to_string());
    assert!(rule.matching.matches(Provider::Aws, SCOPE, &tagged));
    tagged.tags.insert("team".to_string(), "other".to_string());
    assert!(!rule.matching.matches(Provider::Aws, SCOPE, &tagged));
    assert!(
        !rule
            .matching
            .matches(Provider::Aws, SCOPE, &role("anything"))
    );
}

#[test]
fn trust_must_cover_every_principal() {
    let rule = one_rule(
        "trust = \"arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com\"\n",
    );
    let github = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com";
    let mut ci = role("ci-deploy");
    ci.trust = trust(&[github]);
    assert!(rule.matching.matches(Provider::Aws, SCOPE, &ci));
    ci.trust = trust(&[github, "arn:aws:iam::999988887777:root"]);
    assert!(!rule.matching.matches(Provider::Aws, SCOPE, &ci));
    ci.trust.clear();
    assert!(!rule.matching.matches(Provider::Aws, SCOPE, &ci));
}

#[test]
fn creation_with_key_needs_credential_added() {
    let creations_only = one_rule("name = \"ci-*\"\n");
    let with_keys =
        one_rule("name = \"ci-*\"\nchanges = [\"identity_added\", \"credential_added\"]\n");
    let mut user = Identity::new("AIDA1", IdentityKind::AwsUser, "ci-bot");
    assert!(creations_only.mutes(&added(user.clone())));

    user.credentials.push(access_key());
    assert!(!creations_only.mutes(&added(user.clone())));
    assert_eq!(
        creations_only.unlisted_for_creation(&user),
        ["credential_added"]
    );
    assert!(with_keys.mutes(&added(user.clone())));

    let new_key = Change {
        kind: ChangeKind::CredentialAdded {
            credential: access_key(),
        },
        identity: user,
    };
    assert!(!creations_only.mutes(&new_key));
    assert!(with_keys.mutes(&new_key));
}

#[test]
fn creation_with_admin_needs_privilege_added() {
    let rule = one_rule("name = \"ci-*\"\nchanges = [\"identity_added\", \"credential_added\"]\n");
    let mut admin = role("ci-admin");
    admin.admin_grants.push(admin_grant());
    assert!(!rule.mutes(&added(admin.clone())));
    let named = one_rule("name = \"ci-*\"\nchanges = [\"identity_added\", \"privilege_added\"]\n");
    assert!(named.mutes(&added(admin)));
}

#[test]
fn expired_rule_mutes_nothing() {
    let expired = one_rule("name = \"ci-*\"\nexpires = \"2024-01-31\"\n");
    let today = Date::parse("2024-02-01").unwrap();
    assert!(expired.is_expired(today));
    assert!(!expired.is_expired(Date::parse("2024-01-31").unwrap()));

    let rules = RuleSet::new(vec![expired], today);
    let verdict = rules.judge(Provider::Aws, SCOPE, &added(role("ci-deploy")));
    assert!(verdict.muted_by.is_none());
    assert_eq!(verdict.expired.len(), 1);
    assert_eq!(rules.expired().count(), 1);
}

#[test]
fn first_rule_in_force_wins() {
    let text = format!(
        "[[expected]]\n{OWNED}name = \"ci-*\"\nexpires = \"2000-01-01\"\n\
         [[expected]]\nowner = \"sre\"\nreason = \"deploys\"\nname = \"ci-*\"\n\
         [[expected]]\nowner = \"other\"\nreason = \"also\"\nname = \"*\"\n"
    );
    let rules = RuleSet::new(
        parse_rules(&text).unwrap(),
        Date::parse("2026-01-01").unwrap(),
    );
    let verdict = rules.judge(Provider::Aws, SCOPE, &added(role("ci-deploy")));
    assert_eq!(
        verdict.muted_by.map(ExpectedRule::key),
        Some("expected[1]".to_string())
    );
    assert_eq!(verdict.expired.len(), 1);
}

#[test]
fn missing_owner_names_rule_and_field() {
    let error = rule_error("reason = \"r\"\nname = \"x\"\n");
    assert!(error.contains("expected[1].owner"), "{error}");
    assert!(error.contains("is required"), "{error}");
    let error = rule_error("owner = \"o\"\nname = \"x\"\n");
    assert!(error.contains("expected[1].reason"), "{error}");
    let error = rule_error("owner = \"  \"\nreason = \"r\"\nname = \"x\"\n");
    assert!(error.contains("expected[1].owner"), "{error}");
    assert!(error.contains("is empty"), "{error}");
}

#[test]
fn invalid_fields_name_rule_and_field() {
    let cases = [
        (
            "name_regex = \"ci-(\"\n",
            "expected[1].name_regex",
            "not a valid regular expression",
        ),
        (
            "name = \"x\"\nexpires = \"2025-02-30\"\n",
            "expected[1].expires",
            "2025-02-30",
        ),
        (
            "name = \"x\"\nexpires = \"soon\"\n",
            "expected[1].expires",
            "YYYY-MM-DD",
        ),
        (
            "name = \"x\"\nexpires = 2025-06-30T10:00:00Z\n",
            "expected[1].expires",
            "without a time",
        ),
        (
            "name = \"x\"\nexpires = 20250630\n",
            "expected[1].expires",
            "integer",
        ),
        ("nmae = \"x\"\n", "expected[1].nmae", "unknown field"),
        ("kind = \"aws_group\"\n", "expected[1].kind", "aws_role"),
        (
            "provider = \"oracle\"\n",
            "expected[1].provider",
            "aws, azure, gcp or gworkspace",
        ),
        (
            "provider = \"gcp\"\nkind = \"aws_role\"\n",
            "expected[1].kind",
            "gcp_service_account",
        ),
        (
            "name = \"x\"\nchanges = [\"identity_added\", \"key_added\"]\n",
            "expected[1].changes[1]",
            "credential_added",
        ),
        (
            "name = \"x\"\nchanges = []\n",
            "expected[1].changes",
            "is empty",
        ),
        (
            "name = \"x\"\nchanges = \"identity_added\"\n",
            "expected[1].changes",
            "list",
        ),
        ("tag = \"team\"\n", "expected[1].tag", "key=value"),
        (
            "provider = \"azure\"\ntag = \"team=a\"\n",
            "expected[1].tag",
            "AWS",
        ),
        (
            "kind = \"gcp_principal\"\npath_prefix = \"/\"\n",
            "expected[1].path_prefix",
            "AWS",
        ),
        (
            "path_prefix = \"ci/\"\n",
            "expected[1].path_prefix",
            "start with /",
        ),
        (
            "kind = \"aws_user\"\ntrust = \"*\"\n",
            "expected[1].trust",
            "IAM roles",
        ),
        ("name = \"\"\n", "expected[1].name", "is empty"),
        ("name = 3\n", "expected[1].name", "must be a string"),
        (
            "expires = \"2030-01-01\"\n",
            "expected[1]",
            "no match field",
        ),
    ];
    for (fields, key, detail) in cases {
        let error = rule_error(&format!("{OWNED}{fields}"));
        assert!(error.contains(&format!("{key}:")), "{fields}: {error}");
        assert!(error.contains(detail), "{fields}: {error}");
    }
}

#[test]
fn covers_scope_uses_provider_kind_and_scope() {
    let rule = one_rule("kind = \"gcp_service_account\"\nscope = \"prod-*\"\n");
    assert!(rule.matching.covers_scope(Provider::Gcp, "prod-web"));
    assert!(!rule.matching.covers_scope(Provider::Gcp, "dev-web"));
    assert!(!rule.matching.covers_scope(Provider::Aws, "prod-web"));
}

#[test]
fn toml_error_in_a_rule_names_it() {
    let text = format!(
        "[[expected]]\n{OWNED}name = \"a\"\n[[expected]]\n{OWNED}name = \"b\"\nexpires = 2025-02-30\n"
    );
    let error = parse_rules(&text).expect_err("invalid date");
    assert!(error.contains("(expected[1].expires)"), "{error}");
    assert!(error.contains("line 9"), "{error}");

    let outside = "[retry]\nmax_attempts = \n[[expected]]\nname = \"a\"\n";
    let error = parse_rules(outside).expect_err("invalid TOML");
    assert!(!error.contains("expected["), "{error}");
}

#[test]
fn example_config_sets_every_field() {
    let text = include_str!("../../config.example.toml");
    let file: toml::Table = toml::from_str(text).expect("valid TOML");
    let tables = file["expected"].as_array().expect("[[expected]] tables");
    for field in FIELDS {
        let set = tables
            .iter()
            .any(|table| table.as_table().is_some_and(|t| t.contains_key(field)));
        assert!(set, "config.example.toml sets no {field}");
    }
}
