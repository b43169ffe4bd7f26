//! One rule for every numeric flag of the command line, checked while parsing (before any
//! work): counts and sizes are whole numbers of at least 1 (`--widths` a list of them), `--padding` and seeds whole numbers
//! of at least 0, rates (`--lr`, `--noise`) finite numbers greater than 0, weights (`--beta`)
//! finite numbers of at least 0. Negative numbers are
//! read as values (`--lr -1` as well as `--lr=-1`) so that they get these messages too. Also the
//! command line's own enums (`--task`, `--precision`) whose values `--help` lists.

use std::str::FromStr;

use gpu_ae::gpu::Elem;
use gpu_ae::model::Task;

/// `--task`; `--noise` completes `denoise`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TaskName {
    Reconstruct,
    Denoise,
    Superres,
}

impl TaskName {
    pub fn task(self, noise: f32) -> Task {
        match self {
            TaskName::Reconstruct => Task::Reconstruct,
            TaskName::Denoise => Task::Denoise { noise },
            TaskName::Superres => Task::Superres,
        }
    }
}

/// `--precision`: the storage of activations and their gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Precision {
    F32,
    F16,
}

impl Precision {
    pub fn elem(self) -> Elem {
        match self {
            Precision::F32 => Elem::F32,
            Precision::F16 => Elem::F16,
        }
    }
}

/// A count or size: a whole number ≥ 1.
pub fn count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("must be a whole number of at least 1".into()),
    }
}

/// A whole number ≥ 0 of type `T` (`--padding`, seeds).
pub fn whole<T: FromStr>(s: &str) -> Result<T, String> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be a whole number of at least 0".into());
    }
    t.parse::<T>()
        .map_err(|_| "is too large for this flag".to_string())
}

/// `--widths`: the channel counts of the conv family's stride-2 convolutions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widths(pub Vec<usize>);

/// One to eight counts ≥ 1, comma-separated (`32,64,128`).
pub fn widths(s: &str) -> Result<Widths, String> {
    let list: Option<Vec<usize>> = s.split(',').map(|w| count(w).ok()).collect();
    match list {
        Some(w) if !w.is_empty() && w.len() <= 8 => Ok(Widths(w)),
        _ => Err("must be one to eight whole numbers of at least 1, comma-separated".into()),
    }
}

/// A weight: a finite number ≥ 0 (`--beta`).
pub fn weight(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err("must be a finite number of at least 0".into()),
    }
}

/// `--channels`: 1 or 3.
pub fn channels(s: &str) -> Result<u8, String> {
    match s.trim() {
        "1" => Ok(1),
        "3" => Ok(3),
        _ => Err("must be 1 (grey) or 3 (colour)".into()),
    }
}

/// `--test-percent`: a whole number from 1 to 99.
pub fn percent(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(p) if (1..=99).contains(&p) => Ok(p),
        _ => Err("must be a whole number from 1 to 99".into()),
    }
}

/// A rate: a finite number > 0.
pub fn positive(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err("must be a finite number greater than 0".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rates_and_whole_numbers_follow_one_rule() {
        assert_eq!(count("3"), Ok(3));
        for bad in ["0", "-1", "1.5", "", "x"] {
            assert!(count(bad).is_err(), "{bad}");
        }
        assert_eq!(whole::<u32>("0"), Ok(0));
        for bad in ["-1", "+1", "1e3", ""] {
            assert!(whole::<u32>(bad).is_err(), "{bad}");
        }
        assert!(whole::<u32>("4294967296").is_err());
        assert_eq!(widths("32,64, 128"), Ok(Widths(vec![32, 64, 128])));
        for bad in ["", ",", "32,,64", "0", "1,2,3,4,5,6,7,8,9", "a"] {
            assert!(widths(bad).is_err(), "{bad}");
        }
        assert_eq!(weight("0"), Ok(0.0));
        for bad in ["-0.5", "nan", "inf"] {
            assert!(weight(bad).is_err(), "{bad}");
        }
        assert_eq!(positive("1e-3"), Ok(1e-3));
        for bad in ["0", "-1", "nan", "inf", "-inf", "1e40", "x"] {
            assert!(positive(bad).is_err(), "{bad}");
        }
    }
}
