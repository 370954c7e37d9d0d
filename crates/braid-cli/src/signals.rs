//! Ctrl-C and SIGTERM for the commands that run until stopped (`worker`, `beat`,
//! `dashboard`, `nameserver`).

use std::io;

use tokio::runtime::Runtime;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGINT (Ctrl-C) and SIGTERM, caught from the moment [`Signals::watch`] returns: one
/// that comes before [`Signals::wait`] is kept for it, so a process can watch before it
/// says it is ready and wait later.
pub(crate) struct Signals {
    runtime: Runtime,
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    /// Installs the handlers; from now on these signals no longer end the process.
    pub(crate) fn watch() -> io::Result<Signals> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (interrupt, terminate) = {
            let _entered = runtime.enter();
            (
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
            )
        };
        Ok(Signals {
            runtime,
            interrupt,
            terminate,
        })
    }

    /// Blocks until Ctrl-C or SIGTERM (one already caught and not yet waited for counts).
    pub(crate) fn wait(&mut self) {
        let Signals {
            runtime,
            interrupt,
            terminate,
        } = self;
        runtime.block_on(async {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        });
    }
}
