//! The candidate configurations for each kernel, by tier; the tier defaults always come first,
//! so tuning never ends worse than the defaults.

use super::{Effort, MathChoice};
use crate::gpu::DeviceFacts;
use crate::kernels::KernelConfig;
use crate::kernels::attention::{AttentionTiles, DecodeAttentionLayout};
use crate::kernels::matmul::{GemvConfig, ProductTiles, subgroup_gemv_fits};

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
/// Pure data: `facts` may describe an adapter that is not here (the tier tests use it so).
pub fn all(
    facts: &DeviceFacts,
    defaults: &KernelConfig,
    effort: Effort,
    math: &MathChoice,
) -> Lists {
    let quick = effort == Effort::Quick;
    let cpu = facts.is_cpu();
    let max_threads = facts.limits.max_compute_invocations_per_workgroup;
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
    } else {
        // Large tiles (bm, bn, bk, tm, tn, split_k): the register block and BK trade loads per
        // FMA against occupancy and barriers; split_k 1 lets skinny shapes try no split. Those
        // over the adapter's workgroup memory are left out: built, they would fall back to a
        // smaller BK that is a candidate of its own.
        let large: &[(u32, u32, u32, u32, u32, u32)] = if quick {
            &[
                (128, 128, 16, 8, 8, 16),
                (128, 128, 8, 8, 8, 16),
                (128, 64, 16, 8, 8, 16),
                (64, 64, 16, 4, 4, 16),
                (128, 128, 16, 8, 8, 1),
            ]
        } else {
            &[
                (128, 128, 16, 8, 8, 16),
                (128, 128, 8, 8, 8, 16),
                (128, 128, 32, 8, 8, 16),
                (128, 64, 16, 8, 8, 16),
                (64, 128, 16, 8, 8, 16),
                (256, 128, 8, 8, 8, 16),
                (128, 256, 8, 8, 8, 16),
                (64, 64, 16, 4, 4, 16),
                (64, 64, 32, 4, 4, 16),
                (128, 128, 16, 8, 4, 16),
                (128, 128, 16, 8, 8, 4),
                (128, 128, 16, 8, 8, 64),
                (128, 128, 16, 8, 8, 1),
            ]
        };
        products.extend(
            large
                .iter()
                .map(|&(bm, bn, bk, tm, tn, split_k)| {
                    ProductTiles::large(bm, bn, bk, tm, tn, split_k)
                })
                .filter(|&t| {
                    crate::kernels::matmul::fit_large_tiles(t, &facts.limits)
                        .is_ok_and(|(fitted, _)| fitted == t)
                }),
        );
    }
    if !cpu && crate::kernels::matmul::workgroup_tiles_fit(&facts.limits).is_ok() {
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
    if let Some(sizes) = facts.subgroup_sizes().filter(|_| !(cpu && quick)) {
        // (invocations, outputs per subgroup pass) at the typical size, the invocations
        // rounded up to whole subgroups of the largest size.
        let shapes: &[(u32, u32)] = match (cpu, quick) {
            (true, _) => &[(8, 1), (32, 1), (32, 2), (32, 4)],
            (false, true) => &[(128, 1), (128, 4), (256, 2)],
            (false, false) => &[
                (64, 1),
                (64, 2),
                (64, 4),
                (128, 1),
                (128, 2),
                (128, 4),
                (256, 1),
                (256, 2),
                (256, 4),
                (512, 1),
                (512, 2),
            ],
        };
        let at = |wg: u32, rows, sg| GemvConfig::Subgroup {
            wg: wg.next_multiple_of(sizes.max),
            rows,
            sg,
        };
        gemvs.extend(
            shapes
                .iter()
                .map(|&(wg, rows)| at(wg, rows, sizes.typical())),
        );
        // Which size the grid assumes matters only where the driver may pick another: a full
        // tune there also tries the range's ends.
        if !quick && sizes.min != sizes.max {
            let wg = sizes.gemv_wg();
            gemvs.extend([at(wg, 2, sizes.min), at(wg, 2, sizes.max)]);
        }
        gemvs.retain(|&g| subgroup_gemv_fits(g, Some(sizes), max_threads).is_ok());
    }
    if cpu {
        // More outputs per lane share each load of A, which a CPU driver loads a lane and a
        // component at a time; fewer per workgroup keep small products on every core.
        let sizes: &[(u32, u32)] = if quick {
            &[(8, 4), (8, 8), (4, 16)]
        } else {
            &[(16, 2), (8, 4), (8, 8), (2, 16), (4, 16), (8, 16), (16, 16)]
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

    // Every decode layout the adapter can run where a full tune has time; a quick one keeps
    // the tier's.
    let mut decode_layouts = vec![defaults.decode_attention_layout];
    if !quick {
        decode_layouts.extend([
            DecodeAttentionLayout::Workgroup,
            DecodeAttentionLayout::Invocation,
        ]);
        if facts.subgroup_sizes().is_some() {
            decode_layouts.push(DecodeAttentionLayout::Subgroup);
        }
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
            let l = all(&ctx.facts(), &defaults, effort, &simt);
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
        let quick = all(&ctx.facts(), &defaults, Effort::Quick, &simt);
        let full = all(&ctx.facts(), &defaults, Effort::Full, &simt);
        assert!(quick.products.len() < full.products.len());
    }

    /// An adapter as wgpu 30 describes it (subgroup range as its backend reports it), with
    /// SUBGROUP where `subgroups`; none of them is on this machine.
    fn fake(
        name: &str,
        device_type: wgpu::DeviceType,
        backend: wgpu::Backend,
        subgroups: Option<(u32, u32)>,
    ) -> DeviceFacts {
        let (min, max) = subgroups.unwrap_or((4, 128));
        let mut features = wgpu::Features::SHADER_F16 | wgpu::Features::TIMESTAMP_QUERY;
        if subgroups.is_some() {
            features |= wgpu::Features::SUBGROUP;
        }
        DeviceFacts {
            info: wgpu::AdapterInfo {
                name: name.into(),
                vendor: 0,
                device: 0,
                device_type,
                device_pci_bus_id: String::new(),
                driver: String::new(),
                driver_info: String::new(),
                backend,
                subgroup_min_size: min,
                subgroup_max_size: max,
                transient_saves_memory: None,
                limit_bucket: None,
            },
            features,
            limits: wgpu::Limits {
                max_compute_workgroup_storage_size: 32768,
                max_compute_invocations_per_workgroup: 1024,
                ..wgpu::Limits::default()
            },
            timing_method: crate::result::TimingMethod::GpuTimestamps,
            cooperative: Vec::new(),
        }
    }

    /// The tier and kernels chosen for adapters described, not opened: every GPU with SUBGROUP
    /// gets the subgroup GEMV (whatever its size range), whole subgroups of its largest size
    /// per workgroup, in its defaults and in every candidate, and the subgroup decode
    /// attention; lavapipe keeps the CPU tier.
    #[test]
    fn each_adapter_gets_its_tier_and_a_subgroup_gemv_that_fits_it() {
        use wgpu::Backend::{Gl, Metal, Vulkan};
        use wgpu::DeviceType::{Cpu, DiscreteGpu, IntegratedGpu};
        let gpus = [
            fake("NVIDIA H100 80GB HBM3", DiscreteGpu, Vulkan, Some((32, 32))),
            fake(
                "AMD Radeon RX 7900 XTX (RADV NAVI31)",
                DiscreteGpu,
                Vulkan,
                Some((32, 64)),
            ),
            fake(
                "AMD Instinct MI300X (RADV GFX942)",
                DiscreteGpu,
                Vulkan,
                Some((64, 64)),
            ),
            fake(
                "Intel(R) Arc(tm) A770 Graphics (DG2)",
                DiscreteGpu,
                Vulkan,
                Some((8, 32)),
            ),
            // wgpu's Metal backend reports 4..64 whatever the GPU; Apple's run 32 wide.
            fake("Apple M2 Max", IntegratedGpu, Metal, Some((4, 64))),
            fake("Apple M2 Max", IntegratedGpu, Metal, Some((32, 32))),
        ];
        let simt = MathChoice::without_coop(
            tokbench_core::kernel_config::MathRequest::Simt,
            "not opened",
        )
        .unwrap();
        for facts in &gpus {
            let sizes = facts.subgroup_sizes().expect("SUBGROUP");
            assert_eq!(
                (sizes.min, sizes.max),
                (facts.info.subgroup_min_size, facts.info.subgroup_max_size)
            );
            let defaults = KernelConfig::default_for(facts.traits());
            let name = &facts.info.name;
            assert!(
                matches!(defaults.matmul.tiles, ProductTiles::Large { .. }),
                "{name}: {:?}",
                defaults.matmul.tiles
            );
            let GemvConfig::Subgroup { wg, rows, sg } = defaults.matmul.gemv else {
                panic!("{name}: {:?}", defaults.matmul.gemv);
            };
            assert!(
                wg.is_multiple_of(sizes.max) && (sizes.min..=sizes.max).contains(&sg),
                "{name}: wg {wg} rows {rows} sg {sg}"
            );
            // Decode attention reduces scores with subgroups, its workgroup whole subgroups;
            // a full tune times the workgroup-memory layout beside it.
            assert_eq!(
                defaults.decode_attention_layout,
                DecodeAttentionLayout::Subgroup,
                "{name}"
            );
            assert!(
                defaults.decode_attention_wg().is_multiple_of(sizes.max),
                "{name}"
            );
            let full = all(facts, &defaults, Effort::Full, &simt);
            assert!(
                full.decode_layouts
                    .contains(&DecodeAttentionLayout::Workgroup),
                "{name}: {:?}",
                full.decode_layouts
            );
            for effort in [Effort::Quick, Effort::Full] {
                let l = all(facts, &defaults, effort, &simt);
                let subgroup: Vec<_> = l
                    .gemvs
                    .iter()
                    .filter(|g| matches!(g, GemvConfig::Subgroup { .. }))
                    .collect();
                assert!(subgroup.len() >= 3, "{name} {effort:?}: {:?}", l.gemvs);
                for &&g in &subgroup {
                    subgroup_gemv_fits(g, Some(sizes), 1024).unwrap();
                }
                // Several outputs per pass among them, and the workgroup fallback too.
                assert!(
                    subgroup
                        .iter()
                        .any(|g| matches!(g, GemvConfig::Subgroup { rows: 4, .. })),
                    "{name}: {subgroup:?}"
                );
                assert!(
                    l.gemvs
                        .iter()
                        .any(|g| matches!(g, GemvConfig::Split { .. }))
                );
                // The large tiles and split-K first, the smaller workgroup tiles after, every
                // one within the adapter's workgroup memory as it stands.
                assert!(
                    l.products.iter().all(|t| matches!(
                        t,
                        ProductTiles::Workgroup { .. } | ProductTiles::Large { .. }
                    )),
                    "{name}: {:?}",
                    l.products
                );
                let large: Vec<_> = l
                    .products
                    .iter()
                    .filter(|t| matches!(t, ProductTiles::Large { .. }))
                    .collect();
                assert!(large.len() >= 4, "{name} {effort:?}: {large:?}");
                assert!(large.iter().any(|t| matches!(
                    t,
                    ProductTiles::Large {
                        bm: 128,
                        bn: 128,
                        tm: 8,
                        tn: 8,
                        ..
                    }
                )));
                for t in &large[1..] {
                    assert!(
                        t.workgroup_bytes().unwrap() <= 32768,
                        "{name}: {t:?} over the limit"
                    );
                }
            }
        }

        // A GPU without SUBGROUP (wgpu's GL backend): the workgroup-memory reduction.
        let gl = fake("Mesa Intel(R) UHD 630", IntegratedGpu, Gl, None);
        assert_eq!(gl.subgroup_sizes(), None);
        let defaults = KernelConfig::default_for(gl.traits());
        assert_eq!(defaults.matmul.gemv, GemvConfig::Split { wg: 128 });
        let l = all(&gl, &defaults, Effort::Full, &simt);
        assert!(
            !l.gemvs
                .iter()
                .any(|g| matches!(g, GemvConfig::Subgroup { .. }))
        );
        assert_eq!(
            defaults.decode_attention_layout,
            DecodeAttentionLayout::Workgroup
        );
        assert!(!l.decode_layouts.contains(&DecodeAttentionLayout::Subgroup));

        // lavapipe: the CPU tier (register tiles, a lane per output row), and a quick tune as
        // short as before: no subgroup candidates, whose reductions lose there.
        let lavapipe = fake(
            "llvmpipe (LLVM 15.0.6, 256 bits)",
            Cpu,
            Vulkan,
            Some((8, 8)),
        );
        let defaults = KernelConfig::default_for(lavapipe.traits());
        assert!(matches!(
            defaults.matmul.tiles,
            ProductTiles::Register { .. }
        ));
        assert_eq!(defaults.matmul.gemv, GemvConfig::Rows { wg: 16, tn: 16 });
        assert_eq!(
            defaults.decode_attention_layout,
            DecodeAttentionLayout::Invocation
        );
        let quick = all(&lavapipe, &defaults, Effort::Quick, &simt);
        assert_eq!(quick.gemvs.len(), 4, "{:?}", quick.gemvs);
        assert!(
            quick
                .gemvs
                .iter()
                .all(|g| matches!(g, GemvConfig::Rows { .. }))
        );
        let full = all(&lavapipe, &defaults, Effort::Full, &simt);
        assert!(
            full.gemvs
                .iter()
                .any(|g| matches!(g, GemvConfig::Subgroup { .. }))
        );
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
        let l = all(&ctx.facts(), &only.defaults(ctx), Effort::Quick, &only);
        assert!(l.products.len() >= 2 && l.products.iter().all(is_coop));
        let auto = MathChoice::new(ctx, F16, Auto).unwrap();
        let l = all(&ctx.facts(), &auto.defaults(ctx), Effort::Quick, &auto);
        assert!(l.products.iter().any(is_coop) && !l.products.iter().all(is_coop));
    }
}
