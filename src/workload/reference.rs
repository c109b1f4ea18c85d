//! The same forward pass as [`super::forward`], on the CPU in f64, from the same synthetic
//! weights, inputs and cache history: the correctness gate of the token workloads. Meant for
//! small shapes (tiny, or a reduced copy of a large one).

use super::synthetic::{Matrix, Norm, SyntheticModel, initial_cache, step_input_states};
use crate::kernels::{KvDtype, attention, moe, rmsnorm, rope, swiglu};
use crate::model::mla::MlaDims;
use crate::model::{Pass, Phase};

/// Outputs of the reference pass.
#[derive(Debug, Clone)]
pub struct Reference {
    /// Residual stream after the last layer: rows × d_model.
    pub hidden: Vec<f64>,
    /// Logits: batch × vocab.
    pub logits: Vec<f64>,
    /// Experts the router chose for some row, per mixture-of-experts layer in layer order.
    pub experts_touched: Vec<u32>,
}

/// Multiply-adds of the reference for `pass`; callers use it to decide whether a shape is small
/// enough to check in full.
pub fn cost(model: &SyntheticModel, layers: u32, pass: Pass) -> f64 {
    let w = crate::model::accounting::total(&model.shape, layers, model.formats(), pass);
    w.flops / 2.0
}

/// rows × n = x (rows × k) · w (k × n).
fn matmul(x: &[f64], w: &[f64], k: usize, n: usize) -> Vec<f64> {
    let rows = x.len() / k;
    let mut out = vec![0.0; rows * n];
    for (o, xr) in out.chunks_exact_mut(n).zip(x.chunks_exact(k)) {
        for (&xv, wr) in xr.iter().zip(w.chunks_exact(n)) {
            for (ov, &wv) in o.iter_mut().zip(wr) {
                *ov += xv * wv;
            }
        }
    }
    out
}

fn norm_rows(x: &[f64], d: usize, gamma: &[f32]) -> Vec<f64> {
    x.chunks_exact(d)
        .flat_map(|r| rmsnorm::reference(r, gamma))
        .collect()
}

/// swiglu(a · W_gate|up) · W_down for rows of width `d`, hidden width `f`.
fn swiglu_block(a: &[f64], gate_up: &[f64], down: &[f64], (d, f): (usize, usize)) -> Vec<f64> {
    let gu = matmul(a, gate_up, d, 2 * f);
    let m: Vec<f64> = gu
        .chunks_exact(2 * f)
        .flat_map(|r| (0..f).map(move |c| swiglu::reference(r[c], r[f + c])))
        .collect();
    matmul(&m, down, f, d)
}

/// A mixture-of-experts block over rows `a`: each row's top-k experts by router logit, their
/// outputs weighted by the softmax over the k, plus the shared experts. Only the experts some
/// row chose are generated. Also returns how many experts some row chose.
fn moe_block(model: &SyntheticModel, l: usize, a: &[f64]) -> (Vec<f64>, u32) {
    let s = model.shape;
    let (d, e, fe) = (
        s.d_model as usize,
        s.n_experts as usize,
        s.d_ff_expert as usize,
    );
    let logits = matmul(a, &model.matrix(l, Matrix::Router).dense_f64(), d, e);
    let choices: Vec<Vec<(usize, f64)>> = logits
        .chunks_exact(e)
        .map(|row| moe::reference_route(row, s.n_experts_active as usize))
        .collect();
    let mut out = vec![0.0; a.len()];
    for expert in 0..e {
        let rows: Vec<(usize, f64)> = choices
            .iter()
            .enumerate()
            .filter_map(|(t, c)| c.iter().find(|x| x.0 == expert).map(|x| (t, x.1)))
            .collect();
        if rows.is_empty() {
            continue;
        }
        let input: Vec<f64> = rows
            .iter()
            .flat_map(|&(t, _)| a[t * d..(t + 1) * d].to_vec())
            .collect();
        let y = swiglu_block(
            &input,
            &model
                .matrix(l, Matrix::ExpertGateUp(expert as u32))
                .dense_f64(),
            &model
                .matrix(l, Matrix::ExpertDown(expert as u32))
                .dense_f64(),
            (d, fe),
        );
        for (&(t, gate), yr) in rows.iter().zip(y.chunks_exact(d)) {
            for (o, v) in out[t * d..(t + 1) * d].iter_mut().zip(yr) {
                *o += gate * v;
            }
        }
    }
    if s.n_shared_experts > 0 {
        let shared = swiglu_block(
            a,
            &model.matrix(l, Matrix::SharedGateUp).dense_f64(),
            &model.matrix(l, Matrix::SharedDown).dense_f64(),
            (d, (s.n_shared_experts * s.d_ff_expert) as usize),
        );
        for (o, v) in out.iter_mut().zip(shared) {
            *o += v;
        }
    }
    (out, moe::touched(&choices) as u32)
}

/// Where a pass's rows sit: t rows, b sequences of per_seq rows each, caches of cache_len
/// positions whose first `filled` hold synthetic history (decode).
struct Rows {
    t: usize,
    b: usize,
    per_seq: usize,
    cache_len: usize,
    filled: usize,
}

impl Rows {
    fn of(pass: Pass) -> Self {
        let t = pass.rows();
        Self {
            t,
            b: pass.batch as usize,
            per_seq: t / pass.batch as usize,
            cache_len: pass.cache_len() as usize,
            filled: match pass.phase {
                Phase::Prefill => 0,
                Phase::Decode => pass.len as usize,
            },
        }
    }
}

/// h += grouped-query attention of layer `l` over `h`'s rows (normalised), with the cache's
/// synthetic history.
fn gqa_attention(model: &SyntheticModel, l: usize, h: &mut [f64], pass: Pass, window: u32) {
    let s = model.shape;
    let d = s.d_model as usize;
    let (hd, nh, nkv) = (
        s.head_dim as usize,
        s.n_heads as usize,
        s.n_kv_heads as usize,
    );
    let (q_dim, kv_dim, qkv_dim) = (s.q_dim(), s.kv_dim(), s.qkv_dim());
    let Rows {
        t,
        b,
        per_seq,
        cache_len,
        filled,
    } = Rows::of(pass);
    let sinks = (s.attention_sinks > 0).then(|| model.sinks(l));
    let cache_dims = [b, nkv, cache_len, hd];
    // The cache holds every key and value as its format stores them: the history as encoded
    // on the host, each new row as the cache-write kernel rounds or quantizes it (an f32 cache
    // keeps the reference's f64 rows: the kernel's own rounding is what the gate measures).
    let format = model.kv;
    let stored = |row: &[f64]| -> Vec<f64> {
        match format {
            KvDtype::F32 => row.to_vec(),
            _ => {
                let f: Vec<f32> = row.iter().map(|&x| x as f32).collect();
                format
                    .quantize_rows(&f, row.len())
                    .into_iter()
                    .map(f64::from)
                    .collect()
            }
        }
    };
    let history = |value| -> Vec<f64> {
        format
            .quantize_rows(&initial_cache(l, value, cache_dims, filled), hd)
            .into_iter()
            .map(f64::from)
            .collect()
    };
    let mut k_cache = history(false);
    let mut v_cache = history(true);
    let slot = |bi: usize, kv: usize, pos: usize| ((bi * nkv + kv) * cache_len + pos) * hd;

    let a = norm_rows(h, d, &model.norm(l, Norm::Attn));
    let mut qkv = matmul(&a, &model.matrix(l, Matrix::Qkv).dense_f64(), d, qkv_dim);
    for (ti, row) in qkv.chunks_exact_mut(qkv_dim).enumerate() {
        let (bi, pos) = (ti / per_seq, filled + ti % per_seq);
        for head in row[..q_dim + kv_dim].chunks_exact_mut(hd) {
            rope::reference_rotate(head, pos);
        }
        for kv in 0..nkv {
            let at = slot(bi, kv, pos);
            k_cache[at..at + hd]
                .copy_from_slice(&stored(&row[q_dim + kv * hd..q_dim + (kv + 1) * hd]));
            v_cache[at..at + hd].copy_from_slice(&stored(
                &row[q_dim + kv_dim + kv * hd..q_dim + kv_dim + (kv + 1) * hd],
            ));
        }
    }
    let mut attn = vec![0.0; t * q_dim];
    for (ti, out_row) in attn.chunks_exact_mut(q_dim).enumerate() {
        let (bi, pos) = (ti / per_seq, filled + ti % per_seq);
        for head in 0..nh {
            let kv = head / (nh / nkv);
            let q = &qkv[ti * qkv_dim + head * hd..ti * qkv_dim + (head + 1) * hd];
            // A windowed layer attends to the last `window` positions, its own included.
            let first = match window {
                0 => 0,
                w => (pos + 1).saturating_sub(w as usize),
            };
            let keys: Vec<&[f64]> = (first..=pos)
                .map(|j| &k_cache[slot(bi, kv, j)..slot(bi, kv, j) + hd])
                .collect();
            let values: Vec<&[f64]> = (first..=pos)
                .map(|j| &v_cache[slot(bi, kv, j)..slot(bi, kv, j) + hd])
                .collect();
            let sink = sinks.as_ref().map(|v| f64::from(v[head]));
            out_row[head * hd..(head + 1) * hd]
                .copy_from_slice(&attention::reference_with_sink(q, &keys, &values, sink));
        }
    }
    for (hv, o) in h.iter_mut().zip(matmul(
        &attn,
        &model.matrix(l, Matrix::O).dense_f64(),
        q_dim,
        d,
    )) {
        *hv += o;
    }
}

/// Multi-head latent attention of layer `l` over its normalised input rows `a`, in the
/// decompressed form (keys and values rebuilt per head from the cached latent): the value
/// heads, rows × n_heads · v_head_dim, before the output projection. The GPU decodes in the
/// absorbed form, so comparing the two checks that absorbing W_UK and W_UV changes nothing.
fn mla_attention(model: &SyntheticModel, l: usize, a: &[f64], pass: Pass, window: u32) -> Vec<f64> {
    let s = model.shape;
    let d = s.d_model as usize;
    let (nh, lat, r, nope, vd) = MlaDims::of(&s).widths();
    let row_w = lat + r;
    let Rows {
        t,
        b,
        per_seq,
        cache_len,
        filled,
    } = Rows::of(pass);
    let q_width = crate::model::mla::q_width(&s) as usize;
    let a_w = q_width + row_w;
    let a_out = matmul(a, &model.matrix(l, Matrix::MlaA).dense_f64(), d, a_w);
    let q_all: Vec<f64> = match s.q_lora_rank {
        0 => a_out
            .chunks_exact(a_w)
            .flat_map(|row| row[..q_width].to_vec())
            .collect(),
        rank => {
            let rank = rank as usize;
            let low: Vec<f64> = a_out
                .chunks_exact(a_w)
                .flat_map(|row| row[..rank].to_vec())
                .collect();
            let low = norm_rows(&low, rank, &model.norm(l, Norm::MlaQ));
            matmul(
                &low,
                &model.matrix(l, Matrix::MlaQb).dense_f64(),
                rank,
                nh * (nope + r),
            )
        }
    };
    let mut cache: Vec<f64> = initial_cache(l, false, [b, 1, cache_len, row_w], filled)
        .into_iter()
        .map(f64::from)
        .collect();
    let kv_norm = model.norm(l, Norm::MlaKv);
    for (ti, row) in a_out.chunks_exact(a_w).enumerate() {
        let (bi, pos) = (ti / per_seq, filled + ti % per_seq);
        let at = (bi * cache_len + pos) * row_w;
        cache[at..at + lat]
            .copy_from_slice(&rmsnorm::reference(&row[q_width..q_width + lat], &kv_norm));
        let mut k_rope = row[q_width + lat..a_w].to_vec();
        rope::reference_rotate(&mut k_rope, pos);
        cache[at + lat..at + row_w].copy_from_slice(&k_rope);
    }
    // [k_nope | v] per head of every cached row.
    let latents: Vec<f64> = cache
        .chunks_exact(row_w)
        .flat_map(|row| row[..lat].to_vec())
        .collect();
    let kvb_w = nh * (nope + vd);
    let kvb = matmul(
        &latents,
        &model.matrix(l, Matrix::MlaKvb).dense_f64(),
        lat,
        kvb_w,
    );
    let sinks = (s.attention_sinks > 0).then(|| model.sinks(l));
    let mut out = vec![0.0; t * nh * vd];
    for ti in 0..t {
        let (bi, pos) = (ti / per_seq, filled + ti % per_seq);
        let first = match window {
            0 => 0,
            w => (pos + 1).saturating_sub(w as usize),
        };
        for head in 0..nh {
            let q_src = &q_all[(ti * nh + head) * (nope + r)..][..nope + r];
            let mut q = q_src.to_vec();
            rope::reference_rotate(&mut q[nope..], pos);
            let keys: Vec<Vec<f64>> = (first..=pos)
                .map(|j| {
                    let row = bi * cache_len + j;
                    let mut k = kvb[row * kvb_w + head * (nope + vd)..][..nope].to_vec();
                    k.extend_from_slice(&cache[row * row_w + lat..(row + 1) * row_w]);
                    k
                })
                .collect();
            let values: Vec<&[f64]> = (first..=pos)
                .map(|j| &kvb[(bi * cache_len + j) * kvb_w + head * (nope + vd) + nope..][..vd])
                .collect();
            let keys: Vec<&[f64]> = keys.iter().map(Vec::as_slice).collect();
            let sink = sinks.as_ref().map(|v| f64::from(v[head]));
            out[(ti * nh + head) * vd..][..vd]
                .copy_from_slice(&attention::reference_with_sink(&q, &keys, &values, sink));
        }
    }
    out
}

/// Runs `pass` through the first `layers` layers of `model`.
pub fn forward(model: &SyntheticModel, layers: u32, pass: Pass) -> Reference {
    forward_step(model, layers, pass, 0)
}

/// [`forward`] of decode step `step`, whose inputs are [`step_input_states`].
pub fn forward_step(model: &SyntheticModel, layers: u32, pass: Pass, step: usize) -> Reference {
    let s = model.shape;
    let (d, f, v) = (s.d_model as usize, s.d_ff as usize, s.vocab as usize);
    let t = pass.rows();
    let b = pass.batch as usize;
    let per_seq = t / b;
    let mut h: Vec<f64> = step_input_states(t, d, step)
        .into_iter()
        .map(f64::from)
        .collect();
    let mut experts_touched = Vec::new();
    for l in 0..layers as usize {
        let kind = s.layer_kind(l as u32, layers);
        if s.is_mla() {
            let a = norm_rows(&h, d, &model.norm(l, Norm::Attn));
            let attn = mla_attention(model, l, &a, pass, kind.window);
            let wo = model.matrix(l, Matrix::O).dense_f64();
            let vd = (s.n_heads * s.v_head_dim) as usize;
            for (hv, o) in h.iter_mut().zip(matmul(&attn, &wo, vd, d)) {
                *hv += o;
            }
        } else {
            gqa_attention(model, l, &mut h, pass, kind.window);
        }
        let a = norm_rows(&h, d, &model.norm(l, Norm::Ffn));
        let out = if kind.moe {
            let (out, touched) = moe_block(model, l, &a);
            experts_touched.push(touched);
            out
        } else {
            swiglu_block(
                &a,
                &model.matrix(l, Matrix::GateUp).dense_f64(),
                &model.matrix(l, Matrix::Down).dense_f64(),
                (d, f),
            )
        };
        for (hv, o) in h.iter_mut().zip(out) {
            *hv += o;
        }
    }
    let last: Vec<f64> = (0..b)
        .flat_map(|bi| h[((bi + 1) * per_seq - 1) * d..(bi + 1) * per_seq * d].to_vec())
        .collect();
    let final_rows = norm_rows(&last, d, &model.norm(0, Norm::Final));
    let logits = matmul(
        &final_rows,
        &model.matrix(0, Matrix::LmHead).dense_f64(),
        d,
        v,
    );
    Reference {
        hidden: h,
        logits,
        experts_touched,
    }
}

/// Logits of columns `cols` for `rows` (each d_model wide, as the GPU normalised them) through
/// the LM head, in f64: a spot check of the full-size run. Only the needed weight columns are
/// generated.
pub fn lm_head_columns(model: &SyntheticModel, rows: &[Vec<f32>], cols: &[usize]) -> Vec<f64> {
    let w = model.matrix(0, Matrix::LmHead);
    let column: Vec<Vec<f64>> = cols
        .iter()
        .map(|&c| w.column(c).into_iter().map(f64::from).collect())
        .collect();
    rows.iter()
        .flat_map(|row| {
            column
                .iter()
                .map(move |col| row.iter().zip(col).map(|(&x, &wv)| f64::from(x) * wv).sum())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::WeightDtype;
    use crate::model::presets::find;

    #[test]
    fn reference_outputs_are_finite_and_deterministic() {
        let model = SyntheticModel {
            shape: find("tiny").unwrap().shape,
            dtype: WeightDtype::F32,
            expert_dtype: WeightDtype::F32,
            kv: KvDtype::F32,
            shared_layers: false,
        };
        let pass = Pass::prefill(2, 5);
        let a = forward(&model, 2, pass);
        assert_eq!(a.hidden.len(), 10 * 96);
        assert_eq!(a.logits.len(), 2 * 509);
        assert!(a.hidden.iter().chain(&a.logits).all(|x| x.is_finite()));
        assert_eq!(forward(&model, 2, pass).logits, a.logits);
        // Decode reads synthetic history, so it differs from a fresh prompt of one token.
        let decode = forward(&model, 2, Pass::decode(2, 3));
        let fresh = forward(&model, 2, Pass::prefill(2, 1));
        assert_ne!(decode.logits, fresh.logits);
    }
}
