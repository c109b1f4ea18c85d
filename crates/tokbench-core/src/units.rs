//! Units and how figures read: one place for the constants that convert between units and for
//! the text a figure becomes in a report (durations, shares, about-four-digit numbers, SI
//! prefixes). Every exporter formats through here, so one figure reads the same in every format.
//!
//! Quantities stay plain `f64` in their base unit, named by these aliases where a signature
//! would otherwise hide the unit (hyperfine's `type Second = f64`).

/// A duration in seconds.
pub type Seconds = f64;
/// A share or relative change: 1.0 is 100%.
pub type Ratio = f64;

/// Joules in a kilowatt-hour.
pub const J_PER_KWH: f64 = 3.6e6;
/// Seconds in an hour.
pub const S_PER_HOUR: f64 = 3600.0;
/// Hours in a day.
pub const HOURS_PER_DAY: f64 = 24.0;
/// Hours in a year (365.25 days), to spread a purchase over its lifetime.
pub const HOURS_PER_YEAR: f64 = 8766.0;
/// Tokens in the million-token unit that costs and carbon are quoted per.
pub const TOKENS_PER_MTOK: f64 = 1e6;
/// Grams in a kilogram.
pub const G_PER_KG: f64 = 1e3;

/// A figure with about four significant digits: "12346", "123.5", "1.235", "0.01235", "1.235e-4".
pub fn num(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 10.0 {
        format!("{x:.2}")
    } else if a >= 1.0 {
        format!("{x:.3}")
    } else if a >= 0.01 {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

/// An optional figure, "-" when absent.
pub fn opt_num(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), num)
}

/// A figure in full precision (shortest text that reads back to the same `f64`), for machine
/// formats such as CSV; "" when absent.
pub fn full(x: Option<f64>) -> String {
    x.map_or_else(String::new, |v| v.to_string())
}

/// A share: "83.2%".
pub fn pct(x: Ratio) -> String {
    format!("{:.1}%", x * 100.0)
}

/// A signed relative change: "+12.3%".
pub fn signed_pct(x: Ratio) -> String {
    format!("{:+.1}%", x * 100.0)
}

/// Seconds as a short duration: "812.0 µs", "12.30 ms", "1.52 s".
pub fn duration(s: Seconds) -> String {
    if s < 1e-3 {
        format!("{:.1} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// A figure with an SI prefix and about four digits: `si(51663.0, "tok/s")` is "51.66 ktok/s",
/// `si(0.25, "W")` is "250.0 mW". Prefixes from pico to peta; outside them, [`num`]'s exponent.
pub fn si(x: f64, unit: &str) -> String {
    const PREFIXES: [(f64, &str); 10] = [
        (1e15, "P"),
        (1e12, "T"),
        (1e9, "G"),
        (1e6, "M"),
        (1e3, "k"),
        (1.0, ""),
        (1e-3, "m"),
        (1e-6, "µ"),
        (1e-9, "n"),
        (1e-12, "p"),
    ];
    let a = x.abs();
    if a == 0.0 || !x.is_finite() {
        return format!("{} {unit}", num(x));
    }
    match PREFIXES.iter().find(|(scale, _)| a >= *scale) {
        Some((scale, prefix)) if a < 1e18 => format!("{} {prefix}{unit}", num(x / scale)),
        _ => format!("{} {unit}", num(x)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_about_four_digits() {
        let got: Vec<String> = [
            123_456.7,
            123.456,
            12.3456,
            1.23456,
            0.0123456,
            0.000_123_456,
            0.0,
        ]
        .iter()
        .map(|x| num(*x))
        .collect();
        assert_eq!(
            got,
            [
                "123457", "123.5", "12.35", "1.235", "0.0123", "1.235e-4", "0"
            ]
        );
        assert_eq!(signed_pct(0.2012), "+20.1%");
        assert_eq!(signed_pct(-0.05), "-5.0%");
        assert_eq!(pct(0.832), "83.2%");
        assert_eq!(opt_num(None), "-");
        assert_eq!(full(Some(0.1 + 0.2)), "0.30000000000000004");
        assert_eq!(full(None), "");
    }

    #[test]
    fn durations_pick_their_unit() {
        assert_eq!(duration(812e-6), "812.0 µs");
        assert_eq!(duration(0.0123), "12.30 ms");
        assert_eq!(duration(1.523), "1.52 s");
    }

    #[test]
    fn si_prefixes() {
        assert_eq!(si(51_663.0, "tok/s"), "51.66 ktok/s");
        assert_eq!(si(0.25, "W"), "250.0 mW");
        assert_eq!(si(3.2e9, "B"), "3.200 GB");
        assert_eq!(si(0.0, "J"), "0 J");
        assert_eq!(si(1e-14, "J"), "1.000e-14 J");
    }
}
