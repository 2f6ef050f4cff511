//! Keras-like epoch lines, as the tutorial prints them: `Epoch 1/5`, then
//! `10/10 ━━━━━━━━━━━━━━━━━━━━ 0s 1ms/step - loss: 0.8484`, from the model's progress events.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use promlearn_model::FitEvent;

const BAR_WIDTH: usize = 20;

/// Prints a fit's progress as Keras does; a live bar only on a terminal.
#[derive(Default)]
pub struct KerasProgress {
    bar: Option<ProgressBar>,
    steps: usize,
}

impl KerasProgress {
    pub fn on_event(&mut self, event: FitEvent) {
        match event {
            FitEvent::EpochStarted {
                epoch,
                epochs,
                steps,
            } => {
                println!("Epoch {epoch}/{epochs}");
                let bar =
                    ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stdout());
                bar.set_style(
                    ProgressStyle::with_template("{pos}/{len} {bar:20} {elapsed} - {msg}")
                        .expect("static template")
                        .progress_chars("━━─"),
                );
                self.bar = Some(bar);
                self.steps = steps;
            }
            FitEvent::StepDone { running_loss, .. } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                    bar.set_message(format!("loss: {running_loss:.4}"));
                }
            }
            FitEvent::EpochDone { loss, elapsed, .. } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                println!(
                    "{0}/{0} {1} {2}s {3} - loss: {loss:.4}",
                    self.steps,
                    "━".repeat(BAR_WIDTH),
                    elapsed.as_secs(),
                    per_step(elapsed / self.steps.max(1) as u32)
                );
            }
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
