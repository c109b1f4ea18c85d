//! Comparison of GPU output with a CPU reference computed in f64.

use crate::kernels::WeightDtype;
use crate::result::Correctness;

/// NMSE at or below which an f32 kernel passes.
pub const NMSE_F32: f64 = 1e-6;
/// NMSE at or below which a whole f32 forward pass passes (errors compound over layers).
pub const NMSE_F32_MODEL: f64 = 1e-5;
/// NMSE at or below which f16-weight work passes.
pub const NMSE_F16: f64 = 5e-3;

/// The correctness gate's NMSE threshold for work whose weights are in `dtype`.
///
/// The references compute with the exact values the kernels unpack (the dequantized weights,
/// [`WeightDtype::quantize_rows`]), so quantization error is not part of the comparison: a
/// wrong layout, scale or nibble order gives an NMSE near 1 or above, whatever the threshold.
/// What remains is the kernels' own rounding: f32 accumulation on the SIMT tiers (NMSE near
/// 1e-13), and on the cooperative-matrix tier, where activations and unpacked weights are
/// rounded to f16 tiles, a relative error up to 2⁻¹¹ per input (NMSE near 1e-7), compounding
/// over a model's layers. So:
/// - f32: [`NMSE_F32`] (1e-6), as before: f32 never meets f16 tiles.
/// - f16, bf16, fp8-e4m3, q8_0, q4_0, mxfp4: [`NMSE_F16`] (5e-3), f16's threshold: each may
///   meet f16 tiles (bf16 and E2M1 convert to f16 exactly in range; fp8 · scale, q8_0's q · d
///   and q4_0's (q − 8) · d round), and a forward pass compounds it as for f16.
///
/// The kernel tests hold the SIMT tiers of every format to [`NMSE_F32`] as well.
pub fn nmse_threshold(dtype: WeightDtype) -> f64 {
    match dtype {
        WeightDtype::F32 => NMSE_F32,
        _ => NMSE_F16,
    }
}

/// Compares `gpu` with `reference` element by element. NaN or Inf in the GPU output always
/// fails, whatever the threshold. `what` describes the reference for the result document.
pub fn compare(gpu: &[f32], reference: &[f64], nmse_threshold: f64, what: String) -> Correctness {
    assert_eq!(gpu.len(), reference.len(), "compare: length mismatch");
    let mut err2 = 0.0;
    let mut ref2 = 0.0;
    let mut max_abs: f64 = 0.0;
    let mut non_finite = 0usize;
    for (&g, &r) in gpu.iter().zip(reference) {
        if !g.is_finite() {
            non_finite += 1;
            continue;
        }
        let d = f64::from(g) - r;
        err2 += d * d;
        ref2 += r * r;
        max_abs = max_abs.max(d.abs());
    }
    if non_finite > 0 {
        return Correctness {
            nmse: None,
            max_abs_err: None,
            reference: what,
            nmse_threshold,
            failure: Some(format!(
                "{non_finite} of {} outputs are NaN or infinite",
                gpu.len()
            )),
        };
    }
    // An all-zero reference makes NMSE undefined; fall back to the absolute error.
    let nmse = if ref2 > 0.0 { err2 / ref2 } else { err2 };
    let failure = (nmse.is_nan() || nmse > nmse_threshold)
        .then(|| format!("NMSE {nmse:.3e} exceeds the threshold {nmse_threshold:.0e}"));
    Correctness {
        nmse: Some(nmse),
        max_abs_err: Some(max_abs),
        reference: what,
        nmse_threshold,
        failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_output_passes() {
        let c = compare(&[1.0, -2.0], &[1.0, -2.0], NMSE_F32, "t".into());
        assert_eq!(c.nmse, Some(0.0));
        assert!(c.failure.is_none());
    }

    #[test]
    fn small_error_passes_large_error_fails() {
        let reference = [1.0, 2.0, 3.0, 4.0];
        let close = [1.0, 2.0, 3.0, 4.0001];
        assert!(
            compare(&close, &reference, NMSE_F32, "t".into())
                .failure
                .is_none()
        );
        let far = [1.0, 2.0, 3.0, 5.0];
        let c = compare(&far, &reference, NMSE_F32, "t".into());
        assert!(c.failure.unwrap().contains("exceeds"));
        assert_eq!(c.max_abs_err, Some(1.0));
    }

    #[test]
    fn nan_and_inf_always_fail() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let c = compare(&[1.0, bad], &[1.0, 2.0], f64::INFINITY, "t".into());
            assert!(c.failure.unwrap().contains("NaN or infinite"));
            assert_eq!(c.nmse, None);
        }
    }
}

/// One verdict from several checks: the worst NMSE and error, every description, every failure.
pub fn combine(parts: Vec<Correctness>) -> Correctness {
    let worst = |f: fn(&Correctness) -> Option<f64>| {
        parts
            .iter()
            .map(f)
            .try_fold(0.0f64, |acc, v| v.map(|v| acc.max(v)))
    };
    let failures: Vec<String> = parts.iter().filter_map(|c| c.failure.clone()).collect();
    Correctness {
        nmse: worst(|c| c.nmse),
        max_abs_err: worst(|c| c.max_abs_err),
        reference: parts
            .iter()
            .map(|c| c.reference.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        nmse_threshold: parts
            .iter()
            .map(|c| c.nmse_threshold)
            .fold(f64::INFINITY, f64::min),
        failure: (!failures.is_empty()).then(|| failures.join("; ")),
    }
}

#[cfg(test)]
mod combine_tests {
    use super::*;

    #[test]
    fn combined_verdict_is_the_worst_part() {
        let ok = compare(&[1.0], &[1.0], NMSE_F32, "a".into());
        let bad = compare(&[1.0, 3.0], &[1.0, 2.0], NMSE_F32, "b".into());
        let c = combine(vec![ok.clone(), bad.clone()]);
        assert_eq!(c.nmse, bad.nmse);
        assert_eq!(c.reference, "a; b");
        assert!(c.failure.unwrap().contains("exceeds"));
        assert!(combine(vec![ok.clone(), ok]).failure.is_none());
        let nan = compare(&[f32::NAN], &[1.0], NMSE_F32, "c".into());
        assert_eq!(combine(vec![bad, nan]).nmse, None, "unknown stays unknown");
    }
}
