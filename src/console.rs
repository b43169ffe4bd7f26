//! Output lines that never panic or fail a command: a closed stdout or stderr (`gpu-ae train 2>&1
//! | head -1`) must not stop a training or lose a checkpoint, so lines that cannot be written are
//! dropped. [`outln!`](crate::outln) writes to stdout, [`noteln!`](crate::noteln) to stderr.
//! Also the progress bar of long commands, shown only on a terminal.

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
