//! Weight formats, as plain data: the accounting, the results and the kernels share them.

use serde::{Deserialize, Serialize};

/// Storage format of the weights. Activations and norms stay f32 (the KV cache has its own
/// [`KvDtype`]); products unpack in registers and accumulate in f32 whatever the format.
/// Serialized as the CLI spells it
/// ("f32", "f16", "bf16", "fp8-e4m3", "q8_0", "q4_0", "mxfp4"); the byte layouts are in
/// [`crate::format`].
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WeightDtype {
    /// 32-bit float.
    F32,
    /// 16-bit IEEE float, two per u32 word (WGSL's core `unpack2x16float`: any adapter).
    F16,
    /// bfloat16: the top 16 bits of an f32 (rounded to nearest even), unpacked from u32 words.
    Bf16,
    /// OCP FP8 E4M3 with one f32 scale per output row (amax / 448).
    #[serde(rename = "fp8-e4m3")]
    Fp8E4m3,
    /// GGUF Q8_0: blocks of 32 int8 with one f16 scale (8.5 bits per weight).
    #[serde(rename = "q8_0")]
    Q8_0,
    /// GGUF Q4_0: blocks of 32 4-bit values with one f16 scale (4.5 bits per weight).
    #[serde(rename = "q4_0")]
    Q4_0,
    /// OCP MX v1.0 MXFP4 in GGUF's block layout: 32 E2M1 values with one E8M0 scale (4.25
    /// bits per weight).
    Mxfp4,
}

impl WeightDtype {
    /// Every format, in the order tables list them.
    pub const ALL: [Self; 7] = [
        Self::F32,
        Self::F16,
        Self::Bf16,
        Self::Fp8E4m3,
        Self::Q8_0,
        Self::Q4_0,
        Self::Mxfp4,
    ];

    /// The name the CLI and the result documents use.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
            Self::Fp8E4m3 => "fp8-e4m3",
            Self::Q8_0 => "q8_0",
            Self::Q4_0 => "q4_0",
            Self::Mxfp4 => "mxfp4",
        }
    }

    /// Bits per weight with the scales included, for rows whose k is a multiple of 32. fp8's
    /// per-row f32 scale adds 32 / k on top of the 8 given here; [`Self::row_bytes`] is exact.
    pub fn bits_per_weight(self) -> f64 {
        match self {
            Self::F32 => 32.0,
            Self::F16 | Self::Bf16 => 16.0,
            Self::Fp8E4m3 => 8.0,
            Self::Q8_0 => 8.5,
            Self::Q4_0 => 4.5,
            Self::Mxfp4 => 4.25,
        }
    }

    /// Where the byte layout comes from, for tables.
    pub fn layout_source(self) -> &'static str {
        match self {
            Self::F32 | Self::F16 => "IEEE 754",
            Self::Bf16 => "bfloat16 (top half of IEEE f32)",
            Self::Fp8E4m3 => "OCP FP8 v1.0 E4M3, f32 scale per row",
            Self::Q8_0 => "GGUF block_q8_0",
            Self::Q4_0 => "GGUF block_q4_0",
            Self::Mxfp4 => "OCP MX v1.0 MXFP4 (GGUF block_mxfp4)",
        }
    }

    /// The block formats (q8_0, q4_0, mxfp4), whose rows are padded to whole
    /// [`crate::format::BLOCK`]s of K.
    pub fn is_block(self) -> bool {
        matches!(self, Self::Q8_0 | Self::Q4_0 | Self::Mxfp4)
    }

    /// Exact bytes of one stored row of `k` weights, scales and block padding included (the
    /// device's vec4 padding of f32, f16, bf16 and fp8 rows is not: pass the padded k for it).
    pub fn row_bytes(self, k: usize) -> usize {
        use crate::format::{BLOCK, MXFP4_BLOCK_BYTES, Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES};
        match self {
            Self::F32 => 4 * k,
            Self::F16 | Self::Bf16 => 2 * k,
            Self::Fp8E4m3 => 4 + k,
            Self::Q8_0 => k.div_ceil(BLOCK) * Q8_0_BLOCK_BYTES,
            Self::Q4_0 => k.div_ceil(BLOCK) * Q4_0_BLOCK_BYTES,
            Self::Mxfp4 => k.div_ceil(BLOCK) * MXFP4_BLOCK_BYTES,
        }
    }

    /// Bytes of an n × k weight matrix (n rows of k): what streaming it once reads.
    pub fn matrix_bytes(self, n: usize, k: usize) -> f64 {
        n as f64 * self.row_bytes(k) as f64
    }

    /// Encodes rows of `row_len` values (`values.len()` a multiple of it) into the format's
    /// bytes, row after row ([`Self::row_bytes`] each), zero-padded to whole u32 words (the
    /// kernels read every format as u32 words, or vec4s of f32/f16), plus, for the block
    /// formats, one spare word: their kernels read blocks at any byte offset as pairs of words.
    pub fn encode_rows(self, values: &[f32], row_len: usize) -> Vec<u8> {
        use crate::format as f;
        assert!(
            row_len > 0 && values.len().is_multiple_of(row_len),
            "encode_rows: {} values are not whole rows of {row_len}",
            values.len()
        );
        let rows = values.len() / row_len;
        let mut out = Vec::with_capacity(rows * self.row_bytes(row_len) + 4);
        let padded = row_len.div_ceil(f::BLOCK) * f::BLOCK;
        let mut block_row = vec![0.0f32; padded];
        for row in values.chunks_exact(row_len) {
            match self {
                Self::F32 => out.extend(row.iter().flat_map(|v| v.to_le_bytes())),
                Self::F16 => out.extend(
                    row.iter()
                        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes()),
                ),
                Self::Bf16 => out.extend(
                    row.iter()
                        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()),
                ),
                Self::Fp8E4m3 => f::quantize_fp8_row(row, &mut out),
                Self::Q8_0 | Self::Q4_0 | Self::Mxfp4 => {
                    block_row[..row_len].copy_from_slice(row);
                    match self {
                        Self::Q8_0 => f::quantize_q8_0(&block_row, &mut out),
                        Self::Q4_0 => f::quantize_q4_0(&block_row, &mut out),
                        _ => f::quantize_mxfp4(&block_row, &mut out),
                    }
                }
            }
        }
        let spare = if self.is_block() { 4 } else { 0 };
        out.resize(out.len().div_ceil(4) * 4 + spare, 0);
        out
    }

    /// The values of `rows` rows encoded by [`Self::encode_rows`] with the same `row_len`:
    /// exactly what the kernels compute with (block padding dropped).
    pub fn decode_rows(self, bytes: &[u8], rows: usize, row_len: usize) -> Vec<f32> {
        use crate::format as f;
        let stride = self.row_bytes(row_len);
        assert!(bytes.len() >= rows * stride, "decode_rows: too few bytes");
        let mut out = Vec::with_capacity(rows * row_len);
        for row in bytes.chunks_exact(stride).take(rows) {
            let start = out.len();
            match self {
                Self::F32 => out.extend(
                    row.chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                ),
                Self::F16 => out.extend(
                    row.chunks_exact(2)
                        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
                ),
                Self::Bf16 => out.extend(
                    row.chunks_exact(2)
                        .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
                ),
                Self::Fp8E4m3 => f::dequantize_fp8_row(row, &mut out),
                Self::Q8_0 => row
                    .chunks_exact(f::Q8_0_BLOCK_BYTES)
                    .for_each(|b| f::dequantize_q8_0(b, &mut out)),
                Self::Q4_0 => row
                    .chunks_exact(f::Q4_0_BLOCK_BYTES)
                    .for_each(|b| f::dequantize_q4_0(b, &mut out)),
                Self::Mxfp4 => row
                    .chunks_exact(f::MXFP4_BLOCK_BYTES)
                    .for_each(|b| f::dequantize_mxfp4(b, &mut out)),
            }
            out.truncate(start + row_len);
        }
        out
    }

    /// The values the kernels see for rows of `row_len` values: [`Self::decode_rows`] of
    /// [`Self::encode_rows`], for CPU references.
    pub fn quantize_rows(self, values: &[f32], row_len: usize) -> Vec<f32> {
        match self {
            Self::F32 => values.to_vec(),
            _ => self.decode_rows(
                &self.encode_rows(values, row_len),
                values.len() / row_len,
                row_len,
            ),
        }
    }
}

/// The storage formats of a model run: its weights, one format for every matrix but the routed
/// experts (which a model may ship in a format of their own: gpt-oss's MXFP4 experts beside
/// bf16 attention), and its KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Formats {
    /// Attention, dense feed-forward, router, shared experts and LM head.
    pub dense: WeightDtype,
    /// Routed experts' gate|up and down projections.
    pub experts: WeightDtype,
    /// The KV cache (multi-head latent attention's latent cache is f32 whatever this says).
    pub kv: KvDtype,
}

impl Formats {
    /// `dtype` for every matrix, and a `kv` cache.
    pub fn uniform(dtype: WeightDtype, kv: KvDtype) -> Self {
        Self {
            dense: dtype,
            experts: dtype,
            kv,
        }
    }

    /// The formats of a run of `shape` with `dense` weights and a `kv` cache: the routed experts
    /// in `requested` (`--expert-dtype`), else in the preset's own format (`preset`), else in
    /// `dense`. Asking for an experts' format on a model without experts is an input error.
    pub fn for_model(
        shape: &crate::model::ModelShape,
        (dense, kv): (WeightDtype, KvDtype),
        requested: Option<WeightDtype>,
        preset: Option<WeightDtype>,
    ) -> Result<Self, crate::InputError> {
        Self::check_experts_flag(shape, requested)?;
        let experts = match shape.is_moe() {
            true => requested.or(preset).unwrap_or(dense),
            false => dense,
        };
        Ok(Self { dense, experts, kv })
    }

    /// Fails where `--expert-dtype` was given for a model without routed experts; needs no
    /// device, so a run checks it before opening one.
    pub fn check_experts_flag(
        shape: &crate::model::ModelShape,
        requested: Option<WeightDtype>,
    ) -> Result<(), crate::InputError> {
        match requested {
            Some(e) if !shape.is_moe() => Err(crate::InputError::new(format!(
                "--expert-dtype {}: this model has no routed experts; drop the flag or choose a \
                 mixture-of-experts preset (tokbench presets)",
                e.name()
            ))),
            _ => Ok(()),
        }
    }

    /// The experts' format where it differs from the rest, for records and names.
    pub fn distinct_experts(self) -> Option<WeightDtype> {
        (self.experts != self.dense).then_some(self.experts)
    }

    /// "f16", or "f16 (experts mxfp4)".
    pub fn describe(self) -> String {
        match self.distinct_experts() {
            Some(e) => format!("{} (experts {})", self.dense.name(), e.name()),
            None => self.dense.name().to_string(),
        }
    }
}

impl From<(WeightDtype, KvDtype)> for Formats {
    fn from((dtype, kv): (WeightDtype, KvDtype)) -> Self {
        Self::uniform(dtype, kv)
    }
}

/// The one of `all` whose `name` is `s` (any case); the error names `flag` and lists the names.
fn by_name<T: Copy>(
    s: &str,
    all: &[T],
    name: fn(T) -> &'static str,
    flag: &str,
    what: &str,
) -> Result<T, crate::InputError> {
    let lower = s.to_ascii_lowercase();
    all.iter()
        .copied()
        .find(|&d| name(d) == lower)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|&d| name(d)).collect();
            crate::InputError::new(format!(
                "{flag} {s:?} is not {what}: use one of {}",
                names.join(", ")
            ))
        })
}

impl std::str::FromStr for WeightDtype {
    type Err = crate::InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        by_name(s, &Self::ALL, Self::name, "--dtype", "a weight format")
    }
}

/// Storage format of the KV cache (`--kv-dtype`). Each cached row is one head of one position
/// (`head_dim` values), stored in the layout of the weight format of the same name
/// ([`Self::layout`]): f32 and f16 little-endian elements, q8_0 GGUF `block_q8_0`s (a row whose
/// head_dim is not a multiple of 32 is padded with zeros to whole blocks, as weight rows pad K).
/// Rows lie back to back, so the cache streams exactly [`Self::row_bytes`] per row. Kernels
/// read every format as u32 words, unpack in registers and accumulate in f32; f16 is packed
/// with WGSL's core `pack2x16float`, so it needs no SHADER_F16.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KvDtype {
    /// 32-bit float.
    F32,
    /// 16-bit IEEE float, two per u32 word.
    F16,
    /// GGUF Q8_0 along head_dim: blocks of 32 int8 with one f16 scale (8.5 bits per element).
    #[serde(rename = "q8_0")]
    Q8_0,
}

impl KvDtype {
    /// Every KV format, in the order tables list them.
    pub const ALL: [Self; 3] = [Self::F32, Self::F16, Self::Q8_0];

    /// The name the CLI and the result documents use.
    pub fn name(self) -> &'static str {
        self.layout().name()
    }

    /// The weight format whose row layout (and encoder) the cache rows use.
    pub fn layout(self) -> WeightDtype {
        match self {
            Self::F32 => WeightDtype::F32,
            Self::F16 => WeightDtype::F16,
            Self::Q8_0 => WeightDtype::Q8_0,
        }
    }

    /// Bits per cached element with the scales included, for heads whose width is a multiple
    /// of 32 ([`Self::row_bytes`] is exact).
    pub fn bits_per_element(self) -> f64 {
        self.layout().bits_per_weight()
    }

    /// Exact bytes of one cached row (one head at one position) of `head_dim` values, block
    /// padding and scales included: 4·hd, 2·hd, or 34 per started block of 32.
    pub fn row_bytes(self, head_dim: usize) -> usize {
        self.layout().row_bytes(head_dim)
    }

    /// Bytes of a cache buffer of `rows` rows: the rows back to back, rounded up to whole u32
    /// words, plus one spare word for q8_0 (its kernels read blocks at any even byte offset as
    /// pairs of words), as [`WeightDtype::encode_rows`] lays them out.
    pub fn buffer_bytes(self, rows: u64, head_dim: usize) -> u64 {
        let spare = if self == Self::Q8_0 { 4 } else { 0 };
        (rows * self.row_bytes(head_dim) as u64).div_ceil(4) * 4 + spare
    }

    /// The cache buffer holding `values` (rows of `head_dim`), as the kernels lay it out.
    pub fn encode_rows(self, values: &[f32], head_dim: usize) -> Vec<u8> {
        self.layout().encode_rows(values, head_dim)
    }

    /// The values a cache of `rows` rows encoded by [`Self::encode_rows`] holds.
    pub fn decode_rows(self, bytes: &[u8], rows: usize, head_dim: usize) -> Vec<f32> {
        self.layout().decode_rows(bytes, rows, head_dim)
    }

    /// The values the kernels read back for `values` stored in this format (rows of
    /// `head_dim`): the CPU references compute with these.
    pub fn quantize_rows(self, values: &[f32], head_dim: usize) -> Vec<f32> {
        self.layout().quantize_rows(values, head_dim)
    }
}

impl std::str::FromStr for KvDtype {
    type Err = crate::InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        by_name(s, &Self::ALL, Self::name, "--kv-dtype", "a KV cache format")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_encoding_rounds_like_the_gpu() {
        let bytes = WeightDtype::F16.encode_rows(&[1.0, 0.1], 2);
        assert_eq!(bytes.len(), 4);
        assert_eq!(
            WeightDtype::F16.quantize_rows(&[0.1], 1),
            vec![half::f16::from_f32(0.1).to_f32()]
        );
        assert_ne!(WeightDtype::F16.quantize_rows(&[0.1], 1), vec![0.1]);
        assert_eq!(WeightDtype::F32.quantize_rows(&[0.1], 1), vec![0.1]);
    }

    #[test]
    fn names_round_trip_and_serialize_as_the_cli_spells_them() {
        for d in WeightDtype::ALL {
            assert_eq!(d.name().parse::<WeightDtype>().unwrap(), d);
            assert_eq!(serde_json::to_value(d).unwrap(), d.name());
        }
        let err = "q5_k".parse::<WeightDtype>().unwrap_err().to_string();
        assert!(
            err.contains("q5_k") && err.contains("fp8-e4m3, q8_0, q4_0, mxfp4"),
            "{err}"
        );
    }

    #[test]
    fn row_bytes_are_the_exact_bits() {
        for d in WeightDtype::ALL {
            let k = 4096;
            let bits = 8.0 * d.row_bytes(k) as f64 / k as f64;
            let extra = if d == WeightDtype::Fp8E4m3 {
                32.0 / k as f64
            } else {
                0.0
            };
            assert_eq!(bits, d.bits_per_weight() + extra, "{d:?}");
        }
        // k = 33 pads to two blocks.
        assert_eq!(WeightDtype::Q4_0.row_bytes(33), 36);
        assert_eq!(WeightDtype::Mxfp4.row_bytes(33), 34);
        assert_eq!(WeightDtype::Q8_0.row_bytes(33), 68);
        assert_eq!(WeightDtype::Fp8E4m3.row_bytes(33), 37);
    }

    /// Every format round-trips within its quantization step, rows stay apart, padding of k is
    /// dropped, and re-encoding the decoded values gives back the same values.
    #[test]
    fn every_format_round_trips_within_its_step() {
        let (rows, k) = (3, 45); // k divides no block
        let values: Vec<f32> = (0..rows * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        for d in WeightDtype::ALL {
            let bytes = d.encode_rows(&values, k);
            let spare = if d.is_block() { 4 } else { 0 };
            assert_eq!(
                bytes.len(),
                (rows * d.row_bytes(k)).div_ceil(4) * 4 + spare,
                "{d:?}"
            );
            let back = d.decode_rows(&bytes, rows, k);
            assert_eq!(back.len(), values.len(), "{d:?}");
            // Largest error of each format relative to the row's or block's largest magnitude
            // (below 0.5 here), doubled: half an f16/bf16/fp8 step of the value; q8_0 half a
            // step of amax / 127 plus its f16 scale's rounding; q4_0 a whole step amax / 8 (the
            // side opposite the max clamps at +7); mxfp4 amax / 4 (the gap between E2M1's 4
            // and 6, or saturation at 6 of a block max up to 8 units).
            let rel = match d {
                WeightDtype::F32 => 0.0,
                WeightDtype::F16 => 1.0 / 2048.0,
                WeightDtype::Bf16 => 1.0 / 256.0,
                WeightDtype::Fp8E4m3 => 1.0 / 16.0,
                WeightDtype::Q8_0 => 0.6 / 127.0,
                WeightDtype::Q4_0 => 2.0 / 8.0,
                WeightDtype::Mxfp4 => 2.0 / 4.0,
            };
            for (i, (&v, &b)) in values.iter().zip(&back).enumerate() {
                assert!(
                    (v - b).abs() <= rel * 0.5 * 1.01 + 1e-7,
                    "{d:?} [{i}]: {v} -> {b}"
                );
            }
            for (a, b) in d.quantize_rows(&back, k).iter().zip(&back) {
                assert!(
                    (a - b).abs() <= 1e-6 * b.abs(),
                    "{d:?}: re-encoding moved {b} to {a}"
                );
            }
        }
    }

    #[test]
    fn kv_formats_parse_count_and_round_trip() {
        for d in KvDtype::ALL {
            assert_eq!(d.name().parse::<KvDtype>().unwrap(), d);
            assert_eq!(serde_json::to_value(d).unwrap(), d.name());
        }
        for bad in ["q4_0", "bf16", "int8"] {
            let err = bad.parse::<KvDtype>().unwrap_err().to_string();
            assert!(
                err.contains("--kv-dtype") && err.contains(bad) && err.contains("f32, f16, q8_0"),
                "{err}"
            );
        }
        // 34 bytes per 32 values; a head of 24 pads to one block, one of 80 to three.
        assert_eq!(KvDtype::Q8_0.row_bytes(64), 68);
        assert_eq!(KvDtype::Q8_0.row_bytes(24), 34);
        assert_eq!(KvDtype::Q8_0.row_bytes(80), 102);
        assert_eq!(KvDtype::F16.row_bytes(24), 48);
        assert_eq!(KvDtype::Q8_0.bits_per_element(), 8.5);
        // Rows back to back: 3 rows of 80 are 306 bytes, 308 in words, plus the spare word.
        assert_eq!(KvDtype::Q8_0.buffer_bytes(3, 80), 312);
        let values: Vec<f32> = (0..3 * 80).map(|i| (i as f32 * 0.37).sin()).collect();
        for d in KvDtype::ALL {
            let bytes = d.encode_rows(&values, 80);
            assert_eq!(bytes.len() as u64, d.buffer_bytes(3, 80), "{d:?}");
            assert_eq!(d.decode_rows(&bytes, 3, 80), d.quantize_rows(&values, 80));
        }
    }
}
