//! Turns 1 s samples into min/avg/max summaries over wall-clock-aligned windows.

use std::sync::Arc;

use super::{Sample, SeriesNames, SeriesSummary, SummaryPoint};

/// Default summary window: 10 s.
pub const DEFAULT_WINDOW_MS: u32 = 10_000;

#[derive(Clone, Copy, Debug)]
struct Acc {
    count: u32,
    sum: f64,
    min: f64,
    max: f64,
}

impl Acc {
    const EMPTY: Acc = Acc {
        count: 0,
        sum: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };
}

/// Accumulates samples into windows `[k*window_ms, (k+1)*window_ms)` of wall-clock time.
///
/// A window closes when a sample from another window arrives (later, or earlier after the clock
/// was set back); [`Summarizer::push`] then returns the closed window, stamped with its end.
/// Each series is summarised over the samples that carried it, so one that appears mid-window
/// gets a summary of fewer samples; non-finite values are ignored.
#[derive(Debug)]
pub struct Summarizer {
    window_ms: u32,
    window_start: Option<i64>,
    /// Indexed by `SeriesId::index`.
    acc: Vec<Acc>,
    /// Names of the series seen so far, indexed like `acc`, so `flush` needs no name table.
    names: Vec<Option<Arc<str>>>,
}

impl Default for Summarizer {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW_MS)
    }
}

impl Summarizer {
    /// A summarizer over windows of `window_ms` (0 is taken as 1).
    pub fn new(window_ms: u32) -> Self {
        Self {
            window_ms: window_ms.max(1),
            window_start: None,
            acc: Vec::new(),
            names: Vec::new(),
        }
    }

    /// The window length.
    pub fn window_ms(&self) -> u32 {
        self.window_ms
    }

    /// Adds one sample, whose ids were interned in `names`; returns the window it closed, if any.
    pub fn push(&mut self, sample: &Sample, names: &SeriesNames) -> Option<SummaryPoint> {
        let window = i64::from(self.window_ms);
        let start = sample.ts_ms.div_euclid(window) * window;
        let closed = match self.window_start {
            Some(current) if current != start => self.take(current),
            _ => None,
        };
        self.window_start = Some(start);
        for &(id, value) in &sample.values {
            if !value.is_finite() {
                continue;
            }
            let i = id.index();
            if i >= self.acc.len() {
                self.acc.resize(i + 1, Acc::EMPTY);
                self.names.resize(i + 1, None);
            }
            if self.names[i].is_none() {
                self.names[i] = names.name_arc(id);
            }
            let acc = &mut self.acc[i];
            acc.count += 1;
            acc.sum += value;
            acc.min = acc.min.min(value);
            acc.max = acc.max.max(value);
        }
        closed
    }

    /// Closes the current, possibly partial, window (on shutdown); `None` if it holds nothing.
    ///
    /// The point is stamped with the window's aligned end and full `interval_ms`, like any other.
    pub fn flush(&mut self) -> Option<SummaryPoint> {
        let start = self.window_start.take()?;
        self.take(start)
    }

    fn take(&mut self, start: i64) -> Option<SummaryPoint> {
        let mut values = Vec::new();
        for (acc, name) in self.acc.iter_mut().zip(&self.names) {
            if acc.count == 0 {
                continue;
            }
            values.push(SeriesSummary {
                series: name.as_deref().unwrap_or("").to_owned(),
                min: acc.min,
                avg: acc.sum / f64::from(acc.count),
                max: acc.max,
            });
            *acc = Acc::EMPTY;
        }
        if values.is_empty() {
            return None;
        }
        Some(SummaryPoint {
            ts_ms: start + i64::from(self.window_ms),
            interval_ms: self.window_ms,
            values,
        })
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

    fn find<'a>(p: &'a SummaryPoint, name: &str) -> &'a SeriesSummary {
        p.values
            .iter()
            .find(|s| s.series == name)
            .expect("series in summary")
    }

    #[test]
    fn windows_align_to_wall_clock_and_report_min_avg_max() {
        let mut names = SeriesNames::new();
        let cpu = names.intern("cpu");
        let mut s = Summarizer::new(10_000);
        // Samples at 1_000_003_500 .. 1_000_009_500 fall in [1_000_000_000, 1_000_010_000).
        let base = 1_000_003_500;
        for (k, v) in [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]
            .iter()
            .enumerate()
        {
            let ts = base + 1_000 * k as i64;
            assert!(s.push(&sample(ts, &[(cpu, *v)]), &names).is_none(), "{ts}");
        }
        // The first sample of the next window closes the previous one.
        let p = s
            .push(&sample(1_000_010_500, &[(cpu, 99.0)]), &names)
            .expect("window closed");
        assert_eq!(p.ts_ms, 1_000_010_000);
        assert_eq!(p.interval_ms, 10_000);
        let c = find(&p, "cpu");
        assert_eq!((c.min, c.avg, c.max), (10.0, 40.0, 70.0));
        // The 99 went into the next window, which flush returns.
        let p = s.flush().expect("partial window");
        assert_eq!(p.ts_ms, 1_000_020_000);
        let c = find(&p, "cpu");
        assert_eq!((c.min, c.avg, c.max), (99.0, 99.0, 99.0));
        assert!(s.flush().is_none());
    }

    #[test]
    fn sample_on_a_boundary_starts_the_new_window() {
        let mut names = SeriesNames::new();
        let cpu = names.intern("cpu");
        let mut s = Summarizer::new(10_000);
        assert!(s.push(&sample(9_999, &[(cpu, 1.0)]), &names).is_none());
        let p = s
            .push(&sample(10_000, &[(cpu, 2.0)]), &names)
            .expect("closed");
        assert_eq!(p.ts_ms, 10_000);
        assert_eq!(find(&p, "cpu").max, 1.0);
    }

    #[test]
    fn series_appearing_mid_window_is_summarised_over_its_own_samples() {
        let mut names = SeriesNames::new();
        let cpu = names.intern("cpu");
        let rx = names.intern("net.rx:eth0");
        let mut s = Summarizer::new(10_000);
        s.push(&sample(20_000, &[(cpu, 1.0)]), &names);
        s.push(&sample(21_000, &[(cpu, 1.0)]), &names);
        s.push(&sample(22_000, &[(cpu, 1.0), (rx, 100.0)]), &names);
        s.push(&sample(23_000, &[(cpu, 1.0), (rx, 300.0)]), &names);
        let p = s.push(&sample(30_000, &[(cpu, 5.0)]), &names);
        let p = p.expect("closed");
        let r = find(&p, "net.rx:eth0");
        assert_eq!((r.min, r.avg, r.max), (100.0, 200.0, 300.0));
        // The next window has no rx sample at all, so no rx summary.
        let p = s.flush().expect("partial");
        assert!(p.values.iter().all(|v| v.series != "net.rx:eth0"));
        assert_eq!(p.values.len(), 1);
    }

    #[test]
    fn skipped_windows_and_clock_steps_back_close_the_window() {
        let mut names = SeriesNames::new();
        let cpu = names.intern("cpu");
        let mut s = Summarizer::new(10_000);
        s.push(&sample(5_000, &[(cpu, 1.0)]), &names);
        let p = s
            .push(&sample(45_000, &[(cpu, 2.0)]), &names)
            .expect("closed");
        assert_eq!(p.ts_ms, 10_000);
        let p = s
            .push(&sample(15_000, &[(cpu, 3.0)]), &names)
            .expect("closed");
        assert_eq!(p.ts_ms, 50_000);
        assert_eq!(find(&p, "cpu").avg, 2.0);
    }

    #[test]
    fn non_finite_values_are_ignored_and_negative_times_align() {
        let mut names = SeriesNames::new();
        let cpu = names.intern("cpu");
        let mut s = Summarizer::new(1_000);
        s.push(&sample(-1_500, &[(cpu, f64::NAN)]), &names);
        s.push(&sample(-1_200, &[(cpu, 4.0)]), &names);
        let p = s.flush().expect("partial");
        assert_eq!(p.ts_ms, -1_000);
        assert_eq!(find(&p, "cpu").avg, 4.0);
    }
}
