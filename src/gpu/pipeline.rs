//! Compute pipelines from the shaders in `shaders/`, cached per device.

use anyhow::anyhow;

use super::GpuContext;
use crate::kernels::{KvDtype, KvSide, Shader, WeightDtype};

/// Whether shader modules keep wgpu's runtime bounds checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShaderChecks {
    /// wgpu clamps every buffer and array index (the safe default).
    Checked,
    /// No runtime checks and no zero-initialised workgroup memory: only for kernels whose
    /// dispatch geometry keeps every access in bounds and whose correctness tests pass.
    Unchecked,
}

impl GpuContext {
    /// The compute pipeline for `entry` in `shader` (with weights of `dtype` where the shader
    /// has typed weights), specialised with WGSL `override` `constants`. Pipelines are cached:
    /// building one can take a long time (LLVM on lavapipe). A shader or constant the driver
    /// rejects is an error, not a panic.
    pub fn pipeline(
        &self,
        shader: &Shader,
        dtype: WeightDtype,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> anyhow::Result<wgpu::ComputePipeline> {
        self.pipeline_kv(shader, (dtype, KvDtype::F32), entry, constants)
    }

    /// [`Self::pipeline`] for a shader that reads or writes the KV cache, with the cache in
    /// `kv` (the weight type matters only to product kernels).
    pub fn pipeline_kv(
        &self,
        shader: &Shader,
        (dtype, kv): (WeightDtype, KvDtype),
        entry: &str,
        constants: &[(&str, f64)],
    ) -> anyhow::Result<wgpu::ComputePipeline> {
        let checks = if shader.trusted {
            self.shader_checks
        } else {
            ShaderChecks::Checked
        };
        let dtype = shader.product.then_some(dtype);
        let kv = (shader.kv != KvSide::None).then_some(kv);
        let key = format!(
            "{}:{dtype:?}:{kv:?}:{entry}:{constants:?}:{checks:?}",
            shader.name
        );
        if let Some(p) = self.pipelines.lock().expect("pipeline cache").get(&key) {
            return Ok(p.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(shader.name),
            source: wgpu::ShaderSource::Wgsl(shader.source_with(
                dtype.unwrap_or(WeightDtype::F32),
                kv.unwrap_or(KvDtype::F32),
            )),
        };
        let module = match checks {
            ShaderChecks::Checked => self.device.create_shader_module(desc),
            // SAFETY: only shaders marked `trusted` get here; their dispatch geometry keeps
            // every access in bounds, and their CPU-reference tests run with checks off.
            ShaderChecks::Unchecked => unsafe {
                self.device
                    .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
            },
        };
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&key),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    zero_initialize_workgroup_memory: checks == ShaderChecks::Checked,
                },
                cache: None,
            });
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(anyhow!(
                "building pipeline {}::{entry} with {constants:?} failed: {err}",
                shader.path
            ));
        }
        self.pipelines
            .lock()
            .expect("pipeline cache")
            .insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// A bind group for `pipeline`'s group 0, each buffer bound whole at its binding number.
    pub fn bind(
        &self,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[(u32, &wgpu::Buffer)],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
            .iter()
            .map(|&(binding, b)| wgpu::BindGroupEntry {
                binding,
                resource: b.as_entire_binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }
}
