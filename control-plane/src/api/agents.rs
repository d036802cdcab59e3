//! `/api/v1/agents`: list, inspect, revoke and relabel agents; read their
//! metric series; watch them live (server-sent events).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::BroadcastStream;

use super::{ApiError, ApiJson, SharedState, now_ms};
use crate::fleet::{AgentId, AgentRecord, AgentStatus, LiveEvent, LiveState, ProcessSnapshot};
use crate::labels::Labels;
use crate::metrics::{self, Bucket, ROLLUP_MS, Stat};

const MAX_PAGE: usize = 1000;
const MAX_BUCKETS: i64 = 10_000;
const MAX_RANGE_MS: i64 = 400 * 86_400_000;

#[derive(Serialize)]
pub struct AgentDto {
    id: String,
    project: String,
    hostname: String,
    machine_id: String,
    status: &'static str,
    labels: BTreeMap<String, String>,
    agent_version: String,
    enrolled_at: i64,
    last_seen: Option<i64>,
    revoked_at: Option<i64>,
    facts: crate::fleet::HostFacts,
    #[serde(skip_serializing_if = "Option::is_none")]
    live: Option<LiveDto>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spark: Option<SparkDto>,
    /// Every series the agent reports (from its latest point), on the
    /// single-agent view only.
    #[serde(skip_serializing_if = "Option::is_none")]
    series: Option<Vec<String>>,
}

#[derive(Serialize)]
struct SparkDto {
    ts: Vec<i64>,
    cpu: Vec<f32>,
    mem: Vec<f32>,
    disk: Vec<f32>,
}

#[derive(Serialize)]
struct LiveDto {
    connected_at: i64,
    remote_addr: String,
    outbox_pending: u64,
    latest: Option<PointDto>,
    #[serde(skip_serializing_if = "Option::is_none")]
    processes: Option<ProcessesDto>,
}

#[derive(Serialize)]
pub(super) struct PointDto {
    ts: i64,
    values: BTreeMap<String, f64>,
}

#[derive(Serialize)]
pub(super) struct ProcessesDto {
    ts: i64,
    by_cpu: Vec<ProcessDto>,
    by_memory: Vec<ProcessDto>,
}

#[derive(Serialize)]
struct ProcessDto {
    pid: u32,
    name: String,
    cpu_percent: f32,
    memory_bytes: u64,
}

fn labels_dto(l: &Labels) -> BTreeMap<String, String> {
    l.iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

pub(super) fn point_dto(ts: i64, stats: &[Stat]) -> PointDto {
    PointDto {
        ts,
        values: stats
            .iter()
            .map(|s| (s.series.to_string(), s.avg))
            .collect(),
    }
}

pub(super) fn processes_dto(p: &ProcessSnapshot) -> ProcessesDto {
    let conv = |l: &[crate::fleet::ProcessInfo]| {
        l.iter()
            .map(|i| ProcessDto {
                pid: i.pid,
                name: i.name.clone(),
                cpu_percent: i.cpu_percent,
                memory_bytes: i.memory_bytes,
            })
            .collect()
    };
    ProcessesDto {
        ts: p.ts_ms,
        by_cpu: conv(&p.by_cpu),
        by_memory: conv(&p.by_memory),
    }
}

pub(super) fn agent_dto(
    a: AgentRecord,
    live: Option<&LiveState>,
    with_processes: bool,
) -> AgentDto {
    let status = a.status(live.is_some());
    AgentDto {
        id: a.id.to_string(),
        project: a.project.to_string(),
        hostname: a.facts.hostname.clone(),
        machine_id: a.machine_id,
        status: status.as_str(),
        labels: labels_dto(&a.labels),
        agent_version: a.agent_version,
        enrolled_at: a.enrolled_at_ms,
        last_seen: if status == AgentStatus::Online {
            Some(now_ms())
        } else {
            a.last_seen_ms
        },
        revoked_at: a.revoked_at_ms,
        facts: a.facts,
        series: None,
        spark: live
            .filter(|l| status == AgentStatus::Online && !l.spark.ts.is_empty())
            .map(|l| SparkDto {
                ts: l.spark.ts.clone(),
                cpu: l.spark.cpu.clone(),
                mem: l.spark.mem.clone(),
                disk: l.spark.disk.clone(),
            }),
        live: live
            .filter(|_| status == AgentStatus::Online)
            .map(|l| LiveDto {
                connected_at: l.connected_at_ms,
                remote_addr: l.remote_addr.clone(),
                outbox_pending: l.outbox_pending,
                latest: l.latest.as_ref().map(|p| point_dto(p.ts_ms, &p.stats)),
                processes: if with_processes {
                    l.processes.as_deref().map(processes_dto)
                } else {
                    None
                },
            }),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    project: Option<String>,
    status: Option<String>,
    /// `k=v[,k=v...]`: every label must match.
    label: Option<String>,
    /// Substring of hostname or id, case-insensitive.
    q: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

#[derive(Serialize)]
pub struct Page<T> {
    total: usize,
    offset: usize,
    counts: Counts,
    items: Vec<T>,
}

/// How many agents of the whole fleet are in each state (unfiltered).
#[derive(Serialize, Default)]
pub struct Counts {
    online: usize,
    offline: usize,
    revoked: usize,
}

pub async fn list(
    State(s): State<SharedState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<AgentDto>>, ApiError> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(v) => Some(AgentStatus::parse(v).ok_or_else(|| {
            ApiError::BadRequest("status must be online, offline or revoked".into())
        })?),
    };
    let selector = match q.label.as_deref() {
        None | Some("") => Labels::new(),
        Some(v) => {
            Labels::parse_pairs(v.split(',')).map_err(|e| ApiError::BadRequest(e.to_string()))?
        }
    };
    let needle = q.q.as_deref().unwrap_or("").to_lowercase();
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let offset = q.offset.unwrap_or(0);
    let online: HashMap<AgentId, LiveState> = s.fleet.online().await.into_iter().collect();
    let all = s.store.list_agents().await?;
    let mut counts = Counts::default();
    for a in &all {
        match a.status(online.contains_key(&a.id)) {
            AgentStatus::Online => counts.online += 1,
            AgentStatus::Offline => counts.offline += 1,
            AgentStatus::Revoked => counts.revoked += 1,
        }
    }
    let matching: Vec<AgentRecord> = all
        .into_iter()
        .filter(|a| {
            q.project
                .as_deref()
                .is_none_or(|p| p.is_empty() || a.project.as_str() == p)
        })
        .filter(|a| a.labels.matches(&selector))
        .filter(|a| {
            needle.is_empty()
                || a.facts.hostname.to_lowercase().contains(&needle)
                || a.id.as_str().contains(&needle)
        })
        .filter(|a| status.is_none_or(|st| a.status(online.contains_key(&a.id)) == st))
        .collect();
    let total = matching.len();
    // Only the requested page becomes DTOs.
    let items = matching
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|a| {
            let live = online.get(&a.id);
            agent_dto(a, live, false)
        })
        .collect();
    Ok(Json(Page {
        total,
        offset,
        counts,
        items,
    }))
}

fn parse_id(id: &str) -> Result<AgentId, ApiError> {
    AgentId::parse(id).ok_or(ApiError::NotFound("agent"))
}

pub async fn get(
    State(s): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<AgentDto>, ApiError> {
    let id = parse_id(&id)?;
    let agent = s
        .store
        .get_agent(&id)
        .await?
        .ok_or(ApiError::NotFound("agent"))?;
    let live = s.fleet.get(&id).await.map(|h| h.state.borrow().clone());
    let series: Vec<String> = match live.as_ref().and_then(|l| l.latest.clone()) {
        Some(p) => p.stats.iter().map(|st| st.series.to_string()).collect(),
        None => s
            .store
            .latest_point(&id)
            .await?
            .map(|(_, stats)| stats.into_iter().map(|st| st.series.to_string()).collect())
            .unwrap_or_default(),
    };
    let mut dto = agent_dto(agent, live.as_ref(), true);
    dto.series = Some(series);
    Ok(Json(dto))
}

pub async fn revoke(
    State(s): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<AgentDto>, ApiError> {
    let id = parse_id(&id)?;
    let agent = s
        .store
        .revoke_agent(&id, now_ms())
        .await?
        .ok_or(ApiError::NotFound("agent"))?;
    s.fleet.kick(id.clone()).await;
    s.fleet
        .publish(crate::fleet::FleetEvent::Status { agent: id.clone() });
    tracing::info!(agent_id = %id, "Agent revoked.");
    Ok(Json(agent_dto(agent, None, false)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelsBody {
    labels: BTreeMap<String, String>,
}

pub async fn set_labels(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LabelsBody>,
) -> Result<Json<AgentDto>, ApiError> {
    let id = parse_id(&id)?;
    let mut labels = Labels::new();
    for (k, v) in &body.labels {
        labels
            .insert(k, v)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    if !s.store.set_agent_labels(&id, &labels).await? {
        return Err(ApiError::NotFound("agent"));
    }
    get(State(s), Path(id.to_string())).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsQuery {
    series: String,
    /// Unix milliseconds; default `to - 1h`.
    from: Option<i64>,
    /// Unix milliseconds; default now.
    to: Option<i64>,
    /// Step: `10s`, `1m`, ... or milliseconds; default picks ~300 buckets.
    step: Option<String>,
}

#[derive(Serialize)]
pub struct SeriesDto {
    agent_id: String,
    series: String,
    from: i64,
    to: i64,
    step_ms: i64,
    source: &'static str,
    points: Vec<BucketDto>,
}

#[derive(Serialize)]
struct BucketDto {
    ts: i64,
    min: f64,
    avg: f64,
    max: f64,
}

pub async fn metrics(
    State(s): State<SharedState>,
    Path(id): Path<String>,
    Query(q): Query<MetricsQuery>,
) -> Result<Json<SeriesDto>, ApiError> {
    let id = parse_id(&id)?;
    if q.series.is_empty() || q.series.len() > metrics::MAX_SERIES_NAME {
        return Err(ApiError::BadRequest(
            "series must be 1 to 128 bytes, e.g. cpu or mem.used".into(),
        ));
    }
    let to = q.to.unwrap_or_else(now_ms);
    let from = q.from.unwrap_or(to - 3_600_000);
    if from >= to || to - from > MAX_RANGE_MS {
        return Err(ApiError::BadRequest(
            "from must be before to, and the range at most 400 days".into(),
        ));
    }
    let step_ms = match q.step.as_deref() {
        Some(v) if v.chars().all(|c| c.is_ascii_digit()) => v
            .parse::<i64>()
            .map_err(|_| ApiError::BadRequest("step is not a number".into()))?,
        Some(v) => i64::try_from(
            sovereign_settings::parse_duration(v)
                .map_err(ApiError::BadRequest)?
                .as_millis(),
        )
        .unwrap_or(i64::MAX),
        None => ((to - from) / 300).max(10_000),
    };
    if step_ms < 1000 || (to - from) / step_ms > MAX_BUCKETS {
        return Err(ApiError::BadRequest(format!(
            "step must be at least 1s and give at most {MAX_BUCKETS} points over the range"
        )));
    }
    if s.store.get_agent(&id).await?.is_none() {
        return Err(ApiError::NotFound("agent"));
    }
    let retention_ms = i64::try_from(s.points_retention.as_millis()).unwrap_or(i64::MAX);
    let use_rollups = step_ms >= ROLLUP_MS || from < now_ms() - retention_ms;
    let rows = if use_rollups {
        s.store
            .rollups(&id, from.div_euclid(ROLLUP_MS) * ROLLUP_MS, to)
            .await?
    } else {
        s.store.points(&id, from, to).await?
    };
    let samples = rows.into_iter().filter_map(|(ts, stats)| {
        stats
            .into_iter()
            .find(|st| *st.series == *q.series)
            .map(|st| (ts, st))
    });
    let buckets: Vec<Bucket> = metrics::bucketize(samples, step_ms);
    Ok(Json(SeriesDto {
        agent_id: id.to_string(),
        series: q.series,
        from,
        to,
        step_ms,
        source: if use_rollups { "rollups" } else { "points" },
        points: buckets
            .into_iter()
            .map(|b| BucketDto {
                ts: b.ts_ms,
                min: b.min,
                avg: b.avg,
                max: b.max,
            })
            .collect(),
    }))
}

/// Streams the agent's full-rate samples and process snapshots while the
/// client stays connected; holding this stream open is what makes the
/// control plane ask that agent for 1 s samples.
pub async fn live(
    State(s): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = parse_id(&id)?;
    let handle = s
        .fleet
        .get(&id)
        .await
        .ok_or_else(|| ApiError::Conflict("the agent is offline".into()))?;
    let events = BroadcastStream::new(handle.watch()).filter_map(|ev| async move {
        let ev = ev.ok()?;
        let data = match ev {
            LiveEvent::Points(points) => serde_json::json!({
                "type": "points",
                "points": points.iter().map(|p| point_dto(p.ts_ms, &p.stats)).collect::<Vec<_>>(),
            }),
            LiveEvent::Processes(p) => {
                serde_json::json!({ "type": "processes", "processes": processes_dto(&p) })
            }
        };
        Some(Ok(Event::default().data(data.to_string())))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
