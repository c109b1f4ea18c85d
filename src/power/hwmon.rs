//! Linux hwmon of a GPU: Intel i915/xe `energy1_input` (µJ counter) and amdgpu
//! `power1_average`/`power1_input` (µW, sampled), under `<root>/class/hwmon/hwmonN`. The hwmon is
//! matched to the adapter by the PCI vendor and device ids of its `device` directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::counter::DEFAULT_MAX_POWER_W;
use super::source::{CounterSnapshot, CounterSource, GaugeSource, Source, SourceInfo, ZoneCount};
use super::sysfs;
use super::telemetry::{TelemetryReading, TelemetrySource};
use super::{AdapterIdentity, PciAddress, VENDOR_AMD, VENDOR_INTEL};
use crate::result::Scope;

/// Range of the hardware energy counter behind i915/xe `energy1_input`, at the finest unit
/// assumed (2^32 counts of 2^-16 J), in joules.
const HWMON_HARDWARE_RANGE_J: f64 = 65_536.0;

/// Which attribute a hwmon source reads, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HwmonFile {
    /// `energy1_input`: energy counter in µJ (i915, xe).
    Energy,
    /// `power1_average`: power in µW, averaged by the firmware (amdgpu).
    PowerAverage,
    /// `power1_input`: power in µW (amdgpu on newer parts).
    PowerInput,
}

impl HwmonFile {
    const ALL: [HwmonFile; 3] = [Self::Energy, Self::PowerAverage, Self::PowerInput];

    /// The attribute's file name.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Energy => "energy1_input",
            Self::PowerAverage => "power1_average",
            Self::PowerInput => "power1_input",
        }
    }
}

/// One attribute of a GPU's hwmon: an energy counter or a power reading, as the [`Source`]
/// [`open`](Self::open) gives.
#[derive(Debug, Clone)]
pub struct HwmonSource {
    path: PathBuf,
    file: HwmonFile,
    label: String,
}

/// One hwmon directory and what it says about its device.
#[derive(Debug, Clone)]
struct Candidate {
    dir: PathBuf,
    driver: String,
    vendor: Option<u32>,
    device: Option<u32>,
    bus: Option<PciAddress>,
    files: Vec<HwmonFile>,
}

impl Candidate {
    fn label(&self) -> String {
        let hwmon = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut s = format!("{hwmon} ({}", self.driver);
        if let (Some(v), Some(d)) = (self.vendor, self.device) {
            s += &format!(", PCI {v:04x}:{d:04x}");
        }
        if let Some(b) = self.bus {
            s += &format!(" at {b}");
        }
        s + ")"
    }
}

/// The driver names whose hwmons report GPU power, by PCI vendor.
fn drivers_of(vendor: u32) -> &'static [&'static str] {
    match vendor {
        VENDOR_INTEL => &["i915", "xe"],
        VENDOR_AMD => &["amdgpu"],
        _ => &[],
    }
}

impl HwmonSource {
    /// Finds the hwmon of `adapter` under `<root>/class/hwmon` and reads it once: an energy
    /// counter (i915, xe) or a power gauge (amdgpu). `Ok` carries notes that qualify every
    /// figure (a match by vendor only, several matches); `Err` says why hwmon cannot be used.
    pub fn open(root: &Path, adapter: &AdapterIdentity) -> Result<(Source, Vec<String>), String> {
        let (chosen, notes) = find(root, adapter, "GPU power or energy", &|c| {
            !c.files.is_empty()
        })?;

        // The best attribute that reads now (amdgpu lists power1_average on parts that fail it).
        let mut failures = Vec::new();
        for &file in &chosen.files {
            let source = Self {
                path: chosen.dir.join(file.file_name()),
                file,
                label: chosen.label(),
            };
            match source.read_raw() {
                Ok(_) => return Ok((source.into_source(), notes)),
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        Err(failures.join("; "))
    }
}

/// The hwmon of `adapter` under `<root>/class/hwmon` among those `usable` accepts (`what` they
/// hold, for the error): by PCI vendor and device ids, else by driver name; several matches
/// are told apart by PCI bus id. `Ok` carries notes on how good the match is.
fn find(
    root: &Path,
    adapter: &AdapterIdentity,
    what: &str,
    usable: &dyn Fn(&Candidate) -> bool,
) -> Result<(Candidate, Vec<String>), String> {
    let base = root.join("class/hwmon");
    let entries = std::fs::read_dir(&base)
        .map_err(|e| format!("no hwmon: cannot list {} ({e})", base.display()))?;
    let mut all: Vec<Candidate> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("hwmon"))
        .map(|e| inspect(&e.path()))
        .collect();
    all.sort_by(|a, b| a.dir.cmp(&b.dir));

    let mut notes = Vec::new();
    let with_files = all.iter().filter(|c| usable(c));
    let by_ids: Vec<&Candidate> = with_files
        .clone()
        .filter(|c| {
            c.vendor == Some(adapter.vendor_id)
                && (adapter.device_id == 0 || c.device == Some(adapter.device_id))
        })
        .collect();
    let mut matches = by_ids;
    if !matches.is_empty() && adapter.device_id == 0 {
        notes.push(format!(
            "hwmon matched by PCI vendor {:#06x} only: the adapter reports no device id",
            adapter.vendor_id
        ));
    }
    if matches.is_empty() {
        // No PCI ids to compare (unusual sysfs): fall back on the driver's name.
        matches = with_files
            .filter(|c| c.vendor.is_none() && drivers_of(adapter.vendor_id).contains(&&*c.driver))
            .collect();
        if !matches.is_empty() {
            notes.push(format!(
                "hwmon matched by driver name ({}) only: its PCI ids are unreadable",
                matches[0].driver
            ));
        }
    }
    if matches.len() > 1 {
        let wanted = adapter.pci_bus_id.as_deref().and_then(PciAddress::parse);
        if let Some(at) = matches
            .iter()
            .position(|c| wanted.is_some() && c.bus == wanted)
        {
            matches = vec![matches[at]];
        } else {
            notes.push(format!(
                "{} hwmons match the adapter and none by PCI bus id; using {}",
                matches.len(),
                matches[0].label()
            ));
        }
    }
    let Some(&chosen) = matches.first() else {
        let found: Vec<String> = all.iter().map(Candidate::label).collect();
        return Err(format!(
            "no hwmon with {what} for {} under {} (found: {})",
            adapter.describe(),
            base.display(),
            if found.is_empty() {
                "none".to_string()
            } else {
                found.join(", ")
            }
        ));
    };
    Ok((chosen.clone(), notes))
}

/// amdgpu's telemetry files: shader clock `freq1_input` (sclk, Hz), memory clock
/// `freq2_input` (mclk, Hz), edge temperature `temp1_input` (m°C) and power cap `power1_cap`
/// (µW).
#[derive(Debug, Clone)]
pub struct HwmonTelemetry {
    dir: PathBuf,
    label: String,
}

/// The files [`HwmonTelemetry`] reads: file, and the factor from its unit to the figure's.
const TELEMETRY_FILES: [(&str, f64); 4] = [
    ("freq1_input", 1e-6),
    ("freq2_input", 1e-6),
    ("temp1_input", 1e-3),
    ("power1_cap", 1e-6),
];

impl HwmonTelemetry {
    /// Finds the amdgpu hwmon of `adapter` that has clocks or a temperature. `Err` says why
    /// there is none.
    pub fn open(root: &Path, adapter: &AdapterIdentity) -> Result<Self, String> {
        if adapter.vendor_id != VENDOR_AMD || adapter.cpu_adapter {
            return Err(format!(
                "no hwmon telemetry for {}: only amdgpu's hwmon reports clocks",
                adapter.describe()
            ));
        }
        let (chosen, _) = find(root, adapter, "GPU clocks or temperature", &|c| {
            TELEMETRY_FILES[..3]
                .iter()
                .any(|(f, _)| c.dir.join(f).exists())
        })?;
        Ok(Self {
            label: chosen.label(),
            dir: chosen.dir,
        })
    }

    fn figure(&self, index: usize) -> Option<f64> {
        let (file, scale) = TELEMETRY_FILES[index];
        sysfs::read_u64(&self.dir.join(file))
            .ok()
            .map(|raw| raw as f64 * scale)
    }
}

impl TelemetrySource for HwmonTelemetry {
    fn name(&self) -> &'static str {
        "hwmon"
    }

    fn describe(&self) -> String {
        format!("{} clocks and temperature", self.label)
    }

    fn read(&self) -> TelemetryReading {
        TelemetryReading {
            sm_clock_mhz: self.figure(0),
            memory_clock_mhz: self.figure(1),
            temperature_c: self.figure(2),
            power_limit_w: self.figure(3),
            pstate: None,
            throttle_reasons: None,
        }
    }
}

/// What a hwmon directory holds.
fn inspect(dir: &Path) -> Candidate {
    let device = dir.join("device");
    Candidate {
        driver: sysfs::read_trimmed(&dir.join("name")).unwrap_or_else(|_| "?".into()),
        vendor: sysfs::read_pci_id(&device.join("vendor")),
        device: sysfs::read_pci_id(&device.join("device")),
        // `device` links to the PCI device's directory, named by its address.
        bus: std::fs::canonicalize(&device).ok().and_then(|p| {
            p.file_name()
                .and_then(|n| PciAddress::parse(&n.to_string_lossy()))
        }),
        files: HwmonFile::ALL
            .into_iter()
            .filter(|f| dir.join(f.file_name()).exists())
            .collect(),
        dir: dir.to_path_buf(),
    }
}

impl HwmonSource {
    /// The attribute's raw value (µJ or µW).
    fn read_raw(&self) -> anyhow::Result<u64> {
        sysfs::read_u64(&self.path).map_err(|e| {
            if e.permission_denied() {
                anyhow::anyhow!("{e}: readable by root only here; run as root or use --watts")
            } else {
                e.into()
            }
        })
    }

    fn into_source(self) -> Source {
        match self.file {
            HwmonFile::Energy => Source::Counter(Arc::new(HwmonAttr::<true>(self))),
            HwmonFile::PowerAverage | HwmonFile::PowerInput => {
                Source::Gauge(Arc::new(HwmonAttr::<false>(self)))
            }
        }
    }

    fn describe(&self) -> String {
        format!("{} {}", self.label, self.file.file_name())
    }
}

/// One hwmon attribute as a source of its kind: `HwmonAttr<true>` is `energy1_input`, a
/// `measured-counter` source; `HwmonAttr<false>` is `power1_average` or `power1_input`, a
/// `measured-sampled` one. Both cover the GPU package.
struct HwmonAttr<const ENERGY: bool>(HwmonSource);

/// `energy1_input`.
type HwmonEnergy = HwmonAttr<true>;
/// `power1_average` or `power1_input`.
type HwmonPower = HwmonAttr<false>;

impl<const ENERGY: bool> SourceInfo for HwmonAttr<ENERGY> {
    fn name(&self) -> &'static str {
        "hwmon"
    }

    fn scope(&self) -> Scope {
        Scope::GpuPackage
    }

    fn describe(&self) -> String {
        self.0.describe()
    }

    /// Power: firmware averages refreshed in steps, so a shorter window sees too few of them.
    fn min_window_s(&self) -> f64 {
        if ENERGY { 0.0 } else { 1.0 }
    }
}

impl CounterSource for HwmonEnergy {
    fn read_counter(&self) -> anyhow::Result<CounterSnapshot> {
        // The driver keeps a 64-bit software total: it does not wrap, so going back is a reset.
        Ok(CounterSnapshot {
            unit_j: 1e-6,
            zones: vec![ZoneCount {
                raw: self.0.read_raw()?,
                wrap_at: None,
            }],
        })
    }

    /// The driver widens a 32-bit hardware counter into its total on each read, so it must be
    /// read before the hardware counter wraps twice. Its unit is not in sysfs; at the finest
    /// one in use (2^-16 J, a 65.5 kJ range) and the default largest power that is 33 s.
    fn wrap_period_s(&self) -> Option<f64> {
        Some(HWMON_HARDWARE_RANGE_J / DEFAULT_MAX_POWER_W)
    }
}

impl GaugeSource for HwmonPower {
    fn read_watts(&self) -> anyhow::Result<f64> {
        Ok(self.0.read_raw()? as f64 * 1e-6)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::power::integrate::counter_delta_j;
    use crate::result::Provenance;
    use std::fs;

    fn counter(s: &Source) -> Arc<dyn CounterSource> {
        match s {
            Source::Counter(c) => c.clone(),
            _ => panic!("not a counter"),
        }
    }

    fn gauge(s: &Source) -> Arc<dyn GaugeSource> {
        match s {
            Source::Gauge(g) => g.clone(),
            _ => panic!("not a gauge"),
        }
    }

    /// A hwmon directory `hwmon{n}` named `driver` for PCI `vendor:device`, with `files`
    /// (name, contents).
    pub(crate) fn fake_hwmon(
        root: &Path,
        n: u32,
        driver: &str,
        ids: Option<(u32, u32)>,
        files: &[(&str, &str)],
    ) -> PathBuf {
        let dir = root.join(format!("class/hwmon/hwmon{n}"));
        fs::create_dir_all(dir.join("device")).unwrap();
        fs::write(dir.join("name"), format!("{driver}\n")).unwrap();
        if let Some((v, d)) = ids {
            fs::write(dir.join("device/vendor"), format!("{v:#06x}\n")).unwrap();
            fs::write(dir.join("device/device"), format!("{d:#06x}\n")).unwrap();
        }
        for (name, text) in files {
            fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    /// The PCI device id of the amdgpu most tests fake (a Radeon RX 6800).
    const AMDGPU: u32 = 0x73bf;

    /// That amdgpu's hwmon directory `hwmon{n}`, with `files` (name, contents).
    pub(crate) fn fake_amdgpu(root: &Path, n: u32, files: &[(&str, &str)]) -> PathBuf {
        fake_hwmon(root, n, "amdgpu", Some((VENDOR_AMD, AMDGPU)), files)
    }

    /// That amdgpu as an adapter.
    pub(crate) fn amdgpu() -> AdapterIdentity {
        gpu(VENDOR_AMD, AMDGPU)
    }

    pub(crate) fn gpu(vendor_id: u32, device_id: u32) -> AdapterIdentity {
        AdapterIdentity {
            name: "test gpu".into(),
            vendor_id,
            device_id,
            cpu_adapter: false,
            pci_bus_id: None,
        }
    }

    #[test]
    fn i915_energy_is_a_counter_in_microjoules() {
        let root = tempfile::tempdir().unwrap();
        fake_hwmon(
            root.path(),
            0,
            "coretemp",
            None,
            &[("temp1_input", "40000")],
        );
        let dir = fake_hwmon(
            root.path(),
            3,
            "i915",
            Some((VENDOR_INTEL, 0x56a0)),
            &[("energy1_input", "5000000\n")],
        );
        let (s, notes) = HwmonSource::open(root.path(), &gpu(VENDOR_INTEL, 0x56a0)).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(s.provenance(), Provenance::MeasuredCounter);
        assert_eq!(s.info().scope(), Scope::GpuPackage);
        let describe = s.info().describe();
        assert!(describe.contains("hwmon3 (i915"), "{describe}");
        let a = counter(&s).read_counter().unwrap();
        // Read at least every quarter of 65.5 kJ at 2 kW, so the driver never misses a wrap.
        assert_eq!(counter(&s).wrap_period_s(), Some(32.768));
        fs::write(dir.join("energy1_input"), "7500000\n").unwrap();
        let b = counter(&s).read_counter().unwrap();
        assert!((counter_delta_j(&a, &b).unwrap() - 2.5).abs() < 1e-12);
        // A reload resets the total: backwards is a fault, not a wrap.
        fs::write(dir.join("energy1_input"), "10\n").unwrap();
        let c = counter(&s).read_counter().unwrap();
        assert!(counter_delta_j(&b, &c).is_err());
    }

    #[test]
    fn amdgpu_power_average_is_sampled_in_microwatts() {
        let root = tempfile::tempdir().unwrap();
        fake_amdgpu(
            root.path(),
            1,
            &[("power1_average", "153000000\n"), ("power1_input", "1\n")],
        );
        let (s, _) = HwmonSource::open(root.path(), &amdgpu()).unwrap();
        assert_eq!(s.provenance(), Provenance::MeasuredSampled);
        let describe = s.info().describe();
        assert!(describe.ends_with("power1_average"), "{describe}");
        assert!((gauge(&s).read_watts().unwrap() - 153.0).abs() < 1e-9);
        assert_eq!(s.info().min_window_s(), 1.0);
    }

    #[test]
    fn amdgpu_falls_back_to_power_input_when_the_average_fails() {
        let root = tempfile::tempdir().unwrap();
        let dir = fake_hwmon(
            root.path(),
            1,
            "amdgpu",
            Some((VENDOR_AMD, 0x744c)),
            &[("power1_input", "48000000\n")],
        );
        // Listed but unreadable (the driver returns an error on such parts).
        fs::create_dir(dir.join("power1_average")).unwrap();
        let (s, _) = HwmonSource::open(root.path(), &gpu(VENDOR_AMD, 0x744c)).unwrap();
        let describe = s.info().describe();
        assert!(describe.ends_with("power1_input"), "{describe}");
        assert!((gauge(&s).read_watts().unwrap() - 48.0).abs() < 1e-9);
    }

    #[test]
    fn the_hwmon_of_another_gpu_is_not_used() {
        let root = tempfile::tempdir().unwrap();
        fake_amdgpu(root.path(), 0, &[("power1_average", "1000000")]);
        fake_hwmon(
            root.path(),
            1,
            "i915",
            Some((VENDOR_INTEL, 0x9a49)),
            &[("energy1_input", "1")],
        );
        let err = HwmonSource::open(root.path(), &gpu(VENDOR_INTEL, 0x56a0)).unwrap_err();
        assert!(
            err.contains("0x56a0") && err.contains("hwmon0 (amdgpu, PCI 1002:73bf)"),
            "{err}"
        );
        let (s, _) = HwmonSource::open(root.path(), &amdgpu()).unwrap();
        assert!(s.info().describe().starts_with("hwmon0"));
    }

    #[test]
    #[cfg(unix)]
    fn several_matches_prefer_the_adapters_bus_id() {
        let root = tempfile::tempdir().unwrap();
        for (n, bus) in [(0, "0000:03:00.0"), (1, "0000:83:00.0")] {
            let dir = fake_hwmon(
                root.path(),
                n,
                "amdgpu",
                None,
                &[("power1_average", "1000000")],
            );
            // As in sysfs: `device` is a link to the PCI device's directory.
            let pci = root.path().join("devices").join(bus);
            fs::create_dir_all(&pci).unwrap();
            fs::write(pci.join("vendor"), "0x1002\n").unwrap();
            fs::write(pci.join("device"), "0x73bf\n").unwrap();
            fs::remove_dir(dir.join("device")).unwrap();
            std::os::unix::fs::symlink(&pci, dir.join("device")).unwrap();
        }
        let mut adapter = amdgpu();
        adapter.pci_bus_id = Some("0000:83:00.0".into());
        let (s, notes) = HwmonSource::open(root.path(), &adapter).unwrap();
        let describe = s.info().describe();
        assert!(describe.contains("hwmon1"), "{describe}");
        assert!(notes.is_empty(), "{notes:?}");
        adapter.pci_bus_id = None;
        let (s, notes) = HwmonSource::open(root.path(), &adapter).unwrap();
        assert!(s.info().describe().contains("hwmon0"));
        assert!(notes[0].contains("2 hwmons match"), "{notes:?}");
    }

    #[test]
    fn unknown_device_id_or_missing_pci_ids_match_with_a_note() {
        let root = tempfile::tempdir().unwrap();
        fake_hwmon(
            root.path(),
            0,
            "i915",
            Some((VENDOR_INTEL, 0x56a0)),
            &[("energy1_input", "1")],
        );
        let (_, notes) = HwmonSource::open(root.path(), &gpu(VENDOR_INTEL, 0)).unwrap();
        assert!(notes[0].contains("vendor"), "{notes:?}");

        let root = tempfile::tempdir().unwrap();
        fake_hwmon(root.path(), 0, "xe", None, &[("energy1_input", "1")]);
        let (_, notes) = HwmonSource::open(root.path(), &gpu(VENDOR_INTEL, 0x56a0)).unwrap();
        assert!(notes[0].contains("driver name (xe)"), "{notes:?}");
    }

    #[test]
    fn no_hwmon_tree_says_so() {
        let root = tempfile::tempdir().unwrap();
        let err = HwmonSource::open(root.path(), &gpu(VENDOR_AMD, 1)).unwrap_err();
        assert!(err.contains("class/hwmon"), "{err}");
    }
}
