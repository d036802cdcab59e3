//! The agent's state directory: its private key (0600), certificate, the
//! control plane's CA, who it is (`agent.toml`) and the outbox. Every file
//! is replaced atomically, so a crash never leaves a half-written key.

use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot use {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "this agent is not enrolled yet (no {0}): run `sovereign-agent enroll --server URL --token TOKEN --ca-sha256 HASH` first"
    )]
    NotEnrolled(PathBuf),
    #[error("{path} is damaged: {reason}; re-enroll the agent")]
    Corrupt { path: PathBuf, reason: String },
}

/// Who this agent is, as the control plane told it at enrollment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub agent_id: String,
    pub project: String,
    pub server: String,
    /// When the current certificate was received (Unix ms): renewal is
    /// measured from here, not from the certificate's backdated start.
    pub cert_received_ms: i64,
    pub cert_not_after_ms: i64,
    /// The hostname given at enrollment (`--hostname`), kept for every run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// Everything needed to open the mutual-TLS stream.
#[derive(Clone)]
pub struct Credentials {
    pub identity: Identity,
    pub ca_der: Vec<u8>,
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("identity", &self.identity)
            .field("key_der", &"[redacted]")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.to_owned(),
            source,
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
                |source| StateError::Io {
                    path: dir.to_owned(),
                    source,
                },
            )?;
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.dir.join("outbox")
    }

    pub fn load(&self) -> Result<Credentials, StateError> {
        let id_path = self.dir.join("agent.toml");
        if !id_path.exists() {
            return Err(StateError::NotEnrolled(id_path));
        }
        let text = self.read_string(&id_path)?;
        let identity: Identity = toml::from_str(&text).map_err(|e| StateError::Corrupt {
            path: id_path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Credentials {
            identity,
            ca_der: self.read(&self.dir.join("ca.der"))?,
            cert_der: self.read(&self.dir.join("cert.der"))?,
            key_der: self.read(&self.dir.join("key.der"))?,
        })
    }

    /// Saves a complete set of credentials; the key is written first and the
    /// identity last, so a crash midway leaves the previous identity usable
    /// or no identity at all — never a mismatched pair that looks complete.
    pub fn save(&self, c: &Credentials) -> Result<(), StateError> {
        self.write(&self.dir.join("key.der"), &c.key_der, 0o600)?;
        self.write(&self.dir.join("cert.der"), &c.cert_der, 0o644)?;
        self.write(&self.dir.join("ca.der"), &c.ca_der, 0o644)?;
        let text = toml::to_string(&c.identity).map_err(|e| StateError::Corrupt {
            path: self.dir.join("agent.toml"),
            reason: e.to_string(),
        })?;
        self.write(&self.dir.join("agent.toml"), text.as_bytes(), 0o644)
    }

    /// The machine's stable id: `override_id`, else /etc/machine-id (or the
    /// D-Bus copy), else one generated once and kept in the state dir.
    pub fn machine_id(&self, override_id: &str) -> Result<String, StateError> {
        if !override_id.trim().is_empty() {
            return Ok(override_id.trim().to_owned());
        }
        for candidate in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
            if let Ok(s) = std::fs::read_to_string(candidate) {
                let s = s.trim();
                if s.len() >= 16 && s.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Ok(s.to_owned());
                }
            }
        }
        let path = self.dir.join("machine-id");
        if let Ok(s) = std::fs::read_to_string(&path)
            && !s.trim().is_empty()
        {
            return Ok(s.trim().to_owned());
        }
        let id = hex::encode(rand::random::<[u8; 16]>());
        self.write(&path, id.as_bytes(), 0o644)?;
        Ok(id)
    }

    fn read(&self, path: &Path) -> Result<Vec<u8>, StateError> {
        std::fs::read(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => StateError::NotEnrolled(path.to_owned()),
            _ => StateError::Io {
                path: path.to_owned(),
                source,
            },
        })
    }

    fn read_string(&self, path: &Path) -> Result<String, StateError> {
        std::fs::read_to_string(path).map_err(|source| StateError::Io {
            path: path.to_owned(),
            source,
        })
    }

    fn write(&self, path: &Path, data: &[u8], mode: u32) -> Result<(), StateError> {
        let err = |source| StateError::Io {
            path: path.to_owned(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut f = options.open(&tmp).map_err(err)?;
        f.write_all(data).map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_and_private_key_mode() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        assert!(matches!(s.load(), Err(StateError::NotEnrolled(_))));
        let c = Credentials {
            identity: Identity {
                agent_id: "a".into(),
                project: "default".into(),
                server: "https://x:1".into(),
                cert_received_ms: 1,
                cert_not_after_ms: 2,
                hostname: None,
            },
            ca_der: vec![1],
            cert_der: vec![2],
            key_der: vec![3],
        };
        s.save(&c).unwrap();
        let back = s.load().unwrap();
        assert_eq!(back.identity, c.identity);
        assert_eq!(back.key_der, vec![3]);
        assert!(!format!("{back:?}").contains("[3]"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("key.der"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn machine_id_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        assert_eq!(s.machine_id("custom").unwrap(), "custom");
        let a = s.machine_id("").unwrap();
        assert_eq!(a, s.machine_id("").unwrap());
    }
}
