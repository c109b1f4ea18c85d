//! Timing of recorded GPU work: timestamp queries where the adapter has them, otherwise the host
//! clock around submit and wait. Readback of results is never inside a timed region. The
//! sampler times through the [`Timer`] trait, so a mock can stand in for the GPU.

use std::time::Instant;

use anyhow::{Context as _, bail, ensure};

use super::GpuContext;
use crate::result::TimingMethod;

/// One execution of a workload, recordable into a compute pass any number of times.
pub trait PassRecorder {
    /// Records the dispatches of one execution.
    fn record(&self, pass: &mut wgpu::ComputePass<'_>);
}

/// Times executions of one prepared piece of work.
pub trait Timer {
    /// How the durations are measured (recorded in the result).
    fn method(&self) -> TimingMethod;

    /// Executes the work `runs` times and returns each execution's duration in seconds.
    fn time_runs(&self, runs: u32) -> anyhow::Result<Vec<f64>>;
}

/// Most executions timed per submission; bounds the query set and the readback buffer.
pub const MAX_RUNS_PER_BATCH: u32 = 256;

/// Reusable query set and buffers for timestamp timing.
pub(crate) struct TimestampQueries {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
}

impl TimestampQueries {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let count = 2 * MAX_RUNS_PER_BATCH;
        let bytes = u64::from(count) * 8;
        Self {
            set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp-resolve"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            readback: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp-readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        }
    }
}

/// Times an execution with timestamp queries around each compute pass.
pub struct TimestampTimer<'a> {
    ctx: &'a GpuContext,
    work: &'a dyn PassRecorder,
}

/// Times an execution with the host clock around submit and wait (adapters without
/// timestamps); includes submission overhead.
pub struct WallClockTimer<'a> {
    ctx: &'a GpuContext,
    work: &'a dyn PassRecorder,
}

impl Timer for TimestampTimer<'_> {
    fn method(&self) -> TimingMethod {
        TimingMethod::GpuTimestamps
    }
    fn time_runs(&self, runs: u32) -> anyhow::Result<Vec<f64>> {
        check_runs(runs)?;
        self.ctx.time_with_timestamps(self.work, runs)
    }
}

impl Timer for WallClockTimer<'_> {
    fn method(&self) -> TimingMethod {
        TimingMethod::WallClock
    }
    fn time_runs(&self, runs: u32) -> anyhow::Result<Vec<f64>> {
        check_runs(runs)?;
        (0..runs)
            .map(|_| self.ctx.time_wall_clock(self.work))
            .collect()
    }
}

fn check_runs(runs: u32) -> anyhow::Result<()> {
    ensure!(
        (1..=MAX_RUNS_PER_BATCH).contains(&runs),
        "time_runs: {runs} runs (1..={MAX_RUNS_PER_BATCH})"
    );
    Ok(())
}

impl GpuContext {
    /// The timer of this context's timing method for `work`.
    pub fn timer<'a>(&'a self, work: &'a dyn PassRecorder) -> Box<dyn Timer + 'a> {
        match self.timing_method {
            TimingMethod::WallClock => Box::new(WallClockTimer { ctx: self, work }),
            _ => Box::new(TimestampTimer { ctx: self, work }),
        }
    }

    /// Executes `work` `runs` times (at most [`MAX_RUNS_PER_BATCH`]) and returns the duration of
    /// each execution in seconds, measured with this context's timing method.
    pub fn time_runs(&self, work: &dyn PassRecorder, runs: u32) -> anyhow::Result<Vec<f64>> {
        self.timer(work).time_runs(runs)
    }

    /// Executes `work` once without timing it (warm-up, filling caches before a decode step).
    pub fn execute(&self, work: &dyn PassRecorder) -> anyhow::Result<()> {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            work.record(&mut pass);
        }
        self.queue.submit([encoder.finish()]);
        self.wait_idle()
    }

    fn time_wall_clock(&self, work: &dyn PassRecorder) -> anyhow::Result<f64> {
        // Encoding happens before the clock starts: only submission and execution are timed.
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            work.record(&mut pass);
        }
        let commands = encoder.finish();
        let start = Instant::now();
        self.queue.submit([commands]);
        self.wait_idle()?;
        Ok(start.elapsed().as_secs_f64())
    }

    fn time_with_timestamps(&self, work: &dyn PassRecorder, runs: u32) -> anyhow::Result<Vec<f64>> {
        let queries = self
            .timestamps
            .as_ref()
            .context("timestamp timing chosen on a device without timestamp queries")?
            .lock()
            .expect("timestamp queries");
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        for run in 0..runs {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("timed"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &queries.set,
                    beginning_of_pass_write_index: Some(2 * run),
                    end_of_pass_write_index: Some(2 * run + 1),
                }),
            });
            work.record(&mut pass);
        }
        let bytes = u64::from(2 * runs) * 8;
        encoder.resolve_query_set(&queries.set, 0..2 * runs, &queries.resolve, 0);
        encoder.copy_buffer_to_buffer(&queries.resolve, 0, &queries.readback, 0, bytes);
        self.queue.submit([encoder.finish()]);
        let raw = self.map_read(&queries.readback)?;
        let ticks: &[u64] = bytemuck::cast_slice(&raw[..bytes as usize]);
        let period_ns = f64::from(self.queue.get_timestamp_period());
        ticks
            .chunks_exact(2)
            .map(|pair| {
                let (begin, end) = (pair[0], pair[1]);
                if end <= begin {
                    bail!(
                        "GPU timestamps went backwards or did not advance ({begin} -> {end}); \
                         this adapter's timestamps cannot be trusted"
                    );
                }
                Ok((end - begin) as f64 * period_ns * 1e-9)
            })
            .collect()
    }
}
