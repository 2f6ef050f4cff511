//! Progress for the demo's long waits: a spinner on a terminal; plain lines on a log such as
//! CI's, where a spinner would show nothing at all.

use std::{io::IsTerminal, time::Duration};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Status {
    prefix: &'static str,
    quiet: bool,
    spinner: Option<ProgressBar>,
}

impl Status {
    pub fn new(prefix: &'static str, quiet: bool) -> Status {
        let spinner = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let spinner = ProgressBar::new_spinner();
            spinner.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<10} {wide_msg} [{elapsed}]")
                    .expect("a valid template"),
            );
            spinner.set_prefix(prefix);
            spinner.enable_steady_tick(Duration::from_millis(120));
            spinner
        });
        Status {
            prefix,
            quiet,
            spinner,
        }
    }

    /// A passing detail: the spinner's text, or a log line.
    pub fn message(&self, line: &str) {
        match &self.spinner {
            Some(spinner) => spinner.set_message(line.chars().take(150).collect::<String>()),
            None if !self.quiet => eprintln!("{}: {line}", self.prefix),
            None => {}
        }
    }

    pub fn finish(&self, line: &str) {
        match &self.spinner {
            Some(spinner) => {
                spinner.set_style(
                    ProgressStyle::with_template("✔ {prefix:<10} {wide_msg}")
                        .expect("a valid template"),
                );
                spinner.finish_with_message(line.to_owned());
            }
            None if !self.quiet => eprintln!("{}: {line}", self.prefix),
            None => {}
        }
    }
}
