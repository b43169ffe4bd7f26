//! Runs under faults and misuse (issue 11), one test per item: a run folder is never overwritten
//! or shared, a kill at any write of a checkpoint leaves a run that resumes, closed pipes, what a
//! resume checks, one rule for numeric flags, an unwritable `--out`, litter and Ctrl-C (also
//! before the first step), noise that depends on the image (in `tests/cli.rs`:
//! `eval_does_not_depend_on_the_batch_size`), small lies, and saying where it runs.

mod support;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gpu_ae::checkpoint;
use gpu_ae::run::folder::{self, Claim, RunFolder};
use support::*;

/// The quick training flags of `support::train`, for commands built here.
fn quick(args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    v.extend(
        ["--batch", "64", "--eval-batch", "64", "--quiet"]
            .iter()
            .map(|a| a.to_string()),
    );
    v
}

/// A new quick run of the fixture into `dir`, for commands built here.
fn new_run(dir: &Path, epochs: &str) -> Vec<String> {
    quick(&[
        "train",
        "--data",
        data_dir(),
        "--out",
        s(dir),
        "--epochs",
        epochs,
    ])
}

fn command(args: &[String]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).current_dir(root());
    c
}

/// The names in a folder, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The files a finished run folder holds, and nothing else.
const RUN_FILES: [&str; 5] = [
    "loss.png",
    "metrics.jsonl",
    "model.safetensors",
    "optimizer.safetensors",
    "run.json",
];

fn metrics_epochs(dir: &Path) -> Vec<u64> {
    metrics(dir)
        .iter()
        .map(|l| l["epoch"].as_u64().unwrap())
        .collect()
}

/// The metadata value `key` of a run folder's model.
fn meta_of(dir: &Path, key: &str) -> String {
    let c = checkpoint::load(&model_file(dir)).unwrap();
    c.meta(key).unwrap().to_string()
}

fn epoch_of(dir: &Path) -> String {
    meta_of(dir, "epoch")
}

// 1 -------------------------------------------------------------------------------------------

#[test]
fn a_run_folder_is_never_overwritten_nor_shared() {
    let out = root().join("taken");
    let _ = fs::remove_dir_all(&out);
    train(&out, &[]);
    let before = snapshot(&out);
    #[rustfmt::skip]
    let e = fails(&["train", "--data", data_dir(), "--out", s(&out), "--epochs", "2", "--quiet"], &[s(&out), "--resume", "--overwrite"], &[]);
    assert!(e.contains("already holds a run"), "{e}");
    assert!(snapshot(&out) == before, "a refused run changed the folder");

    // --overwrite replaces it with a new run.
    train_epochs(&out, 1, &["--overwrite", "--seed", "7"]);
    assert_eq!(metrics_epochs(&out), vec![1]);
    let seed = checkpoint::load(&model_file(&out)).unwrap();
    assert_eq!(seed.meta("seed"), Some("7"));
    assert_eq!(names(&out), RUN_FILES);

    // A folder whose lock another process holds is refused, for a new run and a resume alike.
    let lock = fs::File::create(out.join(folder::LOCK_FILE)).unwrap();
    lock.try_lock().unwrap();
    #[rustfmt::skip]
    let e = fails(&["train", "--data", data_dir(), "--resume", s(&out), "--epochs", "2", "--quiet"], &[s(&out), "another gpu-ae process"], &[]);
    assert!(e.contains("training in this folder"), "{e}");
    drop(lock);
    fs::remove_file(out.join(folder::LOCK_FILE)).unwrap();

    // Default folder names never collide: two runs started in the same second get two folders,
    // both through the library and through two processes started together.
    let parent = scratch("default-names");
    let a = RunFolder::create_unique(&parent, "conv-vae-20261202-120000").unwrap();
    let b = RunFolder::create_unique(&parent, "conv-vae-20261202-120000").unwrap();
    assert_ne!(a.dir(), b.dir());
    assert!(b.dir().ends_with("conv-vae-20261202-120000-2"));
    drop((a, b));
    assert!(names(&parent).is_empty(), "uncommitted new folders stay");

    let cwd = scratch("default-out");
    let spawn = || {
        Command::new(BIN)
            .args(quick(&["train", "--data", data_dir(), "--epochs", "1"]))
            .current_dir(&cwd)
            .output()
    };
    let (x, y) = std::thread::scope(|s| {
        let x = s.spawn(spawn);
        let y = s.spawn(spawn);
        (x.join().unwrap().unwrap(), y.join().unwrap().unwrap())
    });
    assert!(x.status.success() && y.status.success(), "{x:?} {y:?}");
    let runs = names(&cwd.join("runs"));
    assert_eq!(runs.len(), 2, "{runs:?}");
    for r in runs {
        assert_eq!(names(&cwd.join("runs").join(r)), RUN_FILES);
    }
}

// 2 -------------------------------------------------------------------------------------------

/// Kills `train` at its `k`-th crash point (`GPU_AE_CRASH_AT`, see `gpu_ae::files::crash_point`);
/// returns false when the run finished before reaching it.
fn killed_at(k: usize, args: &[String]) -> bool {
    let out = command(args)
        .env("GPU_AE_CRASH_AT", k.to_string())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    if out.status.success() {
        return false;
    }
    assert!(
        out.status.code().is_none(),
        "crash point {k}: the run failed instead of being killed: {stderr}"
    );
    true
}

#[test]
fn a_kill_at_any_write_of_a_checkpoint_leaves_a_run_that_resumes() {
    let base = root().join("kill-base");
    let reference = root().join("kill-reference");
    let _ = fs::remove_dir_all(&base);
    let _ = fs::remove_dir_all(&reference);
    train_epochs(&base, 1, &[]);
    train_epochs(&reference, 2, &[]);

    // Every crash point of a resumed run's start and of its epoch-2 checkpoint.
    let mut points = 0;
    for k in 1.. {
        let dir = copy_dir(&base, "kill-resume");
        let args = quick(&["train", "--resume", s(&dir), "--epochs", "2"]);
        if !killed_at(k, &args) {
            break;
        }
        points += 1;
        let epoch = epoch_of(&dir);
        assert!(
            epoch == "1" || epoch == "2",
            "crash point {k}: epoch {epoch}"
        );
        if epoch == "1" {
            resume(&dir, 2);
        } else {
            // Committed: the run is done, and says so.
            #[rustfmt::skip]
            let e = fails(&["train", "--resume", s(&dir), "--epochs", "2", "--quiet"], &["already trained for 2"], &[]);
            assert!(e.contains(s(&dir)), "{e}");
        }
        same_parameters(&dir, &reference);
        assert_eq!(metrics_epochs(&dir), vec![1, 2], "crash point {k}");
        let opt = checkpoint::load(&dir.join("optimizer.safetensors")).unwrap();
        assert_eq!(opt.meta("epoch"), Some("2"), "crash point {k}");
        assert_eq!(names(&dir), RUN_FILES, "crash point {k}: litter left");
    }
    // Four per atomic write (temp created, half written, renamed, synced), two per rename:
    // optimizer, metrics, model, the optimizer's rename and the plot.
    assert!(points >= 4 * 4 + 2, "only {points} crash points");

    // A kill while the run's settings are recorded (crash points 1 to 4) or during the very
    // first commit leaves a folder that a new run takes again.
    for k in [2, 4, 5, 8, 9, 12, 13, 16, 17, 18, 22] {
        let dir = scratch("kill-first");
        let args = new_run(&dir, "1");
        assert!(killed_at(k, &args), "crash point {k} not reached");
        if dir.join("model.safetensors").exists() {
            // Committed: a resume finishes the commit (and says the run is done).
            #[rustfmt::skip]
            fails(&["train", "--resume", s(&dir), "--epochs", "1", "--quiet"], &["already trained for 1"], &[]);
            same_parameters(&dir, &base);
        } else {
            train(&dir, &[]);
            same_parameters(&dir, &base);
        }
        assert_eq!(names(&dir), RUN_FILES, "crash point {k}: litter left");
    }
}

// 3 -------------------------------------------------------------------------------------------

#[test]
fn closed_pipes_never_panic_nor_lose_a_checkpoint() {
    // `gpu-ae train … 2>&1 | head -1`: the reader goes away after the first line.
    let out = root().join("pipe-run");
    let _ = fs::remove_dir_all(&out);
    let (reader, writer) = std::io::pipe().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "train",
            "--data",
            data_dir(),
            "--out",
            s(&out),
            "--batch",
            "64",
            "--epochs",
            "3",
        ])
        .current_dir(root())
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(reader).read_line(&mut first).unwrap();
    assert!(!first.is_empty());
    let status = child.wait().unwrap();
    assert!(status.success(), "train exited with {status}");
    assert_eq!(epoch_of(&out), "3");
    assert_eq!(metrics_epochs(&out), vec![1, 2, 3]);

    // Commands whose stdout is closed before they write.
    let ckpt = model_file(&out);
    for args in [
        vec!["devices"],
        vec!["eval", "--checkpoint", s(&ckpt), "--data", data_dir()],
        vec![
            "bench",
            "--data",
            data_dir(),
            "--train-limit",
            "64",
            "--batch",
            "64",
            "--epochs",
            "1",
        ],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let run = Command::new(BIN)
            .args(&args)
            .current_dir(root())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = text(&run.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(run.status.success(), "{args:?}: {}: {stderr}", run.status);
    }
}

// 4 -------------------------------------------------------------------------------------------

#[test]
fn a_resume_checks_the_dataset_and_refuses_other_settings() {
    let base = root().join("resume-checks");
    let _ = fs::remove_dir_all(&base);
    train(&base, &[]);
    let meta = checkpoint::load(&model_file(&base)).unwrap();
    assert_eq!(
        meta.meta("data").map(PathBuf::from),
        Some(std::path::absolute(data_dir()).unwrap())
    );
    assert!(meta.meta("data_digest").unwrap().starts_with("fnv1a64:"));

    // Settings flags that differ from the run's are refused before any work; equal ones pass.
    let run_dir = copy_dir(&base, "resume-flags");
    for (flag, value) in [
        ("--beta", "0.5"),
        ("--widths", "8,16"),
        ("--batch", "32"),
        ("--model", "conv-ae"),
        ("--latent", "8"),
        ("--precision", "f16"),
        ("--seed", "3"),
        ("--loss", "mse"),
        ("--block", "residual"),
        ("--upsample", "nearest"),
        ("--lr-schedule", "cosine"),
        ("--warmup-steps", "10"),
    ] {
        #[rustfmt::skip]
        fails(&["train", "--resume", s(&run_dir), "--epochs", "2", "--quiet", flag, value], &[flag, value, "resumed run keeps"], &[]);
    }
    assert_eq!(epoch_of(&run_dir), "1");

    // Without --data the run's own dataset is read, from any working directory; repeating the
    // run's own settings is fine.
    let elsewhere = scratch("resume-elsewhere");
    let args = quick(&[
        "train",
        "--resume",
        s(&run_dir),
        "--epochs",
        "2",
        "--lr",
        "0.001",
    ]);
    let done = Command::new(BIN)
        .args(&args)
        .current_dir(&elsewhere)
        .output()
        .unwrap();
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert_eq!(epoch_of(&run_dir), "2");

    // The learning rate may change on resume: each metrics line and the checkpoint record the
    // rate used, and Adam's steps shrink with it (a tenth of the rate, about a tenth of the move).
    let moved = |lr: &str, name: &str| -> f64 {
        let dir = copy_dir(&run_dir, name);
        let before = checkpoint::load(&model_file(&dir)).unwrap();
        #[rustfmt::skip]
        ok(&["train", "--resume", s(&dir), "--epochs", "3", "--quiet", "--eval-batch", "64", "--lr", lr]);
        let after = checkpoint::load(&model_file(&dir)).unwrap();
        assert_eq!(after.meta("lr"), Some(lr));
        let rates: Vec<f64> = metrics(&dir)
            .iter()
            .map(|l| l["lr"].as_f64().unwrap())
            .collect();
        assert_eq!(rates, [0.001, 0.001, lr.parse().unwrap()]);
        let squared: f64 = before
            .tensors
            .iter()
            .zip(&after.tensors)
            .flat_map(|(a, b)| a.data.iter().zip(&b.data))
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum();
        squared.sqrt()
    };
    let (slow, same) = (
        moved("0.0001", "resume-lr-low"),
        moved("0.001", "resume-lr-same"),
    );
    assert!(
        slow < 0.3 * same && slow > 0.0,
        "an epoch at --lr 0.0001 moved the parameters by {slow}, at 0.001 by {same}"
    );

    // Other images are refused unless the user says so.
    let other = data_copy("resume-other-data");
    let images = other.join("train-images-idx3-ubyte");
    let mut bytes = fs::read(&images).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&images, bytes).unwrap();
    #[rustfmt::skip]
    fails(&["train", "--resume", s(&run_dir), "--data", s(&other), "--epochs", "3", "--quiet"], &["--data", s(&other), "differ", "--allow-data-change"], &[]);
    assert_eq!(epoch_of(&run_dir), "2");
    #[rustfmt::skip]
    ok(&["train", "--resume", s(&run_dir), "--data", s(&other), "--allow-data-change", "--epochs", "3", "--quiet", "--eval-batch", "64"]);
    let meta = checkpoint::load(&model_file(&run_dir)).unwrap();
    assert_eq!(
        meta.meta("data").map(PathBuf::from),
        Some(std::path::absolute(&other).unwrap())
    );
}

// 5 -------------------------------------------------------------------------------------------

#[test]
fn numeric_flags_follow_one_rule_before_any_work() {
    let out = root().join("flags-run");
    let ckpt = s(&model_file(&root().join("flags-never"))).to_string();
    let train_with = |extra: &[&str]| -> Vec<String> {
        let mut v = vec!["train", "--data", data_dir(), "--out", s(&out)];
        v.extend(extra);
        v.iter().map(|a| a.to_string()).collect()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (train_with(&["--lr", "-1"]), "--lr"),
        (train_with(&["--lr=-1"]), "--lr"),
        (train_with(&["--lr", "0"]), "--lr"),
        (train_with(&["--lr", "nan"]), "--lr"),
        (train_with(&["--lr", "inf"]), "--lr"),
        (train_with(&["--noise", "-0.5"]), "--noise"),
        (
            train_with(&["--checkpoint-minutes", "0"]),
            "--checkpoint-minutes",
        ),
        (
            train_with(&["--checkpoint-minutes", "-5"]),
            "--checkpoint-minutes",
        ),
        (train_with(&["--eval-batch", "0"]), "--eval-batch"),
        (train_with(&["--epochs", "-3"]), "--epochs"),
        (train_with(&["--seed", "-1"]), "--seed"),
        (train_with(&["--warmup-steps", "0"]), "--warmup-steps"),
        (train_with(&["--warmup-steps", "-4"]), "--warmup-steps"),
        (train_with(&["--block", "dense"]), "--block"),
        (train_with(&["--upsample", "bilinear"]), "--upsample"),
        (train_with(&["--lr-schedule", "step"]), "--lr-schedule"),
        (
            ["eval", "--checkpoint", ckpt.as_str(), "--batch", "0"]
                .map(String::from)
                .to_vec(),
            "--batch",
        ),
        (
            ["bench", "--epochs", "0"].map(String::from).to_vec(),
            "--epochs",
        ),
        (
            ["bench", "--train-limit", "0"].map(String::from).to_vec(),
            "--train-limit",
        ),
        (
            ["sample", "--padding", "-1"].map(String::from).to_vec(),
            "--padding",
        ),
    ];
    for (args, flag) in cases {
        let run = command(&args).output().unwrap();
        let stderr = text(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert!(
            lines.len() == 1 && lines[0].starts_with("error: ") && lines[0].contains(flag),
            "{args:?}: {stderr}"
        );
        assert!(!out.exists(), "{args:?} created the run folder");
    }
}

// 6 -------------------------------------------------------------------------------------------

#[test]
fn an_unwritable_out_is_refused_before_training() {
    let dir = scratch("unwritable");
    let file = dir.join("a-file");
    fs::write(&file, b"x").unwrap();
    let out = file.join("run");
    let started = Instant::now();
    #[rustfmt::skip]
    let e = fails(&["train", "--data", data_dir(), "--out", s(&out), "--epochs", "1"], &[s(&file)], &[]);
    assert!(!e.contains("epoch"), "{e}");
    // Refused before the adapter was even opened, let alone an epoch trained.
    let run = command(&["train", "--data", data_dir(), "--out", s(&out)].map(String::from))
        .output()
        .unwrap();
    assert!(
        !text(&run.stderr).contains("adapter: "),
        "{}",
        text(&run.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

// 7 -------------------------------------------------------------------------------------------

/// Reads stderr lines of `child` until one contains `needle`; returns every line read.
fn wait_for_line(child: &mut Child, needle: &str, limit: Duration) -> Vec<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut lines = Vec::new();
    while start.elapsed() < limit {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let found = line.contains(needle);
                lines.push(line);
                if found {
                    // The rest of stderr, after the process ends.
                    let rest = std::thread::spawn(move || rx.into_iter().collect::<Vec<_>>());
                    child.stderr = None;
                    interrupt(child);
                    let status = child.wait().unwrap();
                    lines.extend(rest.join().unwrap());
                    lines.push(format!("exit {:?}", status.code()));
                    return lines;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    let _ = child.kill();
    panic!("no line with {needle:?} in time: {lines:?}");
}

/// Sends SIGINT, as Ctrl-C does (through the shell's own `kill`, which every system has).
fn interrupt(child: &Child) {
    let ok = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn ctrl_c_keeps_what_is_done_and_a_kill_leaves_no_litter() {
    // Ctrl-C in the first epoch of a new run: nothing to keep, no folder left. The full MNIST
    // makes the epoch long; without a terminal, progress comes as lines (item 10).
    let parent = scratch("ctrl-c");
    let out = parent.join("first");
    let mut child = Command::new(BIN)
        .args(["train", "--out", s(&out), "--epochs", "2", "--batch", "64"])
        .current_dir(root())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let lines = wait_for_line(&mut child, "left in this epoch", Duration::from_secs(120));
    let all = lines.join("\n");
    assert!(all.contains("exit Some(130)"), "{all}");
    // The steps done are kept (see also a_stop_inside_an_epoch_keeps_its_steps).
    let kept = checkpoint::load(&model_file(&out)).unwrap();
    let step = kept.meta("epoch_step").unwrap();
    assert!(
        all.contains(&format!("stopped at step {step} of 938 in epoch 1")),
        "{all}"
    );
    assert_eq!(kept.meta("epoch"), Some("0"));
    assert_eq!(names(&out), RUN_FILES);

    // Ctrl-C after an epoch of a long run keeps its checkpoint and says how to resume.
    let out = parent.join("later");
    let mut child = Command::new(BIN)
        .args(new_run(&out, "1000"))
        .args(["--model", "dense-vae"])
        .current_dir(root())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // --quiet prints no epoch lines: wait for the first checkpoint instead.
    let start = Instant::now();
    while !out.join("model.safetensors").exists() {
        assert!(start.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(50));
    }
    interrupt(&child);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let epoch: usize = epoch_of(&out).parse().unwrap();
    let kept = checkpoint::load(&model_file(&out)).unwrap();
    let said = match kept.meta("epoch_step") {
        Some(step) => format!("stopped at step {step} of 4 in epoch {}", epoch + 1),
        None => format!("checkpoint of epoch {epoch}"),
    };
    assert!(stderr.contains(&said), "{stderr}");
    assert!(
        stderr.contains(&format!("--resume {}", out.display())),
        "{stderr}"
    );
    assert_eq!(metrics_epochs(&out).len(), epoch);
    assert_eq!(names(&out), RUN_FILES);

    // Temp files of killed writers are removed when the folder is next claimed.
    for litter in [
        ".model.safetensors.tmp-4000000-0",
        "..optimizer-pending.safetensors.tmp-4000000-3",
        ".metrics.jsonl.tmp-1-2",
    ] {
        fs::write(out.join(litter), b"half").unwrap();
    }
    fs::write(out.join("notes.txt"), b"the user's").unwrap();
    let next = (epoch + 1).to_string();
    #[rustfmt::skip]
    ok(&["train", "--resume", s(&out), "--epochs", &next, "--quiet", "--eval-batch", "64"]);
    let mut expected: Vec<&str> = RUN_FILES.to_vec();
    expected.push("notes.txt");
    expected.sort();
    assert_eq!(names(&out), expected);
}

/// A stop inside an epoch keeps the steps done in it: the resume continues at that step and
/// ends bit-identical to a run straight through, with the same metrics lines; so does a run
/// that writes a checkpoint after every submission. The fixture's 256 images in batches of 64
/// make 4 steps an epoch, and an epoch's first two submissions are one step each, so
/// `GPU_AE_STOP_AT_STEP` stops at a known step.
#[test]
fn a_stop_inside_an_epoch_keeps_its_steps() {
    let reference = root().join("inside-reference");
    let _ = fs::remove_dir_all(&reference);
    train_epochs(&reference, 3, &[]);
    let same_lines = |dir: &Path| {
        let (a, b) = (metrics(dir), metrics(&reference));
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            // The training sums too: a resumed epoch's go on from the kept f32 sums.
            for key in [
                "epoch",
                "lr",
                "test_bce",
                "test_kl",
                "test_neg_elbo",
                "train_loss",
                "train_bce",
                "train_kl",
            ] {
                assert_eq!(x[key], y[key], "{key}: {x} and {y}");
            }
        }
    };
    // (steps in all, the epoch and step it stops at)
    for (stop_at, epoch, step) in [(5, 1, 1), (2, 0, 2)] {
        let dir = scratch(&format!("inside-{stop_at}"));
        let out = command(&new_run(&dir, "3"))
            .env("GPU_AE_STOP_AT_STEP", stop_at.to_string())
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{stderr}");
        let said = format!("stopped at step {step} of 4 in epoch {}", epoch + 1);
        assert!(stderr.contains(&said), "{stderr}");
        let kept = checkpoint::load(&model_file(&dir)).unwrap();
        assert_eq!(kept.meta("epoch"), Some(epoch.to_string().as_str()));
        assert_eq!(kept.meta("epoch_step"), Some(step.to_string().as_str()));
        assert_eq!(kept.meta("steps"), Some(stop_at.to_string().as_str()));
        assert_eq!(metrics_epochs(&dir).len(), epoch);
        assert_eq!(names(&dir), RUN_FILES);
        resume(&dir, 3);
        same_parameters(&dir, &reference);
        same_lines(&dir);
    }

    // A checkpoint after every submission changes nothing either.
    let every = scratch("inside-every");
    train_epochs(&every, 3, &["--checkpoint-minutes", "0.000001"]);
    same_parameters(&every, &reference);
    same_lines(&every);

    // Stopped before its first step, a new run keeps nothing and leaves no folder.
    let none = root().join("inside-none");
    let _ = fs::remove_dir_all(&none);
    let out = command(&new_run(&none, "1"))
        .env("GPU_AE_STOP_AT_STEP", "0")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("no checkpoint to keep"), "{stderr}");
    assert!(!none.exists(), "{stderr}");
}

// 9 -------------------------------------------------------------------------------------------

#[test]
fn small_lies_are_told_no_more() {
    let base = root().join("small-lies");
    let _ = fs::remove_dir_all(&base);
    // "1 step per epoch", not "1 steps".
    let run = command(
        &[
            "train",
            "--data",
            data_dir(),
            "--out",
            s(&base),
            "--batch",
            "256",
            "--epochs",
            "1",
        ]
        .map(String::from),
    )
    .output()
    .unwrap();
    let stderr = text(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("1 step per epoch"), "{stderr}");

    // A bad metrics line is reported at its own line number.
    let bad_metrics = copy_dir(&base, "small-lies-metrics");
    let metrics = bad_metrics.join("metrics.jsonl");
    let mut text_lines = fs::read_to_string(&metrics).unwrap();
    text_lines.push_str("{not json\n");
    fs::write(&metrics, text_lines).unwrap();
    #[rustfmt::skip]
    fails(&["train", "--resume", s(&bad_metrics), "--epochs", "2", "--quiet"], &[s(&metrics), "line 2"], &[]);

    // Metadata: latent 0 is blamed on the file, not on --latent; the format tag is checked.
    let edit = |key: &str, value: &str, name: &str| -> PathBuf {
        let mut c = checkpoint::load(&model_file(&base)).unwrap();
        c.metadata.insert(key.into(), value.into());
        let path = scratch(name).join("model.safetensors");
        checkpoint::save(&path, &c).unwrap();
        path
    };
    let latent0 = edit("latent", "0", "small-lies-latent");
    #[rustfmt::skip]
    let e = fails(&["eval", "--checkpoint", s(&latent0), "--data", data_dir()], &[s(&latent0), "latent", "\"0\""], &[]);
    assert!(!e.contains("--latent"), "{e}");
    let format = edit("format", "gpu-ae/2", "small-lies-format");
    #[rustfmt::skip]
    fails(&["eval", "--checkpoint", s(&format), "--data", data_dir()], &[s(&format), "gpu-ae/2", "gpu-ae/1"], &[]);
}

// Unit-level checks of the run folder that need no GPU.

#[test]
fn a_resume_claim_of_a_folder_without_a_run_changes_nothing() {
    let dir = scratch("claim-empty");
    fs::write(dir.join("metrics.jsonl"), b"{}\n").unwrap();
    let folder = RunFolder::claim(&dir, Claim::Resume).unwrap();
    assert!(folder.load().is_err());
    drop(folder);
    assert_eq!(names(&dir), ["metrics.jsonl"]);
}

// 10 ------------------------------------------------------------------------------------------

#[test]
fn every_command_names_its_adapter_and_says_once_when_it_is_a_cpu() {
    let gpu = gpu_ae::gpu::Gpu::new(&gpu_ae::gpu::AdapterChoice::Best).unwrap();
    let software = gpu.software_note().is_some();
    let dir = scratch("adapter-note");
    let picture = dir.join("s.png");
    let csv = dir.join("z.csv");
    let run_dir = dir.join("run");
    let shipped =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/models/conv-vae-L2.safetensors");
    let commands: Vec<Vec<&str>> = vec![
        vec!["sample", "--rows", "1", "--cols", "1", "--out", s(&picture)],
        vec!["eval", "--checkpoint", s(&shipped), "--data", data_dir()],
        vec![
            "encode",
            "--checkpoint",
            s(&shipped),
            "--data",
            data_dir(),
            "--out",
            s(&csv),
        ],
        vec![
            "train",
            "--data",
            data_dir(),
            "--out",
            s(&run_dir),
            "--epochs",
            "1",
            "--batch",
            "128",
        ],
    ];
    for args in commands {
        let run = command(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
            .output()
            .unwrap();
        let stderr = text(&run.stderr);
        assert!(run.status.success(), "{args:?}: {stderr}");
        let adapter = format!("adapter: {}", gpu.describe());
        assert_eq!(stderr.matches(&adapter).count(), 1, "{args:?}: {stderr}");
        let notes = stderr.matches("note: ").count();
        assert_eq!(notes, usize::from(software), "{args:?}: {stderr}");
        if software {
            assert!(
                stderr.contains("CPU (software) adapter") && stderr.contains("images/s"),
                "{stderr}"
            );
        }
    }
}

// 10 ------------------------------------------------------------------------------------------

/// A cosine schedule with warm-up lives on the GPU: a run stopped inside an epoch and resumed
/// continues it bit-identically to a straight run; the metrics record the rate of each
/// epoch's last step, falling towards 0 at the horizon; a resume that asks for other epochs (which
/// would move the horizon) is refused; and the schedule really changes the training.
#[test]
fn a_cosine_schedule_resumes_exactly() {
    let cosine = ["--lr-schedule", "cosine", "--warmup-steps", "3"];
    let reference = root().join("cosine-reference");
    let _ = fs::remove_dir_all(&reference);
    train_epochs(&reference, 3, &cosine);
    let lines = metrics(&reference);
    let last: Vec<f64> = lines.iter().map(|l| num(l, "lr_last")).collect();
    assert!(last[0] > last[1] && last[1] > last[2], "{last:?}");
    // 4 steps an epoch: the last of the 12 is t = 11, lr·(1 + cos(11π/12))/2.
    let want = 1e-3 * 0.5 * (1.0 + (11.0 * std::f64::consts::PI / 12.0).cos());
    assert!((last[2] - want).abs() < 1e-9, "{last:?}");
    assert!(lines.iter().all(|l| num(l, "lr") == 1e-3), "{lines:?}");
    let constant = root().join("cosine-constant");
    let _ = fs::remove_dir_all(&constant);
    train_epochs(&constant, 3, &[]);
    let (a, b) = (
        checkpoint::load(&model_file(&reference)).unwrap(),
        checkpoint::load(&model_file(&constant)).unwrap(),
    );
    assert_ne!(
        a.tensors[0].data, b.tensors[0].data,
        "the schedule changed nothing"
    );

    let dir = scratch("cosine-stopped");
    let mut args = new_run(&dir, "3");
    args.extend(cosine.map(String::from));
    let out = command(&args)
        .env("GPU_AE_STOP_AT_STEP", "6")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    #[rustfmt::skip]
    fails(&["train", "--resume", s(&dir), "--epochs", "4", "--quiet"], &["--epochs 4", "cosine schedule"], &[]);
    resume(&dir, 3);
    same_parameters(&dir, &reference);
    for (x, y) in metrics(&dir).iter().zip(&lines) {
        assert_eq!(x["lr_last"], y["lr_last"], "{x} and {y}");
    }
}

// Issue 27 ------------------------------------------------------------------------------------

/// The fixture with only its first `count` training images (all its test images), in a fresh
/// folder `name`.
fn few_images(name: &str, count: usize) -> PathBuf {
    let dir = data_copy(name);
    let images = gpu_ae::data::idx::read_images(&dir.join("train-images-idx3-ubyte")).unwrap();
    let labels = gpu_ae::data::idx::read_labels(&dir.join("train-labels-idx1-ubyte")).unwrap();
    fs::write(
        dir.join("train-images-idx3-ubyte"),
        idx_images(&images, count),
    )
    .unwrap();
    fs::write(
        dir.join("train-labels-idx1-ubyte"),
        idx_labels(&labels[..count]),
    )
    .unwrap();
    dir
}

/// Item 9: a batch larger than the training images is cut to them, said once, and the run
/// records the value typed, so a resume with the same flag is accepted.
#[test]
fn a_batch_cut_to_the_images_is_said_and_recorded_as_typed() {
    let data = few_images("batch-cut-data", 30);
    let out = root().join("batch-cut");
    let _ = fs::remove_dir_all(&out);
    #[rustfmt::skip]
    let run = command(&["train", "--data", s(&data), "--out", s(&out), "--batch", "64", "--eval-batch", "64", "--epochs", "1"].map(String::from)).output().unwrap();
    let stderr = text(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("--batch 64"))
        .collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(said[0].contains("only 30 training images"), "{stderr}");
    assert!(stderr.contains("1 step per epoch of 30 images"), "{stderr}");
    let kept = checkpoint::load(&model_file(&out)).unwrap();
    assert_eq!(kept.meta("batch"), Some("64"));
    #[rustfmt::skip]
    ok(&["train", "--resume", s(&out), "--batch", "64", "--epochs", "2", "--eval-batch", "64", "--quiet"]);
    assert_eq!(epoch_of(&out), "2");
}

/// Item 8: `--test-percent` on resume is refused when it is not the run's split, and on IDX
/// data (split by its files) always.
#[test]
fn test_percent_is_refused_where_it_cannot_apply() {
    // A flat folder of 20 tiny PNGs: split by the path hash.
    let pictures = scratch("percent-pictures");
    for i in 0..20u8 {
        let img = image::GrayImage::from_fn(8, 8, |x, y| image::Luma([i * 12 + (x * y) as u8]));
        img.save(pictures.join(format!("p{i:02}.png"))).unwrap();
    }
    let out = root().join("percent-run");
    let _ = fs::remove_dir_all(&out);
    #[rustfmt::skip]
    ok(&["train", "--data", s(&pictures), "--out", s(&out), "--model", "dense-vae", "--test-percent", "50", "--epochs", "1", "--quiet"]);
    #[rustfmt::skip]
    let e = fails(&["train", "--resume", s(&out), "--test-percent", "30", "--epochs", "2", "--quiet"], &["--test-percent 30", s(&out), "< 50"], &[]);
    assert!(e.contains("keeps its split"), "{e}");
    assert_eq!(epoch_of(&out), "1");
    #[rustfmt::skip]
    ok(&["train", "--resume", s(&out), "--test-percent", "50", "--epochs", "2", "--quiet"]);
    assert_eq!(epoch_of(&out), "2");

    // IDX files are split by their names: the flag is refused, for a new run and a resume.
    let idx = root().join("percent-idx");
    let _ = fs::remove_dir_all(&idx);
    #[rustfmt::skip]
    fails(&["train", "--data", data_dir(), "--out", s(&idx), "--test-percent", "50", "--epochs", "1", "--quiet"], &["--test-percent 50", data_dir(), "IDX"], &[&idx]);
    train(&idx, &[]);
    #[rustfmt::skip]
    fails(&["train", "--resume", s(&idx), "--test-percent", "50", "--epochs", "2", "--quiet"], &["--test-percent 50", s(&idx), "IDX"], &[]);
    assert_eq!(epoch_of(&idx), "1");
}

/// Item 1: `--overwrite` writes the new run beside the old one, which survives bad inputs, a
/// missing adapter, a stop before the first step and a kill before the new run's first commit,
/// and is replaced at that commit (a kill in the middle of the replacement is finished by the
/// next claim).
#[test]
fn an_overwrite_keeps_the_old_run_until_the_new_one_commits() {
    let old = root().join("overwrite-old");
    let _ = fs::remove_dir_all(&old);
    train(&old, &[]);
    let before = snapshot(&old);
    let overwrite = |dir: &Path, extra: &[&str]| -> Vec<String> {
        let mut v = new_run(dir, "1");
        v.extend(["--overwrite", "--seed", "7"].map(String::from));
        v.extend(extra.iter().map(|a| a.to_string()));
        v
    };
    let missing = root().join("overwrite-no-such-data");
    #[rustfmt::skip]
    fails(&["train", "--data", s(&missing), "--out", s(&old), "--overwrite", "--epochs", "1", "--quiet"], &[s(&missing)], &[]);
    assert!(snapshot(&old) == before, "a bad --data changed the old run");
    let args = overwrite(&old, &["--adapter", "nosuchgpu"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fails(&args, &["nosuchgpu"], &[]);
    assert!(
        snapshot(&old) == before,
        "--adapter nosuchgpu changed the old run"
    );
    let stopped = command(&overwrite(&old, &[]))
        .env("GPU_AE_STOP_AT_STEP", "0")
        .output()
        .unwrap();
    assert_eq!(
        stopped.status.code(),
        Some(130),
        "{}",
        text(&stopped.stderr)
    );
    assert!(
        snapshot(&old) == before,
        "a stop before the first step changed the old run"
    );

    // Killed before the new run's commit point (the staged model's rename sits between crash
    // points 15 and 16), the old run stays; after it, the new run replaces the old one, also
    // when the kill came in the middle of the replacement (its renames: 23 to 32).
    for k in [8, 15, 16, 24, 27, 31] {
        let dir = copy_dir(&old, "overwrite-killed");
        assert!(killed_at(k, &overwrite(&dir, &[])), "crash point {k}");
        #[rustfmt::skip]
        fails(&["train", "--resume", s(&dir), "--epochs", "1", "--quiet"], &["already trained for 1"], &[]);
        assert_eq!(names(&dir), RUN_FILES, "crash point {k}");
        if k <= 15 {
            assert!(
                snapshot(&dir) == before,
                "crash point {k}: the old run changed"
            );
        } else {
            assert_eq!(meta_of(&dir, "seed"), "7", "crash point {k}");
        }
    }

    // A good run replaces it.
    let good = copy_dir(&old, "overwrite-good");
    let run = command(&overwrite(&good, &[])).output().unwrap();
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(meta_of(&good, "seed"), "7");
    assert_eq!(metrics_epochs(&good), vec![1]);
    assert_eq!(names(&good), RUN_FILES);
}

/// Item 4: a run killed before its first checkpoint resumes from step 0 with the settings it
/// recorded (and refuses others); a folder holding no run, and a model without its optimizer
/// file, are one line saying so.
#[test]
fn a_run_killed_before_its_first_checkpoint_starts_again_on_resume() {
    let reference = root().join("restart-reference");
    let _ = fs::remove_dir_all(&reference);
    train(&reference, &[]);
    // Crash point 5: the first write of the first checkpoint (1 to 4 record the settings).
    let dir = scratch("restart-killed");
    assert!(killed_at(5, &new_run(&dir, "1")));
    assert!(!model_file(&dir).exists() && dir.join("run.json").is_file());
    #[rustfmt::skip]
    let e = fails(&["train", "--resume", s(&dir), "--seed", "3", "--epochs", "1", "--quiet"], &["--seed 3", "resumed run keeps"], &[]);
    assert!(e.contains(s(&dir)), "{e}");
    #[rustfmt::skip]
    let run = command(&["train", "--resume", s(&dir), "--epochs", "1", "--eval-batch", "64"].map(String::from)).output().unwrap();
    let stderr = text(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let said = stderr
        .lines()
        .filter(|l| l.contains("starts again from step 0"))
        .count();
    assert_eq!(said, 1, "{stderr}");
    same_parameters(&dir, &reference);
    assert_eq!(names(&dir), RUN_FILES);

    let empty = scratch("restart-empty");
    #[rustfmt::skip]
    fails(&["train", "--resume", s(&empty), "--epochs", "1", "--quiet"], &[s(&empty), "holds no run"], &[]);
    let lost = copy_dir(&reference, "restart-no-optimizer");
    fs::remove_file(lost.join("optimizer.safetensors")).unwrap();
    #[rustfmt::skip]
    let e = fails(&["train", "--resume", s(&lost), "--epochs", "2", "--quiet"], &["optimizer.safetensors", "missing"], &[]);
    assert!(!e.contains("os error"), "{e}");
}

/// Item 19: a resume without `--data` whose recorded folder changed names that folder, not a
/// `--data` the user never gave.
#[test]
fn a_changed_dataset_is_named_as_the_run_recorded_it() {
    let data = data_copy("changed-data");
    let out = root().join("changed-run");
    let _ = fs::remove_dir_all(&out);
    #[rustfmt::skip]
    ok(&["train", "--data", s(&data), "--out", s(&out), "--batch", "64", "--eval-batch", "64", "--epochs", "1", "--quiet"]);
    let images = data.join("train-images-idx3-ubyte");
    let mut bytes = fs::read(&images).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&images, bytes).unwrap();
    #[rustfmt::skip]
    let e = fails(&["train", "--resume", s(&out), "--epochs", "2", "--quiet"], &[s(&data), "changed", "--allow-data-change"], &[]);
    assert!(!e.contains("--data"), "{e}");
}

/// Item 3: one stop request (Ctrl-C or SIGTERM) ends a training that has not reached its first
/// step at once, here while it decodes a folder of 3000 images: one line, status 130, the lock
/// removed, an `--overwrite`'s old run whole, a new folder removed. Before, nothing polled the
/// request until the first step, so the whole folder was decoded first.
#[test]
fn a_stop_before_the_first_step_ends_the_run_at_once() {
    // One noisy picture, hard-linked many times: slow to decode, cheap to make.
    let data = scratch("slow-data");
    let picture = data.join("0.png");
    let noise: Vec<u8> = (0..384u32 * 384 * 3)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    image::RgbImage::from_raw(384, 384, noise)
        .unwrap()
        .save(&picture)
        .unwrap();
    for i in 1..3000 {
        fs::hard_link(&picture, data.join(format!("{i}.png"))).unwrap();
    }
    let old = root().join("early-stop-old");
    let _ = fs::remove_dir_all(&old);
    train(&old, &[]);
    let before = snapshot(&old);
    let new = root().join("early-stop-new");
    let _ = fs::remove_dir_all(&new);
    for (out, signal, extra) in [(&old, "TERM", "--overwrite"), (&new, "INT", "--quiet")] {
        #[rustfmt::skip]
        let mut child = Command::new(BIN)
            .args(["train", "--data", s(&data), "--size", "8", "--out", s(out), "--epochs", "1", extra])
            .env("GPU_AE_CACHE_DIR", root().join("early-stop-cache"))
            .current_dir(root())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !out.join(folder::LOCK_FILE).exists() {
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                panic!("{} was never locked", out.display());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let sent = Command::new("sh")
            .args(["-c", &format!("kill -{signal} {}", child.id())])
            .status()
            .unwrap();
        assert!(sent.success());
        let sent_at = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if sent_at.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("SIG{signal}: still running 10 s after the request");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        let mut pipe = child.stderr.take().unwrap();
        pipe.read_to_string(&mut stderr).unwrap();
        assert_eq!(status.code(), Some(130), "SIG{signal}: {stderr}");
        let said: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("stopped before the first step"))
            .collect();
        assert_eq!(said.len(), 1, "SIG{signal}: {stderr}");
        assert!(said[0].contains(s(out)), "{stderr}");
        assert!(
            !out.join(folder::LOCK_FILE).exists(),
            "SIG{signal}: lock left"
        );
    }
    assert!(snapshot(&old) == before, "the stop changed the old run");
    assert!(!new.exists(), "the new folder was left");
}

/// Item 19: a write that fails on a full disk (`GPU_AE_DISK_FULL_AT=N`: the N-th file write and
/// all after it) is one line that says what the folder keeps: a failed first checkpoint
/// removes the new folder and says so; a later one leaves the previous checkpoint intact, which
/// the resume continues; one that failed after its commit point is committed. Writes: run.json,
/// then per epoch the pending optimizer file, metrics, model and plot.
#[test]
fn a_full_disk_says_what_the_run_folder_keeps() {
    let dir = root().join("disk-full");
    let full_at = |n: &str, says: &[&str]| {
        let _ = fs::remove_dir_all(&dir);
        let out = command(&new_run(&dir, "2"))
            .env("GPU_AE_DISK_FULL_AT", n)
            .output()
            .unwrap();
        failed(&format!("GPU_AE_DISK_FULL_AT={n} train"), out, says, &[]);
    };
    full_at("2", &["No space left", "no checkpoint", "is removed"]);
    assert!(!dir.exists(), "the new folder stayed");
    full_at(
        "6",
        &["No space left", "previous one", "intact", "--resume"],
    );
    assert_eq!(epoch_of(&dir), "1");
    #[rustfmt::skip]
    ok(&quick(&["train", "--resume", s(&dir), "--epochs", "2"]).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(metrics_epochs(&dir), vec![1, 2]);
    full_at("9", &["loss.png", "No space left", "is committed"]);
    assert_eq!(epoch_of(&dir), "2");
}
