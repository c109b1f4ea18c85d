//! Byte layouts of the weight formats: host quantization into the published layouts, and
//! dequantization for the CPU references. [`crate::dtype::WeightDtype`] dispatches here.
//!
//! A weight matrix is stored one output per row, K contiguous; each row is encoded on its own,
//! so a slab of rows is a self-contained buffer. Per row of `k` weights:
//!
//! | format | row bytes | layout |
//! |---|---|---|
//! | f32, f16, bf16 | 4k, 2k, 2k | little-endian elements (bf16: the top half of the f32) |
//! | fp8-e4m3 | 4 + k | one f32 scale (amax / 448), then k OCP FP8 E4M3 bytes |
//! | q8_0 | 34 per 32 | GGUF `block_q8_0`: f16 scale d = amax / 127, 32 × int8 q; x = q·d |
//! | q4_0 | 18 per 32 | GGUF `block_q4_0`: f16 scale d = max / −8, 16 bytes of nibbles; x = (q − 8)·d |
//! | mxfp4 | 17 per 32 | GGUF `block_mxfp4` (OCP MX v1.0): E8M0 scale byte, 16 bytes of E2M1 nibbles |
//!
//! Nibbles (q4_0, mxfp4) are in GGUF's order: byte j of a block holds element j in its low
//! nibble and element j + 16 in its high nibble.
//!
//! **Padding of K.** GGUF's block formats need whole blocks per row (ggml refuses a row that is
//! not a multiple of 32). Here a row whose k is not a multiple of 32 is padded with zeros to
//! the next multiple before quantizing: zeros leave the block's scale (set by its largest
//! magnitude) unchanged and quantize to exactly zero, so the padded row's products equal the
//! unpadded ones. The padding is streamed and counted: ⌈k/32⌉ blocks per row. f32, f16, bf16
//! and fp8 rows are padded only to whole vec4s on the device (accounting counts k).

/// Weights per block of the block formats (q8_0, q4_0, mxfp4).
pub const BLOCK: usize = 32;

/// Bytes of one q8_0 block: f16 scale + 32 int8.
pub const Q8_0_BLOCK_BYTES: usize = 34;
/// Bytes of one q4_0 block: f16 scale + 16 bytes of nibbles.
pub const Q4_0_BLOCK_BYTES: usize = 18;
/// Bytes of one mxfp4 block: E8M0 scale + 16 bytes of nibbles.
pub const MXFP4_BLOCK_BYTES: usize = 17;

/// Largest finite OCP FP8 E4M3 magnitude.
pub const E4M3_MAX: f32 = 448.0;

/// Decodes one OCP FP8 E4M3 byte (bias 7, subnormals, no infinities; 0x7f/0xff are NaN).
pub fn e4m3_to_f32(b: u8) -> f32 {
    let sign = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = i32::from((b >> 3) & 0xf);
    let m = f32::from(b & 7);
    if e == 15 && b & 7 == 7 {
        return f32::NAN;
    }
    let mag = if e == 0 {
        m * 2f32.powi(-9)
    } else {
        (1.0 + m / 8.0) * 2f32.powi(e - 7)
    };
    sign * mag
}

/// Encodes `v` as OCP FP8 E4M3, rounding to nearest (ties to the even code) and saturating to
/// ±448, as the spec's saturating conversion does.
pub fn f32_to_e4m3(v: f32) -> u8 {
    let sign = if v.is_sign_negative() { 0x80 } else { 0 };
    let a = v.abs().min(E4M3_MAX);
    // Positive codes 0..=0x7e are increasing in value: binary-search the nearest.
    let (mut lo, mut hi) = (0u8, 0x7e);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if e4m3_to_f32(mid) <= a {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let (dl, dh) = (a - e4m3_to_f32(lo), e4m3_to_f32(hi) - a);
    let code = if dl < dh || (dl == dh && lo % 2 == 0) {
        lo
    } else {
        hi
    };
    sign | code
}

/// E2M1 magnitudes by 3-bit code (OCP MX v1.0, FP4).
const E2M1: [f32; 8] = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];

/// Decodes an E2M1 nibble (sign in bit 3).
pub fn e2m1_to_f32(n: u8) -> f32 {
    let mag = E2M1[usize::from(n & 7)];
    if n & 8 != 0 { -mag } else { mag }
}

/// Encodes `v` as E2M1: nearest value, ties to the even code, saturating to ±6.
pub fn f32_to_e2m1(v: f32) -> u8 {
    let sign = if v.is_sign_negative() { 8 } else { 0 };
    let a = v.abs();
    let mut best = 0u8;
    for c in 1..8u8 {
        let (db, dc) = (
            (a - E2M1[usize::from(best)]).abs(),
            (a - E2M1[usize::from(c)]).abs(),
        );
        if dc < db || (dc == db && c % 2 == 0) {
            best = c;
        }
    }
    sign | best
}

/// The value of an E8M0 scale byte: 2^(e − 127) (255, NaN in the spec, is never written).
pub fn e8m0_to_f32(e: u8) -> f32 {
    2f64.powi(i32::from(e) - 127) as f32
}

fn f16_bytes(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_le_bytes()
}

fn f16_value(b: &[u8]) -> f32 {
    half::f16::from_le_bytes([b[0], b[1]]).to_f32()
}

/// Appends the q8_0 blocks of `row` (already padded to whole blocks) to `out`, as ggml's
/// `quantize_row_q8_0_ref`: d = amax / 127, q = round(x / d) (half away from zero).
pub fn quantize_q8_0(row: &[f32], out: &mut Vec<u8>) {
    for block in row.chunks_exact(BLOCK) {
        let amax = block.iter().fold(0f32, |m, &x| m.max(x.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend(f16_bytes(d));
        out.extend(block.iter().map(|&x| (x * id).round() as i8 as u8));
    }
}

/// Appends the q4_0 blocks of `row` (already padded to whole blocks) to `out`, as ggml's
/// `quantize_row_q4_0_ref`: d = max / −8 where max is the value of largest magnitude, then
/// q = min(15, trunc(x / d + 8.5)).
pub fn quantize_q4_0(row: &[f32], out: &mut Vec<u8>) {
    for block in row.chunks_exact(BLOCK) {
        let (mut amax, mut max) = (0f32, 0f32);
        for &x in block {
            if amax < x.abs() {
                amax = x.abs();
                max = x;
            }
        }
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let q = |x: f32| ((x * id + 8.5) as i8).min(15) as u8;
        out.extend(f16_bytes(d));
        out.extend((0..BLOCK / 2).map(|j| q(block[j]) | (q(block[j + BLOCK / 2]) << 4)));
    }
}

/// Appends the mxfp4 blocks of `row` (already padded to whole blocks) to `out`: the OCP MX
/// shared exponent X = ⌊log2 amax⌋ − 2 (E2M1's largest exponent), stored as E8M0 byte X + 127
/// (0 for an all-zero block, as ggml writes it), and each element rounded to E2M1 of x / 2^X.
pub fn quantize_mxfp4(row: &[f32], out: &mut Vec<u8>) {
    for block in row.chunks_exact(BLOCK) {
        let amax = block.iter().fold(0f32, |m, &x| m.max(x.abs()));
        let e = if amax > 0.0 {
            (amax.log2().floor() as i32 - 2 + 127).clamp(0, 254) as u8
        } else {
            0
        };
        let inv = 1.0 / e8m0_to_f32(e);
        let q = |x: f32| f32_to_e2m1(x * inv);
        out.push(e);
        out.extend((0..BLOCK / 2).map(|j| q(block[j]) | (q(block[j + BLOCK / 2]) << 4)));
    }
}

/// Dequantizes one q8_0 block.
pub fn dequantize_q8_0(block: &[u8], out: &mut Vec<f32>) {
    let d = f16_value(block);
    out.extend(
        block[2..Q8_0_BLOCK_BYTES]
            .iter()
            .map(|&q| f32::from(q as i8) * d),
    );
}

/// Dequantizes one q4_0 block (GGUF nibble order).
pub fn dequantize_q4_0(block: &[u8], out: &mut Vec<f32>) {
    let d = f16_value(block);
    let qs = &block[2..Q4_0_BLOCK_BYTES];
    out.extend(qs.iter().map(|&b| (f32::from(b & 15) - 8.0) * d));
    out.extend(qs.iter().map(|&b| (f32::from(b >> 4) - 8.0) * d));
}

/// Dequantizes one mxfp4 block (GGUF nibble order).
pub fn dequantize_mxfp4(block: &[u8], out: &mut Vec<f32>) {
    let s = e8m0_to_f32(block[0]);
    let qs = &block[1..MXFP4_BLOCK_BYTES];
    out.extend(qs.iter().map(|&b| e2m1_to_f32(b & 15) * s));
    out.extend(qs.iter().map(|&b| e2m1_to_f32(b >> 4) * s));
}

/// Appends the fp8 row of `row`: its f32 scale amax / 448 (1 for an all-zero row), then each
/// element as E4M3 of x / scale.
pub fn quantize_fp8_row(row: &[f32], out: &mut Vec<u8>) {
    let amax = row.iter().fold(0f32, |m, &x| m.max(x.abs()));
    let scale = if amax > 0.0 { amax / E4M3_MAX } else { 1.0 };
    out.extend(scale.to_le_bytes());
    out.extend(row.iter().map(|&x| f32_to_e4m3(x / scale)));
}

/// Dequantizes one fp8 row (scale first).
pub fn dequantize_fp8_row(bytes: &[u8], out: &mut Vec<f32>) {
    let scale = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    out.extend(bytes[4..].iter().map(|&b| e4m3_to_f32(b) * scale));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e4m3_codes_match_the_spec() {
        assert_eq!(e4m3_to_f32(0x7e), 448.0);
        assert_eq!(e4m3_to_f32(0x38), 1.0); // exponent 7, mantissa 0
        assert_eq!(e4m3_to_f32(0x01), 2f32.powi(-9)); // smallest subnormal
        assert_eq!(e4m3_to_f32(0x08), 2f32.powi(-6)); // smallest normal
        assert_eq!(e4m3_to_f32(0xb8), -1.0);
        assert!(e4m3_to_f32(0x7f).is_nan());
        // Every finite code round-trips.
        for b in (0..=0xffu8).filter(|b| b & 0x7f != 0x7f) {
            assert_eq!(f32_to_e4m3(e4m3_to_f32(b)), b, "{b:#x}");
        }
        assert_eq!(f32_to_e4m3(1000.0), 0x7e, "saturates");
        // 1.0625 lies halfway between 1.0 (0x38) and 1.125 (0x39): ties go to the even code.
        assert_eq!(f32_to_e4m3(1.0625), 0x38);
        assert_eq!(f32_to_e4m3(1.1875), 0x3a);
    }

    #[test]
    fn e2m1_codes_match_the_spec() {
        assert_eq!(f32_to_e2m1(6.0), 7);
        assert_eq!(f32_to_e2m1(7.9), 7, "saturates");
        assert_eq!(f32_to_e2m1(-1.5), 0b1011);
        assert_eq!(
            f32_to_e2m1(2.5),
            4,
            "tie between 2 (code 4) and 3 (code 5): even"
        );
        assert_eq!(f32_to_e2m1(0.25), 0, "tie between 0 and 0.5: even");
        for n in 0..16u8 {
            assert_eq!(f32_to_e2m1(e2m1_to_f32(n)) & 7, n & 7);
        }
        assert_eq!(e8m0_to_f32(127), 1.0);
        assert_eq!(e8m0_to_f32(125), 0.25);
    }

    /// A q8_0 block against bytes worked out by hand.
    #[test]
    fn q8_0_layout_is_ggufs() {
        let mut row = vec![0.0f32; 32];
        row[0] = 127.0; // amax: d = 1.0 (f16 0x3c00)
        row[1] = -2.0;
        row[2] = 0.5; // rounds half away from zero: 1
        let mut out = Vec::new();
        quantize_q8_0(&row, &mut out);
        assert_eq!(out.len(), 34);
        assert_eq!(&out[..5], &[0x00, 0x3c, 127, 0xfe, 1]);
        assert!(out[5..].iter().all(|&b| b == 0));
        let mut back = Vec::new();
        dequantize_q8_0(&out, &mut back);
        assert_eq!(&back[..3], &[127.0, -2.0, 1.0]);
    }

    /// A q4_0 block against bytes worked out by hand: the nibble order and the signed max.
    #[test]
    fn q4_0_layout_is_ggufs() {
        let mut row = vec![0.0f32; 32];
        row[0] = -8.0; // max by magnitude: d = -8 / -8 = 1.0, x = -8 -> q 0
        row[1] = 7.0; // q 15
        row[16] = 3.0; // q 11, high nibble of byte 0
        row[17] = -1.0; // q 7, high nibble of byte 1
        let mut out = Vec::new();
        quantize_q4_0(&row, &mut out);
        assert_eq!(out.len(), 18);
        assert_eq!(&out[..4], &[0x00, 0x3c, 0xb0, 0x7f]);
        assert!(
            out[4..].iter().all(|&b| b == 0x88),
            "zeros are q 8 in both nibbles"
        );
        let mut back = Vec::new();
        dequantize_q4_0(&out, &mut back);
        assert_eq!(back, row);
    }

    /// An mxfp4 block against bytes worked out by hand.
    #[test]
    fn mxfp4_layout_is_ocp_mx_in_ggufs_order() {
        let mut row = vec![0.0f32; 32];
        row[0] = 6.0; // amax 6: X = floor(log2 6) - 2 = 0, E8M0 127
        row[1] = -0.5; // code 0b1001
        row[16] = 3.0; // code 5, high nibble of byte 0
        let mut out = Vec::new();
        quantize_mxfp4(&row, &mut out);
        assert_eq!(out.len(), 17);
        assert_eq!(&out[..3], &[127, 0x57, 0x09]);
        let mut back = Vec::new();
        dequantize_mxfp4(&out, &mut back);
        assert_eq!(back, row);
        // amax 0.1: X = -4 - 2 = -6, E8M0 121, elements in units of 1/64.
        let mut out = Vec::new();
        quantize_mxfp4(&[0.1; 32], &mut out);
        assert_eq!(out[0], 121);
        assert_eq!(
            out[1], 0x77,
            "0.1 · 64 = 6.4: nearest E2M1 is 6 (code 7), both nibbles"
        );
    }

    #[test]
    fn fp8_row_carries_its_scale() {
        let row = [448.0f32 * 2.0, -1.0, 0.0, 2.0];
        let mut out = Vec::new();
        quantize_fp8_row(&row, &mut out);
        assert_eq!(f32::from_le_bytes(out[..4].try_into().unwrap()), 2.0);
        assert_eq!(&out[4..], &[0x7e, 0xb0, 0x00, 0x38]); // 448, -0.5, 0, 1
        let mut back = Vec::new();
        dequantize_fp8_row(&out, &mut back);
        assert_eq!(back, row);
    }
}
