//! The run folder of `gpu-ae train`: claimed under a lock so that one training writes it at a
//! time, refused when it already holds a run (unless resuming or overwriting), and written so that
//! whatever instant the process dies, it holds one consistent checkpoint that resumes.
//!
//! A checkpoint of epoch E (after it, or after some steps of epoch E+1: the steps count tells
//! them apart) is committed in this order, every write atomic (temp file, fsync, rename):
//! 1. `.optimizer-pending.safetensors` ← Adam's moments after epoch E;
//! 2. `metrics.jsonl` ← the history up to epoch E;
//! 3. `model.safetensors` ← the parameters after epoch E: **the commit point**;
//! 4. `.optimizer-pending.safetensors` renamed to `optimizer.safetensors`;
//! 5. `loss.png` redrawn.
//!
//! Before 3 the folder still resumes from epoch E−1 (a pending optimizer file of another epoch
//! is discarded, and extra history lines are dropped); after it, [`RunFolder::load`] finishes
//! step 4 if the process died before it. Both checkpoint files carry the epoch and step count in
//! their metadata, and a resume checks that they agree.
//!
//! A new run records its settings in `run.json` when it claims the folder, so that a run killed
//! before its first checkpoint starts again from step 0 on `--resume`.
//!
//! `--overwrite` of a folder that holds a run writes the new run beside the old one, in the
//! hidden subfolder `.gpu-ae-overwrite`, by the same protocol; the old run stays whole until
//! the new run's first checkpoint is committed there. Then the new files replace the old ones
//! (each old file removed only while its new one waits in the subfolder, the model moved last),
//! and training goes on in the folder itself. A claim finishes that move if a dead process
//! left it half done, and removes a subfolder without a committed model (the old run stays).

use std::cell::Cell;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::bail;
use crate::checkpoint::{self, Checkpoint};
use crate::error::{Error, Result};
use crate::files::{self, rename_durable, write_atomic};
use crate::model::LossKind;
use crate::pictures::viz;
use crate::run::settings;

/// File names inside a run folder.
pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const LOSS_PLOT_FILE: &str = "loss.png";
/// The optimizer state of a checkpoint being committed (step 1 of the protocol).
pub const PENDING_OPTIMIZER_FILE: &str = ".optimizer-pending.safetensors";
/// Held (locked) by the training that writes the folder; removed when it ends.
pub const LOCK_FILE: &str = ".gpu-ae.lock";
/// The settings of a run, written when a new run claims its folder
/// ([`crate::run::settings::RunStart`]).
pub const RECORD_FILE: &str = "run.json";
/// Where an `--overwrite` writes its new run until the first commit.
pub const STAGING_DIR: &str = ".gpu-ae-overwrite";

/// The files that make a folder a run (any one of them is enough).
const RUN_FILES: [&str; 5] = [
    MODEL_FILE,
    OPTIMIZER_FILE,
    PENDING_OPTIMIZER_FILE,
    METRICS_FILE,
    LOSS_PLOT_FILE,
];

/// How a training takes its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// A new run: the folder must not hold one.
    New,
    /// A new run that replaces the run the folder holds (`--overwrite`).
    Overwrite,
    /// Continue the run the folder holds (`--resume`).
    Resume,
}

/// A run folder held by this process: the lock is released and the lock file removed on drop;
/// a folder this process created is removed again if no checkpoint was committed into it, and
/// so is a staged `--overwrite` (the old run stays).
#[derive(Debug)]
pub struct RunFolder {
    dir: PathBuf,
    lock: Option<File>,
    /// This process created the folder.
    created: bool,
    /// This process began to commit a checkpoint here.
    wrote: Cell<bool>,
    /// This process wrote the run's `run.json`.
    recorded: Cell<bool>,
    /// The run's files go to [`STAGING_DIR`] until its first commit (an `--overwrite` of a
    /// folder that holds a run).
    staged: Cell<bool>,
}

impl RunFolder {
    /// Claims a new folder `parent/stem`, or `parent/stem-2`, `stem-3`, … when that exists: two
    /// runs started in the same second never share a folder.
    pub fn create_unique(parent: &Path, stem: &str) -> Result<RunFolder> {
        fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        for n in 1..10_000 {
            let dir = if n == 1 {
                parent.join(stem)
            } else {
                parent.join(format!("{stem}-{n}"))
            };
            match fs::create_dir(&dir) {
                Ok(()) => return RunFolder::lock(dir, true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&dir, e)),
            }
        }
        bail!(
            "{}: no free run folder name {stem}-N; pass --out",
            parent.display()
        )
    }

    /// Claims `dir` (created if missing): takes its lock, removes what killed writers left behind,
    /// and checks it against `claim`: a new run needs a folder without a run; `Overwrite` of a
    /// folder that holds one writes the new run into [`STAGING_DIR`] until its first commit.
    /// Fails before any training when the folder cannot be written.
    pub fn claim(dir: &Path, claim: Claim) -> Result<RunFolder> {
        if dir.exists() && !dir.is_dir() {
            bail!("{}: not a folder", dir.display());
        }
        let created = !dir.exists();
        if created {
            if claim == Claim::Resume {
                bail!("{}: no such run folder", dir.display());
            }
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let folder = RunFolder::lock(dir.to_path_buf(), created)?;
        folder.remove_litter()?;
        let held: Vec<&str> = RUN_FILES
            .into_iter()
            .filter(|f| dir.join(f).exists())
            .collect();
        match claim {
            Claim::New if !held.is_empty() => bail!(
                "{}: already holds a run ({}); continue it with --resume {}, or replace it with --overwrite",
                dir.display(),
                held.join(", "),
                dir.display()
            ),
            Claim::Overwrite if !held.is_empty() => {
                let staging = dir.join(STAGING_DIR);
                fs::create_dir(&staging).map_err(|e| Error::io(&staging, e))?;
                folder.staged.set(true);
            }
            _ => {}
        }
        Ok(folder)
    }

    /// Creates and locks the lock file of `dir`; errors name the folder.
    fn lock(dir: PathBuf, created: bool) -> Result<RunFolder> {
        let path = dir.join(LOCK_FILE);
        let mut folder = RunFolder {
            dir,
            lock: None,
            created,
            wrote: Cell::new(false),
            recorded: Cell::new(false),
            staged: Cell::new(false),
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::msg(format!("{}: cannot write here: {e}", folder.dir.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let who = match pid.trim() {
                    "" => "another gpu-ae process".to_string(),
                    p => format!("another gpu-ae process (pid {p})"),
                };
                // Not ours: leave the lock file and the folder to their owner.
                folder.created = false;
                std::mem::forget(folder);
                bail!(
                    "{}: {who} is training in this folder; wait for it or choose another --out",
                    path.parent().unwrap_or(Path::new(".")).display()
                );
            }
            Err(TryLockError::Error(e)) => bail!("{}: cannot lock: {e}", path.display()),
        }
        let pid = std::process::id().to_string();
        file.set_len(0)
            .and_then(|()| file.write_all(pid.as_bytes()))
            .map_err(|e| Error::io(&path, e))?;
        folder.lock = Some(file);
        Ok(folder)
    }

    /// Removes what a killed training left behind (the lock guarantees that no other training
    /// writes here): temp files of run files, and the files of a first commit that did not reach
    /// its commit point (a pending optimizer file, then metrics and plot, and no model).
    fn remove_litter(&self) -> Result<()> {
        let entries = fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = RUN_FILES
                .iter()
                .chain(&[RECORD_FILE])
                .any(|f| name.starts_with(&format!(".{f}.tmp-")));
            if ours && files::is_temp_name(&name) {
                fs::remove_file(entry.path()).map_err(|e| Error::io(&entry.path(), e))?;
            }
        }
        // An `--overwrite` that a kill interrupted: finished when its first commit was made,
        // otherwise removed (the old run is whole).
        let staging = self.dir.join(STAGING_DIR);
        if staging.is_dir() {
            if staging.join(MODEL_FILE).is_file() {
                finish_overwrite(&self.dir)?;
            } else {
                fs::remove_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
            }
        }
        if !self.has_checkpoint() && self.path(PENDING_OPTIMIZER_FILE).exists() {
            remove_uncommitted(&self.dir)?;
        }
        Ok(())
    }

    /// Whether this process created the folder (it goes again if nothing is committed).
    pub fn is_new(&self) -> bool {
        self.created
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the run's `file` is written now: in the folder, or in [`STAGING_DIR`] before an
    /// `--overwrite`'s first commit.
    pub fn path(&self, file: &str) -> PathBuf {
        if self.staged.get() {
            self.dir.join(STAGING_DIR).join(file)
        } else {
            self.dir.join(file)
        }
    }

    /// Writes the run's settings (`run.json`, atomically): a new run does it when it has
    /// claimed the folder, so that a kill before its first checkpoint leaves a run that
    /// `--resume` starts again.
    pub fn record(&self, settings: &str) -> Result<()> {
        self.recorded.set(true);
        write_atomic(&self.path(RECORD_FILE), settings.as_bytes())
    }

    /// Whether a checkpoint has been committed (the model file exists).
    pub fn has_checkpoint(&self) -> bool {
        self.path(MODEL_FILE).is_file()
    }

    /// Commits the checkpoint of one epoch (see the module doc for the order): `model` and
    /// `optimizer` must carry the same `epoch` and `steps` metadata; `history` is every epoch's
    /// metrics line so far.
    pub fn save(
        &self,
        model: &Checkpoint,
        optimizer: &Checkpoint,
        history: &[serde_json::Value],
        loss: LossKind,
    ) -> Result<()> {
        debug_assert!(same_state(model, optimizer));
        let had_checkpoint = self.has_checkpoint();
        self.wrote.set(true);
        let pending = self.path(PENDING_OPTIMIZER_FILE);
        checkpoint::save(&pending, optimizer)
            .and_then(|()| write_history(&self.path(METRICS_FILE), history))
            .and_then(|()| checkpoint::save(&self.path(MODEL_FILE), model))
            .map_err(|e| self.not_committed(e, had_checkpoint))?;
        let finish = || -> Result<()> {
            rename_durable(&pending, &self.path(OPTIMIZER_FILE))?;
            plot_history(&self.path(LOSS_PLOT_FILE), history, loss)?;
            if self.staged.get() {
                // The new run's first commit: it replaces the old run now.
                finish_overwrite(&self.dir)?;
                self.staged.set(false);
            }
            Ok(())
        };
        finish().map_err(|e| {
            Error::msg(format!(
                "{e}; the checkpoint itself is committed ({MODEL_FILE}), and `--resume {}` finishes the rest",
                self.dir.display()
            ))
        })
    }

    /// The error `e` of a checkpoint that failed before its commit point, saying what the
    /// folder keeps: the previous checkpoint (`had_checkpoint`), the run an `--overwrite` was
    /// to replace, or nothing (a new folder is then removed).
    fn not_committed(&self, e: Error, had_checkpoint: bool) -> Error {
        let dir = self.dir.display();
        let kept = if had_checkpoint {
            format!(
                "this checkpoint was not written, and the previous one in {dir} is intact (`--resume {dir}` continues from it)"
            )
        } else if self.staged.get() {
            format!("the new run wrote no checkpoint, and the run that {dir} held stays as it was")
        } else if !self.recorded.get() {
            // A run killed before its first checkpoint, started again from its run.json.
            format!(
                "the run wrote no checkpoint yet, and `--resume {dir}` starts it again from step 0"
            )
        } else if self.created {
            format!("the run wrote no checkpoint, so its new folder {dir} is removed")
        } else {
            format!("the run wrote no checkpoint, so {dir} is left without a run")
        };
        Error::msg(format!("{e}; {kept}"))
    }

    /// The committed checkpoint: the model and the optimizer state of the same epoch. Finishes a
    /// commit that a dead process left between steps 3 and 4, and discards a pending optimizer
    /// file of an uncommitted epoch.
    pub fn load(&self) -> Result<(Checkpoint, Checkpoint)> {
        let model_path = self.path(MODEL_FILE);
        let opt_path = self.path(OPTIMIZER_FILE);
        let model = checkpoint::load(&model_path)?;
        settle_pending(&self.dir, &model)?;
        if !opt_path.exists() {
            bail!(
                "{}: missing: the run's Adam state belongs beside {}, and without it the run cannot go on exactly; put the file back (copy it with the model), or start a new run from the model with `gpu-ae train --init {} --out NEW_DIR`",
                opt_path.display(),
                model_path.display(),
                model_path.display()
            );
        }
        let opt = checkpoint::load(&opt_path)?;
        if !same_state(&model, &opt) {
            bail!(
                "{}: optimizer state is from epoch {}, the model from epoch {}",
                opt_path.display(),
                opt.meta("epoch").unwrap_or("?"),
                model.meta("epoch").unwrap_or("?")
            );
        }
        Ok((model, opt))
    }

    /// The metrics lines of the epochs done so far (empty for a new run).
    pub fn history(&self) -> Result<Vec<serde_json::Value>> {
        read_history(&self.path(METRICS_FILE))
    }

    /// Redraws `loss.png` from `history` when it is missing or older than the model (the last
    /// commit died before step 5).
    pub fn refresh_plot(&self, history: &[serde_json::Value], loss: LossKind) -> Result<()> {
        let modified = |f: &str| fs::metadata(self.path(f)).and_then(|m| m.modified()).ok();
        let stale = match (modified(LOSS_PLOT_FILE), modified(MODEL_FILE)) {
            (Some(plot), Some(model)) => plot < model,
            _ => true,
        };
        if history.is_empty() || !stale {
            return Ok(());
        }
        plot_history(&self.path(LOSS_PLOT_FILE), history, loss)
    }
}

impl Drop for RunFolder {
    fn drop(&mut self) {
        release(
            &self.dir,
            self.created,
            self.staged.get(),
            self.wrote.get(),
            self.recorded.get(),
        );
        self.staged.set(false);
        // Closing the lock file releases the lock.
        self.lock = None;
    }
}

/// What a claim that ends before training can undo, as plain values that another thread (the
/// stop handler, [`crate::run::stop::exit_early`]) can act on while this one is still busy setting up.
#[derive(Debug, Clone)]
pub struct Unclaim {
    dir: PathBuf,
    created: bool,
    staged: bool,
    recorded: bool,
}

impl Unclaim {
    /// Undoes the claim as dropping the folder would before any checkpoint was written (the
    /// lock file, a recorded `run.json`, a staged `--overwrite`, a folder this process created)
    /// and says in one line what the folder now holds.
    pub fn run(&self) -> String {
        release(&self.dir, self.created, self.staged, false, self.recorded);
        let dir = self.dir.display();
        if self.created && !self.dir.exists() {
            format!("removed the new folder {dir}")
        } else if self.staged {
            format!("{dir} keeps its old run")
        } else {
            format!("{dir} is as it was")
        }
    }
}

impl RunFolder {
    /// What undoes this claim while nothing has been written but its settings.
    pub fn unclaim(&self) -> Unclaim {
        Unclaim {
            dir: self.dir.clone(),
            created: self.created,
            staged: self.staged.get(),
            recorded: self.recorded.get(),
        }
    }
}

/// Ends a claim of `dir`: a staged `--overwrite` that committed nothing is removed (the old run
/// stays as it was); otherwise, without a checkpoint, what an unfinished first commit wrote
/// (`wrote`) and the settings this process recorded (`recorded`) are removed; then the lock
/// file, and the folder itself when this process created it and it is empty.
fn release(dir: &Path, created: bool, staged: bool, wrote: bool, recorded: bool) {
    let has_checkpoint = || dir.join(MODEL_FILE).is_file();
    if staged {
        let _ = fs::remove_dir_all(dir.join(STAGING_DIR));
    } else if !has_checkpoint() {
        if wrote {
            // Nothing was committed: what an unfinished first commit wrote is not a run.
            let _ = remove_uncommitted(dir);
        }
        if recorded {
            // Ended without a kill and without a checkpoint: nothing to resume.
            let _ = fs::remove_file(dir.join(RECORD_FILE));
        }
    }
    // Removed while still held, so no other process can take a lock on a file about to go.
    let _ = fs::remove_file(dir.join(LOCK_FILE));
    if created && !has_checkpoint() {
        // Only succeeds while the folder is empty: nothing of the user's is removed.
        let _ = fs::remove_dir(dir);
    }
}

/// Removes the files an unfinished first commit in `dir` writes before its commit point.
fn remove_uncommitted(dir: &Path) -> Result<()> {
    for f in [PENDING_OPTIMIZER_FILE, METRICS_FILE, LOSS_PLOT_FILE] {
        let path = dir.join(f);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(&path, e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Finishes step 4 of a commit in `dir` that a dead process left (the pending optimizer file
/// of `model`'s state becomes `optimizer.safetensors`) or discards a pending file of an
/// uncommitted epoch.
fn settle_pending(dir: &Path, model: &Checkpoint) -> Result<()> {
    let pending_path = dir.join(PENDING_OPTIMIZER_FILE);
    if pending_path.exists() {
        match checkpoint::load(&pending_path) {
            Ok(pending) if same_state(model, &pending) => {
                rename_durable(&pending_path, &dir.join(OPTIMIZER_FILE))?;
            }
            _ => fs::remove_file(&pending_path).map_err(|e| Error::io(&pending_path, e))?,
        }
    }
    Ok(())
}

/// Replaces the run in `dir` with the one committed in its [`STAGING_DIR`]: the staged
/// commit's step 4 finished, then each old file removed while its new one still waits staged
/// (so a file already moved in is never taken for an old one: the process may have died here
/// before), the old pending optimizer file too, then the new files moved in, the model last,
/// and the subfolder removed.
fn finish_overwrite(dir: &Path) -> Result<()> {
    let staging = dir.join(STAGING_DIR);
    let model = checkpoint::load(&staging.join(MODEL_FILE))?;
    settle_pending(&staging, &model)?;
    let moved = [
        RECORD_FILE,
        OPTIMIZER_FILE,
        METRICS_FILE,
        LOSS_PLOT_FILE,
        MODEL_FILE,
    ];
    for f in moved.iter().chain(&[PENDING_OPTIMIZER_FILE]) {
        let old = dir.join(f);
        if (*f == PENDING_OPTIMIZER_FILE || staging.join(f).exists()) && old.exists() {
            fs::remove_file(&old).map_err(|e| Error::io(&old, e))?;
        }
    }
    for f in moved {
        let new = staging.join(f);
        if new.exists() {
            rename_durable(&new, &dir.join(f))?;
        }
    }
    fs::remove_dir_all(&staging).map_err(|e| Error::io(&staging, e))
}

/// Whether two checkpoint files hold the state after the same epoch and step.
fn same_state(a: &Checkpoint, b: &Checkpoint) -> bool {
    let stamp = settings::state_stamp(a);
    stamp.is_some() && stamp == settings::state_stamp(b)
}

fn read_history(path: &Path) -> Result<Vec<serde_json::Value>> {
    match fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| {
                    Error::msg(format!("{}: line {}: bad JSON: {e}", path.display(), i + 1))
                })
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn write_history(path: &Path, history: &[serde_json::Value]) -> Result<()> {
    let mut text = String::new();
    for h in history {
        text.push_str(&h.to_string());
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

fn plot_history(path: &Path, history: &[serde_json::Value], loss: LossKind) -> Result<()> {
    let series = |name: &str, key: &str| viz::Series {
        name: name.into(),
        points: history
            .iter()
            .filter_map(|h| Some((h["epoch"].as_f64()? as f32, h[key].as_f64()? as f32)))
            .collect(),
    };
    let vae = history
        .first()
        .is_some_and(|h| h.get("test_neg_elbo").is_some());
    let test_key = if vae {
        "test_neg_elbo".to_string()
    } else {
        format!("test_{}", loss.name())
    };
    let img = viz::line_chart(
        &[series("train", "train_loss"), series("test", &test_key)],
        if vae {
            "negative ELBO per example"
        } else {
            "reconstruction loss per example"
        },
        "epoch",
        "nats",
    );
    viz::save_image(path, &image::DynamicImage::ImageRgb8(img))
}
