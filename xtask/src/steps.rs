//! One line per step on screen, everything else in a log file.
//!
//! A step shows a spinner with its name, its latest output line and its elapsed time; it ends as
//! one line (`✔ prometheus  /usr/bin/prometheus  [35s]`). The commands it runs write their whole
//! output to `target/xtask/logs/<step>.log`, which is shown on screen only when the step fails:
//! its last lines and its path. Where stderr is not a terminal (CI), each step prints a start and
//! an end line instead of a spinner.

use std::{
    collections::VecDeque,
    fs::File,
    io::{BufRead, BufReader, IsTerminal, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How many of a failed command's last lines are shown on screen.
const TAIL_LINES: usize = 15;

/// The screen shared by concurrent steps (set-up in one thread, compiling in another).
#[derive(Clone)]
pub struct Ui {
    multi: MultiProgress,
    live: bool,
    quiet: bool,
    log_dir: PathBuf,
}

impl Ui {
    /// `quiet` prints nothing but failures.
    pub fn new(quiet: bool) -> anyhow::Result<Ui> {
        let log_dir = crate::repository_root()
            .join("target")
            .join("xtask")
            .join("logs");
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;
        let live = !quiet && std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if live {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        Ok(Ui {
            multi,
            live,
            quiet,
            log_dir,
        })
    }

    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// A line that stays on screen above the spinners.
    pub fn println(&self, line: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        if self.live {
            let _ = self.multi.println(line.as_ref());
        } else {
            eprintln!("{}", line.as_ref());
        }
    }

    /// Starts a step; its log file is `<log_dir>/<name>.log`, made anew.
    pub fn step(&self, name: &str) -> anyhow::Result<Step> {
        let log_path = self.log_dir.join(format!("{}.log", name.replace(' ', "-")));
        let log = File::create(&log_path)
            .with_context(|| format!("creating the log file {}", log_path.display()))?;
        let bar = if self.live {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<10} {wide_msg} [{elapsed}]")
                    .expect("a valid template"),
            );
            bar.set_prefix(name.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            Some(bar)
        } else {
            if !self.quiet {
                eprintln!("{name}: started (log: {})", log_path.display());
            }
            None
        };
        Ok(Step {
            name: name.to_owned(),
            bar,
            quiet: self.quiet,
            log: Arc::new(Mutex::new(log)),
            log_path,
            started: Instant::now(),
            tail: Arc::new(Mutex::new(VecDeque::new())),
        })
    }
}

/// A named piece of set-up with its own spinner and log file.
pub struct Step {
    name: String,
    bar: Option<ProgressBar>,
    quiet: bool,
    log: Arc<Mutex<File>>,
    log_path: PathBuf,
    started: Instant,
    /// The last lines of output, for the failure message.
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Step {
    /// Passing detail: the spinner's text (and a log line).
    pub fn message(&self, text: &str) {
        self.log_line(text);
        if let Some(bar) = &self.bar {
            bar.set_message(text.chars().take(120).collect::<String>());
        }
    }

    fn log_line(&self, line: &str) {
        let mut log = self.log.lock().expect("log lock");
        let _ = writeln!(log, "{line}");
    }

    /// Runs `command` with its output (stdout and stderr) in this step's log, its latest line as
    /// the spinner's text. Fails with the command's last lines and the log's path.
    pub fn run(&self, what: &str, mut command: Command) -> anyhow::Result<()> {
        self.message(&format!("{what}: {command:?}"));
        let (reader, writer) = std::io::pipe().context("creating a pipe")?;
        command
            .stdin(Stdio::null())
            .stdout(writer.try_clone().context("cloning a pipe")?)
            .stderr(writer);
        let mut child = command
            .spawn()
            .with_context(|| format!("{}: could not start {what}", self.name))?;
        // The pipe's write ends now live only in the child: reading ends when it exits.
        drop(command);
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            self.message(&line);
            let mut tail = self.tail.lock().expect("tail lock");
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        let status = child
            .wait()
            .with_context(|| format!("waiting for {what}"))?;
        if !status.success() {
            bail!(self.failure(&format!("{what} failed ({status})")));
        }
        Ok(())
    }

    /// The step's failure text: what failed, its last output lines, where the whole log is.
    pub fn failure(&self, what: &str) -> String {
        let tail = self.tail.lock().expect("tail lock");
        let lines: Vec<String> = tail.iter().map(|l| format!("    | {l}")).collect();
        format!(
            "{}: {what}; its last lines:\n{}\n  whole log: {}",
            self.name,
            lines.join("\n"),
            self.log_path.display()
        )
    }

    /// Ends the step as one line that stays on screen.
    pub fn done(self, summary: &str) {
        self.log_line(&format!("done: {summary}"));
        let elapsed = format_elapsed(self.started.elapsed());
        match &self.bar {
            Some(bar) => {
                bar.set_style(
                    ProgressStyle::with_template("✔ {prefix:<10} {wide_msg}")
                        .expect("a valid template"),
                );
                bar.finish_with_message(format!("{summary}  [{elapsed}]"));
            }
            None if !self.quiet => eprintln!("{}: {summary} [{elapsed}]", self.name),
            None => {}
        }
    }

    /// Ends the step as failed (the error itself is reported by the caller).
    pub fn abandon(self) {
        if let Some(bar) = &self.bar {
            bar.set_style(
                ProgressStyle::with_template("✘ {prefix:<10} {wide_msg}")
                    .expect("a valid template"),
            );
            bar.abandon_with_message(format!(
                "failed after {}",
                format_elapsed(self.started.elapsed())
            ));
        }
    }

    /// Runs `work` as this step: `done(summary)` on success, `abandon` on failure.
    pub fn finish_with<T>(
        self,
        work: impl FnOnce(&Step) -> anyhow::Result<(T, String)>,
    ) -> anyhow::Result<T> {
        match work(&self) {
            Ok((value, summary)) => {
                self.done(&summary);
                Ok(value)
            }
            Err(e) => {
                self.abandon();
                Err(e)
            }
        }
    }
}

pub fn format_elapsed(elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", elapsed.as_secs_f64())
    }
}
