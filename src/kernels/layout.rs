//! Host-side data layout shared by the kernels: row-major matrices whose rows are padded with
//! zeros to whole vec4s, and seeded synthetic data.

use crate::stats::SplitMix64;

/// `cols` rounded up to a multiple of 4: the row stride, in elements, of a padded matrix.
pub fn padded_cols(cols: usize) -> usize {
    cols.div_ceil(4) * 4
}

/// Copies a row-major `rows` × `cols` matrix into the padded layout: each row padded to
/// [`padded_cols`], and zero rows appended up to `height` rows (a matrix that is the K side of
/// a product needs a multiple of 4 rows, so vec4 steps along K never read past it).
pub fn pad_matrix(data: &[f32], rows: usize, cols: usize, height: usize) -> Vec<f32> {
    assert_eq!(data.len(), rows * cols, "pad_matrix: wrong length");
    assert!(height >= rows, "pad_matrix: height below rows");
    let stride = padded_cols(cols);
    let mut out = vec![0.0; height * stride];
    for (dst, src) in out.chunks_exact_mut(stride).zip(data.chunks_exact(cols)) {
        dst[..cols].copy_from_slice(src);
    }
    out
}

/// Drops the padding of a padded `rows` × `cols` matrix.
pub fn unpad_rows(padded: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let stride = padded_cols(cols);
    assert!(padded.len() >= rows * stride, "unpad_rows: too short");
    padded
        .chunks_exact(stride)
        .take(rows)
        .flat_map(|row| &row[..cols])
        .copied()
        .collect()
}

/// `len` values uniform in [-scale, scale), reproducible from `seed`: element i is
/// [`synthetic`]`(seed, i) * scale`.
pub fn random_values(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    (0..len as u64)
        .map(|i| synthetic(seed, i) * scale)
        .collect()
}

/// Element `index` of the synthetic stream `seed`, uniform in [-1, 1). Computable for any index
/// on its own, so a slab of a weight matrix, or one column for a CPU check, needs no more.
pub fn synthetic(seed: u64, index: u64) -> f32 {
    let bits = SplitMix64::at(seed, index) >> 40; // 24 random bits: exact in f32
    (bits as f32) * (2.0 / (1u64 << 24) as f32) - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_round_trips() {
        let m: Vec<f32> = (0..15).map(|x| x as f32).collect(); // 3 × 5
        let p = pad_matrix(&m, 3, 5, 4);
        assert_eq!(p.len(), 4 * 8);
        assert_eq!(&p[8..16], &[5.0, 6.0, 7.0, 8.0, 9.0, 0.0, 0.0, 0.0]);
        assert!(p[24..].iter().all(|&x| x == 0.0), "appended row is zero");
        assert_eq!(unpad_rows(&p, 3, 5), m);
        assert_eq!(
            pad_matrix(&p[..24], 3, 8, 3),
            p[..24],
            "already padded stays as is"
        );
    }

    #[test]
    fn random_values_are_seeded_and_bounded() {
        let a = random_values(1000, 1, 0.5);
        assert_eq!(a, random_values(1000, 1, 0.5));
        assert_ne!(a, random_values(1000, 2, 0.5));
        assert!(a.iter().all(|x| (-0.5..0.5).contains(x)));
    }
}
