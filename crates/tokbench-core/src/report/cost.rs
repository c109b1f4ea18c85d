//! The cost model: what a million tokens cost on a node, and what they emit, from the site's
//! electricity (a flat price or a time-of-use schedule, at the hours the node runs), its
//! facility overhead (PUE, or an all-in provisioned power per GPU), its carbon intensity, and
//! the node's hardware (bought and spread over its lifetime, or rented; by node, by adapter or
//! through a named tier).
//!
//! Per million tokens (Mtok), each part shown apart:
//! - energy, kWh/Mtok: measured `10⁶ / tokens_per_j / 3.6·10⁶ × PUE`, or provisioned
//!   `kW_per_GPU × 10⁶ / tokens_per_s / 3600`;
//! - energy cost = kWh/Mtok × the price paid per kWh: the flat price, or the mean of the
//!   schedule's hourly prices over the run hours;
//! - hardware cost = hourly price × 24 / run hours a day / 3600 / tokens_per_s × 10⁶: hardware
//!   is paid around the clock (owned over its lifetime, or rented on a term), so a node that
//!   runs fewer hours a day spreads it over fewer tokens; the hourly price is the rental price,
//!   or the purchase price / (lifetime years × 8766 h);
//! - carbon, gCO₂e/Mtok = kWh/Mtok × (green share × green intensity + (1 − green share) × grid
//!   intensity).

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::InputError;
use crate::result::RunResult;
use crate::units::{HOURS_PER_DAY, HOURS_PER_YEAR, J_PER_KWH, S_PER_HOUR, TOKENS_PER_MTOK};

/// Prices, from `--price-kwh`, `--prices FILE` (JSON, or TOML when it ends in `.toml`) and the
/// facility flags.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceBook {
    /// A label for the currency ("USD", "EUR"); prices are in any one currency.
    #[serde(default)]
    pub currency: Option<String>,
    /// Flat energy price per kWh; `--price-kwh` overrides it (and a schedule).
    #[serde(default)]
    pub price_kwh: Option<f64>,
    /// Time-of-use energy prices per kWh by hours of the day, "START-END" in whole hours
    /// ("0-7" = 0.18, "7-23" = 0.32, "23-24" = 0.18): every hour from 0 to 24 exactly once.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub time_of_use: BTreeMap<String, f64>,
    /// Hours of the day the node runs ("0-8,22-24"); all day when absent. `--run-hours`
    /// overrides it.
    #[serde(default)]
    pub run_hours: Option<String>,
    /// Power usage effectiveness of the facility (1.0 or more): measured power × PUE is what
    /// the site pays for. `--pue` overrides it; 1.0 when absent.
    #[serde(default)]
    pub pue: Option<f64>,
    /// All-in provisioned power per GPU, kW (facility included), used instead of measured
    /// power × PUE. `--provisioned-kw-per-gpu` overrides it.
    #[serde(default)]
    pub provisioned_kw_per_gpu: Option<f64>,
    /// Carbon intensity of the supply; adds gCO₂e per million tokens.
    #[serde(default)]
    pub carbon: Option<Carbon>,
    /// Named hardware cost tiers ("hyperscaler", "neocloud", "rental-3y"), referred to by
    /// `tier = "NAME"` in a node or adapter entry, or by `--tier` for every node.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tiers: BTreeMap<String, HardwarePrice>,
    /// Hardware prices by node: host name, or the scheduler's node name.
    #[serde(default)]
    pub nodes: BTreeMap<String, HardwarePrice>,
    /// Hardware prices by adapter name, exactly as results record it; a node's own entry wins.
    #[serde(default)]
    pub adapters: BTreeMap<String, HardwarePrice>,
    /// The tier that prices every node without an entry of its own (`--tier`).
    #[serde(default)]
    pub default_tier: Option<String>,
}

/// Carbon intensity of the electricity, grams of CO₂-equivalent per kWh.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Carbon {
    /// Intensity of grid supply, gCO₂e/kWh.
    pub grid_g_per_kwh: f64,
    /// Intensity of the green (contracted renewable) supply, gCO₂e/kWh.
    #[serde(default)]
    pub green_g_per_kwh: f64,
    /// Share of the energy from green supply, 0 to 1.
    #[serde(default)]
    pub green_share: f64,
}

impl Carbon {
    /// The blended intensity, gCO₂e/kWh.
    pub fn g_per_kwh(&self) -> f64 {
        self.green_share * self.green_g_per_kwh + (1.0 - self.green_share) * self.grid_g_per_kwh
    }
}

/// What a node's hardware costs: bought, rented by the hour, or a named tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwarePrice {
    /// A tier of the prices file's `tiers`, instead of the prices below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Purchase price; needs `lifetime_years`.
    #[serde(default)]
    pub hardware_price: Option<f64>,
    /// Years the purchase is spread over.
    #[serde(default)]
    pub lifetime_years: Option<f64>,
    /// Rental price per hour (instead of a purchase).
    #[serde(default)]
    pub rental_per_hour: Option<f64>,
}

impl HardwarePrice {
    /// A purchase spread over `lifetime_years`.
    pub fn bought(price: f64, lifetime_years: f64) -> Self {
        Self {
            tier: None,
            hardware_price: Some(price),
            lifetime_years: Some(lifetime_years),
            rental_per_hour: None,
        }
    }

    /// A rental at `per_hour`.
    pub fn rented(per_hour: f64) -> Self {
        Self {
            tier: None,
            hardware_price: None,
            lifetime_years: None,
            rental_per_hour: Some(per_hour),
        }
    }

    /// Price of one hour of the hardware (of a resolved price, not a tier reference).
    pub fn per_hour(&self) -> f64 {
        match (
            self.rental_per_hour,
            self.hardware_price,
            self.lifetime_years,
        ) {
            (Some(r), _, _) => r,
            (None, Some(p), Some(y)) => p / (y * HOURS_PER_YEAR),
            _ => unreachable!("validated by PriceBook::validate"),
        }
    }

    /// "rented at 2.5/h", "30000 over 4 years" or "tier neocloud".
    pub fn basis(&self) -> String {
        match (
            &self.tier,
            self.rental_per_hour,
            self.hardware_price,
            self.lifetime_years,
        ) {
            (Some(t), _, _, _) => format!("tier {t}"),
            (None, Some(r), _, _) => format!("rented at {r}/h"),
            (None, None, Some(p), Some(y)) => format!("{p} over {y} years"),
            _ => String::new(),
        }
    }

    fn validate(&self, at: &[&str], tiers: Option<&BTreeMap<String, HardwarePrice>>) -> Checked {
        let priced = self.hardware_price.is_some()
            || self.lifetime_years.is_some()
            || self.rental_per_hour.is_some();
        if let Some(tier) = &self.tier {
            let mut path = at.to_vec();
            path.push("tier");
            if priced {
                return Err(Bad::at(
                    &path,
                    format!("tier = {tier:?} and prices of its own: give one or the other"),
                ));
            }
            return match tiers {
                None => Err(Bad::at(&path, "a tier cannot refer to another tier")),
                Some(t) if t.contains_key(tier) => Ok(()),
                Some(t) => Err(Bad::at(&path, unknown_tier(tier, t))),
            };
        }
        for (name, v) in [
            ("hardware_price", self.hardware_price),
            ("lifetime_years", self.lifetime_years),
            ("rental_per_hour", self.rental_per_hour),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                let mut path = at.to_vec();
                path.push(name);
                return Err(Bad::at(
                    &path,
                    format!("{name} = {v} must be a positive number"),
                ));
            }
        }
        match (
            self.rental_per_hour,
            self.hardware_price,
            self.lifetime_years,
        ) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => Ok(()),
            (Some(_), _, _) => Err(Bad::at(
                at,
                "give either rental_per_hour or hardware_price with lifetime_years, not both",
            )),
            _ => Err(Bad::at(
                at,
                "give hardware_price with lifetime_years, rental_per_hour, or tier",
            )),
        }
    }
}

fn unknown_tier(tier: &str, tiers: &BTreeMap<String, HardwarePrice>) -> String {
    let names: Vec<&str> = tiers.keys().map(String::as_str).collect();
    format!(
        "unknown tier {tier:?} (the prices file's tiers: {})",
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    )
}

/// A validation error with the keys that lead to the bad entry, so the file's line can be
/// named.
#[derive(Debug)]
struct Bad {
    path: Vec<String>,
    message: String,
}

impl Bad {
    fn at(path: &[&str], message: impl Into<String>) -> Self {
        Self {
            path: path.iter().map(|s| (*s).to_string()).collect(),
            message: message.into(),
        }
    }

    /// "name.sub: message", the key path written as in the file.
    fn text(&self) -> String {
        let key = self
            .path
            .iter()
            .map(|k| {
                if k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    k.clone()
                } else {
                    format!("{k:?}")
                }
            })
            .collect::<Vec<_>>()
            .join(".");
        if key.is_empty() {
            self.message.clone()
        } else {
            format!("{key}: {}", self.message)
        }
    }
}

type Checked = Result<(), Bad>;

/// Where an entry's facility power comes from, as every table says it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EnergyBasis {
    /// Measured power (tokens/J) × the facility's PUE.
    MeasuredTimesPue {
        /// Power usage effectiveness applied.
        pue: f64,
    },
    /// An all-in provisioned power per GPU, independent of the measured power.
    ProvisionedPerGpu {
        /// kW per GPU.
        kw_per_gpu: f64,
    },
}

impl EnergyBasis {
    /// "measured power × PUE 1.3" or "provisioned 1.73 kW per GPU".
    pub fn describe(&self) -> String {
        match self {
            Self::MeasuredTimesPue { pue } => format!("measured power × PUE {pue}"),
            Self::ProvisionedPerGpu { kw_per_gpu } => {
                format!("provisioned {kw_per_gpu} kW per GPU")
            }
        }
    }
}

/// What the prices and flags come to, once: the figures every cost uses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostTerms {
    /// The energy price paid per kWh: the flat price, or the schedule's mean over the run
    /// hours; null without an energy price.
    pub energy_price_paid_kwh: Option<f64>,
    /// The run hours as ranges of the day.
    pub run_hours: Vec<[u32; 2]>,
    /// Hours a day the node runs.
    pub run_hours_per_day: f64,
    /// How energy per token is counted.
    pub energy_basis: EnergyBasis,
    /// The blended carbon intensity, gCO₂e/kWh; null without one.
    pub carbon_g_per_kwh: Option<f64>,
}

/// The cost of a million tokens on one node, by part. A part is null when its price was not
/// given or the figure it needs is missing; never 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cost {
    /// Facility energy per million tokens, kWh (PUE or provisioned power included).
    pub energy_kwh_per_mtok: Option<f64>,
    /// Energy cost per million tokens (needs an energy price, and tokens/J unless provisioned).
    pub energy_per_mtok: Option<f64>,
    /// Hardware (purchase or rental) cost per million tokens.
    pub hardware_per_mtok: Option<f64>,
    /// Where the hardware price came from: "tier neocloud", "rented at 2/h", ...
    pub hardware_basis: Option<String>,
    /// The sum of the parts that were priced; null when a priced part is missing for this node
    /// (a total without it would not compare with the others).
    pub total_per_mtok: Option<f64>,
    /// Emissions per million tokens, gCO₂e; null without a carbon intensity or energy figure.
    pub carbon_g_per_mtok: Option<f64>,
    /// Why the total is missing.
    pub missing: Option<String>,
}

/// The cost flags of `tokbench compare`, applied over the prices file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CostFlags {
    /// `--price-kwh`: a flat energy price.
    pub price_kwh: Option<f64>,
    /// `--pue`.
    pub pue: Option<f64>,
    /// `--provisioned-kw-per-gpu`.
    pub provisioned_kw_per_gpu: Option<f64>,
    /// `--run-hours`.
    pub run_hours: Option<String>,
    /// `--tier`.
    pub tier: Option<String>,
}

impl CostFlags {
    fn any(&self) -> bool {
        self.price_kwh.is_some()
            || self.pue.is_some()
            || self.provisioned_kw_per_gpu.is_some()
            || self.run_hours.is_some()
            || self.tier.is_some()
    }
}

/// Parses hour ranges "0-8,22-24" (whole hours, END after START, up to 24, no overlap) into
/// sorted `[start, end)` ranges.
pub fn parse_hours(text: &str) -> Result<Vec<[u32; 2]>, String> {
    let mut ranges = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (a, b) = part
            .split_once('-')
            .ok_or_else(|| format!("{part:?} is not a range of hours like 8-22"))?;
        let hour = |s: &str| {
            s.trim()
                .parse::<u32>()
                .ok()
                .filter(|h| *h <= 24)
                .ok_or_else(|| format!("{part:?}: {s:?} is not a whole hour from 0 to 24"))
        };
        let (a, b) = (hour(a)?, hour(b)?);
        if a >= b {
            return Err(format!(
                "{part:?}: the end must come after the start (split a range over midnight, \
                 as 22-24,0-6)"
            ));
        }
        ranges.push([a, b]);
    }
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        if pair[1][0] < pair[0][1] {
            return Err(format!(
                "{}-{} and {}-{} overlap",
                pair[0][0], pair[0][1], pair[1][0], pair[1][1]
            ));
        }
    }
    Ok(ranges)
}

/// The line of `text` (1-based) where the keys of `path` are written, each searched from the
/// line of the one before; the last line found when a key is missing (the entry it belongs
/// in). Works for TOML and JSON as people write them.
fn line_of(text: &str, path: &[String]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut at = None;
    let mut from = 0;
    for key in path {
        let found = (from..lines.len()).find(|&i| has_key(lines[i], key));
        match found {
            Some(i) => {
                at = Some(i);
                from = i;
            }
            None => break,
        }
    }
    at.map(|i| i + 1)
}

/// True when `key` appears in `line` as a whole key, not as part of a longer word.
fn has_key(line: &str, key: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    line.match_indices(key).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + key.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

impl PriceBook {
    /// The prices from `file` (JSON, or TOML when it ends in `.toml`) with `flags` applied over
    /// them. No file and no flag: no cost model. Every bad value is an input error naming the
    /// flag, or the file and its line.
    pub fn from_inputs(flags: &CostFlags, file: Option<&Path>) -> Result<Option<Self>, InputError> {
        let (mut book, text) = match file {
            Some(path) => {
                let (book, text) = Self::read(path)?;
                (book, Some(text))
            }
            None if !flags.any() => return Ok(None),
            None => (Self::default(), None),
        };
        let flag = |name: &str, v: Option<f64>, min: f64| -> Result<Option<f64>, InputError> {
            match v {
                Some(v) if !(v.is_finite() && v >= min) => Err(InputError::new(format!(
                    "{name} {v}: must be a number, {min} or more"
                ))),
                _ => Ok(v),
            }
        };
        if let Some(p) = flag("--price-kwh", flags.price_kwh, 0.0)? {
            book.price_kwh = Some(p);
            // A flat price given on the command line replaces the file's schedule.
            book.time_of_use.clear();
        }
        if let Some(p) = flag("--pue", flags.pue, 1.0)? {
            book.pue = Some(p);
            book.provisioned_kw_per_gpu = None;
        }
        if let Some(kw) = flag(
            "--provisioned-kw-per-gpu",
            flags.provisioned_kw_per_gpu,
            0.0,
        )? {
            if flags.pue.is_some() {
                return Err(InputError::new(
                    "--pue and --provisioned-kw-per-gpu: give one (a provisioned figure \
                     already holds the facility's overhead)",
                ));
            }
            book.provisioned_kw_per_gpu = Some(kw);
            book.pue = None;
        }
        if let Some(hours) = &flags.run_hours {
            parse_hours(hours).map_err(|e| InputError::new(format!("--run-hours {hours}: {e}")))?;
            book.run_hours = Some(hours.clone());
        }
        if let Some(tier) = &flags.tier {
            if !book.tiers.contains_key(tier) {
                return Err(InputError::new(format!(
                    "--tier {tier}: {}",
                    unknown_tier(tier, &book.tiers)
                )));
            }
            book.default_tier = Some(tier.clone());
        }
        let named_file = |e: Bad| match (file, &text) {
            (Some(path), Some(text)) => {
                let line = line_of(text, &e.path)
                    .map(|l| format!(":{l}"))
                    .unwrap_or_default();
                InputError::new(format!("--prices {}{line}: {}", path.display(), e.text()))
            }
            _ => InputError::new(e.text()),
        };
        book.validate().map_err(named_file)?;
        if book.prices_nothing() {
            return Err(InputError::new(
                "--pue, --provisioned-kw-per-gpu and --run-hours shape a cost model: give \
                 prices too (--price-kwh, or --prices FILE with an energy price, hardware \
                 prices or a carbon intensity)",
            ));
        }
        Ok(Some(book))
    }

    fn read(path: &Path) -> Result<(Self, String), InputError> {
        let text = crate::result::io::read_limited(path, 1 << 20)
            .map_err(|e| InputError::new(format!("--prices {}: {e}", path.display())))?;
        let toml_by_name = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        let parsed: Result<Self, String> = if toml_by_name {
            toml::from_str(&text).map_err(|e| format!("not a valid TOML prices file: {e}"))
        } else {
            serde_json::from_str(&text).map_err(|e| format!("not a valid JSON prices file: {e}"))
        };
        let book =
            parsed.map_err(|e| InputError::new(format!("--prices {}: {e}", path.display())))?;
        if book.default_tier.is_some() {
            return Err(InputError::new(format!(
                "--prices {}: default_tier is set by --tier, not in the file",
                path.display()
            )));
        }
        Ok((book, text))
    }

    fn validate(&self) -> Checked {
        let non_negative = |key: &[&str], v: f64| -> Checked {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Bad::at(key, format!("{v} must be a number, 0 or more")))
            }
        };
        if let Some(p) = self.price_kwh {
            non_negative(&["price_kwh"], p)?;
            if !self.time_of_use.is_empty() {
                return Err(Bad::at(
                    &["time_of_use"],
                    "give price_kwh or a time_of_use schedule, not both",
                ));
            }
        }
        self.schedule()?;
        if let Some(hours) = &self.run_hours {
            parse_hours(hours).map_err(|e| Bad::at(&["run_hours"], e))?;
        }
        if let Some(p) = self.pue
            && !(p.is_finite() && p >= 1.0)
        {
            return Err(Bad::at(&["pue"], format!("{p} must be 1.0 or more")));
        }
        if let Some(kw) = self.provisioned_kw_per_gpu {
            if !(kw.is_finite() && kw > 0.0) {
                return Err(Bad::at(
                    &["provisioned_kw_per_gpu"],
                    format!("{kw} must be a positive number of kW"),
                ));
            }
            if self.pue.is_some() {
                return Err(Bad::at(
                    &["provisioned_kw_per_gpu"],
                    "give pue or provisioned_kw_per_gpu, not both (a provisioned figure \
                     already holds the facility's overhead)",
                ));
            }
        }
        if let Some(c) = &self.carbon {
            non_negative(&["carbon", "grid_g_per_kwh"], c.grid_g_per_kwh)?;
            non_negative(&["carbon", "green_g_per_kwh"], c.green_g_per_kwh)?;
            if !(0.0..=1.0).contains(&c.green_share) {
                return Err(Bad::at(
                    &["carbon", "green_share"],
                    format!("{} must be a share from 0 to 1", c.green_share),
                ));
            }
        }
        for (name, price) in &self.tiers {
            price.validate(&["tiers", name], None)?;
        }
        for (name, price) in &self.nodes {
            price.validate(&["nodes", name], Some(&self.tiers))?;
        }
        for (name, price) in &self.adapters {
            price.validate(&["adapters", name], Some(&self.tiers))?;
        }
        Ok(())
    }

    /// The time-of-use schedule as a price per hour of the day; `None` without one. Every hour
    /// must be priced exactly once.
    fn schedule(&self) -> Result<Option<[f64; 24]>, Bad> {
        if self.time_of_use.is_empty() {
            return Ok(None);
        }
        let mut hours: [Option<(f64, &str)>; 24] = [None; 24];
        for (range, price) in &self.time_of_use {
            let at = ["time_of_use", range.as_str()];
            if !(price.is_finite() && *price >= 0.0) {
                return Err(Bad::at(
                    &at,
                    format!("{price} must be a price per kWh, 0 or more"),
                ));
            }
            let ranges = parse_hours(range).map_err(|e| Bad::at(&at, e))?;
            for [a, b] in ranges {
                for h in a..b {
                    if let Some((_, other)) = hours[h as usize] {
                        return Err(Bad::at(
                            &at,
                            format!("hour {h} is priced twice (also by {other:?})"),
                        ));
                    }
                    hours[h as usize] = Some((*price, range.as_str()));
                }
            }
        }
        // Unpriced hours as ranges: "20-24", not four separate hours.
        let mut missing: Vec<[usize; 2]> = Vec::new();
        for h in (0..24).filter(|h| hours[*h].is_none()) {
            match missing.last_mut() {
                Some(last) if last[1] == h => last[1] = h + 1,
                _ => missing.push([h, h + 1]),
            }
        }
        let missing: Vec<String> = missing.iter().map(|[a, b]| format!("{a}-{b}")).collect();
        if !missing.is_empty() {
            return Err(Bad::at(
                &["time_of_use"],
                format!(
                    "the schedule must cover the 24 hours of the day; not priced: {}",
                    missing.join(", ")
                ),
            ));
        }
        Ok(Some(hours.map(|h| h.map_or(0.0, |(p, _)| p))))
    }

    /// The run hours as ranges; the whole day when none were given.
    fn run_ranges(&self) -> Vec<[u32; 2]> {
        self.run_hours
            .as_deref()
            .and_then(|h| parse_hours(h).ok())
            .unwrap_or_else(|| vec![[0, 24]])
    }

    /// The energy price paid per kWh: the flat price, or the mean of the schedule's hourly
    /// prices over the run hours (each hour the node runs draws the same power).
    pub fn paid_price_kwh(&self) -> Option<f64> {
        if let Some(p) = self.price_kwh {
            return Some(p);
        }
        let schedule = self.schedule().ok().flatten()?;
        let hours: Vec<u32> = self.run_ranges().iter().flat_map(|[a, b]| *a..*b).collect();
        let paid: f64 = hours.iter().map(|h| schedule[*h as usize]).sum();
        Some(paid / hours.len() as f64)
    }

    /// What every cost of this book uses.
    pub fn terms(&self) -> CostTerms {
        let run_hours = self.run_ranges();
        CostTerms {
            energy_price_paid_kwh: self.paid_price_kwh(),
            run_hours_per_day: run_hours.iter().map(|[a, b]| f64::from(b - a)).sum(),
            run_hours,
            energy_basis: self.energy_basis(),
            carbon_g_per_kwh: self.carbon.map(|c| c.g_per_kwh()),
        }
    }

    /// How energy per token is counted.
    pub fn energy_basis(&self) -> EnergyBasis {
        match self.provisioned_kw_per_gpu {
            Some(kw_per_gpu) => EnergyBasis::ProvisionedPerGpu { kw_per_gpu },
            None => EnergyBasis::MeasuredTimesPue {
                pue: self.pue.unwrap_or(1.0),
            },
        }
    }

    /// The hardware price that applies to the node that wrote `doc`, resolved through its tier:
    /// its own entry (by host name or scheduler node name), else its adapter's, else
    /// `--tier`'s. The second value says where it came from.
    pub fn hardware_for(&self, doc: &RunResult) -> Option<(&HardwarePrice, String)> {
        let node_name = doc
            .node
            .placement
            .as_ref()
            .and_then(|p| p.node_name.as_deref());
        let entry = self
            .nodes
            .get(&doc.node.hostname)
            .or_else(|| node_name.and_then(|n| self.nodes.get(n)))
            .or_else(|| self.adapters.get(&doc.adapter.name));
        let (price, basis) = match entry {
            Some(p) => (p, p.basis()),
            None => {
                let tier = self.default_tier.as_ref()?;
                (self.tiers.get(tier)?, format!("tier {tier}"))
            }
        };
        match &price.tier {
            Some(t) => self.tiers.get(t).map(|p| (p, basis)),
            None => Some((price, basis)),
        }
    }

    /// The cost per million tokens of a workload at `tokens_per_s` and `tokens_per_j` on the
    /// node that wrote `doc`.
    pub fn cost(&self, doc: &RunResult, tokens_per_s: f64, tokens_per_j: Option<f64>) -> Cost {
        let terms = self.terms();
        let kwh = match terms.energy_basis {
            EnergyBasis::MeasuredTimesPue { pue } => {
                tokens_per_j.map(|tpj| TOKENS_PER_MTOK / tpj / J_PER_KWH * pue)
            }
            EnergyBasis::ProvisionedPerGpu { kw_per_gpu } => {
                Some(kw_per_gpu * TOKENS_PER_MTOK / tokens_per_s / S_PER_HOUR)
            }
        };
        let energy = terms.energy_price_paid_kwh.and_then(|p| kwh.map(|k| k * p));
        let hardware_price = self.hardware_for(doc);
        let hardware = hardware_price.as_ref().map(|(h, _)| {
            h.per_hour() * HOURS_PER_DAY / terms.run_hours_per_day / S_PER_HOUR / tokens_per_s
                * TOKENS_PER_MTOK
        });
        let carbon = terms.carbon_g_per_kwh.and_then(|g| kwh.map(|k| k * g));
        let mut missing = Vec::new();
        if self.prices_energy() && energy.is_none() {
            missing.push("no tokens/J figure for the energy price");
        }
        if self.prices_hardware() && hardware.is_none() {
            missing.push("no hardware price for this node or adapter");
        }
        if !self.prices_energy() && !self.prices_hardware() {
            missing.push("no prices");
        }
        let total = missing
            .is_empty()
            .then(|| energy.unwrap_or(0.0) + hardware.unwrap_or(0.0));
        Cost {
            energy_kwh_per_mtok: kwh,
            energy_per_mtok: energy,
            hardware_per_mtok: hardware,
            hardware_basis: hardware_price.map(|(_, basis)| basis),
            total_per_mtok: total,
            carbon_g_per_mtok: carbon,
            missing: (!missing.is_empty()).then(|| missing.join("; ")),
        }
    }

    /// True when costs have an energy part.
    pub fn prices_energy(&self) -> bool {
        self.price_kwh.is_some() || !self.time_of_use.is_empty()
    }

    /// True when costs have a hardware part.
    pub fn prices_hardware(&self) -> bool {
        !self.nodes.is_empty() || !self.adapters.is_empty() || self.default_tier.is_some()
    }

    /// True when costs have a carbon figure.
    pub fn prices_carbon(&self) -> bool {
        self.carbon.is_some()
    }

    /// True when the energy part needs a tokens/J figure (measured power, not provisioned).
    pub fn energy_needs_power(&self) -> bool {
        matches!(self.energy_basis(), EnergyBasis::MeasuredTimesPue { .. })
    }

    fn prices_nothing(&self) -> bool {
        !self.prices_energy() && !self.prices_hardware() && !self.prices_carbon()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1e-300)
    }

    #[test]
    fn cost_parts_follow_the_formulas() {
        let doc = fixtures::node("n1", "GPU A");
        let book = PriceBook {
            price_kwh: Some(0.36),
            adapters: BTreeMap::from([("GPU A".to_string(), HardwarePrice::rented(3.6))]),
            ..Default::default()
        };
        // 1000 tokens/J: 1000 J per Mtok = 1/3600 kWh → 0.0001. 1000 tokens/s at 0.001/s → 1.
        let c = book.cost(&doc, 1000.0, Some(1000.0));
        assert!((c.energy_per_mtok.unwrap() - 1e-4).abs() < 1e-15);
        assert!((c.hardware_per_mtok.unwrap() - 1.0).abs() < 1e-12);
        assert!((c.total_per_mtok.unwrap() - 1.0001).abs() < 1e-12);
        assert_eq!(c.hardware_basis.as_deref(), Some("rented at 3.6/h"));
        assert_eq!(c.carbon_g_per_mtok, None);
        // No power: the energy part is missing, so is the total, and it says why.
        let c = book.cost(&doc, 1000.0, None);
        assert_eq!(c.total_per_mtok, None);
        assert_eq!(
            c.missing.as_deref(),
            Some("no tokens/J figure for the energy price")
        );
        // A node's own price wins over its adapter's; a purchase is spread over its lifetime.
        let mut book = book;
        book.nodes.insert(
            "n1".into(),
            HardwarePrice::bought(HOURS_PER_YEAR * 2.0 * 3.6, 2.0),
        );
        assert!((book.hardware_for(&doc).unwrap().0.per_hour() - 3.6).abs() < 1e-12);
    }

    #[test]
    fn pue_grows_energy_cost_and_carbon_by_its_factor_and_nothing_else() {
        let doc = fixtures::node("n1", "GPU A");
        let mut book = PriceBook {
            price_kwh: Some(0.3),
            adapters: BTreeMap::from([("GPU A".to_string(), HardwarePrice::rented(2.0))]),
            carbon: Some(Carbon {
                grid_g_per_kwh: 400.0,
                green_g_per_kwh: 0.0,
                green_share: 0.0,
            }),
            ..Default::default()
        };
        let at = |book: &PriceBook| book.cost(&doc, 500.0, Some(40.0));
        let base = at(&book);
        book.pue = Some(1.3);
        let grown = at(&book);
        assert!(close(
            grown.energy_per_mtok.unwrap(),
            1.3 * base.energy_per_mtok.unwrap()
        ));
        assert!(close(
            grown.carbon_g_per_mtok.unwrap(),
            1.3 * base.carbon_g_per_mtok.unwrap()
        ));
        assert_eq!(grown.hardware_per_mtok, base.hardware_per_mtok);
        // 40 tokens/J: 25000 J = 1/144 kWh per Mtok; × 0.3 → 0.3/144; × 400 g → 400/144 g.
        assert!(close(base.energy_per_mtok.unwrap(), 0.3 / 144.0));
        assert!(close(base.carbon_g_per_mtok.unwrap(), 400.0 / 144.0));
    }

    #[test]
    fn provisioned_power_counts_hours_not_joules() {
        let doc = fixtures::node("n1", "GPU A");
        let book = PriceBook {
            price_kwh: Some(0.1),
            provisioned_kw_per_gpu: Some(1.73),
            ..Default::default()
        };
        // 1000 tokens/s: 1000 s = 1/3.6 h per Mtok; × 1.73 kW → 0.48056 kWh; × 0.1.
        let c = book.cost(&doc, 1000.0, None);
        assert!(close(c.energy_kwh_per_mtok.unwrap(), 1.73 / 3.6));
        assert!(close(c.energy_per_mtok.unwrap(), 0.173 / 3.6));
        assert!(c.missing.is_none(), "no tokens/J needed: {c:?}");
        assert_eq!(
            book.energy_basis().describe(),
            "provisioned 1.73 kW per GPU"
        );
    }

    #[test]
    fn time_of_use_price_paid_over_the_run_hours_by_hand() {
        let book = PriceBook {
            time_of_use: BTreeMap::from([
                ("0-7".to_string(), 0.10),
                ("7-23".to_string(), 0.30),
                ("23-24".to_string(), 0.10),
            ]),
            run_hours: Some("0-8,22-24".into()),
            ..Default::default()
        };
        // Hours 0..6 at 0.10 (7 h), hour 7 at 0.30, hour 22 at 0.30, hour 23 at 0.10:
        // (7 × 0.10 + 0.30 + 0.30 + 0.10) / 10 h = 1.4 / 10 = 0.14.
        assert!(close(book.paid_price_kwh().unwrap(), 0.14));
        let terms = book.terms();
        assert_eq!(terms.run_hours, [[0, 8], [22, 24]]);
        assert_eq!(terms.run_hours_per_day, 10.0);
        // All day: (8 × 0.10 + 16 × 0.30) / 24.
        let all_day = PriceBook {
            run_hours: None,
            ..book.clone()
        };
        assert!(close(all_day.paid_price_kwh().unwrap(), 5.6 / 24.0));
        // Hardware paid around the clock costs 24/10 as much per token when run 10 h a day.
        let doc = fixtures::node("n1", "GPU A");
        let mut hw = book.clone();
        hw.adapters
            .insert("GPU A".into(), HardwarePrice::rented(3.6));
        let c = hw.cost(&doc, 1000.0, Some(1000.0));
        assert!(close(c.hardware_per_mtok.unwrap(), 2.4));
    }

    #[test]
    fn run_hours_are_whole_hours_without_overlap() {
        assert_eq!(parse_hours("0-8, 22-24").unwrap(), [[0, 8], [22, 24]]);
        for (text, needle) in [
            ("22-2", "split a range over midnight"),
            ("0-8,6-10", "overlap"),
            ("0-25", "not a whole hour"),
            ("eight", "not a range of hours"),
        ] {
            let err = parse_hours(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn tiers_price_nodes_by_name() {
        let doc = fixtures::node("n1", "GPU A");
        let mut book = PriceBook {
            tiers: BTreeMap::from([
                ("neocloud".to_string(), HardwarePrice::rented(2.0)),
                ("owned".to_string(), HardwarePrice::bought(8766.0, 1.0)),
            ]),
            adapters: BTreeMap::from([(
                "GPU A".to_string(),
                HardwarePrice {
                    tier: Some("neocloud".into()),
                    hardware_price: None,
                    lifetime_years: None,
                    rental_per_hour: None,
                },
            )]),
            ..Default::default()
        };
        assert!(book.validate().is_ok());
        let (price, basis) = book.hardware_for(&doc).unwrap();
        assert_eq!((price.per_hour(), basis.as_str()), (2.0, "tier neocloud"));
        // --tier prices the nodes without an entry of their own.
        book.adapters.clear();
        assert!(book.hardware_for(&doc).is_none());
        book.default_tier = Some("owned".into());
        let (price, basis) = book.hardware_for(&doc).unwrap();
        assert_eq!((price.per_hour(), basis.as_str()), (1.0, "tier owned"));
    }

    #[test]
    fn prices_files_in_json_and_toml() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("prices.toml");
        std::fs::write(
            &toml_path,
            "currency = \"EUR\"\nprice_kwh = 0.3\n[nodes.gpu-01]\nhardware_price = 30000\nlifetime_years = 4\n\
             [adapters.\"GPU A\"]\nrental_per_hour = 2.5\n",
        )
        .unwrap();
        let flags = CostFlags {
            price_kwh: Some(0.2),
            ..Default::default()
        };
        let book = PriceBook::from_inputs(&flags, Some(&toml_path))
            .unwrap()
            .unwrap();
        assert_eq!(book.price_kwh, Some(0.2), "--price-kwh wins");
        assert_eq!(book.currency.as_deref(), Some("EUR"));
        assert_eq!(book.nodes["gpu-01"].basis(), "30000 over 4 years");
        let json_path = dir.path().join("prices.json");
        std::fs::write(
            &json_path,
            r#"{"adapters": {"GPU A": {"rental_per_hour": 2.5}}}"#,
        )
        .unwrap();
        let book = PriceBook::from_inputs(&CostFlags::default(), Some(&json_path))
            .unwrap()
            .unwrap();
        assert_eq!(book.adapters["GPU A"].basis(), "rented at 2.5/h");
        assert!(
            PriceBook::from_inputs(&CostFlags::default(), None)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn bad_prices_are_input_errors() {
        let dir = tempfile::tempdir().unwrap();
        for (text, needle) in [
            (
                r#"{"nodes": {"a": {"hardware_price": 10}}}"#,
                "with lifetime_years",
            ),
            (
                r#"{"nodes": {"a": {"rental_per_hour": -1}}}"#,
                "must be a positive number",
            ),
            (
                r#"{"nodes": {"a": {"rental_per_hour": 1, "hardware_price": 2, "lifetime_years": 3}}}"#,
                "not both",
            ),
            (r#"{"nodes": {}, "watts": 3}"#, "unknown field `watts`"),
            ("{", "not a valid JSON prices file"),
        ] {
            let path = dir.path().join("p.json");
            std::fs::write(&path, text).unwrap();
            let err = PriceBook::from_inputs(&CostFlags::default(), Some(&path))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(needle) && err.contains("p.json"),
                "{text}: {err}"
            );
        }
        let negative = CostFlags {
            price_kwh: Some(-1.0),
            ..Default::default()
        };
        let err = PriceBook::from_inputs(&negative, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--price-kwh"), "{err}");
        for (flags, needle) in [
            (
                CostFlags {
                    pue: Some(0.9),
                    price_kwh: Some(0.1),
                    ..Default::default()
                },
                "--pue 0.9: must be a number, 1 or more",
            ),
            (
                CostFlags {
                    pue: Some(1.2),
                    ..Default::default()
                },
                "give prices too",
            ),
            (
                CostFlags {
                    price_kwh: Some(0.1),
                    run_hours: Some("8-6".into()),
                    ..Default::default()
                },
                "--run-hours 8-6: ",
            ),
            (
                CostFlags {
                    price_kwh: Some(0.1),
                    tier: Some("gold".into()),
                    ..Default::default()
                },
                "--tier gold: unknown tier \"gold\"",
            ),
        ] {
            let err = PriceBook::from_inputs(&flags, None)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{flags:?}: {err}");
        }
    }

    #[test]
    fn errors_in_a_toml_file_name_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prices.toml");
        let head = "currency = \"EUR\"\n[carbon]\ngrid_g_per_kwh = 400\n";
        for (body, line, needle) in [
            (
                "[time_of_use]\n0-8 = 0.1\n8-20 = 0.3\n",
                4,
                "time_of_use: the schedule must cover the 24 hours of the day; not priced: 20-24",
            ),
            (
                "[time_of_use]\n0-8 = 0.1\n8-24 = -0.3\n",
                6,
                "time_of_use.8-24: -0.3 must be a price per kWh, 0 or more",
            ),
            (
                "[time_of_use]\n0-12 = 0.1\n8-24 = 0.3\n",
                6,
                "time_of_use.8-24: hour 8 is priced twice (also by \"0-12\")",
            ),
            (
                "[tiers.neocloud]\nrental_per_hour = 2\n[adapters.\"GPU A\"]\ntier = \"gold\"\n",
                7,
                "adapters.\"GPU A\".tier: unknown tier \"gold\" (the prices file's tiers: neocloud)",
            ),
            ("pue = 0.8\n", 3, "pue: 0.8 must be 1.0 or more"),
            (
                "[nodes.a]\nrental_per_hour = 0\n",
                5,
                "nodes.a.rental_per_hour: rental_per_hour = 0 must be a positive number",
            ),
        ] {
            // `pue` must precede the tables in TOML; keep it before [carbon].
            let text = if body.starts_with("pue") {
                format!(
                    "currency = \"EUR\"\nprice_kwh = 0.1\n{body}[carbon]\ngrid_g_per_kwh = 400\n"
                )
            } else {
                format!("{head}{body}")
            };
            std::fs::write(&path, &text).unwrap();
            let err = PriceBook::from_inputs(&CostFlags::default(), Some(&path))
                .unwrap_err()
                .to_string();
            let expected = format!("--prices {}:{line}: {needle}", path.display());
            assert_eq!(err, expected, "in:\n{text}");
        }
    }
}
