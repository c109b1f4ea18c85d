//! Choosing the power source: the one asked for, or under `auto` the best that works for the
//! adapter, with a record of every source considered and why it was used or skipped.

use std::path::Path;
use std::sync::Arc;

use super::command::CommandSource;
use super::declared::DeclaredSource;
use super::hwmon::HwmonSource;
use super::nvml::{self, NvmlApi};
use super::rapl::RaplSource;
use super::source::{GaugeSource, Source};
use super::{AdapterIdentity, PowerOptions, PowerRequest, VENDOR_AMD, VENDOR_INTEL, VENDOR_NVIDIA};
use crate::InputError;
use crate::result::PowerAttempt;

/// Loads NVML: the real library, or a scripted one in tests.
pub(crate) type NvmlLoader<'a> = &'a dyn Fn(Option<&Path>) -> Result<Arc<dyn NvmlApi>, String>;

/// A source that works, as [`select`] found it.
pub(super) struct Found {
    /// The source.
    pub(super) source: Source,
    /// Sampled power to cross-check a counter with (NVML).
    pub(super) cross_check: Option<Arc<dyn GaugeSource>>,
    /// Warnings that qualify every figure.
    pub(super) notes: Vec<String>,
}

/// What [`select`] decided.
pub(super) struct Selection {
    /// Every source considered, in order.
    pub(super) tried: Vec<PowerAttempt>,
    /// The source to use; `None` when there is none.
    pub(super) found: Option<Found>,
    /// Why there is no source, for every record when there is none.
    pub(super) no_source_reason: String,
}

/// Chooses the source `opts` ask for, for `adapter` (options already validated).
///
/// Fails with an [`InputError`] when a source asked for explicitly cannot work. Under `auto`,
/// unusable sources are skipped and recorded; finding none is not an error.
pub(super) fn select(
    opts: &PowerOptions,
    adapter: &AdapterIdentity,
    load_nvml: NvmlLoader<'_>,
) -> anyhow::Result<Selection> {
    let mut tried = Vec::new();
    let auto = opts.requested == PowerRequest::Auto;
    let order: Vec<PowerRequest> = match opts.requested {
        PowerRequest::None => {
            return Ok(Selection {
                tried,
                found: None,
                no_source_reason: "power measurement is off (--power-source none)".into(),
            });
        }
        PowerRequest::Auto => vec![
            PowerRequest::Nvml,
            PowerRequest::Hwmon,
            PowerRequest::Rapl,
            PowerRequest::Command,
            PowerRequest::Declared,
        ],
        explicit => vec![explicit],
    };

    let mut found: Option<Found> = None;
    for kind in order {
        if let Some(f) = &found {
            // Say why a source the user gave was not used.
            let given = match kind {
                PowerRequest::Command => opts.command.is_some(),
                PowerRequest::Declared => opts.watts.is_some(),
                _ => false,
            };
            if given {
                tried.push(PowerAttempt {
                    source: kind.to_string(),
                    used: false,
                    detail: format!(
                        "not used: auto found {} first; pass --power-source {kind} to use it",
                        f.source.info().name()
                    ),
                });
            }
            continue;
        }
        match find(kind, opts, adapter, auto, load_nvml) {
            Ok(f) => {
                let mut detail = f.source.info().describe();
                for note in &f.notes {
                    detail += &format!("; {note}");
                }
                tried.push(PowerAttempt {
                    source: kind.to_string(),
                    used: true,
                    detail,
                });
                found = Some(f);
            }
            Err(why) if auto => tried.push(PowerAttempt {
                source: kind.to_string(),
                used: false,
                detail: why,
            }),
            Err(why) => {
                return Err(InputError::new(format!("--power-source {kind}: {why}")).into());
            }
        }
    }

    let no_source_reason = if found.is_some() {
        String::new()
    } else {
        let why: Vec<String> = tried
            .iter()
            .map(|a| format!("{}: {}", a.source, a.detail))
            .collect();
        format!(
            "no power source available ({}); give --watts W or --power-cmd 'CMD'",
            why.join("; ")
        )
    };
    Ok(Selection {
        tried,
        found,
        no_source_reason,
    })
}

/// Tries one source; `Err` says why it cannot be used.
fn find(
    kind: PowerRequest,
    opts: &PowerOptions,
    adapter: &AdapterIdentity,
    auto: bool,
    load_nvml: NvmlLoader<'_>,
) -> Result<Found, String> {
    let plain = |source: Source, notes: Vec<String>| Found {
        source,
        cross_check: None,
        notes,
    };
    let found = match kind {
        PowerRequest::Nvml => {
            if auto && adapter.vendor_id != VENDOR_NVIDIA {
                return Err(format!(
                    "the adapter {} is not an NVIDIA GPU",
                    adapter.describe()
                ));
            }
            let api = load_nvml(opts.nvml_library.as_deref())?;
            let choice = nvml::open(api, adapter)?;
            Found {
                source: choice.primary,
                cross_check: choice.cross_check,
                notes: choice.notes,
            }
        }
        PowerRequest::Hwmon => {
            if auto && adapter.cpu_adapter {
                return Err(format!(
                    "the adapter {} is a CPU device",
                    adapter.describe()
                ));
            }
            if auto && ![VENDOR_INTEL, VENDOR_AMD].contains(&adapter.vendor_id) {
                return Err(format!(
                    "the adapter {} is not an Intel or AMD GPU",
                    adapter.describe()
                ));
            }
            let (source, notes) = HwmonSource::open(&opts.sysfs_root, adapter)?;
            plain(source, notes)
        }
        PowerRequest::Rapl => {
            let source = RaplSource::open(&opts.sysfs_root)?;
            let notes = if adapter.cpu_adapter {
                Vec::new()
            } else {
                vec![
                    "rapl measures the CPU package(s): that includes an integrated GPU, not a \
                     discrete one"
                        .to_string(),
                ]
            };
            plain(Source::Counter(Arc::new(source)), notes)
        }
        PowerRequest::Command => {
            let Some(cmd) = &opts.command else {
                return Err("no --power-cmd given".into());
            };
            let source =
                CommandSource::new(cmd.clone(), opts.command_scope, opts.command_timeout());
            plain(Source::Gauge(Arc::new(source)), Vec::new())
        }
        PowerRequest::Declared => {
            let Some(watts) = opts.watts else {
                return Err("no --watts given".into());
            };
            plain(
                Source::Declared(DeclaredSource::new(watts, opts.command_scope)),
                Vec::new(),
            )
        }
        PowerRequest::Auto | PowerRequest::None => {
            return Err(format!("{kind} is not a source"));
        }
    };
    // One read now, so a source that cannot work is found before any workload.
    found.source.probe().map_err(|e| format!("{e:#}"))?;
    Ok(found)
}
