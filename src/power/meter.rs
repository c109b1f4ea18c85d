//! [`PowerMeter`]: opens the source [`selection`](super::selection) chooses, measures idle
//! power, and turns measured windows into [`PowerRecord`]s ([`window`](super::window)).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::counter::CounterWatch;
use super::nvml::{NvmlApi, RealNvml};
use super::sampler::{Sampler, read_sample};
use super::selection::{self, Found, NvmlLoader};
use super::source::Source;
use super::telemetry::{self, TelemetryWatch};
use super::window::{self, Active, Metering, WindowStart};
use super::{AdapterIdentity, PowerOptions, PowerRequest};
use crate::result::{PowerAttempt, PowerRecord, PowerSetup};

/// A sampled window should hold at least this many sampling periods.
const MIN_PERIODS_PER_WINDOW: f64 = 2.0;

/// The power source of a run, its sampler threads, and its idle power.
///
/// Open it once before any workload (a source asked for explicitly that cannot work fails
/// then, as an input error), measure idle power, then bracket each workload's measured window
/// with [`begin`](Self::begin) and [`end`](Self::end). Windows are measured one after another,
/// never overlapping; a window runs from `begin` to `end`, so call them right before the first
/// timed submit and right after the last completion.
///
/// ```
/// use tokbench::power::{AdapterIdentity, PowerMeter, PowerOptions, PowerRequest, token_energy};
///
/// let opts = PowerOptions {
///     requested: PowerRequest::Declared,
///     watts: Some(65.0),
///     ..PowerOptions::default()
/// };
/// let adapter = AdapterIdentity { name: "llvmpipe".into(), cpu_adapter: true, ..Default::default() };
/// let mut meter = PowerMeter::open(&opts, &adapter)?; // before any workload
/// meter.measure_idle()?; // nothing to measure for declared power
/// let start = meter.begin();
/// // ... the workload's timed executions ...
/// let record = meter.end(start, 10);
/// assert_eq!(record.avg_power_w, Some(65.0));
/// // 13 tokens per execution, 10 executions: 130 tokens over the window's joules.
/// let tokens_per_j = token_energy(Some(13), &record).tokens_per_j.unwrap();
/// assert!((tokens_per_j * record.energy_j.unwrap() - 130.0).abs() < 1e-9);
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct PowerMeter {
    requested: PowerRequest,
    tried: Vec<PowerAttempt>,
    active: Option<Active>,
    /// Why there is no source, for every record when there is none.
    no_source_reason: String,
    hz: f64,
    idle_s: f64,
    min_energy_s: f64,
    idle_power_w: Option<f64>,
    idle_measured_s: f64,
    idle_note: Option<String>,
    /// Clocks, temperature and throttling, where the platform has them.
    telemetry: Option<TelemetryWatch>,
}

impl PowerMeter {
    /// Validates `opts` and opens the source they ask for, for `adapter`.
    ///
    /// Fails with an [`InputError`](crate::InputError) (exit code 2, before any work) for bad
    /// options or when a source asked for explicitly cannot work. Under `auto`, unusable
    /// sources are skipped and recorded; finding none is not an error (every record is then
    /// `unavailable`).
    pub fn open(opts: &PowerOptions, adapter: &AdapterIdentity) -> anyhow::Result<Self> {
        Self::open_with(opts, adapter, &|library| {
            RealNvml::load(library).map(|n| Arc::new(n) as Arc<dyn NvmlApi>)
        })
    }

    /// [`open`](Self::open) with NVML loaded by `load_nvml`.
    pub(crate) fn open_with(
        opts: &PowerOptions,
        adapter: &AdapterIdentity,
        load_nvml: NvmlLoader<'_>,
    ) -> anyhow::Result<Self> {
        opts.validate()?;
        let selection = selection::select(opts, adapter, load_nvml)?;
        let active = selection.found.map(|f| start(f, opts.hz)).transpose()?;
        let mut tried = selection.tried;
        if let Some(Metering::Counter { watch, .. }) = active.as_ref().map(|a| &a.metering)
            && let (Some(period), Some(used)) =
                (watch.poll_period(), tried.iter_mut().find(|t| t.used))
        {
            used.detail += &format!(
                "; read every {:.3} s, at least four times per wrap period",
                period.as_secs_f64()
            );
        }
        // Telemetry is a bonus: a platform without it gives null figures, not an error.
        let telemetry = match telemetry::open(opts, adapter, load_nvml) {
            Ok(source) => Some(TelemetryWatch::start(source, opts.hz)?),
            Err(_) => None,
        };
        Ok(Self {
            requested: opts.requested,
            tried,
            active,
            no_source_reason: selection.no_source_reason,
            hz: opts.hz,
            idle_s: opts.idle_s,
            min_energy_s: opts.min_energy_s,
            idle_power_w: None,
            idle_measured_s: 0.0,
            idle_note: None,
            telemetry,
        })
    }

    /// Measures idle power for `idle_s` seconds (at least the source's minimum window) with
    /// the source in use, before any workload. Does nothing for `idle_s` 0, declared power, or
    /// no source. A failed measurement leaves idle power unknown, with a warning on every
    /// record; it is not an error.
    pub fn measure_idle(&mut self) -> anyhow::Result<()> {
        let measurable = self
            .active
            .as_ref()
            .is_some_and(|a| !matches!(a.metering, Metering::Declared(_)));
        if self.idle_s <= 0.0 || !measurable {
            return Ok(());
        }
        let duration_s = self.idle_s.max(self.min_window_s());
        let start = self.begin();
        std::thread::sleep(Duration::from_secs_f64(duration_s));
        let record = self.end(start, 0);
        match record.avg_power_w {
            Some(w) => {
                self.idle_power_w = Some(w);
                self.idle_measured_s = record.window_s;
            }
            None => {
                self.idle_note = Some(format!(
                    "idle power unknown: {}",
                    record.reason.as_deref().unwrap_or("no figure")
                ));
            }
        }
        Ok(())
    }

    /// The run's power arrangement, for the result document.
    pub fn setup(&self) -> PowerSetup {
        let telemetry_source = self.telemetry.as_ref().map(TelemetryWatch::describe);
        if self.requested == PowerRequest::None {
            return PowerSetup {
                telemetry_source,
                ..PowerSetup::none("none", "--power-source none")
            };
        }
        let active = self.active.as_ref();
        let cross_check = active.and_then(|a| match &a.metering {
            Metering::Counter {
                cross_check: Some((cc, _)),
                ..
            } => Some(format!("{}-sampled", cc.name())),
            _ => None,
        });
        PowerSetup {
            requested: self.requested.to_string(),
            source: active.map(|a| a.info().name().to_string()),
            scope: active.map(|a| a.info().scope()),
            tried: self.tried.clone(),
            idle_power_w: self.idle_power_w,
            idle_s: self.idle_measured_s,
            cross_check_source: cross_check,
            telemetry_source,
        }
    }

    /// Idle power measured by [`measure_idle`](Self::measure_idle), in watts.
    pub fn idle_power_w(&self) -> Option<f64> {
        self.idle_power_w
    }

    /// The shortest measured window, in seconds, that gives a trustworthy figure with this
    /// source (NVML: 1 s; sampled sources: two sampling periods), and at least
    /// `--min-energy-s`. The measurement loop should stretch windows to it.
    pub fn min_window_s(&self) -> f64 {
        let source_s = self.active.as_ref().map_or(0.0, |a| {
            let periods = match a.metering {
                Metering::Gauge { .. } => MIN_PERIODS_PER_WINDOW / self.hz,
                Metering::Counter { .. } | Metering::Declared(_) => 0.0,
            };
            a.info().min_window_s().max(periods)
        });
        source_s.max(self.min_energy_s)
    }

    /// Marks the start of a measured window: reads a counter source now.
    pub fn begin(&self) -> WindowStart {
        if let Some(t) = &self.telemetry {
            t.begin();
        }
        window::begin(self.active.as_ref())
    }

    /// Ends the window begun by `start`, in which the workload ran `executions` times, and
    /// gives its power record. Never fails: a source that fails now gives an `unavailable`
    /// record with a warning, and the next window tries again.
    pub fn end(&self, start: WindowStart, executions: u64) -> PowerRecord {
        let mut record = self.end_power(start, executions);
        record.telemetry = self.telemetry.as_ref().map(TelemetryWatch::end);
        record
    }

    /// Average power between `from` and `to` inside the latest window, in watts (for the
    /// drift of a sustained window); `None` without a measured source or a good figure.
    pub fn average_power_w(&self, from: Instant, to: Instant) -> Option<f64> {
        window::average_power_w(self.active.as_ref()?, from, to)
    }

    fn end_power(&self, start: WindowStart, executions: u64) -> PowerRecord {
        let Some(a) = &self.active else {
            let window_s = start.at().elapsed().as_secs_f64();
            return PowerRecord::unavailable(self.no_source_reason.clone(), window_s, executions);
        };
        let mut record = window::end(a, &start, executions, self.idle_power_w);
        if record.energy_j.is_some() {
            let min_s = self.min_window_s();
            if record.window_s < min_s {
                record.warnings.push(format!(
                    "the window ({:.3} s) is shorter than the {min_s:.1} s this source needs; \
                     the figure is rough",
                    record.window_s
                ));
            }
        }
        record.warnings.extend(a.notes.iter().cloned());
        record.warnings.extend(self.idle_note.iter().cloned());
        record
    }
}

/// Starts the threads the found source's kind needs: a sampler for a gauge, and for a
/// counter's cross-check.
fn start(found: Found, hz: f64) -> anyhow::Result<Active> {
    let metering = match found.source {
        Source::Gauge(source) => {
            // A read now is the first sample, so the first window can start at once.
            let first = read_sample(source.as_ref());
            let sampler = Sampler::start(source.clone(), hz, Some(first))?;
            Metering::Gauge { source, sampler }
        }
        Source::Counter(source) => {
            let cross_check = match found.cross_check {
                Some(cc) => Some((cc.clone(), Sampler::start(cc, hz, None)?)),
                None => None,
            };
            Metering::Counter {
                watch: CounterWatch::start(source.clone())?,
                source,
                cross_check,
            }
        }
        Source::Declared(d) => Metering::Declared(d),
    };
    Ok(Active {
        metering,
        notes: found.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InputError;
    use crate::power::hwmon::tests::{amdgpu, fake_amdgpu, fake_hwmon, gpu};
    use crate::power::nvml::fake::{Energy, FakeDevice, FakeNvml};
    use crate::power::rapl::tests::{fake_rapl, replace_whole, set_energy};
    use crate::power::{TokenEnergy, VENDOR_AMD, VENDOR_INTEL, VENDOR_NVIDIA, token_energy};
    use crate::result::Provenance;
    use crate::result::Scope;
    use std::collections::VecDeque;
    use std::fs;
    use std::path::Path;

    fn lavapipe() -> AdapterIdentity {
        AdapterIdentity {
            name: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
            vendor_id: 0x10005,
            device_id: 0,
            cpu_adapter: true,
            pci_bus_id: None,
        }
    }

    fn h100() -> AdapterIdentity {
        AdapterIdentity {
            name: "NVIDIA H100 80GB HBM3".into(),
            vendor_id: VENDOR_NVIDIA,
            device_id: 0x2330,
            cpu_adapter: false,
            pci_bus_id: Some("0000:01:00.0".into()),
        }
    }

    /// Options over an empty fake sysfs tree, sampling fast so tests stay short.
    fn opts(root: &Path, requested: PowerRequest) -> PowerOptions {
        PowerOptions {
            requested,
            sysfs_root: root.to_path_buf(),
            hz: 50.0,
            idle_s: 0.0,
            nvml_library: Some("/nonexistent/libnvidia-ml.so.1".into()),
            ..PowerOptions::default()
        }
    }

    fn no_nvml(_: Option<&Path>) -> Result<Arc<dyn NvmlApi>, String> {
        Err("no NVML in this test".into())
    }

    fn is_input_error(e: &anyhow::Error) -> bool {
        e.chain().any(|c| c.is::<InputError>())
    }

    fn window(meter: &PowerMeter, ms: u64) -> PowerRecord {
        let start = meter.begin();
        std::thread::sleep(Duration::from_millis(ms));
        meter.end(start, 7)
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs()
    }

    #[test]
    fn declared_watts_give_w_times_window_and_tokens_per_s_over_w() {
        let root = tempfile::tempdir().unwrap();
        let o = PowerOptions {
            watts: Some(65.0),
            ..opts(root.path(), PowerRequest::Declared)
        };
        let mut meter = PowerMeter::open(&o, &lavapipe()).unwrap();
        meter.measure_idle().unwrap();
        let setup = meter.setup();
        assert_eq!(setup.source.as_deref(), Some("declared"));
        assert_eq!(setup.idle_power_w, None);
        let r = window(&meter, 20);
        assert_eq!(r.provenance, Provenance::Declared);
        assert_eq!(r.method.as_deref(), Some("declared-constant"));
        assert_eq!(r.energy_j, Some(65.0 * r.window_s));
        assert_eq!(r.avg_power_w, Some(65.0));
        assert_eq!((r.idle_power_w, r.dynamic_energy_j), (None, None));
        assert_eq!(r.executions, 7);
        // Tokens in the window (per execution × 7 executions) over joules in the window.
        for tokens in [1, 123, 98765] {
            let te = token_energy(Some(tokens), &r);
            let in_window = (tokens * 7) as f64;
            assert_eq!(te.tokens_per_j, Some(in_window / (65.0 * r.window_s)));
            assert_eq!(te.j_per_token, Some(1.0 / te.tokens_per_j.unwrap()));
            assert_eq!(te.tokens_per_j_dynamic, None);
        }
        assert_eq!(token_energy(None, &r), TokenEnergy::default());
        assert_eq!(token_energy(Some(0), &r), TokenEnergy::default());
    }

    #[test]
    fn none_gives_unavailable_records_with_null_numbers() {
        let root = tempfile::tempdir().unwrap();
        let meter = PowerMeter::open(&opts(root.path(), PowerRequest::None), &lavapipe()).unwrap();
        assert_eq!(
            meter.setup(),
            PowerSetup::none("none", "--power-source none")
        );
        let r = window(&meter, 1);
        assert_eq!(r.provenance, Provenance::Unavailable);
        assert!(r.reason.unwrap().contains("--power-source none"));
        assert_eq!((r.energy_j, r.avg_power_w, r.scope), (None, None, None));
        assert_eq!(
            token_energy(Some(100), &window(&meter, 1)),
            TokenEnergy::default()
        );
    }

    #[test]
    fn bad_options_fail_as_input_errors_before_anything_opens() {
        let root = tempfile::tempdir().unwrap();
        for watts in [0.0, -65.0, f64::NAN] {
            let o = PowerOptions {
                watts: Some(watts),
                ..opts(root.path(), PowerRequest::Auto)
            };
            let err = PowerMeter::open(&o, &lavapipe()).err().unwrap();
            assert!(is_input_error(&err), "{err:#}");
            assert_eq!(crate::exit_code_for(&err), std::process::ExitCode::from(2));
        }
    }

    #[test]
    fn rapl_counts_energy_across_a_wrap_and_several_packages() {
        let root = tempfile::tempdir().unwrap();
        let range = 262_143_328_850;
        fake_rapl(
            root.path(),
            &[(range - 1_000_000, range), (5_000_000, range)],
        );
        let meter = PowerMeter::open(&opts(root.path(), PowerRequest::Rapl), &lavapipe()).unwrap();
        let setup = meter.setup();
        assert_eq!(setup.source.as_deref(), Some("rapl"));
        assert_eq!(setup.scope, Some(Scope::CpuPackage));
        let start = meter.begin();
        std::thread::sleep(Duration::from_millis(10));
        set_energy(root.path(), 0, 2_000_000); // wrapped: 3 J
        set_energy(root.path(), 1, 6_500_000); // 1.5 J
        let r = meter.end(start, 3);
        assert_eq!(r.provenance, Provenance::MeasuredCounter);
        assert_eq!(r.method.as_deref(), Some("counter-delta"));
        assert!(close(r.energy_j.unwrap(), 4.5, 1e-12), "{r:?}");
        assert!(close(r.avg_power_w.unwrap(), 4.5 / r.window_s, 1e-12));
        assert_eq!(r.samples, None);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    /// A powercap tree whose `energy_uj` follows `watts` of wall time, wrapping at `range_uj`,
    /// rewritten every 5 ms until the flag is set.
    fn wall_rapl(
        root: &Path,
        watts: f64,
        range_uj: u64,
    ) -> (
        Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<()>,
    ) {
        use std::sync::atomic::{AtomicBool, Ordering};
        fake_rapl(root, &[(0, range_uj)]);
        let zone = root.join("class/powercap/intel-rapl:0");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let t0 = Instant::now();
        let writer = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let uj = (watts * 1e6 * t0.elapsed().as_secs_f64()) as u64 % range_uj;
                replace_whole(&zone.join("energy_uj"), &format!("{uj}\n"));
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        (stop, writer)
    }

    #[test]
    fn a_rapl_counter_wrapping_several_times_in_a_window_reads_its_power() {
        // 65 W against a 50 J range: a wrap every 0.77 s, 2.1 wraps in the window. Read at its
        // ends only this gave 20 W (issue 17).
        for max_power_uw in [None, Some(130_000_000u64)] {
            let root = tempfile::tempdir().unwrap();
            let (stop, writer) = wall_rapl(root.path(), 65.0, 50_000_000);
            if let Some(uw) = max_power_uw {
                let zone = root.path().join("class/powercap/intel-rapl:0");
                fs::write(zone.join("constraint_0_max_power_uw"), format!("{uw}\n")).unwrap();
                fs::write(zone.join("constraint_1_max_power_uw"), "0\n").unwrap();
            }
            let meter =
                PowerMeter::open(&opts(root.path(), PowerRequest::Rapl), &lavapipe()).unwrap();
            let r = window(&meter, 1600);
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            writer.join().unwrap();
            assert_eq!(r.provenance, Provenance::MeasuredCounter, "{r:?}");
            let watts = r.avg_power_w.unwrap();
            assert!((watts - 65.0).abs() <= 6.5, "{max_power_uw:?}: {watts} W");
        }
    }

    #[test]
    fn a_counter_that_vanishes_mid_run_degrades_that_window_only() {
        let root = tempfile::tempdir().unwrap();
        fake_rapl(root.path(), &[(1_000_000, 1 << 40)]);
        let meter = PowerMeter::open(&opts(root.path(), PowerRequest::Rapl), &lavapipe()).unwrap();
        let energy = root.path().join("class/powercap/intel-rapl:0/energy_uj");
        let start = meter.begin();
        fs::remove_file(&energy).unwrap();
        let r = meter.end(start, 1);
        assert_eq!(r.provenance, Provenance::Unavailable);
        assert_eq!(r.energy_j, None);
        assert!(r.reason.as_deref().unwrap().contains("energy_uj"), "{r:?}");
        assert!(
            r.warnings.iter().any(|w| w.contains("rapl gave no figure")),
            "{r:?}"
        );
        // The next window tries again.
        set_energy(root.path(), 0, 1_000_000);
        let start = meter.begin();
        set_energy(root.path(), 0, 3_000_000);
        let r = meter.end(start, 1);
        assert!(close(r.energy_j.unwrap(), 2.0, 1e-12), "{r:?}");
        // A counter that does not move gives no figure rather than 0 W.
        let r = window(&meter, 1);
        assert_eq!(r.provenance, Provenance::Unavailable);
        assert!(r.reason.unwrap().contains("did not advance"));
    }

    #[test]
    fn explicit_sources_that_cannot_work_are_input_errors() {
        let root = tempfile::tempdir().unwrap();
        for req in [PowerRequest::Rapl, PowerRequest::Hwmon] {
            let err = PowerMeter::open_with(&opts(root.path(), req), &gpu(VENDOR_AMD, 1), &no_nvml)
                .err()
                .unwrap();
            assert!(is_input_error(&err), "{err:#}");
            assert!(
                err.to_string()
                    .starts_with(&format!("--power-source {req}:")),
                "{err}"
            );
        }
        // An unreadable RAPL counter.
        fake_rapl(root.path(), &[(1, 100)]);
        let energy = root.path().join("class/powercap/intel-rapl:0/energy_uj");
        fs::remove_file(&energy).unwrap();
        fs::create_dir(&energy).unwrap();
        let err = PowerMeter::open(&opts(root.path(), PowerRequest::Rapl), &lavapipe())
            .err()
            .unwrap();
        assert!(
            is_input_error(&err) && err.to_string().contains("energy_uj"),
            "{err}"
        );
        // NVML asked for, and missing.
        let err = PowerMeter::open(&opts(root.path(), PowerRequest::Nvml), &h100())
            .err()
            .unwrap();
        assert!(
            is_input_error(&err) && err.to_string().contains("cannot load"),
            "{err}"
        );
        // A command that fails, prints garbage or hangs.
        for cmd in ["exit 1", "echo garbage", "sleep 30"] {
            let o = PowerOptions {
                command: Some(cmd.into()),
                command_timeout_s: Some(0.2),
                ..opts(root.path(), PowerRequest::Command)
            };
            let t0 = Instant::now();
            let err = PowerMeter::open(&o, &lavapipe()).err().unwrap();
            assert!(is_input_error(&err), "{cmd}: {err:#}");
            assert!(t0.elapsed() < Duration::from_secs(2), "{cmd}");
        }
    }

    #[test]
    fn auto_on_a_cpu_adapter_records_every_source_and_uses_rapl() {
        let root = tempfile::tempdir().unwrap();
        fake_rapl(root.path(), &[(1, 1 << 40)]);
        let o = PowerOptions {
            watts: Some(65.0),
            ..opts(root.path(), PowerRequest::Auto)
        };
        let meter = PowerMeter::open_with(&o, &lavapipe(), &no_nvml).unwrap();
        let setup = meter.setup();
        assert_eq!(setup.requested, "auto");
        assert_eq!(setup.source.as_deref(), Some("rapl"));
        let tried: Vec<(&str, bool)> = setup
            .tried
            .iter()
            .map(|a| (a.source.as_str(), a.used))
            .collect();
        assert_eq!(
            tried,
            [
                ("nvml", false),
                ("hwmon", false),
                ("rapl", true),
                ("declared", false)
            ]
        );
        assert!(setup.tried[0].detail.contains("not an NVIDIA GPU"));
        assert!(setup.tried[1].detail.contains("CPU device"));
        assert!(setup.tried[2].detail.contains("package-0"));
        // 1 TiB µJ at the 2 kW bound wraps after 550 s: read at the 1 s cap.
        assert!(
            setup.tried[2].detail.contains("read every 1.000 s"),
            "{}",
            setup.tried[2].detail
        );
        assert!(setup.tried[3].detail.contains("--power-source declared"));
    }

    #[test]
    fn auto_with_nothing_measurable_falls_back_to_declared_or_unavailable() {
        let root = tempfile::tempdir().unwrap();
        let o = PowerOptions {
            watts: Some(65.0),
            ..opts(root.path(), PowerRequest::Auto)
        };
        let meter = PowerMeter::open_with(&o, &lavapipe(), &no_nvml).unwrap();
        let setup = meter.setup();
        assert_eq!(setup.source.as_deref(), Some("declared"));
        let names: Vec<&str> = setup.tried.iter().map(|a| a.source.as_str()).collect();
        assert_eq!(names, ["nvml", "hwmon", "rapl", "command", "declared"]);
        assert!(setup.tried[2].detail.contains("class/powercap"));
        assert!(setup.tried[3].detail.contains("no --power-cmd"));

        let meter =
            PowerMeter::open_with(&opts(root.path(), PowerRequest::Auto), &h100(), &no_nvml)
                .unwrap();
        let setup = meter.setup();
        assert_eq!((setup.source, setup.scope), (None, None));
        assert!(setup.tried.iter().all(|a| !a.used));
        assert!(setup.tried[0].detail.contains("no NVML in this test"));
        assert!(setup.tried[1].detail.contains("not an Intel or AMD GPU"));
        let r = window(&meter, 1);
        assert_eq!(r.provenance, Provenance::Unavailable);
        let reason = r.reason.unwrap();
        assert!(
            reason.contains("no power source available") && reason.contains("--watts"),
            "{reason}"
        );
        assert_eq!(r.energy_j, None);
    }

    #[test]
    fn auto_on_a_gpu_prefers_its_hwmon_and_rapl_on_a_gpu_says_what_it_measures() {
        let root = tempfile::tempdir().unwrap();
        fake_rapl(root.path(), &[(1, 1 << 40)]);
        let adapter = gpu(VENDOR_INTEL, 0x56a0);
        let meter =
            PowerMeter::open_with(&opts(root.path(), PowerRequest::Auto), &adapter, &no_nvml)
                .unwrap();
        assert_eq!(meter.setup().source.as_deref(), Some("rapl"));
        let start = meter.begin();
        set_energy(root.path(), 0, 1_000_001);
        let r = meter.end(start, 1);
        assert!(
            r.warnings.iter().any(|w| w.contains("not a discrete one")),
            "{r:?}"
        );

        let hw = fake_hwmon(
            root.path(),
            2,
            "i915",
            Some((VENDOR_INTEL, 0x56a0)),
            &[("energy1_input", "1000000\n")],
        );
        let meter =
            PowerMeter::open_with(&opts(root.path(), PowerRequest::Auto), &adapter, &no_nvml)
                .unwrap();
        let setup = meter.setup();
        assert_eq!(setup.source.as_deref(), Some("hwmon"));
        assert_eq!(setup.scope, Some(Scope::GpuPackage));
        let start = meter.begin();
        replace_whole(&hw.join("energy1_input"), "3500000\n");
        let r = meter.end(start, 1);
        assert_eq!(r.provenance, Provenance::MeasuredCounter);
        assert!(close(r.energy_j.unwrap(), 2.5, 1e-12));
    }

    #[test]
    fn amdgpu_power_is_sampled_and_integrated() {
        let root = tempfile::tempdir().unwrap();
        fake_amdgpu(root.path(), 0, &[("power1_average", "153000000\n")]);
        let meter =
            PowerMeter::open_with(&opts(root.path(), PowerRequest::Hwmon), &amdgpu(), &no_nvml)
                .unwrap();
        assert_eq!(meter.min_window_s(), 1.0);
        let r = window(&meter, 150);
        assert_eq!(r.provenance, Provenance::MeasuredSampled);
        assert_eq!(r.method.as_deref(), Some("trapezoid"));
        assert!(close(r.avg_power_w.unwrap(), 153.0, 1e-9), "{r:?}");
        assert!(r.samples.unwrap() >= 2, "{r:?}");
        assert_eq!(r.coverage, Some(1.0));
        assert!(r.max_gap_s.unwrap() < 0.5, "{r:?}");
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("shorter than the 1.0 s")),
            "{r:?}"
        );
    }

    /// Asserts that `meter` found no source, and that the `i`th source tried says `why`.
    fn assert_no_source(meter: &PowerMeter, i: usize, why: &str) {
        let setup = meter.setup();
        assert_eq!(setup.source, None);
        assert!(setup.tried[i].detail.contains(why), "{setup:?}");
    }

    fn nvml_meter(device: FakeDevice) -> PowerMeter {
        let api = FakeNvml::new(vec![device]);
        let root = tempfile::tempdir().unwrap();
        let load = move |_: Option<&Path>| Ok(api.clone() as Arc<dyn NvmlApi>);
        PowerMeter::open_with(&opts(root.path(), PowerRequest::Auto), &h100(), &load).unwrap()
    }

    #[test]
    fn nvml_counter_with_an_agreeing_cross_check() {
        let meter = nvml_meter(FakeDevice::new(
            Energy::Rising {
                watts: 300.0,
                base_mj: 5_000_000,
            },
            Some(300.0),
        ));
        let setup = meter.setup();
        assert_eq!(setup.source.as_deref(), Some("nvml"));
        assert_eq!(setup.scope, Some(Scope::GpuBoard));
        assert_eq!(setup.cross_check_source.as_deref(), Some("nvml-sampled"));
        assert_eq!(meter.min_window_s(), 1.0);
        let r = window(&meter, 300);
        assert_eq!(r.provenance, Provenance::MeasuredCounter);
        assert!(close(r.avg_power_w.unwrap(), 300.0, 0.02), "{r:?}");
        assert!(close(r.cross_check_power_w.unwrap(), 300.0, 1e-9), "{r:?}");
        assert!(
            !r.warnings.iter().any(|w| w.contains("cross-check")),
            "{r:?}"
        );
    }

    #[test]
    fn nvml_telemetry_gives_clocks_temperature_throttling_limit_and_pstate_per_window() {
        use crate::power::nvml::fake::FakeTelemetry;
        let mut device = FakeDevice::new(
            Energy::Rising {
                watts: 300.0,
                base_mj: 0,
            },
            Some(300.0),
        );
        device.telemetry = Some(FakeTelemetry {
            sm_clocks_mhz: std::sync::Mutex::new(VecDeque::from([1980, 1755, 1410])),
            memory_clock_mhz: 2619,
            temperature_c: 71,
            throttle_reasons: 0x4,
            power_limit_mw: 700_000,
            pstate: 0,
        });
        let meter = nvml_meter(device);
        let setup = meter.setup();
        let source = setup.telemetry_source.unwrap();
        assert!(source.starts_with("nvml: NVML device 0"), "{source}");
        let t = window(&meter, 100).telemetry.unwrap();
        assert_eq!(t.source, "nvml");
        assert!(t.samples >= 2, "{t:?}");
        let sm = t.sm_clock_mhz.unwrap();
        assert!(sm.min == 1410.0 && sm.max <= 1980.0, "{sm:?}");
        let one = |f: Option<crate::result::MinMeanMax>| {
            let f = f.unwrap();
            assert!(f.min == f.max && f.mean == f.min, "{f:?}");
            f.mean
        };
        assert_eq!(one(t.memory_clock_mhz), 2619.0);
        assert_eq!(one(t.temperature_c), 71.0);
        assert_eq!(one(t.power_limit_w), 700.0);
        assert_eq!(one(t.pstate), 0.0);
        assert_eq!(t.throttle_reasons.unwrap(), ["sw-power-cap"]);
        assert_eq!(t.throttled_share, Some(1.0));

        // A device without telemetry: null, never 0.
        let meter = nvml_meter(FakeDevice::new(Energy::NotSupported, Some(70.0)));
        assert_eq!(meter.setup().telemetry_source, None);
        assert_eq!(window(&meter, 1).telemetry, None);
    }

    #[test]
    fn amdgpu_hwmon_telemetry_gives_clocks_temperature_and_power_cap() {
        let root = tempfile::tempdir().unwrap();
        let hw = fake_amdgpu(
            root.path(),
            0,
            &[
                ("power1_average", "153000000\n"),
                ("freq1_input", "2500000000\n"),
                ("freq2_input", "1000000000\n"),
                ("temp1_input", "65000\n"),
                ("power1_cap", "300000000\n"),
            ],
        );
        let meter =
            PowerMeter::open_with(&opts(root.path(), PowerRequest::Auto), &amdgpu(), &no_nvml)
                .unwrap();
        let source = meter.setup().telemetry_source.unwrap();
        assert!(source.starts_with("hwmon: hwmon0 (amdgpu"), "{source}");
        let start = meter.begin();
        std::thread::sleep(Duration::from_millis(100));
        fs::write(hw.join("freq1_input"), "2000000000\n").unwrap();
        fs::write(hw.join("temp1_input"), "75000\n").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let t = meter.end(start, 1).telemetry.unwrap();
        assert_eq!(t.source, "hwmon");
        let sm = t.sm_clock_mhz.unwrap();
        assert_eq!((sm.min, sm.max), (2000.0, 2500.0));
        assert!(sm.mean > 2000.0 && sm.mean < 2500.0, "{sm:?}");
        let temp = t.temperature_c.unwrap();
        assert_eq!((temp.min, temp.max), (65.0, 75.0));
        assert_eq!(t.memory_clock_mhz.unwrap().mean, 1000.0);
        assert_eq!(t.power_limit_w.unwrap().mean, 300.0);
        assert_eq!(
            (t.pstate, t.throttle_reasons, t.throttled_share),
            (None, None, None)
        );
    }

    #[test]
    fn a_cpu_adapter_has_no_telemetry() {
        let root = tempfile::tempdir().unwrap();
        fake_amdgpu(root.path(), 0, &[("temp1_input", "65000\n")]);
        let o = PowerOptions {
            watts: Some(65.0),
            ..opts(root.path(), PowerRequest::Declared)
        };
        let meter = PowerMeter::open_with(&o, &lavapipe(), &no_nvml).unwrap();
        assert_eq!(meter.setup().telemetry_source, None);
        assert_eq!(window(&meter, 1).telemetry, None);
    }

    #[test]
    fn nvml_cross_check_disagreeing_by_more_than_ten_percent_warns() {
        let meter = nvml_meter(FakeDevice::new(
            Energy::Rising {
                watts: 300.0,
                base_mj: 0,
            },
            Some(200.0),
        ));
        let r = window(&meter, 300);
        assert!(close(r.cross_check_power_w.unwrap(), 200.0, 1e-9), "{r:?}");
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("cross-check") && w.contains("-33%")),
            "{r:?}"
        );
    }

    #[test]
    fn nvml_counter_going_backwards_invalidates_that_window_only() {
        // Reads: NVML's check, the open probe, then begin/end of each window.
        let script = VecDeque::from([1_000, 1_000, 9_000_000, 2_000, 3_000, 8_000]);
        let meter = nvml_meter(FakeDevice::new(Energy::Script(script), None));
        assert_eq!(meter.setup().cross_check_source, None);
        let r = window(&meter, 1);
        assert_eq!(r.provenance, Provenance::Unavailable);
        assert_eq!(r.source.as_deref(), Some("nvml"));
        assert!(r.reason.as_deref().unwrap().contains("backwards"), "{r:?}");
        assert!(r.warnings.iter().any(|w| w.contains("backwards")), "{r:?}");
        let r = window(&meter, 1);
        assert!(close(r.energy_j.unwrap(), 5.0, 1e-12), "{r:?}");
    }

    #[test]
    fn nvml_without_a_counter_samples_power() {
        let meter = nvml_meter(FakeDevice::new(Energy::NotSupported, Some(70.0)));
        assert_eq!(meter.setup().cross_check_source, None);
        let r = window(&meter, 100);
        assert_eq!(r.provenance, Provenance::MeasuredSampled);
        assert!(close(r.avg_power_w.unwrap(), 70.0, 1e-9), "{r:?}");
    }

    #[test]
    fn nvml_with_nothing_supported_is_skipped_under_auto() {
        let meter = nvml_meter(FakeDevice::new(Energy::NotSupported, None));
        assert_no_source(&meter, 0, "not supported");
    }

    #[test]
    fn the_real_nvml_with_a_missing_library_is_unavailable_without_a_panic() {
        let root = tempfile::tempdir().unwrap();
        let meter = PowerMeter::open(&opts(root.path(), PowerRequest::Auto), &h100()).unwrap();
        assert_no_source(&meter, 0, "cannot load the NVML library");
        let r = window(&meter, 1);
        assert_eq!(r.provenance, Provenance::Unavailable);
        assert!(
            r.reason
                .unwrap()
                .contains("nvml: cannot load the NVML library")
        );
    }

    #[test]
    fn a_command_is_sampled_and_idle_power_gives_dynamic_energy() {
        let root = tempfile::tempdir().unwrap();
        let watts = root.path().join("watts");
        fs::write(&watts, "50\n").unwrap();
        let o = PowerOptions {
            command: Some(format!("cat '{}'", watts.display())),
            idle_s: 0.2,
            ..opts(root.path(), PowerRequest::Command)
        };
        let mut meter = PowerMeter::open(&o, &lavapipe()).unwrap();
        meter.measure_idle().unwrap();
        let setup = meter.setup();
        assert_eq!(setup.source.as_deref(), Some("command"));
        assert_eq!(setup.scope, Some(Scope::NodeWall));
        assert!(close(setup.idle_power_w.unwrap(), 50.0, 1e-9), "{setup:?}");
        assert!(setup.idle_s >= 0.2);

        fs::write(&watts, "80\n").unwrap();
        std::thread::sleep(Duration::from_millis(250));
        let r = window(&meter, 200);
        assert_eq!(r.provenance, Provenance::MeasuredSampled);
        assert_eq!(r.scope, Some(Scope::NodeWall));
        assert!(close(r.avg_power_w.unwrap(), 80.0, 1e-9), "{r:?}");
        assert_eq!(r.idle_power_w, setup.idle_power_w);
        assert!(
            close(r.dynamic_energy_j.unwrap(), 30.0 * r.window_s, 1e-9),
            "{r:?}"
        );
        // 800 tokens per execution, 7 executions: 80 W gross, 30 W above idle.
        let te = token_energy(Some(800), &r);
        let tokens = 800.0 * 7.0;
        assert!(close(
            te.tokens_per_j.unwrap(),
            tokens / (80.0 * r.window_s),
            1e-9
        ));
        assert!(close(
            te.tokens_per_j_dynamic.unwrap(),
            tokens / (30.0 * r.window_s),
            1e-9
        ));

        // The command starts failing: that window is unavailable, and later ones recover.
        fs::remove_file(&watts).unwrap();
        std::thread::sleep(Duration::from_millis(250));
        let r = window(&meter, 200);
        assert_eq!(r.provenance, Provenance::Unavailable, "{r:?}");
        assert!(r.reason.as_deref().unwrap().contains("failed"), "{r:?}");
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("command gave no figure")),
            "{r:?}"
        );
        fs::write(&watts, "90\n").unwrap();
        std::thread::sleep(Duration::from_millis(250));
        let r = window(&meter, 200);
        assert!(close(r.avg_power_w.unwrap(), 90.0, 1e-9), "{r:?}");
    }

    #[test]
    fn average_power_over_part_of_a_window_follows_a_gauge_and_not_declared_power() {
        let root = tempfile::tempdir().unwrap();
        let watts = root.path().join("watts");
        fs::write(&watts, "50\n").unwrap();
        let o = PowerOptions {
            command: Some(format!("cat '{}'", watts.display())),
            ..opts(root.path(), PowerRequest::Command)
        };
        let meter = PowerMeter::open(&o, &lavapipe()).unwrap();
        let start = meter.begin();
        std::thread::sleep(Duration::from_millis(300));
        fs::write(&watts, "80\n").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let end = Instant::now();
        let r = meter.end(start.clone(), 1);
        assert!(r.energy_j.is_some(), "{r:?}");
        let tenth = Duration::from_millis(60);
        let first = meter
            .average_power_w(start.at(), start.at() + tenth)
            .unwrap();
        let last = meter.average_power_w(end - tenth, end).unwrap();
        assert!(
            close(first, 50.0, 1e-9) && close(last, 80.0, 1e-9),
            "{first} {last}"
        );
        assert_eq!(meter.average_power_w(end, start.at()), None);

        let declared = PowerOptions {
            watts: Some(65.0),
            ..opts(root.path(), PowerRequest::Declared)
        };
        let meter = PowerMeter::open(&declared, &lavapipe()).unwrap();
        let start = meter.begin();
        let _ = meter.end(start.clone(), 1);
        assert_eq!(meter.average_power_w(start.at(), Instant::now()), None);
    }

    #[test]
    fn under_auto_a_broken_command_is_skipped() {
        let root = tempfile::tempdir().unwrap();
        let o = PowerOptions {
            command: Some("echo garbage".into()),
            ..opts(root.path(), PowerRequest::Auto)
        };
        let meter = PowerMeter::open_with(&o, &lavapipe(), &no_nvml).unwrap();
        assert_no_source(&meter, 3, "no number");
    }

    #[test]
    fn failed_idle_measurement_leaves_idle_unknown_with_a_warning() {
        let root = tempfile::tempdir().unwrap();
        fake_rapl(root.path(), &[(1, 1 << 40)]);
        let o = PowerOptions {
            idle_s: 0.05,
            ..opts(root.path(), PowerRequest::Rapl)
        };
        let mut meter = PowerMeter::open(&o, &lavapipe()).unwrap();
        // The fake counter does not move while idle.
        meter.measure_idle().unwrap();
        assert_eq!(meter.idle_power_w(), None);
        let start = meter.begin();
        set_energy(root.path(), 0, 2_000_001);
        let r = meter.end(start, 1);
        assert!(r.energy_j.is_some());
        assert_eq!(r.dynamic_energy_j, None);
        assert!(
            r.warnings.iter().any(|w| w.contains("idle power unknown")),
            "{r:?}"
        );
    }

    /// Not a check of this machine's hardware: opening the real sources must never panic, and
    /// prints what it found (run with --nocapture to see it).
    #[test]
    fn real_sources_on_this_machine() {
        for adapter in [lavapipe(), h100()] {
            let o = PowerOptions {
                hz: 20.0,
                idle_s: 0.0,
                ..PowerOptions::default()
            };
            match PowerMeter::open(&o, &adapter) {
                Ok(meter) => {
                    let r = window(&meter, 100);
                    println!(
                        "{}: {}\n{}",
                        adapter.name,
                        serde_json::to_string_pretty(&meter.setup()).unwrap(),
                        serde_json::to_string_pretty(&r).unwrap()
                    );
                    assert!(r.energy_j.is_none_or(|e| e > 0.0));
                }
                Err(e) => panic!("auto must not fail: {e:#}"),
            }
        }
    }
}
