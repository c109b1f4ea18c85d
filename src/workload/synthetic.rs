//! Synthetic weights and inputs of a model shape: seeded, element by element, so the GPU
//! upload, the CPU reference and a spot check of one column all see the same numbers without
//! ever holding a whole model on the host.

use crate::kernels::layout::{padded_cols, synthetic};
use crate::kernels::{KvDtype, WeightDtype};
use crate::model::ModelShape;
use tokbench_core::dtype::Formats;

/// The weight matrices of a layer, plus the LM head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matrix {
    /// Fused [q | k | v] projection: d_model × (q_dim + 2·kv_dim).
    Qkv,
    /// Attention output projection: q_dim × d_model.
    O,
    /// Fused [gate | up] projection: d_model × 2·d_ff (each half padded to 4 columns).
    GateUp,
    /// Down projection: d_ff × d_model.
    Down,
    /// LM head: d_model × vocab.
    LmHead,
    /// Router of a mixture-of-experts layer: d_model × n_experts.
    Router,
    /// [gate | up] of routed expert `e`: d_model × 2·d_ff_expert.
    ExpertGateUp(u32),
    /// Down projection of routed expert `e`: d_ff_expert × d_model.
    ExpertDown(u32),
    /// [gate | up] of the shared experts, as one block: d_model × 2·(n_shared · d_ff_expert).
    SharedGateUp,
    /// Down projection of the shared experts: (n_shared · d_ff_expert) × d_model.
    SharedDown,
    /// MLA's projections of the layer input, fused: d_model × [q_a (q_lora_rank) | c
    /// (kv_lora_rank) | k_rope (qk_rope_head_dim)]; without a query rank the queries themselves,
    /// n_heads · (nope + rope), stand where q_a does.
    MlaA,
    /// MLA's query decompression: q_lora_rank × n_heads · (nope + rope), per head [nope | rope].
    MlaQb,
    /// MLA's latent decompression: kv_lora_rank × n_heads · (nope + v), per head [k_nope | v].
    /// Its key columns of head h, transposed, are W_UK,h of the absorbed form; its value
    /// columns are W_UV,h.
    MlaKvb,
}

/// The norm weights (gamma) of a layer, plus the final norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Norm {
    /// Before attention.
    Attn,
    /// Before the feed-forward block.
    Ffn,
    /// Before the LM head.
    Final,
    /// MLA: on the query's low-rank projection (q_lora_rank wide).
    MlaQ,
    /// MLA: on the latent before it is cached (kv_lora_rank wide).
    MlaKv,
}

/// One logical weight matrix: K rows; columns made of segments (for fused projections), each
/// padded to a multiple of 4 columns. Values are uniform in ±√(3/K), so a product keeps its
/// input's variance.
#[derive(Debug, Clone)]
pub struct WeightMatrix {
    /// Rows (the input width).
    pub k: usize,
    /// (width, seed) of each column segment, in order.
    pub segments: Vec<(usize, u64)>,
    /// Format on the GPU; [`Self::value`], [`Self::column`] and [`Self::dense_f64`] give the
    /// values it holds (rounded, or quantized per block or row), [`Self::slab`] the values
    /// before encoding.
    pub dtype: WeightDtype,
}

impl WeightMatrix {
    /// Padded width: the sum of the segments' padded widths.
    pub fn padded_n(&self) -> usize {
        self.segments.iter().map(|&(w, _)| padded_cols(w)).sum()
    }

    /// Logical width (without padding).
    pub fn n(&self) -> usize {
        self.segments.iter().map(|&(w, _)| w).sum()
    }

    fn scale(&self) -> f32 {
        (3.0 / self.k as f32).sqrt()
    }

    /// Element (row, padded column) as the GPU holds it; zero in padding. Quantizing needs the
    /// element's whole block or row, so this costs a [`Self::column`].
    pub fn value(&self, row: usize, padded_col: usize) -> f32 {
        if row >= self.k {
            return 0.0;
        }
        self.column(padded_col)[row]
    }

    /// The K weights of output `padded_col` as the GPU holds them: one stored row, quantized as
    /// [`WeightDtype::encode_rows`] quantizes a slab's row (the vec4 padding of K is zeros,
    /// which change no scale).
    pub fn column(&self, padded_col: usize) -> Vec<f32> {
        let raw: Vec<f32> = (0..self.k).map(|r| self.raw(r, padded_col)).collect();
        self.dtype.quantize_rows(&raw, self.k)
    }

    /// Element (row, padded column) before encoding; zero in padding.
    fn raw(&self, row: usize, padded_col: usize) -> f32 {
        let mut start = 0;
        for &(width, seed) in &self.segments {
            let padded = padded_cols(width);
            if padded_col < start + padded {
                let c = padded_col - start;
                return if c < width {
                    synthetic(seed, (row * width + c) as u64) * self.scale()
                } else {
                    0.0
                };
            }
            start += padded;
        }
        0.0
    }

    /// Outputs [n_start, n_end) (padded columns) in the kernels' order, before encoding: one row
    /// per output, K values padded with zeros to a multiple of 4 ([`WeightDtype::encode_rows`]
    /// with rows of `padded_cols(k)` makes the slab's buffer). Filled on all cores.
    pub fn slab(&self, n_start: usize, n_end: usize) -> Vec<f32> {
        let width = padded_cols(self.k);
        let rows = n_end - n_start;
        let mut out = vec![0.0f32; rows * width];
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let rows_per = rows.div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            for (chunk_index, chunk) in out.chunks_mut(rows_per * width).enumerate() {
                scope.spawn(move || {
                    for (i, row) in chunk.chunks_exact_mut(width).enumerate() {
                        let n = n_start + chunk_index * rows_per + i;
                        for (k, v) in row[..self.k].iter_mut().enumerate() {
                            *v = self.raw(k, n);
                        }
                    }
                });
            }
        });
        out
    }

    /// The whole matrix, unpadded (K × n), in f64: for CPU references of small shapes.
    pub fn dense_f64(&self) -> Vec<f64> {
        let n = self.n();
        let mut out = vec![0.0; self.k * n];
        let (mut start, mut c) = (0, 0);
        for &(width, _) in &self.segments {
            for padded_col in start..start + width {
                for (r, v) in self.column(padded_col).into_iter().enumerate() {
                    out[r * n + c] = f64::from(v);
                }
                c += 1;
            }
            start += padded_cols(width);
        }
        out
    }
}

/// A model shape with synthetic weights. `seed_layer` maps a layer to the layer whose weights it
/// uses: itself, or 0 when weights are shared across layers.
#[derive(Debug, Clone, Copy)]
pub struct SyntheticModel {
    /// The dimensions.
    pub shape: ModelShape,
    /// Format of every matrix but the routed experts'.
    pub dtype: WeightDtype,
    /// Format of the routed experts' matrices.
    pub expert_dtype: WeightDtype,
    /// Storage format of the KV cache: the forward pass and the reference both hold cached
    /// keys and values as [`KvDtype::quantize_rows`] gives them (MLA's latent cache is f32).
    pub kv: KvDtype,
    /// All layers use layer 0's weights.
    pub shared_layers: bool,
}

/// Seed space: one stream per (layer, tensor); experts' tensors above bit 32.
fn seed(layer: usize, tensor: u64) -> u64 {
    0x70CB_E7C0_0000_0000 ^ ((layer as u64) << 8) ^ tensor
}

fn expert_seed(layer: usize, expert: u32, tensor: u64) -> u64 {
    seed(layer, (u64::from(expert) + 1) << 32 | tensor)
}

const LM_LAYER: usize = 1 << 20;

impl SyntheticModel {
    /// The formats of its matrices and KV cache, for the accounting and the kernels.
    pub fn formats(&self) -> Formats {
        Formats {
            dense: self.dtype,
            experts: self.expert_dtype,
            kv: self.kv,
        }
    }

    fn layer_seed(&self, layer: usize) -> usize {
        if self.shared_layers { 0 } else { layer }
    }

    /// Weight matrix `m` of `layer` (ignored for the LM head).
    pub fn matrix(&self, layer: usize, m: Matrix) -> WeightMatrix {
        let s = &self.shape;
        let l = self.layer_seed(layer);
        let (d, f) = (s.d_model as usize, s.d_ff as usize);
        let (k, segments) = match m {
            Matrix::Qkv => (
                d,
                vec![
                    (s.q_dim(), seed(l, 1)),
                    (s.kv_dim(), seed(l, 2)),
                    (s.kv_dim(), seed(l, 3)),
                ],
            ),
            Matrix::O if s.is_mla() => ((s.n_heads * s.v_head_dim) as usize, vec![(d, seed(l, 4))]),
            Matrix::O => (s.q_dim(), vec![(d, seed(l, 4))]),
            Matrix::GateUp => (d, vec![(f, seed(l, 5)), (f, seed(l, 6))]),
            Matrix::Down => (f, vec![(d, seed(l, 7))]),
            Matrix::LmHead => (d, vec![(s.vocab as usize, seed(LM_LAYER, 8))]),
            Matrix::Router => (d, vec![(s.n_experts as usize, seed(l, 14))]),
            Matrix::ExpertGateUp(e) => {
                let fe = s.d_ff_expert as usize;
                (
                    d,
                    vec![(fe, expert_seed(l, e, 5)), (fe, expert_seed(l, e, 6))],
                )
            }
            Matrix::ExpertDown(e) => (s.d_ff_expert as usize, vec![(d, expert_seed(l, e, 7))]),
            Matrix::SharedGateUp => {
                let fs = (s.n_shared_experts * s.d_ff_expert) as usize;
                (d, vec![(fs, seed(l, 15)), (fs, seed(l, 16))])
            }
            Matrix::SharedDown => (
                (s.n_shared_experts * s.d_ff_expert) as usize,
                vec![(d, seed(l, 17))],
            ),
            Matrix::MlaA => {
                let q = match s.q_lora_rank {
                    0 => (
                        s.n_heads * (s.qk_nope_head_dim + s.qk_rope_head_dim),
                        seed(l, 23),
                    ),
                    rank => (rank, seed(l, 20)),
                };
                let (c, k_rope) = (s.kv_lora_rank, s.qk_rope_head_dim);
                let segments = [q, (c, seed(l, 21)), (k_rope, seed(l, 22))];
                (d, segments.map(|(w, sd)| (w as usize, sd)).to_vec())
            }
            Matrix::MlaQb => (
                s.q_lora_rank as usize,
                vec![(
                    (s.n_heads * (s.qk_nope_head_dim + s.qk_rope_head_dim)) as usize,
                    seed(l, 24),
                )],
            ),
            Matrix::MlaKvb => (
                s.kv_lora_rank as usize,
                vec![(
                    (s.n_heads * (s.qk_nope_head_dim + s.v_head_dim)) as usize,
                    seed(l, 25),
                )],
            ),
        };
        let dtype = match m {
            Matrix::ExpertGateUp(_) | Matrix::ExpertDown(_) => self.expert_dtype,
            _ => self.dtype,
        };
        WeightMatrix { k, segments, dtype }
    }

    /// Norm weights (f32, near 1): d_model of them, or the width of the MLA rank they follow.
    pub fn norm(&self, layer: usize, n: Norm) -> Vec<f32> {
        let s = &self.shape;
        let (l, t, width) = match n {
            Norm::Attn => (self.layer_seed(layer), 9, s.d_model),
            Norm::Ffn => (self.layer_seed(layer), 10, s.d_model),
            Norm::Final => (LM_LAYER, 11, s.d_model),
            Norm::MlaQ => (self.layer_seed(layer), 26, s.q_lora_rank),
            Norm::MlaKv => (self.layer_seed(layer), 27, s.kv_lora_rank),
        };
        (0..u64::from(width))
            .map(|i| 1.0 + 0.1 * synthetic(seed(l, t), i))
            .collect()
    }
}

impl SyntheticModel {
    /// The format of the absorbed form's W_UK ([`crate::model::mla::uk_dtype`]).
    pub fn mla_uk_dtype(&self) -> WeightDtype {
        crate::model::mla::uk_dtype(self.dtype)
    }

    /// W_UK of every head of `layer`, transposed for the absorbed form, as rows before
    /// encoding in [`Self::mla_uk_dtype`]: head h's row j (j < kv_lora_rank) holds, for each
    /// n < qk_nope_head_dim, the weight of latent j in W_kv_b's key column h·(nope + v) + n, as
    /// the GPU holds W_kv_b. So q_nope,h · W_UK,h equals the decompressed form's q_nope · k_nope.
    pub fn mla_uk_rows(&self, layer: usize) -> (Vec<f32>, WeightDtype) {
        let s = &self.shape;
        let (heads, latent, nope) = (
            s.n_heads as usize,
            s.kv_lora_rank as usize,
            s.qk_nope_head_dim as usize,
        );
        let kvb = self.matrix(layer, Matrix::MlaKvb);
        let per_head = nope + s.v_head_dim as usize;
        let mut rows = vec![0.0f32; heads * latent * nope];
        for h in 0..heads {
            for n in 0..nope {
                for (j, v) in kvb.column(h * per_head + n).into_iter().enumerate() {
                    rows[(h * latent + j) * nope + n] = v;
                }
            }
        }
        (rows, self.mla_uk_dtype())
    }

    /// Attention-sink logits of `layer`, one per query head, in [−1, 1): about the size of a
    /// score q·k/√d of these weights, so the sinks take a real share of each softmax.
    pub fn sinks(&self, layer: usize) -> Vec<f32> {
        (0..u64::from(self.shape.n_heads))
            .map(|i| synthetic(seed(self.layer_seed(layer), 18), i))
            .collect()
    }
}

/// The input hidden states of a pass (rows × d_model), standing in for the embedding lookup.
pub fn input_states(rows: usize, d_model: usize) -> Vec<f32> {
    step_input_states(rows, d_model, 0)
}

/// The input hidden states of decode step `step` (step 0: [`input_states`]): each step's tokens
/// differ, so a mixture-of-experts router sends them to other experts.
pub fn step_input_states(rows: usize, d_model: usize, step: usize) -> Vec<f32> {
    (0..(rows * d_model) as u64)
        .map(|i| synthetic(0xE3B0_C442 ^ ((step as u64) << 40), i))
        .collect()
}

/// Initial cache contents of `layer` (K or V) for a decode pass: [batch, kv_head, pos, head_dim]
/// with `cache_len` positions, of which the first `filled` hold synthetic values; before
/// encoding into the cache's format (the reference takes [`KvDtype::quantize_rows`] of them).
pub fn initial_cache(layer: usize, value: bool, dims: [usize; 4], filled: usize) -> Vec<f32> {
    let [batch, kv_heads, cache_len, hd] = dims;
    let s = seed(layer, if value { 13 } else { 12 });
    let mut out = vec![0.0; batch * kv_heads * cache_len * hd];
    for (bh, block) in out.chunks_exact_mut(cache_len * hd).enumerate() {
        for (i, v) in block[..filled * hd].iter_mut().enumerate() {
            *v = synthetic(s, (bh * filled * hd + i) as u64);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::presets::find;

    fn tiny(dtype: WeightDtype) -> SyntheticModel {
        SyntheticModel {
            shape: find("tiny").unwrap().shape,
            dtype,
            expert_dtype: dtype,
            kv: KvDtype::F32,
            shared_layers: false,
        }
    }

    #[test]
    fn slabs_tile_the_padded_matrix() {
        let m = tiny(WeightDtype::F32).matrix(0, Matrix::GateUp);
        assert_eq!((m.k, m.n(), m.padded_n()), (96, 500, 504));
        let whole = m.slab(0, 504);
        let top = m.slab(0, 200);
        let bottom = m.slab(200, 504);
        assert_eq!(whole.len(), 504 * 96);
        assert_eq!(&whole[..200 * 96], &top[..]);
        assert_eq!(&whole[200 * 96..], &bottom[..]);
        // Output n is row n: W(k, n) at [n * 96 + k].
        assert_eq!(whole[7 * 96 + 5], m.value(5, 7));
        // Gate is 250 wide, padded to 252: outputs 250, 251 are zero rows; up starts at 252.
        assert!(whole[250 * 96..252 * 96].iter().all(|&v| v == 0.0));
        assert_ne!(whole[252 * 96], 0.0);
        // K = 250 of the down projection pads each row to 252 with zeros.
        let down = tiny(WeightDtype::F32).matrix(0, Matrix::Down).slab(0, 2);
        assert_eq!(down.len(), 2 * 252);
        assert_eq!(&down[250..252], &[0.0, 0.0]);
    }

    #[test]
    fn dense_matrix_drops_padding_and_values_are_scaled() {
        let m = tiny(WeightDtype::F32).matrix(1, Matrix::Down);
        let dense = m.dense_f64();
        assert_eq!(dense.len(), 250 * 96);
        let bound = f64::from((3.0f32 / 250.0).sqrt());
        assert!(dense.iter().all(|v| v.abs() <= bound));
        assert_eq!(dense[96 + 5], f64::from(m.value(1, 5)));
    }

    #[test]
    fn shared_layers_reuse_layer_zero_and_f16_rounds() {
        let mut model = tiny(WeightDtype::F32);
        assert_ne!(
            model.matrix(0, Matrix::O).value(3, 3),
            model.matrix(1, Matrix::O).value(3, 3)
        );
        model.shared_layers = true;
        assert_eq!(
            model.matrix(0, Matrix::O).value(3, 3),
            model.matrix(1, Matrix::O).value(3, 3)
        );
        let v = tiny(WeightDtype::F16).matrix(0, Matrix::O).value(3, 3);
        assert_eq!(v, half::f16::from_f32(v).to_f32());
    }

    /// A block format's values are the dequantized slab: encoding a slab and decoding it gives
    /// `column` of each output.
    #[test]
    fn quantized_values_are_what_the_slab_encodes_to() {
        let m = tiny(WeightDtype::Q4_0).matrix(0, Matrix::Down); // K = 250: 8 blocks, padded
        let kp = padded_cols(m.k);
        let bytes = m.dtype.encode_rows(&m.slab(0, 3), kp);
        let decoded = m.dtype.decode_rows(&bytes, 3, kp);
        for n in 0..3 {
            assert_eq!(
                &decoded[n * kp..n * kp + m.k],
                &m.column(n)[..],
                "output {n}"
            );
        }
        assert_ne!(m.value(5, 1), m.slab(1, 2)[5], "quantized differs from raw");
        assert_eq!(m.dense_f64()[5 * m.n() + 1], f64::from(m.value(5, 1)));
    }
}
