//! The mock device's [`Timer`]: runs nothing, so CLI, report and hardening tests need no GPU
//! and give the same figures every time (hyperfine's `--debug-mode` idea).

use std::time::Duration;

use crate::gpu::{DeviceHung, MockDevice, MockMode, Timer};
use crate::model::Work;
use crate::result::TimingMethod;

/// The mock device's timer: an execution "takes" its work at fixed mock peaks (so a bigger
/// workload is slower, as on a device) and nothing runs. [`MockMode`] says whether it returns
/// at once, sleeps for that time, or hangs until the watchdog timeout and fails as a hung GPU.
#[derive(Debug, Clone, Copy)]
pub struct MockTimer {
    /// Seconds one execution is said to take.
    pub seconds_per_run: f64,
    /// Instant, sleeping or hung.
    pub mode: MockMode,
    /// The watchdog timeout a hang waits for.
    pub wait_timeout: Duration,
}

/// Arithmetic rate of the mock device.
pub const MOCK_GFLOPS: f64 = 1000.0;
/// Memory bandwidth of the mock device.
pub const MOCK_GBPS: f64 = 100.0;
/// Launch overhead of one mock execution, in seconds.
const MOCK_LAUNCH_S: f64 = 10e-6;

impl MockTimer {
    /// A timer for `work` on `device`: the slower of its arithmetic and its traffic at the mock
    /// peaks.
    pub fn for_work(work: Work, device: &MockDevice) -> Self {
        let seconds = (work.flops / (MOCK_GFLOPS * 1e9)).max(work.bytes / (MOCK_GBPS * 1e9));
        Self {
            seconds_per_run: MOCK_LAUNCH_S + seconds,
            mode: device.mode,
            wait_timeout: device.wait_timeout,
        }
    }
}

impl Timer for MockTimer {
    fn method(&self) -> TimingMethod {
        TimingMethod::Mock
    }

    fn time_runs(&self, runs: u32) -> anyhow::Result<Vec<f64>> {
        match self.mode {
            MockMode::Hang => {
                std::thread::sleep(self.wait_timeout);
                return Err(DeviceHung {
                    timeout_s: self.wait_timeout.as_secs_f64(),
                }
                .into());
            }
            MockMode::Sleep => std::thread::sleep(Duration::from_secs_f64(
                self.seconds_per_run * f64::from(runs),
            )),
            MockMode::Instant => {}
        }
        Ok(vec![self.seconds_per_run; runs as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mock_times_follow_the_work_and_a_hang_is_a_hung_device() {
        let device = MockDevice::new(MockMode::Instant, Duration::from_millis(1));
        let small = MockTimer::for_work(
            Work {
                flops: 1e9,
                bytes: 0.0,
            },
            &device,
        );
        let big = MockTimer::for_work(
            Work {
                flops: 0.0,
                bytes: 1e9,
            },
            &device,
        );
        assert!(big.seconds_per_run > small.seconds_per_run);
        assert_eq!(small.time_runs(3).unwrap(), vec![small.seconds_per_run; 3]);
        let hung = MockTimer {
            mode: MockMode::Hang,
            ..small
        };
        let err = hung.time_runs(1).unwrap_err();
        assert!(err.is::<DeviceHung>());
    }
}
