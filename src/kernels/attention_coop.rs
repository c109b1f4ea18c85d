//! `shaders/attention_prefill_coop.wgsl`: causal prefill attention with q·kᵀ and p·V on
//! cooperative matrices (FlashAttention-2 layout), for runs whose products use the
//! cooperative-matrix tier. Same inputs, outputs and cache layout as
//! [`super::attention::PrefillAttention`], sliding windows and sinks included.

#[cfg(test)]
use super::KvDtype;
use super::attention::{Heads, prefill_params};
use super::matmul_coop::CoopSupport;
use super::{ATTENTION_PREFILL_COOP8, ATTENTION_PREFILL_COOP16, WeightDtype};
use crate::gpu::{Dispatch, GpuContext};
use tokbench_core::kernel_config::ProductTiles;

/// Elements of each head_dim-wide workgroup tile (the shader's arrays).
const TILE_ELEMENTS: u32 = 2048;

/// Causal attention of whole prompts on cooperative matrices.
pub struct PrefillAttentionCoop {
    pipeline: wgpu::ComputePipeline,
    heads: Heads,
    size: u32,
    /// Bound where the shader declares its sink logits, when the heads have none.
    no_sinks: wgpu::Buffer,
}

/// The matrix size the cooperative attention uses for `heads` on an adapter with `support`,
/// or why it cannot run (then prefill attention stays SIMT).
pub fn size_for(support: &CoopSupport, heads: &Heads) -> Result<u32, String> {
    support
        .sizes
        .iter()
        .copied()
        .find(|&d| {
            heads.head_dim.is_multiple_of(d)
                && heads.head_dim * d <= TILE_ELEMENTS
                && support.sg >= d
        })
        .ok_or_else(|| {
            format!(
                "head_dim {} is not a multiple of a listed matrix size {:?} with head_dim × size \
                 at most {TILE_ELEMENTS}",
                heads.head_dim, support.sizes
            )
        })
}

/// Whether a run whose product tiles are `tiles` runs its prefill attention on cooperative
/// matrices here: the support and matrix size when it does, else why not.
pub fn for_tiles(
    ctx: &GpuContext,
    tiles: ProductTiles,
    heads: &Heads,
) -> Result<(CoopSupport, u32), String> {
    if !matches!(tiles, ProductTiles::Coop { .. }) {
        return Err("the products run on SIMT".into());
    }
    let support = super::matmul_coop::support(ctx)?;
    let size = size_for(&support, heads)?;
    Ok((support, size))
}

impl PrefillAttentionCoop {
    /// Builds the pipeline for these heads with `size` × `size` matrices (from [`size_for`]).
    pub fn new(
        ctx: &GpuContext,
        heads: Heads,
        support: &CoopSupport,
        size: u32,
    ) -> anyhow::Result<Self> {
        heads.check()?;
        anyhow::ensure!(
            size_for(support, &heads).is_ok_and(|_| heads.head_dim.is_multiple_of(size)),
            "cooperative attention of size {size} cannot run heads {heads:?}"
        );
        let shader = match size {
            8 => &ATTENTION_PREFILL_COOP8,
            16 => &ATTENTION_PREFILL_COOP16,
            _ => anyhow::bail!("cooperative matrix size {size}: only 8 and 16 exist"),
        };
        let constants = [
            ("SG", f64::from(support.sg)),
            ("HD", f64::from(heads.head_dim)),
            ("SINKS", f64::from(u8::from(heads.sinks))),
        ];
        let pipeline = ctx.pipeline_kv(
            shader,
            (WeightDtype::F16, heads.kv),
            "attention_prefill_coop",
            &constants,
        )?;
        Ok(Self {
            pipeline,
            heads,
            size,
            no_sinks: ctx.storage_zeroed("no-sinks", 16)?,
        })
    }

    /// Attention for `batch` prompts of `seq_len` tokens, as
    /// [`super::attention::PrefillAttention::dispatch`] (sinks included).
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch(
        &self,
        ctx: &GpuContext,
        (batch, seq_len): (u32, u32),
        qkv: &wgpu::Buffer,
        k_cache: &wgpu::Buffer,
        v_cache: &wgpu::Buffer,
        sinks: Option<&wgpu::Buffer>,
        out: &wgpu::Buffer,
    ) -> anyhow::Result<Dispatch> {
        self.heads.check_sinks(sinks)?;
        let params = prefill_params(&self.heads, (batch, seq_len), qkv, k_cache, v_cache, out)?;
        let sinks = sinks.unwrap_or(&self.no_sinks);
        ctx.dispatch(
            &self.pipeline,
            &params,
            &[(1, qkv), (2, k_cache), (3, v_cache), (4, out), (6, sinks)],
            [seq_len.div_ceil(self.size), self.heads.n_heads, batch],
        )
    }
}

#[cfg(test)]
mod gpu_tests {
    use super::*;
    use crate::gpu::test_context;
    use crate::kernels::attention::reference_from_cache;
    use crate::kernels::layout::random_values;
    use crate::kernels::matmul_coop::support_or_skip;
    use crate::kernels::verify::{NMSE_F16, compare};

    #[test]
    fn coop_prefill_attention_matches_reference_for_odd_lengths_and_grouped_heads() {
        let Some(support) = support_or_skip("coop_prefill_attention") else {
            return;
        };
        let ctx = test_context();
        let f16 = WeightDtype::F16;
        let windowed = |h: Heads, window, sinks| Heads { window, sinks, ..h };
        let cases = [
            (1, 1, Heads::causal(2, 1, 16, 1)),
            (2, 13, Heads::causal(4, 2, 24, 16)),
            (1, 70, Heads::causal(6, 2, 64, 70)),
            (3, 9, Heads::causal(2, 2, 128, 9)),
            // Sliding windows that divide no block (5, 37), equal to and longer than the
            // prompt, sinks on and off, four query heads per KV head.
            (1, 70, windowed(Heads::causal(8, 2, 64, 70), 5, true)),
            (2, 40, windowed(Heads::causal(8, 2, 16, 40), 37, false)),
            (2, 13, windowed(Heads::causal(4, 1, 24, 16), 13, true)),
            (1, 21, windowed(Heads::causal(4, 1, 32, 21), 64, true)),
            (2, 19, windowed(Heads::causal(8, 2, 16, 19), 0, true)),
        ];
        // Every KV format: f16 and q8_0 caches unpack to f32, then round to f16 tiles as f32's
        // do (head widths 16, 24, 64: no multiple of 32, or two whole q8_0 blocks).
        let with_kv = |kv| cases.map(|(b, s, h)| (b, s, Heads { kv, ..h }));
        for (batch, seq_len, h) in KvDtype::ALL.into_iter().flat_map(with_kv) {
            let Ok(size) = size_for(&support, &h) else {
                continue;
            };
            let tokens = (batch * seq_len) as usize;
            let hd = h.head_dim as usize;
            let stride = (h.n_heads + 2 * h.n_kv_heads) as usize * hd;
            let cache = (batch * h.n_kv_heads * h.cache_len) as usize * hd;
            // Inputs as f16 sees them: the reference then measures the kernel, not the rounding.
            let round = |v: Vec<f32>| f16.quantize_rows(&v, 1);
            let qkv = round(random_values(tokens * stride, 71, 1.0));
            // The caches hold these in the heads' KV format.
            let k =
                h.kv.quantize_rows(&round(random_values(cache, 72, 1.0)), hd);
            let v =
                h.kv.quantize_rows(&round(random_values(cache, 73, 1.0)), hd);
            // Sinks weighing as much as a few keys (see RandomInputs).
            let sinks = random_values(h.n_heads as usize, 74, 3.0);
            let sinks_b = ctx
                .storage_with("sinks", bytemuck::cast_slice(&sinks))
                .unwrap();
            let (qkv_b, k_b, v_b) = (
                ctx.storage_with("qkv", bytemuck::cast_slice(&qkv)).unwrap(),
                ctx.storage_with("k", &h.kv.encode_rows(&k, hd)).unwrap(),
                ctx.storage_with("v", &h.kv.encode_rows(&v, hd)).unwrap(),
            );
            let out_b = ctx
                .storage_zeroed("out", (tokens * h.n_heads as usize * hd * 4) as u64)
                .unwrap();
            let kernel = PrefillAttentionCoop::new(ctx, h, &support, size).unwrap();
            let d = kernel.dispatch(
                ctx,
                (batch, seq_len),
                &qkv_b,
                &k_b,
                &v_b,
                h.sinks.then_some(&sinks_b),
                &out_b,
            );
            ctx.execute(&d.unwrap()).unwrap();
            let got = ctx
                .read_f32(&out_b, tokens * h.n_heads as usize * hd)
                .unwrap();
            let (qkv, k, v) = (&qkv, &k, &v);
            let sinks = h.sinks.then_some(sinks.as_slice());
            let want: Vec<f64> = (0..tokens)
                .flat_map(|t| {
                    let (b, i) = (t / seq_len as usize, t % seq_len as usize);
                    (0..h.n_heads as usize).flat_map(move |head| {
                        reference_from_cache(&h, qkv, t, b, head, i + 1, k, v, sinks)
                    })
                })
                .collect();
            let c = compare(&got, &want, NMSE_F16, "coop prefill attention".into());
            assert!(
                c.failure.is_none(),
                "{h:?} size {size} batch {batch} seq {seq_len}: {c:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coop_attention_size_follows_head_dim_and_the_listed_sizes() {
        let both = CoopSupport {
            sizes: vec![16, 8],
            sg: 32,
        };
        let h = |head_dim| Heads::causal(2, 1, head_dim, 4);
        assert_eq!(size_for(&both, &h(128)), Ok(16));
        assert_eq!(size_for(&both, &h(24)), Ok(8));
        assert_eq!(size_for(&both, &h(256)), Ok(8));
        assert!(size_for(&both, &h(12)).unwrap_err().contains("head_dim 12"));
        let small_sg = CoopSupport {
            sizes: vec![8],
            sg: 4,
        };
        assert!(size_for(&small_sg, &h(64)).is_err());
    }

    /// Windowed heads and heads with sinks take the same matrix size as full attention.
    #[test]
    fn coop_attention_takes_windows_and_sinks() {
        let both = CoopSupport {
            sizes: vec![16, 8],
            sg: 32,
        };
        let full = Heads::causal(8, 2, 64, 256);
        for h in [
            full,
            Heads {
                window: 128,
                sinks: true,
                ..full
            },
        ] {
            assert_eq!(size_for(&both, &h), Ok(16), "{h:?}");
        }
    }
}
