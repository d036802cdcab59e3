//! Labels: small `key=value` maps attached to agents and join tokens.

use std::collections::BTreeMap;

pub const MAX_LABELS: usize = 32;
const MAX_KEY: usize = 63;
const MAX_VALUE: usize = 255;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(BTreeMap<String, String>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LabelError {
    #[error("label {0:?} is not of the form key=value")]
    Form(String),
    #[error(
        "label key {0:?} is invalid: use 1 to 63 letters, digits, '.', '_', '-' or '/', starting with a letter or digit"
    )]
    Key(String),
    #[error("the value of label {0:?} is longer than 255 characters or has control characters")]
    Value(String),
    #[error("too many labels: at most {MAX_LABELS}")]
    TooMany,
}

impl Labels {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `k=v` strings, as given on a command line.
    pub fn parse_pairs<'a>(pairs: impl IntoIterator<Item = &'a str>) -> Result<Self, LabelError> {
        let mut labels = Self::new();
        for pair in pairs {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| LabelError::Form(pair.chars().take(80).collect()))?;
            labels.insert(k, v)?;
        }
        Ok(labels)
    }

    pub fn insert(&mut self, key: &str, value: &str) -> Result<(), LabelError> {
        let key_ok = !key.is_empty()
            && key.len() <= MAX_KEY
            && key
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
        if !key_ok {
            return Err(LabelError::Key(key.chars().take(80).collect()));
        }
        if value.chars().count() > MAX_VALUE || value.chars().any(char::is_control) {
            return Err(LabelError::Value(key.to_owned()));
        }
        if !self.0.contains_key(key) && self.0.len() >= MAX_LABELS {
            return Err(LabelError::TooMany);
        }
        self.0.insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    /// Adds every label of `other` that `self` does not have yet.
    pub fn merge_missing(&mut self, other: &Labels) {
        for (k, v) in &other.0 {
            if self.0.len() >= MAX_LABELS {
                break;
            }
            self.0.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every label of `selector` is present with the same value.
    pub fn matches(&self, selector: &Labels) -> bool {
        selector.iter().all(|(k, v)| self.get(k) == Some(v))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Reads labels stored by `to_json`; anything unreadable yields no labels.
    pub fn from_json(s: &str) -> Self {
        Self(serde_json::from_str(s).unwrap_or_default())
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let l = Labels::parse_pairs(["env=prod", "team/owner=ops", "empty="]).unwrap();
        assert_eq!(l.get("env"), Some("prod"));
        assert_eq!(l.get("empty"), Some(""));
        assert!(matches!(
            Labels::parse_pairs(["novalue"]),
            Err(LabelError::Form(_))
        ));
        assert!(matches!(
            Labels::parse_pairs(["-x=1"]),
            Err(LabelError::Key(_))
        ));
        assert!(matches!(
            Labels::parse_pairs(["a b=1"]),
            Err(LabelError::Key(_))
        ));
        assert!(matches!(
            Labels::parse_pairs(["k=a\nb"]),
            Err(LabelError::Value(_))
        ));
        let many: Vec<String> = (0..=MAX_LABELS).map(|i| format!("k{i}=v")).collect();
        assert_eq!(
            Labels::parse_pairs(many.iter().map(String::as_str)),
            Err(LabelError::TooMany)
        );
    }

    #[test]
    fn json_round_trip_and_match() {
        let l = Labels::parse_pairs(["env=prod", "html=<b>x</b>"]).unwrap();
        let back = Labels::from_json(&l.to_json());
        assert_eq!(back, l);
        assert!(l.matches(&Labels::parse_pairs(["env=prod"]).unwrap()));
        assert!(!l.matches(&Labels::parse_pairs(["env=dev"]).unwrap()));
    }
}
