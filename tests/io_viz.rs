//! Pictures: digit grid geometry and pixel mapping, scatter and line charts that are the stated
//! size and not blank, PNG round trips and errors, and pictures saved in the format their
//! extension names. Set GPU_AE_VIZ_OUT=<dir> to keep the sample
//! pictures (MNIST grid, a scatter of 10 000 test digits, loss curves) for viewing.

use std::path::{Path, PathBuf};

use gpu_ae::data;
use gpu_ae::pictures::viz::{self, Series};
use image::{DynamicImage, Rgb, RgbImage};

mod support;
use support::TempDir;

/// Saves `img` as `name` under GPU_AE_VIZ_OUT when that is set.
fn keep(name: &str, img: DynamicImage) {
    if let Some(dir) = std::env::var_os("GPU_AE_VIZ_OUT") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        viz::save_image(&dir.join(name), &img).unwrap();
    }
}

/// tab10, as the charts use it.
const BLUE: Rgb<u8> = Rgb([31, 119, 180]);
const ORANGE: Rgb<u8> = Rgb([255, 127, 14]);
const GREEN: Rgb<u8> = Rgb([44, 160, 44]);

fn count(img: &RgbImage, color: Rgb<u8>) -> usize {
    img.pixels().filter(|&&p| p == color).count()
}

fn distinct_colours(img: &RgbImage) -> usize {
    let mut seen: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    seen.sort();
    seen.dedup();
    seen.len()
}

/// Dark (text-like) pixels in the rectangle.
fn dark_in(img: &RgbImage, x0: u32, y0: u32, x1: u32, y1: u32) -> usize {
    (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&c| c < 100))
        .count()
}

#[test]
fn grid_exact_size_and_pixel_mapping() {
    // 3 images of 2×4 (h×w) in a 2×2 grid: the fourth cell stays dark.
    let (h, w) = (2, 4);
    let mut images = vec![0.0f32; 3 * h * w];
    images[0] = 1.0; // image 0, (0, 0)
    images[3] = 0.5; // image 0, (0, 3)
    images[h * w + 4] = 2.0; // image 1, (1, 0): clamped to 255
    images[h * w + 5] = -1.0; // clamped to 0
    images[2 * h * w + 7] = 0.2; // image 2, (1, 3)
    images[2 * h * w + 6] = f32::NAN; // black
    let g = viz::image_grid(&images, 1, h, w, 2, 2, 1, 0).into_luma8();
    assert_eq!((g.width(), g.height()), (2 * w as u32, 2 * h as u32));
    let px = |x: u32, y: u32| g.get_pixel(x, y).0[0];
    assert_eq!(px(0, 0), 255);
    assert_eq!(px(3, 0), 128);
    assert_eq!(px(4, 1), 255); // image 1 is the top-right cell
    assert_eq!(px(5, 1), 0);
    assert_eq!(px(3, 3), 51); // image 2 is the bottom-left cell: 0.2 → 51
    assert_eq!(px(2, 3), 0);
    let lit = g.pixels().filter(|p| p.0[0] > 0).count();
    assert_eq!(lit, 4);
    // The empty fourth cell is dark.
    assert!((4..8).all(|x| (2..4).all(|y| px(x, y) == 0)));
}

#[test]
fn grid_scale_and_padding() {
    let (h, w, rows, cols, scale, pad) = (3, 5, 2, 3, 4, 2);
    let images: Vec<f32> = (0..5 * h * w).map(|i| (i % 7) as f32 / 6.0).collect();
    let g = viz::image_grid(&images, 1, h, w, rows, cols, scale, pad).into_luma8();
    assert_eq!(g.width() as usize, cols * w * scale + (cols + 1) * pad);
    assert_eq!(g.height() as usize, rows * h * scale + (rows + 1) * pad);
    let px = |x: usize, y: usize| g.get_pixel(x as u32, y as u32).0[0];
    let frame = px(0, 0);
    assert!(
        (40..120).contains(&frame),
        "padding is a mid-dark grey, got {frame}"
    );
    for i in 0..5 {
        let (r, c) = (i / cols, i % cols);
        let (x0, y0) = (pad + c * (w * scale + pad), pad + r * (h * scale + pad));
        // Gaps left of and above each cell are padding.
        assert_eq!(px(x0 - 1, y0), frame);
        assert_eq!(px(x0, y0 - 1), frame);
        for y in 0..h * scale {
            for x in 0..w * scale {
                let v = images[i * h * w + (y / scale) * w + x / scale];
                assert_eq!(
                    px(x0 + x, y0 + y),
                    (v * 255.0).round() as u8,
                    "image {i} at ({x}, {y})"
                );
            }
        }
    }
    // Cell 6 (no image) is dark.
    let (x0, y0) = (pad + 2 * (w * scale + pad), pad + (h * scale + pad));
    assert_eq!(px(x0, y0), 0);
    assert_eq!(px(x0 + w * scale - 1, y0 + h * scale - 1), 0);
}

#[test]
fn grid_of_real_digits() {
    let test = data::load_test(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/mnist"),
        &Default::default(),
    )
    .unwrap()
    .test;
    let images: Vec<f32> = test.images.pixels[..64 * 784]
        .iter()
        .map(|&p| p as f32 / 255.0)
        .collect();
    let g = viz::image_grid(&images, 1, 28, 28, 8, 8, 2, 2).into_luma8();
    assert_eq!((g.width(), g.height()), (8 * 56 + 18, 8 * 56 + 18));
    keep("digits.png", DynamicImage::ImageLuma8(g));
}

/// A 2-D embedding of the MNIST test digits that needs no model: (ink centre of mass in x,
/// amount of ink); digits cluster visibly by class.
fn mnist_features() -> (Vec<[f32; 2]>, Vec<u32>) {
    let test = data::load_test(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/mnist"),
        &Default::default(),
    )
    .unwrap()
    .test;
    let points = (0..test.images.count)
        .map(|i| {
            let img = test.images.image(i);
            let mass: f32 = img.iter().map(|&p| p as f32).sum();
            let cx: f32 = img
                .iter()
                .enumerate()
                .map(|(j, &p)| (j % 28) as f32 * p as f32)
                .sum();
            let cy: f32 = img
                .iter()
                .enumerate()
                .map(|(j, &p)| (j / 28) as f32 * p as f32)
                .sum();
            [(cx - cy) / mass, mass / 255.0 / 100.0]
        })
        .collect();
    (points, test.labels)
}

#[test]
fn scatter_of_mnist_features() {
    let (points, labels) = mnist_features();
    let img = viz::scatter(
        &points,
        &labels,
        &[],
        "Test digits: ink centre vs ink mass",
        "x - y centre of ink",
        "ink (x100 px)",
    );
    assert_eq!((img.width(), img.height()), (800, 700));
    assert!(
        distinct_colours(&img) > 100,
        "points are blended, text and axes drawn"
    );
    // The legend column right of the plot holds a full-colour swatch for each label.
    let legend = |c: Rgb<u8>| {
        (700..800)
            .flat_map(|x| (0..700).map(move |y| (x, y)))
            .any(|(x, y)| *img.get_pixel(x, y) == c)
    };
    assert!(legend(BLUE) && legend(ORANGE) && legend(GREEN));
    // Title at the top, tick labels at the bottom.
    assert!(dark_in(&img, 0, 0, 800, 50) > 200);
    assert!(dark_in(&img, 0, 640, 800, 700) > 200);
    keep("scatter.png", DynamicImage::ImageRgb8(img));
}

#[test]
fn scatter_edge_cases_do_not_panic() {
    for (points, labels) in [
        (vec![], vec![]),
        (vec![[1.0, 1.0]], vec![3]),
        (vec![[2.0, 5.0], [2.0, 5.0]], vec![1, 2]),
        (
            vec![
                [f32::NAN, 1.0],
                [0.0, f32::INFINITY],
                [1e30, -1e30],
                [-1e30, 1e30],
            ],
            vec![0, 1, 200],
        ),
        (vec![[1e-7, 3e-7], [2e-7, 1e-7]], vec![]),
    ] {
        let img = viz::scatter(&points, &labels, &[], "", "", "");
        assert_eq!((img.width(), img.height()), (800, 700));
        assert!(distinct_colours(&img) > 2);
    }
    // A lone point is drawn in its label's colour.
    let img = viz::scatter(&[[0.3, -0.7]], &[2], &[], "one", "x", "y");
    assert!(count(&img, GREEN) > 60, "legend swatch");
    let greenish = (0..700)
        .flat_map(|x| (0..700).map(move |y| (x, y)))
        .map(|(x, y)| img.get_pixel(x, y).0)
        .filter(|p| p[1] as i32 > p[0] as i32 + 40 && p[1] as i32 > p[2] as i32 + 40)
        .count();
    assert!(greenish > 10, "the point, {greenish} pixels");
}

fn loss_curves(epochs: usize) -> Vec<Series> {
    let curve = |a: f32, b: f32| {
        (1..=epochs)
            .map(|e| (e as f32, a + b / (e as f32 + 1.0)))
            .collect::<Vec<_>>()
    };
    vec![
        Series {
            name: "train".into(),
            points: curve(0.020, 0.050),
        },
        Series {
            name: "test".into(),
            points: curve(0.023, 0.045),
        },
    ]
}

#[test]
fn line_chart_of_losses() {
    let img = viz::line_chart(
        &loss_curves(20),
        "Reconstruction loss (BCE per pixel)",
        "epoch",
        "loss",
    );
    assert_eq!((img.width(), img.height()), (800, 500));
    assert!(count(&img, BLUE) > 300, "train line");
    assert!(count(&img, ORANGE) > 300, "test line");
    assert!(dark_in(&img, 0, 0, 800, 50) > 200, "title");
    keep("losses.png", DynamicImage::ImageRgb8(img));
    keep(
        "losses-long.png",
        DynamicImage::ImageRgb8(viz::line_chart(
            &loss_curves(300),
            "300 epochs",
            "epoch",
            "loss",
        )),
    );
    // Rising curves fill the top-right corner, so the legend goes elsewhere.
    let rising: Vec<Series> = loss_curves(12)
        .into_iter()
        .map(|s| Series {
            name: format!("{} accuracy", s.name),
            points: s.points.iter().map(|&(x, y)| (x, 1.0 - 10.0 * y)).collect(),
        })
        .collect();
    let img = viz::line_chart(&rising, "Rising", "epoch", "accuracy");
    let legend_top_right = dark_in(&img, 560, 60, 770, 110);
    assert!(
        legend_top_right < 20,
        "legend moved away from the curves ({legend_top_right} dark pixels)"
    );
    keep("rising.png", DynamicImage::ImageRgb8(img));
}

#[test]
fn line_chart_single_points_and_edge_cases() {
    let one = vec![
        Series {
            name: "train".into(),
            points: vec![(1.0, 0.031)],
        },
        Series {
            name: "test".into(),
            points: vec![(1.0, 0.034)],
        },
    ];
    let img = viz::line_chart(&one, "After one epoch", "epoch", "loss");
    assert_eq!((img.width(), img.height()), (800, 500));
    // Markers (plus the legend samples) in both colours.
    assert!(count(&img, BLUE) > 60, "{}", count(&img, BLUE));
    assert!(count(&img, ORANGE) > 60);
    keep("one-epoch.png", DynamicImage::ImageRgb8(img));
    let broken = vec![Series {
        name: "nan".into(),
        points: vec![
            (1.0, 1.0),
            (2.0, f32::NAN),
            (3.0, 0.5),
            (f32::INFINITY, 1.0),
        ],
    }];
    for series in [
        vec![],
        vec![Series {
            name: "empty".into(),
            points: vec![],
        }],
        broken,
    ] {
        let img = viz::line_chart(&series, "edge", "x", "y");
        assert_eq!((img.width(), img.height()), (800, 500));
        assert!(distinct_colours(&img) > 2);
    }
}

/// A grid written as PNG holds exactly its bytes; a failed save leaves nothing behind.
#[test]
fn png_writes_exact_pixels_and_a_failed_save_leaves_nothing() {
    let dir = TempDir::new("png");
    let (h, w) = (3, 4);
    let images: Vec<f32> = (0..h * w).map(|i| i as f32 / 11.0).collect();
    let g = viz::image_grid(&images, 1, h, w, 1, 1, 1, 0).into_luma8();
    let path = dir.0.join("grid.png");
    viz::save_image(&path, &DynamicImage::ImageLuma8(g.clone())).unwrap();
    let read = image::open(&path).unwrap().into_luma8();
    assert_eq!((read.height() as usize, read.width() as usize), (h, w));
    assert_eq!(read.into_raw(), g.clone().into_raw());

    let nowhere = dir.0.join("no-dir").join("x.png");
    assert!(viz::save_image(&nowhere, &DynamicImage::ImageLuma8(g)).is_err());
    assert_eq!(dir.entries(), ["grid.png"]);
}

/// PNG, JPEG and BMP by extension, in any case; other extensions, or none, are refused with the
/// accepted ones named and nothing written.
#[test]
fn pictures_are_written_in_the_format_their_extension_names() {
    let dir = TempDir::new("formats");
    let images: Vec<f32> = (0..28 * 28 * 4).map(|i| (i % 97) as f32 / 96.0).collect();
    let grey = viz::image_grid(&images, 1, 28, 28, 2, 2, 1, 2);
    let rgba = DynamicImage::ImageRgba8(grey.to_rgba8());
    for (name, img, format) in [
        ("a.png", &grey, image::ImageFormat::Png),
        ("b.jpg", &grey, image::ImageFormat::Jpeg),
        ("c.JPEG", &rgba, image::ImageFormat::Jpeg),
        ("d.bmp", &grey, image::ImageFormat::Bmp),
        ("e.Png", &rgba, image::ImageFormat::Png),
    ] {
        let path = dir.0.join(name);
        viz::check_image_path(&path).unwrap();
        viz::save_image(&path, img).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(image::guess_format(&bytes).unwrap(), format, "{name}");
        let back = image::load_from_memory_with_format(&bytes, format).unwrap();
        assert_eq!((back.width(), back.height()), (62, 62), "{name}");
        if format == image::ImageFormat::Jpeg {
            assert!(!back.color().has_alpha(), "{name}");
            // Quality 95: on average within a grey level or two of the original.
            let diff: u32 = back
                .to_luma8()
                .pixels()
                .zip(grey.to_luma8().pixels())
                .map(|(a, b)| u32::from(a.0[0].abs_diff(b.0[0])))
                .sum();
            let mean = diff as f64 / (62.0 * 62.0);
            assert!(mean < 2.0, "{name}: mean difference {mean}");
        } else {
            assert_eq!(back.to_luma8(), grey.to_luma8(), "{name}");
        }
    }
    for name in ["f.gif", "g", "h.png.txt", ".png"] {
        let path = dir.0.join(name);
        let msg = viz::check_image_path(&path)
            .unwrap_err()
            .message()
            .to_string();
        assert!(
            msg.starts_with(&path.display().to_string())
                && msg.ends_with("name it .png, .jpg, .jpeg or .bmp"),
            "{msg}"
        );
        assert_eq!(viz::save_image(&path, &grey).unwrap_err().message(), msg);
        assert!(!path.exists(), "{name}");
    }
    let mut left: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["a.png", "b.jpg", "c.JPEG", "d.bmp", "e.Png"]);
}
