//! Learning-rate schedules, per optimizer step `t` (0-based), the formula of
//! `pytorch_images.py`: `lr·warm(t)·c(t)` with `warm(t) = min(1, (t+1)/W)` for `W` warm-up
//! steps (else 1) and `c(t) = (1 + cos(π·t/T))/2` over the `T` steps of the run's epochs for
//! the cosine schedule (else 1). The GPU computes the rate of every step from the step counter
//! and these words (`shaders/adam.wgsl`), so a schedule costs no re-recording and a resumed run
//! continues it exactly; [`Schedule::rate`] is its host twin.

use crate::metadata::{choice, text};

/// `--lr-schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LrSchedule {
    /// `--lr` at every step (after any warm-up).
    Constant,
    /// From `--lr` down to 0 over the run's steps, half a cosine wave.
    Cosine,
}

/// A run's schedule: the kind, the warm-up and the horizon `T` (the steps of the epochs the
/// run was started for; the cosine reaches 0 there and stays).
/// In metadata `lr_schedule`, `warmup_steps` and `lr_horizon` (0 when absent: runs written
/// before schedules had the constant rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Schedule {
    #[serde(rename = "lr_schedule", with = "choice", default = "constant")]
    pub kind: LrSchedule,
    #[serde(with = "text", default)]
    pub warmup_steps: u32,
    #[serde(rename = "lr_horizon", with = "text", default)]
    pub horizon_steps: u32,
}

fn constant() -> LrSchedule {
    LrSchedule::Constant
}

impl Default for Schedule {
    /// The constant rate, no warm-up.
    fn default() -> Schedule {
        Schedule {
            kind: LrSchedule::Constant,
            warmup_steps: 0,
            horizon_steps: 0,
        }
    }
}

impl Schedule {
    /// Whether the rate ever differs from `--lr`.
    pub fn varies(&self) -> bool {
        self.kind != LrSchedule::Constant || self.warmup_steps > 0
    }

    /// The factor of step `t` (0-based), in f64 as the reference computes it.
    pub fn factor(&self, t: u64) -> f64 {
        let warm = if self.warmup_steps > 0 {
            ((t + 1) as f64 / self.warmup_steps as f64).min(1.0)
        } else {
            1.0
        };
        match self.kind {
            LrSchedule::Constant => warm,
            LrSchedule::Cosine => {
                let t = t.min(self.horizon_steps as u64) as f64;
                let total = self.horizon_steps.max(1) as f64;
                warm * 0.5 * (1.0 + (std::f64::consts::PI * t / total).cos())
            }
        }
    }

    /// The schedule decaying over every step of `epochs` epochs of `steps_per_epoch` steps;
    /// `None` past 2³² steps.
    pub fn over_epochs(self, epochs: usize, steps_per_epoch: usize) -> Option<Schedule> {
        let horizon_steps = u32::try_from(epochs.checked_mul(steps_per_epoch)?).ok()?;
        Some(Schedule {
            horizon_steps,
            ..self
        })
    }

    /// The rate of step `t` for base rate `lr`.
    pub fn rate(&self, lr: f32, t: u64) -> f32 {
        (lr as f64 * self.factor(t)) as f32
    }

    /// The words `shaders/adam.wgsl` reads: kind, horizon, warm-up, the base rate's bits.
    pub fn words(&self, lr: f32) -> [u32; 4] {
        let kind = match self.kind {
            LrSchedule::Constant => 0,
            LrSchedule::Cosine => 1,
        };
        [kind, self.horizon_steps, self.warmup_steps, lr.to_bits()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference's factor: warm-up to step W, half a cosine to T.
    #[test]
    fn cosine_with_warmup_follows_the_reference() {
        let s = Schedule {
            kind: LrSchedule::Cosine,
            warmup_steps: 100,
            horizon_steps: 1000,
        };
        assert!((s.factor(0) - 0.01).abs() < 1e-12);
        assert!(
            (s.factor(49) - 0.5 * (1.0 + (std::f64::consts::PI * 0.049).cos()) * 0.5).abs() < 1e-12
        );
        assert!((s.factor(500) - 0.5).abs() < 1e-12);
        assert_eq!(s.factor(1000), 0.0);
        assert_eq!(s.factor(5000), 0.0);
        let constant = Schedule::default();
        assert_eq!(constant.factor(12345), 1.0);
        assert!(!constant.varies() && s.varies());
        assert_eq!(s.words(1e-3)[3], 1e-3f32.to_bits());
        assert_eq!(s.over_epochs(3, 7).map(|s| s.horizon_steps), Some(21));
        assert_eq!(s.over_epochs(1 << 16, 1 << 16), None);
    }
}
