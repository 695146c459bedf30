//! A progress bar of scopes on stderr while a scan collects them, shown
//! only when stderr is a terminal and `--quiet` is not given.
//!
//! Log lines go through [`LogWriter`], which clears the bar, writes the
//! line and draws the bar again, so the two never mix on one line.
//!
//! The bar counts every API scope: AWS accounts, Entra tenants and Google
//! Cloud projects.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether bars may be drawn at all; set once by [`enable`].
static ENABLED: AtomicBool = AtomicBool::new(false);

/// The bar being drawn, if any, for [`LogWriter`].
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Allows bars when stderr is a terminal and `allowed` is true.
pub fn enable(allowed: bool) {
    ENABLED.store(
        allowed && std::io::stderr().is_terminal(),
        Ordering::Relaxed,
    );
}

/// A bar counting the scopes collected; hidden when bars are not enabled.
pub struct ScopeProgress {
    bar: ProgressBar,
}

impl ScopeProgress {
    /// Starts a bar for `total` scopes.
    pub fn start(total: usize) -> ScopeProgress {
        let shown = ENABLED.load(Ordering::Relaxed) && total > 0;
        let target = if shown {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total as u64), target);
        // The template is a constant that parses, so the default style is only a fallback.
        if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} scopes  {msg}") {
            bar.set_style(style);
        }
        if shown {
            bar.enable_steady_tick(Duration::from_millis(250));
            *lock_active() = Some(bar.clone());
        }
        ScopeProgress { bar }
    }

    /// Counts one scope as done, naming it.
    pub fn scope_done(&self, label: &str) {
        self.bar.set_message(crate::report::sanitize(label));
        self.bar.inc(1);
    }
}

impl Drop for ScopeProgress {
    fn drop(&mut self) {
        lock_active().take();
        self.bar.finish_and_clear();
    }
}

fn lock_active() -> std::sync::MutexGuard<'static, Option<ProgressBar>> {
    ACTIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A stderr writer for `tracing_subscriber` that keeps log lines off the bar.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        let active = lock_active().clone();
        match active {
            Some(bar) => bar.suspend(|| std::io::stderr().write(buffer)),
            None => std::io::stderr().write(buffer),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_hidden_when_not_enabled() {
        enable(false);
        let progress = ScopeProgress::start(3);
        progress.scope_done("aws 123456789012");
        assert!(progress.bar.is_hidden());
        assert_eq!(progress.bar.position(), 1);
        drop(progress);
        assert!(lock_active().is_none());
    }
}
