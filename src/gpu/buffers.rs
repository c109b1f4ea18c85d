//! Buffer creation, upload and readback.

use anyhow::{Context as _, bail};
use wgpu::util::DeviceExt as _;

use super::GpuContext;

/// The GPU did not finish within the watchdog timeout (`--timeout-s`). Its work cannot be
/// cancelled: the process should exit without waiting for it.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "the GPU did not finish within {timeout_s} s (watchdog, --timeout-s); the device may be hung"
)]
pub struct DeviceHung {
    /// The timeout that passed.
    pub timeout_s: f64,
}

impl GpuContext {
    /// Fails, before asking the device, for a buffer larger than the adapter allows.
    fn check_size(&self, label: &str, bytes: u64) -> anyhow::Result<()> {
        let max = self.limits.max_buffer_size;
        if bytes > max {
            bail!(
                "buffer {label:?} needs {bytes} bytes; this adapter allows at most {max} per buffer"
            );
        }
        Ok(())
    }

    /// A storage buffer holding `data`, also usable as a copy source (for readback).
    pub fn storage_with(&self, label: &str, data: &[u8]) -> anyhow::Result<wgpu::Buffer> {
        self.check_size(label, data.len() as u64)?;
        Ok(self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: data,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            }))
    }

    /// Submits the uploads queued so far and waits for them. wgpu stages every buffer made with
    /// contents in a host copy that lives until the next submission finishes; where device
    /// memory is host memory (lavapipe), a model's weights would otherwise sit in RAM twice.
    pub fn flush_uploads(&self) -> anyhow::Result<()> {
        self.queue.submit([]);
        self.wait_idle()
    }

    /// A zero-filled storage buffer of `bytes` bytes (rounded up to 4).
    pub fn storage_zeroed(&self, label: &str, bytes: u64) -> anyhow::Result<wgpu::Buffer> {
        self.check_size(label, bytes)?;
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.div_ceil(4) * 4,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }

    /// A uniform buffer holding `data`.
    pub fn uniform_with(&self, label: &str, data: &[u8]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: data,
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// Copies `bytes` bytes from the start of `buffer` back to the host. Never called inside a
    /// timed region.
    pub fn read_bytes(&self, buffer: &wgpu::Buffer, bytes: u64) -> anyhow::Result<Vec<u8>> {
        let size = bytes.div_ceil(4) * 4;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
        self.queue.submit([encoder.finish()]);
        let mut out = self.map_read(&staging)?;
        out.truncate(bytes as usize);
        Ok(out)
    }

    /// Reads `count` f32 values from the start of `buffer`.
    pub fn read_f32(&self, buffer: &wgpu::Buffer, count: usize) -> anyhow::Result<Vec<f32>> {
        let bytes = self.read_bytes(buffer, (count * 4) as u64)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Maps a MAP_READ buffer whose copy has been submitted, and returns its contents.
    pub(crate) fn map_read(&self, staging: &wgpu::Buffer) -> anyhow::Result<Vec<u8>> {
        let (tx, rx) = std::sync::mpsc::channel();
        staging
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |r| drop(tx.send(r)));
        self.wait_idle()?;
        // Another thread's poll may be delivering the callback right now (tests share one
        // device): wait for it briefly, polling again, before calling it lost.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mapped = loop {
            match rx.try_recv() {
                Ok(result) => break result,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    bail!("a readback buffer's mapping was dropped unanswered")
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    if std::time::Instant::now() > deadline {
                        bail!("the device finished but a readback buffer was never mapped");
                    }
                    self.device.poll(wgpu::PollType::Poll).ok();
                    std::thread::yield_now();
                }
            }
        };
        if let Err(e) = mapped {
            bail!("mapping a readback buffer failed: {e}");
        }
        let data = staging
            .slice(..)
            .get_mapped_range()
            .context("reading a mapped buffer")?
            .to_vec();
        staging.unmap();
        Ok(data)
    }

    /// Blocks until every submitted command has finished, or the watchdog timeout passes
    /// ([`DeviceHung`]).
    pub fn wait_idle(&self) -> anyhow::Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: self.wait_timeout,
            })
            .map_err(|e| match e {
                wgpu::PollError::Timeout => anyhow::Error::new(DeviceHung {
                    timeout_s: self.wait_timeout.map_or(0.0, |d| d.as_secs_f64()),
                }),
                other => anyhow::anyhow!("waiting for the GPU failed: {other}"),
            })?;
        self.take_device_error()
    }
}
