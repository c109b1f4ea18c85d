//! The matmul kernel as a workload: C = A · B at one shape, f32.

use std::collections::BTreeMap;

use super::{Description, Launch, Prepared, Progress, Workload};
use crate::InputError;
use crate::gpu::{DeviceFacts, GpuContext};
use crate::kernels::layout::{pad_matrix, random_values};
use crate::kernels::matmul::{self, Matmul, Product};
use crate::kernels::verify;
use crate::kernels::{KernelConfig, WeightDtype};
use crate::model::{Work, flops};
use crate::result::Correctness;

/// Products up to this many multiply-adds are checked in full; larger ones on sampled rows.
const FULL_CHECK_MACS: f64 = 3e8;
/// Rows checked when a product is too large to check in full.
const SAMPLED_ROWS: usize = 64;

/// C (m × n) = A (m × k) · B (k × n).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulWorkload {
    /// Rows of A and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Columns of A, rows of B.
    pub k: usize,
}

impl MatmulWorkload {
    fn buffer_bytes(&self) -> [(&'static str, u128); 3] {
        let (m, n, k) = (self.m as u128, self.n as u128, self.k as u128);
        let pad = |x: u128| x.div_ceil(4) * 4;
        [
            ("A", m * pad(k) * 4),
            ("B", pad(k) * pad(n) * 4),
            ("C", m * pad(n) * 4),
        ]
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
        Description {
            id: format!("matmul-f32-m{m}-n{n}-k{k}"),
            kind: "matmul".into(),
            shape: BTreeMap::from([
                ("m".to_string(), m as u64),
                ("n".to_string(), n as u64),
                ("k".to_string(), k as u64),
            ]),
            dtype: "f32".into(),
            work: Work {
                flops: flops::product_flops(m, n, k),
                bytes: flops::product_bytes(m, n, k, 4),
            },
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
        let b = random_values(k * n, 2, 1.0);
        let a_buf = ctx.storage_with("A", bytemuck::cast_slice(&pad_matrix(&a, m, k, m)))?;
        // Stored as the model's weights are: one output per row, K contiguous.
        let b_rows = pad_matrix(&matmul::transpose(&b, k, n), n, k, n);
        let b_buf = ctx.storage_with("B", bytemuck::cast_slice(&b_rows))?;
        let c_buf = ctx.storage_zeroed("C", (m * n * 4) as u64)?;
        let config = KernelConfig::default_for(ctx.traits()).matmul;
        let kernel = Matmul::new(ctx, config, WeightDtype::F32)?;
        let dispatch = kernel.dispatch(ctx, &Product::dense(&a_buf, &b_buf, &c_buf, (m, n, k)))?;
        let workload = *self;
        Ok(Box::new(Launch {
            launch: dispatch,
            check: Box::new(move |ctx| workload.verify(ctx, &a, &b, &c_buf)),
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
        let MatmulWorkload { m, n, k } = *self;
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
        Ok(verify::compare(&gpu, &reference, verify::NMSE_F32, what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_products_check_sampled_rows_including_ends() {
        let w = MatmulWorkload {
            m: 4096,
            n: 4096,
            k: 4096,
        };
        let rows = w.checked_rows();
        assert_eq!(rows.len(), SAMPLED_ROWS);
        assert_eq!((rows[0], *rows.last().unwrap()), (0, 4095));
        let small = MatmulWorkload {
            m: 100,
            n: 1,
            k: 100,
        };
        assert_eq!(small.checked_rows().len(), 100);
    }

    #[test]
    fn ids_name_the_shape() {
        let w = MatmulWorkload { m: 1, n: 2, k: 3 };
        assert_eq!(w.id(), "matmul-f32-m1-n2-k3");
    }
}
