//! Output lines that never panic or fail a command: a closed stdout or stderr (`gpu-ae train 2>&1
//! | head -1`) must not stop a training or lose a checkpoint, so lines that cannot be written are
//! dropped. [`outln!`](crate::outln) writes to stdout, [`noteln!`](crate::noteln) to stderr.
//! Also the progress of long commands: a bar on a terminal, plain lines in a log ([`Progress`]).

use std::fmt;
use std::io::Write;

/// Writes one line to stdout; a write error (a closed pipe) is ignored.
pub fn out(args: fmt::Arguments) {
    let mut o = std::io::stdout().lock();
    let _ = o
        .write_fmt(args)
        .and_then(|()| o.write_all(b"\n"))
        .and_then(|()| o.flush());
}

/// Writes one line to stderr; a write error is ignored.
pub fn note(args: fmt::Arguments) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_fmt(args).and_then(|()| e.write_all(b"\n"));
}

/// `println!` that ignores a closed stdout.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::console::out(format_args!($($arg)*))
    };
}

/// `eprintln!` that ignores a closed stderr.
#[macro_export]
macro_rules! noteln {
    ($($arg:tt)*) => {
        $crate::console::note(format_args!($($arg)*))
    };
}

/// A bar on stderr for `len` steps of `what` when stderr is a terminal, hidden otherwise.
pub fn progress_bar(what: &str, len: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    let template = format!("{what} [{{bar:30}}] {{pos}}/{{len}} ETA {{eta}}");
    bar.set_style(
        indicatif::ProgressStyle::with_template(&template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// Seconds between plain progress lines at most (see [`Progress`]).
const LOG_LINE_SECONDS: f64 = 30.0;

/// The progress of a long command over `len` units of `what`: a [`progress_bar`] on a
/// terminal's stderr; otherwise (a log file, a pipe) a plain line on stderr each time another
/// tenth of the work is done or [`LOG_LINE_SECONDS`] have passed since the last line, so that
/// a log shows the command is alive and how long it has left.
pub struct Progress {
    bar: indicatif::ProgressBar,
    what: String,
    unit: String,
    len: usize,
    log: bool,
    start: crate::platform::Instant,
    last_line: f64,
    last_tenth: usize,
}

impl Progress {
    /// Progress over `len` `unit`s (a plural noun, "batches") of `what`.
    pub fn new(what: &str, unit: &str, len: usize) -> Progress {
        use std::io::IsTerminal;
        Progress {
            bar: progress_bar(what, len),
            what: what.into(),
            unit: unit.into(),
            len,
            log: !std::io::stderr().is_terminal(),
            start: crate::platform::Instant::now(),
            last_line: 0.0,
            last_tenth: 0,
        }
    }

    /// `done` of the units are done.
    pub fn set(&mut self, done: usize) {
        self.bar.set_position(done as u64);
        if !self.log || done == 0 || done >= self.len {
            return;
        }
        let seconds = self.start.elapsed().as_secs_f64();
        let tenth = done * 10 / self.len;
        if tenth > self.last_tenth || seconds - self.last_line >= LOG_LINE_SECONDS {
            self.last_tenth = tenth;
            self.last_line = seconds;
            let left = seconds / done as f64 * (self.len - done) as f64;
            note(format_args!(
                "{}: {done}/{} {} ({}%), {seconds:.0} s so far, about {left:.0} s left",
                self.what,
                self.len,
                self.unit,
                done * 100 / self.len
            ));
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
