//! Validation of the remote-work settings: `exec.*` and `terminal.*`.

use std::path::Path;
use std::time::Duration;

use sovereign_settings::{Layers, SettingsError};

use crate::{exec, terminal};

/// A number in `lo..=hi`.
fn count(l: &Layers, key: &'static str, lo: u64, hi: u64) -> Result<u64, SettingsError> {
    l.parse(key, |v| match v.trim().parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(format!("must be a whole number from {lo} to {hi}")),
    })
}

fn within(
    l: &Layers,
    key: &'static str,
    lo: Duration,
    hi: Duration,
    what: &str,
) -> Result<Duration, SettingsError> {
    let d = l.duration(key)?;
    if d < lo || d > hi {
        return Err(l.error(key, format!("must be between {what}")));
    }
    Ok(d)
}

pub(super) fn exec(l: &Layers) -> Result<exec::Settings, SettingsError> {
    let max_output_bytes = l.parse("exec.max_output_bytes", sovereign_settings::parse_size)?;
    if !(1024..=256 << 20).contains(&max_output_bytes) {
        return Err(l.error("exec.max_output_bytes", "must be between 1KiB and 256MiB"));
    }
    Ok(exec::Settings {
        default_timeout: within(
            l,
            "exec.default_timeout",
            Duration::from_secs(1),
            Duration::from_secs(24 * 3600),
            "1s and 24h",
        )?,
        max_output_bytes,
        max_concurrent: count(l, "exec.max_concurrent", 1, 256)? as usize,
        history: count(l, "exec.history", 100, 1_000_000)? as usize,
    })
}

pub(super) fn terminal(
    l: &Layers,
    text: &dyn Fn(&'static str, usize) -> Result<String, SettingsError>,
) -> Result<terminal::Settings, SettingsError> {
    let shell = text("terminal.shell", 4096)?;
    if !shell.is_empty() && !Path::new(&shell).is_absolute() {
        return Err(l.error("terminal.shell", "must be an absolute path"));
    }
    let user = text("terminal.user", 64)?;
    if user.contains(['/', ':', ' ']) {
        return Err(l.error("terminal.user", "must be a user name"));
    }
    let replay_bytes = l.parse("terminal.replay_bytes", sovereign_settings::parse_size)?;
    if !(64 << 10..=64 << 20).contains(&replay_bytes) {
        return Err(l.error("terminal.replay_bytes", "must be between 64KiB and 64MiB"));
    }
    Ok(terminal::Settings {
        shell,
        user,
        idle_timeout: within(
            l,
            "terminal.idle_timeout",
            Duration::from_secs(1),
            Duration::from_secs(7 * 86400),
            "1s and 7d",
        )?,
        replay_bytes: replay_bytes as usize,
        max_sessions: count(l, "terminal.max_sessions", 1, 256)? as usize,
    })
}
