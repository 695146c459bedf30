//! Shell-style name patterns for rules: `*` matches any run of characters
//! (`/` included, and none at all), `?` matches one character, and every
//! other character matches itself, case-sensitively. There are no
//! character classes and no escapes.

use std::fmt;

/// A compiled `*` and `?` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: Vec<char>,
    text: String,
}

impl Glob {
    /// Compiles a pattern; an empty pattern is an error, since it would
    /// match only the empty name.
    pub fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("is empty; give a pattern such as \"ci-*\"".to_string());
        }
        Ok(Glob {
            pattern: pattern.chars().collect(),
            text: pattern.to_string(),
        })
    }

    /// Returns true when the whole of `text` matches the pattern.
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let (mut p, mut t) = (0, 0);
        // Where the last `*` was, and the text position it now stands for.
        let mut star: Option<(usize, usize)> = None;

        while t < text.len() {
            match self.pattern.get(p) {
                Some('*') => {
                    star = Some((p, t));
                    p += 1;
                }
                Some('?') => {
                    p += 1;
                    t += 1;
                }
                Some(c) if *c == text[t] => {
                    p += 1;
                    t += 1;
                }
                // On a mismatch, let the last `*` take one more character.
                _ => match star {
                    Some((star_p, star_t)) => {
                        p = star_p + 1;
                        t = star_t + 1;
                        star = Some((star_p, star_t + 1));
                    }
                    None => return false,
                },
            }
        }
        self.pattern[p..].iter().all(|c| *c == '*')
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).expect("valid pattern").matches(text)
    }

    #[test]
    fn star_and_question_mark() {
        assert!(matches("ci-*", "ci-deploy"));
        assert!(matches("ci-*", "ci-"));
        assert!(matches("*-prod", "api-prod"));
        assert!(matches("*deploy*", "ci-deploy-prod"));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(matches("1234567890??", "123456789012"));
        assert!(matches("*", ""));
        assert!(matches("**", "anything/with/slashes"));
    }

    #[test]
    fn mismatches() {
        assert!(!matches("ci-*", "evil-ci-deploy"));
        assert!(!matches("ci-*", "CI-deploy"));
        assert!(!matches("*-prod", "api-prod-2"));
        assert!(!matches("1234567890??", "1234567890123"));
        assert!(!matches("a*b*c", "aXbYbZ"));
        assert!(!matches("deploy", "deploy2"));
    }

    #[test]
    fn other_characters_are_literal() {
        assert!(matches("[abc]", "[abc]"));
        assert!(!matches("[abc]", "a"));
        assert!(matches("name.with.dots", "name.with.dots"));
        assert!(!matches("name.with.dots", "nameXwithXdots"));
    }

    #[test]
    fn empty_pattern_is_rejected() {
        assert!(Glob::new("").is_err());
    }
}
