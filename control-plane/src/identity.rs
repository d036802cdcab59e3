//! People: users, password hashing (argon2id), sign-in with lockout, and
//! browser sessions with CSRF tokens. Roles are stored per organization or
//! project (`memberships`) so RBAC, TOTP and single sign-on can grow here.

use std::fmt;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use sha2::{Digest, Sha256};

use crate::store::{Store, StoreError};

/// Failed sign-ins that lock a username.
pub const MAX_FAILURES: i64 = 5;
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);
pub const MAX_USERNAME: usize = 64;
pub const MIN_PASSWORD: usize = 12;
pub const MAX_PASSWORD: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Organization- or project-level role, most powerful first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Owner,
    Admin,
    Operator,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Self::Owner),
            "admin" => Some(Self::Admin),
            "operator" => Some(Self::Operator),
            "viewer" => Some(Self::Viewer),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub role: Role,
    pub created_at_ms: i64,
}

/// A password as typed. Never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// A random password for a new or reset account, shown to the admin once.
    pub fn generate() -> Self {
        const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let bytes: [u8; 20] = rand::random();
        Self(
            bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
                .collect(),
        )
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn validate(&self) -> Result<(), IdentityError> {
        let n = self.0.chars().count();
        if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
            return Err(IdentityError::WeakPassword);
        }
        Ok(())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A session's bearer secret (the cookie value). Only its hash is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSecret(String);

impl SessionSecret {
    pub fn generate() -> Self {
        Self(hex::encode(rand::random::<[u8; 32]>()))
    }

    pub fn from_cookie(s: &str) -> Self {
        Self(s.to_owned())
    }

    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A signed-in browser session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: String,
    pub user: User,
    pub csrf_token: String,
    pub authenticated_at_ms: i64,
    pub last_seen_ms: i64,
    pub expires_at_ms: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// A session unused this long expires.
    pub idle: Duration,
    /// No session outlives this.
    pub max: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("too many failed sign-ins: try again in {} minute(s)", .0.as_secs().div_ceil(60).max(1))]
    Locked(Duration),
    #[error("username must be 1 to {MAX_USERNAME} letters, digits, '.', '_', '-' or '@'")]
    BadUsername,
    #[error("password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")]
    WeakPassword,
    #[error("user {0:?} already exists")]
    Exists(String),
    #[error("no user {0:?}")]
    NoSuchUser(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Lowercases and checks a username.
pub fn normalize_username(s: &str) -> Result<String, IdentityError> {
    let s = s.trim().to_lowercase();
    let ok = !s.is_empty()
        && s.chars().count() <= MAX_USERNAME
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(s)
    } else {
        Err(IdentityError::BadUsername)
    }
}

pub fn hash_password(p: &Password) -> Result<String, IdentityError> {
    Argon2::default()
        .hash_password(p.expose().as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| IdentityError::Hash(e.to_string()))
}

pub fn verify_password(p: &Password, stored: &str) -> bool {
    Argon2::default()
        .verify_password(p.expose().as_bytes(), stored)
        .is_ok()
}

/// A real argon2id hash of a random password, verified against when the
/// username does not exist so both cases cost the same time.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&Password::generate()).unwrap_or_default())
}

/// Creates a user with a role in the whole organization.
pub async fn create_user(
    store: &Store,
    username: &str,
    password: &Password,
    role: Role,
    now_ms: i64,
) -> Result<User, IdentityError> {
    let username = normalize_username(username)?;
    password.validate()?;
    let hash = hash_password(password)?;
    let user = User {
        id: UserId::new(),
        username,
        role,
        created_at_ms: now_ms,
    };
    store.create_user(&user, &hash).await?;
    Ok(user)
}

pub async fn reset_password(
    store: &Store,
    username: &str,
    password: &Password,
) -> Result<(), IdentityError> {
    let username = normalize_username(username)?;
    password.validate()?;
    let hash = hash_password(password)?;
    if !store.set_password(&username, &hash).await? {
        return Err(IdentityError::NoSuchUser(username));
    }
    store.clear_login_failures(&username).await?;
    Ok(())
}

/// Checks a username and password. Five failures lock the username for 15
/// minutes, whether or not it exists; an unknown user and a wrong password
/// give the same error after the same work.
pub async fn sign_in(
    store: &Store,
    username: &str,
    password: &Password,
    now_ms: i64,
) -> Result<User, IdentityError> {
    let Ok(username) = normalize_username(username) else {
        let _ = verify_password(password, dummy_hash());
        return Err(IdentityError::InvalidCredentials);
    };
    if let Some(until) = store.locked_until(&username, now_ms).await? {
        return Err(IdentityError::Locked(Duration::from_millis(
            u64::try_from(until - now_ms).unwrap_or(0),
        )));
    }
    let found = store.user_with_hash(&username).await?;
    let ok = match &found {
        Some((_, Some(hash))) => verify_password(password, hash),
        _ => {
            let _ = verify_password(password, dummy_hash());
            false
        }
    };
    match found {
        Some((user, _)) if ok => {
            store.clear_login_failures(&username).await?;
            Ok(user)
        }
        _ => {
            let lock_ms = i64::try_from(LOCKOUT.as_millis()).unwrap_or(i64::MAX);
            if let Some(until) = store
                .record_login_failure(&username, now_ms, MAX_FAILURES, lock_ms)
                .await?
            {
                tracing::warn!(username = %username, until_ms = until, "Sign-in locked after repeated failures.");
            }
            Err(IdentityError::InvalidCredentials)
        }
    }
}

/// Opens a session for a user who just proved who they are.
pub async fn open_session(
    store: &Store,
    user: &User,
    policy: SessionPolicy,
    remote_addr: &str,
    user_agent: &str,
    now_ms: i64,
) -> Result<(SessionSecret, Session), IdentityError> {
    let secret = SessionSecret::generate();
    let idle = i64::try_from(policy.idle.as_millis()).unwrap_or(i64::MAX);
    let session = Session {
        id_hash: secret.hash(),
        user: user.clone(),
        csrf_token: hex::encode(rand::random::<[u8; 32]>()),
        authenticated_at_ms: now_ms,
        last_seen_ms: now_ms,
        expires_at_ms: now_ms.saturating_add(idle),
    };
    let ua: String = user_agent
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    store
        .create_session(&session, "password", remote_addr, &ua)
        .await?;
    Ok((secret, session))
}

/// Finds a live session and slides its idle expiry (at most once a minute,
/// never past the absolute maximum).
pub async fn resume_session(
    store: &Store,
    secret: &SessionSecret,
    policy: SessionPolicy,
    now_ms: i64,
) -> Result<Option<Session>, IdentityError> {
    let Some(mut session) = store.session(&secret.hash(), now_ms).await? else {
        return Ok(None);
    };
    if now_ms - session.last_seen_ms > 60_000 {
        let idle = i64::try_from(policy.idle.as_millis()).unwrap_or(i64::MAX);
        let max = i64::try_from(policy.max.as_millis()).unwrap_or(i64::MAX);
        let expires = now_ms
            .saturating_add(idle)
            .min(session.authenticated_at_ms.saturating_add(max));
        store
            .touch_session(&session.id_hash, now_ms, expires)
            .await?;
        session.last_seen_ms = now_ms;
        session.expires_at_ms = expires;
    }
    Ok(Some(session))
}

/// Compares secrets in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_verify_and_never_print() {
        let p = Password::new("correct horse battery");
        let h = hash_password(&p).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&p, &h));
        assert!(!verify_password(&Password::new("wrong horse battery"), &h));
        assert!(!verify_password(&p, "not a hash"));
        assert_eq!(format!("{p:?}"), "[redacted]");
        assert_eq!(Password::generate().expose().len(), 20);
        assert!(Password::new("short").validate().is_err());
    }

    #[test]
    fn usernames_are_normalized() {
        assert_eq!(normalize_username(" Admin ").unwrap(), "admin");
        assert!(normalize_username("a b").is_err());
        assert!(normalize_username("<script>").is_err());
        assert!(normalize_username("").is_err());
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
