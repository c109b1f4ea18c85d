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
