//! FLOP and byte formulas of each op, shared by the accounting of a whole pass, the kernels'
//! own figures and the tuner, so one figure has one definition.

use crate::dtype::WeightDtype;

/// FLOPs of one m × n × k product: one multiply and one add per term.
pub fn product_flops(m: usize, n: usize, k: usize) -> f64 {
    2.0 * m as f64 * n as f64 * k as f64
}

/// Bytes one product must move at least: read A (f32) and the n × k weight W in `dtype` once
/// (its exact bits, scales included), write C once.
pub fn product_bytes(m: usize, n: usize, k: usize, dtype: WeightDtype) -> f64 {
    (4 * (m * k + m * n)) as f64 + dtype.matrix_bytes(n, k)
}

/// FLOPs of attention over `pairs` (query, key) pairs per head, for `heads` query heads:
/// 2·head_dim for q·k and the same for p·v, per pair. Masked pairs are not counted.
pub fn attention_flops(pairs: f64, heads: usize, head_dim: usize) -> f64 {
    4.0 * pairs * heads as f64 * head_dim as f64
}

/// Causal (query, key) pairs of a prompt of `p` tokens: p(p+1)/2.
pub fn causal_pairs(p: usize) -> f64 {
    (p as f64) * (p as f64 + 1.0) / 2.0
}

/// FLOPs of rotating one head of width `head_dim` (4 per pair).
pub fn rope_flops_per_head(head_dim: usize) -> f64 {
    2.0 * head_dim as f64
}

/// FLOPs of normalising `rows` rows of width `d`: square-add, then scale and gamma per element.
pub fn rmsnorm_flops(rows: usize, d: usize) -> f64 {
    4.0 * rows as f64 * d as f64
}

/// FLOPs per output element of SwiGLU (exp counted as one).
pub const SWIGLU_FLOPS_PER_ELEMENT: f64 = 5.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_counts_two_flops_per_term() {
        assert_eq!(product_flops(2, 3, 4), 48.0);
        assert_eq!(
            product_bytes(2, 3, 4, WeightDtype::F32),
            4.0 * (8 + 12 + 6) as f64
        );
        assert_eq!(
            product_bytes(2, 3, 4, WeightDtype::F16),
            (4 * (8 + 6) + 2 * 12) as f64
        );
    }

    #[test]
    fn causal_pairs_are_a_triangle() {
        assert_eq!(causal_pairs(1), 1.0);
        assert_eq!(causal_pairs(4), 10.0);
    }
}
