//! Image folders as datasets (`data::load` on a folder of images): listing, labels, the two split
//! rules, every format decoded with alpha composited over white, Pillow's luma, default channels
//! and size, scaling and cropping, errors that name the file, the cache of decoded folders, and
//! folders given as files in memory (the web page's folder picker).
//!
//! Expected pixels come from Pillow 13.0 running `load_image` / `load_folder` of
//! `../shared/reference/pytorch_images.py` on the very files these tests write (they are
//! deterministic); the emoji test copies 34 files of `../shared/data/emoji-noto` and is skipped
//! when that folder is absent. Set GPU_AE_KEEP_TEST_DIRS=1 to keep the scratch folders.

use std::io::Cursor;
use std::path::Path;
use std::sync::Once;

use gpu_ae::data::cache::Part;
use gpu_ae::data::fingerprint::Fnv1a64;
use gpu_ae::data::{self, DataOptions, Dataset, SplitRule, UNLABELLED};
use gpu_ae::data::{decode, folder, listing, memory, pil};
use image::{DynamicImage, ImageFormat, RgbImage, RgbaImage};

mod support;
use support::{TempDir, assert_contains, error_for};

// ------------------------------------------------------------------------------ scratch folders

/// Every test's cache goes to one scratch cache folder (the variable is set once, before any
/// test reads it).
/// A [`TempDir`] after [`setup`].
fn temp_dir(name: &str) -> TempDir {
    setup();
    TempDir::new(name)
}

fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let cache = std::env::temp_dir().join("gpu-ae-io-images-cache");
        // Entries of earlier runs (keys hold the scratch paths, so runs never share one).
        if let Ok(entries) = std::fs::read_dir(&cache) {
            for e in entries.flatten() {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|d| d.as_secs() > 3600));
                if old {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        // SAFETY: runs once, before any test thread goes past `setup` to read the environment.
        unsafe { std::env::set_var("GPU_AE_CACHE_DIR", &cache) };
    });
}

// ------------------------------------------------------------------------------ image files

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn png_rgba(w: u32, h: u32, px: impl Fn(u32, u32) -> [u8; 4]) -> Vec<u8> {
    let img = RgbaImage::from_fn(w, h, |x, y| image::Rgba(px(x, y)));
    encode(DynamicImage::ImageRgba8(img), ImageFormat::Png)
}

fn rgb(w: u32, h: u32, px: impl Fn(u32, u32) -> [u8; 3]) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| image::Rgb(px(x, y))))
}

fn png_rgb(w: u32, h: u32, px: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    encode(rgb(w, h, px), ImageFormat::Png)
}

/// A grey PNG of one value.
fn png_grey(w: u32, h: u32, v: u8) -> Vec<u8> {
    let img = image::GrayImage::from_pixel(w, h, image::Luma([v]));
    encode(DynamicImage::ImageLuma8(img), ImageFormat::Png)
}

/// A PNG written with the png crate: any colour type, palette and tRNS chunk.
fn png_raw(
    dims: (u32, u32),
    color: png::ColorType,
    palette: Option<&[u8]>,
    trns: Option<&[u8]>,
    data: &[u8],
) -> Vec<u8> {
    png_of_depth(png::BitDepth::Eight, dims, color, palette, trns, data)
}

/// A 16-bit PNG of `samples` (and a tRNS key colour of 16-bit samples).
fn png16(
    dims: (u32, u32),
    color: png::ColorType,
    trns: Option<&[u16]>,
    samples: &[u16],
) -> Vec<u8> {
    let be = |v: &[u16]| -> Vec<u8> { v.iter().flat_map(|s| s.to_be_bytes()).collect() };
    let trns = trns.map(be);
    let data = be(samples);
    png_of_depth(
        png::BitDepth::Sixteen,
        dims,
        color,
        None,
        trns.as_deref(),
        &data,
    )
}

/// [`png_raw`] at any bit depth, `data` and `trns` as the file stores them (big-endian).
fn png_of_depth(
    depth: png::BitDepth,
    (w, h): (u32, u32),
    color: png::ColorType,
    palette: Option<&[u8]>,
    trns: Option<&[u8]>,
    data: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(depth);
        if let Some(p) = palette {
            enc.set_palette(p.to_vec());
        }
        if let Some(t) = trns {
            enc.set_trns(t.to_vec());
        }
        let mut writer = enc.write_header().unwrap();
        writer.write_image_data(data).unwrap();
    }
    out
}

fn gif_indexed(
    (w, h): (u16, u16),
    palette: &[u8],
    transparent: Option<u8>,
    indices: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut out, w, h, palette).unwrap();
        let mut frame = gif::Frame::from_indexed_pixels(w, h, indices.to_vec(), transparent);
        frame.palette = None;
        enc.write_frame(&frame).unwrap();
    }
    out
}

fn webp_lossless(img: &RgbaImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .encode(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgba8,
        )
        .unwrap();
    out
}

fn jpeg(img: &DynamicImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
        &mut out, quality,
    ))
    .unwrap();
    out
}

// ------------------------------------------------------------------------------ helpers

fn opts(channels: Option<u8>, size: Option<usize>) -> DataOptions {
    DataOptions {
        channels,
        size,
        ..DataOptions::default()
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a64::default();
    h.update(bytes);
    h.finish()
}

/// Relative paths of a loaded dataset's train and test images, in split order, from the listing
/// and the hash rule (the order `data::load` must follow).
fn hash_split(dir: &Path, test_percent: u32) -> (Vec<String>, Vec<String>) {
    let listing = listing::list_images(dir).unwrap();
    listing
        .images
        .into_iter()
        .partition(|rel| !listing::is_test_by_hash(rel, test_percent))
}

/// Image `rel` of a dataset loaded with the hash rule, `[channels, rows, cols]`.
fn image_of<'a>(ds: &'a Dataset, rel: &str, test_percent: u32) -> &'a [u8] {
    let (train, test) = hash_split(&ds.dir, test_percent);
    if let Some(i) = train.iter().position(|r| r == rel) {
        ds.train.images.image(i)
    } else {
        let i = test.iter().position(|r| r == rel).expect("listed");
        ds.test.images.image(i)
    }
}

// ------------------------------------------------------------------------------ listing, labels

/// Listing order (UTF-8 bytes), labels from first-level folders, hidden files and folders
/// skipped, other files ignored and counted, extensions in any case, links followed, files at
/// the root unlabelled.
#[test]
fn listing_order_labels_and_ignored_files() {
    let dir = temp_dir("listing");
    let img = png_grey(4, 4, 100);
    for rel in [
        "cats/a.png",
        "cats/B.PNG",
        "cats/deep/c.png",
        "dogs/d.png",
        "Zebras/e.png",
        "émile/f.png",
        "root.png",
        ".hidden.png",
        ".git/x.png",
        "cats/.thumb.png",
    ] {
        dir.write(rel, &img);
    }
    dir.write("notes.txt", b"not an image");
    dir.write("cats/labels.csv", b"a,b");
    dir.write("cats/noext", b"x");
    let listing = listing::list_images(&dir.0).unwrap();
    assert_eq!(
        listing.images,
        [
            "Zebras/e.png",
            "cats/B.PNG",
            "cats/a.png",
            "cats/deep/c.png",
            "dogs/d.png",
            "root.png",
            "émile/f.png",
        ]
    );
    assert_eq!(listing.ignored, 3);

    let ds = data::load(&dir.0, &opts(None, None)).unwrap();
    assert_eq!(ds.classes, ["Zebras", "cats", "dogs", "émile"]);
    assert_eq!(ds.ignored, 3);
    assert_eq!(ds.outside_split, 0);
    assert_eq!(ds.split_rule, SplitRule::Hash { test_percent: 10 });
    assert_eq!(ds.shape(), [1, 4, 4]);
    let label = |rel: &str| match rel.split_once('/') {
        Some((class, _)) => ds.classes.iter().position(|c| c == class).unwrap() as u32,
        None => UNLABELLED,
    };
    let (train, test) = hash_split(&dir.0, 10);
    assert_eq!(
        ds.train.labels,
        train.iter().map(|r| label(r)).collect::<Vec<_>>()
    );
    assert_eq!(
        ds.test.labels,
        test.iter().map(|r| label(r)).collect::<Vec<_>>()
    );
    // fnv1a64("root.png") % 100 = 4, the others' ≥ 10 (see `hash_split_matches_the_reference`).
    assert_eq!(test, ["root.png"]);
    assert_eq!(ds.test.labels, [UNLABELLED]);
    assert_eq!(ds.train.labels, [0, 1, 1, 1, 2, 3]);

    // A link to a folder is followed; its files count again under the link's name.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir.path("cats"), dir.path("linked")).unwrap();
        let listing = listing::list_images(&dir.0).unwrap();
        assert!(listing.images.contains(&"linked/deep/c.png".to_string()));
        assert_eq!(listing.images.len(), 10);
        assert_eq!(listing.ignored, 5);
    }
}

/// The hash split is FNV-1a 64 of the relative path's UTF-8 bytes modulo 100, as in the
/// reference (values from its `fnv1a64`).
#[test]
fn hash_split_matches_the_reference() {
    // (path, fnv1a64(path.encode()) % 100) from Python.
    for (rel, m) in [
        ("Zebras/e.png", 53),
        ("cats/a.png", 81),
        ("cats/deep/c.png", 24),
        ("root.png", 4),
        ("émile/f.png", 28),
        ("people-body/1f468-1f3fb.png", 69),
        ("a", 96),
    ] {
        assert!(!listing::is_test_by_hash(rel, m), "{rel}");
        assert!(listing::is_test_by_hash(rel, m + 1), "{rel}");
    }
}

/// DIR/train and DIR/test split the images; labels are the folders below them; images outside
/// are counted and not used; files directly in train/ are unlabelled.
#[test]
fn train_and_test_folders() {
    let dir = temp_dir("folders");
    for (rel, v) in [
        ("train/cats/1.png", 10),
        ("train/dogs/2.png", 20),
        ("train/3.png", 30),
        ("test/cats/4.png", 40),
        ("test/birds/5.png", 50),
        ("other/6.png", 60),
        ("7.png", 70),
    ] {
        dir.write(rel, &png_grey(2, 2, v));
    }
    let ds = data::load(&dir.0, &opts(None, None)).unwrap();
    assert_eq!(ds.split_rule, SplitRule::Folders);
    assert_eq!(ds.classes, ["birds", "cats", "dogs"]);
    assert_eq!(ds.train.labels, [UNLABELLED, 1, 2]);
    assert_eq!(ds.train.images.pixels, [[30; 4], [10; 4], [20; 4]].concat());
    assert_eq!(ds.test.labels, [0, 1]);
    assert_eq!(ds.test.images.pixels, [[50; 4], [40; 4]].concat());
    assert_eq!(ds.outside_split, 2);
    let t = data::load_test(&dir.0, &opts(None, None)).unwrap();
    assert_eq!(
        (t.test, t.classes, t.split_rule),
        (ds.test, ds.classes, ds.split_rule)
    );

    // An empty test/ folder is an error, not an empty split.
    std::fs::remove_dir_all(dir.path("test")).unwrap();
    std::fs::create_dir(dir.path("test")).unwrap();
    assert_contains(
        &error_for(data::load(&dir.0, &opts(None, None)), &dir.0),
        "no images below test/",
    );
}

// ------------------------------------------------------------------------------ pixels

/// Pillow's `convert("L")` (values from Pillow 13.0).
#[test]
fn luma_is_pillows() {
    for (rgb, l) in [
        ([255, 0, 0], 76),
        ([0, 255, 0], 150),
        ([0, 0, 255], 29),
        ([200, 100, 50], 124),
        ([12, 200, 77], 130),
        ([255, 255, 255], 255),
        ([1, 2, 3], 2),
        ([128, 128, 127], 128),
    ] {
        assert_eq!(pil::luma_of(rgb[0], rgb[1], rgb[2]), l, "{rgb:?}");
    }
}

/// One 4×4 file per format and transparency kind; each expected `[3, 4, 4]` RGB and `[1, 4, 4]`
/// grey result is Pillow's (`load_image(path, 4, 3)` and `(path, 4, 1)`), as FNV-1a 64 of the
/// bytes, with a few pixels spelled out.
fn format_fixtures() -> Vec<(&'static str, Vec<u8>)> {
    let ramp = |x: u32, y: u32| {
        [
            (x * 60 + 10) as u8,
            (y * 70 + 5) as u8,
            ((x + y) * 30) as u8,
        ]
    };
    // Alpha 0 (a red pixel that must turn white), 1, 128, 254 and 255.
    let alphas = [0u8, 1, 128, 254, 255, 64, 200, 0];
    let rgba = |x: u32, y: u32| {
        let [r, g, b] = ramp(x, y);
        let a = alphas[((x + y * 4) % 8) as usize];
        if a == 0 { [255, 0, 0, 0] } else { [r, g, b, a] }
    };
    let palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 40, 80, 120];
    let indices: Vec<u8> = (0..16).map(|i| (i * 7 % 4) as u8).collect();
    let grey_alpha: Vec<u8> = (0..16u8).flat_map(|i| [i * 16, i * 17]).collect();
    let greys: Vec<u8> = (0..16u8).map(|i| i * 15 + 20).collect();
    let rgb_data: Vec<u8> = (0..16u32).flat_map(|i| ramp(i % 4, i / 4)).collect();
    vec![
        ("rgba.png", png_rgba(4, 4, rgba)),
        ("rgb.png", png_rgb(4, 4, ramp)),
        (
            "grey.png",
            png_raw((4, 4), png::ColorType::Grayscale, None, None, &greys),
        ),
        (
            "grey-alpha.png",
            png_raw(
                (4, 4),
                png::ColorType::GrayscaleAlpha,
                None,
                None,
                &grey_alpha,
            ),
        ),
        (
            "palette.png",
            png_raw(
                (4, 4),
                png::ColorType::Indexed,
                Some(&palette),
                None,
                &indices,
            ),
        ),
        (
            "palette-trns.png",
            png_raw(
                (4, 4),
                png::ColorType::Indexed,
                Some(&palette),
                Some(&[0, 128, 255]),
                &indices,
            ),
        ),
        // Grey and RGB with a tRNS key colour: Pillow keeps the pixels (no compositing).
        (
            "grey-key.png",
            png_raw(
                (4, 4),
                png::ColorType::Grayscale,
                None,
                Some(&[0, 65]),
                &greys,
            ),
        ),
        (
            "rgb-key.png",
            png_raw(
                (4, 4),
                png::ColorType::Rgb,
                None,
                Some(&[0, 10, 0, 5, 0, 0]),
                &rgb_data,
            ),
        ),
        ("palette.gif", gif_indexed((4, 4), &palette, None, &indices)),
        (
            "palette-trns.gif",
            gif_indexed((4, 4), &palette, Some(0), &indices),
        ),
        (
            "rgba.webp",
            webp_lossless(&RgbaImage::from_fn(4, 4, |x, y| image::Rgba(rgba(x, y)))),
        ),
        ("rgb.bmp", encode(rgb(4, 4, ramp), ImageFormat::Bmp)),
    ]
}

/// (file, FNV-1a 64 of Pillow's [3, 4, 4], of Pillow's [1, 4, 4]).
const FORMAT_DIGESTS: [(&str, u64, u64); 12] = [
    ("rgba.png", 0x4223d1f8fc38f539, 0xe6c8fec5d79378b6),
    ("rgb.png", 0x19ef0408464d9ca5, 0xc35b0c3c1cbdff11),
    ("grey.png", 0xf081ca54e3f2b805, 0x7633121a832b74c5),
    ("grey-alpha.png", 0x802c3cd410409a61, 0x6577fdd7c8aadde1),
    ("palette.png", 0x2a8db4b774a0d165, 0x7daf8694323257e5),
    ("palette-trns.png", 0xe200eaa70839bd35, 0xbc1ec10cbf2a736d),
    ("grey-key.png", 0xf081ca54e3f2b805, 0x7633121a832b74c5),
    ("rgb-key.png", 0x19ef0408464d9ca5, 0xc35b0c3c1cbdff11),
    ("palette.gif", 0x2a8db4b774a0d165, 0x7daf8694323257e5),
    ("palette-trns.gif", 0x0f179c62aa57fa5d, 0x71faa121e09cfc8d),
    ("rgba.webp", 0x4223d1f8fc38f539, 0xe6c8fec5d79378b6),
    ("rgb.bmp", 0x19ef0408464d9ca5, 0xc35b0c3c1cbdff11),
];

#[test]
fn every_format_composited_over_white_as_pillow_does() {
    let dir = temp_dir("formats");
    for (name, bytes) in format_fixtures() {
        dir.write(name, &bytes);
    }
    let mut failures = Vec::new();
    for (name, rgb_digest, grey_digest) in FORMAT_DIGESTS {
        let bytes = std::fs::read(dir.path(name)).unwrap();
        let rgb = decode::load_image(&bytes, 3, 4).unwrap();
        let grey = decode::load_image(&bytes, 1, 4).unwrap();
        if fnv(&rgb) != rgb_digest || fnv(&grey) != grey_digest {
            failures.push(format!("{name}: rgb {rgb:?} grey {grey:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "differ from Pillow:\n{}",
        failures.join("\n")
    );

    // Spelled out, Pillow's first rows: rgba.png, R plane: alpha 0 → white, alpha 1 → 254
    // (ramp value 70), alpha 128 → 192, alpha 254 → 190 (ramp value 190).
    let load = |name: &str, channels| {
        decode::load_image(&std::fs::read(dir.path(name)).unwrap(), channels, 4).unwrap()
    };
    assert_eq!(load("rgba.png", 3)[..4], [255, 254, 192, 190]);
    assert_eq!(load("rgba.png", 1)[..4], [255, 254, 152, 71]);
    // Palette entries 0 (alpha 0), 3 (opaque, no tRNS entry) on the first row.
    assert_eq!(load("palette-trns.png", 3)[..4], [255, 40, 0, 127]);
    assert_eq!(load("palette-trns.png", 1)[..4], [255, 73, 29, 202]);
    // The transparent GIF index → white; the grey key colour (65) is kept as it is.
    assert_eq!(load("palette-trns.gif", 1)[..4], [255, 73, 29, 150]);
    assert_eq!(load("grey-key.png", 1)[..4], [20, 35, 50, 65]);

    // The same pixels through the folder loader (both splits: 30% puts rgba.png, rgb.png and
    // palette.gif in the test split), and the default channels are 3.
    let o = DataOptions {
        test_percent: 30,
        ..DataOptions::default()
    };
    let ds = data::load(&dir.0, &o).unwrap();
    assert_eq!(ds.shape(), [3, 4, 4]);
    assert_eq!(ds.test.images.count, 3);
    for (name, rgb_digest, _) in FORMAT_DIGESTS {
        assert_eq!(fnv(image_of(&ds, name, 30)), rgb_digest, "{name}");
    }
}

/// Issue 27 item 6: 16-bit PNGs give Pillow 13's pixels. Pillow opens a 16-bit grey PNG as
/// `I;16`, which `convert("L")` and `convert("RGB")` clip at 255; grey+alpha, RGB and RGBA as
/// 8-bit `RGBA`/`RGB` by the high byte of each sample. The samples are the values around those
/// edges (0, 1, 127..129, 255..257, 32767, 32768, 65279, 65280, 65535, …), 5×5.
#[test]
fn sixteen_bit_pngs_match_pillow() {
    use png::ColorType::{Grayscale, GrayscaleAlpha, Rgb, Rgba};
    #[rustfmt::skip]
    let v: [u16; 25] = [
        0, 1, 127, 128, 129, 255, 256, 257, 383, 384, 32767, 32768, 32896, 65279, 65280,
        65407, 65408, 65534, 65535, 12345, 54321, 1000, 40000, 300, 640,
    ];
    // numpy: rgb = stack([v, v[::-1], roll(v, 1)], -1) on v as 5×5, alpha = roll(v, 3).
    let at = |i: usize| v[i % 25];
    let rows_flipped = |i: usize| v[(4 - i / 5) * 5 + i % 5];
    let rgb: Vec<u16> = (0..25)
        .flat_map(|i| [v[i], rows_flipped(i), at(i + 24)])
        .collect();
    let alpha = |i: usize| at(i + 22);
    let grey_alpha: Vec<u16> = (0..25).flat_map(|i| [v[i], alpha(i)]).collect();
    let rgba: Vec<u16> = (0..25)
        .flat_map(|i| [v[i], rows_flipped(i), at(i + 24), alpha(i)])
        .collect();
    let fixtures = [
        ("grey16", png16((5, 5), Grayscale, None, &v)),
        (
            "grey-alpha16",
            png16((5, 5), GrayscaleAlpha, None, &grey_alpha),
        ),
        ("rgb16", png16((5, 5), Rgb, None, &rgb)),
        ("rgba16", png16((5, 5), Rgba, None, &rgba)),
        ("grey-key16", png16((5, 5), Grayscale, Some(&[300]), &v)),
        ("rgb-key16", png16((5, 5), Rgb, Some(&[0, 65535, 1]), &rgb)),
    ];
    // Pillow 13.0: the same samples written as 16-bit PNGs, then for each file and channels C
    // `pytorch_images.load_image(path, 5, C).ravel().tolist()` (../shared/reference), planar.
    #[rustfmt::skip]
    let grey16: [u8; 25] = [
        0, 1, 127, 128, 129, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255,
    ];
    #[rustfmt::skip]
    let grey_alpha16: [u8; 25] = [
        99, 254, 253, 255, 255, 255, 255, 255, 255, 254, 254, 255, 255, 255, 255, 255, 255, 255,
        255, 48, 212, 3, 236, 44, 252,
    ];
    #[rustfmt::skip]
    let rgb16: [u8; 75] = [
        0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 127, 128, 128, 254, 255, 255, 255, 255, 255, 48, 212, 3, 156,
        1, 2, 212, 3, 156, 1, 2, 255, 255, 255, 255, 48, 127, 128, 128, 254, 255, 0, 1, 1, 1, 1, 0,
        0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 127, 128, 128, 254, 255, 255, 255, 255, 255,
        48, 212, 3, 156, 1,
    ];
    #[rustfmt::skip]
    let rgb16_grey: [u8; 25] = [
        125, 2, 92, 1, 1, 150, 150, 150, 150, 29, 113, 128, 128, 240, 255, 105, 106, 106, 106, 44,
        69, 25, 47, 18, 1,
    ];
    #[rustfmt::skip]
    let rgba16: [u8; 75] = [
        99, 254, 253, 255, 255, 255, 255, 255, 255, 254, 254, 255, 255, 255, 255, 255, 255, 255,
        255, 48, 212, 3, 236, 44, 252, 229, 254, 254, 255, 255, 255, 255, 255, 255, 254, 254, 255,
        255, 255, 255, 127, 2, 1, 1, 1, 0, 0, 207, 43, 252, 100, 254, 253, 255, 255, 255, 255, 255,
        255, 254, 254, 254, 255, 192, 254, 255, 255, 255, 255, 255, 48, 212, 208, 173, 252,
    ];
    #[rustfmt::skip]
    let rgba16_grey: [u8; 25] = [
        175, 254, 254, 255, 255, 255, 255, 255, 255, 254, 254, 255, 255, 248, 255, 180, 106, 106,
        106, 44, 69, 25, 216, 58, 252,
    ];
    let three = |plane: &[u8]| plane.repeat(3);
    let pillow: [(&str, Vec<u8>, Vec<u8>); 6] = [
        ("grey16", three(&grey16), grey16.to_vec()),
        ("grey-alpha16", three(&grey_alpha16), grey_alpha16.to_vec()),
        ("rgb16", rgb16.to_vec(), rgb16_grey.to_vec()),
        ("rgba16", rgba16.to_vec(), rgba16_grey.to_vec()),
        // A key colour changes nothing: Pillow does not composite these.
        ("grey-key16", three(&grey16), grey16.to_vec()),
        ("rgb-key16", rgb16.to_vec(), rgb16_grey.to_vec()),
    ];
    let dir = temp_dir("sixteen-bits");
    for ((name, bytes), (pname, rgb, grey)) in fixtures.iter().zip(&pillow) {
        assert_eq!(name, pname);
        assert_eq!(&decode::load_image(bytes, 3, 5).unwrap(), rgb, "{name} RGB");
        assert_eq!(
            &decode::load_image(bytes, 1, 5).unwrap(),
            grey,
            "{name} grey"
        );
        dir.write(&format!("{name}.png"), bytes);
    }
    // The same pixels through the folder loader (30% puts the key-colour files in the test
    // split).
    let o = DataOptions {
        channels: Some(3),
        test_percent: 30,
        ..DataOptions::default()
    };
    let ds = data::load(&dir.0, &o).unwrap();
    for (name, rgb, _) in &pillow {
        assert_eq!(image_of(&ds, &format!("{name}.png"), 30), rgb, "{name}");
    }
}

/// JPEG goes through another decoder than Pillow's libjpeg-turbo: within a few levels.
#[test]
fn jpeg_is_close_to_pillow() {
    let img = rgb(8, 8, |x, y| [(x * 30) as u8, (y * 30) as u8, 128]);
    let dir = temp_dir("jpeg");
    let path = dir.write("smooth.jpg", &jpeg(&img, 95));
    let rgb = decode::load_image(&std::fs::read(path).unwrap(), 3, 8).unwrap();
    // Pillow 13.0's load_image(path, 8, 3) of this file, planar.
    #[rustfmt::skip]
    let pillow: [u8; 192] = [
        1, 31, 61, 91, 121, 150, 181, 210, 0, 30, 60, 88, 120, 149, 180, 210,
        0, 30, 60, 88, 120, 148, 181, 210, 0, 30, 61, 90, 121, 150, 180, 210,
        0, 29, 61, 89, 120, 148, 178, 210, 1, 31, 61, 89, 120, 150, 180, 210,
        0, 31, 62, 91, 121, 150, 182, 211, 0, 30, 61, 89, 121, 148, 181, 211,
        0, 0, 0, 0, 0, 0, 0, 0, 31, 30, 30, 31, 30, 31, 30, 30,
        61, 61, 61, 62, 61, 61, 62, 61, 89, 89, 89, 90, 89, 89, 90, 89,
        122, 122, 122, 122, 120, 121, 121, 121, 150, 150, 150, 151, 149, 149, 149, 149,
        181, 179, 180, 181, 179, 180, 180, 179, 211, 209, 210, 211, 210, 210, 210, 210,
        128, 130, 129, 129, 131, 130, 129, 130, 126, 128, 126, 126, 128, 128, 127, 127,
        128, 128, 128, 127, 129, 129, 128, 129, 129, 129, 129, 128, 130, 130, 128, 130,
        127, 129, 127, 127, 128, 126, 127, 127, 128, 130, 128, 128, 129, 128, 128, 128,
        130, 129, 128, 129, 129, 130, 129, 130, 126, 127, 126, 126, 128, 127, 126, 128,
    ];
    let worst = rgb
        .iter()
        .zip(pillow)
        .map(|(&a, b)| a.abs_diff(b))
        .max()
        .unwrap();
    // Measured: 4 of the 192 values differ, by 1 or 2.
    assert!(
        worst <= 3,
        "JPEG pixels differ from Pillow's by {worst}: {rgb:?}"
    );
    let differing = rgb.iter().zip(pillow).filter(|(a, b)| **a != *b).count();
    assert!(differing < 20, "{differing} values differ: {rgb:?}");
}

/// Channels default to 1 when every image is grey after compositing (colour hidden under alpha 0
/// does not count), to 3 as soon as one pixel is not.
#[test]
fn default_channels_follow_the_pixels() {
    let dir = temp_dir("channels");
    dir.write("a/grey.png", &png_grey(3, 3, 77));
    // RGB whose pixels are all grey.
    dir.write(
        "a/rgb-grey.png",
        &png_rgb(3, 3, |x, y| [(x * 9 + y) as u8; 3]),
    );
    // Colour only where alpha is 0: white after compositing.
    dir.write(
        "b/hidden-colour.png",
        &png_rgba(3, 3, |x, _| {
            if x == 0 {
                [255, 0, 0, 0]
            } else {
                [40, 40, 40, 255]
            }
        }),
    );
    dir.write("b/grey2.png", &png_grey(3, 3, 200));
    let ds = data::load(&dir.0, &opts(None, None)).unwrap();
    assert_eq!(ds.shape(), [1, 3, 3]);
    assert_eq!(
        image_of(&ds, "b/hidden-colour.png", 10),
        [255, 40, 40, 255, 40, 40, 255, 40, 40]
    );
    assert_eq!(image_of(&ds, "a/grey.png", 10), [77; 9]);
    // Asking for 3 repeats the grey plane.
    let ds3 = data::load(&dir.0, &opts(Some(3), None)).unwrap();
    assert_eq!(image_of(&ds3, "a/grey.png", 10), [77; 27]);

    // One colour pixel anywhere: RGB for all, grey images as three equal planes.
    dir.write(
        "b/colour.png",
        &png_rgb(3, 3, |x, y| [100, 100, (x + y) as u8 + 100]),
    );
    let ds = data::load(&dir.0, &opts(None, None)).unwrap();
    assert_eq!(ds.shape(), [3, 3, 3]);
    assert_eq!(image_of(&ds, "a/grey.png", 10), [77; 27]);
    let colour = image_of(&ds, "b/colour.png", 10);
    assert_eq!(colour[..9], [100; 9]);
    assert_eq!(colour[18..21], [100, 101, 102]);
    // Asking for grey gives Pillow's luma.
    let ds1 = data::load(&dir.0, &opts(Some(1), None)).unwrap();
    let l = |b| pil::luma_of(100, 100, b);
    assert_eq!(
        image_of(&ds1, "b/colour.png", 10)[..3],
        [l(100), l(101), l(102)]
    );
}

/// Size: the images' own when they share one square size; otherwise an error naming two files
/// (or the shape) and asking for a size; with a size, every image is scaled and cropped.
#[test]
fn default_size_and_its_errors() {
    let dir = temp_dir("sizes");
    dir.write("x/a.png", &png_grey(6, 6, 10));
    dir.write("x/b.png", &png_grey(6, 6, 20));
    dir.write("y/c.png", &png_grey(6, 6, 30));
    let half = |size| DataOptions {
        size,
        test_percent: 50,
        ..DataOptions::default()
    };
    assert_eq!(data::load(&dir.0, &half(None)).unwrap().shape(), [1, 6, 6]);
    dir.write("y/d.png", &png_grey(8, 4, 40));
    let msg = error_for(data::load(&dir.0, &half(None)), &dir.0);
    assert_contains(
        &msg,
        "images differ in size (x/a.png is 6×6, y/d.png is 8×4)",
    );
    assert_contains(&msg, "pass a size");
    let ds = data::load(&dir.0, &half(Some(3))).unwrap();
    assert_eq!(ds.shape(), [1, 3, 3]);
    assert_eq!(image_of(&ds, "y/d.png", 50), [40; 9]);
    for name in ["x/a.png", "x/b.png", "y/c.png"] {
        std::fs::remove_file(dir.path(name)).unwrap();
    }
    dir.write("y/f.png", &png_grey(8, 4, 50));
    let msg = error_for(data::load(&dir.0, &half(None)), &dir.0);
    assert_contains(
        &msg,
        "images are 8×4, not square (e.g. y/d.png); pass a size",
    );
}

type ScaleCase = (&'static str, (u32, u32), u8, usize, u64, [u8; 4]);

/// A synthetic 64×64 RGB picture and non-square ones scaled as the reference does: BOX for
/// 64 → 32 (exact 2×2 means, rounded per pass), BILINEAR for 64 → 28 and the others, centre
/// crop. Digests of Pillow 13.0's `load_image` output.
#[test]
fn scaling_and_cropping_match_pillow() {
    let pattern = |x: u32, y: u32| {
        [
            ((x * 4) ^ (y * 3)) as u8,
            ((x * y) & 255) as u8,
            ((x + 2 * y) * 3 % 256) as u8,
        ]
    };
    let dir = temp_dir("scaling");
    // (file, its size, channels, size, digest of Pillow's output, its first four bytes)
    let cases: [ScaleCase; 6] = [
        (
            "square.png",
            (64, 64),
            3,
            32,
            0x4a5cbe93baed1f65,
            [4, 12, 20, 28],
        ),
        (
            "square.png",
            (64, 64),
            1,
            32,
            0xef5f7b0473ba9e76,
            [2, 6, 9, 13],
        ),
        (
            "square.png",
            (64, 64),
            3,
            28,
            0xfdaa0112293ae44a,
            [5, 14, 23, 32],
        ),
        (
            "square.png",
            (64, 64),
            1,
            28,
            0x35ce48cc1b11692a,
            [3, 7, 11, 17],
        ),
        (
            "wide.png",
            (64, 40),
            3,
            32,
            0xc3bda3b45dd0b2ac,
            [47, 51, 57, 62],
        ),
        // The height shrinks more than twice as much as the width: Pillow 13 resamples
        // vertically first.
        (
            "tall.png",
            (30, 90),
            3,
            16,
            0xeb72d6c93b51cd4b,
            [91, 87, 80, 75],
        ),
    ];
    let mut failures = Vec::new();
    for (name, (w, h), channels, size, digest, first) in cases {
        let path = dir.write(name, &png_rgb(w, h, pattern));
        let out = decode::load_image(&std::fs::read(&path).unwrap(), channels, size).unwrap();
        assert_eq!(out.len(), usize::from(channels) * size * size);
        if fnv(&out) != digest || out[..4] != first {
            failures.push(format!(
                "{name} {channels}×{size}: digest {:#x}, first {:?}",
                fnv(&out),
                &out[..4]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "differ from Pillow:\n{}",
        failures.join("\n")
    );
}

/// A corrupt image, a folder without images and bad options are one-line errors naming the file
/// or folder; nothing is loaded from a partly decoded folder.
#[test]
fn errors_name_the_file_or_folder() {
    let dir = temp_dir("errors");
    dir.write("notes.txt", b"x");
    dir.write("sub/table.csv", b"x");
    let msg = error_for(data::load(&dir.0, &opts(None, None)), &dir.0);
    assert_contains(&msg, "no images");
    assert_contains(&msg, "2 other files ignored");
    error_for(data::load_test(&dir.0, &opts(None, None)), &dir.0);

    for i in 0..30 {
        dir.write(&format!("ok/{i}.png"), &png_grey(4, 4, i));
    }
    let bad = dir.write(
        "ok/zz-broken.png",
        b"\x89PNG\r\n\x1a\n but not really a PNG",
    );
    for o in [
        opts(None, None),
        opts(Some(1), Some(4)),
        opts(Some(3), Some(2)),
    ] {
        assert_contains(
            &error_for(data::load(&dir.0, &o), &bad),
            ": cannot decode: ",
        );
    }
    // A valid header over a truncated body fails at decoding, not at sizing.
    let full = png_rgb(4, 4, |x, y| [x as u8 * 50, y as u8 * 50, 9]);
    std::fs::write(&bad, &full[..full.len() - 20]).unwrap();
    assert_contains(
        &error_for(data::load(&dir.0, &opts(None, None)), &bad),
        ": cannot decode: ",
    );
    std::fs::remove_file(&bad).unwrap();

    let msg = data::load(&dir.0, &opts(Some(2), None)).unwrap_err();
    assert_contains(
        msg.message(),
        "channels 2: images have 1 channel (grey) or 3 (RGB)",
    );
    let msg = data::load(&dir.0, &opts(None, Some(0))).unwrap_err();
    assert_contains(msg.message(), "size 0");
    let o = DataOptions {
        test_percent: 100,
        ..DataOptions::default()
    };
    assert_contains(
        data::load(&dir.0, &o).unwrap_err().message(),
        "between 1 and 99",
    );
    // Too few images for a test split.
    let few = temp_dir("errors-few");
    few.write("a.png", &png_grey(2, 2, 1));
    let msg = error_for(data::load(&few.0, &opts(None, None)), &few.0);
    assert_contains(
        &msg,
        "no test images: of the 1 images, 0 have fnv1a64(path) % 100 < 10",
    );
}

#[cfg(unix)]
#[test]
fn link_loops_and_names_that_are_not_utf8_are_errors() {
    use std::os::unix::ffi::OsStrExt;
    let dir = temp_dir("loops");
    dir.write("a/x.png", &png_grey(2, 2, 1));
    std::os::unix::fs::symlink(&dir.0, dir.path("a/up")).unwrap();
    assert_contains(
        &error_for(data::load(&dir.0, &opts(None, None)), &dir.path("a/up")),
        "links back to",
    );
    std::fs::remove_file(dir.path("a/up")).unwrap();
    let odd = dir.0.join(std::ffi::OsStr::from_bytes(b"b\xff.png"));
    std::fs::write(&odd, png_grey(2, 2, 1)).unwrap();
    assert_contains(
        &error_for(data::load(&dir.0, &opts(None, None)), &odd),
        "not valid UTF-8",
    );
}

/// IDX folders take no channel count or size of their own; matching ones are accepted.
#[test]
fn idx_folders_check_channels_and_size() {
    setup();
    let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/mnist");
    let t = data::load_test(&mnist, &opts(Some(1), Some(28))).unwrap();
    assert_eq!(
        (t.split_rule, t.classes.len(), t.ignored),
        (SplitRule::IdxFiles, 0, 0)
    );
    assert_eq!(t.test.images.channels, 1);
    assert_contains(
        &error_for(data::load_test(&mnist, &opts(Some(3), None)), &mnist),
        "IDX images have 1 channel, not 3",
    );
    assert_contains(
        &error_for(data::load_test(&mnist, &opts(None, Some(32))), &mnist),
        "IDX images are 28×28, not 32×32",
    );
}

// ------------------------------------------------------------------------------ real data

/// 34 files of ../shared/data/emoji-noto (the first three of each category, the two palette
/// PNGs and two grey+alpha ones) in a scratch folder, or None when the data is not there.
fn emoji_slice(dir: &TempDir) -> Option<()> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/emoji-noto");
    if !source.is_dir() {
        eprintln!("skipped: {} is not there", source.display());
        return None;
    }
    let mut picked: Vec<String> = Vec::new();
    let mut categories: Vec<_> = std::fs::read_dir(&source)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    categories.sort();
    for c in &categories {
        let mut files: Vec<_> = std::fs::read_dir(source.join(c))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        picked.extend(files.iter().take(3).map(|f| format!("{c}/{f}")));
    }
    for extra in [
        "travel-places/1f315.png",
        "travel-places/1f311.png",
        "objects/1f4f0.png",
        "objects/1f3a7.png",
    ] {
        if !picked.iter().any(|p| p == extra) {
            picked.push(extra.into());
        }
    }
    for rel in &picked {
        dir.write(rel, &std::fs::read(source.join(rel)).unwrap());
    }
    dir.write("README.md", b"not an image");
    Some(())
}

/// The labels of the emoji slice's train and test splits (the reference's `load_folder`).
const TRAIN_LABELS: [u32; 29] = [
    0, 0, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 5, 5, 6, 6, 6, 7, 7, 8, 8, 8, 9, 9, 9, 9,
];
const TEST_LABELS: [u32; 5] = [0, 1, 1, 7, 9];

/// The emoji slice loaded as the reference's `load_folder` loads it (Pillow 13.0): split,
/// classes, labels and every pixel (FNV-1a 64 of each split's `[N, C, S, S]` bytes).
#[test]
fn emoji_slice_matches_the_reference() {
    let dir = temp_dir("emoji");
    if emoji_slice(&dir).is_none() {
        return;
    }
    // (options, shape, train digest, test digest)
    let cases = [
        (
            opts(Some(3), Some(32)),
            [3, 32, 32],
            0x25492837e938cda0,
            0xd1aef6076ae054ed,
        ),
        (
            opts(Some(1), Some(28)),
            [1, 28, 28],
            0x68b87cc82e708e59,
            0xa030ad8ae51792b5,
        ),
        (
            opts(None, None),
            [3, 64, 64],
            0x6105accb143ef125,
            0xcc0265c126cb8fcb,
        ),
    ];
    for (o, shape, train, test) in cases {
        let ds = data::load(&dir.0, &o).unwrap();
        assert_eq!((ds.train.images.count, ds.test.images.count), (29, 5));
        assert_eq!(ds.classes.len(), 10);
        assert_eq!(ds.classes[0], "activities");
        assert_eq!(ds.ignored, 1);
        assert_eq!(ds.train.labels, TRAIN_LABELS);
        assert_eq!(ds.test.labels, TEST_LABELS);
        assert_eq!(ds.shape(), shape);
        assert_eq!(
            (fnv(&ds.train.images.pixels), fnv(&ds.test.images.pixels)),
            (train, test),
            "{o:?}"
        );
    }
}

// ------------------------------------------------------------------------------ in memory

/// Every file below `dir` (hidden ones and other extensions included) as the web page's
/// folder picker hands it over: paths relative to `dir`, in no particular order.
fn files_below(dir: &Path) -> Vec<memory::MemoryFile> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<memory::MemoryFile>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let rel = format!("{prefix}{}", e.file_name().to_str().unwrap());
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), &format!("{rel}/"), out);
            } else {
                let bytes = std::fs::read(e.path()).unwrap();
                out.push(memory::MemoryFile { path: rel, bytes });
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out);
    out.reverse();
    out
}

/// A folder given in memory (the web page's folder picker) is the same dataset, pixel for
/// pixel, label for label, as the folder on disk: the listing (hidden and ignored files), both
/// split rules, default and given channels and sizes, the emoji slice in colour.
#[test]
fn a_folder_given_in_memory_is_the_folder_on_disk() {
    let listed = temp_dir("memory-listing");
    for rel in ["cats/a.png", "cats/deep/c.png", "dogs/d.png", "root.png"] {
        listed.write(
            rel,
            &png_rgb(5, 3, |x, y| [(x * 50) as u8, (y * 80) as u8, 7]),
        );
    }
    listed.write(".hidden.png", &png_grey(4, 4, 1));
    listed.write(".git/x.png", &png_grey(4, 4, 1));
    listed.write("notes.txt", b"not an image");
    let folders = temp_dir("memory-folders");
    for (rel, v) in [
        ("train/cats/1.png", 10),
        ("train/3.png", 30),
        ("test/birds/5.png", 50),
        ("other/6.png", 60),
    ] {
        folders.write(rel, &png_grey(2, 2, v));
    }
    let emoji = temp_dir("memory-emoji");
    let mut cases = vec![
        (&listed, opts(None, Some(4))),
        (&listed, opts(Some(1), Some(3))),
        (&folders, opts(None, None)),
    ];
    if emoji_slice(&emoji).is_some() {
        cases.push((&emoji, opts(Some(3), Some(32))));
        cases.push((&emoji, opts(None, None)));
    }
    for (dir, o) in cases {
        let on_disk = data::load(&dir.0, &o).unwrap();
        let given = memory::load_files(&dir.0, files_below(&dir.0), &o).unwrap();
        assert_eq!(given, on_disk, "{} {o:?}", dir.0.display());
    }
    // Decoded in chunks, with progress: the same dataset.
    let mut chunked =
        memory::MemoryFolder::new(&listed.0, files_below(&listed.0), &opts(None, Some(4))).unwrap();
    assert_eq!(chunked.progress(), (0, 4));
    while chunked.progress().0 < 4 {
        chunked.decode_next(3).unwrap();
    }
    assert_eq!(
        chunked.finish(),
        data::load(&listed.0, &opts(None, Some(4))).unwrap()
    );
    // Decoded elsewhere (the web page's workers) and handed in: the same dataset again.
    let o = opts(Some(3), Some(4));
    let mut handed = memory::MemoryFolder::new(&listed.0, files_below(&listed.0), &o).unwrap();
    let (size, channels) = handed.shape();
    let paths: Vec<String> = handed.to_decode().iter().map(|r| r.to_string()).collect();
    for (k, rel) in paths.iter().enumerate() {
        // The bytes the page's workers get are the file's, freed once handed in.
        let bytes = handed.image_bytes(k).unwrap().to_vec();
        assert_eq!(bytes, std::fs::read(listed.path(rel)).unwrap(), "{rel}");
        let p = memory::prepare_file(&listed.0, rel, &bytes, channels, size).unwrap();
        handed.add_prepared(p).unwrap();
        assert_eq!(handed.image_bytes(k), None, "{rel}");
    }
    assert_eq!(handed.image_bytes(paths.len()), None);
    assert_eq!(handed.finish(), data::load(&listed.0, &o).unwrap());
    let e = memory::prepare_file(&listed.0, "cats/x.png", b"not a png", None, 4).unwrap_err();
    assert_contains(&e.to_string(), "cats/x.png: cannot decode");
}

/// Errors of a folder given in memory name the file: an image that does not decode, a path
/// given twice or outside the folder, no images at all.
#[test]
fn a_folder_given_in_memory_names_its_bad_files() {
    let file = |path: &str, bytes: &[u8]| memory::MemoryFile {
        path: path.into(),
        bytes: bytes.to_vec(),
    };
    let good = png_grey(2, 2, 9);
    // Twenty images, so that both splits have some.
    let base = || -> Vec<memory::MemoryFile> {
        (0..20)
            .map(|i| file(&format!("a/{i}.png"), &good))
            .collect()
    };
    let with = |extra: memory::MemoryFile| {
        let mut files = base();
        files.push(extra);
        files
    };
    let load = |files, size| {
        memory::load_files(Path::new("picked"), files, &opts(None, size))
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let broken = with(file("a/broken.png", b"\x89PNG not really"));
    assert_contains(&load(broken, Some(2)), "picked/a/broken.png: cannot decode");
    assert_contains(
        &load(with(file("a/1.png", &good)), Some(2)),
        "a/1.png: given twice",
    );
    let outside = with(file("../1.png", &good));
    assert_contains(
        &load(outside, Some(2)),
        "../1.png: not a path inside the folder",
    );
    let none = vec![file("notes.txt", b"x"), file(".hidden.png", &good)];
    assert_contains(&load(none, Some(2)), "picked: no images");
    // Without a size, the sizes come from the headers, as on disk.
    let sizes = with(file("b.png", &png_grey(3, 3, 9)));
    assert_contains(
        &load(sizes, None),
        "images differ in size (a/0.png is 2×2, b.png is 3×3)",
    );
}

// ------------------------------------------------------------------------------ cache

/// 12 small colour images in two classes.
fn small_folder(name: &str) -> TempDir {
    let dir = temp_dir(name);
    for i in 0..12u32 {
        let class = if i % 2 == 0 { "a" } else { "b" };
        dir.write(
            &format!("{class}/{i}.png"),
            &png_rgb(4, 4, |x, y| {
                [(i * 20) as u8, (x * 40) as u8, (y * 40) as u8]
            }),
        );
    }
    dir
}

/// Overwrites `path` with zeros of the same length and gives it back its modification time
/// (plus `later` seconds): only a decoder could notice.
fn garble(path: &Path, later: u64) {
    let meta = std::fs::metadata(path).unwrap();
    let mtime = meta.modified().unwrap() + std::time::Duration::from_secs(later);
    std::fs::write(path, vec![0u8; meta.len() as usize]).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(mtime).unwrap();
}

/// Flips the low bit of the last pixel in the cache file at `path` and makes its checksum good:
/// the file ends with the train pixels (the test pixels when it holds the test split alone),
/// then FNV-1a 64 of everything before it.
fn flip_last_pixel(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let body = bytes.len() - 8;
    bytes[body - 1] ^= 1;
    let mut h = Fnv1a64::default();
    h.update(&bytes[..body]);
    bytes[body..].copy_from_slice(&h.finish().to_le_bytes());
    std::fs::write(path, &bytes).unwrap();
}

#[test]
fn second_load_reads_the_cache_not_the_images() {
    let dir = small_folder("cache");
    let o = opts(None, None);
    let first = data::load(&dir.0, &o).unwrap();
    assert_eq!(first.shape(), [3, 4, 4]);
    let cache = folder::cache_file(&dir.0, &o, Part::All).unwrap().unwrap();
    assert!(cache.starts_with(std::env::var_os("GPU_AE_CACHE_DIR").unwrap()));
    assert!(cache.is_file(), "{} not written", cache.display());

    // A pixel changed in the cache file is what the next loads return.
    flip_last_pixel(&cache);
    let mut expected = first.clone();
    *expected.train.images.pixels.last_mut().unwrap() ^= 1;
    assert_eq!(data::load(&dir.0, &o).unwrap(), expected);
    assert_eq!(data::load_test(&dir.0, &o).unwrap().test, first.test);

    // Without the cache the images are decoded again.
    std::fs::remove_file(&cache).unwrap();
    assert_eq!(data::load(&dir.0, &o).unwrap(), first);
    assert!(cache.is_file(), "{} not rewritten", cache.display());
}

/// A file whose modification time changes is another key: decoded again.
#[test]
fn a_touched_file_is_decoded_again() {
    let dir = small_folder("cache-touched");
    let o = opts(Some(3), Some(4));
    data::load(&dir.0, &o).unwrap();
    let victim = dir.path("b/5.png");
    garble(&victim, 1);
    assert_contains(&error_for(data::load(&dir.0, &o), &victim), "cannot decode");
}

/// Issue 27 item 10: a file rewritten with the same length and its modification time put back
/// (as `touch -d` or a careful tool would) is decoded again, not served from the cache: its
/// status-change time is part of the key, and so is its inode (a file replaced by another).
#[test]
#[cfg(unix)]
fn a_file_rewritten_with_its_old_mtime_is_decoded_again() {
    let dir = small_folder("cache-rewritten");
    // Both splits cached, and the test split alone (decoded on its own when the shape is given).
    let (all, test_only) = (opts(None, None), opts(Some(3), Some(4)));
    data::load(&dir.0, &all).unwrap();
    data::load_test(&dir.0, &test_only).unwrap();
    // A test image's bytes changed in place, its modification time restored.
    let listing = listing::list_images(&dir.0).unwrap();
    let rel = listing
        .images
        .iter()
        .find(|rel| listing::is_test_by_hash(rel, 10))
        .unwrap();
    let victim = dir.path(rel);
    garble(&victim, 0);
    let test = data::load_test(&dir.0, &test_only).map(drop);
    assert_contains(&error_for(test, &victim), "cannot decode");
    assert_contains(
        &error_for(data::load(&dir.0, &all), &victim),
        "cannot decode",
    );
}

#[test]
fn corrupt_or_truncated_cache_files_are_ignored_and_rewritten() {
    let dir = small_folder("cache-corrupt");
    let o = opts(None, Some(2));
    let first = data::load(&dir.0, &o).unwrap();
    let cache = folder::cache_file(&dir.0, &o, Part::All).unwrap().unwrap();
    let good = std::fs::read(&cache).unwrap();
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 1;
    for damaged in [
        flipped,
        good[..good.len() / 2].to_vec(),
        good[..good.len() - 1].to_vec(),
        Vec::new(),
        b"hello".to_vec(),
    ] {
        std::fs::write(&cache, &damaged).unwrap();
        assert_eq!(data::load(&dir.0, &o).unwrap(), first);
        assert_eq!(std::fs::read(&cache).unwrap(), good, "not rewritten");
    }
}

/// A FIFO named like an image is ignored and counted as other files are (opening it would block
/// until something writes to it), and a FIFO at the cache file's path is replaced, not read.
#[cfg(unix)]
#[test]
fn fifos_in_the_folder_and_at_the_cache_path_are_never_opened() {
    use std::os::unix::fs::FileTypeExt;
    let mkfifo = |path: &Path| {
        let status = std::process::Command::new("mkfifo").arg(path).status();
        assert!(status.unwrap().success(), "mkfifo {}", path.display());
    };
    let dir = small_folder("fifo");
    let o = opts(None, None);
    let cache = folder::cache_file(&dir.0, &o, Part::All).unwrap().unwrap();
    std::fs::create_dir_all(cache.parent().unwrap()).unwrap();
    mkfifo(&cache);
    mkfifo(&dir.path("a/x.png"));
    let listing = listing::list_images(&dir.0).unwrap();
    assert_eq!((listing.images.len(), listing.ignored), (12, 1));
    let ds = data::load(&dir.0, &o).unwrap();
    assert_eq!(
        (ds.train.labels.len() + ds.test.labels.len(), ds.ignored),
        (12, 1)
    );
    assert!(
        cache.is_file(),
        "the FIFO at {} was not replaced",
        cache.display()
    );
    assert!(
        dir.path("a/x.png")
            .metadata()
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(data::load(&dir.0, &o).unwrap(), ds);
}

/// `load_test` with the channels and size given decodes only the test images; without them the
/// defaults need every image.
#[test]
fn the_test_split_alone_decodes_only_test_images() {
    let dir = small_folder("cache-test-only");
    let (train, test) = hash_split(&dir.0, 10);
    assert!(!test.is_empty());
    let victim = dir.path(&train[0]);
    std::fs::write(&victim, b"garbage").unwrap();
    let o = opts(Some(3), Some(4));
    let t = data::load_test(&dir.0, &o).unwrap();
    let expected: Vec<u8> = test
        .iter()
        .flat_map(|rel| decode::load_image(&std::fs::read(dir.path(rel)).unwrap(), 3, 4).unwrap())
        .collect();
    assert_eq!(t.test.images.pixels, expected);
    assert_eq!(t.classes, ["a", "b"]);
    // Cached on its own: the next load reads that file.
    let cache = folder::cache_file(&dir.0, &o, Part::Test).unwrap().unwrap();
    flip_last_pixel(&cache);
    let mut served = t.clone();
    *served.test.images.pixels.last_mut().unwrap() ^= 1;
    assert_eq!(data::load_test(&dir.0, &o).unwrap(), served);
    assert_contains(&error_for(data::load(&dir.0, &o), &victim), "cannot decode");
    assert_contains(
        &error_for(data::load_test(&dir.0, &opts(None, None)), &victim),
        "cannot decode",
    );
}
