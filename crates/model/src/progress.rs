//! Keras-like epoch lines: `Epoch 1/5`, then `10/10 ━━━━━━━━━━━━━━━━━━━━ 0s 1ms/step - loss: 0.8484`.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const BAR_WIDTH: usize = 20;

pub(crate) struct EpochProgress {
    bar: Option<ProgressBar>,
    start: Instant,
    steps: usize,
}

impl EpochProgress {
    pub fn start(verbose: bool, epoch: usize, epochs: usize, steps: usize) -> Self {
        let bar = verbose.then(|| {
            println!("Epoch {epoch}/{epochs}");
            // Live bar only on a terminal; logs get just the final line per epoch.
            let bar =
                ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stdout());
            bar.set_style(
                ProgressStyle::with_template("{pos}/{len} {bar:20} {elapsed} - {msg}")
                    .expect("static template")
                    .progress_chars("━━─"),
            );
            bar
        });
        Self {
            bar,
            start: Instant::now(),
            steps,
        }
    }

    pub fn step(&mut self, running_loss: f64) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(format!("loss: {running_loss:.4}"));
        }
    }

    pub fn finish(self, epoch_loss: f64) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
            let elapsed = self.start.elapsed();
            println!(
                "{0}/{0} {1} {2}s {3} - loss: {epoch_loss:.4}",
                self.steps,
                "━".repeat(BAR_WIDTH),
                elapsed.as_secs(),
                per_step(elapsed / self.steps.max(1) as u32)
            );
        }
    }
}

/// Keras's unit choice for the time per step.
fn per_step(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.0}s/step")
    } else if s >= 1e-3 {
        format!("{:.0}ms/step", s * 1e3)
    } else {
        format!("{:.0}us/step", s * 1e6)
    }
}
