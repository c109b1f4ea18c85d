//! RAPL through Linux powercap: `<root>/class/powercap/intel-rapl:N/energy_uj`, one energy
//! counter (µJ) per CPU package, wrapping at `max_energy_range_uj`. The right source for CPU
//! adapters such as lavapipe. (AMD CPUs expose the same tree.)

use std::path::{Path, PathBuf};

use super::counter::DEFAULT_MAX_POWER_W;
use super::source::{CounterSnapshot, CounterSource, SourceInfo, ZoneCount};
use super::sysfs::{self, ReadError};
use crate::result::Scope;

/// What to tell a user whose kernel keeps `energy_uj` from non-root users (since the
/// PLATYPUS side channel, CVE-2020-8694).
pub const ROOT_ONLY: &str =
    "energy_uj is readable by root only on this kernel; run as root or use --power-cmd/--watts";

/// The CPU packages' RAPL energy counters, summed.
#[derive(Debug, Clone)]
pub struct RaplSource {
    zones: Vec<Zone>,
}

#[derive(Debug, Clone)]
struct Zone {
    /// "package-0" (the `name` file), or the directory name when there is none.
    name: String,
    dir: PathBuf,
    max_range_uj: u64,
    /// The largest of the zone's readable `constraint_*_max_power_uw` and
    /// `constraint_*_power_limit_uw`, in watts; `None` when none is readable.
    max_power_w: Option<f64>,
}

impl Zone {
    /// Seconds to wrap at the zone's largest plausible power.
    fn wrap_s(&self) -> f64 {
        self.max_range_uj as f64 * 1e-6 / self.max_power_w.unwrap_or(DEFAULT_MAX_POWER_W)
    }
}

/// The largest power limit of a RAPL zone's constraints, in watts (0 counts as unreadable).
fn max_power_w(dir: &Path) -> Option<f64> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("constraint_")
                && (name.ends_with("_max_power_uw") || name.ends_with("_power_limit_uw"))
        })
        .filter_map(|e| sysfs::read_u64(&e.path()).ok())
        .filter(|&uw| uw > 0)
        .max()
        .map(|uw| uw as f64 * 1e-6)
}

impl RaplSource {
    /// Finds the package zones under `<root>/class/powercap` and reads each once, so an
    /// unreadable counter is found now, not mid-run. `Err` says why RAPL cannot be used.
    pub fn open(root: &Path) -> Result<Self, String> {
        let base = root.join("class/powercap");
        let entries = std::fs::read_dir(&base).map_err(|e| {
            format!(
                "no RAPL: cannot list {} ({e}); RAPL needs Linux with the intel_rapl driver on \
                 an x86 machine (often hidden inside VMs and containers)",
                base.display()
            )
        })?;
        let mut dirs: Vec<(u32, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                // Packages only: "intel-rapl:0:0" is a sub-zone (core, uncore, dram) already
                // inside its package's count, and "intel-rapl-mmio:0" repeats a package.
                let index = name.strip_prefix("intel-rapl:")?.parse::<u32>().ok()?;
                Some((index, e.path()))
            })
            .collect();
        dirs.sort();
        if dirs.is_empty() {
            return Err(format!(
                "no RAPL zones (intel-rapl:N) under {}; the intel_rapl driver is not loaded or \
                 the machine does not expose RAPL",
                base.display()
            ));
        }
        let mut zones = Vec::new();
        for (_, dir) in dirs {
            let name = sysfs::read_trimmed(&dir.join("name")).unwrap_or_else(|_| {
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            // "psys" (platform) spans the packages and more: adding it would count twice.
            if name == "psys" {
                continue;
            }
            let max_range_uj =
                sysfs::read_u64(&dir.join("max_energy_range_uj")).map_err(|e| e.to_string())?;
            let max_power_w = max_power_w(&dir);
            zones.push(Zone {
                name,
                dir,
                max_range_uj,
                max_power_w,
            });
        }
        if zones.is_empty() {
            return Err(format!(
                "no RAPL package zones under {} (only psys)",
                base.display()
            ));
        }
        let source = Self { zones };
        source.read_counters().map_err(|e| e.to_string())?;
        Ok(source)
    }

    fn read_counters(&self) -> Result<CounterSnapshot, RaplReadError> {
        let mut counts = Vec::with_capacity(self.zones.len());
        for z in &self.zones {
            let raw = sysfs::read_u64(&z.dir.join("energy_uj")).map_err(RaplReadError)?;
            counts.push(ZoneCount {
                raw,
                wrap_at: Some(z.max_range_uj),
            });
        }
        Ok(CounterSnapshot {
            unit_j: 1e-6,
            zones: counts,
        })
    }
}

/// A failed read, with the root-only explanation where that is the cause.
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(.0))]
struct RaplReadError(ReadError);

fn describe(e: &ReadError) -> String {
    if e.permission_denied() {
        let path = match e {
            ReadError::Io { path, .. } | ReadError::Parse { path, .. } => path,
        };
        format!("{}: {ROOT_ONLY}", path.display())
    } else {
        e.to_string()
    }
}

impl SourceInfo for RaplSource {
    fn name(&self) -> &'static str {
        "rapl"
    }

    fn scope(&self) -> Scope {
        Scope::CpuPackage
    }

    fn describe(&self) -> String {
        let names: Vec<String> = self
            .zones
            .iter()
            .map(|z| format!("{} ({})", z.name, z.dir.display()))
            .collect();
        format!("RAPL energy_uj of {}", names.join(" + "))
    }
}

impl CounterSource for RaplSource {
    fn read_counter(&self) -> anyhow::Result<CounterSnapshot> {
        Ok(self.read_counters()?)
    }

    /// The soonest any package wraps: its range over its largest power limit (or
    /// [`DEFAULT_MAX_POWER_W`] where none is readable).
    fn wrap_period_s(&self) -> Option<f64> {
        self.zones.iter().map(Zone::wrap_s).reduce(f64::min)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::power::integrate::counter_delta_j;
    use std::fs;

    /// A fake powercap tree: packages `(energy_uj, max_energy_range_uj)`, plus a core sub-zone
    /// and an mmio zone that must be ignored.
    pub(crate) fn fake_rapl(root: &Path, packages: &[(u64, u64)]) {
        let base = root.join("class/powercap");
        for (i, (energy, range)) in packages.iter().enumerate() {
            let dir = base.join(format!("intel-rapl:{i}"));
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("name"), format!("package-{i}\n")).unwrap();
            fs::write(dir.join("energy_uj"), format!("{energy}\n")).unwrap();
            fs::write(dir.join("max_energy_range_uj"), format!("{range}\n")).unwrap();
            let sub = base.join(format!("intel-rapl:{i}:0"));
            fs::create_dir_all(&sub).unwrap();
            fs::write(sub.join("name"), "core\n").unwrap();
            fs::write(sub.join("energy_uj"), "999999999\n").unwrap();
            fs::write(sub.join("max_energy_range_uj"), format!("{range}\n")).unwrap();
        }
        let mmio = base.join("intel-rapl-mmio:0");
        fs::create_dir_all(&mmio).unwrap();
        fs::write(mmio.join("energy_uj"), "777777777\n").unwrap();
    }

    pub(crate) fn set_energy(root: &Path, package: usize, energy_uj: u64) {
        let path = root.join(format!("class/powercap/intel-rapl:{package}/energy_uj"));
        replace_whole(&path, &format!("{energy_uj}\n"));
    }

    /// Replaces a fake sysfs file as the kernel does, whole: a meter polling it on its own
    /// thread reads the old value or the new one, never the empty file `fs::write` leaves
    /// between truncating and writing.
    pub(crate) fn replace_whole(path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, text).unwrap();
        fs::rename(tmp, path).unwrap();
    }

    fn counter(s: &RaplSource) -> CounterSnapshot {
        s.read_counter().unwrap()
    }

    /// Joules `s` counts from now until package i's `energy_uj` reads `after[i]`.
    fn joules_until(s: &RaplSource, root: &Path, after: &[u64]) -> f64 {
        let a = counter(s);
        for (package, &uj) in after.iter().enumerate() {
            set_energy(root, package, uj);
        }
        counter_delta_j(&a, &counter(s)).unwrap()
    }

    #[test]
    fn packages_are_summed_and_sub_zones_ignored() {
        let root = tempfile::tempdir().unwrap();
        fake_rapl(
            root.path(),
            &[(1_000_000, 10_000_000), (2_000_000, 10_000_000)],
        );
        let s = RaplSource::open(root.path()).unwrap();
        assert_eq!(s.scope(), Scope::CpuPackage);
        assert!(s.describe().contains("package-0") && s.describe().contains("package-1"));
        assert!(!s.describe().contains("mmio"));
        assert_eq!(counter(&s).zones.len(), 2);
        let joules = joules_until(&s, root.path(), &[4_000_000, 2_500_000]);
        assert!((joules - 3.5).abs() < 1e-12);
    }

    #[test]
    fn a_wrap_between_two_reads_uses_max_energy_range() {
        let root = tempfile::tempdir().unwrap();
        let range = 262_143_328_850;
        fake_rapl(root.path(), &[(range - 500_000, range)]);
        let s = RaplSource::open(root.path()).unwrap();
        assert!((joules_until(&s, root.path(), &[1_500_000]) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn the_wrap_period_comes_from_the_largest_power_limit_or_a_conservative_bound() {
        let root = tempfile::tempdir().unwrap();
        fake_rapl(root.path(), &[(1, 50_000_000), (1, 262_143_328_850)]);
        let s = RaplSource::open(root.path()).unwrap();
        // No limits readable: 50 J at 2000 W.
        assert!((s.wrap_period_s().unwrap() - 0.025).abs() < 1e-12);
        let zone = root.path().join("class/powercap/intel-rapl:0");
        fs::write(zone.join("constraint_0_max_power_uw"), "100000000\n").unwrap();
        fs::write(zone.join("constraint_1_power_limit_uw"), "125000000\n").unwrap();
        fs::write(zone.join("constraint_2_max_power_uw"), "0\n").unwrap();
        fs::write(zone.join("constraint_0_name"), "long_term\n").unwrap();
        let s = RaplSource::open(root.path()).unwrap();
        assert!((s.wrap_period_s().unwrap() - 0.4).abs() < 1e-12);
    }

    #[test]
    fn psys_is_not_added_to_the_packages() {
        let root = tempfile::tempdir().unwrap();
        fake_rapl(root.path(), &[(1, 100), (1, 100)]);
        fs::write(
            root.path().join("class/powercap/intel-rapl:1/name"),
            "psys\n",
        )
        .unwrap();
        let s = RaplSource::open(root.path()).unwrap();
        assert_eq!(counter(&s).zones.len(), 1);
    }

    #[test]
    fn missing_trees_say_why() {
        let root = tempfile::tempdir().unwrap();
        let err = RaplSource::open(root.path()).unwrap_err();
        assert!(err.contains("class/powercap"), "{err}");
        fs::create_dir_all(root.path().join("class/powercap/intel-rapl:0:0")).unwrap();
        let err = RaplSource::open(root.path()).unwrap_err();
        assert!(err.contains("no RAPL zones"), "{err}");
    }

    #[test]
    fn an_unreadable_counter_is_found_at_open() {
        let root = tempfile::tempdir().unwrap();
        fake_rapl(root.path(), &[(1, 100)]);
        let energy = root.path().join("class/powercap/intel-rapl:0/energy_uj");
        // A directory where the file should be cannot be read, even by root.
        fs::remove_file(&energy).unwrap();
        fs::create_dir(&energy).unwrap();
        let err = RaplSource::open(root.path()).unwrap_err();
        assert!(err.contains("energy_uj"), "{err}");
    }

    #[test]
    #[cfg(unix)]
    fn permission_denied_says_root_only() {
        // The kernel's 0400 energy_uj, as a non-root user sees it.
        let root = tempfile::tempdir().unwrap();
        fake_rapl(root.path(), &[(1, 100)]);
        let energy = root.path().join("class/powercap/intel-rapl:0/energy_uj");
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&energy, fs::Permissions::from_mode(0o000)).unwrap();
        if fs::read(&energy).is_ok() {
            // Running as root, which reads anything: check the message on the error itself.
            let e = ReadError::Io {
                path: energy.clone(),
                source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            };
            let msg = describe(&e);
            assert!(
                msg.ends_with(ROOT_ONLY) && msg.contains("intel-rapl:0"),
                "{msg}"
            );
        } else {
            let err = RaplSource::open(root.path()).unwrap_err();
            assert!(err.ends_with(ROOT_ONLY), "{err}");
        }
    }
}
