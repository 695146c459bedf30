//! IAM policy documents: decoding, trust principals and admin detection.
//!
//! Policy documents arrive URL-encoded (RFC 3986) on the wire and as JSON
//! objects in the AWS CLI's output; both decode to a `serde_json::Value`.

use percent_encoding::percent_decode_str;
use serde_json::Value;

use crate::model::TrustPrincipal;

/// ARN of the AWS managed policy that grants everything.
pub const ADMINISTRATOR_ACCESS_ARN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";

/// Decodes a policy document given as a URL-encoded JSON string, a plain
/// JSON string, or an already parsed JSON object.
pub fn decode_document(raw: &Value) -> Result<Value, String> {
    match raw {
        Value::String(text) => decode_document_text(text),
        Value::Object(_) => check_shape(raw).map(|()| raw.clone()),
        other => Err(format!(
            "a policy document must be a string or object, found {other}"
        )),
    }
}

/// Decodes a policy document string, URL-encoded or not.
pub fn decode_document_text(text: &str) -> Result<Value, String> {
    let trimmed = text.trim_start();

    // A document that already starts as JSON is not URL-encoded; decoding it
    // would turn a literal `%` inside a condition value into garbage.
    let json = if trimmed.starts_with('{') {
        text.to_string()
    } else {
        percent_decode_str(text)
            .decode_utf8()
            .map_err(|error| format!("the URL-encoded policy is not UTF-8: {error}"))?
            .into_owned()
    };
    let document: Value = serde_json::from_str(&json)
        .map_err(|error| format!("the policy is not valid JSON: {error}"))?;
    check_shape(&document)?;
    Ok(document)
}

/// Rejects documents whose statements cannot be evaluated, so that a
/// malformed policy marks privileges incomplete instead of reading as "no admin".
fn check_shape(document: &Value) -> Result<(), String> {
    let statements = match document.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(single @ Value::Object(_)) => vec![single],
        Some(other) => {
            return Err(format!(
                "Statement must be an object or a list, found {other}"
            ));
        }
        None if document.is_object() => return Err("the policy has no Statement".to_string()),
        None => return Err(format!("a policy must be a JSON object, found {document}")),
    };
    match statements.iter().find(|statement| !statement.is_object()) {
        Some(bad) => Err(format!("a statement must be an object, found {bad}")),
        None => Ok(()),
    }
}

/// Returns the statements of a document: `Statement` may be one object or a list.
fn statements(document: &Value) -> Vec<&Value> {
    match document.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(single @ Value::Object(_)) => vec![single],
        _ => Vec::new(),
    }
}

/// Returns the strings of a field that may be one string or a list of them.
fn string_values(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|item| item.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn is_allow(statement: &Value) -> bool {
    statement.get("Effect").and_then(Value::as_str) == Some("Allow")
}

/// Lists the principals that the Allow statements of a trust policy name.
///
/// `Principal: "*"` becomes an `aws` principal `*`. A `NotPrincipal` in an
/// Allow statement trusts everyone except the listed principals, so it is
/// recorded as kind `not_principal` for the judge to treat as open trust.
///
/// Returns an error for a principal of any other shape (a list, a number, a
/// nested object), so that an unreadable trust policy is not read as empty.
pub fn trust_principals(document: &Value) -> Result<Vec<TrustPrincipal>, String> {
    let mut principals = Vec::new();
    for statement in statements(document).into_iter().filter(|s| is_allow(s)) {
        let conditional = statement
            .get("Condition")
            .is_some_and(|condition| !condition.is_null());
        let mut push = |kind: &str, value: String| {
            principals.push(TrustPrincipal {
                kind: kind.to_string(),
                value,
                conditional,
            });
        };

        match statement.get("Principal") {
            Some(Value::String(text)) => push("aws", text.clone()),
            Some(Value::Object(map)) => {
                for (key, value) in map {
                    for text in principal_values("Principal", value)? {
                        push(&principal_kind(key), text);
                    }
                }
            }
            None | Some(Value::Null) => {}
            Some(other) => {
                return Err(format!(
                    "Principal must be \"*\" or an object, found {other}"
                ));
            }
        }
        if let Some(not_principal) = statement.get("NotPrincipal") {
            let values = match not_principal {
                Value::Object(map) => {
                    let mut values = Vec::new();
                    for value in map.values() {
                        values.extend(principal_values("NotPrincipal", value)?);
                    }
                    values
                }
                other => principal_values("NotPrincipal", other)?,
            };
            for text in values {
                push("not_principal", text);
            }
        }
    }
    principals.sort();
    principals.dedup();
    Ok(principals)
}

/// Returns the principals of one `Principal` key: a string or a list of
/// strings, and nothing else.
fn principal_values(field: &str, value: &Value) -> Result<Vec<String>, String> {
    let invalid = || format!("{field} values must be strings, found {value}");
    match value {
        Value::String(text) => Ok(vec![text.clone()]),
        Value::Array(list) => list
            .iter()
            .map(|item| item.as_str().map(str::to_string).ok_or_else(invalid))
            .collect(),
        _ => Err(invalid()),
    }
}

/// Maps a `Principal` key (`AWS`, `Service`, `Federated`, `CanonicalUser`) to a record kind.
fn principal_kind(key: &str) -> String {
    match key {
        "AWS" => "aws".to_string(),
        "Service" => "service".to_string(),
        "Federated" => "federated".to_string(),
        "CanonicalUser" => "canonical_user".to_string(),
        other => other.to_ascii_lowercase(),
    }
}

/// Returns the account id of an `aws` trust principal: a bare 12-digit id or
/// the account field of an ARN. `*` and unparseable values return `None`.
pub fn principal_account(value: &str) -> Option<&str> {
    if value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(value);
    }
    account_of_arn(value)
}

/// Returns the 12-digit account field of an ARN (`arn:aws:iam::123456789012:user/x`).
pub fn account_of_arn(arn: &str) -> Option<&str> {
    let account = arn.split(':').nth(4)?;
    let is_account = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    is_account.then_some(account)
}

/// Returns why a document grants admin rights, or `None` if it does not.
///
/// Admin is an Allow statement whose `Action` contains `*` or `iam:*` and
/// whose `Resource` contains `*`. `NotAction` in an Allow statement is not
/// evaluated.
// NOTE: Allow statements with NotAction (allow everything except a few
// actions) can grant admin too; they are not flagged yet.
pub fn admin_reason(document: &Value) -> Option<String> {
    for statement in statements(document).into_iter().filter(|s| is_allow(s)) {
        let resources = string_values(statement.get("Resource"));
        if !resources.iter().any(|resource| resource == "*") {
            continue;
        }
        let actions = string_values(statement.get("Action"));
        if actions.iter().any(|action| action == "*") {
            return Some("Allow * on *".to_string());
        }
        if actions
            .iter()
            .any(|action| action.eq_ignore_ascii_case("iam:*"))
        {
            return Some("Allow iam:* on *".to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_url_encoded_document() {
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D";
        let document = decode_document_text(encoded).unwrap();
        assert_eq!(document["Version"], "2012-10-17");
    }

    #[test]
    fn keeps_percent_in_plain_json() {
        let document = decode_document_text(r#"{"Statement":[],"Sid":"50%25"}"#).unwrap();
        assert_eq!(document["Sid"], "50%25");
    }

    #[test]
    fn rejects_invalid_document() {
        let error = decode_document_text("%7Bnot-json").unwrap_err();
        assert!(error.contains("not valid JSON"), "{error}");
    }

    #[test]
    fn trust_lists_every_principal_kind() {
        let document = json!({"Statement": [
            {"Effect": "Allow", "Principal": {"Service": ["ec2.amazonaws.com"], "AWS": "arn:aws:iam::111122223333:root"}},
            {"Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::123456789012:saml-provider/Okta"},
             "Condition": {"StringEquals": {"SAML:aud": "x"}}},
            {"Effect": "Deny", "Principal": "*"}
        ]});
        let principals = trust_principals(&document).expect("readable trust");
        assert_eq!(principals.len(), 3);
        assert!(
            principals
                .iter()
                .any(|p| p.kind == "service" && !p.conditional)
        );
        assert!(
            principals
                .iter()
                .any(|p| p.kind == "federated" && p.conditional)
        );
        assert!(
            principals
                .iter()
                .any(|p| p.kind == "aws" && p.value.contains("111122223333"))
        );
    }

    #[test]
    fn trust_star_principal_is_aws_star() {
        let document = json!({"Statement": {"Effect": "Allow", "Principal": "*"}});
        let principals = trust_principals(&document).expect("readable trust");
        assert_eq!(principals[0].kind, "aws");
        assert_eq!(principals[0].value, "*");
    }

    #[test]
    fn trust_rejects_odd_principal_shapes() {
        let shapes = [
            json!(["arn:aws:iam::999988887777:root"]),
            json!({"AWS": {"Account": "arn:aws:iam::999988887777:root"}}),
            json!({"AWS": 999988887777_u64}),
            json!({"AWS": ["arn:aws:iam::999988887777:root", 7]}),
            json!(12),
        ];
        for shape in shapes {
            let document = json!({"Statement": [{"Effect": "Allow", "Principal": shape}]});
            let error = trust_principals(&document).expect_err("an odd principal is an error");
            assert!(error.contains("Principal"), "{error}");

            if shape.is_array() {
                // Read as a list of principals, which is open trust anyway.
                continue;
            }
            let document = json!({"Statement": [{"Effect": "Allow", "NotPrincipal": shape}]});
            let error = trust_principals(&document).expect_err("an odd principal is an error");
            assert!(error.contains("NotPrincipal"), "{error}");
        }
    }

    #[test]
    fn admin_detects_star_and_iam_star() {
        let star = json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
        let iam = json!({"Statement": [{"Effect": "Allow", "Action": ["s3:Get*", "IAM:*"], "Resource": ["*"]}]});
        let scoped = json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b"}]});
        let denied = json!({"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]});
        assert_eq!(admin_reason(&star).as_deref(), Some("Allow * on *"));
        assert_eq!(admin_reason(&iam).as_deref(), Some("Allow iam:* on *"));
        assert_eq!(admin_reason(&scoped), None);
        assert_eq!(admin_reason(&denied), None);
    }

    #[test]
    fn account_from_arn_and_bare_id() {
        assert_eq!(
            principal_account("arn:aws:iam::111122223333:root"),
            Some("111122223333")
        );
        assert_eq!(principal_account("111122223333"), Some("111122223333"));
        assert_eq!(principal_account("*"), None);
        assert_eq!(
            account_of_arn("arn:aws:iam::aws:policy/AdministratorAccess"),
            None
        );
    }
}
