//! NVIDIA GPUs through NVML (nvml-wrapper). The library is loaded at run time, so a binary
//! built here runs where there is no NVIDIA driver; NVML then simply is not available.
//!
//! The total-energy counter (mJ, Volta and newer) is the source (`measured-counter`); where
//! the device has none, power usage is sampled (`measured-sampled`). With both, the sampled
//! power cross-checks the counter. Everything goes through [`NvmlApi`], so tests script it.

use std::path::Path;
use std::sync::Arc;

use super::source::{CounterSnapshot, CounterSource, GaugeSource, Source, SourceInfo, ZoneCount};
use super::telemetry::{TelemetryReading, TelemetrySource};
use super::{AdapterIdentity, PciAddress, VENDOR_NVIDIA};
use crate::result::Scope;

/// Why an NVML call gave no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NvmlFault {
    /// The device does not have this (an energy counter before Volta, for example).
    #[error("not supported on this device")]
    NotSupported,
    /// Anything else, in NVML's words.
    #[error("{0}")]
    Failed(String),
}

/// A device's PCI identity as NVML reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvmlPci {
    /// Bus id, for example "00000000:01:00.0".
    pub bus_id: String,
    /// PCI vendor id (0x10de).
    pub vendor_id: u32,
    /// PCI device id.
    pub device_id: u32,
}

/// The few NVML calls tokbench makes, by device index.
pub trait NvmlApi: Send + Sync {
    /// Devices NVML sees.
    fn device_count(&self) -> Result<u32, NvmlFault>;
    /// Product name of a device.
    fn name(&self, index: u32) -> Result<String, NvmlFault>;
    /// PCI identity of a device.
    fn pci(&self, index: u32) -> Result<NvmlPci, NvmlFault>;
    /// Energy since the driver was loaded, in millijoules.
    fn total_energy_mj(&self, index: u32) -> Result<u64, NvmlFault>;
    /// Power now, in milliwatts (a 1-second average on recent GPUs).
    fn power_mw(&self, index: u32) -> Result<u32, NvmlFault>;
    /// A clock now, in MHz.
    fn clock_mhz(&self, index: u32, clock: NvmlClock) -> Result<u32, NvmlFault>;
    /// GPU temperature now, in degrees Celsius.
    fn temperature_c(&self, index: u32) -> Result<u32, NvmlFault>;
    /// Clock throttle reasons active now: NVML's bitmask (see [`THROTTLE_REASONS`]).
    fn throttle_reasons(&self, index: u32) -> Result<u64, NvmlFault>;
    /// Power limit in force now, in milliwatts.
    fn power_limit_mw(&self, index: u32) -> Result<u32, NvmlFault>;
    /// Performance state now, 0 (fastest) to 15.
    fn pstate(&self, index: u32) -> Result<u32, NvmlFault>;
}

/// The clocks telemetry reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NvmlClock {
    /// The streaming multiprocessors' clock.
    Sm,
    /// The memory clock.
    Memory,
}

/// NVML's clock throttle reasons: bit, name in results, and whether it slows the clocks below
/// what the workload asks for (idle, application clocks and display clocks do not).
pub const THROTTLE_REASONS: [(u64, &str, bool); 9] = [
    (0x1, "gpu-idle", false),
    (0x2, "applications-clocks-setting", false),
    (0x4, "sw-power-cap", true),
    (0x8, "hw-slowdown", true),
    (0x10, "sync-boost", true),
    (0x20, "sw-thermal-slowdown", true),
    (0x40, "hw-thermal-slowdown", true),
    (0x80, "hw-power-brake-slowdown", true),
    (0x100, "display-clock-setting", false),
];

/// The real NVML, through nvml-wrapper.
pub struct RealNvml {
    nvml: nvml_wrapper::Nvml,
}

impl RealNvml {
    /// Loads libnvidia-ml from `library`, or from the system's default place, and initialises
    /// it. `Err` says why NVML is not available; nothing here panics.
    pub fn load(library: Option<&Path>) -> Result<Self, String> {
        use nvml_wrapper::error::NvmlError;
        let init = match library {
            Some(path) => nvml_wrapper::Nvml::builder()
                .lib_path(path.as_os_str())
                .init(),
            None => nvml_wrapper::Nvml::init(),
        };
        // nvml-wrapper's default is "libnvidia-ml.so.1", found through the loader's path.
        let lib = library.map_or_else(
            || "libnvidia-ml.so.1".to_string(),
            |p| p.display().to_string(),
        );
        init.map(|nvml| Self { nvml }).map_err(|e| match e {
            NvmlError::LibloadingError(e) => format!(
                "cannot load the NVML library {lib} ({e}); no NVIDIA driver on this machine?"
            ),
            NvmlError::DriverNotLoaded => {
                "NVML loaded, but the NVIDIA kernel driver is not running".to_string()
            }
            e => format!("NVML initialisation failed: {e}"),
        })
    }

    fn device(&self, index: u32) -> Result<nvml_wrapper::Device<'_>, NvmlFault> {
        self.nvml.device_by_index(index).map_err(fault)
    }
}

fn fault(e: nvml_wrapper::error::NvmlError) -> NvmlFault {
    match e {
        nvml_wrapper::error::NvmlError::NotSupported => NvmlFault::NotSupported,
        e => NvmlFault::Failed(e.to_string()),
    }
}

impl NvmlApi for RealNvml {
    fn device_count(&self) -> Result<u32, NvmlFault> {
        self.nvml.device_count().map_err(fault)
    }

    fn name(&self, index: u32) -> Result<String, NvmlFault> {
        self.device(index)?.name().map_err(fault)
    }

    fn pci(&self, index: u32) -> Result<NvmlPci, NvmlFault> {
        let info = self.device(index)?.pci_info().map_err(fault)?;
        Ok(NvmlPci {
            bus_id: info.bus_id,
            // "The combined 16-bit device ID and 16-bit vendor ID".
            vendor_id: info.pci_device_id & 0xffff,
            device_id: info.pci_device_id >> 16,
        })
    }

    fn total_energy_mj(&self, index: u32) -> Result<u64, NvmlFault> {
        self.device(index)?
            .total_energy_consumption()
            .map_err(fault)
    }

    fn power_mw(&self, index: u32) -> Result<u32, NvmlFault> {
        self.device(index)?.power_usage().map_err(fault)
    }

    fn clock_mhz(&self, index: u32, clock: NvmlClock) -> Result<u32, NvmlFault> {
        use nvml_wrapper::enum_wrappers::device::Clock;
        let clock = match clock {
            NvmlClock::Sm => Clock::SM,
            NvmlClock::Memory => Clock::Memory,
        };
        self.device(index)?.clock_info(clock).map_err(fault)
    }

    fn temperature_c(&self, index: u32) -> Result<u32, NvmlFault> {
        use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
        self.device(index)?
            .temperature(TemperatureSensor::Gpu)
            .map_err(fault)
    }

    fn throttle_reasons(&self, index: u32) -> Result<u64, NvmlFault> {
        self.device(index)?
            .current_throttle_reasons()
            .map(|r| r.bits())
            .map_err(fault)
    }

    fn power_limit_mw(&self, index: u32) -> Result<u32, NvmlFault> {
        self.device(index)?.enforced_power_limit().map_err(fault)
    }

    fn pstate(&self, index: u32) -> Result<u32, NvmlFault> {
        let state = self.device(index)?.performance_state().map_err(fault)?;
        // NVML_PSTATE_0..15 are 0..15; anything else is "unknown".
        let n = state.as_c();
        if n <= 15 {
            Ok(n)
        } else {
            Err(NvmlFault::NotSupported)
        }
    }
}

/// The NVML side of a power setup: the source, an optional cross-check, and notes that
/// qualify every figure.
pub struct NvmlChoice {
    /// The energy counter, or sampled power where there is no counter.
    pub primary: Source,
    /// Sampled power beside a counter.
    pub cross_check: Option<Arc<dyn GaugeSource>>,
    /// For example, an ambiguous match of the adapter to an NVML device.
    pub notes: Vec<String>,
}

/// Matches `adapter` to an NVML device and picks what to read from it. `Err` says why NVML
/// cannot measure this adapter.
pub fn open(api: Arc<dyn NvmlApi>, adapter: &AdapterIdentity) -> Result<NvmlChoice, String> {
    let (device, mut notes) = NvmlDevice::of(api.clone(), adapter)?;
    let index = device.index;
    let energy = api.total_energy_mj(index);
    let power = api.power_mw(index);
    match (energy, power) {
        (Ok(_), Ok(_)) => Ok(NvmlChoice {
            primary: Source::Counter(Arc::new(NvmlAttr::<true>(device.clone()))),
            cross_check: Some(Arc::new(NvmlAttr::<false>(device))),
            notes,
        }),
        (Ok(_), Err(_)) => Ok(NvmlChoice {
            primary: Source::Counter(Arc::new(NvmlAttr::<true>(device))),
            cross_check: None,
            notes,
        }),
        (Err(e), Ok(_)) => {
            if e != NvmlFault::NotSupported {
                notes.push(format!(
                    "NVML energy counter unreadable ({e}); sampled power usage instead"
                ));
            }
            Ok(NvmlChoice {
                primary: Source::Gauge(Arc::new(NvmlAttr::<false>(device))),
                cross_check: None,
                notes,
            })
        }
        (Err(e), Err(p)) => Err(format!(
            "{}: energy counter: {e}; power usage: {p}",
            device.label
        )),
    }
}

/// The NVML index of the adapter: by PCI bus id, failing that by PCI ids, by name, or as the
/// only NVIDIA device. Notes say when the match is a guess.
fn match_device(
    api: &dyn NvmlApi,
    adapter: &AdapterIdentity,
) -> Result<(u32, Vec<String>), String> {
    let count = api
        .device_count()
        .map_err(|e| format!("NVML cannot count devices: {e}"))?;
    if count == 0 {
        return Err("NVML sees no devices".into());
    }
    let pcis: Vec<Option<NvmlPci>> = (0..count).map(|i| api.pci(i).ok()).collect();
    let names: Vec<String> = (0..count)
        .map(|i| api.name(i).unwrap_or_else(|_| "?".into()))
        .collect();
    let listing = || {
        (0..count as usize)
            .map(|i| {
                let bus = pcis[i].as_ref().map_or("?", |p| p.bus_id.as_str());
                format!("{i}: {} at {bus}", names[i])
            })
            .collect::<Vec<_>>()
            .join("; ")
    };

    if let Some(wanted) = adapter.pci_bus_id.as_deref().and_then(PciAddress::parse) {
        return pcis
            .iter()
            .position(|p| {
                p.as_ref()
                    .and_then(|p| PciAddress::parse(&p.bus_id))
                    .is_some_and(|a| a == wanted)
            })
            .map(|i| (i as u32, Vec::new()))
            .ok_or_else(|| {
                format!(
                    "no NVML device at the adapter's PCI bus id {wanted} (NVML has {})",
                    listing()
                )
            });
    }
    if adapter.vendor_id != VENDOR_NVIDIA {
        return Err(format!(
            "the adapter {} is not an NVIDIA GPU, so NVML cannot measure it",
            adapter.describe()
        ));
    }
    let pick = |candidates: Vec<u32>, how: &str| -> Option<(u32, Vec<String>)> {
        let first = *candidates.first()?;
        let notes = if candidates.len() > 1 {
            vec![format!(
                "{} NVML devices match the adapter by {how} and it reports no PCI bus id; \
                 measuring device {first}, which may not be the one running the workload",
                candidates.len()
            )]
        } else {
            Vec::new()
        };
        Some((first, notes))
    };
    let by_ids: Vec<u32> = (0..count)
        .filter(|&i| {
            adapter.device_id != 0
                && pcis[i as usize].as_ref().is_some_and(|p| {
                    p.vendor_id == adapter.vendor_id && p.device_id == adapter.device_id
                })
        })
        .collect();
    if let Some(found) = pick(by_ids, "PCI device id") {
        return Ok(found);
    }
    let wanted_name = adapter.name.trim().to_lowercase();
    let by_name: Vec<u32> = (0..count)
        .filter(|&i| {
            !wanted_name.is_empty() && names[i as usize].trim().to_lowercase() == wanted_name
        })
        .collect();
    if let Some(found) = pick(by_name, "name") {
        return Ok(found);
    }
    if count == 1 {
        return Ok((
            0,
            vec![format!(
                "adapter {} matched to the only NVML device, {}, without a PCI bus id or \
                 matching ids",
                adapter.name, names[0]
            )],
        ));
    }
    Err(format!(
        "none of the NVML devices matches the adapter {} ({})",
        adapter.describe(),
        listing()
    ))
}

/// One NVML device.
#[derive(Clone)]
struct NvmlDevice {
    api: Arc<dyn NvmlApi>,
    index: u32,
    label: String,
}

impl NvmlDevice {
    /// The NVML device of `adapter`, with notes on how good the match is.
    fn of(api: Arc<dyn NvmlApi>, adapter: &AdapterIdentity) -> Result<(Self, Vec<String>), String> {
        let (index, notes) = match_device(api.as_ref(), adapter)?;
        let name = api.name(index).unwrap_or_else(|_| "?".into());
        let bus = api.pci(index).map(|p| p.bus_id).unwrap_or_default();
        let label = format!("NVML device {index} ({name}, {bus})");
        Ok((Self { api, index, label }, notes))
    }
}

/// NVML's clocks, temperature, throttle reasons, power limit and P-state of one device.
pub struct NvmlTelemetry(NvmlDevice);

impl NvmlTelemetry {
    /// The telemetry of `adapter`'s NVML device. `Err` says why there is none (no match, or
    /// the device reports none of the figures).
    pub fn open(api: Arc<dyn NvmlApi>, adapter: &AdapterIdentity) -> Result<Self, String> {
        let (device, _) = NvmlDevice::of(api, adapter)?;
        let t = Self(device);
        if t.read() == TelemetryReading::default() {
            return Err(format!("{}: reports no clocks or temperature", t.0.label));
        }
        Ok(t)
    }
}

impl TelemetrySource for NvmlTelemetry {
    fn name(&self) -> &'static str {
        "nvml"
    }

    fn describe(&self) -> String {
        self.0.label.clone()
    }

    fn read(&self) -> TelemetryReading {
        let (api, i) = (self.0.api.as_ref(), self.0.index);
        TelemetryReading {
            sm_clock_mhz: api.clock_mhz(i, NvmlClock::Sm).ok().map(f64::from),
            memory_clock_mhz: api.clock_mhz(i, NvmlClock::Memory).ok().map(f64::from),
            temperature_c: api.temperature_c(i).ok().map(f64::from),
            power_limit_w: api.power_limit_mw(i).ok().map(|mw| f64::from(mw) * 1e-3),
            pstate: api.pstate(i).ok().map(f64::from),
            throttle_reasons: api.throttle_reasons(i).ok(),
        }
    }
}

/// One NVML reading of a device as a source of its kind, as hwmon's attributes are:
/// `NvmlAttr<true>` is the total-energy counter (mJ), a `measured-counter` source;
/// `NvmlAttr<false>` is power usage (mW), a `measured-sampled` one. Both cover the whole board.
struct NvmlAttr<const ENERGY: bool>(NvmlDevice);

/// The total-energy counter.
type NvmlEnergy = NvmlAttr<true>;
/// Power usage.
type NvmlPower = NvmlAttr<false>;

impl<const ENERGY: bool> SourceInfo for NvmlAttr<ENERGY> {
    fn name(&self) -> &'static str {
        "nvml"
    }

    fn scope(&self) -> Scope {
        Scope::GpuBoard
    }

    fn describe(&self) -> String {
        let what = if ENERGY {
            "total energy counter"
        } else {
            "power usage, sampled"
        };
        format!("{}: {what}", self.0.label)
    }

    /// Power usage is a 1-second average on recent GPUs; the counter advances in steps of the
    /// driver's own power samples, so a window of a second keeps the step small beside the
    /// total, and matches the cross-check's 1 s average.
    fn min_window_s(&self) -> f64 {
        1.0
    }
}

impl CounterSource for NvmlEnergy {
    fn read_counter(&self) -> anyhow::Result<CounterSnapshot> {
        let raw = self
            .0
            .api
            .total_energy_mj(self.0.index)
            .map_err(|e| anyhow::anyhow!("NVML energy counter: {e}"))?;
        Ok(CounterSnapshot {
            unit_j: 1e-3,
            // Counts from the driver's load; it restarts from 0 on a reload, never wraps.
            zones: vec![ZoneCount { raw, wrap_at: None }],
        })
    }

    /// A 64-bit count of millijoules: it never wraps, so the window's edges suffice.
    fn wrap_period_s(&self) -> Option<f64> {
        None
    }
}

impl GaugeSource for NvmlPower {
    fn read_watts(&self) -> anyhow::Result<f64> {
        let mw = self
            .0
            .api
            .power_mw(self.0.index)
            .map_err(|e| anyhow::anyhow!("NVML power usage: {e}"))?;
        Ok(f64::from(mw) * 1e-3)
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A scripted NVML for tests.

    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::time::Instant;

    use super::*;

    /// What the energy counter does.
    pub(crate) enum Energy {
        /// Not supported (before Volta).
        NotSupported,
        /// Rises at this many watts from a start value, in real time.
        Rising { watts: f64, base_mj: u64 },
        /// These values in turn; the last one repeats.
        Script(VecDeque<u64>),
    }

    /// One scripted device.
    pub(crate) struct FakeDevice {
        pub name: String,
        pub bus_id: String,
        pub device_id: u32,
        pub energy: Mutex<Energy>,
        /// Power usage in watts; `None` is NotSupported.
        pub power_w: Option<f64>,
        /// Clocks, temperature and the rest; `None`: all NotSupported.
        pub telemetry: Option<FakeTelemetry>,
    }

    /// A device's scripted telemetry.
    pub(crate) struct FakeTelemetry {
        /// SM clocks in turn, in MHz; the last one repeats.
        pub sm_clocks_mhz: Mutex<VecDeque<u32>>,
        pub memory_clock_mhz: u32,
        pub temperature_c: u32,
        /// NVML's throttle reason bits.
        pub throttle_reasons: u64,
        pub power_limit_mw: u32,
        pub pstate: u32,
    }

    impl FakeDevice {
        pub(crate) fn new(energy: Energy, power_w: Option<f64>) -> Self {
            Self {
                name: "NVIDIA H100 80GB HBM3".into(),
                bus_id: "00000000:01:00.0".into(),
                device_id: 0x2330,
                energy: Mutex::new(energy),
                power_w,
                telemetry: None,
            }
        }
    }

    /// A scripted NVML.
    pub(crate) struct FakeNvml {
        pub devices: Vec<FakeDevice>,
        pub t0: Instant,
    }

    impl FakeNvml {
        pub(crate) fn new(devices: Vec<FakeDevice>) -> Arc<Self> {
            Arc::new(Self {
                devices,
                t0: Instant::now(),
            })
        }

        fn dev(&self, index: u32) -> Result<&FakeDevice, NvmlFault> {
            self.devices
                .get(index as usize)
                .ok_or_else(|| NvmlFault::Failed("invalid argument".into()))
        }
    }

    impl NvmlApi for FakeNvml {
        fn device_count(&self) -> Result<u32, NvmlFault> {
            Ok(self.devices.len() as u32)
        }

        fn name(&self, index: u32) -> Result<String, NvmlFault> {
            Ok(self.dev(index)?.name.clone())
        }

        fn pci(&self, index: u32) -> Result<NvmlPci, NvmlFault> {
            let d = self.dev(index)?;
            Ok(NvmlPci {
                bus_id: d.bus_id.clone(),
                vendor_id: VENDOR_NVIDIA,
                device_id: d.device_id,
            })
        }

        fn total_energy_mj(&self, index: u32) -> Result<u64, NvmlFault> {
            let mut e = self.dev(index)?.energy.lock().unwrap();
            match &mut *e {
                Energy::NotSupported => Err(NvmlFault::NotSupported),
                Energy::Rising { watts, base_mj } => {
                    Ok(*base_mj + (*watts * self.t0.elapsed().as_secs_f64() * 1e3) as u64)
                }
                Energy::Script(values) => {
                    let v = *values.front().expect("scripted values");
                    if values.len() > 1 {
                        values.pop_front();
                    }
                    Ok(v)
                }
            }
        }

        fn power_mw(&self, index: u32) -> Result<u32, NvmlFault> {
            self.dev(index)?
                .power_w
                .map(|w| (w * 1e3) as u32)
                .ok_or(NvmlFault::NotSupported)
        }

        fn clock_mhz(&self, index: u32, clock: NvmlClock) -> Result<u32, NvmlFault> {
            let t = self.telemetry(index)?;
            Ok(match clock {
                NvmlClock::Sm => {
                    let mut script = t.sm_clocks_mhz.lock().unwrap();
                    let v = *script.front().expect("scripted clocks");
                    if script.len() > 1 {
                        script.pop_front();
                    }
                    v
                }
                NvmlClock::Memory => t.memory_clock_mhz,
            })
        }

        fn temperature_c(&self, index: u32) -> Result<u32, NvmlFault> {
            Ok(self.telemetry(index)?.temperature_c)
        }

        fn throttle_reasons(&self, index: u32) -> Result<u64, NvmlFault> {
            Ok(self.telemetry(index)?.throttle_reasons)
        }

        fn power_limit_mw(&self, index: u32) -> Result<u32, NvmlFault> {
            Ok(self.telemetry(index)?.power_limit_mw)
        }

        fn pstate(&self, index: u32) -> Result<u32, NvmlFault> {
            Ok(self.telemetry(index)?.pstate)
        }
    }

    impl FakeNvml {
        fn telemetry(&self, index: u32) -> Result<&FakeTelemetry, NvmlFault> {
            self.dev(index)?
                .telemetry
                .as_ref()
                .ok_or(NvmlFault::NotSupported)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::*;
    use super::*;
    use crate::result::Provenance;

    pub(crate) fn h100(bus: Option<&str>) -> AdapterIdentity {
        AdapterIdentity {
            name: "NVIDIA H100 80GB HBM3".into(),
            vendor_id: VENDOR_NVIDIA,
            device_id: 0x2330,
            cpu_adapter: false,
            pci_bus_id: bus.map(str::to_string),
        }
    }

    fn rising(watts: f64) -> Energy {
        Energy::Rising {
            watts,
            base_mj: 1_000_000,
        }
    }

    #[test]
    fn a_counter_device_gives_the_counter_and_a_power_cross_check() {
        let api = FakeNvml::new(vec![FakeDevice::new(rising(300.0), Some(300.0))]);
        let c = open(api, &h100(Some("0000:01:00.0"))).unwrap();
        assert_eq!(c.primary.provenance(), Provenance::MeasuredCounter);
        assert_eq!(c.primary.info().scope(), Scope::GpuBoard);
        assert!(
            c.primary.info().describe().contains("NVML device 0"),
            "{}",
            c.primary.info().describe()
        );
        let cc = c.cross_check.unwrap();
        assert!((cc.read_watts().unwrap() - 300.0).abs() < 1e-9);
        assert!(c.notes.is_empty());
    }

    #[test]
    fn no_counter_means_sampled_power() {
        let api = FakeNvml::new(vec![FakeDevice::new(Energy::NotSupported, Some(70.0))]);
        let c = open(api, &h100(None)).unwrap();
        assert_eq!(c.primary.provenance(), Provenance::MeasuredSampled);
        assert!(c.cross_check.is_none());
        assert!(c.notes.is_empty(), "NotSupported is normal before Volta");
        assert_eq!(c.primary.info().min_window_s(), 1.0);
    }

    #[test]
    fn nothing_supported_is_unusable() {
        let api = FakeNvml::new(vec![FakeDevice::new(Energy::NotSupported, None)]);
        let err = open(api, &h100(None)).err().unwrap();
        assert!(err.contains("not supported"), "{err}");
    }

    #[test]
    fn the_device_is_matched_by_bus_id_then_ids_then_name() {
        let mut a = FakeDevice::new(rising(1.0), None);
        a.bus_id = "00000000:41:00.0".into();
        a.device_id = 0x2331;
        a.name = "NVIDIA H100 PCIe".into();
        let b = FakeDevice::new(rising(1.0), None);
        let api = FakeNvml::new(vec![a, b]);
        // Bus id wins.
        assert_eq!(
            match_device(api.as_ref(), &h100(Some("0000:41:00.0")))
                .unwrap()
                .0,
            0
        );
        assert_eq!(
            match_device(api.as_ref(), &h100(Some("0000:01:00.0")))
                .unwrap()
                .0,
            1
        );
        let err = match_device(api.as_ref(), &h100(Some("0000:99:00.0"))).unwrap_err();
        assert!(
            err.contains("0000:99:00.0") && err.contains("1: NVIDIA H100 80GB"),
            "{err}"
        );
        // Without a bus id: the PCI device id.
        assert_eq!(match_device(api.as_ref(), &h100(None)).unwrap().0, 1);
        // Without a device id: the name.
        let mut by_name = h100(None);
        by_name.device_id = 0;
        by_name.name = "nvidia h100 pcie".into();
        assert_eq!(match_device(api.as_ref(), &by_name).unwrap().0, 0);
        by_name.name = "Tesla V100".into();
        assert!(match_device(api.as_ref(), &by_name).is_err());
    }

    #[test]
    fn identical_devices_without_a_bus_id_match_with_a_note() {
        let api = FakeNvml::new(vec![
            FakeDevice::new(rising(1.0), None),
            FakeDevice::new(rising(1.0), None),
        ]);
        let (index, notes) = match_device(api.as_ref(), &h100(None)).unwrap();
        assert_eq!(index, 0);
        assert!(notes[0].contains("2 NVML devices"), "{notes:?}");
    }

    #[test]
    fn a_non_nvidia_adapter_is_not_matched() {
        let api = FakeNvml::new(vec![FakeDevice::new(rising(1.0), Some(1.0))]);
        let lavapipe = AdapterIdentity {
            name: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
            vendor_id: 0x10005,
            device_id: 0,
            cpu_adapter: true,
            pci_bus_id: None,
        };
        let err = open(api, &lavapipe).err().unwrap();
        assert!(err.contains("not an NVIDIA GPU"), "{err}");
    }

    #[test]
    fn a_library_that_does_not_exist_is_not_available_and_does_not_panic() {
        let err = RealNvml::load(Some(Path::new("/nonexistent/libnvidia-ml.so.1")))
            .err()
            .unwrap();
        assert!(
            err.contains("cannot load the NVML library /nonexistent/libnvidia-ml.so.1"),
            "{err}"
        );
    }
}
