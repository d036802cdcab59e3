//! The last hour of 1 s samples kept in memory as f32 columns keyed by series id.

use super::{Sample, SeriesNames, SeriesSummary, SummaryPoint};

/// Default ring capacity: one hour of 1 s samples.
pub const DEFAULT_RING_CAPACITY: usize = 3_600;

/// The interval reported for each point that [`Ring::since`] returns.
const POINT_INTERVAL_MS: u32 = 1_000;

#[derive(Debug)]
struct Column {
    /// One slot per ring position; NaN where the series had no value.
    values: Box<[f32]>,
    /// `Ring::pushes` when this series last had a value.
    last_push: u64,
}

/// A bounded ring of samples: one timestamp per slot and one f32 column per series.
///
/// A column is allocated the first time its series appears and freed once every slot holding one
/// of its values has been overwritten, so series that come and go do not grow it for ever.
/// At the default capacity each column costs about 14 KB.
#[derive(Debug)]
pub struct Ring {
    capacity: usize,
    ts: Vec<i64>,
    /// Slot the next push writes.
    head: usize,
    /// Total pushes so far.
    pushes: u64,
    /// Indexed by `SeriesId::index`.
    columns: Vec<Option<Column>>,
}

impl Default for Ring {
    fn default() -> Self {
        Self::new(DEFAULT_RING_CAPACITY)
    }
}

impl Ring {
    /// An empty ring holding at most `capacity` samples (0 is taken as 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            ts: Vec::new(),
            head: 0,
            pushes: 0,
            columns: Vec::new(),
        }
    }

    /// Stores a sample, evicting the oldest one when full.
    pub fn push(&mut self, sample: &Sample) {
        let slot = self.head;
        if self.ts.len() < self.capacity {
            self.ts.push(sample.ts_ms);
        } else {
            self.ts[slot] = sample.ts_ms;
        }
        self.pushes += 1;
        let capacity = self.capacity as u64;
        let pushes = self.pushes;
        for column in &mut self.columns {
            if let Some(c) = column {
                if pushes.saturating_sub(c.last_push) >= capacity {
                    *column = None;
                } else {
                    c.values[slot] = f32::NAN;
                }
            }
        }
        for &(id, value) in &sample.values {
            let i = id.index();
            if i >= self.columns.len() {
                self.columns.resize_with(i + 1, || None);
            }
            let column = self.columns[i].get_or_insert_with(|| Column {
                values: vec![f32::NAN; self.capacity].into_boxed_slice(),
                last_push: pushes,
            });
            column.values[slot] = value as f32;
            column.last_push = pushes;
        }
        self.head = (slot + 1) % self.capacity;
    }

    /// Every stored sample with `ts_ms >= since_ms`, oldest first, each as a 1 s point with
    /// min = avg = max; `names` is the table the sample ids were interned in.
    ///
    /// This materialises every point at once (about 2 KB per point at 30 series, so ~7 MB for a
    /// full hour): prefer [`Ring::since_limited`] or [`Ring::visit_since`] to send in chunks.
    pub fn since(&self, since_ms: i64, names: &SeriesNames) -> Vec<SummaryPoint> {
        self.since_limited(since_ms, names, usize::MAX)
    }

    /// Like [`Ring::since`] but at most `max_points` (the oldest ones); continue from the last
    /// returned `ts_ms + 1`.
    pub fn since_limited(
        &self,
        since_ms: i64,
        names: &SeriesNames,
        max_points: usize,
    ) -> Vec<SummaryPoint> {
        let mut out = Vec::new();
        self.visit_since(since_ms, names, |p| {
            out.push(p.clone());
            out.len() < max_points
        });
        out
    }

    /// Calls `f` with each stored sample with `ts_ms >= since_ms`, oldest first, as a 1 s point,
    /// until `f` returns false. The point passed is one buffer reused throughout, so walking the
    /// whole ring allocates only for the first point's names.
    pub fn visit_since(
        &self,
        since_ms: i64,
        names: &SeriesNames,
        mut f: impl FnMut(&SummaryPoint) -> bool,
    ) {
        let len = self.ts.len();
        let oldest = if len < self.capacity { 0 } else { self.head };
        let mut point = SummaryPoint {
            ts_ms: 0,
            interval_ms: POINT_INTERVAL_MS,
            values: Vec::new(),
        };
        for k in 0..len {
            let slot = (oldest + k) % self.capacity;
            let ts_ms = self.ts[slot];
            if ts_ms < since_ms {
                continue;
            }
            point.ts_ms = ts_ms;
            let mut n = 0;
            for (i, column) in self.columns.iter().enumerate() {
                let Some(column) = column else { continue };
                let v = column.values[slot];
                if v.is_nan() {
                    continue;
                }
                let v = f64::from(v);
                let name = names.name_at(i).unwrap_or("");
                if let Some(s) = point.values.get_mut(n) {
                    if s.series != name {
                        s.series.clear();
                        s.series.push_str(name);
                    }
                    (s.min, s.avg, s.max) = (v, v, v);
                } else {
                    point.values.push(SeriesSummary {
                        series: name.to_owned(),
                        min: v,
                        avg: v,
                        max: v,
                    });
                }
                n += 1;
            }
            point.values.truncate(n);
            if !f(&point) {
                return;
            }
        }
    }

    /// How many samples are stored.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Whether no sample is stored.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// The most samples the ring holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many series currently have a column.
    pub fn series_count(&self) -> usize {
        self.columns.iter().filter(|c| c.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::SeriesId;

    fn sample(ts_ms: i64, values: &[(SeriesId, f64)]) -> Sample {
        Sample {
            ts_ms,
            values: values.to_vec(),
        }
    }

    #[test]
    fn capacity_bounds_len_and_evicts_oldest() {
        let mut names = SeriesNames::new();
        let cpu = names.intern("cpu");
        let mut ring = Ring::new(3);
        assert!(ring.is_empty());
        for k in 0..5 {
            ring.push(&sample(k * 1_000, &[(cpu, k as f64)]));
        }
        assert_eq!(ring.len(), 3);
        let points = ring.since(i64::MIN, &names);
        let ts: Vec<i64> = points.iter().map(|p| p.ts_ms).collect();
        assert_eq!(ts, [2_000, 3_000, 4_000]);
        let v: Vec<f64> = points.iter().map(|p| p.values[0].avg).collect();
        assert_eq!(v, [2.0, 3.0, 4.0]);
    }

    #[test]
    fn since_filters_by_time_and_gives_one_second_points() {
        let mut names = SeriesNames::new();
        let cpu = names.intern("cpu");
        let mem = names.intern("mem.used");
        let mut ring = Ring::new(10);
        for k in 0..4 {
            ring.push(&sample(k * 1_000, &[(cpu, 1.5), (mem, 2e9)]));
        }
        let points = ring.since(2_000, &names);
        assert_eq!(points.len(), 2);
        let p = &points[0];
        assert_eq!(p.ts_ms, 2_000);
        assert_eq!(p.interval_ms, 1_000);
        assert_eq!(p.values.len(), 2);
        let m = p
            .values
            .iter()
            .find(|s| s.series == "mem.used")
            .expect("mem.used");
        assert_eq!((m.min, m.avg, m.max), (2e9, 2e9, 2e9));
        assert!(ring.since(4_001, &names).is_empty());
    }

    #[test]
    fn since_limited_and_visit_stop_early_and_agree_with_since() {
        let mut names = SeriesNames::new();
        let cpu = names.intern("cpu");
        let rx = names.intern("net.rx:eth0");
        let mut ring = Ring::new(5);
        for k in 0..8 {
            let values: &[(SeriesId, f64)] = if k % 2 == 0 {
                &[(cpu, k as f64), (rx, 10.0 * k as f64)]
            } else {
                &[(rx, 10.0 * k as f64)]
            };
            ring.push(&sample(k * 1_000, values));
        }
        let all = ring.since(0, &names);
        assert_eq!(all.len(), 5);
        let first_two = ring.since_limited(0, &names, 2);
        assert_eq!(first_two, all[..2]);
        let mut visited = Vec::new();
        ring.visit_since(0, &names, |p| {
            visited.push(p.clone());
            true
        });
        assert_eq!(visited, all);
        // cpu only on even seconds: an overwritten slot must not keep a stale cpu value.
        for p in &all {
            let has_cpu = p.values.iter().any(|v| v.series == "cpu");
            assert_eq!(has_cpu, (p.ts_ms / 1_000) % 2 == 0, "at {}", p.ts_ms);
        }
        // The reused buffer must not leak a previous point's series into a shorter one.
        assert_eq!(all[0].values.len(), 1);
        assert_eq!(all[1].values.len(), 2);
        assert_eq!(all[1].values[1].series, "net.rx:eth0");
    }

    #[test]
    fn series_missing_from_a_sample_are_absent_from_its_point() {
        let mut names = SeriesNames::new();
        let cpu = names.intern("cpu");
        let rx = names.intern("net.rx:eth0");
        let mut ring = Ring::new(2);
        ring.push(&sample(0, &[(cpu, 1.0), (rx, 5.0)]));
        ring.push(&sample(1_000, &[(cpu, 1.0)]));
        assert_eq!(ring.series_count(), 2);
        // Wraps onto slot 0, which held an rx value: it must not leak into this sample.
        ring.push(&sample(2_000, &[(cpu, 1.0)]));
        for p in ring.since(0, &names) {
            assert_eq!(p.values.len(), 1, "at {}", p.ts_ms);
        }
        // That overwrite removed rx's last value, so its column was freed.
        assert_eq!(ring.series_count(), 1);
    }
}
