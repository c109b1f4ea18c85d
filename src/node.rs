//! The node fingerprint: what machine a result came from.

use crate::result::NodeInfo;

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
        hostname: System::host_name().unwrap_or_else(unknown),
        os: System::long_os_version().unwrap_or_else(unknown),
        kernel: System::kernel_version().unwrap_or_else(unknown),
        cpu_brand: sys
            .cpus()
            .first()
            .map(|c| c.brand().trim().to_string())
            .unwrap_or_else(unknown),
        cpu_cores: sys.cpus().len() as u32,
        memory_bytes: sys.total_memory(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprint_describes_this_machine() {
        let node = super::fingerprint();
        assert!(!node.hostname.is_empty());
        assert!(node.cpu_cores >= 1);
        assert!(node.memory_bytes > 0);
    }
}
