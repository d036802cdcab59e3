//! Host facts (names, versions, CPU model, container kind) gathered once per connection.

use std::time::{SystemTime, UNIX_EPOCH};

use sysinfo::System;

use crate::metrics::HostFacts;

/// What the filesystem says about a container around us; each field is one hint.
#[derive(Clone, Copy, Debug, Default)]
pub struct ContainerEvidence<'a> {
    /// Contents of `/run/systemd/container`.
    pub systemd_container: Option<&'a str>,
    /// Contents of `/proc/1/environ` (NUL-separated `KEY=value`).
    pub pid1_environ: Option<&'a [u8]>,
    /// Whether `/run/.containerenv` exists (podman).
    pub containerenv: bool,
    /// Whether `/.dockerenv` exists.
    pub dockerenv: bool,
    /// Contents of `/proc/1/cgroup`.
    pub pid1_cgroup: Option<&'a str>,
}

/// The container kind from the strongest hint: systemd's file, PID 1's `container=`, podman's and
/// Docker's marker files, then cgroup paths. `""` when nothing points to a container.
pub fn detect_container(e: &ContainerEvidence<'_>) -> String {
    if let Some(kind) = e.systemd_container.and_then(normalise) {
        return kind;
    }
    if let Some(kind) = e
        .pid1_environ
        .and_then(|env| {
            env.split(|&b| b == 0)
                .find_map(|var| var.strip_prefix(b"container="))
        })
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(normalise)
    {
        return kind;
    }
    if e.containerenv {
        return "podman".to_owned();
    }
    if e.dockerenv {
        return "docker".to_owned();
    }
    if let Some(cgroup) = e.pid1_cgroup {
        for line in cgroup.lines() {
            let path = line.splitn(3, ':').nth(2).unwrap_or("");
            if path.contains("libpod") {
                return "podman".to_owned();
            }
            if path.contains("/docker/") || path.contains("/docker-") {
                return "docker".to_owned();
            }
            if path.contains("/lxc/") || path.contains("lxc.payload") {
                return "lxc".to_owned();
            }
            if path.contains("machine.slice/machine-") {
                return "systemd-nspawn".to_owned();
            }
        }
    }
    String::new()
}

fn normalise(value: &str) -> Option<String> {
    let v = value.trim();
    let kind = if v.is_empty() {
        return None;
    } else if v.starts_with("lxc") {
        "lxc"
    } else if v.starts_with("docker") {
        "docker"
    } else if v.starts_with("podman") {
        "podman"
    } else {
        v
    };
    Some(kind.to_owned())
}

#[cfg(target_os = "linux")]
fn container() -> String {
    use std::path::Path;
    let systemd = std::fs::read_to_string("/run/systemd/container").ok();
    let environ = std::fs::read("/proc/1/environ").ok();
    let cgroup = std::fs::read_to_string("/proc/1/cgroup").ok();
    detect_container(&ContainerEvidence {
        systemd_container: systemd.as_deref(),
        pid1_environ: environ.as_deref(),
        containerenv: Path::new("/run/.containerenv").exists(),
        dockerenv: Path::new("/.dockerenv").exists(),
        pid1_cgroup: cgroup.as_deref(),
    })
}

#[cfg(not(target_os = "linux"))]
fn container() -> String {
    String::new()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Gathers the facts; `sys` must have had its CPU list refreshed once, and `memory_total` is the
/// container-aware total from the memory reader.
pub(crate) fn host_facts(sys: &System, memory_total: u64) -> HostFacts {
    let cpu_model = sys
        .cpus()
        .iter()
        .map(|c| c.brand().trim())
        .find(|b| !b.is_empty())
        .unwrap_or("")
        .to_owned();
    // now - uptime rather than the kernel's boot time, so that inside a container whose uptime
    // lxcfs virtualises it is the container's start, consistent with the "uptime" series.
    let boot_time_ms = match System::uptime() {
        Ok(up) => now_ms().saturating_sub(i64::try_from(up).unwrap_or(0).saturating_mul(1000)),
        Err(_) => {
            System::boot_time().map_or(0, |b| i64::try_from(b).unwrap_or(0).saturating_mul(1000))
        }
    };
    HostFacts {
        hostname: System::host_name().unwrap_or_default(),
        os_name: System::name().unwrap_or_default(),
        os_version: System::os_version().unwrap_or_default(),
        kernel_version: System::kernel_version().unwrap_or_default(),
        arch: System::cpu_arch(),
        cpu_model,
        cpu_cores: u32::try_from(sys.cpus().len()).unwrap_or(u32::MAX),
        memory_total_bytes: memory_total,
        boot_time_ms: boot_time_ms / 1000 * 1000,
        container: container(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_file_wins_and_is_normalised() {
        let e = ContainerEvidence {
            systemd_container: Some("lxc\n"),
            dockerenv: true,
            ..Default::default()
        };
        assert_eq!(detect_container(&e), "lxc");
        let e = ContainerEvidence {
            systemd_container: Some("systemd-nspawn\n"),
            ..Default::default()
        };
        assert_eq!(detect_container(&e), "systemd-nspawn");
        let e = ContainerEvidence {
            systemd_container: Some("lxc-libvirt"),
            ..Default::default()
        };
        assert_eq!(detect_container(&e), "lxc");
    }

    #[test]
    fn pid1_environ_container_variable() {
        let env = b"PATH=/usr/bin\0container=podman\0HOME=/\0";
        let e = ContainerEvidence {
            pid1_environ: Some(env),
            dockerenv: true,
            ..Default::default()
        };
        assert_eq!(detect_container(&e), "podman");
        let no_var = ContainerEvidence {
            pid1_environ: Some(b"PATH=/usr/bin\0notcontainer=x\0"),
            ..Default::default()
        };
        assert_eq!(detect_container(&no_var), "");
    }

    #[test]
    fn marker_files() {
        let docker = ContainerEvidence {
            dockerenv: true,
            ..Default::default()
        };
        assert_eq!(detect_container(&docker), "docker");
        let podman = ContainerEvidence {
            containerenv: true,
            dockerenv: true,
            ..Default::default()
        };
        assert_eq!(detect_container(&podman), "podman");
    }

    #[test]
    fn cgroup_hints() {
        let cases = [
            (
                "12:memory:/docker/0123abcd\n0::/docker/0123abcd\n",
                "docker",
            ),
            ("0::/system.slice/docker-0123abcd.scope\n", "docker"),
            ("0::/lxc.payload.web01\n", "lxc"),
            ("4:memory:/lxc/web01\n", "lxc"),
            ("0::/machine.slice/libpod-0123.scope/container\n", "podman"),
            (
                "0::/machine.slice/machine-web.scope/payload\n",
                "systemd-nspawn",
            ),
            ("0::/init.scope\n", ""),
            ("9:name=systemd:/\n0::/\n", ""),
        ];
        for (cgroup, want) in cases {
            let e = ContainerEvidence {
                pid1_cgroup: Some(cgroup),
                ..Default::default()
            };
            assert_eq!(detect_container(&e), want, "{cgroup:?}");
        }
    }

    #[test]
    fn nothing_means_bare_metal() {
        let e = ContainerEvidence {
            systemd_container: Some("  \n"),
            ..Default::default()
        };
        assert_eq!(detect_container(&e), "");
    }
}
