//! Latency objectives: `--slo ttft=2000ms,tpot=100ms`, or a named set from MLPerf Inference.

use crate::InputError;
use crate::result::Slo;

/// Where the named sets come from.
pub const MLPERF_SOURCE: &str = "MLPerf Inference rules (inference_rules.adoc, v5.x): p99 TTFT / p99 TPOT latency constraints of the LLM benchmarks";

/// Named SLO sets: (name, p99 TTFT ms, p99 TPOT ms), from MLPerf Inference's rules for the
/// Server and Interactive scenarios of its LLM benchmarks.
pub const NAMED: &[(&str, f64, f64)] = &[
    ("llama3.1-8b-server", 2000.0, 100.0),
    ("llama3.1-8b-interactive", 500.0, 30.0),
    ("llama2-70b-server", 2000.0, 200.0),
    ("llama2-70b-interactive", 450.0, 40.0),
    ("llama3.1-405b-server", 6000.0, 175.0),
    ("llama3.1-405b-interactive", 4500.0, 80.0),
    ("mixtral-8x7b-server", 2000.0, 200.0),
    ("deepseek-r1-server", 2000.0, 80.0),
    ("deepseek-r1-interactive", 1500.0, 15.0),
];

/// Parses `--slo`: a named set, or `ttft=<time>,tpot=<time>` (either may be left out; times
/// take `ms` or `s`).
pub fn parse(text: &str) -> Result<Slo, InputError> {
    let text = text.trim();
    if let Some(&(name, ttft, tpot)) = NAMED.iter().find(|(n, _, _)| *n == text) {
        return Ok(Slo {
            name: name.to_string(),
            source: MLPERF_SOURCE.to_string(),
            ttft_s: Some(ttft / 1e3),
            tpot_s: Some(tpot / 1e3),
        });
    }
    if !text.contains('=') {
        let names: Vec<&str> = NAMED.iter().map(|(n, _, _)| *n).collect();
        return Err(InputError::new(format!(
            "--slo {text:?} is not a known SLO set: use one of {} or ttft=<ms>ms,tpot=<ms>ms",
            names.join(", ")
        )));
    }
    let mut slo = Slo {
        name: "custom".into(),
        source: "--slo".into(),
        ttft_s: None,
        tpot_s: None,
    };
    for part in text.split(',') {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| InputError::new(format!("--slo: {part:?} is not key=value")))?;
        let seconds = duration(value.trim()).ok_or_else(|| {
            InputError::new(format!(
                "--slo: {value:?} is not a positive time such as 200ms or 2s"
            ))
        })?;
        match key.trim() {
            "ttft" => slo.ttft_s = Some(seconds),
            "tpot" => slo.tpot_s = Some(seconds),
            other => {
                return Err(InputError::new(format!(
                    "--slo: {other:?} is not an objective: use ttft and tpot"
                )));
            }
        }
    }
    Ok(slo)
}

fn duration(text: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        return None;
    };
    let v: f64 = number.trim().parse().ok()?;
    (v.is_finite() && v > 0.0).then_some(v * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_sets_and_custom_objectives_parse_and_bad_ones_say_why() {
        let s = parse("llama3.1-8b-interactive").unwrap();
        assert_eq!((s.ttft_s, s.tpot_s), (Some(0.5), Some(0.03)));
        let c = parse("ttft=2000ms, tpot=0.1s").unwrap();
        assert_eq!(
            (c.name.as_str(), c.ttft_s, c.tpot_s),
            ("custom", Some(2.0), Some(0.1))
        );
        assert_eq!(parse("tpot=40ms").unwrap().ttft_s, None);
        let err = parse("llama9-server").unwrap_err().to_string();
        assert!(err.contains("not a known SLO set") && err.contains("llama3.1-8b-server"));
        assert!(parse("ttft=fast").is_err());
        assert!(parse("ttft=100").is_err());
        assert!(
            parse("itl=10ms")
                .unwrap_err()
                .to_string()
                .contains("ttft and tpot")
        );
    }
}
