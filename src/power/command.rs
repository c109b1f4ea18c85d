//! `--power-cmd 'CMD'`: a shell command that prints watts (a wall meter, a PDU, `ipmitool dcmi
//! power reading` through a small script). Each sample runs it once through `sh -c`, under a
//! time limit, and takes the first number on its standard output.

use std::io::{Read, Seek};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::source::{GaugeSource, SourceInfo};
use crate::result::Scope;

/// A command whose output is the power now, in watts.
#[derive(Debug, Clone)]
pub struct CommandSource {
    command: String,
    scope: Scope,
    timeout: Duration,
}

impl CommandSource {
    /// The command `command`, whose watts cover `scope`, killed after `timeout`.
    pub fn new(command: impl Into<String>, scope: Scope, timeout: Duration) -> Self {
        Self {
            command: command.into(),
            scope,
            timeout,
        }
    }

    /// Runs the command once and parses its watts. Fails when it cannot start, exits non-zero,
    /// runs past the time limit (it is then killed, with everything it started), or prints no
    /// usable number.
    pub fn sample_w(&self) -> anyhow::Result<f64> {
        let stdout = run_with_timeout(&self.command, self.timeout)
            .with_context(|| format!("power command {:?}", self.command))?;
        parse_watts(&stdout).map_err(|why| {
            anyhow::anyhow!(
                "power command {:?}: {why}; it printed {:?}",
                self.command,
                clip(&stdout, 80)
            )
        })
    }
}

impl SourceInfo for CommandSource {
    fn name(&self) -> &'static str {
        "command"
    }

    fn scope(&self) -> Scope {
        self.scope
    }

    fn describe(&self) -> String {
        format!(
            "power command {:?} (time limit {:.1} s)",
            self.command,
            self.timeout.as_secs_f64()
        )
    }
}

impl GaugeSource for CommandSource {
    fn read_watts(&self) -> anyhow::Result<f64> {
        self.sample_w()
    }

    fn max_read_s(&self) -> f64 {
        self.timeout.as_secs_f64()
    }
}

/// Runs `sh -c command` and returns its standard output, or fails after `timeout`.
///
/// Output goes to unnamed temporary files, not pipes: a process the command left running
/// cannot then block the read. The command runs in its own process group, and a command past
/// its time limit is killed with the whole group.
fn run_with_timeout(command: &str, timeout: Duration) -> anyhow::Result<String> {
    let mut out = tempfile::tempfile().context("creating a file for its output")?;
    let mut err = tempfile::tempfile().context("creating a file for its errors")?;
    let mut cmd = shell(command);
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(err.try_clone()?);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().context("starting it")?;

    let deadline = Instant::now() + timeout;
    let mut poll = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for it")? {
            break status;
        }
        let now = Instant::now();
        if now >= deadline {
            kill_group(&mut child);
            anyhow::bail!(
                "no answer within its {:.1} s time limit; killed",
                timeout.as_secs_f64()
            );
        }
        std::thread::sleep(poll.min(deadline - now));
        poll = (poll * 2).min(Duration::from_millis(20));
    };

    let mut stdout = String::new();
    out.rewind()?;
    out.take(64 * 1024).read_to_string(&mut stdout).ok();
    if !status.success() {
        let mut stderr = String::new();
        err.rewind()?;
        err.take(64 * 1024).read_to_string(&mut stderr).ok();
        anyhow::bail!("failed ({status}): {}", clip(stderr.trim(), 200));
    }
    Ok(stdout)
}

#[cfg(unix)]
fn shell(command: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(command);
    c
}

#[cfg(not(unix))]
fn shell(command: &str) -> Command {
    let mut c = Command::new("cmd");
    c.arg("/C").arg(command);
    c
}

/// Kills the command and everything in its process group, then reaps it.
fn kill_group(child: &mut Child) {
    #[cfg(unix)]
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) takes plain integers. The group id is the child's pid (process_group
        // (0) above), and the child is not reaped yet, so the id cannot name anything else.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The first number on `text` that starts a word ("GPU0" holds none; "power=123.4W" holds
/// 123.4), as watts: finite and not negative.
pub fn parse_watts(text: &str) -> Result<f64, String> {
    let w = first_number(text).ok_or_else(|| "no number in its output".to_string())?;
    if !w.is_finite() || w < 0.0 {
        return Err(format!("{w} is not a power in watts"));
    }
    Ok(w)
}

fn first_number(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    for start in 0..b.len() {
        if start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'.') {
            continue;
        }
        let mut i = start;
        if matches!(b[i], b'-' | b'+') {
            i += 1;
        }
        let mantissa = i;
        while digit(i) {
            i += 1;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            while digit(i) {
                i += 1;
            }
        }
        if !(mantissa..i).any(digit) {
            continue;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            let mut j = i + 1;
            if matches!(b.get(j), Some(b'-' | b'+')) {
                j += 1;
            }
            if digit(j) {
                while digit(j) {
                    j += 1;
                }
                i = j;
            }
        }
        return text[start..i].parse().ok();
    }
    None
}

fn clip(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        s.chars().take(max_chars).collect::<String>() + "…"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(cmd: &str, timeout_ms: u64) -> CommandSource {
        CommandSource::new(cmd, Scope::NodeWall, Duration::from_millis(timeout_ms))
    }

    #[test]
    fn the_first_number_is_the_watts() {
        assert_eq!(parse_watts("123.4\n"), Ok(123.4));
        assert_eq!(
            parse_watts("Instantaneous power reading: 231 Watts"),
            Ok(231.0)
        );
        assert_eq!(parse_watts("GPU0 power=87.5W"), Ok(87.5));
        assert_eq!(parse_watts("1.5e2"), Ok(150.0));
        assert_eq!(parse_watts(".5 W"), Ok(0.5));
        assert_eq!(parse_watts("12e W"), Ok(12.0));
        assert!(parse_watts("no power here").is_err());
        assert!(parse_watts("").is_err());
        assert!(parse_watts("-5").unwrap_err().contains("not a power"));
        assert!(parse_watts("1e999").is_err());
    }

    #[test]
    fn a_command_printing_watts_is_read() {
        let s = source("echo 123.4", 5000);
        assert_eq!(s.sample_w().unwrap(), 123.4);
        assert_eq!(s.read_watts().unwrap(), 123.4);
        assert_eq!(s.scope(), Scope::NodeWall);
    }

    #[test]
    fn garbage_output_fails_with_what_it_printed() {
        let err = format!("{:#}", source("echo garbage", 5000).sample_w().unwrap_err());
        assert!(
            err.contains("no number") && err.contains("garbage"),
            "{err}"
        );
    }

    #[test]
    fn a_failing_command_fails_with_its_stderr() {
        let err = format!(
            "{:#}",
            source("echo meter offline >&2; exit 3", 5000)
                .sample_w()
                .unwrap_err()
        );
        assert!(err.contains("meter offline") && err.contains('3'), "{err}");
        let err = format!(
            "{:#}",
            source("/nonexistent/meter", 5000).sample_w().unwrap_err()
        );
        assert!(err.contains("failed"), "{err}");
    }

    #[test]
    fn a_hanging_command_is_killed_at_its_time_limit() {
        let t0 = Instant::now();
        // The grandchild `sleep` holds stdout open; it must neither block the read nor survive.
        let err = format!(
            "{:#}",
            source("sleep 30; echo 5", 200).sample_w().unwrap_err()
        );
        let took = t0.elapsed();
        assert!(err.contains("time limit"), "{err}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }
}
