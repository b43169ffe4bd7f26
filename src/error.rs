//! The crate's one error type: a single human-readable line that names the file or thing at
//! fault and what is wrong with it. Commands print it and exit non-zero; nothing panics on bad
//! input.

use std::fmt;

/// One-line error message (no trailing newline, no backtrace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn msg(text: impl Into<String>) -> Self {
        Error(text.into())
    }

    /// An I/O error on `path`, e.g. "assets/x.gz: No such file or directory".
    pub fn io(path: &std::path::Path, err: std::io::Error) -> Self {
        Error(format!("{}: {}", path.display(), err))
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// `bail!("{}: bad magic", path.display())` returns early with an [`Error`].
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::msg(format!($($arg)*)))
    };
}
