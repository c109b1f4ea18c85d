//! A recorded kernel launch: pipeline, bindings and grid, ready to replay into any pass.

use super::PassRecorder;

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
}

impl PassRecorder for Dispatch {
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
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
