//! Google Cloud: one scope per project, collected from the IAM and Cloud
//! Resource Manager APIs or read from `gcloud` exports.

pub mod api;
pub mod client;
pub mod export;
pub mod inventory;
pub mod records;

/// Returns true for a project id: 6 to 30 lowercase letters, digits and
/// hyphens, starting with a letter and not ending with a hyphen, optionally
/// after a `domain:` prefix as older projects have (`example.com:tools`).
pub fn is_project_id(text: &str) -> bool {
    let (domain, id) = match text.split_once(':') {
        Some((domain, id)) => (Some(domain), id),
        None => (None, text),
    };
    let domain_ok = domain.is_none_or(|domain| {
        !domain.is_empty()
            && domain
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    });
    let bytes = id.as_bytes();
    domain_ok
        && (6..=30).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::is_project_id;

    #[test]
    fn project_ids_are_checked() {
        for good in ["demo-project", "abc123", "example.com:tools-1"] {
            assert!(is_project_id(good), "{good}");
        }
        for bad in [
            "short",
            "Demo-project",
            "1project",
            "project-",
            "a/../b-cd",
            "",
            ":abcdef",
            "demo project",
        ] {
            assert!(!is_project_id(bad), "{bad}");
        }
    }
}
