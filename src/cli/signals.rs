//! Ctrl-C and SIGTERM: the first asks the run to stop after the workload in flight; the second
//! exits at once. Either way the result file stays whole, since it is only ever replaced by an
//! atomic rename.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::exit;

/// The flag the runner checks between workloads; installs the handler on first use.
pub(super) fn stop_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let seen = flag.clone();
        let installed = ctrlc::set_handler(move || {
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
