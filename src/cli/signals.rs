//! Ctrl-C and SIGTERM: the first asks the run to stop after the workload in flight; the second
//! exits at once. Either way the result file stays whole, since it is only ever replaced by an
//! atomic rename. Replicas of `--adapter all` get every interrupt passed on to them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::exit;

/// The flag the runner checks between workloads; installs the handler on first use.
pub(super) fn stop_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let seen = flag.clone();
        let installed = ctrlc::set_handler(move || {
            pass_on_to_replicas();
            if seen.swap(true, Ordering::SeqCst) {
                eprintln!("\ntokbench: second interrupt, exiting now");
                std::process::exit(exit::INTERRUPTED.into());
            }
            eprintln!("\ntokbench: interrupted; stopping after the workload in flight (Ctrl-C again to exit now)");
        });
        if let Err(e) = installed {
            // Without the handler the default applies: the process ends, the file stays whole.
            eprintln!("tokbench: cannot install the Ctrl-C handler ({e}); an interrupt ends the run at once");
        }
        flag
    })
    .clone()
}

/// Process ids of the replicas in flight (see `replicas.rs`).
static REPLICAS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Passes every interrupt this process gets on to the replica `pid` until it is forgotten.
pub(super) fn forward_to(pid: u32) {
    REPLICAS.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
}

/// Stops passing interrupts to `pid` (it has ended; its id may be reused).
pub(super) fn forget(pid: u32) {
    REPLICAS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| *p != pid);
}

fn pass_on_to_replicas() {
    for pid in REPLICAS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        // SAFETY: kill(2) with a pid we started and have not yet reaped touches no memory.
        unsafe {
            libc::kill(*pid as libc::pid_t, libc::SIGTERM);
        }
    }
}
