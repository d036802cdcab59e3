//! Layered configuration: defaults < TOML file < environment < command-line
//! flags. Every setting is declared once in a `Spec` table, which is also
//! what the generated documentation is made from, so code and docs cannot
//! drift apart. Every value remembers its origin, so an error can say
//! exactly where the bad value came from.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// One setting: its key in the TOML file (dotted for tables), its
/// environment variable, its default and what it does.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub key: &'static str,
    pub env: &'static str,
    pub flag: Option<&'static str>,
    pub default: &'static str,
    pub help: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(&'static str),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the default"),
            Origin::File(p) => write!(f, "config file {}", p.display()),
            Origin::Env(v) => write!(f, "environment variable {v}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("unknown setting {key:?} in config file {path}; known settings: {known}")]
    UnknownKey {
        key: String,
        path: PathBuf,
        known: String,
    },
    #[error("invalid value {value:?} for {key} (from {origin}): {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        origin: Origin,
        reason: String,
    },
}

/// The merged settings.
#[derive(Debug, Clone)]
pub struct Layers {
    values: BTreeMap<&'static str, (String, Origin)>,
}

/// Reads the environment through a function, so tests never touch the
/// process environment.
pub type EnvSource<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Layers {
    /// Merges the layers. `flags` holds (key, value) pairs the caller parsed.
    pub fn load(
        specs: &'static [Spec],
        file: Option<&Path>,
        env: EnvSource<'_>,
        flags: &[(&'static str, String)],
    ) -> Result<Self, SettingsError> {
        let mut values: BTreeMap<&'static str, (String, Origin)> = specs
            .iter()
            .map(|s| (s.key, (s.default.to_owned(), Origin::Default)))
            .collect();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| SettingsError::File {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
            let table: toml::Table =
                text.parse()
                    .map_err(|e: toml::de::Error| SettingsError::File {
                        path: path.to_owned(),
                        reason: e.to_string(),
                    })?;
            let mut flat = Vec::new();
            flatten("", &toml::Value::Table(table), &mut flat);
            for (key, value) in flat {
                let Some(spec) = specs.iter().find(|s| s.key == key) else {
                    return Err(SettingsError::UnknownKey {
                        key,
                        path: path.to_owned(),
                        known: specs.iter().map(|s| s.key).collect::<Vec<_>>().join(", "),
                    });
                };
                values.insert(spec.key, (value, Origin::File(path.to_owned())));
            }
        }
        for spec in specs {
            if let Some(v) = env(spec.env) {
                values.insert(spec.key, (v, Origin::Env(spec.env)));
            }
        }
        for (key, value) in flags {
            let flag = specs
                .iter()
                .find(|s| s.key == *key)
                .and_then(|s| s.flag)
                .unwrap_or(key);
            values.insert(key, (value.clone(), Origin::Flag(flag)));
        }
        Ok(Self { values })
    }

    /// The raw value and where it came from.
    pub fn raw(&self, key: &'static str) -> (&str, &Origin) {
        self.values
            .get(key)
            .map(|(v, o)| (v.as_str(), o))
            .unwrap_or(("", &Origin::Default))
    }

    /// Parses a value with `FromStr`.
    pub fn get<T>(&self, key: &'static str) -> Result<T, SettingsError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.parse(key, |v| v.parse::<T>().map_err(|e| e.to_string()))
    }

    /// Parses a value with a custom function whose error says what is wrong.
    pub fn parse<T>(
        &self,
        key: &'static str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, SettingsError> {
        let (value, origin) = self.raw(key);
        f(value).map_err(|reason| self.invalid(key, reason, value, origin))
    }

    pub fn duration(&self, key: &'static str) -> Result<Duration, SettingsError> {
        self.parse(key, parse_duration)
    }

    /// A comma-separated list; empty items are dropped.
    pub fn list(&self, key: &'static str) -> Vec<String> {
        self.raw(key)
            .0
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// An error about `key` for a check the caller made after parsing.
    pub fn error(&self, key: &'static str, reason: impl Into<String>) -> SettingsError {
        let (value, origin) = self.raw(key);
        self.invalid(key, reason.into(), value, origin)
    }

    fn invalid(
        &self,
        key: &'static str,
        reason: String,
        value: &str,
        origin: &Origin,
    ) -> SettingsError {
        SettingsError::Invalid {
            key,
            value: value.chars().take(200).collect(),
            origin: origin.clone(),
            reason,
        }
    }
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        toml::Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        toml::Value::Array(items) => {
            let joined = items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",");
            out.push((prefix.to_owned(), joined));
        }
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

/// Parses `500ms`, `10s`, `5m`, `24h`, `30d` (a bare number means seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| "expected a duration such as 500ms, 10s, 5m, 24h or 30d".to_owned())?;
    let ms = match unit.trim() {
        "ms" => n,
        "" | "s" => n.saturating_mul(1000),
        "m" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        "d" => n.saturating_mul(86_400_000),
        other => return Err(format!("unknown unit {other:?}: use ms, s, m, h or d")),
    };
    Ok(Duration::from_millis(ms))
}

/// Parses sizes such as `64MiB`, `512KiB`, `1GiB` or plain bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| "expected a size such as 65536, 512KiB, 64MiB or 1GiB".to_owned())?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        other => return Err(format!("unknown unit {other:?}: use KiB, MiB or GiB")),
    };
    Ok(n.saturating_mul(mult))
}

/// The reference page for a binary's settings, generated from its specs.
pub fn render_markdown(title: &str, intro: &str, specs: &[Spec]) -> String {
    let mut out = format!(
        "# {title}\n\n{intro}\n\n| key (TOML) | environment | flag | default | meaning |\n|---|---|---|---|---|\n"
    );
    for s in specs {
        let default = if s.default.is_empty() {
            "—".to_owned()
        } else {
            format!("`{}`", s.default)
        };
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} | {} |\n",
            s.key,
            s.env,
            s.flag
                .map(|f| format!("`{f}`"))
                .unwrap_or_else(|| "—".into()),
            default,
            s.help
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    static SPECS: &[Spec] = &[
        Spec {
            key: "grpc.listen",
            env: "T_GRPC_LISTEN",
            flag: Some("--grpc-listen"),
            default: "0.0.0.0:7443",
            help: "x",
        },
        Spec {
            key: "names",
            env: "T_NAMES",
            flag: None,
            default: "",
            help: "y",
        },
        Spec {
            key: "ttl",
            env: "T_TTL",
            flag: None,
            default: "24h",
            help: "z",
        },
    ];

    #[test]
    fn layers_override_in_order_and_errors_name_the_origin() {
        let dir = std::env::temp_dir().join(format!("settings-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "names = [\"a\", \"b\"]\nttl = \"1h\"\n[grpc]\nlisten = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let env = |k: &str| (k == "T_TTL").then(|| "bogus".to_owned());
        let l = Layers::load(
            SPECS,
            Some(&file),
            &env,
            &[("grpc.listen", "127.0.0.1:2".into())],
        )
        .unwrap();
        assert_eq!(
            l.get::<std::net::SocketAddr>("grpc.listen").unwrap().port(),
            2
        );
        assert_eq!(l.list("names"), vec!["a", "b"]);
        let err = l.duration("ttl").unwrap_err().to_string();
        assert!(err.contains("T_TTL") && err.contains("bogus"), "{err}");

        std::fs::write(&file, "nope = 1\n").unwrap();
        let err = Layers::load(SPECS, Some(&file), &|_| None, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope") && err.contains("grpc.listen"), "{err}");
        std::fs::write(&file, "this is = not toml [").unwrap();
        assert!(matches!(
            Layers::load(SPECS, Some(&file), &|_| None, &[]),
            Err(SettingsError::File { .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert!(parse_size("lots").is_err());
    }
}
