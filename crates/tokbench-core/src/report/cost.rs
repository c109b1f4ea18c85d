//! The cost model: what a million tokens cost on a node, from an energy price and the node's
//! hardware price (bought, spread over its lifetime) or rental price.
//!
//! cost per Mtok = energy cost + hardware cost, each shown apart:
//! - energy: price per kWh × kWh per Mtok = price_kwh × 10⁶ / (tokens_per_j × 3.6·10⁶);
//! - hardware: price per hour / 3600 / tokens_per_s × 10⁶, where the hourly price is the
//!   rental price, or the purchase price spread over its lifetime in hours (busy all the time).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::InputError;
use crate::result::RunResult;

/// Hours in a year (365.25 days), to spread a purchase over its lifetime.
const HOURS_PER_YEAR: f64 = 8766.0;
/// Joules in a kilowatt-hour.
const J_PER_KWH: f64 = 3.6e6;

/// Prices, from `--price-kwh` and `--prices FILE` (JSON or TOML).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceBook {
    /// A label for the currency ("USD", "EUR"); prices are in any one currency.
    #[serde(default)]
    pub currency: Option<String>,
    /// Energy price per kWh; `--price-kwh` overrides it.
    #[serde(default)]
    pub price_kwh: Option<f64>,
    /// Hardware prices by node: host name, or the scheduler's node name.
    #[serde(default)]
    pub nodes: BTreeMap<String, HardwarePrice>,
    /// Hardware prices by adapter name, exactly as results record it; a node's own entry wins.
    #[serde(default)]
    pub adapters: BTreeMap<String, HardwarePrice>,
}

/// What a node's hardware costs: bought, or rented by the hour.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwarePrice {
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
    /// Price of one hour of the hardware.
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

    /// "rented at 2.5/h" or "30000 over 4 years".
    pub fn basis(&self) -> String {
        match (
            self.rental_per_hour,
            self.hardware_price,
            self.lifetime_years,
        ) {
            (Some(r), _, _) => format!("rented at {r}/h"),
            (None, Some(p), Some(y)) => format!("{p} over {y} years"),
            _ => String::new(),
        }
    }

    fn validate(&self, what: &str) -> Result<(), String> {
        let positive = |name: &str, v: Option<f64>| match v {
            Some(v) if !(v.is_finite() && v > 0.0) => {
                Err(format!("{what}: {name} = {v} must be a positive number"))
            }
            _ => Ok(()),
        };
        positive("hardware_price", self.hardware_price)?;
        positive("lifetime_years", self.lifetime_years)?;
        positive("rental_per_hour", self.rental_per_hour)?;
        match (
            self.rental_per_hour,
            self.hardware_price,
            self.lifetime_years,
        ) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => Ok(()),
            (Some(_), _, _) => Err(format!(
                "{what}: give either rental_per_hour or hardware_price with lifetime_years, not both"
            )),
            _ => Err(format!(
                "{what}: give hardware_price with lifetime_years, or rental_per_hour"
            )),
        }
    }
}

/// The cost of a million tokens on one node, by part. A part is null when its price was not
/// given or the figure it needs is missing; never 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cost {
    /// Energy cost per million tokens (needs tokens/J and an energy price).
    pub energy_per_mtok: Option<f64>,
    /// Hardware (purchase or rental) cost per million tokens.
    pub hardware_per_mtok: Option<f64>,
    /// The sum of the parts that were priced; null when a priced part is missing for this node
    /// (a total without it would not compare with the others).
    pub total_per_mtok: Option<f64>,
    /// Why the total is missing.
    pub missing: Option<String>,
}

impl PriceBook {
    /// The prices from `file` (JSON, or TOML when it ends in `.toml`), with `price_kwh`
    /// overriding the file's energy price. Both absent: no cost model.
    pub fn from_inputs(
        price_kwh: Option<f64>,
        file: Option<&Path>,
    ) -> Result<Option<Self>, InputError> {
        let mut book = match file {
            Some(path) => Self::read(path)?,
            None if price_kwh.is_none() => return Ok(None),
            None => Self::default(),
        };
        if let Some(p) = price_kwh {
            if !(p.is_finite() && p >= 0.0) {
                return Err(InputError::new(format!(
                    "--price-kwh {p}: must be a number, 0 or more"
                )));
            }
            book.price_kwh = Some(p);
        }
        Ok(Some(book))
    }

    fn read(path: &Path) -> Result<Self, InputError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            InputError::new(format!("--prices {}: cannot read: {e}", path.display()))
        })?;
        let toml_by_name = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        let parsed: Result<Self, String> = if toml_by_name {
            toml::from_str(&text).map_err(|e| format!("not a valid TOML prices file: {e}"))
        } else {
            serde_json::from_str(&text).map_err(|e| format!("not a valid JSON prices file: {e}"))
        };
        let book = parsed
            .and_then(|b| b.validate().map(|()| b))
            .map_err(|e| InputError::new(format!("--prices {}: {e}", path.display())))?;
        Ok(book)
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(p) = self.price_kwh
            && !(p.is_finite() && p >= 0.0)
        {
            return Err(format!("price_kwh = {p} must be a number, 0 or more"));
        }
        for (name, price) in &self.nodes {
            price.validate(&format!("nodes.{name:?}"))?;
        }
        for (name, price) in &self.adapters {
            price.validate(&format!("adapters.{name:?}"))?;
        }
        Ok(())
    }

    /// The hardware price that applies to the node that wrote `doc`: its own entry (by host
    /// name or scheduler node name), else its adapter's.
    pub fn hardware_for(&self, doc: &RunResult) -> Option<&HardwarePrice> {
        let node_name = doc
            .node
            .placement
            .as_ref()
            .and_then(|p| p.node_name.as_deref());
        self.nodes
            .get(&doc.node.hostname)
            .or_else(|| node_name.and_then(|n| self.nodes.get(n)))
            .or_else(|| self.adapters.get(&doc.adapter.name))
    }

    /// The cost per million tokens of a workload at `tokens_per_s` and `tokens_per_j` on the
    /// node that wrote `doc`.
    pub fn cost(&self, doc: &RunResult, tokens_per_s: f64, tokens_per_j: Option<f64>) -> Cost {
        let energy = self
            .price_kwh
            .and_then(|p| tokens_per_j.map(|tpj| p * 1e6 / (tpj * J_PER_KWH)));
        let hardware_price = self.hardware_for(doc);
        let hardware = hardware_price.map(|h| h.per_hour() / 3600.0 / tokens_per_s * 1e6);
        let hardware_priced = !self.nodes.is_empty() || !self.adapters.is_empty();
        let mut missing = Vec::new();
        if self.price_kwh.is_some() && energy.is_none() {
            missing.push("no tokens/J figure for the energy price");
        }
        if hardware_priced && hardware.is_none() {
            missing.push("no hardware price for this node or adapter");
        }
        if self.price_kwh.is_none() && !hardware_priced {
            missing.push("no prices");
        }
        let total = missing
            .is_empty()
            .then(|| energy.unwrap_or(0.0) + hardware.unwrap_or(0.0));
        Cost {
            energy_per_mtok: energy,
            hardware_per_mtok: hardware,
            total_per_mtok: total,
            missing: (!missing.is_empty()).then(|| missing.join("; ")),
        }
    }

    /// True when costs have an energy part.
    pub fn prices_energy(&self) -> bool {
        self.price_kwh.is_some()
    }

    /// True when costs have a hardware part.
    pub fn prices_hardware(&self) -> bool {
        !self.nodes.is_empty() || !self.adapters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures;

    #[test]
    fn cost_parts_follow_the_formulas() {
        let doc = fixtures::node("n1", "GPU A");
        let book = PriceBook {
            price_kwh: Some(0.36),
            adapters: BTreeMap::from([(
                "GPU A".to_string(),
                HardwarePrice {
                    hardware_price: None,
                    lifetime_years: None,
                    rental_per_hour: Some(3.6),
                },
            )]),
            ..Default::default()
        };
        // 1000 tokens/J: 1000 J per Mtok = 1/3600 kWh → 0.0001. 1000 tokens/s at 0.001/s → 1.
        let c = book.cost(&doc, 1000.0, Some(1000.0));
        assert!((c.energy_per_mtok.unwrap() - 1e-4).abs() < 1e-15);
        assert!((c.hardware_per_mtok.unwrap() - 1.0).abs() < 1e-12);
        assert!((c.total_per_mtok.unwrap() - 1.0001).abs() < 1e-12);
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
            HardwarePrice {
                hardware_price: Some(HOURS_PER_YEAR * 2.0 * 3.6),
                lifetime_years: Some(2.0),
                rental_per_hour: None,
            },
        );
        assert!((book.hardware_for(&doc).unwrap().per_hour() - 3.6).abs() < 1e-12);
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
        let book = PriceBook::from_inputs(Some(0.2), Some(&toml_path))
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
        let book = PriceBook::from_inputs(None, Some(&json_path))
            .unwrap()
            .unwrap();
        assert_eq!(book.adapters["GPU A"].basis(), "rented at 2.5/h");
        assert!(PriceBook::from_inputs(None, None).unwrap().is_none());
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
            let err = PriceBook::from_inputs(None, Some(&path))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(needle) && err.contains("p.json"),
                "{text}: {err}"
            );
        }
        let err = PriceBook::from_inputs(Some(-1.0), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--price-kwh"), "{err}");
    }
}
