//! A paced run's progress on a terminal: one line redrawn in place (operations done of the
//! total, the wave, failures, an estimate of the time left) from the executor's `progress`
//! events, instead of a log line per wave. Lambda's logs are not touched.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Whether a bar is on the screen, not yet ended by a newline.
static DRAWN: AtomicBool = AtomicBool::new(false);

/// stderr for the log lines: a line that comes while the bar is drawn clears the bar first
/// (the next step draws it again, below the line), so the two never share a line.
pub struct BelowTheBar;

/// The writer [`BelowTheBar`] makes.
pub struct LogLine;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BelowTheBar {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine
    }
}

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut err = std::io::stderr().lock();
        if DRAWN.swap(false, Ordering::SeqCst) {
            err.write_all(b"\r\x1b[2K")?;
        }
        err.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Draws the executor's `operation done` events as a progress bar on stderr.
#[derive(Default)]
pub struct ProgressBar {
    started: Mutex<Option<Instant>>,
}

/// The fields of one `operation done` event.
#[derive(Default)]
struct Step {
    done: u64,
    total: u64,
    wave: u64,
    failed: bool,
}

impl Visit for Step {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "done" => self.done = value,
            "total" => self.total = value,
            "wave" => self.wave = value,
            _ => {}
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "failed" {
            self.failed = value;
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

/// The bar for `step`, `elapsed` seconds after the first operation started: `[####----]
/// 12/31 · wave 1 · 2 failed · ~8 s left`.
pub fn line(done: u64, total: u64, wave: u64, failed: u64, elapsed: f64) -> String {
    const WIDTH: u64 = 24;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    let bar: String = (0..WIDTH)
        .map(|i| if i < filled { '#' } else { '-' })
        .collect();
    let left = if done > 0 && done < total {
        let secs = elapsed / done as f64 * (total - done) as f64;
        format!(" · ~{} s left", secs.ceil() as u64)
    } else {
        String::new()
    };
    let failed = if failed > 0 {
        format!(" · {failed} failed")
    } else {
        String::new()
    };
    format!("[{bar}] {done}/{total} · wave {wave}{failed}{left}")
}

impl<S: Subscriber> Layer<S> for ProgressBar {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "progress" {
            return;
        }
        let mut step = Step::default();
        event.record(&mut step);
        if step.total == 0 {
            return; // the per-wave summary line: the bar already says it
        }
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        let since = *started.get_or_insert_with(Instant::now);
        // Failures so far are not in one event: count them as they come.
        static FAILED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        if step.failed {
            FAILED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let failed = FAILED.load(std::sync::atomic::Ordering::Relaxed);
        let text = line(
            step.done,
            step.total,
            step.wave,
            failed,
            since.elapsed().as_secs_f64(),
        );
        let finished = step.done >= step.total;
        let end = if finished { "\n" } else { "" };
        let mut err = std::io::stderr().lock();
        // A closed stderr ends the bar quietly.
        let _ = write!(err, "\r\x1b[2K{text}{end}");
        let _ = err.flush();
        DRAWN.store(!finished, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_says_done_of_total_the_wave_failures_and_time_left() {
        assert_eq!(
            line(12, 48, 1, 2, 6.0),
            "[######------------------] 12/48 · wave 1 · 2 failed · ~18 s left"
        );
        assert_eq!(
            line(48, 48, 2, 0, 20.0),
            "[########################] 48/48 · wave 2"
        );
        assert_eq!(
            line(0, 0, 0, 0, 0.0),
            "[########################] 0/0 · wave 0"
        );
    }
}
