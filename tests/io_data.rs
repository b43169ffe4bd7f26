//! IDX dataset reading: raw and gzip round trips, the shipped MNIST files, and one-line errors
//! naming the file for every kind of bad input.

use gpu_ae::data::{self, DataOptions, Images};

mod support;
use support::{TempDir, assert_contains, error_for, gzip, mnist_dir};

fn idx3(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 3];
    for d in [count, rows, cols] {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend(pixels);
    bytes
}

fn idx1(labels: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 1];
    bytes.extend((labels.len() as u32).to_be_bytes());
    bytes.extend(labels);
    bytes
}

/// Pseudo-random bytes (deterministic).
fn noise(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| {
            (i.wrapping_mul(2_654_435_761)
                .wrapping_add(seed.wrapping_mul(40503))
                >> 13) as u8
        })
        .collect()
}

#[test]
fn images_round_trip_raw_and_gzip() {
    let dir = TempDir::new("images-rt");
    let (count, rows, cols) = (7, 5, 3);
    let pixels = noise(count * rows * cols, 1);
    let file = idx3(count as u32, rows as u32, cols as u32, &pixels);
    // Compression is detected from the content: a gzip file without .gz, a raw one with .gz.
    for (name, bytes) in [
        ("raw", file.clone()),
        ("gz-no-ext", gzip(&file)),
        ("raw.gz", file.clone()),
    ] {
        let images = data::idx::read_images(&dir.write(name, &bytes)).unwrap();
        assert_eq!(
            (images.count, images.rows, images.cols),
            (count, rows, cols),
            "{name}"
        );
        assert_eq!(images.pixels, pixels, "{name}");
        assert_eq!(images.pixels_per_image(), rows * cols);
        assert_eq!(images.image(4), &pixels[4 * 15..5 * 15]);
    }
}

#[test]
fn labels_round_trip_raw_and_gzip() {
    let dir = TempDir::new("labels-rt");
    // Values above 9 are allowed (other datasets).
    let labels = noise(300, 2);
    assert!(labels.iter().any(|&l| l > 9));
    for (name, bytes) in [("raw", idx1(&labels)), ("gz", gzip(&idx1(&labels)))] {
        assert_eq!(
            data::idx::read_labels(&dir.write(name, &bytes)).unwrap(),
            labels,
            "{name}"
        );
    }
}

/// Writes a small dataset (train: 6 images, test: 4, all `rows`×`cols`) with mixed compression.
fn write_dataset(dir: &TempDir, rows: u32, cols: u32) -> (Vec<u8>, Vec<u8>) {
    let n = (rows * cols) as usize;
    let (train_px, test_px) = (noise(6 * n, 3), noise(4 * n, 4));
    dir.write(
        "train-images-idx3-ubyte.gz",
        &gzip(&idx3(6, rows, cols, &train_px)),
    );
    dir.write("train-labels-idx1-ubyte", &idx1(&[0, 1, 2, 3, 4, 5]));
    dir.write("t10k-images-idx3-ubyte", &idx3(4, rows, cols, &test_px));
    dir.write("t10k-labels-idx1-ubyte.gz", &gzip(&idx1(&[9, 8, 7, 6])));
    (train_px, test_px)
}

#[test]
fn load_directory_with_mixed_compression() {
    let dir = TempDir::new("load");
    let (train_px, test_px) = write_dataset(&dir, 4, 6);
    let ds = data::load(&dir.0, &DataOptions::default()).unwrap();
    assert_eq!(ds.dir, dir.0);
    assert_eq!(
        ds.train.images,
        Images {
            count: 6,
            channels: 1,
            rows: 4,
            cols: 6,
            pixels: train_px
        }
    );
    assert_eq!(ds.train.labels, [0, 1, 2, 3, 4, 5]);
    assert_eq!(ds.test.images.pixels, test_px);
    assert_eq!(ds.test.labels, [9, 8, 7, 6]);
    assert_eq!(
        data::load_test(&dir.0, &DataOptions::default())
            .unwrap()
            .test,
        ds.test
    );
}

#[test]
fn uncompressed_file_is_preferred_when_both_exist() {
    let dir = TempDir::new("prefer");
    dir.write("t10k-images-idx3-ubyte", &idx3(1, 1, 2, &[1, 2]));
    dir.write("t10k-images-idx3-ubyte.gz", &gzip(&idx3(1, 1, 2, &[3, 4])));
    dir.write("t10k-labels-idx1-ubyte.gz", &gzip(&idx1(&[5])));
    assert_eq!(
        data::load_test(&dir.0, &DataOptions::default())
            .unwrap()
            .test
            .images
            .pixels,
        [1, 2]
    );
}

#[test]
fn shipped_mnist_test_split_loads() {
    let test = data::load_test(&mnist_dir(), &DataOptions::default())
        .unwrap()
        .test;
    assert_eq!(
        (test.images.count, test.images.rows, test.images.cols),
        (10000, 28, 28)
    );
    assert_eq!(test.images.pixels.len(), 10000 * 784);
    assert_eq!(test.labels.len(), 10000);
    // The well-known first test digits are 7, 2, 1, 0, 4, and every class appears ~1000 times.
    assert_eq!(test.labels[..5], [7, 2, 1, 0, 4]);
    let mut per_class = [0usize; 10];
    for &l in &test.labels {
        per_class[l as usize] += 1;
    }
    assert!(
        per_class.iter().all(|&n| (850..1200).contains(&n)),
        "{per_class:?}"
    );
    // Digits are white ink on black: corners dark, some pixels fully lit.
    let first = test.images.image(0);
    assert_eq!(first[0], 0);
    assert!(first.iter().filter(|&&p| p > 200).count() > 40);
}

#[test]
fn a_random_subset_is_seeded_sorted_and_keeps_labels_with_their_images() {
    let test = data::load_test(&mnist_dir(), &DataOptions::default())
        .unwrap()
        .test;
    let whole = test.clone();
    let a = test.clone().random_subset(1000, 0);
    assert_eq!((a.images.count, a.labels.len()), (1000, 1000));
    assert_eq!(a.images.pixels.len(), 1000 * 784);
    assert_eq!(
        a,
        test.clone().random_subset(1000, 0),
        "the same seed, the same images"
    );
    let b = test.clone().random_subset(1000, 1);
    assert_ne!(a, b, "another seed draws other images");
    // Every chosen image is one of the set's, in the set's order, with its own label, and no
    // image twice; the draw is not the first 1000.
    let mut from = 0;
    let mut positions = Vec::new();
    for i in 0..a.images.count {
        let at = (from..whole.images.count)
            .find(|&j| whole.images.image(j) == a.images.image(i) && whole.labels[j] == a.labels[i])
            .expect("a subset image is one of the set's, after the previous one");
        positions.push(at);
        from = at + 1;
    }
    assert!(*positions.last().unwrap() > 5000, "{positions:?}");
    // Drawn uniformly: about a tenth of each half of the set.
    let low = positions.iter().filter(|&&p| p < 5000).count();
    assert!(
        (420..580).contains(&low),
        "{low} of 1000 from the first half"
    );
    assert_eq!(
        test.clone().random_subset(20000, 0),
        whole,
        "asking for more gives all"
    );
}

#[test]
fn shipped_mnist_loads_in_full() {
    let ds = data::load(&mnist_dir(), &DataOptions::default()).unwrap();
    assert_eq!(ds.train.images.count, 60000);
    assert_eq!(ds.train.labels.len(), 60000);
    assert_eq!(ds.train.labels[..5], [5, 0, 4, 1, 9]);
    assert_eq!(ds.test.images.count, 10000);
    assert_eq!((ds.train.images.rows, ds.train.images.cols), (28, 28));
}

#[test]
fn missing_files_are_named() {
    let dir = TempDir::new("missing");
    let path = dir.0.join("nope-idx3-ubyte.gz");
    assert_contains(
        &error_for(data::idx::read_images(&path), &path),
        "No such file",
    );
    assert_contains(
        &error_for(data::idx::read_labels(&path), &path),
        "No such file",
    );

    // A directory lacking one file: the error lists both names looked for.
    write_dataset(&dir, 2, 2);
    std::fs::remove_file(dir.0.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let msg = error_for(data::load(&dir.0, &DataOptions::default()), &dir.0);
    assert_contains(&msg, "t10k-labels-idx1-ubyte and t10k-labels-idx1-ubyte.gz");
    error_for(
        data::load_test(&dir.0, &DataOptions::default()).map(|t| t.test),
        &dir.0,
    );
    let none = dir.0.join("no-such-dir");
    assert_contains(
        &error_for(data::load(&none, &DataOptions::default()), &none),
        "no such dataset directory",
    );
}

/// A directory standing where a file belongs is named as one, not reported as missing.
#[test]
fn a_directory_where_a_file_belongs_is_named() {
    let dir = TempDir::new("dir-as-file");
    write_dataset(&dir, 2, 2);
    let images = dir.0.join("train-images-idx3-ubyte");
    std::fs::remove_file(images.with_extension("gz")).unwrap();
    std::fs::create_dir(&images).unwrap();
    assert_contains(
        &error_for(data::load(&dir.0, &DataOptions::default()), &images),
        "is a directory, expected an IDX file",
    );
    assert_contains(
        &error_for(data::idx::read_images(&images), &images),
        "is a directory, expected an IDX file",
    );
    // Also when it has the .gz name.
    std::fs::remove_dir(&images).unwrap();
    let gz = images.with_extension("gz");
    std::fs::create_dir(&gz).unwrap();
    assert_contains(
        &error_for(data::load(&dir.0, &DataOptions::default()), &gz),
        "is a directory, expected an IDX file",
    );
    // A file where the dataset directory belongs.
    let file = dir.write("not-a-dir", b"x");
    assert_contains(
        &error_for(data::load(&file, &DataOptions::default()), &file),
        "not a directory, expected a dataset directory",
    );
}

/// A FIFO (or a link to one) where an IDX file belongs is refused with one line naming it,
/// before it is opened: opening a FIFO blocks until something writes to it.
#[test]
#[cfg(unix)]
fn a_fifo_where_a_file_belongs_is_refused_unopened() {
    let dir = TempDir::new("fifo-as-file");
    write_dataset(&dir, 2, 2);
    let images = dir.0.join("train-images-idx3-ubyte");
    std::fs::remove_file(images.with_extension("gz")).unwrap();
    let made = std::process::Command::new("mkfifo").arg(&images).status();
    assert!(made.unwrap().success(), "mkfifo {}", images.display());
    let labels = dir.0.join("t10k-labels-idx1-ubyte");
    std::os::unix::fs::symlink(&images, &labels).unwrap();
    for (result, path) in [
        (
            data::load(&dir.0, &DataOptions::default()).map(drop),
            &images,
        ),
        (data::idx::read_images(&images).map(drop), &images),
        (data::idx::read_labels(&labels).map(drop), &labels),
    ] {
        assert_contains(
            &error_for(result, path),
            "not a regular file (a FIFO or a device), expected an IDX file",
        );
    }
}

/// Header sizes whose byte counts overflow 32 or 64 bits are reported exactly.
#[test]
fn sizes_of_absurd_headers_are_exact() {
    let dir = TempDir::new("absurd");
    let max = u32::MAX;
    // 4294967295 × 28 × 28 = 3367254359280; (2³² − 1)³ = 79228162458924105385300197375.
    for (rows, cols, bytes) in [
        (28, 28, "3367254359280"),
        (max, max, "79228162458924105385300197375"),
    ] {
        let file = idx3(max, rows, cols, &noise(12, 9));
        let what = format!("header says 4294967295 images of {rows}×{cols}");
        let raw = dir.write("raw", &file);
        let msg = error_for(data::idx::read_images(&raw), &raw);
        assert_contains(&msg, &what);
        assert_contains(&msg, &format!("holds 12 of the {bytes} data bytes"));
        let gz = dir.write("gz", &gzip(&file));
        let msg = error_for(data::idx::read_images(&gz), &gz);
        assert_contains(&msg, &what);
        assert_contains(&msg, &format!("holds 12 of the {bytes} data bytes"));
    }
}

#[test]
fn empty_file() {
    let dir = TempDir::new("empty");
    let path = dir.write("empty", b"");
    assert_contains(
        &error_for(data::idx::read_images(&path), &path),
        "empty file",
    );
    assert_contains(
        &error_for(data::idx::read_labels(&path), &path),
        "empty file",
    );
}

#[test]
fn wrong_magic() {
    let dir = TempDir::new("magic");
    let labels = dir.write("labels", &idx1(&[1, 2, 3]));
    let msg = error_for(data::idx::read_images(&labels), &labels);
    assert_contains(
        &msg,
        "not an IDX image file: magic number 0x00000801, expected 0x00000803",
    );
    assert_contains(&msg, "this is an IDX label file");
    let images = dir.write("images.gz", &gzip(&idx3(1, 1, 1, &[0])));
    assert_contains(
        &error_for(data::idx::read_labels(&images), &images),
        "not an IDX label file",
    );
    let text = dir.write("readme", b"hello, this is not an IDX file at all");
    assert_contains(
        &error_for(data::idx::read_images(&text), &text),
        "magic number 0x68656c6c",
    );
}

#[test]
fn truncated_header() {
    let dir = TempDir::new("short-header");
    let path = dir.write("short", &idx3(1, 2, 2, &[])[..10]);
    assert_contains(
        &error_for(data::idx::read_images(&path), &path),
        "truncated header: the file holds 10 bytes, an IDX image header needs 16",
    );
}

#[test]
fn truncated_pixels() {
    let dir = TempDir::new("truncated");
    let file = idx3(10, 28, 28, &noise(1234, 5));
    let raw = dir.write("raw", &file);
    let msg = error_for(data::idx::read_images(&raw), &raw);
    assert_contains(
        &msg,
        "truncated: header says 10 images of 28×28 but the file holds 1234 of the 7840 data bytes",
    );
    let gz = dir.write("gz", &gzip(&file));
    assert_contains(
        &error_for(data::idx::read_images(&gz), &gz),
        "truncated: header says 10 images of 28×28",
    );
    let labels = dir.write("labels", &idx1(&[1, 2, 3, 4])[..10]);
    assert_contains(
        &error_for(data::idx::read_labels(&labels), &labels),
        "truncated: header says 4 labels",
    );
}

#[test]
fn trailing_data() {
    let dir = TempDir::new("trailing");
    let file = idx3(2, 2, 2, &noise(9, 6));
    let raw = dir.write("raw", &file);
    assert_contains(
        &error_for(data::idx::read_images(&raw), &raw),
        "holds 1 more bytes after them",
    );
    let gz = dir.write("gz", &gzip(&file));
    assert_contains(
        &error_for(data::idx::read_images(&gz), &gz),
        "holds more data after them",
    );
}

#[test]
fn huge_header_in_tiny_file_is_not_allocated() {
    let dir = TempDir::new("huge");
    // 2^31 images of 28×28 would be 1.7 TB: must fail on the size check, not on allocation.
    let file = idx3(1 << 31, 28, 28, &noise(100, 7));
    for (name, bytes) in [("raw", file.clone()), ("gz", gzip(&file))] {
        let path = dir.write(name, &bytes);
        let msg = error_for(data::idx::read_images(&path), &path);
        assert_contains(&msg, "truncated: header says 2147483648 images of 28×28");
    }
    let labels = dir.write("labels", &[0, 0, 8, 1, 0xff, 0xff, 0xff, 0xff, 1, 2]);
    assert_contains(
        &error_for(data::idx::read_labels(&labels), &labels),
        "header says 4294967295 labels",
    );
}

#[test]
fn zero_sized_header() {
    let dir = TempDir::new("zero");
    let path = dir.write("zero", &idx3(3, 0, 28, &[]));
    assert_contains(
        &error_for(data::idx::read_images(&path), &path),
        "header says 3 images of 0×28",
    );
}

#[test]
fn corrupt_gzip() {
    let dir = TempDir::new("corrupt");
    let good = gzip(&idx3(20, 8, 8, &noise(20 * 64, 8)));
    // Reserved deflate block type 11 in the first block header (right after the 10-byte gzip
    // header): inflate must refuse it.
    let mut bad_block = good.clone();
    bad_block[10] |= 0b110;
    let path = dir.write("bad-block", &bad_block);
    assert_contains(
        &error_for(data::idx::read_images(&path), &path),
        "corrupt gzip data",
    );
    // Intact deflate data, wrong CRC in the trailer.
    let mut bad_crc = good.clone();
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0xff;
    let path = dir.write("bad-crc", &bad_crc);
    assert_contains(
        &error_for(data::idx::read_images(&path), &path),
        "corrupt gzip data",
    );
    // The compressed stream cut in half.
    let path = dir.write("cut", &good[..good.len() / 2]);
    let msg = error_for(data::idx::read_images(&path), &path);
    assert!(
        msg.contains("truncated gzip stream") || msg.contains("corrupt gzip"),
        "{msg}"
    );
    // Only the gzip magic.
    let path = dir.write("magic-only", &[0x1f, 0x8b]);
    error_for(data::idx::read_images(&path), &path);
}

#[test]
fn label_count_mismatch() {
    let dir = TempDir::new("count");
    write_dataset(&dir, 2, 2);
    let labels = dir.write("t10k-labels-idx1-ubyte.gz", &gzip(&idx1(&[1, 2, 3])));
    let msg = error_for(
        data::load_test(&dir.0, &DataOptions::default()).map(|t| t.test),
        &labels,
    );
    assert_contains(&msg, "3 labels but");
    assert_contains(&msg, "t10k-images-idx3-ubyte holds 4 images");
    error_for(data::load(&dir.0, &DataOptions::default()), &labels);
}

#[test]
fn image_size_mismatch_between_splits() {
    let dir = TempDir::new("sizes");
    write_dataset(&dir, 2, 2);
    let test = dir.write("t10k-images-idx3-ubyte", &idx3(4, 3, 3, &noise(36, 9)));
    let msg = error_for(data::load(&dir.0, &DataOptions::default()), &test);
    assert_contains(&msg, "images are 3×3 but");
    assert_contains(&msg, "holds 2×2 images");
}
