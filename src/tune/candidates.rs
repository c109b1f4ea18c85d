//! The candidate configurations for each kernel, by tier; the tier defaults always come first,
//! so tuning never ends worse than the defaults.

use super::{Effort, MathChoice};
use crate::gpu::GpuContext;
use crate::kernels::KernelConfig;
use crate::kernels::attention::{AttentionTiles, DecodeAttentionLayout};
use crate::kernels::matmul::{GemvConfig, ProductTiles};

/// Candidates for each kernel.
#[derive(Debug, Clone)]
pub struct Lists {
    /// Many-row product tiles.
    pub products: Vec<ProductTiles>,
    /// Few-row (GEMV) kernels.
    pub gemvs: Vec<GemvConfig>,
    /// Workgroup sizes of attention (prefill and decode, each tuned on its own).
    pub attention_wgs: Vec<u32>,
    /// Workgroup sizes of RoPE and of SwiGLU (each tuned on its own).
    pub elementwise_wgs: Vec<u32>,
    /// Prefill attention layouts: FlashAttention-2 tiles, or none (a row per invocation).
    pub prefill_tiles: Vec<Option<AttentionTiles>>,
    /// Layouts of decode attention's split pass.
    pub decode_layouts: Vec<DecodeAttentionLayout>,
    /// Keys per split of decode attention (the least, in the workgroup layout).
    pub splits: Vec<u32>,
    /// RMSNorm workgroup sizes.
    pub norms: Vec<u32>,
}

/// Every candidate for this device at this effort, product tiles from every tier `math` opens.
pub fn all(ctx: &GpuContext, defaults: &KernelConfig, effort: Effort, math: &MathChoice) -> Lists {
    let quick = effort == Effort::Quick;
    let cpu = ctx.traits().cpu;
    let max_threads = ctx.limits.max_compute_invocations_per_workgroup;
    let mut products = vec![defaults.matmul.tiles];
    if cpu {
        // Register tier: lanes are SIMD lanes; rows per lane trade registers for reuse of each
        // weight load.
        let shapes: &[(u32, u32, u32)] = if quick {
            &[(64, 4, 4), (64, 8, 4), (64, 4, 8), (64, 2, 4)]
        } else {
            &[
                (64, 8, 1),
                (64, 4, 2),
                (64, 2, 4),
                (64, 4, 1),
                (64, 2, 2),
                (64, 8, 2),
                (64, 4, 4),
                (64, 1, 4),
                (64, 8, 4),
                (64, 4, 8),
                (64, 2, 8),
                (32, 4, 4),
                (16, 4, 4),
                (128, 4, 4),
            ]
        };
        products.extend(shapes.iter().map(|&(wg_x, tm, tn)| ProductTiles::Register {
            wg_x,
            wg_y: 1,
            tm,
            tn,
        }));
    } else if crate::kernels::matmul::workgroup_tiles_fit(&ctx.limits).is_ok() {
        let shapes: &[(u32, u32, u32, u32)] = if quick {
            &[
                (64, 64, 4, 4),
                (128, 64, 4, 4),
                (64, 128, 4, 4),
                (32, 32, 2, 2),
            ]
        } else {
            &[
                (64, 64, 4, 4),
                (128, 64, 4, 4),
                (64, 128, 4, 4),
                (128, 128, 4, 4),
                (32, 32, 2, 2),
                (64, 32, 4, 2),
                (32, 64, 2, 4),
                (128, 32, 4, 2),
                (32, 128, 2, 4),
                (64, 64, 2, 2),
            ]
        };
        products.extend(
            shapes
                .iter()
                .filter(|&&(bm, bn, tm, tn)| (bm / tm) * (bn / tn) <= max_threads)
                .map(|&(bm, bn, tm, tn)| ProductTiles::Workgroup { bm, bn, tm, tn }),
        );
    }
    if let Some(support) = &math.coop {
        products.extend(crate::kernels::matmul_coop::candidates(support, quick));
    }
    if !math.allows_simt() {
        products.retain(|t| matches!(t, ProductTiles::Coop { .. }));
    }
    dedup(&mut products);

    let mut gemvs = vec![defaults.matmul.gemv];
    // Subgroup reductions lose to the rows kernel on CPU adapters (lavapipe): a quick tune
    // there skips them.
    if let Some(sg) = ctx.fixed_subgroup_size().filter(|_| !(cpu && quick)) {
        let multiples: &[u32] = if quick { &[1, 4] } else { &[1, 2, 4, 8] };
        gemvs.extend(
            multiples
                .iter()
                .filter(|&&m| sg * m <= max_threads)
                .map(|&m| GemvConfig::Subgroup { wg: sg * m, sg }),
        );
    }
    if cpu {
        let sizes: &[(u32, u32)] = if quick {
            &[(64, 1), (64, 2), (64, 4)]
        } else {
            &[
                (16, 1),
                (64, 1),
                (16, 2),
                (64, 2),
                (128, 2),
                (16, 4),
                (64, 4),
            ]
        };
        gemvs.extend(sizes.iter().map(|&(wg, tn)| GemvConfig::Rows { wg, tn }));
    } else {
        let sizes: &[u32] = if quick { &[128] } else { &[64, 128, 256] };
        gemvs.extend(sizes.iter().map(|&wg| GemvConfig::Split { wg }));
    }
    dedup(&mut gemvs);

    let mut attention_wgs = vec![defaults.wg];
    attention_wgs.extend_from_slice(if quick {
        &[16, 64]
    } else {
        &[8, 16, 32, 64, 128]
    });
    attention_wgs.retain(|&wg| wg <= max_threads);
    dedup(&mut attention_wgs);

    let mut elementwise_wgs = vec![defaults.rope_wg()];
    elementwise_wgs.extend_from_slice(if quick {
        &[16, 128]
    } else {
        &[8, 16, 32, 128, 256]
    });
    elementwise_wgs.retain(|&wg| wg <= max_threads);
    dedup(&mut elementwise_wgs);

    // FlashAttention-2 tiles: more query rows share each K/V tile (fewer loads per row), more
    // keys per tile mean fewer barriers; both cost workgroup memory, and tiles too large for
    // the adapter shrink when built. CPU adapters keep their default unless the tune is full.
    let mut prefill_tiles = vec![defaults.prefill_attention_tiles];
    let tile = |br, bc| Some(AttentionTiles { br, bc });
    if !cpu || !quick {
        prefill_tiles.extend(if quick {
            vec![tile(16, 16), tile(32, 16), tile(16, 32)]
        } else {
            vec![
                tile(16, 16),
                tile(32, 16),
                tile(16, 32),
                tile(32, 32),
                tile(8, 16),
                tile(16, 8),
                tile(64, 16),
            ]
        });
    }
    if cpu && !quick {
        prefill_tiles.push(None);
    }
    dedup(&mut prefill_tiles);

    // Both decode layouts where a full tune has time; a quick one keeps the tier's.
    let mut decode_layouts = vec![defaults.decode_attention_layout];
    if !quick {
        decode_layouts.extend([
            DecodeAttentionLayout::Workgroup,
            DecodeAttentionLayout::Invocation,
        ]);
    }
    dedup(&mut decode_layouts);

    let mut splits = vec![defaults.decode_split_len];
    splits.extend_from_slice(if quick {
        &[32, 64, 128]
    } else {
        &[16, 32, 64, 128, 256]
    });
    dedup(&mut splits);

    let mut norms = vec![defaults.norm_wg];
    norms.extend_from_slice(match (cpu, quick) {
        (true, true) => &[1, 8][..],
        (true, false) => &[1, 8, 64],
        (false, true) => &[64, 256],
        (false, false) => &[32, 64, 128, 256],
    });
    norms.retain(|&wg| wg <= max_threads.min(256));
    dedup(&mut norms);
    Lists {
        products,
        gemvs,
        attention_wgs,
        elementwise_wgs,
        prefill_tiles,
        decode_layouts,
        splits,
        norms,
    }
}

/// Drops repeats, keeping the first of each (the defaults stay first).
fn dedup<T: PartialEq + Clone>(list: &mut Vec<T>) {
    let mut seen: Vec<T> = Vec::new();
    list.retain(|x| {
        if seen.contains(x) {
            false
        } else {
            seen.push(x.clone());
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::test_context;

    #[test]
    fn defaults_come_first_and_nothing_repeats() {
        let ctx = test_context();
        let defaults = KernelConfig::default_for(ctx.traits());
        let simt = MathChoice::new(
            ctx,
            crate::kernels::WeightDtype::F32,
            tokbench_core::kernel_config::MathRequest::Simt,
        )
        .unwrap();
        for effort in [Effort::Quick, Effort::Full] {
            let l = all(ctx, &defaults, effort, &simt);
            assert_eq!(l.products[0], defaults.matmul.tiles);
            assert_eq!(l.gemvs[0], defaults.matmul.gemv);
            assert_eq!(l.splits[0], defaults.decode_split_len);
            assert_eq!(l.prefill_tiles[0], defaults.prefill_attention_tiles);
            assert_eq!(l.decode_layouts[0], defaults.decode_attention_layout);
            assert_eq!(l.elementwise_wgs[0], defaults.rope_wg());
            assert_eq!(l.norms[0], defaults.norm_wg);
            for (i, p) in l.products.iter().enumerate() {
                assert!(!l.products[..i].contains(p));
            }
            assert!(l.products.len() >= 4 && l.gemvs.len() >= 2);
        }
        let quick = all(ctx, &defaults, Effort::Quick, &simt);
        let full = all(ctx, &defaults, Effort::Full, &simt);
        assert!(quick.products.len() < full.products.len());
    }

    #[test]
    fn coop_candidates_come_only_from_the_tiers_math_opens() {
        use crate::kernels::WeightDtype::F16;
        use tokbench_core::kernel_config::MathRequest::{Auto, Coopmat};
        let is_coop = |t: &ProductTiles| matches!(t, ProductTiles::Coop { .. });
        let ctx = test_context();
        if crate::kernels::matmul_coop::support_or_skip("coop_candidates").is_none() {
            return;
        }
        let only = MathChoice::new(ctx, F16, Coopmat).unwrap();
        let l = all(ctx, &only.defaults(ctx), Effort::Quick, &only);
        assert!(l.products.len() >= 2 && l.products.iter().all(is_coop));
        let auto = MathChoice::new(ctx, F16, Auto).unwrap();
        let l = all(ctx, &auto.defaults(ctx), Effort::Quick, &auto);
        assert!(l.products.iter().any(is_coop) && !l.products.iter().all(is_coop));
    }
}
