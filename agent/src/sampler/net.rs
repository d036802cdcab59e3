//! Per-interface network throughput and error rates: /proc/net/dev on Linux, sysinfo elsewhere.
//!
//! On Linux one read of /proc/net/dev gives every counter; sysinfo instead opens about ten sysfs
//! files per interface (~45 µs each), which on a host with dozens of container veths alone
//! would exceed the agent's CPU budget. sysinfo remains the fallback when /proc is unreadable.

use sysinfo::Networks;

use super::rate;
use crate::metrics::{SeriesId, SeriesNames};

/// Whether an interface is left out: loopback, and the host ends of container veth pairs (one per
/// container, coming and going with them; the bridge they hang off is kept).
pub fn is_ignored_interface(name: &str) -> bool {
    name == "lo" || name == "lo0" || name.starts_with("veth") || name.contains("Loopback")
}

/// Calls `f(interface, [rx_bytes, tx_bytes, rx_errors, tx_errors])` for each interface line of a
/// /proc/net/dev text; malformed lines are skipped.
pub fn parse_net_dev(text: &str, mut f: impl FnMut(&str, [u64; 4])) {
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || name.contains('|') {
            continue;
        }
        // Receive: bytes packets errs drop fifo frame compressed multicast; Transmit: bytes packets errs ...
        let mut counters = [0u64; 4];
        let mut fields = 0;
        for (i, field) in rest.split_ascii_whitespace().enumerate() {
            let slot = match i {
                0 => 0,
                2 => 2,
                8 => 1,
                10 => 3,
                _ => continue,
            };
            let Ok(v) = field.parse() else { break };
            counters[slot] = v;
            fields += 1;
        }
        if fields == 4 {
            f(name, counters);
        }
    }
}

#[derive(Debug)]
struct Slot {
    name: String,
    /// rx, tx, rx_errors, tx_errors.
    ids: [SeriesId; 4],
    prev: [u64; 4],
    /// The sample count when this interface was last seen.
    seen: u64,
}

/// Tracks the interfaces and the previous counters of each reported one.
pub(crate) struct NetTracker {
    /// Used when /proc/net/dev cannot be read (always, off Linux); created on first need.
    networks: Option<Networks>,
    /// Reused for the text of /proc/net/dev.
    buf: String,
    slots: Vec<Slot>,
    samples: u64,
}

impl NetTracker {
    pub(crate) fn new() -> Self {
        Self {
            networks: None,
            buf: String::new(),
            slots: Vec::new(),
            samples: 0,
        }
    }

    /// Appends `net.rx:*`, `net.tx:*` (bytes/s) and `net.rx_errors:*`, `net.tx_errors:*`
    /// (errors/s) for every interface also seen in the previous sample; `secs` is the time since it.
    pub(crate) fn sample(
        &mut self,
        names: &mut SeriesNames,
        secs: Option<f64>,
        out: &mut Vec<(SeriesId, f64)>,
    ) {
        self.samples += 1;
        let samples = self.samples;
        let slots = &mut self.slots;
        let mut visit = |name: &str, now: [u64; 4]| {
            if is_ignored_interface(name) {
                return;
            }
            let Some(slot) = slots.iter_mut().find(|s| s.name == name) else {
                slots.push(Slot {
                    name: name.to_owned(),
                    ids: [
                        names.intern_instance("net.rx", name),
                        names.intern_instance("net.tx", name),
                        names.intern_instance("net.rx_errors", name),
                        names.intern_instance("net.tx_errors", name),
                    ],
                    prev: now,
                    seen: samples,
                });
                return;
            };
            // Known slots were all seen in the previous sample (others are dropped below).
            if let Some(secs) = secs {
                for ((id, prev), now) in slot.ids.iter().zip(slot.prev).zip(now) {
                    out.push((*id, rate(prev, now, secs)));
                }
            }
            slot.prev = now;
            slot.seen = samples;
        };

        if let Some(text) = read_proc_net_dev(&mut self.buf) {
            parse_net_dev(text, &mut visit);
        } else if let Some(networks) = sysinfo_networks(&mut self.networks) {
            for (name, data) in networks.iter() {
                let now = [
                    data.total_received(),
                    data.total_transmitted(),
                    data.total_errors_on_received(),
                    data.total_errors_on_transmitted(),
                ];
                visit(&name.to_string_lossy(), now);
            }
        }
        self.slots.retain(|s| s.seen == samples);
    }
}

#[cfg(target_os = "linux")]
fn read_proc_net_dev(buf: &mut String) -> Option<&str> {
    super::read_into("/proc/net/dev", buf).then_some(buf.as_str())
}

#[cfg(not(target_os = "linux"))]
fn read_proc_net_dev(_buf: &mut String) -> Option<&str> {
    None
}

/// The refreshed sysinfo interface list, created on first use; `None` if sysinfo cannot list them.
fn sysinfo_networks(networks: &mut Option<Networks>) -> Option<&Networks> {
    if networks.is_none() {
        *networks = Networks::new().ok();
    }
    let networks = networks.as_mut()?;
    networks.refresh(true);
    Some(networks)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real /proc/net/dev, with a counter past 2^32 and a name glued to its first number.
    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  123456     789    0    0    0     0          0         0   123456     789    0    0    0     0       0          0
  eth0: 9876543210 6543210   12    3    0     0          0      1234 1234567890  987654    5    0    0     0       0          0
docker0:1000 10 0 0 0 0 0 0 2000 20 1 0 0 0 0 0
 broken: 1 2 3
";

    #[test]
    fn parses_proc_net_dev() {
        let mut seen = Vec::new();
        parse_net_dev(NET_DEV, |name, c| seen.push((name.to_owned(), c)));
        assert_eq!(
            seen,
            [
                ("lo".to_owned(), [123_456, 123_456, 0, 0]),
                ("eth0".to_owned(), [9_876_543_210, 1_234_567_890, 12, 5]),
                ("docker0".to_owned(), [1000, 2000, 0, 1]),
            ]
        );
    }

    #[test]
    fn loopback_and_veth_are_ignored() {
        for name in ["lo", "lo0", "veth1a2b3c", "Loopback Pseudo-Interface 1"] {
            assert!(is_ignored_interface(name), "{name}");
        }
        for name in [
            "eth0", "enp3s0", "wlan0", "docker0", "br-1234", "wg0", "lxcbr0",
        ] {
            assert!(!is_ignored_interface(name), "{name}");
        }
    }

    #[test]
    fn rates_start_on_the_second_reading() {
        let mut names = SeriesNames::new();
        let mut t = NetTracker::new();
        let mut out = Vec::new();
        t.sample(&mut names, None, &mut out);
        assert!(out.is_empty(), "{out:?}");
        t.sample(&mut names, Some(1.0), &mut out);
        // Every reported interface gives four series, none negative.
        assert!(!t.slots.is_empty());
        assert_eq!(out.len(), 4 * t.slots.len());
        assert!(out.iter().all(|(_, v)| *v >= 0.0));
        assert!(out.iter().all(|(id, _)| !names.name(*id).ends_with(":lo")));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sysinfo_fallback_lists_the_same_interfaces() {
        let mut networks = None;
        let listed = sysinfo_networks(&mut networks).expect("sysinfo networks");
        let mut from_sysinfo: Vec<String> = listed
            .keys()
            .map(|k| k.to_string_lossy().into_owned())
            .collect();
        from_sysinfo.sort();
        let text = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
        let mut from_proc = Vec::new();
        parse_net_dev(&text, |name, _| from_proc.push(name.to_owned()));
        from_proc.sort();
        assert_eq!(from_proc, from_sysinfo);
    }
}
