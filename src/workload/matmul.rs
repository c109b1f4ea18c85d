//! The matmul kernel as a workload: C = A · B at one shape, B in f32 or f16, on one math tier.

use std::collections::BTreeMap;

use super::{Description, Launch, Prepared, Progress, Workload};
use crate::InputError;
use crate::gpu::{Device, DeviceFacts, GpuContext};
use crate::kernels::layout::{pad_matrix, random_values};
use crate::kernels::matmul::{self, Matmul, MatmulConfig, Product, ProductTiles};
use crate::kernels::matmul_coop;
use crate::kernels::verify;
use crate::kernels::{KernelConfig, WeightDtype};
use crate::model::{Work, flops};
use crate::result::{Correctness, MathRecord, WorkloadKind};
use crate::tune::{MathChoice, math};
use tokbench_core::kernel_config::{Math, MathRequest};

/// Products up to this many multiply-adds are checked in full; larger ones on sampled rows.
const FULL_CHECK_MACS: f64 = 3e8;
/// Rows checked when a product is too large to check in full.
const SAMPLED_ROWS: usize = 64;

/// C (m × n) = A (m × k) · B (k × n).
#[derive(Debug, Clone, PartialEq)]
pub struct MatmulWorkload {
    /// Rows of A and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Columns of A, rows of B.
    pub k: usize,
    /// Element type of B (A and C are f32).
    pub dtype: WeightDtype,
    /// The many-row kernel's tiles; cooperative ones run for any m (not only above the GEMV's
    /// rows).
    pub tiles: ProductTiles,
    /// The math record the result carries.
    pub math: MathRecord,
    /// The tiles were chosen by name (`kernel matmul --tiles`): the workload id carries their
    /// label, so several choices measure side by side in one run.
    pub named_tiles: bool,
}

impl MatmulWorkload {
    /// An f32 product on the SIMT tier defaults.
    pub fn simt_f32(device: &DeviceFacts, (m, n, k): (usize, usize, usize)) -> Self {
        let tiles = KernelConfig::default_for(device.traits()).matmul.tiles;
        Self {
            m,
            n,
            k,
            dtype: WeightDtype::F32,
            tiles,
            math: math::record(Math::SimtF32, MathRequest::Simt, "--math simt".into()),
            named_tiles: false,
        }
    }

    /// A product on the tiles given (`kernel matmul --tiles`), whatever the tier defaults;
    /// `dtype` `None` takes the device's default. Tiles the adapter cannot build fail when
    /// the workload is prepared; large tiles over its workgroup memory run with a smaller BK
    /// ([`matmul::fit_large_tiles`]).
    pub fn with_tiles(
        device: &DeviceFacts,
        (m, n, k): (usize, usize, usize),
        dtype: Option<WeightDtype>,
        tiles: ProductTiles,
    ) -> anyhow::Result<Self> {
        let (dtype, _) = super::plan::resolve_dtype(dtype, device)?;
        let request = if tiles.math(dtype).is_coop() {
            MathRequest::Coopmat
        } else {
            MathRequest::Simt
        };
        Ok(Self {
            m,
            n,
            k,
            dtype,
            tiles,
            math: math::record(tiles.math(dtype), request, "--tiles".into()),
            named_tiles: true,
        })
    }

    /// The workloads `tokbench kernel matmul` measures for `request`: the SIMT kernel; with
    /// cooperative matrices the cooperative kernel too (the SIMT one of the same dtype beside
    /// it, so the two compare in one run). `dtype` `None` takes the device's default
    /// ([`super::plan::resolve_dtype`]). `--math coopmat` where the tier cannot run is an
    /// input error.
    pub fn for_math(
        device: Device<'_>,
        (m, n, k): (usize, usize, usize),
        dtype: Option<WeightDtype>,
        request: MathRequest,
    ) -> anyhow::Result<Vec<Self>> {
        let facts = device.facts();
        let (dtype, _) = super::plan::resolve_dtype(dtype, &facts)?;
        let choice = match device.gpu() {
            Some(ctx) => MathChoice::new(ctx, dtype, request)?,
            None => {
                MathChoice::without_coop(request, "the mock device has no cooperative matrices")?
            }
        };
        let simt_tiles = KernelConfig::default_for(facts.traits()).matmul.tiles;
        let simt = |reason: String| Self {
            m,
            n,
            k,
            dtype,
            tiles: simt_tiles,
            math: math::record(simt_tiles.math(dtype), request, reason),
            named_tiles: false,
        };
        Ok(match &choice.coop {
            None => {
                let why = choice.coop_unavailable.clone().unwrap_or_default();
                vec![simt(match request {
                    MathRequest::Auto => format!("auto: SIMT because {why}"),
                    _ => why,
                })]
            }
            Some(support) => {
                let tiles = matmul_coop::default_tiles(support);
                let coop = Self {
                    tiles,
                    math: math::record(
                        Math::CoopmatF16,
                        request,
                        format!(
                            "--math {}: the cooperative-matrix kernel, measured beside the SIMT \
                             one of the same dtype",
                            request.name()
                        ),
                    ),
                    ..simt(String::new())
                };
                let baseline = simt(format!(
                    "--math {}: the SIMT baseline of the cooperative-matrix kernel",
                    request.name()
                ));
                vec![coop, baseline]
            }
        })
    }

    fn buffer_bytes(&self) -> [(&'static str, u128); 3] {
        let (m, n, k) = (self.m as u128, self.n as u128, self.k as u128);
        let pad = |x: u128| x.div_ceil(4) * 4;
        [
            ("A", m * pad(k) * 4),
            ("B", pad(n) * self.dtype.row_bytes(pad(k) as usize) as u128),
            ("C", m * pad(n) * 4),
        ]
    }

    fn is_coop(&self) -> bool {
        matches!(self.tiles, ProductTiles::Coop { .. })
    }

    /// Rows of C checked against the reference: all of them for small products.
    fn checked_rows(&self) -> Vec<usize> {
        let macs = self.m as f64 * self.n as f64 * self.k as f64;
        if macs <= FULL_CHECK_MACS || self.m <= SAMPLED_ROWS {
            return (0..self.m).collect();
        }
        let mut rows: Vec<usize> = (0..SAMPLED_ROWS)
            .map(|i| i * (self.m - 1) / (SAMPLED_ROWS - 1))
            .collect();
        rows.dedup();
        rows
    }
}

impl Workload for MatmulWorkload {
    fn describe(&self) -> Description {
        let (m, n, k) = (self.m, self.n, self.k);
        let tier = if self.is_coop() { "-coopmat" } else { "" };
        let named = if self.named_tiles {
            format!("-{}", self.tiles.label())
        } else {
            String::new()
        };
        Description {
            id: format!("matmul-{}{tier}-m{m}-n{n}-k{k}{named}", self.dtype.name()),
            kind: WorkloadKind::Matmul,
            shape: BTreeMap::from([
                ("m".to_string(), m as u64),
                ("n".to_string(), n as u64),
                ("k".to_string(), k as u64),
            ]),
            dtype: self.dtype,
            work: Work {
                flops: flops::product_flops(m, n, k),
                bytes: flops::product_bytes(m, n, k, self.dtype),
            },
            math: Some(self.math.clone()),
            tokens: None,
        }
    }

    fn check_fits(&self, device: &DeviceFacts) -> anyhow::Result<()> {
        if self.m == 0 || self.n == 0 || self.k == 0 {
            return Err(InputError::new(format!(
                "matmul {}×{}×{}: every dimension must be at least 1",
                self.m, self.n, self.k
            ))
            .into());
        }
        let limit = device.max_binding_bytes();
        for (name, bytes) in self.buffer_bytes() {
            if bytes > u128::from(limit) {
                return Err(InputError::new(format!(
                    "matmul --m {} --n {} --k {}: matrix {name} needs {} MiB but this adapter \
                     binds at most {} MiB per buffer; choose smaller sizes",
                    self.m,
                    self.n,
                    self.k,
                    bytes >> 20,
                    limit >> 20
                ))
                .into());
            }
        }
        Ok(())
    }

    fn prepare<'a>(
        &'a self,
        ctx: &'a GpuContext,
        _progress: Progress<'_>,
    ) -> anyhow::Result<Box<dyn Prepared + 'a>> {
        self.check_fits(&ctx.facts())?;
        let (m, n, k) = (self.m, self.n, self.k);
        let a = random_values(m * k, 1, 1.0);
        // Stored as the model's weights are: one output per row, K contiguous, in the format;
        // `b` is what the kernel computes with (the dequantized values).
        let (b_bytes, b) = matmul::encode_weights(self.dtype, &random_values(k * n, 2, 1.0), k, n);
        let a_buf = ctx.storage_with("A", bytemuck::cast_slice(&pad_matrix(&a, m, k, m)))?;
        let b_buf = ctx.storage_with("B", &b_bytes)?;
        let c_buf = ctx.storage_zeroed("C", (m * n * 4) as u64)?;
        let config = MatmulConfig {
            tiles: self.tiles,
            gemv: KernelConfig::default_for(ctx.traits()).matmul.gemv,
        };
        let kernel = Matmul::new(ctx, config, self.dtype)?;
        if let Some(note) = kernel.note() {
            eprintln!("tokbench: {}: {note}", self.id());
        }
        let product = Product::dense(&a_buf, &b_buf, &c_buf, (m, n, k));
        let dispatch = if self.is_coop() {
            kernel.dispatch_tiles(ctx, &product)?
        } else {
            kernel.dispatch(ctx, &product)?
        };
        Ok(Box::new(Launch {
            launch: dispatch,
            check: Box::new(move |ctx| self.verify(ctx, &a, &b, &c_buf)),
        }))
    }
}

impl MatmulWorkload {
    /// C read back against the f64 reference: every row of a small product, sampled rows of a
    /// large one.
    fn verify(
        &self,
        ctx: &GpuContext,
        a: &[f32],
        b: &[f32],
        c_buf: &wgpu::Buffer,
    ) -> anyhow::Result<Correctness> {
        let (m, n, k) = (self.m, self.n, self.k);
        let c = ctx.read_f32(c_buf, m * n)?;
        let rows = self.checked_rows();
        let reference = matmul::reference_rows(a, b, (n, k), &rows);
        let gpu: Vec<f32> = rows
            .iter()
            .flat_map(|&r| &c[r * n..(r + 1) * n])
            .copied()
            .collect();
        let what = if rows.len() == m {
            format!("cpu-f64, all {} outputs", m * n)
        } else {
            format!(
                "cpu-f64, {} of {m} rows ({} outputs)",
                rows.len(),
                gpu.len()
            )
        };
        let threshold = verify::nmse_threshold(self.dtype);
        Ok(verify::compare(&gpu, &reference, threshold, what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::gpu::test_context;

    #[test]
    fn large_products_check_sampled_rows_including_ends() {
        let w = MatmulWorkload::simt_f32(&test_context().facts(), (4096, 4096, 4096));
        let rows = w.checked_rows();
        assert_eq!(rows.len(), SAMPLED_ROWS);
        assert_eq!((rows[0], *rows.last().unwrap()), (0, 4095));
        let small = MatmulWorkload::simt_f32(&test_context().facts(), (100, 1, 100));
        assert_eq!(small.checked_rows().len(), 100);
    }

    /// Tiles chosen by `--tiles` measure side by side: each id names its tiles, and large tiles
    /// over the adapter's workgroup memory still build (a smaller BK).
    #[test]
    fn named_tiles_get_their_own_ids_and_run() {
        let ctx = test_context();
        let large = ProductTiles::LARGE_DEFAULT;
        let register = KernelConfig::default_for(ctx.traits()).matmul.tiles;
        let ids: Vec<String> = [register, large]
            .into_iter()
            .map(|t| {
                MatmulWorkload::with_tiles(&ctx.facts(), (20, 40, 300), Some(WeightDtype::F32), t)
                    .unwrap()
                    .id()
            })
            .collect();
        assert_eq!(
            ids[1],
            "matmul-f32-m20-n40-k300-large-128x128-bk16-8x8-sk16"
        );
        assert_ne!(ids[0], ids[1]);
        let w =
            MatmulWorkload::with_tiles(&ctx.facts(), (20, 40, 300), Some(WeightDtype::F32), large)
                .unwrap();
        let prepared = w.prepare(ctx, &mut |_| {}).unwrap();
        ctx.execute(prepared.execution()).unwrap();
        let correctness = prepared.verify(ctx).unwrap();
        assert!(correctness.failure.is_none(), "{correctness:?}");
    }

    #[test]
    fn ids_name_the_shape_dtype_and_tier() {
        let ctx = test_context();
        let w = MatmulWorkload::simt_f32(&ctx.facts(), (1, 2, 3));
        assert_eq!(w.id(), "matmul-f32-m1-n2-k3");
        let f16 = |math| {
            MatmulWorkload::for_math(Device::Gpu(ctx), (1, 2, 3), Some(WeightDtype::F16), math)
                .unwrap()
        };
        let simt = f16(MathRequest::Simt);
        assert_eq!(simt.len(), 1);
        assert_eq!(simt[0].id(), "matmul-f16-m1-n2-k3");
        assert_eq!(simt[0].math.tier, Math::SimtF16);
        let auto = f16(MathRequest::Auto);
        if auto.len() == 2 {
            assert_eq!(auto[0].id(), "matmul-f16-coopmat-m1-n2-k3");
            assert_eq!(auto[0].math.tier, Math::CoopmatF16);
        } else {
            assert!(
                auto[0].math.reason.starts_with("auto: SIMT because"),
                "{:?}",
                auto[0].math
            );
        }
    }
}
