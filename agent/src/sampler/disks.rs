//! Disk space per real mount and disk read/write throughput summed over real devices, via sysinfo.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use sysinfo::{DiskRefreshKind, Disks};

use super::rate;
use crate::metrics::{SeriesId, SeriesNames};

/// The mount list is re-read every this many samples; in between only the kept disks are refreshed.
const LIST_EVERY: u32 = 30;

/// Filesystem types that never hold user data.
const PSEUDO_FS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fuse.gvfsd-fuse",
    "fuse.lxcfs",
    "fuse.portal",
    "fuse.snapfuse",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nfsd",
    "nsfs",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
];

/// Mount-point trees that hold only kernel views, snaps or container-runtime duplicates.
const PSEUDO_TREES: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/snap",
    "/var/lib/docker",
    "/var/lib/containers",
    "/var/lib/kubelet",
    "/var/lib/lxcfs",
    "/private/var/vm",
];

fn is_under(path: &str, tree: &str) -> bool {
    path.strip_prefix(tree)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether a mount is a pseudo filesystem, a snap, or a duplicate view that should not be reported.
///
/// Overlay (and aufs) mounts are the container runtimes' per-container views of a real disk, so
/// only one mounted at `/` (our own container's root) is kept.
pub fn is_pseudo_mount(fs_type: &str, mount: &str) -> bool {
    if PSEUDO_FS.contains(&fs_type) {
        return true;
    }
    if matches!(fs_type, "overlay" | "aufs") {
        return mount != "/";
    }
    if is_under(mount, "/run/media") {
        return false;
    }
    if PSEUDO_TREES.iter().any(|t| is_under(mount, t)) {
        return true;
    }
    // macOS's APFS system volumes share the container of "/" and its Data volume.
    mount.starts_with("/System/Volumes/") && mount != "/System/Volumes/Data"
}

#[derive(Debug)]
struct Slot {
    mount: PathBuf,
    device: OsString,
    /// `disk.used:` and `disk.total:` ids, for the one mount of each device that is reported.
    space: Option<(SeriesId, SeriesId)>,
    /// Last total (read, written) bytes, once seen.
    prev: Option<(u64, u64)>,
}

/// Tracks sysinfo's disk list and the previous I/O counters of each reported device.
pub(crate) struct DiskTracker {
    disks: Disks,
    /// Aligned with `disks` by index.
    slots: Vec<Slot>,
    samples: u32,
    read_id: SeriesId,
    write_id: SeriesId,
}

impl DiskTracker {
    pub(crate) fn new(names: &mut SeriesNames) -> Result<Self, sysinfo::Error> {
        Ok(Self {
            disks: Disks::new()?,
            slots: Vec::new(),
            samples: 0,
            read_id: names.intern("disk.read"),
            write_id: names.intern("disk.write"),
        })
    }

    /// Appends `disk.used:*`, `disk.total:*` and, when `secs` (time since the previous sample)
    /// is known, `disk.read` and `disk.write` in bytes/s.
    pub(crate) fn sample(
        &mut self,
        names: &mut SeriesNames,
        secs: Option<f64>,
        out: &mut Vec<(SeriesId, f64)>,
    ) {
        let kind = DiskRefreshKind::nothing().with_storage().with_io_usage();
        if self.samples.is_multiple_of(LIST_EVERY) {
            self.disks.refresh_specifics(true, kind);
            self.sync_slots(names);
        } else {
            for (disk, slot) in self.disks.iter_mut().zip(&self.slots) {
                if slot.space.is_some() {
                    disk.refresh_specifics(kind);
                }
            }
        }
        self.samples = self.samples.wrapping_add(1);

        let (mut read, mut written) = (0.0, 0.0);
        for (disk, slot) in self.disks.iter().zip(&mut self.slots) {
            let Some((used_id, total_id)) = slot.space else {
                continue;
            };
            let total = disk.total_space();
            if total > 0 {
                let used = total.saturating_sub(disk.available_space());
                out.push((used_id, used as f64));
                out.push((total_id, total as f64));
            }
            let usage = disk.usage();
            let now = (usage.total_read_bytes, usage.total_written_bytes);
            if let (Some(prev), Some(secs)) = (slot.prev, secs) {
                read += rate(prev.0, now.0, secs);
                written += rate(prev.1, now.1, secs);
            }
            slot.prev = Some(now);
        }
        if secs.is_some() {
            out.push((self.read_id, read));
            out.push((self.write_id, written));
        }
    }

    /// Rebuilds the slots when the disk list changed, keeping I/O history of unchanged mounts.
    fn sync_slots(&mut self, names: &mut SeriesNames) {
        let unchanged = self.slots.len() == self.disks.len()
            && self
                .disks
                .iter()
                .zip(&self.slots)
                .all(|(d, s)| d.mount_point() == s.mount && d.name() == s.device);
        if unchanged {
            return;
        }
        let mut old = std::mem::take(&mut self.slots);
        let mut slots: Vec<Slot> = Vec::with_capacity(self.disks.len());
        for disk in self.disks.iter() {
            let mount = disk.mount_point();
            let mount_str = mount.to_string_lossy();
            let fs = disk.file_system().to_string_lossy();
            let reportable = !is_pseudo_mount(&fs, &mount_str) && mount.is_dir();
            let prev = old
                .iter_mut()
                .find(|s| s.mount == mount && s.device == disk.name())
                .and_then(|s| s.prev.take());
            let space = reportable.then(|| {
                (
                    names.intern_instance("disk.used", &mount_str),
                    names.intern_instance("disk.total", &mount_str),
                )
            });
            slots.push(Slot {
                mount: mount.to_path_buf(),
                device: disk.name().to_owned(),
                space,
                prev,
            });
        }
        dedupe_devices(&mut slots);
        tracing::debug!(
            reported = slots.iter().filter(|s| s.space.is_some()).count(),
            listed = slots.len(),
            "disk list changed"
        );
        self.slots = slots;
    }
}

/// On Linux one device mounted several times (bind mounts, btrfs subvolumes) is reported once,
/// at its shortest mount point, and its I/O counted once. Elsewhere device names are labels
/// that need not be unique, so nothing is merged.
fn dedupe_devices(slots: &mut [Slot]) {
    if !cfg!(target_os = "linux") {
        return;
    }
    for i in 0..slots.len() {
        if slots[i].space.is_none() {
            continue;
        }
        let better = slots.iter().enumerate().any(|(j, other)| {
            j != i
                && other.space.is_some()
                && other.device == slots[i].device
                && shorter(&other.mount, j, &slots[i].mount, i)
        });
        if better {
            slots[i].space = None;
        }
    }
}

/// Whether mount `a` (at index `ia`) is preferred over `b`: fewer bytes, then earlier in the list.
fn shorter(a: &Path, ia: usize, b: &Path, ib: usize) -> bool {
    let (la, lb) = (a.as_os_str().len(), b.as_os_str().len());
    la < lb || (la == lb && ia < ib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_filesystems_and_duplicates_are_skipped() {
        let skipped = [
            ("proc", "/proc"),
            ("sysfs", "/sys"),
            ("tmpfs", "/tmp"),
            ("devtmpfs", "/dev"),
            ("squashfs", "/snap/core22/1380"),
            ("ext4", "/snap/foo"),
            ("overlay", "/var/lib/docker/overlay2/abc/merged"),
            (
                "overlay",
                "/home/me/.local/share/containers/storage/overlay/x/merged",
            ),
            ("ext4", "/var/lib/docker/volumes"),
            ("ext4", "/run/user/1000/doc"),
            ("fuse.lxcfs", "/proc/meminfo"),
            ("fuse.lxcfs", "/var/lib/lxcfs"),
            ("nsfs", "/run/netns/x"),
            ("apfs", "/System/Volumes/Preboot"),
        ];
        for (fs, mount) in skipped {
            assert!(is_pseudo_mount(fs, mount), "{fs} {mount}");
        }
        let kept = [
            ("ext4", "/"),
            ("overlay", "/"),
            ("xfs", "/srv"),
            ("btrfs", "/home"),
            ("zfs", "/"),
            ("vfat", "/boot/efi"),
            ("ext4", "/run/media/usb"),
            ("ext4", "/devices"),
            ("fuse.mergerfs", "/mnt/pool"),
            ("NTFS", "C:\\"),
            ("apfs", "/System/Volumes/Data"),
        ];
        for (fs, mount) in kept {
            assert!(!is_pseudo_mount(fs, mount), "{fs} {mount}");
        }
    }

    #[cfg(target_os = "linux")]
    fn slot(names: &mut SeriesNames, mount: &str, device: &str) -> Slot {
        let id = names.intern(mount);
        Slot {
            mount: PathBuf::from(mount),
            device: OsString::from(device),
            space: Some((id, id)),
            prev: None,
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn one_device_mounted_twice_is_reported_once_at_its_shortest_mount() {
        let n = &mut SeriesNames::new();
        let mut slots = vec![
            slot(n, "/home", "/dev/sda2"),
            slot(n, "/", "/dev/sda2"),
            slot(n, "/boot", "/dev/sda1"),
            slot(n, "/mnt/a", "/dev/sdb1"),
            slot(n, "/mnt/b", "/dev/sdb1"),
        ];
        dedupe_devices(&mut slots);
        let kept: Vec<&str> = slots
            .iter()
            .filter(|s| s.space.is_some())
            .filter_map(|s| s.mount.to_str())
            .collect();
        assert_eq!(kept, ["/", "/boot", "/mnt/a"]);
    }

    #[test]
    fn real_disks_on_this_machine() {
        let mut names = SeriesNames::new();
        let mut t = DiskTracker::new(&mut names).expect("disks");
        let mut out = Vec::new();
        t.sample(&mut names, None, &mut out);
        let listed: Vec<&str> = out.iter().map(|(id, _)| names.name(*id)).collect();
        assert!(
            !listed.contains(&"disk.read"),
            "no rate without a previous sample"
        );
        for name in &listed {
            assert!(!name.contains("/proc") && !name.contains("/sys"), "{name}");
        }
        out.clear();
        t.sample(&mut names, Some(1.0), &mut out);
        let read = names.get("disk.read").expect("interned");
        assert!(out.iter().any(|(id, v)| *id == read && *v >= 0.0));
    }
}
