//! Host metrics on the control plane: the domain types, their compact storage
//! encoding, and how a series is read back over a time range with a step.
//!
//! Agents send one `Point` per summary window (10 s by default), carrying every
//! series of the host. Points are stored whole, keyed by (agent, timestamp),
//! which is what makes a re-sent batch a no-op; 1-minute rollups are derived
//! from the stored points.

mod ingest;

use std::sync::Arc;

pub use ingest::{Ingest, IngestJob, spawn_ingest};

/// Longest accepted series name, in bytes.
pub const MAX_SERIES_NAME: usize = 128;
/// Most series accepted in one point.
pub const MAX_SERIES_PER_POINT: usize = 1024;
/// Most points accepted in one batch.
pub const MAX_POINTS_PER_BATCH: usize = 512;
pub const ROLLUP_MS: i64 = 60_000;

/// Interns series names so thousands of agents reporting `cpu` or
/// `mem.used` share one allocation per name. Bounded; past the bound names
/// are simply not shared. The lock is held for a hash lookup only.
#[derive(Debug, Default)]
pub struct Names {
    set: std::sync::Mutex<std::collections::HashSet<Arc<str>>>,
}

const MAX_INTERNED: usize = 100_000;

impl Names {
    pub fn intern(&self, name: String) -> Arc<str> {
        let Ok(mut set) = self.set.lock() else {
            return name.into();
        };
        if let Some(shared) = set.get(name.as_str()) {
            return shared.clone();
        }
        let shared: Arc<str> = name.into();
        if set.len() < MAX_INTERNED {
            set.insert(shared.clone());
        }
        shared
    }
}

/// One series' summary over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Stat {
    /// Shared: most hosts report the same names (see `Names`).
    pub series: Arc<str>,
    pub min: f64,
    pub avg: f64,
    pub max: f64,
    /// Milliseconds of observation behind this stat, used to weight averages.
    pub weight: f64,
}

/// Every series of one host, summarised over the window ending at `ts_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub ts_ms: i64,
    pub interval_ms: u32,
    pub stats: Vec<Stat>,
}

/// A value of one series over one step of a query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub ts_ms: i64,
    pub min: f64,
    pub avg: f64,
    pub max: f64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetricsError {
    #[error("a point holds at most {MAX_SERIES_PER_POINT} series")]
    TooManySeries,
    #[error(
        "series name {0:?} is empty, longer than {MAX_SERIES_NAME} bytes or has control characters"
    )]
    BadSeriesName(String),
    #[error("point timestamp {0} is not a plausible time")]
    BadTimestamp(i64),
    #[error("series {0:?} has a value that is not a finite number")]
    NotFinite(String),
}

impl Point {
    /// Checks what an agent sent before anything is stored.
    pub fn validate(&self) -> Result<(), MetricsError> {
        // 2000-01-01 .. 2200-01-01: rejects zero, negative and absurd clocks.
        if !(946_684_800_000..7_258_118_400_000).contains(&self.ts_ms) {
            return Err(MetricsError::BadTimestamp(self.ts_ms));
        }
        if self.stats.len() > MAX_SERIES_PER_POINT {
            return Err(MetricsError::TooManySeries);
        }
        for s in &self.stats {
            if s.series.is_empty()
                || s.series.len() > MAX_SERIES_NAME
                || s.series.chars().any(char::is_control)
            {
                return Err(MetricsError::BadSeriesName(
                    s.series.chars().take(40).collect(),
                ));
            }
            if !(s.min.is_finite() && s.avg.is_finite() && s.max.is_finite()) {
                return Err(MetricsError::NotFinite(s.series.to_string()));
            }
        }
        Ok(())
    }
}

/// The three numbers a fleet overview shows, in percent: CPU, memory used of
/// total, and the fullest of the root filesystem (or, without one, of all).
pub fn headline(stats: &[Stat]) -> (f32, f32, f32) {
    let get = |name: &str| stats.iter().find(|s| &*s.series == name).map(|s| s.avg);
    let pct = |used: f64, total: f64| {
        if total > 0.0 {
            (used / total * 100.0).clamp(0.0, 100.0)
        } else {
            0.0
        }
    };
    let cpu = get("cpu").unwrap_or(0.0);
    let mem = match (get("mem.used"), get("mem.total")) {
        (Some(u), Some(t)) => pct(u, t),
        _ => 0.0,
    };
    let disk = match (get("disk.used:/"), get("disk.total:/")) {
        (Some(u), Some(t)) => pct(u, t),
        _ => stats
            .iter()
            .filter_map(|s| s.series.strip_prefix("disk.used:").map(|m| (m, s.avg)))
            .filter_map(|(m, used)| get(&format!("disk.total:{m}")).map(|t| pct(used, t)))
            .fold(0.0, f64::max),
    };
    (cpu as f32, mem as f32, disk as f32)
}

/// Encodes a point's stats for storage: `u16 count`, then per stat
/// `u8 name_len, name, f64 min, f64 avg, f64 max, f64 weight` (little endian).
pub fn encode(stats: &[Stat]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + stats.len() * 48);
    let count = u16::try_from(stats.len().min(usize::from(u16::MAX))).unwrap_or(u16::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for s in stats.iter().take(usize::from(count)) {
        let name = &s.series.as_bytes()[..s.series.len().min(255)];
        out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(name);
        for v in [s.min, s.avg, s.max, s.weight] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// Decodes what `encode` wrote. Damaged input yields the stats read so far.
pub fn decode(mut bytes: &[u8]) -> Vec<Stat> {
    let mut take = |n: usize| -> Option<&[u8]> {
        if bytes.len() < n {
            return None;
        }
        let (head, rest) = bytes.split_at(n);
        bytes = rest;
        Some(head)
    };
    let Some(count) = take(2).map(|b| u16::from_le_bytes([b[0], b[1]])) else {
        return Vec::new();
    };
    let mut stats = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let Some(len) = take(1).map(|b| usize::from(b[0])) else {
            break;
        };
        let Some(name) = take(len).map(|b| String::from_utf8_lossy(b).into_owned()) else {
            break;
        };
        let mut vals = [0f64; 4];
        let mut ok = true;
        for v in &mut vals {
            match take(8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                Some(b) => *v = f64::from_le_bytes(b),
                None => ok = false,
            }
        }
        if !ok {
            break;
        }
        stats.push(Stat {
            series: Arc::from(name),
            min: vals[0],
            avg: vals[1],
            max: vals[2],
            weight: vals[3],
        });
    }
    stats
}

/// Merges several windows of the same series into one (weighted average).
pub fn merge_into(acc: &mut Stat, s: &Stat) {
    let total = acc.weight + s.weight;
    acc.avg = if total > 0.0 {
        (acc.avg * acc.weight + s.avg * s.weight) / total
    } else {
        s.avg
    };
    acc.min = acc.min.min(s.min);
    acc.max = acc.max.max(s.max);
    acc.weight = total;
}

/// Merges whole points (each a list of stats) into one list, series by series.
pub fn merge_points<'a>(points: impl IntoIterator<Item = &'a [Stat]>) -> Vec<Stat> {
    let mut merged: Vec<Stat> = Vec::new();
    let mut index: std::collections::HashMap<Arc<str>, usize> = std::collections::HashMap::new();
    for stats in points {
        for s in stats {
            match index.get(&s.series) {
                Some(&i) => merge_into(&mut merged[i], s),
                None => {
                    index.insert(s.series.clone(), merged.len());
                    merged.push(s.clone());
                }
            }
        }
    }
    merged
}

/// Groups `(ts, stat)` samples of one series into steps of `step_ms` aligned to
/// the epoch; the bucket time is the step's start.
pub fn bucketize(samples: impl IntoIterator<Item = (i64, Stat)>, step_ms: i64) -> Vec<Bucket> {
    let step = step_ms.max(1);
    let mut acc: std::collections::BTreeMap<i64, Stat> = std::collections::BTreeMap::new();
    for (ts, stat) in samples {
        let key = ts.div_euclid(step) * step;
        match acc.get_mut(&key) {
            Some(a) => merge_into(a, &stat),
            None => {
                acc.insert(key, stat);
            }
        }
    }
    acc.into_iter()
        .map(|(ts_ms, s)| Bucket {
            ts_ms,
            min: s.min,
            avg: s.avg,
            max: s.max,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(series: &str, min: f64, avg: f64, max: f64, weight: f64) -> Stat {
        Stat {
            series: series.into(),
            min,
            avg,
            max,
            weight,
        }
    }

    #[test]
    fn encoding_round_trips_and_survives_damage() {
        let stats = vec![
            stat("cpu", 1.0, 2.0, 3.0, 10_000.0),
            stat("disk.used:/var", 5.0, 5.0, 5.0, 1.0),
        ];
        let bytes = encode(&stats);
        assert_eq!(decode(&bytes), stats);
        assert_eq!(decode(&bytes[..bytes.len() - 3]), stats[..1].to_vec());
        assert!(decode(&[]).is_empty());
        assert!(decode(&[0xff, 0xff, 3]).is_empty());
    }

    #[test]
    fn merge_weights_averages() {
        let mut a = stat("cpu", 10.0, 20.0, 30.0, 10_000.0);
        merge_into(&mut a, &stat("cpu", 0.0, 50.0, 90.0, 30_000.0));
        assert_eq!((a.min, a.max, a.weight), (0.0, 90.0, 40_000.0));
        assert!((a.avg - 42.5).abs() < 1e-9);
    }

    #[test]
    fn names_are_shared() {
        let names = Names::default();
        let a = names.intern("cpu".to_owned());
        let b = names.intern("cpu".to_owned());
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*names.intern("mem.used".to_owned()), "mem.used");
    }

    #[test]
    fn headline_numbers() {
        let stats = vec![
            stat("cpu", 0.0, 12.5, 50.0, 1.0),
            stat("mem.used", 0.0, 25.0, 0.0, 1.0),
            stat("mem.total", 0.0, 100.0, 0.0, 1.0),
            stat("disk.used:/data", 0.0, 90.0, 0.0, 1.0),
            stat("disk.total:/data", 0.0, 100.0, 0.0, 1.0),
            stat("disk.used:/boot", 0.0, 10.0, 0.0, 1.0),
            stat("disk.total:/boot", 0.0, 100.0, 0.0, 1.0),
        ];
        assert_eq!(headline(&stats), (12.5, 25.0, 90.0));
        assert_eq!(headline(&[]), (0.0, 0.0, 0.0));
    }

    #[test]
    fn buckets_align_to_the_step() {
        let samples = (0..6).map(|i| {
            (
                60_000 + i * 10_000,
                stat("cpu", i as f64, i as f64, i as f64, 10_000.0),
            )
        });
        let b = bucketize(samples, 30_000);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].ts_ms, 60_000);
        assert_eq!((b[0].min, b[0].avg, b[0].max), (0.0, 1.0, 2.0));
        assert_eq!((b[1].min, b[1].avg, b[1].max), (3.0, 4.0, 5.0));
    }

    #[test]
    fn validation_rejects_bad_points() {
        let ok = Point {
            ts_ms: 1_800_000_000_000,
            interval_ms: 10_000,
            stats: vec![stat("cpu", 1.0, 1.0, 1.0, 1.0)],
        };
        assert_eq!(ok.validate(), Ok(()));
        let mut p = ok.clone();
        p.ts_ms = 0;
        assert!(matches!(p.validate(), Err(MetricsError::BadTimestamp(0))));
        let mut p = ok.clone();
        p.stats[0].avg = f64::NAN;
        assert!(matches!(p.validate(), Err(MetricsError::NotFinite(_))));
        let mut p = ok.clone();
        p.stats[0].series = "x\u{7}".into();
        assert!(matches!(p.validate(), Err(MetricsError::BadSeriesName(_))));
        let mut p = ok;
        p.stats = (0..=MAX_SERIES_PER_POINT)
            .map(|i| stat(&format!("s{i}"), 0.0, 0.0, 0.0, 1.0))
            .collect();
        assert_eq!(p.validate(), Err(MetricsError::TooManySeries));
    }
}
