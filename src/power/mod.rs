//! Power and energy: where a watt figure comes from, and the energy over a measured window.
//!
//! Sources, best first: NVML ([`nvml`]), Linux hwmon ([`hwmon`]), RAPL powercap ([`rapl`]), a
//! user command printing watts ([`command`]), declared watts ([`declared`]). Each is one of three
//! kinds ([`Source`]): an energy counter ([`CounterSource`], `measured-counter`: energy as the
//! counter's advance), a power gauge ([`GaugeSource`], `measured-sampled`: read on its own thread
//! by a [`sampler`] and integrated with the trapezoid rule, [`integrate`]), or declared watts.
//! Every source says its [`Scope`]; the kind fixes the [`Provenance`].
//!
//! [`PowerMeter`] opens the source chosen by `selection` (`--power-source`), measures idle
//! power, and turns each measured window into a [`PowerRecord`] (`window`). It never fails once
//! open: a source that stops working gives an `unavailable` record with a warning, and the run
//! goes on.
//!
//! Every sysfs reader takes a root directory ([`PowerOptions::sysfs_root`]) so tests build fake
//! trees; NVML sits behind [`nvml::NvmlApi`] so tests script it.

pub mod command;
pub mod counter;
pub mod declared;
pub mod hwmon;
pub mod integrate;
mod meter;
pub mod nvml;
pub mod rapl;
pub mod sampler;
mod selection;
mod source;
mod sysfs;
pub mod telemetry;
mod window;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use meter::PowerMeter;
pub use source::{CounterSnapshot, CounterSource, GaugeSource, Source, SourceInfo, ZoneCount};
pub use window::{TokenEnergy, WindowStart, record_duty_cycle, token_energy};

use crate::InputError;
pub use crate::result::{PowerAttempt, PowerRecord, PowerSetup, Provenance, Scope};

/// PCI vendor id of NVIDIA.
pub const VENDOR_NVIDIA: u32 = 0x10de;
/// PCI vendor id of Intel.
pub const VENDOR_INTEL: u32 = 0x8086;
/// PCI vendor id of AMD (ATI) graphics.
pub const VENDOR_AMD: u32 = 0x1002;

/// Environment variable naming the sysfs root (tests and containers with a bind-mounted /sys).
pub const SYSFS_ROOT_ENV: &str = "TOKBENCH_SYSFS_ROOT";

/// Which power source the user asked for (`--power-source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PowerRequest {
    /// The best source available for the adapter in use; unusable ones are skipped.
    #[default]
    Auto,
    /// NVIDIA's management library.
    Nvml,
    /// Linux hwmon of an Intel or AMD GPU.
    Hwmon,
    /// Linux RAPL powercap (CPU packages).
    Rapl,
    /// A command printing watts (`--power-cmd`).
    Command,
    /// A wattage the user declared (`--watts`).
    Declared,
    /// No power measurement.
    None,
}

impl PowerRequest {
    /// Every choice, in the order `auto` tries the sources.
    pub const ALL: [PowerRequest; 7] = [
        Self::Auto,
        Self::Nvml,
        Self::Hwmon,
        Self::Rapl,
        Self::Command,
        Self::Declared,
        Self::None,
    ];

    /// The word on the command line and in results.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Nvml => "nvml",
            Self::Hwmon => "hwmon",
            Self::Rapl => "rapl",
            Self::Command => "command",
            Self::Declared => "declared",
            Self::None => "none",
        }
    }
}

impl fmt::Display for PowerRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PowerRequest {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == wanted)
            .ok_or_else(|| {
                InputError::new(format!(
                    "--power-source {s:?}: unknown source; use auto, nvml, hwmon, rapl, command, \
                     declared or none"
                ))
            })
    }
}

/// How power is to be measured: the validated power flags of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerOptions {
    /// `--power-source`.
    pub requested: PowerRequest,
    /// `--watts`: declared constant power, in watts.
    pub watts: Option<f64>,
    /// `--power-cmd`: a shell command that prints watts.
    pub command: Option<String>,
    /// What `--power-cmd` or `--watts` covers (`--power-scope`; default: the whole node at
    /// the wall).
    pub command_scope: Scope,
    /// Root of the sysfs tree (`TOKBENCH_SYSFS_ROOT`, default `/sys`).
    pub sysfs_root: PathBuf,
    /// Sampling rate of sampled sources, in samples per second (`--power-hz`).
    pub hz: f64,
    /// Idle power is measured for this long before the workloads (`--idle-s`); 0 skips it.
    pub idle_s: f64,
    /// Every measured window should last at least this long (`--min-energy-s`), in seconds.
    pub min_energy_s: f64,
    /// Path of libnvidia-ml to load instead of the system's default.
    pub nvml_library: Option<PathBuf>,
    /// Longest a single run of the power command may take, in seconds; `None` means
    /// max(2 s, 2 / hz).
    pub command_timeout_s: Option<f64>,
}

impl Default for PowerOptions {
    fn default() -> Self {
        Self {
            requested: PowerRequest::Auto,
            watts: None,
            command: None,
            command_scope: Scope::NodeWall,
            sysfs_root: default_sysfs_root(),
            hz: 10.0,
            idle_s: 3.0,
            min_energy_s: 0.0,
            nvml_library: None,
            command_timeout_s: None,
        }
    }
}

impl PowerOptions {
    /// Checks the numbers and the pairing of `--power-source` with `--watts`/`--power-cmd`.
    pub fn validate(&self) -> Result<(), InputError> {
        if let Some(w) = self.watts
            && !(w.is_finite() && w > 0.0)
        {
            return Err(InputError::new(format!(
                "--watts {w}: must be a positive, finite number of watts"
            )));
        }
        if !(self.hz.is_finite() && self.hz > 0.0 && self.hz <= 1000.0) {
            return Err(InputError::new(format!(
                "--power-hz {}: must be above 0 and at most 1000 samples per second",
                self.hz
            )));
        }
        if !(self.idle_s.is_finite() && self.idle_s >= 0.0) {
            return Err(InputError::new(format!(
                "--idle-s {}: must be 0 (skip) or a positive number of seconds",
                self.idle_s
            )));
        }
        if !(self.min_energy_s.is_finite() && self.min_energy_s >= 0.0) {
            return Err(InputError::new(format!(
                "--min-energy-s {}: must be 0 or a positive number of seconds",
                self.min_energy_s
            )));
        }
        if let Some(t) = self.command_timeout_s
            && !(t.is_finite() && t > 0.0)
        {
            return Err(InputError::new(format!(
                "power command timeout {t}: must be a positive number of seconds"
            )));
        }
        if let Some(cmd) = &self.command
            && cmd.trim().is_empty()
        {
            return Err(InputError::new("--power-cmd: the command is empty"));
        }
        match self.requested {
            PowerRequest::Declared if self.watts.is_none() => Err(InputError::new(
                "--power-source declared needs --watts W (the node's power in watts)",
            )),
            PowerRequest::Command if self.command.is_none() => Err(InputError::new(
                "--power-source command needs --power-cmd 'CMD' (a command that prints watts)",
            )),
            _ => Ok(()),
        }
    }

    /// The power command's time limit: the option, else max(2 s, 2 / hz).
    pub fn command_timeout(&self) -> std::time::Duration {
        let s = self
            .command_timeout_s
            .unwrap_or_else(|| (2.0 / self.hz).max(2.0));
        std::time::Duration::from_secs_f64(s)
    }
}

/// `TOKBENCH_SYSFS_ROOT` when set and not empty, else `/sys`.
pub fn default_sysfs_root() -> PathBuf {
    std::env::var_os(SYSFS_ROOT_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/sys"))
}

/// The adapter power is measured for: enough to match it to an NVML device or a hwmon.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdapterIdentity {
    /// Adapter name as wgpu reports it.
    pub name: String,
    /// PCI vendor id (0x10de NVIDIA, 0x8086 Intel, 0x1002 AMD; other values for software
    /// devices).
    pub vendor_id: u32,
    /// PCI device id; 0 when the backend does not report it.
    pub device_id: u32,
    /// True for a CPU device such as lavapipe: RAPL is then the right source.
    pub cpu_adapter: bool,
    /// PCI bus id, for example "0000:01:00.0", when the backend reports it.
    pub pci_bus_id: Option<String>,
}

impl AdapterIdentity {
    /// The identity of a wgpu adapter.
    pub fn from_wgpu(info: &wgpu::AdapterInfo) -> Self {
        Self {
            name: info.name.clone(),
            vendor_id: info.vendor,
            device_id: info.device,
            cpu_adapter: info.device_type == wgpu::DeviceType::Cpu,
            pci_bus_id: Some(info.device_pci_bus_id.trim().to_string()).filter(|s| !s.is_empty()),
        }
    }

    /// `"NAME" (vendor 0x10de, device 0x2330)`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{:?} (vendor {:#06x}, device {:#06x})",
            self.name, self.vendor_id, self.device_id
        )
    }
}

/// A PCI address: domain, bus, device, function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciAddress {
    /// PCI domain (segment).
    pub domain: u32,
    /// Bus number.
    pub bus: u8,
    /// Device number.
    pub device: u8,
    /// Function number.
    pub function: u8,
}

impl PciAddress {
    /// Parses "dddd:bb:dd.f" (wgpu, sysfs), "dddddddd:bb:dd.f" (NVML) or "bb:dd.f" (domain 0).
    /// Matching is numeric, so the different widths of the domain compare equal.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (head, function) = s.rsplit_once('.')?;
        let parts: Vec<&str> = head.split(':').collect();
        let (domain, bus, device) = match parts.as_slice() {
            [d, b, v] => (u32::from_str_radix(d, 16).ok()?, *b, *v),
            [b, v] => (0, *b, *v),
            _ => return None,
        };
        Some(Self {
            domain,
            bus: u8::from_str_radix(bus, 16).ok()?,
            device: u8::from_str_radix(device, 16).ok()?,
            function: u8::from_str_radix(function, 16).ok()?,
        })
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_request_round_trips_and_rejects_unknown_words() {
        for r in PowerRequest::ALL {
            assert_eq!(r.to_string().parse::<PowerRequest>().unwrap(), r);
        }
        assert_eq!(
            " NVML ".parse::<PowerRequest>().unwrap(),
            PowerRequest::Nvml
        );
        let err = "ipmi".parse::<PowerRequest>().unwrap_err().to_string();
        assert!(err.contains("ipmi") && err.contains("rapl"), "{err}");
    }

    #[test]
    fn bad_options_are_input_errors() {
        let ok = PowerOptions::default();
        assert!(ok.validate().is_ok());
        for w in [0.0, -5.0, f64::NAN, f64::INFINITY] {
            let o = PowerOptions {
                watts: Some(w),
                ..ok.clone()
            };
            let err = o.validate().unwrap_err().to_string();
            assert!(err.contains("--watts"), "{err}");
        }
        for hz in [0.0, -1.0, f64::NAN, 1e6] {
            let o = PowerOptions { hz, ..ok.clone() };
            assert!(o.validate().unwrap_err().to_string().contains("--power-hz"));
        }
        let o = PowerOptions {
            idle_s: -1.0,
            ..ok.clone()
        };
        assert!(o.validate().unwrap_err().to_string().contains("--idle-s"));
        let o = PowerOptions {
            min_energy_s: f64::NAN,
            ..ok.clone()
        };
        assert!(o.validate().is_err());
        let o = PowerOptions {
            command: Some("  ".into()),
            ..ok.clone()
        };
        assert!(o.validate().unwrap_err().to_string().contains("empty"));
        let o = PowerOptions {
            requested: PowerRequest::Declared,
            ..ok.clone()
        };
        assert!(o.validate().unwrap_err().to_string().contains("--watts"));
        let o = PowerOptions {
            requested: PowerRequest::Command,
            ..ok.clone()
        };
        assert!(
            o.validate()
                .unwrap_err()
                .to_string()
                .contains("--power-cmd")
        );
    }

    #[test]
    fn command_timeout_defaults_to_two_periods_or_two_seconds() {
        let mut o = PowerOptions::default();
        assert_eq!(o.command_timeout().as_secs_f64(), 2.0);
        o.hz = 0.5;
        assert_eq!(o.command_timeout().as_secs_f64(), 4.0);
        o.command_timeout_s = Some(0.25);
        assert_eq!(o.command_timeout().as_secs_f64(), 0.25);
    }

    #[test]
    fn pci_addresses_of_every_width_compare_numerically() {
        let wgpu = PciAddress::parse("0000:01:00.0").unwrap();
        let nvml = PciAddress::parse("00000000:01:00.0").unwrap();
        let short = PciAddress::parse("01:00.0").unwrap();
        assert_eq!(wgpu, nvml);
        assert_eq!(wgpu, short);
        assert_eq!(wgpu.to_string(), "0000:01:00.0");
        assert_ne!(wgpu, PciAddress::parse("0000:41:00.0").unwrap());
        assert!(PciAddress::parse("device").is_none());
        assert!(PciAddress::parse("").is_none());
    }

    #[test]
    fn adapter_identity_from_wgpu_info() {
        let info = wgpu::AdapterInfo {
            name: "llvmpipe".into(),
            vendor: 0x10005,
            device: 0,
            device_type: wgpu::DeviceType::Cpu,
            device_pci_bus_id: String::new(),
            driver: String::new(),
            driver_info: String::new(),
            backend: wgpu::Backend::Vulkan,
            subgroup_min_size: 4,
            subgroup_max_size: 4,
            transient_saves_memory: None,
            limit_bucket: None,
        };
        let id = AdapterIdentity::from_wgpu(&info);
        assert!(id.cpu_adapter);
        assert_eq!(id.pci_bus_id, None);
        let gpu = AdapterIdentity::from_wgpu(&wgpu::AdapterInfo {
            vendor: VENDOR_NVIDIA,
            device_type: wgpu::DeviceType::DiscreteGpu,
            device_pci_bus_id: "0000:01:00.0".into(),
            ..info
        });
        assert!(!gpu.cpu_adapter);
        assert_eq!(gpu.pci_bus_id.as_deref(), Some("0000:01:00.0"));
    }
}
