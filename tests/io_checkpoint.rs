//! Checkpoints: safetensors round trip, the on-disk layout PyTorch expects, atomic writes, and
//! one-line errors for bad files.

use std::collections::BTreeMap;
use std::path::Path;

use gpu_ae::checkpoint::{self, Checkpoint, NamedTensor, Stored};

mod support;
use support::{TempDir, assert_contains, error_for};

fn tensor(name: &str, shape: &[usize], seed: f32) -> NamedTensor {
    let n: usize = shape.iter().product();
    NamedTensor {
        name: name.to_string(),
        shape: shape.to_vec(),
        stored: Stored::F32,
        data: (0..n)
            .map(|i| ((i as f32 + seed) * 0.37).sin() * 3.0)
            .collect(),
    }
}

fn sample() -> Checkpoint {
    let mut odd = tensor("encoder.fc.bias", &[5], 2.0);
    odd.data = vec![-0.0, f32::MAX, f32::MIN_POSITIVE / 4.0, -1e-30, 1.0];
    Checkpoint {
        tensors: vec![
            tensor("encoder.conv1.weight", &[8, 1, 3, 3], 0.0),
            tensor("encoder.conv1.bias", &[8], 1.0),
            odd,
            tensor("decoder.fc.weight", &[6, 4], 3.0),
            tensor("scalar", &[], 4.0),
        ],
        metadata: BTreeMap::from([
            ("model".to_string(), "conv-vae".to_string()),
            ("epoch".to_string(), "12".to_string()),
            ("note".to_string(), "ünïcode \"quoted\"".to_string()),
        ]),
    }
}

/// Builds a safetensors file by hand: `entries` are (name, dtype, shape, raw bytes).
fn handmade(entries: &[(&str, &str, &[usize], Vec<u8>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut body: Vec<u8> = Vec::new();
    for (name, dtype, shape, bytes) in entries {
        let start = body.len();
        body.extend(bytes);
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, body.len()]}),
        );
    }
    let header = serde_json::Value::Object(header).to_string();
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend(header.as_bytes());
    file.extend(body);
    file
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn save_load_round_trip() {
    let dir = TempDir::new("rt");
    let path = dir.0.join("model.safetensors");
    let ckpt = sample();
    checkpoint::save(&path, &ckpt).unwrap();
    let back = checkpoint::load(&path).unwrap();
    assert_eq!(back.tensors.len(), ckpt.tensors.len());
    for t in &ckpt.tensors {
        let b = back
            .get(&t.name)
            .unwrap_or_else(|| panic!("{} missing", t.name));
        assert_eq!(b.shape, t.shape, "{}", t.name);
        let bits = |d: &[f32]| d.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&b.data), bits(&t.data), "{}", t.name);
    }
    assert_eq!(back.metadata, ckpt.metadata);
    assert_eq!(back.meta("epoch"), Some("12"));
    assert_eq!(back.meta("missing"), None);
    assert!(back.get("missing").is_none());
    // Tensors come back in file order (sorted by name).
    let names: Vec<&str> = back.tensors.iter().map(|t| t.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);

    // No metadata at all also round-trips.
    let bare = Checkpoint {
        tensors: vec![tensor("w", &[2, 2], 0.0)],
        metadata: BTreeMap::new(),
    };
    checkpoint::save(&path, &bare).unwrap();
    assert_eq!(checkpoint::load(&path).unwrap(), bare);
}

#[test]
fn bytes_follow_the_safetensors_layout() {
    let dir = TempDir::new("layout");
    let path = dir.0.join("model.safetensors");
    let ckpt = sample();
    checkpoint::save(&path, &ckpt).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0, "header length is padded to 8 bytes");
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let header = header.as_object().unwrap();
    let body = &bytes[8 + n..];

    let meta = header["__metadata__"].as_object().unwrap();
    assert_eq!(meta.len(), ckpt.metadata.len());
    for (k, v) in &ckpt.metadata {
        assert_eq!(meta[k].as_str(), Some(v.as_str()));
    }
    assert_eq!(header.len(), ckpt.tensors.len() + 1);
    let mut spans = Vec::new();
    for t in &ckpt.tensors {
        let entry = &header[&t.name];
        assert_eq!(entry["dtype"], "F32");
        let shape: Vec<usize> = serde_json::from_value(entry["shape"].clone()).unwrap();
        assert_eq!(shape, t.shape);
        let [start, end]: [usize; 2] =
            serde_json::from_value(entry["data_offsets"].clone()).unwrap();
        assert_eq!(end - start, 4 * t.data.len(), "{}", t.name);
        assert_eq!(
            body[start..end],
            f32_bytes(&t.data),
            "{} is little-endian f32",
            t.name
        );
        spans.push((start, end));
    }
    // The data regions tile the body exactly, with nothing after them.
    spans.sort();
    let mut at = 0;
    for (start, end) in spans {
        assert_eq!(start, at);
        at = end;
    }
    assert_eq!(at, body.len());
}

#[test]
fn foreign_file_written_by_hand_loads() {
    let dir = TempDir::new("foreign");
    let path = dir.0.join("torch.safetensors");
    let bytes = handmade(&[
        ("b", "F32", &[2], f32_bytes(&[1.5, -2.0])),
        ("a", "F32", &[1, 2], f32_bytes(&[3.0, 4.0])),
    ]);
    std::fs::write(&path, bytes).unwrap();
    let ckpt = checkpoint::load(&path).unwrap();
    assert_eq!(ckpt.get("a").unwrap().data, [3.0, 4.0]);
    assert_eq!(ckpt.get("a").unwrap().shape, [1, 2]);
    assert_eq!(ckpt.get("b").unwrap().data, [1.5, -2.0]);
    assert!(ckpt.metadata.is_empty());
}

#[test]
fn save_is_atomic() {
    let dir = TempDir::new("atomic");
    let path = dir.0.join("model.safetensors");
    checkpoint::save(&path, &sample()).unwrap();
    assert_eq!(
        dir.entries(),
        ["model.safetensors"],
        "no temp file is left behind"
    );

    // Overwriting replaces the file; a refused save leaves the previous one intact.
    let mut other = sample();
    other.metadata.insert("epoch".into(), "13".into());
    checkpoint::save(&path, &other).unwrap();
    assert_eq!(checkpoint::load(&path).unwrap().meta("epoch"), Some("13"));
    let mut diverged = sample();
    diverged.tensors[1].data[3] = f32::NAN;
    let msg = error_for(checkpoint::save(&path, &diverged), &path);
    assert_contains(&msg, "\"encoder.conv1.bias\"");
    assert_contains(&msg, "NaN at index 3");
    assert_eq!(checkpoint::load(&path).unwrap().meta("epoch"), Some("13"));
    assert_eq!(dir.entries(), ["model.safetensors"]);

    // Saving into a missing directory fails, naming the file, and creates nothing.
    let missing = dir.0.join("no-such-dir").join("model.safetensors");
    assert_contains(
        &error_for(checkpoint::save(&missing, &sample()), &missing),
        "does not exist",
    );
    assert!(!dir.0.join("no-such-dir").exists());
    assert_eq!(dir.entries(), ["model.safetensors"]);

    // Saving onto a directory fails and removes its temp file.
    let sub = dir.0.join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("keep"), b"x").unwrap();
    error_for(checkpoint::save(&sub, &sample()), &sub);
    assert_eq!(dir.entries(), ["model.safetensors", "sub"]);
}

/// `mkfifo PATH` (the test is skipped where there is no mkfifo).
fn mkfifo(path: &Path) -> bool {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        eprintln!("skipped: mkfifo {} failed", path.display());
    }
    made
}

/// An atomic write replaces only a regular file (or nothing): a symbolic link is followed and
/// its target replaced (the link stays a link), a FIFO or a character device is written into.
#[cfg(unix)]
#[test]
fn atomic_writes_follow_links_and_write_into_fifos() {
    use std::os::unix::fs::FileTypeExt;
    // What a load of `sample()` gives: its tensors in name order.
    let loaded = {
        let mut c = sample();
        c.tensors.sort_by(|a, b| a.name.cmp(&b.name));
        c
    };
    let dir = TempDir::new("special");
    let real = dir.0.join("real.safetensors");
    std::fs::write(&real, b"old").unwrap();
    let link = dir.0.join("link.safetensors");
    std::os::unix::fs::symlink("real.safetensors", &link).unwrap();
    checkpoint::save(&link, &sample()).unwrap();
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(checkpoint::load(&real).unwrap(), loaded);
    // A link to nothing yet creates its target.
    let dangling = dir.0.join("dangling.safetensors");
    std::os::unix::fs::symlink("made.safetensors", &dangling).unwrap();
    checkpoint::save(&dangling, &sample()).unwrap();
    assert!(
        dangling
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        checkpoint::load(&dir.0.join("made.safetensors")).unwrap(),
        loaded
    );

    // /dev/null stays the device it is.
    gpu_ae::files::write_atomic(Path::new("/dev/null"), b"nothing").unwrap();
    assert!(
        Path::new("/dev/null")
            .metadata()
            .unwrap()
            .file_type()
            .is_char_device()
    );

    let fifo = dir.0.join("pipe.safetensors");
    if !mkfifo(&fifo) {
        return;
    }
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    checkpoint::save(&fifo, &sample()).unwrap();
    let got = reader.join().unwrap();
    assert_eq!(checkpoint::from_bytes(&got, &"pipe").unwrap(), loaded);
    assert!(fifo.symlink_metadata().unwrap().file_type().is_fifo());
    // Reading one is refused before it is opened (which would block).
    assert_contains(
        &error_for(checkpoint::load(&fifo), &fifo),
        "not a regular file",
    );
    assert_eq!(
        dir.entries(),
        [
            "dangling.safetensors",
            "link.safetensors",
            "made.safetensors",
            "pipe.safetensors",
            "real.safetensors"
        ]
    );
}

#[test]
fn bad_tensors_are_refused_on_save() {
    let dir = TempDir::new("bad-save");
    let path = dir.0.join("x.safetensors");
    let mut ckpt = sample();
    ckpt.tensors[0].shape = vec![8, 1, 3, 4];
    assert_contains(
        &error_for(checkpoint::save(&path, &ckpt), &path),
        "does not match its 72 values",
    );
    let mut ckpt = sample();
    ckpt.tensors.push(tensor("encoder.conv1.bias", &[1], 0.0));
    assert_contains(
        &error_for(checkpoint::save(&path, &ckpt), &path),
        "two tensors named",
    );
    let mut ckpt = sample();
    ckpt.tensors[2].data[0] = f32::INFINITY;
    assert_contains(
        &error_for(checkpoint::save(&path, &ckpt), &path),
        "inf at index 0",
    );
    assert!(dir.entries().is_empty());
}

#[test]
fn non_finite_values_are_rejected_on_load() {
    let dir = TempDir::new("nan");
    let path = dir.0.join("nan.safetensors");
    let bytes = handmade(&[
        ("fine", "F32", &[2], f32_bytes(&[1.0, 2.0])),
        (
            "decoder.out.weight",
            "F32",
            &[2, 2],
            f32_bytes(&[1.0, 2.0, f32::NAN, 4.0]),
        ),
    ]);
    std::fs::write(&path, bytes).unwrap();
    let msg = error_for(checkpoint::load(&path), &path);
    assert_contains(&msg, "tensor \"decoder.out.weight\" holds NaN at index 2");

    let bytes = handmade(&[("w", "F32", &[1], f32_bytes(&[f32::NEG_INFINITY]))]);
    std::fs::write(&path, bytes).unwrap();
    assert_contains(
        &error_for(checkpoint::load(&path), &path),
        "tensor \"w\" holds -inf",
    );
}

#[test]
fn other_dtypes_are_rejected() {
    let dir = TempDir::new("dtype");
    let path = dir.0.join("f64.safetensors");
    let bytes = handmade(&[(
        "w",
        "F64",
        &[2],
        [1.0f64, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect(),
    )]);
    std::fs::write(&path, bytes).unwrap();
    assert_contains(
        &error_for(checkpoint::load(&path), &path),
        "tensor \"w\" has dtype F64, only F32 (and I64 counters) are supported",
    );
}

/// Integers are counters (`num_batches_tracked`), never weights: an I64 weight is refused,
/// naming it (it used to load as whole numbers, and evaluate to NaN).
#[test]
fn integer_weights_are_refused() {
    let dir = TempDir::new("int-weights");
    let path = dir.0.join("i64.safetensors");
    let ints = [3i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&path, handmade(&[("enc.0.weight", "I64", &[2], ints)])).unwrap();
    for result in [
        checkpoint::load(&path),
        checkpoint::load_state_dict(&path).map(|(c, _)| c),
    ] {
        let msg = error_for(result, &path);
        assert_contains(&msg, "tensor \"enc.0.weight\" holds integers (I64)");
        assert_contains(&msg, "num_batches_tracked");
    }
    let ints = [3i32, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&path, handmade(&[("fc.bias", "I32", &[2], ints)])).unwrap();
    let msg = error_for(checkpoint::load_state_dict(&path), &path);
    assert_contains(&msg, "tensor \"fc.bias\" holds integers (I32)");
}

/// A state_dict in F16, BF16 or F64 loads as f32 for `import` (saying what was converted); a
/// checkpoint load still takes F32 only.
#[test]
fn state_dicts_of_other_floats_convert_to_f32() {
    let dir = TempDir::new("floats");
    let path = dir.0.join("half.safetensors");
    let values = [1.5f32, -0.25, 65504.0];
    let f16: Vec<u8> = values
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let bf16: Vec<u8> = values
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
        .collect();
    let f64: Vec<u8> = values
        .iter()
        .flat_map(|&v| f64::from(v).to_le_bytes())
        .collect();
    let bytes = handmade(&[
        ("a", "F16", &[3], f16.clone()),
        ("b", "BF16", &[3], bf16),
        ("c", "F64", &[3], f64),
        ("d", "F16", &[3], f16),
    ]);
    std::fs::write(&path, bytes).unwrap();
    let (ckpt, converted) = checkpoint::load_state_dict(&path).unwrap();
    assert_eq!(
        converted,
        ["1 BF16 tensor", "2 F16 tensors", "1 F64 tensor"]
    );
    for t in &ckpt.tensors {
        assert_eq!(t.stored, Stored::F32);
        // 65504 is f16's largest; bf16 rounds it to 65536.
        let want = if t.name == "b" { 65536.0 } else { 65504.0 };
        assert_eq!(t.data, [1.5, -0.25, want], "{}", t.name);
    }
    assert_contains(
        &error_for(checkpoint::load(&path), &path),
        "has dtype F16, only F32",
    );
}

/// A file whose header length or declared tensor data does not fit it is refused from its
/// first bytes: a sparse 4 GiB file is never read whole.
#[test]
fn a_huge_file_is_refused_from_its_header() {
    let dir = TempDir::new("huge");
    let path = dir.0.join("big.safetensors");
    let grow = |bytes: Vec<u8>| {
        std::fs::write(&path, bytes).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(4 << 30)
            .unwrap();
    };
    // A good header and 12 bytes of data, then 4 GiB of zeros.
    grow(handmade(&[("w", "F32", &[3], f32_bytes(&[1.0, 2.0, 3.0]))]));
    let msg = error_for(checkpoint::load(&path), &path);
    assert_contains(&msg, "declares 12 bytes of tensor data");
    // Zeros: an empty header.
    grow(Vec::new());
    assert_contains(
        &error_for(checkpoint::load(&path), &path),
        "invalid JSON in header",
    );
    let mut absurd = (1u64 << 31).to_le_bytes().to_vec();
    absurd.extend(b"{}");
    grow(absurd);
    assert_contains(
        &error_for(checkpoint::load(&path), &path),
        "header length 2147483648 is more than 100 MiB",
    );
    let mut longer = 200u64.to_le_bytes().to_vec();
    longer.extend(b"{}");
    std::fs::write(&path, longer).unwrap();
    assert_contains(
        &error_for(checkpoint::load(&path), &path),
        "header length 200 is more than the file's 10 bytes",
    );
}

/// `torch.save` writes a zip archive (or, in its legacy format, a bare pickle): named as a
/// PyTorch pickle, with the line that converts it.
#[test]
fn pytorch_pickles_are_named_with_the_line_that_converts_them() {
    let dir = TempDir::new("pickle");
    for (name, bytes) in [
        (
            "model.pt",
            b"PK\x03\x04\x00\x00\x08\x08\x00\x00archive/data.pkl".to_vec(),
        ),
        (
            "legacy.pth",
            b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02".to_vec(),
        ),
        (
            "misnamed.safetensors",
            b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}".to_vec(),
        ),
    ] {
        let path = dir.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        let msg = error_for(checkpoint::load(&path), &path);
        assert_contains(&msg, "a PyTorch pickle file (torch.save)");
        assert_contains(
            &msg,
            &format!("torch.load('{}', map_location='cpu')", path.display()),
        );
        let stem = name.split('.').next().unwrap();
        let out = if name.ends_with(".safetensors") {
            format!("{stem}.converted.safetensors")
        } else {
            format!("{stem}.safetensors")
        };
        assert_contains(
            &msg,
            &format!("for k, v in sd.items()}}, '{}')", dir.0.join(out).display()),
        );
    }
}

/// Counters such as batch norm's `num_batches_tracked` are I64 in PyTorch's state_dict, and
/// round-trip as such.
#[test]
fn i64_counters_round_trip() {
    let dir = TempDir::new("i64");
    let path = dir.0.join("bn.safetensors");
    let ckpt = Checkpoint {
        tensors: vec![
            NamedTensor {
                name: "enc.1.num_batches_tracked".into(),
                shape: vec![],
                data: vec![469.0],
                stored: Stored::I64,
            },
            tensor("enc.1.weight", &[3], 1.0),
        ],
        metadata: Default::default(),
    };
    checkpoint::save(&path, &ckpt).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    assert_eq!(header["enc.1.num_batches_tracked"]["dtype"], "I64");
    assert_eq!(checkpoint::load(&path).unwrap(), ckpt);
}

#[test]
fn corrupt_and_missing_files() {
    let dir = TempDir::new("corrupt");
    let missing = dir.0.join("missing.safetensors");
    assert_contains(
        &error_for(checkpoint::load(&missing), &missing),
        "No such file",
    );

    // A directory: named as one, pointing at the checkpoint inside it when there is one.
    let run = dir.0.join("run");
    std::fs::create_dir(&run).unwrap();
    let msg = error_for(checkpoint::load(&run), &run);
    assert_contains(
        &msg,
        "is a directory, expected a safetensors checkpoint file",
    );
    assert!(!msg.contains("model.safetensors"), "{msg}");
    let inside = run.join("model.safetensors");
    checkpoint::save(&inside, &sample()).unwrap();
    assert_contains(
        &error_for(checkpoint::load(&run), &run),
        &format!(
            "is a directory, expected a safetensors checkpoint file such as {}",
            inside.display()
        ),
    );

    let path = dir.0.join("bad.safetensors");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "empty file"),
        (
            "text",
            b"this is a text file, not safetensors".to_vec(),
            "not a safetensors checkpoint or corrupt",
        ),
        (
            "short",
            vec![1, 2, 3],
            "not a safetensors checkpoint or corrupt",
        ),
        (
            "bad json",
            {
                let mut b = 4u64.to_le_bytes().to_vec();
                b.extend(b"{xx}");
                b
            },
            "not a safetensors checkpoint or corrupt",
        ),
    ];
    for (what, bytes, expected) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let msg = error_for(checkpoint::load(&path), &path);
        assert!(msg.contains(expected), "{what}: {msg}");
    }
    // A good file cut short, and one with extra bytes.
    let good = dir.0.join("good.safetensors");
    checkpoint::save(&good, &sample()).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    assert_contains(&error_for(checkpoint::load(&path), &path), "corrupt");
    let mut longer = bytes.clone();
    longer.extend([0, 0, 0, 0]);
    std::fs::write(&path, &longer).unwrap();
    assert_contains(&error_for(checkpoint::load(&path), &path), "corrupt");
}
