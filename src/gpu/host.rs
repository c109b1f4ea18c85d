//! GPUs the host has, found without wgpu (device nodes and DRM in sysfs), so a run that lands on
//! a CPU adapter (lavapipe) or on GL while a GPU sits in the machine can say which Vulkan driver
//! is missing instead of benchmarking the CPU in silence. Both roots are parameters, so tests
//! build fake `/dev` and `/sys` trees.

use std::path::{Path, PathBuf};

/// A GPU the host has, whether or not wgpu sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGpu {
    /// Where it was found, for example "/dev/nvidia0" or "/sys/class/drm/renderD128".
    pub found_at: String,
    /// The kernel driver, for example "nvidia", "amdgpu", "i915".
    pub driver: String,
    /// The Vulkan driver that would let wgpu see it.
    pub vulkan_driver: &'static str,
}

/// Kernel drivers of GPUs that can run compute, and the Vulkan driver each needs.
const GPU_DRIVERS: &[(&str, &str)] = &[
    (
        "nvidia",
        "NVIDIA's Vulkan driver (nvidia_icd.json, shipped with the NVIDIA driver: the libnvidia-gl / nvidia-vulkan-icd package)",
    ),
    (
        "nouveau",
        "NVK (mesa-vulkan-drivers from Mesa 24.1 or later), or NVIDIA's own driver with its Vulkan ICD",
    ),
    ("amdgpu", "RADV (mesa-vulkan-drivers) or AMDVLK"),
    (
        "radeon",
        "RADV (mesa-vulkan-drivers; the card may need the amdgpu kernel driver)",
    ),
    ("i915", "ANV (mesa-vulkan-drivers)"),
    ("xe", "ANV (mesa-vulkan-drivers)"),
    ("msm", "Turnip (mesa-vulkan-drivers)"),
    ("panfrost", "PanVK (mesa-vulkan-drivers)"),
    ("panthor", "PanVK (mesa-vulkan-drivers)"),
    ("v3d", "v3dv (mesa-vulkan-drivers)"),
    ("asahi", "Honeykrisp (mesa-vulkan-drivers)"),
    (
        "virtio_gpu",
        "Venus (mesa-vulkan-drivers, with a Vulkan-capable host)",
    ),
];

/// Display-only and virtual DRM drivers: no compute GPU behind them (server BMCs have ast or
/// mgag200; firmware framebuffers are simpledrm).
const NOT_GPUS: &[&str] = &[
    "simpledrm",
    "simple-framebuffer",
    "efifb",
    "vgem",
    "vkms",
    "ast",
    "mgag200",
    "hibmc-drm",
    "bochs-drm",
    "bochs",
    "cirrus",
    "cirrus-qemu",
    "qxl",
    "vboxvideo",
    "udl",
];

/// The Vulkan driver a DRM kernel driver needs; a generic hint for one tokbench does not know.
fn vulkan_driver_for(driver: &str) -> &'static str {
    GPU_DRIVERS
        .iter()
        .find(|(d, _)| *d == driver)
        .map_or("the GPU vendor's Vulkan driver", |(_, v)| v)
}

/// Every GPU under `dev_root` (NVIDIA's `nvidia<N>` nodes) and `sys_root` (`class/drm`: cards
/// and render nodes whose driver is a GPU's), one entry per device.
pub fn host_gpus(sys_root: &Path, dev_root: &Path) -> Vec<HostGpu> {
    let mut found = Vec::new();
    let mut seen_devices: Vec<PathBuf> = Vec::new();
    let drm = sys_root.join("class/drm");
    let mut entries: Vec<_> = std::fs::read_dir(&drm)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // card0, renderD128; not connectors (card0-HDMI-A-1) or "version".
        .filter(|name| {
            let number = name
                .strip_prefix("renderD")
                .or_else(|| name.strip_prefix("card"));
            number.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    entries.sort();
    for name in entries {
        let device = drm.join(&name).join("device");
        let Some(driver) = std::fs::read_link(device.join("driver"))
            .ok()
            .and_then(|t| t.file_name().map(|f| f.to_string_lossy().into_owned()))
        else {
            continue;
        };
        let render_node = name.starts_with("renderD");
        let known = GPU_DRIVERS.iter().any(|(d, _)| *d == driver);
        // An unknown driver counts when it offers a render node: display-only drivers do not.
        if NOT_GPUS.contains(&driver.as_str()) || !(known || render_node) {
            continue;
        }
        // A card and its render node are one device.
        let id = std::fs::canonicalize(&device).unwrap_or(device);
        if seen_devices.contains(&id) {
            continue;
        }
        seen_devices.push(id);
        found.push(HostGpu {
            found_at: format!("/sys/class/drm/{name}"),
            vulkan_driver: vulkan_driver_for(&driver),
            driver,
        });
    }
    if !found.iter().any(|g| g.driver == "nvidia") {
        let mut nodes: Vec<String> = std::fs::read_dir(dev_root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.strip_prefix("nvidia")
                    .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        nodes.sort();
        found.extend(nodes.into_iter().map(|n| HostGpu {
            found_at: format!("/dev/{n}"),
            driver: "nvidia".into(),
            vulkan_driver: vulkan_driver_for("nvidia"),
        }));
    }
    found
}

/// What to tell the user about the adapter chosen, given the GPUs the host has.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdapterAdvice {
    /// Lines to print, loudly; empty when the choice is what the host can best do.
    pub warnings: Vec<String>,
    /// True when the adapter is a CPU one (lavapipe, llvmpipe): `--require-gpu` refuses it.
    pub cpu_adapter: bool,
}

/// Advice on running on `info` on a host with `host` GPUs. `gl_chosen_by_user` is true when
/// `--backend gl` asked for GL, which then needs no advice of its own.
pub fn advise(
    info: &wgpu::AdapterInfo,
    host: &[HostGpu],
    gl_chosen_by_user: bool,
) -> AdapterAdvice {
    let cpu_adapter = info.device_type == wgpu::DeviceType::Cpu;
    let mut warnings = Vec::new();
    if cpu_adapter && !host.is_empty() {
        for gpu in host {
            warnings.push(format!(
                "this machine has a GPU ({} at {}) that wgpu cannot see, so tokbench is running on the CPU adapter {:?}: this is a benchmark of the CPU, not of the GPU. Install its Vulkan driver: {}",
                gpu.driver, gpu.found_at, info.name, gpu.vulkan_driver
            ));
        }
    }
    if info.backend == wgpu::Backend::Gl && !gl_chosen_by_user {
        let fix = if host.is_empty() {
            "install a Vulkan driver: `apt-get install mesa-vulkan-drivers` (lavapipe, a CPU Vulkan driver, where there is no GPU)".to_string()
        } else {
            let drivers: Vec<&str> = host.iter().map(|g| g.vulkan_driver).collect();
            format!("install the GPU's Vulkan driver: {}", drivers.join("; "))
        };
        warnings.push(format!(
            "wgpu found no Vulkan adapter and fell back to OpenGL ({:?}): GL is not tokbench's supported path (no f16, no timestamps on many drivers, slower); {fix}",
            info.name
        ));
    }
    AdapterAdvice {
        warnings,
        cpu_adapter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A DRM entry `name` under `sys` whose device is `pci` with driver `driver`.
    fn drm_entry(sys: &Path, name: &str, pci: &str, driver: &str) {
        let device = sys.join("devices").join(pci);
        std::fs::create_dir_all(&device).unwrap();
        let drivers = sys.join("bus/pci/drivers").join(driver);
        std::fs::create_dir_all(&drivers).unwrap();
        let link = device.join("driver");
        if !link.exists() {
            symlink(&drivers, &link).unwrap();
        }
        let entry = sys.join("class/drm").join(name);
        std::fs::create_dir_all(&entry).unwrap();
        symlink(&device, entry.join("device")).unwrap();
    }

    fn info(ty: wgpu::DeviceType, backend: wgpu::Backend) -> wgpu::AdapterInfo {
        wgpu::AdapterInfo {
            name: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
            vendor: 0x10005,
            device: 0,
            device_type: ty,
            device_pci_bus_id: String::new(),
            driver: "llvmpipe".into(),
            driver_info: String::new(),
            backend,
            subgroup_min_size: 8,
            subgroup_max_size: 8,
            transient_saves_memory: None,
            limit_bucket: None,
        }
    }

    #[test]
    fn gpus_are_found_in_drm_and_dev_and_display_only_drivers_are_not() {
        let root = tempfile::tempdir().unwrap();
        let (sys, dev) = (root.path().join("sys"), root.path().join("dev"));
        std::fs::create_dir_all(&dev).unwrap();
        assert!(host_gpus(&sys, &dev).is_empty(), "an empty machine");
        // A server's BMC display and a firmware framebuffer are not GPUs.
        drm_entry(&sys, "card0", "0000:02:00.0", "ast");
        drm_entry(&sys, "card1", "simple-framebuffer.0", "simpledrm");
        std::fs::create_dir_all(sys.join("class/drm/card0-VGA-1")).unwrap();
        assert!(host_gpus(&sys, &dev).is_empty());
        // An AMD GPU: its card and render node are one device.
        drm_entry(&sys, "card2", "0000:c1:00.0", "amdgpu");
        drm_entry(&sys, "renderD128", "0000:c1:00.0", "amdgpu");
        let found = host_gpus(&sys, &dev);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].driver, "amdgpu");
        assert!(found[0].vulkan_driver.contains("RADV"));
        // NVIDIA device nodes without DRM (nvidia-drm not loaded).
        std::fs::write(dev.join("nvidia0"), "").unwrap();
        std::fs::write(dev.join("nvidiactl"), "").unwrap();
        std::fs::write(dev.join("nvidia-uvm"), "").unwrap();
        let found = host_gpus(&sys, &dev);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[1].found_at, "/dev/nvidia0");
        assert!(found[1].vulkan_driver.contains("nvidia_icd.json"));
    }

    #[test]
    fn a_cpu_adapter_beside_a_hidden_gpu_is_said_loudly_and_a_gl_fallback_names_the_fix() {
        use wgpu::{Backend, DeviceType};
        let nvidia = HostGpu {
            found_at: "/dev/nvidia0".into(),
            driver: "nvidia".into(),
            vulkan_driver: vulkan_driver_for("nvidia"),
        };
        let lavapipe = info(DeviceType::Cpu, Backend::Vulkan);
        let quiet = advise(&lavapipe, &[], false);
        assert!(quiet.warnings.is_empty() && quiet.cpu_adapter);
        let loud = advise(&lavapipe, std::slice::from_ref(&nvidia), false);
        assert_eq!(loud.warnings.len(), 1);
        assert!(
            loud.warnings[0].contains("/dev/nvidia0")
                && loud.warnings[0].contains("nvidia_icd.json")
                && loud.warnings[0].contains("not of the GPU"),
            "{loud:?}"
        );
        let gl = advise(&info(DeviceType::Cpu, Backend::Gl), &[], false);
        assert!(
            gl.warnings[0].contains("OpenGL") && gl.warnings[0].contains("mesa-vulkan-drivers"),
            "{gl:?}"
        );
        assert!(
            advise(&info(DeviceType::Cpu, Backend::Gl), &[], true)
                .warnings
                .is_empty(),
            "--backend gl asked for it"
        );
        let gpu = advise(
            &info(DeviceType::DiscreteGpu, Backend::Vulkan),
            &[nvidia],
            false,
        );
        assert!(gpu.warnings.is_empty() && !gpu.cpu_adapter);
    }
}
