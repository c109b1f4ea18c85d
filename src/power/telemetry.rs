//! Device telemetry over every measured window, where the platform has it: NVML's SM and
//! memory clocks, temperature, throttle reasons, power limit and P-state
//! ([`NvmlTelemetry`]), and amdgpu hwmon's clocks, temperature and power cap
//! ([`HwmonTelemetry`]). Read on its own thread at the power sampling rate and at each window's
//! edges, and summarised per window as minimum, mean and maximum ([`Telemetry`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::hwmon::HwmonTelemetry;
use super::nvml::{NvmlTelemetry, THROTTLE_REASONS};
use super::sampler::{Periodic, lock};
use super::selection::NvmlLoader;
use super::{AdapterIdentity, PowerOptions, VENDOR_AMD, VENDOR_NVIDIA};
use crate::result::{MinMeanMax, Telemetry};

/// The buffer never holds more readings than this; the oldest go first.
const MAX_BUFFERED: usize = 100_000;
/// Telemetry is read at the power sampling rate, but at most this many times a second: clocks
/// and temperatures move slower than that, and each NVML reading is six calls.
pub const MAX_HZ: f64 = 10.0;

/// A source of device telemetry. Shared with its thread, hence `Send + Sync`.
pub trait TelemetrySource: Send + Sync {
    /// Short name written to results: "nvml" or "hwmon".
    fn name(&self) -> &'static str;

    /// What exactly is read (device, directory).
    fn describe(&self) -> String;

    /// Reads every figure now; one the device does not give (or that fails) is `None`.
    fn read(&self) -> TelemetryReading;
}

/// One telemetry reading.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TelemetryReading {
    /// Shader (SM) clock, in MHz.
    pub sm_clock_mhz: Option<f64>,
    /// Memory clock, in MHz.
    pub memory_clock_mhz: Option<f64>,
    /// GPU temperature, in degrees Celsius.
    pub temperature_c: Option<f64>,
    /// Power limit in force, in watts.
    pub power_limit_w: Option<f64>,
    /// Performance state, 0 (fastest) to 15.
    pub pstate: Option<f64>,
    /// NVML's throttle reason bits.
    pub throttle_reasons: Option<u64>,
}

/// Opens the telemetry of `adapter`: NVML for NVIDIA, amdgpu's hwmon for AMD. `Err` says why
/// there is none.
pub(crate) fn open(
    opts: &PowerOptions,
    adapter: &AdapterIdentity,
    load_nvml: NvmlLoader<'_>,
) -> Result<Arc<dyn TelemetrySource>, String> {
    if adapter.cpu_adapter {
        return Err(format!(
            "the adapter {} is a CPU device: no GPU telemetry",
            adapter.describe()
        ));
    }
    match adapter.vendor_id {
        VENDOR_NVIDIA => {
            let api = load_nvml(opts.nvml_library.as_deref())?;
            Ok(Arc::new(NvmlTelemetry::open(api, adapter)?))
        }
        VENDOR_AMD => Ok(Arc::new(HwmonTelemetry::open(&opts.sysfs_root, adapter)?)),
        _ => Err(format!(
            "no telemetry for {}: tokbench reads NVML (NVIDIA) and amdgpu's hwmon (AMD)",
            adapter.describe()
        )),
    }
}

/// A telemetry source read on its own thread, and the readings of the current window.
pub(crate) struct TelemetryWatch {
    source: Arc<dyn TelemetrySource>,
    readings: Arc<Mutex<VecDeque<TelemetryReading>>>,
    /// Declared last: dropping it stops the thread.
    _thread: Periodic,
}

impl TelemetryWatch {
    /// Reads `source` `hz` times a second, at most [`MAX_HZ`].
    pub(crate) fn start(source: Arc<dyn TelemetrySource>, hz: f64) -> anyhow::Result<Self> {
        let hz = hz.min(MAX_HZ);
        let readings = Arc::new(Mutex::new(VecDeque::new()));
        let (s, r) = (source.clone(), readings.clone());
        let thread = Periodic::spawn(
            format!("tokbench-telemetry-{}", source.name()),
            Duration::from_secs_f64(1.0 / hz),
            move || push(&r, s.read()),
        )?;
        Ok(Self {
            source,
            readings,
            _thread: thread,
        })
    }

    /// "name: what is read", for the run's power setup.
    pub(crate) fn describe(&self) -> String {
        format!("{}: {}", self.source.name(), self.source.describe())
    }

    /// Starts a window: forgets earlier readings and reads now.
    pub(crate) fn begin(&self) {
        let now = self.source.read();
        let mut readings = lock(&self.readings);
        readings.clear();
        readings.push_back(now);
    }

    /// Ends the window begun by [`begin`](Self::begin): reads now, and summarises every
    /// reading since.
    pub(crate) fn end(&self) -> Telemetry {
        push(&self.readings, self.source.read());
        let readings = lock(&self.readings);
        summarize(self.source.name(), readings.iter())
    }
}

fn push(readings: &Mutex<VecDeque<TelemetryReading>>, reading: TelemetryReading) {
    let mut readings = lock(readings);
    if readings.len() >= MAX_BUFFERED {
        readings.pop_front();
    }
    readings.push_back(reading);
}

/// Minimum, mean and maximum of each figure over `readings`, the throttle reasons seen and
/// the share of readings throttled. A figure no reading has is `None`.
pub fn summarize<'a>(
    source: &str,
    readings: impl Iterator<Item = &'a TelemetryReading> + Clone,
) -> Telemetry {
    let spread = |figure: fn(&TelemetryReading) -> Option<f64>| {
        let values: Vec<f64> = readings.clone().filter_map(figure).collect();
        MinMeanMax::of(&values)
    };
    let reasons: Vec<u64> = readings
        .clone()
        .filter_map(|r| r.throttle_reasons)
        .collect();
    let (throttle_reasons, throttled_share) = if reasons.is_empty() {
        (None, None)
    } else {
        let seen = reasons.iter().fold(0, |all, bits| all | bits);
        let names = THROTTLE_REASONS
            .iter()
            .filter(|(bit, _, _)| seen & bit != 0)
            .map(|(_, name, _)| name.to_string())
            .collect();
        let slowing = THROTTLE_REASONS
            .iter()
            .filter(|(_, _, slows)| *slows)
            .fold(0, |all, (bit, _, _)| all | bit);
        let throttled = reasons.iter().filter(|&&bits| bits & slowing != 0).count();
        (Some(names), Some(throttled as f64 / reasons.len() as f64))
    };
    Telemetry {
        source: source.to_string(),
        samples: readings.clone().count() as u64,
        sm_clock_mhz: spread(|r| r.sm_clock_mhz),
        memory_clock_mhz: spread(|r| r.memory_clock_mhz),
        temperature_c: spread(|r| r.temperature_c),
        power_limit_w: spread(|r| r.power_limit_w),
        pstate: spread(|r| r.pstate),
        throttle_reasons,
        throttled_share,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_summarise_to_min_mean_max_and_throttling() {
        let r = |sm: f64, bits: u64| TelemetryReading {
            sm_clock_mhz: Some(sm),
            temperature_c: Some(60.0),
            throttle_reasons: Some(bits),
            ..TelemetryReading::default()
        };
        // Idle, then a power cap, then a thermal slowdown with the power cap.
        let readings = [
            r(1980.0, 0x1),
            r(1755.0, 0x4),
            r(1410.0, 0x24),
            r(1755.0, 0x0),
        ];
        let t = summarize("nvml", readings.iter());
        assert_eq!(t.samples, 4);
        let sm = t.sm_clock_mhz.unwrap();
        assert_eq!((sm.min, sm.mean, sm.max), (1410.0, 1725.0, 1980.0));
        assert_eq!(t.temperature_c.unwrap().mean, 60.0);
        assert_eq!(t.memory_clock_mhz, None);
        assert_eq!(
            t.throttle_reasons.unwrap(),
            ["gpu-idle", "sw-power-cap", "sw-thermal-slowdown"]
        );
        assert_eq!(t.throttled_share, Some(0.5));
        let none = summarize("hwmon", [TelemetryReading::default()].iter());
        assert_eq!((none.throttle_reasons, none.throttled_share), (None, None));
        assert_eq!(none.sm_clock_mhz, None);
    }

    #[test]
    fn a_watch_summarises_the_readings_since_the_window_began() {
        struct Ramp(Mutex<f64>);
        impl TelemetrySource for Ramp {
            fn name(&self) -> &'static str {
                "ramp"
            }
            fn describe(&self) -> String {
                "a clock that rises 1 MHz a read".into()
            }
            fn read(&self) -> TelemetryReading {
                let mut mhz = self.0.lock().unwrap();
                *mhz += 1.0;
                TelemetryReading {
                    sm_clock_mhz: Some(*mhz),
                    ..TelemetryReading::default()
                }
            }
        }
        let watch = TelemetryWatch::start(Arc::new(Ramp(Mutex::new(0.0))), 200.0).unwrap();
        assert_eq!(watch.describe(), "ramp: a clock that rises 1 MHz a read");
        std::thread::sleep(Duration::from_millis(250));
        watch.begin();
        std::thread::sleep(Duration::from_millis(250));
        let t = watch.end();
        assert!(t.samples >= 3, "{t:?}");
        let sm = t.sm_clock_mhz.unwrap();
        // Readings before the window began are not in it.
        assert!(sm.min > 2.0 && sm.max - sm.min >= 2.0, "{sm:?}");
    }
}
