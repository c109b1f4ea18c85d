//! The node fingerprint: what machine a result came from.

use crate::result::{NodeInfo, Placement};

/// Reads the host name, OS, kernel, CPU and memory of this machine.
pub fn fingerprint() -> NodeInfo {
    use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};
    let sys = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing())
            .with_memory(MemoryRefreshKind::nothing().with_ram()),
    );
    let unknown = || "unknown".to_string();
    NodeInfo {
        hostname: hostname(),
        os: System::long_os_version().unwrap_or_else(unknown),
        kernel: System::kernel_version().unwrap_or_else(unknown),
        cpu_brand: sys
            .cpus()
            .first()
            .map(|c| c.brand().trim().to_string())
            .unwrap_or_else(unknown),
        cpu_cores: sys.cpus().len() as u32,
        memory_bytes: sys.total_memory(),
        placement: placement(|k| std::env::var(k).ok()),
    }
}

/// This machine's host name ("unknown" when the OS does not say).
pub fn hostname() -> String {
    sysinfo::System::host_name().unwrap_or_else(|| "unknown".into())
}

/// The largest CPU cache the kernel reports for cpu0 (`devices/system/cpu/cpu0/cache/index*/size`
/// under `sys_root`, for example "491520K"): the last-level cache a CPU adapter's working set
/// must leave to be timed from memory. `None` when sysfs says nothing.
pub fn largest_cpu_cache_bytes(sys_root: &std::path::Path) -> Option<u64> {
    let dir = sys_root.join("devices/system/cpu/cpu0/cache");
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("index"))
        .filter_map(|e| std::fs::read_to_string(e.path().join("size")).ok())
        .filter_map(|text| parse_cache_size(text.trim()))
        .max()
}

/// "48K", "2048K", "32M", "1G" or plain bytes.
fn parse_cache_size(text: &str) -> Option<u64> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let scale = match unit {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    Some(n * scale)
}

/// The scheduler slot this process runs in, from its environment: Slurm's own variables, or,
/// under Kubernetes, the downward-API variables `deploy/k8s/` sets (TOKBENCH_NODE_NAME,
/// TOKBENCH_POD_NAME, TOKBENCH_POD_NAMESPACE) and the Indexed Job's JOB_COMPLETION_INDEX.
pub fn placement(env: impl Fn(&str) -> Option<String>) -> Option<Placement> {
    if let Some(job_id) = env("SLURM_JOB_ID") {
        return Some(Placement {
            scheduler: "slurm".into(),
            job_id: Some(job_id),
            node_name: env("SLURMD_NODENAME").or_else(|| env("SLURM_NODENAME")),
            task_id: env("SLURM_PROCID"),
            pod_name: None,
            namespace: None,
        });
    }
    if env("TOKBENCH_POD_NAME").is_some() || env("KUBERNETES_SERVICE_HOST").is_some() {
        return Some(Placement {
            scheduler: "kubernetes".into(),
            job_id: None,
            node_name: env("TOKBENCH_NODE_NAME"),
            task_id: env("JOB_COMPLETION_INDEX"),
            pod_name: env("TOKBENCH_POD_NAME").or_else(|| env("HOSTNAME")),
            namespace: env("TOKBENCH_POD_NAMESPACE"),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_cpu_cache_is_read_from_sysfs() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(largest_cpu_cache_bytes(root.path()), None);
        let cache = root.path().join("devices/system/cpu/cpu0/cache");
        for (index, size) in [
            ("index0", "48K"),
            ("index2", "2048K"),
            ("index3", "491520K"),
        ] {
            std::fs::create_dir_all(cache.join(index)).unwrap();
            std::fs::write(cache.join(index).join("size"), format!("{size}\n")).unwrap();
        }
        std::fs::create_dir_all(cache.join("uevent")).unwrap();
        assert_eq!(largest_cpu_cache_bytes(root.path()), Some(491_520 << 10));
        assert_eq!(parse_cache_size("32M"), Some(32 << 20));
        assert_eq!(parse_cache_size("lots"), None);
    }
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn placement_from_slurm_and_kubernetes_environments() {
        let slurm = super::placement(env(&[
            ("SLURM_JOB_ID", "42"),
            ("SLURMD_NODENAME", "n2"),
            ("SLURM_PROCID", "1"),
        ]))
        .unwrap();
        assert_eq!(
            (
                slurm.scheduler.as_str(),
                slurm.job_id.as_deref(),
                slurm.node_name.as_deref(),
                slurm.task_id.as_deref()
            ),
            ("slurm", Some("42"), Some("n2"), Some("1"))
        );
        let k8s = super::placement(env(&[
            ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
            ("TOKBENCH_NODE_NAME", "gpu-7"),
            ("TOKBENCH_POD_NAME", "tokbench-3-abcde"),
            ("JOB_COMPLETION_INDEX", "3"),
        ]))
        .unwrap();
        assert_eq!(
            (
                k8s.scheduler.as_str(),
                k8s.node_name.as_deref(),
                k8s.pod_name.as_deref(),
                k8s.task_id.as_deref()
            ),
            (
                "kubernetes",
                Some("gpu-7"),
                Some("tokbench-3-abcde"),
                Some("3")
            )
        );
        assert!(super::placement(env(&[("HOME", "/root")])).is_none());
    }

    #[test]
    fn fingerprint_describes_this_machine() {
        let node = super::fingerprint();
        assert!(!node.hostname.is_empty());
        assert!(node.cpu_cores >= 1);
        assert!(node.memory_bytes > 0);
    }
}
