//! A recorded kernel launch: pipeline, bindings and grid, ready to replay into any pass.

use anyhow::ensure;

use super::{GpuContext, PassRecorder};

/// One kernel launch. Bind groups are built once, when the workload is set up, and replayed
/// for every timed execution.
#[derive(Debug, Clone)]
pub struct Dispatch {
    /// The specialised pipeline.
    pub pipeline: wgpu::ComputePipeline,
    /// Group 0 bindings.
    pub bind_group: wgpu::BindGroup,
    /// Workgroup counts along x, y, z.
    pub workgroups: [u32; 3],
    /// Launches recorded right after this one, in order (split-K's reduction of its partial
    /// sums): they belong to it, so every list of launches that holds it runs them.
    pub then: Vec<Dispatch>,
}

impl PassRecorder for Dispatch {
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
        for d in &self.then {
            d.record(pass);
        }
    }
}

/// A sequence of launches (for example a whole forward pass) is one execution.
impl PassRecorder for [Dispatch] {
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in self {
            d.record(pass);
        }
    }
}

impl PassRecorder for Vec<Dispatch> {
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.as_slice().record(pass);
    }
}

impl GpuContext {
    /// A launch of `pipeline` with `params` as the uniform at binding 0 and `buffers` at their
    /// binding numbers. Fails if the grid exceeds the adapter's workgroup-count limit.
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        pipeline: &wgpu::ComputePipeline,
        params: &P,
        buffers: &[(u32, &wgpu::Buffer)],
        workgroups: [u32; 3],
    ) -> anyhow::Result<Dispatch> {
        let max = self.limits.max_compute_workgroups_per_dimension;
        ensure!(
            workgroups.iter().all(|&n| n <= max),
            "a launch needs {workgroups:?} workgroups; this adapter allows {max} per dimension"
        );
        let uniform = self.uniform_with("params", bytemuck::bytes_of(params));
        let mut entries = vec![(0, &uniform)];
        entries.extend_from_slice(buffers);
        Ok(Dispatch {
            bind_group: self.bind(pipeline, &entries),
            pipeline: pipeline.clone(),
            workgroups,
            then: Vec::new(),
        })
    }
}
