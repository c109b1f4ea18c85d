//! `shaders/moe_route.wgsl`, `shaders/moe_matmul.wgsl` and `shaders/moe_combine.wgsl`: the
//! mixture-of-experts feed-forward block after its router product.
//!
//! ```text
//! logits = a · W_router                 (an ordinary product, outside this module)
//! route:   top-k per token, softmax over the k; assignments grouped by expert in blocks
//! experts: y_e = swiglu(a[rows of e] · W_gate|up,e) · W_down,e   (one weight read per block)
//! combine: h[t] += Σ_j gate[t, j] · y[slot(t, j)]
//! ```
//!
//! This is the layout real engines use (vLLM's fused_moe: top-k, align by expert, grouped
//! products over blocks): the grid is sized for the worst case on the host, and blocks past the
//! router's count return at once, so nothing is read back between kernels.

use super::matmul::Params as ProductParams;
use super::{MOE_COMBINE, MOE_MATMUL, MOE_ROUTE, WeightDtype};
use crate::gpu::{Dispatch, GpuContext};

/// Sorted rows per block of the expert products (`BM` in the shaders).
pub const BLOCK_ROWS: u32 = 8;
/// Words before the block table in the route buffer (`HEADER` in the shaders).
const HEADER: u32 = 4;

/// Where the router writes what, for `tokens` tokens of `k` experts each among `n_experts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLayout {
    /// Tokens routed.
    pub tokens: u32,
    /// Experts per token.
    pub k: u32,
    /// Routed experts.
    pub n_experts: u32,
}

impl RouteLayout {
    /// Token-expert assignments: tokens · k, also the rows of the experts' activations.
    pub fn assignments(&self) -> u32 {
        self.tokens * self.k
    }

    /// Most blocks the router can make: each expert's rows in blocks of [`BLOCK_ROWS`], so at
    /// most one partial block per touched expert.
    pub fn max_blocks(&self) -> u32 {
        self.assignments().div_ceil(BLOCK_ROWS) + self.n_experts.min(self.assignments())
    }

    fn assign_at(&self) -> u32 {
        HEADER + 3 * self.max_blocks()
    }

    fn sorted_at(&self) -> u32 {
        self.assign_at() + self.assignments()
    }

    fn slot_at(&self) -> u32 {
        self.sorted_at() + self.assignments()
    }

    /// Bytes of the route buffer.
    pub fn route_bytes(&self) -> u64 {
        u64::from(self.slot_at() + self.assignments()) * 4
    }

    /// Bytes of the gate buffer (one f32 per assignment).
    pub fn gate_bytes(&self) -> u64 {
        u64::from(self.assignments()) * 4
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RouteParams {
    tokens: u32,
    n_experts: u32,
    k: u32,
    ld_logits: u32,
    max_blocks: u32,
    layer: u32,
    assign_at: u32,
    sorted_at: u32,
    slot_at: u32,
    _pad: [u32; 3],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GroupParams {
    first_expert: u32,
    experts: u32,
    max_blocks: u32,
    gather: u32,
    sorted_at: u32,
    _pad: [u32; 3],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CombineParams {
    tokens: u32,
    k: u32,
    d4: u32,
    slot_at: u32,
}

/// A buffer holding the matrices of experts `first..first + count`, each `n` rows (outputs)
/// of K = 4 · `k4` weights in the model's format, one after another.
#[derive(Debug)]
pub struct ExpertSlab {
    /// The encoded rows.
    pub buffer: wgpu::Buffer,
    /// First expert in the slab.
    pub first: u32,
    /// Experts in the slab.
    pub count: u32,
}

/// One expert product over every block: out (sorted rows × ldc) = A · W_eᵀ.
#[derive(Debug, Clone, Copy)]
pub struct ExpertProduct<'a> {
    /// Outputs per expert (padded to 4).
    pub n: u32,
    /// K / 4 (padded).
    pub k4: u32,
    /// Layer input rows (gathered by token, `gather`) or sorted rows.
    pub a: &'a wgpu::Buffer,
    /// vec4s per row of `a`.
    pub lda4: u32,
    /// True when row s of A is the token of sorted row s (the block's first product).
    pub gather: bool,
    /// Output, one row per sorted row.
    pub out: &'a wgpu::Buffer,
    /// Floats per row of `out`.
    pub ldc: u32,
}

/// The three pipelines of the block, for one weight format.
pub struct MoeKernels {
    route: wgpu::ComputePipeline,
    rows: wgpu::ComputePipeline,
    combine: wgpu::ComputePipeline,
}

impl MoeKernels {
    /// Builds the pipelines; the products read `dtype` weights.
    pub fn new(ctx: &GpuContext, dtype: WeightDtype) -> anyhow::Result<Self> {
        let wg = ctx.limits.max_compute_invocations_per_workgroup.min(256);
        Ok(Self {
            route: ctx.pipeline(
                &MOE_ROUTE,
                WeightDtype::F32,
                "moe_route",
                &[("WG", f64::from(wg))],
            )?,
            rows: ctx.pipeline(&MOE_MATMUL, dtype, "moe_rows", &[("WG", 64.0)])?,
            combine: ctx.pipeline(
                &MOE_COMBINE,
                WeightDtype::F32,
                "moe_combine",
                &[("WG", 64.0)],
            )?,
        })
    }

    /// Routes `layout.tokens` rows of `logits` (`ld_logits` floats apart): writes `route` and
    /// `gate`, and the experts touched to word `layer` of `stats`.
    #[allow(clippy::too_many_arguments)]
    pub fn route(
        &self,
        ctx: &GpuContext,
        layout: RouteLayout,
        layer: u32,
        (logits, ld_logits): (&wgpu::Buffer, u32),
        route: &wgpu::Buffer,
        gate: &wgpu::Buffer,
        stats: &wgpu::Buffer,
    ) -> anyhow::Result<Dispatch> {
        anyhow::ensure!(
            layout.k >= 1
                && layout.k <= crate::model::MAX_EXPERTS_ACTIVE
                && layout.k <= layout.n_experts
                && layout.n_experts <= crate::model::MAX_EXPERTS,
            "router: {layout:?} unsupported"
        );
        anyhow::ensure!(
            route.size() >= layout.route_bytes()
                && gate.size() >= layout.gate_bytes()
                && stats.size() >= u64::from(layer + 1) * 4
                && logits.size() >= u64::from(layout.tokens) * u64::from(ld_logits) * 4,
            "router buffers too small for {layout:?}"
        );
        let params = RouteParams {
            tokens: layout.tokens,
            n_experts: layout.n_experts,
            k: layout.k,
            ld_logits,
            max_blocks: layout.max_blocks(),
            layer,
            assign_at: layout.assign_at(),
            sorted_at: layout.sorted_at(),
            slot_at: layout.slot_at(),
            _pad: [0; 3],
        };
        ctx.dispatch(
            &self.route,
            &params,
            &[(1, logits), (2, route), (3, gate), (4, stats)],
            [1, 1, 1],
        )
    }

    /// One expert product for every block of experts in `slab`.
    pub fn experts(
        &self,
        ctx: &GpuContext,
        layout: RouteLayout,
        route: &wgpu::Buffer,
        slab: &ExpertSlab,
        pr: &ExpertProduct<'_>,
    ) -> anyhow::Result<Dispatch> {
        let rows = u64::from(layout.assignments());
        anyhow::ensure!(
            pr.out.size() >= rows * u64::from(pr.ldc) * 4 && pr.ldc >= pr.n,
            "expert product output too small"
        );
        let params = ProductParams {
            m: layout.assignments(),
            k4: pr.k4,
            n: pr.n,
            lda4: pr.lda4,
            a_off4: 0,
            ldc: pr.ldc,
            c_off: 0,
            accumulate: 0,
        };
        let group = GroupParams {
            first_expert: slab.first,
            experts: slab.count,
            max_blocks: layout.max_blocks(),
            gather: u32::from(pr.gather),
            sorted_at: layout.sorted_at(),
            _pad: [0; 3],
        };
        let group = ctx.uniform_with("moe-group", bytemuck::bytes_of(&group));
        ctx.dispatch(
            &self.rows,
            &params,
            &[
                (1, pr.a),
                (2, &slab.buffer),
                (3, pr.out),
                (4, route),
                (5, &group),
            ],
            [pr.n.div_ceil(64), layout.max_blocks(), 1],
        )
    }

    /// h (tokens × d4 vec4s) += the gate-weighted sum of each token's rows of `y`.
    pub fn combine(
        &self,
        ctx: &GpuContext,
        layout: RouteLayout,
        (route, gate): (&wgpu::Buffer, &wgpu::Buffer),
        y: &wgpu::Buffer,
        d4: u32,
        h: &wgpu::Buffer,
    ) -> anyhow::Result<Dispatch> {
        anyhow::ensure!(
            y.size() >= u64::from(layout.assignments()) * u64::from(d4) * 16
                && h.size() >= u64::from(layout.tokens) * u64::from(d4) * 16,
            "combine buffers too small"
        );
        let params = CombineParams {
            tokens: layout.tokens,
            k: layout.k,
            d4,
            slot_at: layout.slot_at(),
        };
        ctx.dispatch(
            &self.combine,
            &params,
            &[(1, y), (2, gate), (3, route), (4, h)],
            [d4.div_ceil(64), layout.tokens, 1],
        )
    }
}

/// The router's choice for one token in f64: the top `k` experts by logit (the lower index
/// first among equal logits) and a softmax over their logits.
pub fn reference_route(logits: &[f64], k: usize) -> Vec<(usize, f64)> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    // Stable: equal logits keep index order.
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order.truncate(k);
    let top = logits[order[0]];
    let sum: f64 = order.iter().map(|&e| (logits[e] - top).exp()).sum();
    order
        .into_iter()
        .map(|e| (e, (logits[e] - top).exp() / sum))
        .collect()
}

/// Experts that `choices` (one list per token) touch.
pub fn touched(choices: &[Vec<(usize, f64)>]) -> usize {
    let mut seen: Vec<usize> = choices.iter().flatten().map(|&(e, _)| e).collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

/// The Rust layouts of the uniform structs, for the test that holds them to their WGSL twins.
#[cfg(test)]
pub(crate) fn params_layouts() -> [(super::Shader, &'static str, super::HostLayout); 3] {
    use super::host_layout;
    [
        (
            MOE_ROUTE,
            "Params",
            host_layout!(RouteParams {
                tokens,
                n_experts,
                k,
                ld_logits,
                max_blocks,
                layer,
                assign_at,
                sorted_at,
                slot_at,
                _pad
            }),
        ),
        (
            MOE_MATMUL,
            "Group",
            host_layout!(GroupParams {
                first_expert,
                experts,
                max_blocks,
                gather,
                sorted_at,
                _pad
            }),
        ),
        (
            MOE_COMBINE,
            "Params",
            host_layout!(CombineParams {
                tokens,
                k,
                d4,
                slot_at
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_route_breaks_ties_by_lower_index_and_normalises() {
        let r = reference_route(&[0.5, 2.0, 2.0, -1.0, 2.0], 2);
        assert_eq!(r.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!((r[0].1 - 0.5).abs() < 1e-12 && (r[1].1 - 0.5).abs() < 1e-12);
        let r = reference_route(&[0.0, 1.0, 3.0], 3);
        assert!((r.iter().map(|c| c.1).sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(r[0].0, 2);
    }

    #[test]
    fn the_block_table_has_room_for_every_routing() {
        // Worst case: every expert gets one row more than a multiple of the block.
        let l = RouteLayout {
            tokens: 9,
            k: 2,
            n_experts: 4,
        };
        assert_eq!(l.max_blocks(), 3 + 4);
        assert!(l.route_bytes() >= u64::from(HEADER + 3 * 7 + 3 * 18) * 4);
    }
}

#[cfg(test)]
mod gpu_tests {
    use super::*;
    use crate::gpu::test_context;
    use crate::kernels::layout::{padded_cols, random_values};
    use crate::kernels::matmul::encode_weights;
    use crate::kernels::swiglu;
    use crate::kernels::verify::{NMSE_F32, compare};

    fn read_u32(ctx: &GpuContext, b: &wgpu::Buffer, n: usize) -> Vec<u32> {
        bytemuck::cast_slice(&ctx.read_bytes(b, (n * 4) as u64).unwrap()).to_vec()
    }

    /// The router on the GPU picks the reference's experts in order, with its gates; ties
    /// (repeated logits) go to the lower index; the touched count is right.
    #[test]
    fn router_matches_reference_with_ties() {
        let ctx = test_context();
        for (tokens, e, k) in [(1u32, 8u32, 2u32), (13, 8, 2), (37, 128, 8), (5, 3, 3)] {
            let ld = padded_cols(e as usize) as u32;
            let mut logits = random_values((tokens * ld) as usize, 7, 2.0);
            // Ties: in every third token, experts 1 and 2 share the largest logit.
            for t in (0..tokens as usize).step_by(3) {
                let row = &mut logits[t * ld as usize..];
                row[1] = 5.0;
                row[2] = 5.0;
            }
            let layout = RouteLayout {
                tokens,
                k,
                n_experts: e,
            };
            let kernels = MoeKernels::new(ctx, WeightDtype::F32).unwrap();
            let logits_buf = ctx
                .storage_with("logits", bytemuck::cast_slice(&logits))
                .unwrap();
            let route = ctx.storage_zeroed("route", layout.route_bytes()).unwrap();
            let gate = ctx.storage_zeroed("gate", layout.gate_bytes()).unwrap();
            let stats = ctx.storage_zeroed("stats", 8).unwrap();
            let d = kernels
                .route(ctx, layout, 1, (&logits_buf, ld), &route, &gate, &stats)
                .unwrap();
            ctx.execute(&d).unwrap();
            let words = read_u32(ctx, &route, (layout.route_bytes() / 4) as usize);
            let gates = ctx.read_f32(&gate, layout.assignments() as usize).unwrap();
            let want: Vec<Vec<(usize, f64)>> = (0..tokens as usize)
                .map(|t| {
                    let row = &logits[t * ld as usize..t * ld as usize + e as usize];
                    reference_route(
                        &row.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
                        k as usize,
                    )
                })
                .collect();
            let k = k as usize;
            for (t, choice) in want.iter().enumerate() {
                for (j, &(expert, g)) in choice.iter().enumerate() {
                    let i = t * k + j;
                    assert_eq!(
                        words[layout.assign_at() as usize + i] as usize,
                        expert,
                        "{layout:?}: token {t} choice {j}"
                    );
                    assert!((f64::from(gates[i]) - g).abs() < 1e-5, "gate {i}");
                    // The slot of each assignment holds its token.
                    let slot = words[layout.slot_at() as usize + i] as usize;
                    assert_eq!(words[layout.sorted_at() as usize + slot] as usize, t);
                }
            }
            assert_eq!(words[1] as usize, touched(&want), "{layout:?}: touched");
            assert_eq!(
                read_u32(ctx, &stats, 2)[1],
                words[1],
                "stats word of layer 1"
            );
            // Blocks: each of one expert, at most BLOCK_ROWS rows, covering every row once.
            let blocks = words[0] as usize;
            assert!(blocks as u32 <= layout.max_blocks());
            let mb = layout.max_blocks() as usize;
            let h = HEADER as usize;
            let mut covered = 0;
            for b in 0..blocks {
                let (expert, start, rows) =
                    (words[h + b], words[h + mb + b], words[h + 2 * mb + b]);
                assert!((1..=BLOCK_ROWS).contains(&rows));
                for s in start..start + rows {
                    let t = words[layout.sorted_at() as usize + s as usize] as usize;
                    assert!(want[t].iter().any(|c| c.0 == expert as usize));
                }
                covered += rows;
            }
            assert_eq!(covered, layout.assignments());
        }
    }

    /// The whole block on the GPU (route, gate|up, SwiGLU, down, combine) against the f64
    /// reference, in f32 and a block format, with widths that divide no tile and experts split
    /// over two slabs.
    #[test]
    fn moe_block_matches_reference() {
        let ctx = test_context();
        for (dtype, tokens, e, k, d, f) in [
            (WeightDtype::F32, 1usize, 4usize, 2usize, 20usize, 12usize),
            (WeightDtype::F32, 11, 6, 2, 36, 22),
            (WeightDtype::Q8_0, 9, 5, 3, 40, 44),
            (WeightDtype::Q4_0, 4, 4, 1, 64, 30),
            (WeightDtype::F16, 6, 7, 2, 28, 20),
        ] {
            check_block(ctx, dtype, (tokens, e, k, d, f));
        }
    }

    fn check_block(
        ctx: &GpuContext,
        dtype: WeightDtype,
        (tokens, e, k, d, f): (usize, usize, usize, usize, usize),
    ) {
        let (dp, fp) = (padded_cols(d), padded_cols(f));
        let ep = padded_cols(e);
        let x = random_values(tokens * dp, 3, 1.0);
        let x: Vec<f32> = x
            .chunks_exact(dp)
            .flat_map(|r| {
                r.iter()
                    .enumerate()
                    .map(|(i, &v)| if i < d { v } else { 0.0 })
            })
            .collect();
        let scale = |k: usize| (3.0 / k as f32).sqrt();
        let router = random_values(d * e, 11, scale(d));
        // Each expert: gate|up (d × 2f, each half padded) and down (f × d).
        let gu: Vec<Vec<f32>> = (0..e)
            .map(|i| random_values(d * 2 * fp, 100 + i as u64, scale(d)))
            .map(|mut w| {
                for r in 0..d {
                    for c in 0..2 * fp {
                        if c % fp >= f {
                            w[r * 2 * fp + c] = 0.0;
                        }
                    }
                }
                w
            })
            .collect();
        let down: Vec<Vec<f32>> = (0..e)
            .map(|i| random_values(fp * d, 200 + i as u64, scale(f)))
            .map(|mut w| {
                w[f * d..].iter_mut().for_each(|v| *v = 0.0);
                w
            })
            .collect();
        let encoded = |w: &[f32], k: usize, n: usize| encode_weights(dtype, w, k, n);
        let gu_enc: Vec<_> = gu.iter().map(|w| encoded(w, d, 2 * fp)).collect();
        let down_enc: Vec<_> = down.iter().map(|w| encoded(w, fp, dp_cols(d))).collect();
        // Two slabs: experts 0..e/2 and e/2..e.
        let half = e / 2;
        // Experts' rows back to back (each encoding's word padding dropped), a spare word after
        // the last.
        let slab = |parts: &[(Vec<u8>, Vec<f32>)],
                    first: usize,
                    count: usize,
                    (n, k): (usize, usize)| ExpertSlab {
            buffer: ctx
                .storage_with(
                    "experts",
                    &[
                        parts[first..first + count]
                            .iter()
                            .flat_map(|p| p.0[..n * dtype.row_bytes(padded_cols(k))].to_vec())
                            .collect::<Vec<u8>>(),
                        vec![0; 8],
                    ]
                    .concat(),
                )
                .unwrap(),
            first: first as u32,
            count: count as u32,
        };
        let gu_shape = (2 * fp, d);
        let down_shape = (dp, fp);
        let gu_slabs = [
            slab(&gu_enc, 0, half, gu_shape),
            slab(&gu_enc, half, e - half, gu_shape),
        ];
        let down_slabs = [
            slab(&down_enc, 0, half, down_shape),
            slab(&down_enc, half, e - half, down_shape),
        ];

        // Router logits on the host (the router product is an ordinary product).
        let logits: Vec<f32> = (0..tokens)
            .flat_map(|t| {
                let x = &x;
                let router = &router;
                (0..ep).map(move |c| {
                    if c < e {
                        (0..d).map(|r| x[t * dp + r] * router[r * e + c]).sum()
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        let layout = RouteLayout {
            tokens: tokens as u32,
            k: k as u32,
            n_experts: e as u32,
        };
        let kernels = MoeKernels::new(ctx, dtype).unwrap();
        let buf = |label, v: &[f32]| ctx.storage_with(label, bytemuck::cast_slice(v)).unwrap();
        let (x_buf, logits_buf) = (buf("x", &x), buf("logits", &logits));
        let h0 = random_values(tokens * dp, 5, 1.0);
        let h = buf("h", &h0);
        let route = ctx.storage_zeroed("route", layout.route_bytes()).unwrap();
        let gate = ctx.storage_zeroed("gate", layout.gate_bytes()).unwrap();
        let stats = ctx.storage_zeroed("stats", 4).unwrap();
        let rows = layout.assignments() as usize;
        let gu_out = ctx
            .storage_zeroed("gu", (rows * 2 * fp * 4) as u64)
            .unwrap();
        let act = ctx.storage_zeroed("act", (rows * fp * 4) as u64).unwrap();
        let y = ctx.storage_zeroed("y", (rows * dp * 4) as u64).unwrap();
        let swiglu = swiglu::SwiGlu::new(ctx, 64).unwrap();
        let mut list = vec![
            kernels
                .route(
                    ctx,
                    layout,
                    0,
                    (&logits_buf, ep as u32),
                    &route,
                    &gate,
                    &stats,
                )
                .unwrap(),
        ];
        for s in &gu_slabs {
            let pr = ExpertProduct {
                n: (2 * fp) as u32,
                k4: (dp / 4) as u32,
                a: &x_buf,
                lda4: (dp / 4) as u32,
                gather: true,
                out: &gu_out,
                ldc: (2 * fp) as u32,
            };
            list.push(kernels.experts(ctx, layout, &route, s, &pr).unwrap());
        }
        list.push(
            swiglu
                .dispatch(ctx, rows as u32, (fp / 4) as u32, &gu_out, &act)
                .unwrap(),
        );
        for s in &down_slabs {
            let pr = ExpertProduct {
                n: dp as u32,
                k4: (fp / 4) as u32,
                a: &act,
                lda4: (fp / 4) as u32,
                gather: false,
                out: &y,
                ldc: dp as u32,
            };
            list.push(kernels.experts(ctx, layout, &route, s, &pr).unwrap());
        }
        list.push(
            kernels
                .combine(ctx, layout, (&route, &gate), &y, (dp / 4) as u32, &h)
                .unwrap(),
        );
        ctx.execute(&list).unwrap();
        let got = ctx.read_f32(&h, tokens * dp).unwrap();

        // Reference: the encoded (dequantised) weights, in f64.
        let mut want = Vec::with_capacity(tokens * dp);
        for t in 0..tokens {
            let lg: Vec<f64> = (0..e).map(|c| f64::from(logits[t * ep + c])).collect();
            let mut out: Vec<f64> = (0..dp).map(|c| f64::from(h0[t * dp + c])).collect();
            for (expert, g) in reference_route(&lg, k) {
                let w = &gu_enc[expert].1;
                let m: Vec<f64> = (0..fp)
                    .map(|c| {
                        let dotp = |col: usize| -> f64 {
                            (0..d)
                                .map(|r| f64::from(x[t * dp + r]) * f64::from(w[r * 2 * fp + col]))
                                .sum()
                        };
                        swiglu::reference(dotp(c), dotp(fp + c))
                    })
                    .collect();
                let wd = &down_enc[expert].1;
                for (c, o) in out.iter_mut().enumerate().take(d) {
                    let v: f64 = (0..fp).map(|r| m[r] * f64::from(wd[r * dp + c])).sum();
                    *o += g * v;
                }
            }
            want.extend(out);
        }
        let c = compare(&got, &want, NMSE_F32, format!("moe block {dtype:?}"));
        assert!(
            c.failure.is_none(),
            "{dtype:?} {tokens} tokens {e}/{k}: {c:?}"
        );
    }

    /// Down projections write every padded output column (zeros past d), so the combine's
    /// vec4s are whole.
    fn dp_cols(d: usize) -> usize {
        padded_cols(d)
    }
}
