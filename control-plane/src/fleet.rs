//! The fleet: who the agents are (records in the store) and which of them are
//! connected right now (the live registry).

mod registry;

pub use registry::{
    Fleet, FleetEvent, LiveEvent, LiveState, ProcessInfo, ProcessSnapshot, Push, SPARK_LEN,
    SessionHandle, Spark, spawn_registry,
};

use crate::labels::Labels;
use crate::projects::ProjectId;

uuid_id!(
    /// An agent's id: a UUID (v7, so ids sort by enrollment time). It is the
    /// common name of every certificate the agent holds.
    AgentId
);

/// What an agent reports about its host. Stored as JSON; every field is
/// length-limited on the way in (`HostFacts::sanitized`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct HostFacts {
    pub hostname: String,
    pub os_name: String,
    pub os_version: String,
    pub kernel_version: String,
    pub arch: String,
    pub cpu_model: String,
    pub cpu_cores: u32,
    pub memory_total_bytes: u64,
    pub boot_time_ms: i64,
    pub container: String,
}

const MAX_FACT_LEN: usize = 255;

impl HostFacts {
    /// Cuts every text field to a sane length and drops control characters,
    /// so a hostile agent cannot bloat rows or smuggle terminal escapes.
    pub fn sanitized(mut self) -> Self {
        for field in [
            &mut self.hostname,
            &mut self.os_name,
            &mut self.os_version,
            &mut self.kernel_version,
            &mut self.arch,
            &mut self.cpu_model,
            &mut self.container,
        ] {
            *field = field
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_FACT_LEN)
                .collect();
        }
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStatus {
    Online,
    Offline,
    Revoked,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "online" => Some(Self::Online),
            "offline" => Some(Self::Offline),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }
}

/// An enrolled agent as the store knows it.
#[derive(Debug, Clone)]
pub struct AgentRecord {
    pub id: AgentId,
    pub project: ProjectId,
    pub machine_id: String,
    pub facts: HostFacts,
    pub labels: Labels,
    pub agent_version: String,
    pub enrolled_at_ms: i64,
    pub last_seen_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    /// Highest metric batch seq stored for this agent.
    pub acked_seq: u64,
}

impl AgentRecord {
    pub fn status(&self, online: bool) -> AgentStatus {
        if self.revoked_at_ms.is_some() {
            AgentStatus::Revoked
        } else if online {
            AgentStatus::Online
        } else {
            AgentStatus::Offline
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_only_uuids() {
        let id = AgentId::new();
        assert_eq!(AgentId::parse(id.as_str()), Some(id));
        assert_eq!(AgentId::parse("../../etc"), None);
        assert_eq!(AgentId::parse(""), None);
    }

    #[test]
    fn facts_are_sanitized() {
        let f = HostFacts {
            hostname: format!("a\u{1b}[31mb{}", "x".repeat(1000)),
            ..HostFacts::default()
        }
        .sanitized();
        assert!(f.hostname.starts_with("a[31mb"));
        assert_eq!(f.hostname.chars().count(), MAX_FACT_LEN);
    }
}
