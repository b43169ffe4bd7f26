//! What the integration tests share: the GPU under test; temporary folders; one-line errors
//! naming their file; reading back the pictures the commands write; and, for the end-to-end
//! tests of the `gpu-ae` binary (`tests/cli.rs`, `tests/faults.rs` and others), a scratch folder
//! per test process, a tiny MNIST subset (256 training and 128 test images written as IDX
//! files), and running the binary as a user would: a command that must succeed, or one that
//! must fail cleanly with exactly one `error: ` line naming the file or flag.
// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use flate2::Compression;
use flate2::write::GzEncoder;
use gpu_ae::checkpoint::{self, Checkpoint};
use gpu_ae::data::{self, Images};

/// The adapter under test with WebGPU's default limits; fails (never skips) when there is none.
pub fn gpu() -> gpu_ae::gpu::Gpu {
    use gpu_ae::gpu::{AdapterChoice, DeviceLimits, Gpu};
    Gpu::new_with(&AdapterChoice::Best, DeviceLimits::WebGpu)
        .unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"))
}

/// A fresh folder under the system's temporary folder, named after the test binary, this
/// process and `name`; removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "gpu-ae-{}-{}-{name}",
            env!("CARGO_CRATE_NAME"),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    /// Writes `bytes` at `rel`, creating folders.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// The names in the folder, sorted.
    pub fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The message of an error that must be one line starting with `path`.
pub fn error_for<T: std::fmt::Debug>(result: gpu_ae::Result<T>, path: &Path) -> String {
    let msg = result.expect_err("expected an error").message().to_string();
    assert!(!msg.contains('\n'), "multi-line error: {msg}");
    assert!(
        msg.starts_with(&path.display().to_string()),
        "error does not name {}: {msg}",
        path.display()
    );
    msg
}

pub fn assert_contains(msg: &str, part: &str) {
    assert!(msg.contains(part), "expected {part:?} in: {msg}");
}

/// A picture a command wrote, as grey values in [0, 1]: (`[h, w]` pixels, h, w).
pub fn read_picture(path: &Path) -> (Vec<f32>, usize, usize) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_luma32f();
    let (w, h) = (img.width() as usize, img.height() as usize);
    (img.into_raw(), h, w)
}

/// (width, height) of a picture a command wrote.
pub fn picture_size(path: &Path) -> (usize, usize) {
    let (_, h, w) = read_picture(path);
    (w, h)
}

/// The embedded MNIST folder.
pub fn mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/mnist")
}

pub const BIN: &str = env!("CARGO_BIN_EXE_gpu-ae");
pub const TRAIN_COUNT: usize = 256;
pub const TEST_COUNT: usize = 128;

// ---------------------------------------------------------------------------------------------
// Scratch folders and the dataset fixture.

/// This process's scratch folder under Cargo's target/tmp. Statics are never dropped, so each run
/// leaves its folder behind; folders of earlier runs are removed first: those of processes that
/// no longer run (where /proc tells) and any more than an hour old.
pub fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let procfs = Path::new("/proc/self").exists();
        for e in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix("cli-") else {
                continue;
            };
            let gone = procfs && !Path::new("/proc").join(pid).exists();
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 3600);
            if gone || old {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let dir = base.join(format!("cli-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// A fresh, empty folder `name` under [`root`].
pub fn scratch(name: &str) -> PathBuf {
    let dir = root().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn idx_images(im: &Images, count: usize) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 3];
    for d in [count, im.rows, im.cols] {
        bytes.extend((d as u32).to_be_bytes());
    }
    bytes.extend(&im.pixels[..count * im.rows * im.cols]);
    bytes
}

pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 1];
    bytes.extend((labels.len() as u32).to_be_bytes());
    bytes.extend(labels);
    bytes
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

pub fn mnist(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/mnist")
        .join(name)
}

pub struct Fixture {
    /// Raw training files, gzip test files.
    pub data: PathBuf,
    pub test_labels: Vec<u8>,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = scratch("data");
        let train = data::idx::read_images(&mnist("train-images-idx3-ubyte.gz")).unwrap();
        let train_labels = data::idx::read_labels(&mnist("train-labels-idx1-ubyte.gz")).unwrap();
        let test = data::idx::read_images(&mnist("t10k-images-idx3-ubyte.gz")).unwrap();
        let test_labels = data::idx::read_labels(&mnist("t10k-labels-idx1-ubyte.gz")).unwrap();
        let test_labels = test_labels[..TEST_COUNT].to_vec();
        let write = |name: &str, bytes: Vec<u8>| std::fs::write(dir.join(name), bytes).unwrap();
        write("train-images-idx3-ubyte", idx_images(&train, TRAIN_COUNT));
        write(
            "train-labels-idx1-ubyte",
            idx_labels(&train_labels[..TRAIN_COUNT]),
        );
        write(
            "t10k-images-idx3-ubyte.gz",
            gzip(&idx_images(&test, TEST_COUNT)),
        );
        write("t10k-labels-idx1-ubyte.gz", gzip(&idx_labels(&test_labels)));
        Fixture {
            data: dir,
            test_labels,
        }
    })
}

/// A fresh folder `name` holding the first `per` emoji (by file name) of each of `categories`
/// of `../shared/data/emoji-noto`, or None (saying so) where that folder is not here.
pub fn emoji_slice(name: &str, categories: &[&str], per: usize) -> Option<PathBuf> {
    let emoji = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/emoji-noto");
    if !emoji.is_dir() {
        eprintln!("skipped: {} is not here", emoji.display());
        return None;
    }
    let data = scratch(name);
    for category in categories {
        let dir = data.join(category);
        std::fs::create_dir_all(&dir).unwrap();
        let mut files: Vec<_> = std::fs::read_dir(emoji.join(category))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files.iter().take(per) {
            std::fs::copy(f, dir.join(f.file_name().unwrap())).unwrap();
        }
    }
    Some(data)
}

/// A copy of the fixture dataset in a fresh folder `name`, to be spoiled by the caller.
pub fn data_copy(name: &str) -> PathBuf {
    let dir = scratch(name);
    for e in std::fs::read_dir(&fixture().data).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    dir
}

pub fn data_dir() -> &'static str {
    s(&fixture().data)
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("scratch paths are UTF-8")
}

// ---------------------------------------------------------------------------------------------
// Running the binary.

/// Runs `gpu-ae args…` in the scratch root (so nothing lands in the source tree).
pub fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command that must succeed; returns its stdout.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "gpu-ae {} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        args.join(" "),
        out.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stdout
}

/// Runs a command that must fail cleanly: non-zero exit, stderr exactly one line starting
/// `error: ` (besides the `adapter: ` and `note: ` lines about the adapter) that contains every string of `names`, no panic, none of `absent` exists after.
/// Returns the error line.
pub fn fails(args: &[&str], names: &[&str], absent: &[&Path]) -> String {
    failed(
        &format!("gpu-ae {}", args.join(" ")),
        run(args),
        names,
        absent,
    )
}

/// The checks of [`fails`] on the output `out` of a command `cmd` run by the caller.
pub fn failed(cmd: &str, out: Output, names: &[&str], absent: &[&Path]) -> String {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{cmd} succeeded:\n{stdout}{stderr}");
    assert!(
        !stdout.contains("panicked") && !stderr.contains("panicked"),
        "{cmd} panicked:\n{stdout}{stderr}"
    );
    // The adapter's name and notes about it may come first.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("adapter: ") && !l.starts_with("note: "))
        .collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("error: "),
        "{cmd}: stderr is not one `error: ` line:\n{stderr}"
    );
    for name in names {
        assert!(
            lines[0].contains(name),
            "{cmd}: error does not name {name:?}: {}",
            lines[0]
        );
    }
    for path in absent {
        assert!(!path.exists(), "{cmd} left {} behind", path.display());
    }
    lines[0].to_string()
}

/// `train` on the fixture with the quick settings for one epoch, plus `extra` flags.
pub fn train(out: &Path, extra: &[&str]) {
    train_epochs(out, 1, extra);
}

/// `train` on the fixture with the quick settings for `epochs`, plus `extra` flags.
pub fn train_epochs(out: &Path, epochs: usize, extra: &[&str]) {
    train_env(out, epochs, extra, &[]);
}

/// [`train_epochs`] with `env` set: `GPU_AE_STREAM_BYTES` to stream the fixture in chunks.
pub fn train_env(out: &Path, epochs: usize, extra: &[&str], env: &[(&str, &str)]) {
    let epochs = epochs.to_string();
    let mut args = vec![
        "train",
        "--data",
        data_dir(),
        "--out",
        s(out),
        "--batch",
        "64",
        "--eval-batch",
        "64",
        "--epochs",
        &epochs,
        "--quiet",
    ];
    args.extend(extra);
    let out = Command::new(BIN)
        .args(&args)
        .envs(env.iter().copied())
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));
    assert!(
        out.status.success(),
        "gpu-ae {} failed: {}",
        args.join(" "),
        text(&out.stderr)
    );
}

/// Asserts that two runs hold bit-identical parameters and the same test figures per epoch.
pub fn same_run(run_a: &Path, run_b: &Path) {
    same_parameters(run_a, run_b);
    let figures = |run: &Path| -> Vec<f64> {
        metrics(run)
            .iter()
            .map(|l| num(l, "test_neg_elbo"))
            .collect()
    };
    assert_eq!(figures(run_a), figures(run_b));
}

/// `train --resume run` up to `epochs` in total, on the fixture.
pub fn resume(run: &Path, epochs: usize) {
    let epochs = epochs.to_string();
    ok(&[
        "train",
        "--resume",
        s(run),
        "--epochs",
        &epochs,
        "--data",
        data_dir(),
        "--eval-batch",
        "64",
        "--quiet",
    ]);
}

/// conv-vae with a 2-D latent, one epoch, seed 0.
/// conv-vae L=16 trained to denoise.
/// conv-ae L=16 trained for super-resolution.
pub fn model_file(run: &Path) -> PathBuf {
    run.join("model.safetensors")
}

/// (width, height) of a PNG; also checks it decodes.
/// The numbers in front of "dB" in a line of output.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The lines of a run's `metrics.jsonl`, one per epoch.
pub fn metrics(run: &Path) -> Vec<serde_json::Value> {
    json_lines(&std::fs::read_to_string(run.join("metrics.jsonl")).unwrap())
}

pub fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {key:?} in {v}"))
}

/// Every file of a folder with its bytes, sorted by name.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

pub fn copy_dir(from: &Path, name: &str) -> PathBuf {
    let dir = scratch(name);
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    dir
}

/// Asserts that two runs hold bit-identical parameters; returns both checkpoints.
pub fn same_parameters(run_a: &Path, run_b: &Path) -> (Checkpoint, Checkpoint) {
    let a = checkpoint::load(&model_file(run_a)).unwrap();
    let b = checkpoint::load(&model_file(run_b)).unwrap();
    assert_eq!(a.tensors.len(), 14);
    assert_eq!(a.tensors.len(), b.tensors.len());
    for (x, y) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!((&x.name, &x.shape), (&y.name, &y.shape));
        let bits = |t: &[f32]| t.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert!(
            bits(&x.data) == bits(&y.data),
            "{}: {} and {} differ",
            x.name,
            run_a.display(),
            run_b.display()
        );
    }
    (a, b)
}
