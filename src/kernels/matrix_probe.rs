//! `shaders/matrix_probe.wgsl`: the peak cooperative-matrix probe, the yardstick of the
//! cooperative-matrix tier as the FMA probe is of SIMT.

use super::{MATRIX_PROBE8, MATRIX_PROBE16, WeightDtype};
use crate::gpu::{Dispatch, GpuContext};

/// Independent accumulator chains per subgroup (must match the shader).
pub const CHAINS: u32 = 4;

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    groups: u32,
}

/// The probe for one matrix size and chain length.
pub struct MatrixProbe {
    pipeline: wgpu::ComputePipeline,
    /// Side of the matrices.
    pub size: u32,
    iterations: u32,
    /// Invocations per workgroup (the adapter's largest subgroup size).
    sg: u32,
    /// Most subgroups a workgroup can have.
    subgroups: u32,
}

impl MatrixProbe {
    /// Builds the pipeline for `size` × `size` matrices (a size the adapter lists for
    /// f16 → f32, see [`super::matmul_coop::support`]) and `iterations` steps per chain.
    pub fn new(ctx: &GpuContext, size: u32, iterations: u32) -> anyhow::Result<Self> {
        let shader = match size {
            8 => &MATRIX_PROBE8,
            16 => &MATRIX_PROBE16,
            _ => anyhow::bail!("matrix probe size {size}: only 8 and 16 exist"),
        };
        let sg = ctx.info.subgroup_max_size;
        let subgroups = sg / ctx.info.subgroup_min_size.max(1);
        let constants = [
            ("SG", f64::from(sg)),
            ("SUBGROUPS", f64::from(subgroups)),
            ("ITERATIONS", f64::from(iterations)),
        ];
        let pipeline = ctx.pipeline(shader, WeightDtype::F16, "matrix_probe", &constants)?;
        Ok(Self {
            pipeline,
            size,
            iterations,
            sg,
            subgroups,
        })
    }

    /// The a and b matrices (row-major f16 bytes): small multiples of 1/8 and 1/16, so every
    /// product and partial sum is exact in f32.
    pub fn inputs(&self) -> (Vec<f32>, Vec<f32>) {
        let d = self.size as usize;
        let a = (0..d * d)
            .map(|i| ((i / d + 2 * (i % d)) % 5) as f32 / 8.0 - 0.25)
            .collect();
        let b = (0..d * d)
            .map(|i| ((3 * (i / d) + i % d) % 7) as f32 / 16.0 - 0.1875)
            .collect();
        (a, b)
    }

    /// Bytes of the output buffer for `groups` workgroups.
    pub fn out_bytes(&self, groups: u32) -> u64 {
        u64::from(groups) * u64::from(self.subgroups) * u64::from(self.size * self.size) * 4
    }

    /// A launch of `groups` workgroups (one subgroup each at the adapter's largest size).
    pub fn dispatch(
        &self,
        ctx: &GpuContext,
        groups: u32,
        ab: &wgpu::Buffer,
        out: &wgpu::Buffer,
        counts: &wgpu::Buffer,
    ) -> anyhow::Result<Dispatch> {
        let d2 = u64::from(self.size * self.size);
        anyhow::ensure!(
            ab.size() >= 2 * d2 * 2
                && out.size() >= self.out_bytes(groups)
                && counts.size() >= u64::from(groups) * 4,
            "matrix probe buffers too small"
        );
        ctx.dispatch(
            &self.pipeline,
            &Params { groups },
            &[(1, ab), (2, out), (3, counts)],
            [groups, 1, 1],
        )
    }

    /// FLOPs of one launch in which `subgroups` subgroups ran (a multiply-add counts two).
    pub fn flops(&self, subgroups: u64) -> f64 {
        Self::flops_of(self.size, self.iterations, subgroups)
    }

    /// FLOPs of `subgroups` subgroups each running chains of `iterations` `size`-sided
    /// multiply-accumulates.
    pub fn flops_of(size: u32, iterations: u32, subgroups: u64) -> f64 {
        let d = f64::from(size);
        subgroups as f64 * f64::from(CHAINS) * f64::from(iterations) * 2.0 * d * d * d
    }

    /// Every subgroup's result: CHAINS · iterations · (a · b), row-major, in f64.
    pub fn reference(&self) -> Vec<f64> {
        let d = self.size as usize;
        let (a, b) = self.inputs();
        let scale = f64::from(CHAINS) * f64::from(self.iterations);
        (0..d * d)
            .map(|i| {
                let (r, c) = (i / d, i % d);
                scale
                    * (0..d)
                        .map(|k| f64::from(a[r * d + k]) * f64::from(b[k * d + c]))
                        .sum::<f64>()
            })
            .collect()
    }

    /// Invocations per workgroup.
    pub fn workgroup_size(&self) -> u32 {
        self.sg
    }

    /// Most subgroups one workgroup can have (the output slots per workgroup).
    pub fn max_subgroups(&self) -> u32 {
        self.subgroups
    }
}

#[cfg(test)]
mod gpu_tests {
    use super::*;
    use crate::gpu::test_context;
    use crate::kernels::matmul_coop::support_or_skip;
    use crate::kernels::verify::{NMSE_F32, compare};

    #[test]
    fn coop_matrix_probe_computes_its_chains() {
        let Some(support) = support_or_skip("coop_matrix_probe") else {
            return;
        };
        let ctx = test_context();
        for &size in &support.sizes {
            let probe = MatrixProbe::new(ctx, size, 50).unwrap();
            let groups = 3;
            let (a, b) = probe.inputs();
            let ab: Vec<f32> = a.into_iter().chain(b).collect();
            let ab_buf = ctx
                .storage_with("ab", &WeightDtype::F16.encode_rows(&ab, 1))
                .unwrap();
            let out = ctx.storage_zeroed("out", probe.out_bytes(groups)).unwrap();
            let counts = ctx.storage_zeroed("counts", u64::from(groups) * 4).unwrap();
            ctx.execute(&probe.dispatch(ctx, groups, &ab_buf, &out, &counts).unwrap())
                .unwrap();
            let n_sg: Vec<u32> = bytemuck::pod_collect_to_vec(
                &ctx.read_bytes(&counts, u64::from(groups) * 4).unwrap(),
            );
            assert!(
                n_sg.iter().all(|&n| n >= 1 && n <= probe.max_subgroups()),
                "{n_sg:?}"
            );
            let d2 = (size * size) as usize;
            let got = ctx
                .read_f32(&out, (groups * probe.max_subgroups()) as usize * d2)
                .unwrap();
            let want = probe.reference();
            for (g, &n) in n_sg.iter().enumerate() {
                for s in 0..n as usize {
                    let slot = g * probe.max_subgroups() as usize + s;
                    let c = compare(
                        &got[slot * d2..(slot + 1) * d2],
                        &want,
                        NMSE_F32,
                        "m".into(),
                    );
                    assert!(c.failure.is_none(), "size {size} slot {slot}: {c:?}");
                }
            }
            assert_eq!(
                probe.flops(2),
                2.0 * 4.0 * 50.0 * 2.0 * f64::from(size).powi(3)
            );
        }
    }
}
