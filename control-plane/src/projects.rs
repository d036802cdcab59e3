//! Projects group agents and join tokens. A `default` project always exists.

use std::fmt;

/// A project's id: a short slug (`[a-z0-9-]`, 1–63 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectId(String);

pub const DEFAULT_PROJECT: &str = "default";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid project name {0:?}: use 1 to 63 lowercase letters, digits or '-', starting with a letter or digit"
)]
pub struct InvalidProject(pub String);

impl ProjectId {
    pub fn parse(s: &str) -> Result<Self, InvalidProject> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidProject(s.chars().take(80).collect()))
        }
    }

    pub fn default_project() -> Self {
        Self(DEFAULT_PROJECT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone)]
pub struct Project {
    pub id: ProjectId,
    pub created_at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(ProjectId::parse("default").is_ok());
        assert!(ProjectId::parse("web-2").is_ok());
        for bad in ["", "-x", "Upper", "a b", "a/b", &"x".repeat(64), "<script>"] {
            assert!(ProjectId::parse(bad).is_err(), "{bad}");
        }
    }
}
