//! `shaders/attention_prefill.wgsl` and `shaders/attention_decode.wgsl`: causal grouped-query
//! attention over the KV cache, optionally over a sliding window of keys and with a learned
//! sink logit per query head (gpt-oss).

pub use tokbench_core::kernel_config::{AttentionTiles, DecodeAttentionLayout};

use super::layout::random_values;
use super::verify::{NMSE_F32, compare};
use super::{ATTENTION_DECODE, ATTENTION_DECODE_SUBGROUP, ATTENTION_PREFILL, KvDtype, WeightDtype};
use crate::gpu::{Dispatch, GpuContext};
use crate::result::Correctness;

/// Heads and caches of one layer.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    /// Query heads.
    pub n_heads: u32,
    /// Key/value heads (divides `n_heads`).
    pub n_kv_heads: u32,
    /// Width of a head: a multiple of 4, at most 256.
    pub head_dim: u32,
    /// Positions each cache holds per sequence and head.
    pub cache_len: u32,
    /// Sliding window: 0 for full causal attention; otherwise the query at position p attends
    /// to the keys at positions p + 1 - window ..= p only (at most `window` keys, its own
    /// included).
    pub window: u32,
    /// Attention sinks: each query head has a learned logit that joins the softmax denominator
    /// and contributes no value. The kernels then take a buffer of `n_heads` f32 sink logits (in
    /// the units of the scaled scores q·k/√head_dim) at dispatch.
    pub sinks: bool,
    /// Scores are q·k/√score_dim; 0: head_dim. Multi-head latent attention's heads are wider
    /// in the kernel than in the model (the latent row, or keys padded to the value width) and
    /// keep the model's scale.
    pub score_dim: u32,
    /// Storage format of the K and V caches the kernels read.
    pub kv: KvDtype,
}

impl Heads {
    /// Full causal attention of `n_heads` query heads over `n_kv_heads` KV heads of
    /// `head_dim`, caches of `cache_len` positions in f32: no window, no sinks, scores scaled
    /// by the head width.
    pub const fn causal(n_heads: u32, n_kv_heads: u32, head_dim: u32, cache_len: u32) -> Self {
        Self {
            n_heads,
            n_kv_heads,
            head_dim,
            cache_len,
            window: 0,
            sinks: false,
            score_dim: 0,
            kv: KvDtype::F32,
        }
    }

    pub(crate) fn hd4(&self) -> u32 {
        self.head_dim / 4
    }

    pub(crate) fn qkv_stride4(&self) -> u32 {
        (self.n_heads + 2 * self.n_kv_heads) * self.hd4()
    }

    /// Bytes of a K (or V) cache of `sequences` sequences in [`Self::kv`]'s layout.
    pub fn cache_bytes(&self, sequences: u32) -> u64 {
        let rows = u64::from(sequences) * u64::from(self.n_kv_heads) * u64::from(self.cache_len);
        self.kv.buffer_bytes(rows, self.head_dim as usize)
    }

    /// The first of keys 0..n_keys that the query at position n_keys - 1 attends to.
    pub fn window_start(&self, n_keys: u32) -> u32 {
        if self.window == 0 {
            0
        } else {
            n_keys.saturating_sub(self.window)
        }
    }

    /// How many of keys 0..n_keys the query at position n_keys - 1 attends to.
    pub fn attended(&self, n_keys: u32) -> u32 {
        n_keys - self.window_start(n_keys)
    }

    /// Checks that `sinks` is given exactly when these heads have sinks, and holds a logit per
    /// query head.
    pub(crate) fn check_sinks(&self, sinks: Option<&wgpu::Buffer>) -> anyhow::Result<()> {
        match sinks {
            Some(b) => anyhow::ensure!(
                self.sinks && b.size() >= u64::from(self.n_heads) * 4,
                "attention sinks: heads {self:?} take no sinks, or the buffer of {} bytes is \
                 smaller than {} logits",
                b.size(),
                self.n_heads
            ),
            None => anyhow::ensure!(
                !self.sinks,
                "attention heads {self:?} have sinks: dispatch them with their sink logits"
            ),
        }
        Ok(())
    }

    pub(crate) fn scale(&self) -> f32 {
        let dim = if self.score_dim == 0 {
            self.head_dim
        } else {
            self.score_dim
        };
        (1.0 / f64::from(dim).sqrt()) as f32
    }

    pub(crate) fn check(&self) -> anyhow::Result<()> {
        self.check_up_to(256)
    }

    /// Widest head the decode kernel's `workgroup` layout takes, whose lanes split the head
    /// (MLA's absorbed form attends over DeepSeek-V3's 576-wide latent rows).
    pub const MAX_WIDE_HEAD_DIM: u32 = 1024;

    /// [`Self::check`] with heads up to `max_head_dim` wide.
    pub(crate) fn check_up_to(&self, max_head_dim: u32) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.head_dim.is_multiple_of(4)
                && self.head_dim <= max_head_dim
                && self.n_kv_heads > 0
                && self.n_heads.is_multiple_of(self.n_kv_heads),
            "attention heads {self:?} unsupported"
        );
        Ok(())
    }
}

/// Uniforms of both prefill attention shaders.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct PrefillParams {
    tokens: u32,
    seq_len: u32,
    n_heads: u32,
    n_kv_heads: u32,
    qkv_stride4: u32,
    cache_len: u32,
    scale: f32,
    window: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct DecodeParams {
    n_heads: u32,
    n_kv_heads: u32,
    q_stride4: u32,
    cache_len: u32,
    kv_len: u32,
    split_len: u32,
    n_splits: u32,
    batch: u32,
    scale: f32,
    row_base: u32,
    window: u32,
    _pad: u32,
}

/// Query heads one workgroup of decode's `workgroup` layout takes at most (`MAX_G` in the
/// shader).
const DECODE_MAX_HEADS: u32 = 8;
/// vec4 accumulators per invocation in decode's `workgroup` layout (`MAX_ACC`): heads × vec4s
/// of the head per lane.
const DECODE_MAX_ACC: u32 = 16;
/// vec4s of the head each lane owns in the FlashAttention-2 prefill layout (`MAX_NV`).
const PREFILL_MAX_NV: u32 = 4;
/// Keys each lane scores per K tile in the FlashAttention-2 prefill layout (`MAX_KT`).
const PREFILL_MAX_KT: u32 = 8;

/// Workgroups decode attention's `workgroup` layout aims to launch (splits × KV heads ×
/// sequences), when the depth allows splits of at least the configured length. wgpu does not
/// tell how many SMs or CUs a device has, so this is a figure that covers the largest of them
/// several times over (132 SMs on an H100/H200, 304 CUs on an MI300X): enough resident
/// workgroups per core to keep memory busy, few enough that the partials stay small beside the
/// cache they summarise.
pub const DECODE_TARGET_WORKGROUPS: u32 = 1024;

/// The uniforms of a prefill attention launch for `batch` prompts of `seq_len` tokens, after
/// checking every buffer is large enough (the shaders may run without bounds checks).
pub(crate) fn prefill_params(
    h: &Heads,
    (batch, seq_len): (u32, u32),
    qkv: &wgpu::Buffer,
    k_cache: &wgpu::Buffer,
    v_cache: &wgpu::Buffer,
    out: &wgpu::Buffer,
) -> anyhow::Result<PrefillParams> {
    let tokens = batch * seq_len;
    let cache_bytes = h.cache_bytes(batch);
    anyhow::ensure!(
        seq_len <= h.cache_len
            && qkv.size() >= u64::from(tokens) * u64::from(h.qkv_stride4()) * 16
            && k_cache.size() >= cache_bytes
            && v_cache.size() >= cache_bytes
            && out.size() >= u64::from(tokens) * u64::from(h.n_heads * h.head_dim) * 4,
        "prefill attention buffers too small"
    );
    Ok(PrefillParams {
        tokens,
        seq_len,
        n_heads: h.n_heads,
        n_kv_heads: h.n_kv_heads,
        qkv_stride4: h.qkv_stride4(),
        cache_len: h.cache_len,
        scale: h.scale(),
        window: h.window,
    })
}

/// The FlashAttention-2 prefill layout as built: tiles that fit the adapter, and the vec4s of
/// the head each lane owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashTiles {
    /// Query rows per tile.
    pub br: u32,
    /// Keys per K/V tile.
    pub bc: u32,
    /// vec4s of the head each of a row's `wg / br` lanes owns.
    pub nv: u32,
    /// Keys of a K tile each lane scores: ceil(bc / (wg / br)).
    pub kt: u32,
}

impl FlashTiles {
    /// Workgroup memory of these tiles for heads of `hd4` vec4s: q, K and V tiles, the scores
    /// and the sequence loop's six words (three atomics, the sequence and the key range).
    pub fn workgroup_bytes(&self, hd4: u32) -> u32 {
        (self.br + 2 * self.bc) * hd4 * 16 + self.br * self.bc * 4 + 24
    }

    /// The tiles `wanted` asks for, made to fit: fewer query rows while a row's lanes would own
    /// more than `PREFILL_MAX_NV` vec4s each, fewer keys while they would score more than
    /// `PREFILL_MAX_KT` each (registers), then smaller tiles while they exceed the adapter's
    /// `max_storage` bytes of workgroup memory.
    pub fn fit(
        heads: &Heads,
        wg: u32,
        wanted: AttentionTiles,
        max_storage: u32,
    ) -> anyhow::Result<Self> {
        let hd4 = heads.hd4();
        anyhow::ensure!(
            wanted.br >= 1 && wanted.bc >= 1 && wg.is_multiple_of(wanted.br.min(wg)),
            "prefill attention tiles {wanted:?} must divide the workgroup size {wg}"
        );
        let mut tiles = Self {
            br: wanted.br.min(wg),
            bc: wanted.bc,
            nv: 0,
            kt: 0,
        };
        let nv = |t: &Self| hd4.div_ceil(wg / t.br);
        let kt = |t: &Self| t.bc.div_ceil(wg / t.br);
        while nv(&tiles) > PREFILL_MAX_NV && tiles.br.is_multiple_of(2) {
            tiles.br /= 2;
        }
        while kt(&tiles) > PREFILL_MAX_KT && tiles.bc > 1 {
            tiles.bc = tiles.bc.div_ceil(2);
        }
        while tiles.workgroup_bytes(hd4) > max_storage && (tiles.bc > 4 || tiles.br > 1) {
            if tiles.bc > 4 && (tiles.bc >= tiles.br || !tiles.br.is_multiple_of(2)) {
                tiles.bc /= 2;
            } else if tiles.br.is_multiple_of(2) {
                tiles.br /= 2;
            } else {
                break;
            }
        }
        tiles.nv = nv(&tiles);
        tiles.kt = kt(&tiles);
        anyhow::ensure!(
            tiles.nv <= PREFILL_MAX_NV
                && tiles.kt <= PREFILL_MAX_KT
                && tiles.workgroup_bytes(hd4) <= max_storage,
            "prefill attention tiles {wanted:?} with {wg} invocations cannot hold heads of {} \
             in {max_storage} bytes of workgroup memory",
            heads.head_dim
        );
        Ok(tiles)
    }
}

/// The prefill-attention pipeline at the whole-prompt (`rows` false) or the per-row entry point
/// of `attention_prefill.wgsl`, in the FlashAttention-2 layout when `tiles` is given (the
/// entries of each layout share their body).
fn prefill_pipeline(
    ctx: &GpuContext,
    heads: Heads,
    wg: u32,
    tiles: Option<AttentionTiles>,
    rows: bool,
) -> anyhow::Result<(wgpu::ComputePipeline, Option<FlashTiles>)> {
    heads.check()?;
    let mut constants = vec![
        ("WG", f64::from(wg)),
        ("HD4", f64::from(heads.hd4())),
        ("SINKS", f64::from(u8::from(heads.sinks))),
    ];
    let fitted = match tiles {
        Some(t) => {
            let f = FlashTiles::fit(&heads, wg, t, ctx.limits.max_compute_workgroup_storage_size)?;
            constants.extend([
                ("BR", f64::from(f.br)),
                ("BC", f64::from(f.bc)),
                ("NV", f64::from(f.nv)),
                ("KT", f64::from(f.kt)),
            ]);
            Some(f)
        }
        None => None,
    };
    let entry = match (fitted.is_some(), rows) {
        (false, false) => "attention_prefill",
        (false, true) => "attention_prefill_rows",
        (true, false) => "attention_tiles",
        (true, true) => "attention_tiles_rows",
    };
    let pipeline = ctx.pipeline_kv(
        &ATTENTION_PREFILL,
        (WeightDtype::F32, heads.kv),
        entry,
        &constants,
    )?;
    Ok((pipeline, fitted))
}

/// A 16-byte storage buffer bound where a kernel built without sinks declares its sink logits
/// (the binding exists in every pipeline of the shader; the shader never reads it then).
fn no_sinks(ctx: &GpuContext) -> anyhow::Result<wgpu::Buffer> {
    ctx.storage_zeroed("no-sinks", 16)
}

/// Causal attention of a whole prompt (prefill).
pub struct PrefillAttention {
    pipeline: wgpu::ComputePipeline,
    heads: Heads,
    wg: u32,
    tiles: Option<FlashTiles>,
    no_sinks: wgpu::Buffer,
}

impl PrefillAttention {
    /// Builds the pipeline for these heads: `wg` invocations per query-row group, in the
    /// FlashAttention-2 layout when `tiles` is given (shrunk to fit the adapter), else one
    /// invocation per query row.
    pub fn new(
        ctx: &GpuContext,
        heads: Heads,
        wg: u32,
        tiles: Option<AttentionTiles>,
    ) -> anyhow::Result<Self> {
        Self::build(ctx, heads, (wg, tiles), false)
    }

    /// [`PrefillAttention::new`], of the entry points whose query rows name their sequence
    /// and position when `rows` is true.
    fn build(
        ctx: &GpuContext,
        heads: Heads,
        (wg, tiles): (u32, Option<AttentionTiles>),
        rows: bool,
    ) -> anyhow::Result<Self> {
        let (pipeline, tiles) = prefill_pipeline(ctx, heads, wg, tiles, rows)?;
        Ok(Self {
            pipeline,
            heads,
            wg,
            tiles,
            no_sinks: no_sinks(ctx)?,
        })
    }

    /// The tiles the FlashAttention-2 layout was built with; `None` for the per-row layout.
    pub fn tiles(&self) -> Option<FlashTiles> {
        self.tiles
    }

    /// Attention for `batch` prompts of `seq_len` tokens: q from `qkv`, K and V from the
    /// caches (positions 0..seq_len, each query within its window), output rows in `out`.
    /// `sinks` holds the layer's `n_heads` f32 sink logits, given exactly when the heads have
    /// sinks.
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
        let h = self.heads;
        h.check_sinks(sinks)?;
        let params = prefill_params(&h, (batch, seq_len), qkv, k_cache, v_cache, out)?;
        // Tiles never straddle two prompts: one grid row of them per prompt.
        let grid = match self.tiles {
            Some(t) => [seq_len.div_ceil(t.br), h.n_heads, batch],
            None => [params.tokens.div_ceil(self.wg), h.n_heads, 1],
        };
        let sinks = sinks.unwrap_or(&self.no_sinks);
        ctx.dispatch(
            &self.pipeline,
            &params,
            &[(1, qkv), (2, k_cache), (3, v_cache), (4, out), (6, sinks)],
            grid,
        )
    }
}

/// Prefill attention where each query row names its cache sequence and position (serving:
/// a chunk of a prompt continuing an earlier chunk, in one sequence of a shared cache): the
/// same kernel state as [`PrefillAttention`], with the pipeline of the rows entry points.
pub struct PrefillAttentionRows(PrefillAttention);

impl PrefillAttentionRows {
    /// Builds the pipeline for these heads, in the layout [`PrefillAttention::new`] describes;
    /// `heads.cache_len` is the positions each sequence of the cache holds.
    pub fn new(
        ctx: &GpuContext,
        heads: Heads,
        wg: u32,
        tiles: Option<AttentionTiles>,
    ) -> anyhow::Result<Self> {
        PrefillAttention::build(ctx, heads, (wg, tiles), true).map(Self)
    }

    /// Attention of the first `tokens` rows of `qkv`: row t attends to keys 0..=position (those
    /// in its window) of the sequence `rows[t]` = (sequence, position) names, in caches of
    /// `sequences` sequences. The caller keeps every position below `heads.cache_len` and every
    /// sequence below `sequences` (the shader runs without bounds checks). `sinks` holds the
    /// layer's `n_heads` f32 sink logits, given exactly when the heads have sinks.
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch(
        &self,
        ctx: &GpuContext,
        (tokens, sequences): (u32, u32),
        qkv: &wgpu::Buffer,
        rows: &wgpu::Buffer,
        k_cache: &wgpu::Buffer,
        v_cache: &wgpu::Buffer,
        sinks: Option<&wgpu::Buffer>,
        out: &wgpu::Buffer,
    ) -> anyhow::Result<Dispatch> {
        let h = self.0.heads;
        h.check_sinks(sinks)?;
        // One "prompt" per sequence of the cache for the size checks; seq_len is unused.
        let mut params = prefill_params(&h, (sequences, 1), qkv, k_cache, v_cache, out)?;
        anyhow::ensure!(
            rows.size() >= u64::from(tokens) * 8
                && qkv.size() >= u64::from(tokens) * u64::from(h.qkv_stride4()) * 16
                && out.size() >= u64::from(tokens) * u64::from(h.n_heads * h.head_dim) * 4,
            "prefill attention rows: buffers too small for {tokens} rows"
        );
        params.tokens = tokens;
        let rows_per_group = self.0.tiles.map_or(self.0.wg, |t| t.br);
        let sinks = sinks.unwrap_or(&self.0.no_sinks);
        ctx.dispatch(
            &self.0.pipeline,
            &params,
            &[
                (1, qkv),
                (2, k_cache),
                (3, v_cache),
                (4, out),
                (5, rows),
                (6, sinks),
            ],
            [tokens.div_ceil(rows_per_group), h.n_heads, 1],
        )
    }
}

/// How decode's `workgroup` layout spreads a KV head's group over a workgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeadGroups {
    /// Lanes per key group (`R`; the smallest subgroup size in the `subgroup` layout):
    /// min(head_dim / 4, that).
    lanes: u32,
    /// vec4s of the head each lane owns at most (`NV`).
    nv: u32,
    /// Query heads per workgroup (`GW`).
    heads: u32,
    /// Workgroups per KV head (its group of query heads in chunks of `heads`).
    chunks: u32,
    /// The most subgroups a workgroup holds (`NSG`; 1 in the `workgroup` layout).
    subgroups: u32,
}

impl HeadGroups {
    /// The `workgroup` layout's groups with `wg` invocations (`lanes` = min(head_dim / 4, wg)),
    /// or the `subgroup` layout's on an adapter whose subgroups are `sizes` (`lanes` = the
    /// smallest size, which bounds what a lane owns).
    fn new(
        h: &Heads,
        wg: u32,
        sizes: Option<crate::kernels::SubgroupSizes>,
        max_storage: u32,
    ) -> anyhow::Result<Self> {
        let hd4 = h.hd4();
        let lanes = hd4.min(sizes.map_or(wg, |s| s.min)).max(1);
        let nv = lane_share(hd4, lanes);
        anyhow::ensure!(
            wg >= 1 && nv <= DECODE_MAX_ACC,
            "decode attention: {lanes} lanes cannot span heads of {}",
            h.head_dim
        );
        if let Some(sizes) = sizes {
            // Whole subgroups only: a partial one would own more of the head than NV holds.
            anyhow::ensure!(
                wg.is_multiple_of(sizes.max),
                "decode attention's subgroup layout needs a workgroup size that is a multiple \
                 of the largest subgroup size, {}; got {wg}",
                sizes.max
            );
        }
        let group = h.n_heads / h.n_kv_heads;
        let heads = group.min(DECODE_MAX_HEADS).min(DECODE_MAX_ACC / nv);
        let groups = Self {
            lanes,
            nv,
            heads,
            chunks: group.div_ceil(heads),
            subgroups: sizes.map_or(1, |s| wg / s.min),
        };
        // q (later the merge buffer), the scores (workgroup layout only), (m, l) per head and
        // the key count.
        let scores = if sizes.is_some() { 0 } else { heads * wg * 4 };
        let bytes = heads * hd4 * 16 + scores + heads * 8 + 4;
        anyhow::ensure!(
            bytes <= max_storage,
            "decode attention with {wg} invocations needs {bytes} bytes of workgroup memory; \
             the adapter allows {max_storage}"
        );
        Ok(groups)
    }
}

/// Whether the `subgroup` decode layout holds heads of `head_dim` on an adapter whose
/// subgroups are `sizes`: a lane owns ⌈head_dim / 4 / the smallest size⌉ vec4s of each, at most
/// 16 (MLA's 576-wide latent heads need subgroups of 16 or more; the `workgroup` layout takes
/// them on smaller ones).
pub fn subgroup_layout_holds(head_dim: u32, sizes: crate::kernels::SubgroupSizes) -> bool {
    lane_share(head_dim / 4, sizes.min) <= DECODE_MAX_ACC
}

/// vec4s of a head of `hd4` vec4s that each of `lanes` lanes spanning it owns at most.
fn lane_share(hd4: u32, lanes: u32) -> u32 {
    hd4.div_ceil(hd4.min(lanes).max(1))
}

/// Attention of one new token per sequence over `kv_len` cached positions (decode), split
/// over the KV length (the last `window` positions only, with a sliding window), then reduced.
pub struct DecodeAttention {
    split: wgpu::ComputePipeline,
    reduce: wgpu::ComputePipeline,
    heads: Heads,
    wg: u32,
    split_len: u32,
    /// `None`: the `invocation` layout.
    groups: Option<HeadGroups>,
    no_sinks: wgpu::Buffer,
}

impl DecodeAttention {
    /// Builds both pipelines in `layout` with `wg` invocations per workgroup: splits of
    /// `split_len` keys (`invocation`) or of at least `split_len` keys (`workgroup`).
    pub fn new(
        ctx: &GpuContext,
        heads: Heads,
        layout: DecodeAttentionLayout,
        wg: u32,
        split_len: u32,
    ) -> anyhow::Result<Self> {
        Self::build(ctx, heads, layout, wg, split_len, false)
    }

    /// The same launches for serving: the split reads `rows` (see
    /// [`DecodeAttention::dispatch_rows`]).
    pub fn new_rows(
        ctx: &GpuContext,
        heads: Heads,
        layout: DecodeAttentionLayout,
        wg: u32,
        split_len: u32,
    ) -> anyhow::Result<Self> {
        Self::build(ctx, heads, layout, wg, split_len, true)
    }

    fn build(
        ctx: &GpuContext,
        heads: Heads,
        layout: DecodeAttentionLayout,
        wg: u32,
        split_len: u32,
        rows: bool,
    ) -> anyhow::Result<Self> {
        // The invocation layout holds a head in registers (256 floats at most); the workgroup
        // layout spreads it over its lanes.
        match layout {
            DecodeAttentionLayout::Invocation => heads.check()?,
            DecodeAttentionLayout::Workgroup | DecodeAttentionLayout::Subgroup => {
                heads.check_up_to(Heads::MAX_WIDE_HEAD_DIM)?
            }
        }
        anyhow::ensure!(split_len >= 1, "split_len must be at least 1");
        let constants = [("WG", f64::from(wg)), ("HD4", f64::from(heads.hd4()))];
        let max_storage = ctx.limits.max_compute_workgroup_storage_size;
        let groups = match layout {
            DecodeAttentionLayout::Invocation => None,
            DecodeAttentionLayout::Workgroup => {
                Some(HeadGroups::new(&heads, wg, None, max_storage)?)
            }
            DecodeAttentionLayout::Subgroup => {
                let sizes = ctx.traits().subgroups.ok_or_else(|| {
                    anyhow::anyhow!(
                        "decode attention's subgroup layout needs an adapter with SUBGROUP; \
                         this one has none (use the workgroup layout)"
                    )
                })?;
                Some(HeadGroups::new(&heads, wg, Some(sizes), max_storage)?)
            }
        };
        let (groups_shader, groups_entry, rows_entry) = match layout {
            DecodeAttentionLayout::Subgroup => (
                &ATTENTION_DECODE_SUBGROUP,
                "attention_subgroups",
                "attention_subgroups_rows",
            ),
            _ => (
                &ATTENTION_DECODE,
                "attention_groups",
                "attention_groups_rows",
            ),
        };
        let formats = (WeightDtype::F32, heads.kv);
        let split = match groups {
            None => ctx.pipeline_kv(
                &ATTENTION_DECODE,
                formats,
                if rows {
                    "attention_split_rows"
                } else {
                    "attention_split"
                },
                &constants,
            )?,
            Some(g) => {
                let mut with_groups = constants.to_vec();
                with_groups.extend([
                    ("R", f64::from(g.lanes)),
                    ("NV", f64::from(g.nv)),
                    ("GW", f64::from(g.heads)),
                ]);
                if layout == DecodeAttentionLayout::Subgroup {
                    with_groups.push(("NSG", f64::from(g.subgroups)));
                }
                ctx.pipeline_kv(
                    groups_shader,
                    formats,
                    if rows { rows_entry } else { groups_entry },
                    &with_groups,
                )?
            }
        };
        // Only the reduce reads the sinks: the split pipelines do not depend on them.
        let mut reduce_constants = constants.to_vec();
        reduce_constants.push(("SINKS", f64::from(u8::from(heads.sinks))));
        Ok(Self {
            split,
            reduce: ctx.pipeline_kv(
                &ATTENTION_DECODE,
                formats,
                "attention_reduce",
                &reduce_constants,
            )?,
            heads,
            wg,
            split_len,
            groups,
            no_sinks: no_sinks(ctx)?,
        })
    }

    /// Keys per split and splits for `batch` sequences at `kv_len` keys, of which a sliding
    /// window reads only the last `window` ([`Heads::attended`]): the splits cover those. The
    /// `workgroup` layout takes as many splits as bring the grid to
    /// [`DECODE_TARGET_WORKGROUPS`], but none shorter than the configured length (unless it is
    /// all the keys; so [`DecodeAttention::partials_bytes`] bounds them), in whole blocks of
    /// `wg` keys where a split is longer than one.
    pub fn splits(&self, batch: u32, kv_len: u32) -> (u32, u32) {
        let kv_len = self.heads.attended(kv_len);
        let len = match self.groups {
            None => self.split_len,
            Some(g) => {
                let per_split = batch * self.heads.n_kv_heads * g.chunks;
                let wanted = DECODE_TARGET_WORKGROUPS.div_ceil(per_split.max(1));
                let n = wanted.clamp(1, (kv_len / self.split_len).max(1));
                let len = kv_len.div_ceil(n);
                if len > self.wg {
                    len.next_multiple_of(self.wg)
                } else {
                    len
                }
            }
        };
        (len, kv_len.div_ceil(len))
    }

    /// Decode attention of qkv rows `row_base..row_base + batch` at ragged depths (a kernel
    /// from [`DecodeAttention::new_rows`]): row r's token sits at the position `rows[r]` =
    /// (sequence, position) names and attends to keys 0..=position (those in its window) of
    /// that sequence of the caches (`sequences` of them); `max_len` (at most the cache length)
    /// sizes the split grid and must cover every row's position + 1. Output rows go to the same
    /// row numbers of `out`. `sinks` holds the layer's `n_heads` f32 sink logits, given exactly
    /// when the heads have sinks.
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch_rows(
        &self,
        ctx: &GpuContext,
        (row_base, batch, sequences, max_len): (u32, u32, u32, u32),
        qkv: &wgpu::Buffer,
        rows: &wgpu::Buffer,
        k_cache: &wgpu::Buffer,
        v_cache: &wgpu::Buffer,
        sinks: Option<&wgpu::Buffer>,
        partials: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> anyhow::Result<[Dispatch; 2]> {
        let end = u64::from(row_base + batch);
        anyhow::ensure!(
            rows.size() >= end * 8,
            "decode attention rows: buffers too small"
        );
        self.launches(
            ctx,
            (row_base, batch, sequences, max_len),
            [qkv, k_cache, v_cache, partials, out],
            (Some(rows), sinks),
        )
    }

    /// Bytes of the partials buffer for `batch` sequences at `kv_len` keys: with a sliding
    /// window, for the last `window` of them only.
    pub fn partials_bytes(&self, batch: u32, kv_len: u32) -> u64 {
        u64::from(batch)
            * u64::from(self.heads.n_heads)
            * u64::from(self.heads.attended(kv_len).div_ceil(self.split_len))
            * u64::from(self.heads.hd4() + 1)
            * 16
    }

    /// The two launches: q is row b of `qkv` for sequence b; keys are positions 0..kv_len (the
    /// last `window` of them with a sliding window). `sinks` holds the layer's `n_heads` f32
    /// sink logits, given exactly when the heads have sinks.
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch(
        &self,
        ctx: &GpuContext,
        (batch, kv_len): (u32, u32),
        qkv: &wgpu::Buffer,
        k_cache: &wgpu::Buffer,
        v_cache: &wgpu::Buffer,
        sinks: Option<&wgpu::Buffer>,
        partials: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> anyhow::Result<[Dispatch; 2]> {
        self.launches(
            ctx,
            (0, batch, batch, kv_len),
            [qkv, k_cache, v_cache, partials, out],
            (None, sinks),
        )
    }

    /// Every entry point's launches, after checking every buffer: the split pass (reading
    /// `rows` when given) and the reduce (reading the sink logits when given).
    fn launches(
        &self,
        ctx: &GpuContext,
        (row_base, batch, sequences, kv_len): (u32, u32, u32, u32),
        [qkv, k_cache, v_cache, partials, out]: [&wgpu::Buffer; 5],
        (rows, sinks): (Option<&wgpu::Buffer>, Option<&wgpu::Buffer>),
    ) -> anyhow::Result<[Dispatch; 2]> {
        let h = self.heads;
        h.check_sinks(sinks)?;
        let (split_len, n_splits) = self.splits(batch, kv_len);
        let end = u64::from(row_base + batch);
        let cache_bytes = h.cache_bytes(sequences);
        anyhow::ensure!(
            kv_len >= 1
                && kv_len <= h.cache_len
                && qkv.size() >= end * u64::from(h.qkv_stride4()) * 16
                && k_cache.size() >= cache_bytes
                && v_cache.size() >= cache_bytes
                && partials.size() >= self.partials_bytes(batch, kv_len)
                && out.size() >= end * u64::from(h.n_heads * h.head_dim) * 4,
            "decode attention buffers too small"
        );
        let params = DecodeParams {
            n_heads: h.n_heads,
            n_kv_heads: h.n_kv_heads,
            q_stride4: h.qkv_stride4(),
            cache_len: h.cache_len,
            kv_len,
            split_len,
            n_splits,
            batch,
            scale: h.scale(),
            row_base,
            window: h.window,
            _pad: 0,
        };
        let grid = match self.groups {
            None => [n_splits.div_ceil(self.wg), h.n_heads, batch],
            Some(g) => [n_splits, h.n_kv_heads * g.chunks, batch],
        };
        let mut bindings = vec![(1, qkv), (2, k_cache), (3, v_cache), (4, partials)];
        bindings.extend(rows.map(|r| (6, r)));
        let split = ctx.dispatch(&self.split, &params, &bindings, grid)?;
        let sinks = sinks.unwrap_or(&self.no_sinks);
        let reduce = ctx.dispatch(
            &self.reduce,
            &params,
            &[(4, partials), (5, out), (7, sinks)],
            [h.hd4().div_ceil(self.wg), h.n_heads, batch],
        )?;
        Ok([split, reduce])
    }
}

/// softmax(q·kᵀ/√d) · V for one query over `keys` and `values` (lists of rows as wide as q,
/// and of the value width), in f64.
pub fn reference(q: &[f64], keys: &[&[f64]], values: &[&[f64]]) -> Vec<f64> {
    reference_with_sink(q, keys, values, None)
}

/// [`reference()`] with an optional attention sink: a logit (in the units of the scaled
/// scores) that joins the softmax denominator and contributes no value.
pub fn reference_with_sink(
    q: &[f64],
    keys: &[&[f64]],
    values: &[&[f64]],
    sink: Option<f64>,
) -> Vec<f64> {
    let scale = 1.0 / (q.len() as f64).sqrt();
    let scores: Vec<f64> = keys
        .iter()
        .map(|k| q.iter().zip(*k).map(|(a, b)| a * b).sum::<f64>() * scale)
        .collect();
    let max = scores
        .iter()
        .copied()
        .chain(sink)
        .fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let total: f64 = weights.iter().sum::<f64>() + sink.map_or(0.0, |s| (s - max).exp());
    let mut out = vec![0.0; values.first().map_or(q.len(), |v| v.len())];
    for (w, v) in weights.iter().zip(values) {
        for (o, x) in out.iter_mut().zip(*v) {
            *o += w / total * x;
        }
    }
    out
}

/// [`reference_with_sink`] for query head `head` of row `q_row` of `qkv` (rows of q|k|v
/// heads), over the keys of 0..n_keys of sequence `b` in the caches as the kernels lay them out
/// ([batch, kv_head, cache_len, head_dim]) that the query at position n_keys - 1 attends to
/// (`h.window`), in f64. `sinks` holds the `n_heads` sink logits when `h.sinks`.
#[allow(clippy::too_many_arguments)]
pub fn reference_from_cache(
    h: &Heads,
    qkv: &[f32],
    q_row: usize,
    b: usize,
    head: usize,
    n_keys: usize,
    k: &[f32],
    v: &[f32],
    sinks: Option<&[f32]>,
) -> Vec<f64> {
    assert_eq!(
        h.sinks,
        sinks.is_some(),
        "sink logits exactly for heads with sinks"
    );
    let hd = h.head_dim as usize;
    let stride = (h.n_heads + 2 * h.n_kv_heads) as usize * hd;
    let to64 = |s: &[f32]| s.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    let q = to64(&qkv[q_row * stride + head * hd..][..hd]);
    let kv = head / (h.n_heads / h.n_kv_heads) as usize;
    let base = (b * h.n_kv_heads as usize + kv) * h.cache_len as usize * hd;
    let first = h.window_start(n_keys as u32) as usize;
    let keys: Vec<Vec<f64>> = (first..n_keys)
        .map(|j| to64(&k[base + j * hd..][..hd]))
        .collect();
    let values: Vec<Vec<f64>> = (first..n_keys)
        .map(|j| to64(&v[base + j * hd..][..hd]))
        .collect();
    reference_with_sink(
        &q,
        &keys.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        &values.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        sinks.map(|s| f64::from(s[head])),
    )
}

/// Random q|k|v rows and caches for `sequences` sequences of heads `h`, on the host and on the
/// device: the inputs of the correctness checks.
pub(crate) struct RandomInputs {
    /// `q_rows` rows of q|k|v heads.
    pub qkv: Vec<f32>,
    /// K cache, [sequence, kv_head, cache_len, head_dim]: the values the device's cache (in
    /// the heads' KV format) holds.
    pub k: Vec<f32>,
    /// V cache, laid out as K.
    pub v: Vec<f32>,
    /// The three on the device.
    pub buffers: [wgpu::Buffer; 3],
    /// One sink logit per query head and its device copy, when the heads have sinks.
    pub sinks: Option<(Vec<f32>, wgpu::Buffer)>,
}

impl RandomInputs {
    pub(crate) fn new(
        ctx: &GpuContext,
        h: &Heads,
        (q_rows, sequences): (usize, usize),
        seed: u64,
    ) -> anyhow::Result<Self> {
        let hd = h.head_dim as usize;
        let stride = (h.n_heads + 2 * h.n_kv_heads) as usize * hd;
        let cache = sequences * (h.n_kv_heads * h.cache_len) as usize * hd;
        let qkv = random_values(q_rows * stride, seed, 1.0);
        // The caches hold the values rounded or quantized to the heads' KV format; the
        // reference computes with exactly those.
        let k = h.kv.quantize_rows(&random_values(cache, seed + 1, 1.0), hd);
        let v = h.kv.quantize_rows(&random_values(cache, seed + 2, 1.0), hd);
        let buffers = [
            ctx.storage_with("qkv", bytemuck::cast_slice(&qkv))?,
            ctx.storage_with("k", &h.kv.encode_rows(&k, hd))?,
            ctx.storage_with("v", &h.kv.encode_rows(&v, hd))?,
        ];
        // Sinks of a few times the spread of the scores (about ±0.6), so that they weigh as
        // much as a short window of keys: the checks see them.
        let sinks = if h.sinks {
            let s = random_values(h.n_heads as usize, seed + 3, 3.0);
            let b = ctx.storage_with("sinks", bytemuck::cast_slice(&s))?;
            Some((s, b))
        } else {
            None
        };
        Ok(Self {
            qkv,
            k,
            v,
            buffers,
            sinks,
        })
    }

    /// The device sink logits, when the heads have sinks.
    pub(crate) fn sinks_buffer(&self) -> Option<&wgpu::Buffer> {
        self.sinks.as_ref().map(|(_, b)| b)
    }

    /// [`reference_from_cache`] for every head of each (qkv row, sequence, keys) in `rows`.
    pub(crate) fn reference(&self, h: &Heads, rows: &[(usize, usize, usize)]) -> Vec<f64> {
        let sinks = self.sinks.as_ref().map(|(s, _)| s.as_slice());
        rows.iter()
            .flat_map(|&(row, seq, n_keys)| {
                (0..h.n_heads as usize).flat_map(move |head| {
                    reference_from_cache(
                        h, &self.qkv, row, seq, head, n_keys, &self.k, &self.v, sinks,
                    )
                })
            })
            .collect()
    }
}

#[cfg(test)]
impl RandomInputs {
    /// Sets the keys and values at `positions` of every sequence and KV head to NaN, on the
    /// host and on the device: a kernel that reads any of them fails its check.
    fn poison(
        &mut self,
        ctx: &GpuContext,
        h: &Heads,
        positions: impl Iterator<Item = usize>,
    ) -> anyhow::Result<()> {
        let hd = h.head_dim as usize;
        let len = h.cache_len as usize;
        let bad: std::collections::HashSet<usize> = positions.collect();
        let row_bytes = h.kv.row_bytes(hd);
        for (cache, slot) in [(&mut self.k, 1), (&mut self.v, 2)] {
            for (i, x) in cache.iter_mut().enumerate() {
                if bad.contains(&(i / hd % len)) {
                    *x = f32::NAN;
                }
            }
            let mut bytes = h.kv.encode_rows(cache, hd);
            // q8_0's encoder turns NaN into quants of 0: poison those rows' scales instead (an
            // f16 NaN), so a kernel that reads any of their blocks sees NaN.
            if h.kv == KvDtype::Q8_0 {
                for row in (0..cache.len() / hd).filter(|r| bad.contains(&(r % len))) {
                    for blk in (row * row_bytes..(row + 1) * row_bytes).step_by(34) {
                        bytes[blk..blk + 2].copy_from_slice(&half::f16::NAN.to_le_bytes());
                    }
                }
            }
            self.buffers[slot] = ctx.storage_with(["", "k", "v"][slot], &bytes)?;
        }
        Ok(())
    }
}

/// Runs `kernel` on random inputs for `batch` sequences at `kv_len` keys and compares its
/// output with the f64 reference (tests and tuning trials).
pub(crate) fn verify_decode(
    ctx: &GpuContext,
    kernel: &DecodeAttention,
    (batch, kv_len): (u32, u32),
    seed: u64,
) -> anyhow::Result<Correctness> {
    let inputs = RandomInputs::new(ctx, &kernel.heads, (batch as usize, batch as usize), seed)?;
    check_decode(ctx, kernel, (batch, kv_len), &inputs)
}

/// [`verify_decode`] on given inputs (of at least `batch` rows and sequences).
fn check_decode(
    ctx: &GpuContext,
    kernel: &DecodeAttention,
    (batch, kv_len): (u32, u32),
    inputs: &RandomInputs,
) -> anyhow::Result<Correctness> {
    let h = kernel.heads;
    let [qkv, k, v] = &inputs.buffers;
    let partials = ctx.storage_zeroed("partials", kernel.partials_bytes(batch, kv_len))?;
    let len = (batch * h.n_heads * h.head_dim) as usize;
    let out = ctx.storage_zeroed("out", len as u64 * 4)?;
    let d = kernel.launches(
        ctx,
        (0, batch, batch, kv_len),
        [qkv, k, v, &partials, &out],
        (None, inputs.sinks_buffer()),
    )?;
    ctx.execute(&d.to_vec())?;
    let got = ctx.read_f32(&out, len)?;
    let rows: Vec<_> = (0..batch as usize)
        .map(|b| (b, b, kv_len as usize))
        .collect();
    Ok(compare(
        &got,
        &inputs.reference(&h, &rows),
        NMSE_F32,
        "decode attention".into(),
    ))
}

/// Runs `kernel` on random inputs for `batch` prompts of `seq_len` tokens and compares its
/// output with the f64 reference (tests and tuning trials).
pub(crate) fn verify_prefill(
    ctx: &GpuContext,
    kernel: &PrefillAttention,
    (batch, seq_len): (u32, u32),
    seed: u64,
) -> anyhow::Result<Correctness> {
    let h = kernel.heads;
    let tokens = (batch * seq_len) as usize;
    let inputs = RandomInputs::new(ctx, &h, (tokens, batch as usize), seed)?;
    let [qkv, k, v] = &inputs.buffers;
    let len = tokens * (h.n_heads * h.head_dim) as usize;
    let out = ctx.storage_zeroed("out", len as u64 * 4)?;
    ctx.execute(&kernel.dispatch(
        ctx,
        (batch, seq_len),
        qkv,
        k,
        v,
        inputs.sinks_buffer(),
        &out,
    )?)?;
    let got = ctx.read_f32(&out, len)?;
    let s = seq_len as usize;
    let rows: Vec<_> = (0..tokens).map(|t| (t, t / s, t % s + 1)).collect();
    Ok(compare(
        &got,
        &inputs.reference(&h, &rows),
        NMSE_F32,
        "prefill attention".into(),
    ))
}

/// The Rust layout of [`PrefillParams`], for the test that holds it to its WGSL twin.
#[cfg(test)]
pub(crate) fn prefill_params_layout() -> super::HostLayout {
    super::host_layout!(PrefillParams {
        tokens,
        seq_len,
        n_heads,
        n_kv_heads,
        qkv_stride4,
        cache_len,
        scale,
        window
    })
}

/// The Rust layout of [`DecodeParams`], for the test that holds it to its WGSL twin.
#[cfg(test)]
pub(crate) fn decode_params_layout() -> super::HostLayout {
    super::host_layout!(DecodeParams {
        n_heads,
        n_kv_heads,
        q_stride4,
        cache_len,
        kv_len,
        split_len,
        n_splits,
        batch,
        scale,
        row_base,
        window,
        _pad
    })
}

#[cfg(test)]
mod gpu_tests {
    use super::DecodeAttentionLayout::{Invocation, Subgroup, Workgroup};
    use super::*;
    use crate::gpu::test_context;

    /// The decode layouts for GPUs the test adapter can run: subgroups where it has them.
    fn gpu_layouts() -> Vec<DecodeAttentionLayout> {
        let mut layouts = vec![Workgroup];
        if test_context().traits().subgroups.is_some() {
            layouts.push(Subgroup);
        }
        layouts
    }

    /// Every decode layout the test adapter can run.
    fn decode_layouts() -> Vec<DecodeAttentionLayout> {
        let mut layouts = vec![Invocation];
        layouts.extend(gpu_layouts());
        layouts
    }

    /// [`Heads::causal`], short for the case tables.
    fn heads(n_heads: u32, n_kv_heads: u32, head_dim: u32, cache_len: u32) -> Heads {
        Heads::causal(n_heads, n_kv_heads, head_dim, cache_len)
    }

    /// `h` with its caches in `kv`.
    fn stored_as(h: Heads, kv: KvDtype) -> Heads {
        Heads { kv, ..h }
    }

    /// The packed KV formats (the other tests run f32 caches).
    const PACKED_KV: [KvDtype; 2] = [KvDtype::F16, KvDtype::Q8_0];

    /// `h` with a sliding window of `window` keys (0: none) and sinks on or off.
    fn windowed(h: Heads, window: u32, sinks: bool) -> Heads {
        Heads { window, sinks, ..h }
    }

    const FLASH: Option<AttentionTiles> = Some(AttentionTiles { br: 16, bc: 16 });

    /// Prefill attention over heads `h`, `wg` invocations per group in the layout `tiles`
    /// names, against the reference on `batch` random prompts of `seq_len` tokens.
    fn prefill_case(
        h: Heads,
        (batch, seq_len): (u32, u32),
        wg: u32,
        tiles: Option<AttentionTiles>,
        seed: u64,
    ) {
        let ctx = test_context();
        let kernel = PrefillAttention::new(ctx, h, wg, tiles).unwrap();
        let c = verify_prefill(ctx, &kernel, (batch, seq_len), seed).unwrap();
        assert!(
            c.failure.is_none(),
            "{h:?} batch {batch} seq {seq_len} wg {wg} {:?}: {c:?}",
            kernel.tiles()
        );
    }

    /// [`PrefillAttentionRows`] over heads `h` (`wg` invocations per group, in the layout `tiles`
    /// names) on `inputs`, whose caches hold `sequences` sequences: query row r at the
    /// (sequence, position) `rows[r]`, compared with the reference as `what`.
    fn prefill_rows_case(
        h: Heads,
        (wg, tiles): (u32, Option<AttentionTiles>),
        inputs: &RandomInputs,
        (rows, sequences): (&[[u32; 2]], u32),
        what: &str,
    ) -> Correctness {
        let ctx = test_context();
        let [qkv, k, v] = &inputs.buffers;
        let rows_b = ctx
            .storage_with("rows", bytemuck::cast_slice(rows))
            .unwrap();
        let len = rows.len() * (h.n_heads * h.head_dim) as usize;
        let out = ctx.storage_zeroed("out", len as u64 * 4).unwrap();
        let kernel = PrefillAttentionRows::new(ctx, h, wg, tiles).unwrap();
        let d = kernel
            .dispatch(
                ctx,
                (rows.len() as u32, sequences),
                qkv,
                &rows_b,
                k,
                v,
                inputs.sinks_buffer(),
                &out,
            )
            .unwrap();
        ctx.execute(&d).unwrap();
        let got = ctx.read_f32(&out, len).unwrap();
        let want: Vec<_> = rows
            .iter()
            .enumerate()
            .map(|(r, &[seq, pos])| (r, seq as usize, pos as usize + 1))
            .collect();
        compare(&got, &inputs.reference(&h, &want), NMSE_F32, what.into())
    }

    /// Decode attention over heads `h` in `layout`, splits of `split_len` keys and `wg`
    /// invocations per group, against the reference for `batch` random sequences at `kv_len`
    /// keys.
    fn decode_case(
        layout: DecodeAttentionLayout,
        h: Heads,
        (batch, kv_len): (u32, u32),
        (split_len, wg): (u32, u32),
        seed: u64,
    ) {
        let ctx = test_context();
        let kernel = DecodeAttention::new(ctx, h, layout, wg, split_len).unwrap();
        let c = verify_decode(ctx, &kernel, (batch, kv_len), seed).unwrap();
        assert!(
            c.failure.is_none(),
            "{layout:?} {h:?} batch {batch} kv {kv_len} split {split_len} wg {wg} \
             (splits {:?}): {c:?}",
            kernel.splits(batch, kv_len)
        );
    }

    /// Head widths 24 (the `tiny` preset's), 64 and 128, 1, 2 and 4 query heads per KV head,
    /// prompts that fill no tile, and tiles that fit or must shrink (4 rows of 16 lanes for
    /// head_dim 128 and 256 at 64 invocations).
    #[test]
    fn prefill_matches_reference_for_odd_lengths_and_grouped_heads() {
        let tiled = |br, bc| Some(AttentionTiles { br, bc });
        for (batch, seq_len, h, wg, tiles) in [
            (1, 1, heads(2, 1, 4, 1), 64, None),
            (2, 13, heads(4, 2, 12, 16), 64, None),
            (1, 70, heads(6, 2, 64, 70), 64, None),
            (1, 1, heads(2, 1, 4, 1), 64, FLASH),
            (2, 13, heads(4, 2, 12, 16), 64, FLASH),
            (3, 21, heads(3, 3, 24, 21), 64, FLASH),
            (2, 37, heads(4, 1, 24, 40), 32, tiled(8, 4)),
            (1, 70, heads(6, 3, 64, 70), 64, FLASH),
            (2, 45, heads(8, 2, 64, 45), 64, tiled(4, 32)),
            (1, 33, heads(4, 2, 128, 33), 64, FLASH),
            (1, 19, heads(2, 2, 256, 19), 128, tiled(8, 8)),
        ] {
            prefill_case(h, (batch, seq_len), wg, tiles, 61);
        }
    }

    /// Tiles shrink to the adapter's workgroup memory and to a row's register budget, and a
    /// tile that cannot divide the workgroup is refused.
    #[test]
    fn flash_tiles_fit_the_limits() {
        let h = heads(8, 2, 128, 64);
        let big = AttentionTiles { br: 16, bc: 32 };
        let t = FlashTiles::fit(&h, 64, big, 16384).unwrap();
        assert!(
            t.workgroup_bytes(h.hd4()) <= 16384 && t.nv <= PREFILL_MAX_NV,
            "{t:?}"
        );
        assert_eq!((t.br, t.nv), (8, 4), "{t:?}");
        let roomy = FlashTiles::fit(&h, 128, big, 1 << 16).unwrap();
        assert_eq!((roomy.br, roomy.bc, roomy.nv, roomy.kt), (16, 32, 4, 4));
        let rows_only = FlashTiles::fit(
            &heads(2, 1, 16, 8),
            64,
            AttentionTiles { br: 64, bc: 32 },
            1 << 16,
        );
        assert_eq!(rows_only.map(|t| (t.br, t.bc, t.kt)).unwrap(), (64, 8, 8));
        assert!(FlashTiles::fit(&h, 64, AttentionTiles { br: 12, bc: 16 }, 1 << 16).is_err());
        assert!(FlashTiles::fit(&heads(2, 1, 256, 8), 4, big, 1 << 16).is_err());
    }

    #[test]
    fn decode_matches_reference_across_split_sizes() {
        let ctx = test_context();
        for layout in decode_layouts() {
            for (batch, kv_len, split_len, h, wg) in [
                (1, 1, 16, heads(2, 2, 8, 4), 64),
                (3, 37, 8, heads(4, 2, 16, 40), 64),
                (2, 300, 64, heads(8, 2, 128, 300), 64),
                (1, 100, 1, heads(2, 1, 4, 128), 64),
                (2, 77, 16, heads(3, 3, 24, 80), 64),
                (1, 131, 32, heads(9, 3, 64, 131), 64),
                (2, 95, 8, heads(8, 2, 64, 96), 32),
                (1, 203, 16, heads(16, 4, 128, 210), 128),
                (1, 50, 8, heads(12, 1, 24, 50), 64),
                (1, 45, 8, heads(8, 1, 256, 45), 32),
            ] {
                decode_case(layout, h, (batch, kv_len), (split_len, wg), 71);
            }
        }
        // Heads wider than 256 (MLA's absorbed latent rows, 576 in DeepSeek-V3): the workgroup
        // layout only, at a width that fills no lane block, and one the invocation layout
        // refuses.
        for (batch, kv_len, split_len, h, wg) in [
            (2, 41, 8, heads(10, 1, 576, 41), 64),
            (1, 70, 16, heads(5, 1, 300, 70), 32),
        ] {
            decode_case(Workgroup, h, (batch, kv_len), (split_len, wg), 71);
            if let Some(sizes) = ctx.traits().subgroups {
                match subgroup_layout_holds(h.head_dim, sizes) {
                    true => decode_case(Subgroup, h, (batch, kv_len), (split_len, wg), 71),
                    false => {
                        assert!(DecodeAttention::new(ctx, h, Subgroup, wg, split_len).is_err())
                    }
                }
            }
            assert!(DecodeAttention::new(ctx, h, Invocation, wg, split_len).is_err());
        }
    }

    /// The workgroup layout fills the target grid when the depth allows, never splits finer
    /// than the configured length, and keeps to whole blocks of `wg` keys.
    #[test]
    fn workgroup_splits_cover_the_target_within_the_partials() {
        let ctx = test_context();
        let h = heads(32, 8, 128, 8192);
        let kernel = DecodeAttention::new(ctx, h, Workgroup, 64, 32).unwrap();
        let (len, n) = kernel.splits(1, 8192);
        assert_eq!(n * 8, DECODE_TARGET_WORKGROUPS, "split {len}");
        assert_eq!(len % 64, 0);
        let (len, n) = kernel.splits(1, 100);
        assert_eq!((len, n), (34, 3));
        let (_, n) = kernel.splits(256, 8192);
        assert_eq!(n, 1);
        for (batch, kv) in [(1, 8192), (3, 1000), (64, 33), (1, 1)] {
            let (len, n) = kernel.splits(batch, kv);
            assert!(
                len * n >= kv && len * (n - 1) < kv,
                "{batch} {kv}: {len} {n}"
            );
            assert!(
                n <= kv.div_ceil(32) && len >= kv.min(32),
                "{batch} {kv}: {len} {n}"
            );
        }
    }

    /// Decode rows at ragged depths of different sequences, after a row that is not theirs
    /// (row_base 1), and prefill rows continuing prompts: a chunk at position 10 of sequence 1,
    /// then rows of sequences 2 and 0 mixed into the same tiles; with and without sliding
    /// windows (5, which divides no tile, and 37) and sinks.
    #[test]
    fn rows_attend_to_their_own_sequence_up_to_their_position() {
        let ctx = test_context();
        for (h, wg, tiles) in [
            (heads(4, 2, 16, 40), 64, None),
            (heads(4, 2, 16, 40), 64, FLASH),
            (
                heads(6, 3, 24, 40),
                32,
                Some(AttentionTiles { br: 4, bc: 8 }),
            ),
            (windowed(heads(8, 2, 16, 40), 5, true), 64, None),
            (windowed(heads(8, 2, 16, 40), 5, true), 64, FLASH),
            (
                windowed(heads(6, 3, 24, 40), 37, true),
                32,
                Some(AttentionTiles { br: 4, bc: 8 }),
            ),
        ]
        .into_iter()
        .flat_map(|(h, wg, tiles)| KvDtype::ALL.map(|kv| (stored_as(h, kv), wg, tiles)))
        {
            let sequences = 3u32;
            let out_len = |rows: usize| rows * (h.n_heads * h.head_dim) as usize;
            let layouts = if tiles.is_some() {
                gpu_layouts()
            } else {
                vec![Invocation]
            };
            for layout in layouts {
                let decode_rows: [[u32; 2]; 4] = [[0, 0], [2, 5], [0, 39], [1, 0]];
                let inputs = RandomInputs::new(ctx, &h, (4, sequences as usize), 81).unwrap();
                let [qkv_b, k_b, v_b] = &inputs.buffers;
                let rows_b = ctx
                    .storage_with("rows", bytemuck::cast_slice(&decode_rows))
                    .unwrap();
                let kernel = DecodeAttention::new_rows(ctx, h, layout, wg, 8).unwrap();
                let partials = ctx
                    .storage_zeroed("partials", kernel.partials_bytes(3, 40))
                    .unwrap();
                let out_b = ctx.storage_zeroed("out", (out_len(4) * 4) as u64).unwrap();
                let d = kernel
                    .dispatch_rows(
                        ctx,
                        (1, 3, sequences, 40),
                        qkv_b,
                        &rows_b,
                        k_b,
                        v_b,
                        inputs.sinks_buffer(),
                        &partials,
                        &out_b,
                    )
                    .unwrap();
                ctx.execute(&d.to_vec()).unwrap();
                let got = ctx.read_f32(&out_b, out_len(4)).unwrap();
                let want: Vec<_> = decode_rows
                    .iter()
                    .enumerate()
                    .skip(1)
                    .map(|(r, &[seq, pos])| (r, seq as usize, pos as usize + 1))
                    .collect();
                let c = compare(
                    &got[out_len(1)..],
                    &inputs.reference(&h, &want),
                    NMSE_F32,
                    "decode rows".into(),
                );
                assert!(c.failure.is_none(), "{layout:?} {h:?} decode rows: {c:?}");
            }

            let mut prefill_rows: Vec<[u32; 2]> = (10..23).map(|p| [1, p]).collect();
            prefill_rows.extend([[2, 3], [0, 7], [2, 4], [0, 0], [2, 39], [0, 8]]);
            let n = prefill_rows.len();
            let inputs = RandomInputs::new(ctx, &h, (n, sequences as usize), 84).unwrap();
            let rows = (prefill_rows.as_slice(), sequences);
            let c = prefill_rows_case(h, (wg, tiles), &inputs, rows, "prefill rows");
            assert!(c.failure.is_none(), "{tiles:?} {h:?} prefill rows: {c:?}");
        }
    }

    /// Sliding windows smaller than, equal to and larger than the prompt, windows that divide
    /// no tile (5, 37) and one that is a whole tile (16), with and without sinks, four query
    /// heads per KV head, in the per-row layout and FlashAttention-2 tiles of several shapes.
    #[test]
    fn windowed_prefill_with_sinks_matches_reference() {
        let tiled = |br, bc| Some(AttentionTiles { br, bc });
        for (batch, seq_len, h, wg, tiles) in [
            (1, 70, windowed(heads(8, 2, 64, 70), 5, true), 64, None),
            (3, 13, windowed(heads(8, 2, 12, 16), 16, false), 64, None),
            (2, 21, windowed(heads(4, 1, 24, 24), 40, true), 64, None),
            (1, 70, windowed(heads(8, 2, 64, 70), 5, true), 64, FLASH),
            (2, 37, windowed(heads(8, 2, 24, 40), 37, false), 64, FLASH),
            (1, 50, windowed(heads(8, 2, 16, 50), 16, true), 64, FLASH),
            (1, 33, windowed(heads(4, 1, 128, 33), 100, true), 64, FLASH),
            (1, 19, windowed(heads(8, 2, 64, 19), 0, true), 64, FLASH),
            (
                2,
                45,
                windowed(heads(8, 2, 64, 45), 37, true),
                64,
                tiled(4, 32),
            ),
            (
                2,
                21,
                windowed(heads(4, 1, 24, 24), 1, false),
                32,
                tiled(8, 4),
            ),
        ] {
            prefill_case(h, (batch, seq_len), wg, tiles, 67);
        }
    }

    /// Windows smaller than, equal to and larger than the depth, depths that no split
    /// divides, sinks on and off, four query heads per KV head, in both layouts; and a window
    /// of 128 at a depth of 8192.
    #[test]
    fn windowed_decode_with_sinks_matches_reference() {
        for layout in decode_layouts() {
            for (batch, kv_len, split_len, h, wg) in [
                (1, 300, 8, windowed(heads(8, 2, 128, 300), 37, true), 64),
                (2, 95, 16, windowed(heads(8, 2, 64, 96), 128, true), 32),
                (3, 77, 16, windowed(heads(4, 1, 24, 80), 77, false), 64),
                (1, 131, 4, windowed(heads(8, 2, 64, 131), 5, false), 64),
                (2, 50, 8, windowed(heads(4, 1, 24, 50), 0, true), 64),
                (1, 1, 16, windowed(heads(4, 1, 24, 4), 1, true), 64),
                (2, 203, 16, windowed(heads(8, 2, 16, 210), 1, true), 64),
                (1, 8192, 32, windowed(heads(4, 2, 16, 8192), 128, true), 64),
            ] {
                decode_case(layout, h, (batch, kv_len), (split_len, wg), 73);
            }
        }
    }

    /// Windowed decode sizes its splits, its partials and its grid by the window: the same at
    /// every depth past the window as at the window itself, and fewer than full attention's.
    #[test]
    fn windowed_decode_splits_follow_the_window_not_the_depth() {
        let ctx = test_context();
        for layout in decode_layouts() {
            let full = heads(32, 8, 128, 8192);
            let kf = DecodeAttention::new(ctx, full, layout, 64, 32).unwrap();
            let kw = DecodeAttention::new(ctx, windowed(full, 128, false), layout, 64, 32).unwrap();
            for depth in [128, 129, 1000, 8192] {
                assert_eq!(kw.splits(1, depth), kf.splits(1, 128), "{layout:?} {depth}");
                assert_eq!(
                    kw.partials_bytes(1, depth),
                    kf.partials_bytes(1, 128),
                    "{layout:?} {depth}"
                );
            }
            let (len, n) = kw.splits(1, 8192);
            assert!(
                len * n >= 128 && len * (n - 1) < 128,
                "{layout:?}: {len} {n}"
            );
            assert!(kf.splits(1, 8192).1 > n, "{layout:?}");
            assert!(kf.partials_bytes(1, 8192) > kw.partials_bytes(1, 8192));
            // Below the window nothing changes.
            assert_eq!(kw.splits(2, 50), kf.splits(2, 50), "{layout:?}");

            // The split launch's grid, from real launches at two depths.
            let h = heads(4, 2, 16, 2048);
            let kernel =
                DecodeAttention::new(ctx, windowed(h, 128, false), layout, 64, 16).unwrap();
            let inputs = RandomInputs::new(ctx, &h, (1, 1), 5).unwrap();
            let [qkv, k, v] = &inputs.buffers;
            let partials = ctx
                .storage_zeroed("partials", kernel.partials_bytes(1, 2048))
                .unwrap();
            let out = ctx.storage_zeroed("out", 4 * 16 * 4).unwrap();
            let grid = |depth| {
                kernel
                    .dispatch(ctx, (1, depth), qkv, k, v, None, &partials, &out)
                    .unwrap()[0]
                    .workgroups
            };
            assert_eq!(grid(2048), grid(128), "{layout:?}");
            assert_eq!(grid(2048), grid(1000), "{layout:?}");
        }
    }

    /// Keys and values before every window (and past every position) are NaN: windowed decode
    /// in both layouts and windowed prefill rows in both layouts (the FlashAttention-2 body is
    /// the whole-prompt kernel's) still match the reference, so they never read them.
    #[test]
    fn windowed_kernels_read_no_key_outside_the_windows() {
        let ctx = test_context();
        for kv in KvDtype::ALL {
            poisoned_windows(ctx, windowed(stored_as(heads(8, 2, 40, 320), kv), 37, true));
        }
    }

    /// [`windowed_kernels_read_no_key_outside_the_windows`] for heads `h`.
    fn poisoned_windows(ctx: &GpuContext, h: Heads) {
        for layout in decode_layouts() {
            let kernel = DecodeAttention::new(ctx, h, layout, 64, 8).unwrap();
            let mut inputs = RandomInputs::new(ctx, &h, (2, 2), 91).unwrap();
            inputs
                .poison(ctx, &h, (0..300 - 37).chain(300..320))
                .unwrap();
            let c = check_decode(ctx, &kernel, (2, 300), &inputs).unwrap();
            assert!(c.failure.is_none(), "{layout:?} {h:?}: {c:?}");
        }
        // Rows 60..64 of sequence 1 (window keys 24..64) beside row 5 of sequence 0 (keys
        // 0..6), in one tile.
        let rows: Vec<[u32; 2]> = vec![[1, 60], [1, 61], [0, 5], [1, 62], [1, 63]];
        for tiles in [None, FLASH] {
            let mut inputs = RandomInputs::new(ctx, &h, (rows.len(), 2), 93).unwrap();
            inputs.poison(ctx, &h, (6..24).chain(64..320)).unwrap();
            let c = prefill_rows_case(h, (64, tiles), &inputs, (&rows, 2), "poisoned prefill rows");
            assert!(c.failure.is_none(), "{tiles:?} {h:?}: {c:?}");
        }
    }

    /// Prefill in both layouts over f16 and q8_0 caches, against the reference on the values
    /// the caches hold: head widths that are no multiple of 32 (12, 24, 40: q8_0 rows padded
    /// to whole blocks, rows starting mid-word) and that are (64, 128), prompts that fill no
    /// tile, grouped heads, a window with sinks.
    #[test]
    fn prefill_reads_every_kv_format() {
        let tiled = |br, bc| Some(AttentionTiles { br, bc });
        for kv in PACKED_KV {
            for (batch, seq_len, h, wg, tiles) in [
                (2, 13, heads(4, 2, 12, 16), 64, None),
                (1, 37, heads(6, 2, 40, 40), 64, None),
                (1, 70, heads(6, 2, 64, 70), 64, None),
                (2, 13, heads(4, 2, 12, 16), 64, FLASH),
                (3, 21, heads(3, 3, 24, 21), 64, FLASH),
                (2, 37, heads(4, 1, 24, 40), 32, tiled(8, 4)),
                (1, 70, heads(6, 3, 64, 70), 64, FLASH),
                (1, 33, heads(4, 2, 128, 33), 64, FLASH),
                (1, 45, windowed(heads(8, 2, 40, 45), 5, true), 64, FLASH),
            ] {
                prefill_case(stored_as(h, kv), (batch, seq_len), wg, tiles, 63);
            }
        }
    }

    /// Decode in both layouts over f16 and q8_0 caches: odd depths, splits that divide no
    /// depth, head widths that are no multiple of 32 (8, 24, 40, 72) and that are (64, 128),
    /// grouped heads, a window with sinks.
    #[test]
    fn decode_reads_every_kv_format() {
        for kv in PACKED_KV {
            for layout in decode_layouts() {
                for (batch, kv_len, split_len, h, wg) in [
                    (1, 1, 16, heads(2, 2, 8, 4), 64),
                    (3, 37, 8, heads(4, 2, 16, 40), 64),
                    (2, 77, 16, heads(3, 3, 24, 80), 64),
                    (1, 131, 32, heads(9, 3, 64, 131), 64),
                    (2, 95, 8, heads(8, 2, 40, 96), 32),
                    (1, 203, 16, heads(16, 4, 128, 210), 128),
                    (1, 300, 8, windowed(heads(8, 2, 72, 300), 37, true), 64),
                ] {
                    decode_case(
                        layout,
                        stored_as(h, kv),
                        (batch, kv_len),
                        (split_len, wg),
                        75,
                    );
                }
            }
        }
    }

    /// A dispatch without sink logits for heads with sinks, or with them for heads without, is
    /// refused.
    #[test]
    fn sinks_are_given_exactly_when_the_heads_have_them() {
        let ctx = test_context();
        let h = heads(4, 2, 16, 40);
        let with = windowed(h, 0, true);
        let inputs = RandomInputs::new(ctx, &with, (1, 1), 3).unwrap();
        let [qkv, k, v] = &inputs.buffers;
        let sinks = inputs.sinks_buffer().unwrap();
        let out = ctx.storage_zeroed("out", 4 * 16 * 4).unwrap();
        let plain = PrefillAttention::new(ctx, h, 64, None).unwrap();
        assert!(plain.dispatch(ctx, (1, 1), qkv, k, v, None, &out).is_ok());
        assert!(
            plain
                .dispatch(ctx, (1, 1), qkv, k, v, Some(sinks), &out)
                .is_err()
        );
        let sinking = PrefillAttention::new(ctx, with, 64, None).unwrap();
        assert!(
            sinking
                .dispatch(ctx, (1, 1), qkv, k, v, None, &out)
                .is_err()
        );
        let short = ctx.storage_zeroed("short", 8).unwrap();
        assert!(
            sinking
                .dispatch(ctx, (1, 1), qkv, k, v, Some(&short), &out)
                .is_err()
        );
    }

    /// The sink is one more softmax term with no value: a sink far below the scores changes
    /// nothing, one far above them sends the output to zero, and without keys' spread the
    /// weights split as e^s : e^sink.
    #[test]
    fn reference_sink_joins_the_denominator_only() {
        let q = [1.0, 0.0, 0.0, 0.0];
        let k0 = [0.0; 4];
        let v0 = [2.0, -4.0, 0.0, 1.0];
        let keys: [&[f64]; 2] = [&k0, &k0];
        let values: [&[f64]; 2] = [&v0, &v0];
        assert_eq!(reference_with_sink(&q, &keys, &values, None), v0.to_vec());
        let low = reference_with_sink(&q, &keys, &values, Some(-1e3));
        assert_eq!(low, v0.to_vec());
        let high = reference_with_sink(&q, &keys, &values, Some(1e3));
        assert!(high.iter().all(|x| x.abs() < 1e-300), "{high:?}");
        // Two keys scoring 0 and a sink of ln 2: weights 1/4, 1/4 and 1/2.
        let half = reference_with_sink(&q, &keys, &values, Some(2f64.ln()));
        for (got, want) in half.iter().zip(v0) {
            assert!((got - want / 2.0).abs() < 1e-12, "{half:?}");
        }
    }
}
