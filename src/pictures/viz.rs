//! Pictures a person would rather look at than read: grids of grey or colour images, labelled 2-D
//! scatter plots of latent codes, and line charts of losses, drawn in plain Rust (a built-in 5×7
//! bitmap font, no font or plotting crates), saved as PNG, JPEG or BMP as the file's extension
//! says, and PNGs read back as grey or RGB planes.

use std::io::Cursor;
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, GrayImage, ImageFormat, Rgb, RgbImage};

use crate::bail;
use crate::error::{Error, Result};
use crate::files::write_atomic;

/// Grey of the frame and gaps between image cells (empty cells stay black).
const GRID_PADDING_GREY: u8 = 72;

/// Grid of rows×cols cells of h×w images with `channels` planes (1: grey, 3: RGB; values in
/// `[0, 1]`, `[count, channels, h, w]`, count ≤ rows·cols, extra images ignored; empty cells
/// dark), each enlarged `scale`× (nearest), separated and framed by `padding` pixels of a
/// mid-dark grey. The picture is `w·scale·cols + padding·(cols+1)` wide and
/// `h·scale·rows + padding·(rows+1)` high, so with padding 0 and scale 1 exactly (h·rows)×(w·cols);
/// grey for one channel, RGB for three.
#[allow(clippy::too_many_arguments)]
pub fn image_grid(
    images: &[f32],
    channels: usize,
    h: usize,
    w: usize,
    rows: usize,
    cols: usize,
    scale: usize,
    padding: usize,
) -> DynamicImage {
    assert!(
        channels == 1 || channels == 3,
        "pictures have 1 or 3 channels"
    );
    let scale = scale.max(1);
    let (cell_w, cell_h) = (w * scale, h * scale);
    let width = cell_w * cols + padding * (cols + 1);
    let height = cell_h * rows + padding * (rows + 1);
    let mut bytes = vec![GRID_PADDING_GREY; width * height * channels];
    let plane = h * w;
    let per_image = channels * plane;
    for r in 0..rows {
        for c in 0..cols {
            let (x0, y0) = (
                padding + c * (cell_w + padding),
                padding + r * (cell_h + padding),
            );
            let i = r * cols + c;
            let pixels = images
                .get(i * per_image..(i + 1) * per_image)
                .filter(|_| per_image > 0);
            for y in 0..cell_h {
                for x in 0..cell_w {
                    let at = ((y0 + y) * width + x0 + x) * channels;
                    let src = (y / scale) * w + x / scale;
                    for k in 0..channels {
                        bytes[at + k] = pixels.map_or(0, |p| to_byte(p[k * plane + src]));
                    }
                }
            }
        }
    }
    let (width, height) = (width as u32, height as u32);
    if channels == 1 {
        DynamicImage::ImageLuma8(
            GrayImage::from_raw(width, height, bytes).expect("sized for the picture"),
        )
    } else {
        DynamicImage::ImageRgb8(
            RgbImage::from_raw(width, height, bytes).expect("sized for the picture"),
        )
    }
}

/// [0,1] → 0..=255, clamped; NaN is black.
fn to_byte(v: f32) -> u8 {
    if v.is_nan() {
        0
    } else {
        (v.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

/// Scatter plot (800×700 RGB, white background) of 2-D points coloured by label (10-colour
/// palette, labels 0..9; other labels, [`crate::data::UNLABELLED`] and points without a label
/// are black), with axes, tick labels, a title and a legend: `names[i]` for label i (the first
/// ten), or "0".."9" when `names` is empty. Non-finite points are skipped.
pub fn scatter(
    points: &[[f32; 2]],
    labels: &[u32],
    names: &[String],
    title: &str,
    x_label: &str,
    y_label: &str,
) -> RgbImage {
    let entries: Vec<String> = if names.is_empty() {
        (0..PALETTE.len()).map(|d| d.to_string()).collect()
    } else {
        names.iter().take(PALETTE.len()).cloned().collect()
    };
    let legend_width = entries
        .iter()
        .map(|e| 22 + text_width(e, TEXT_SCALE) + 24)
        .max()
        .unwrap_or(0)
        .max(LEGEND_WIDTH);
    let (width, height) = (800, 700);
    let mut img = RgbImage::from_pixel(width, height, WHITE);
    let finite: Vec<(usize, [f64; 2])> = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p[0].is_finite() && p[1].is_finite())
        .map(|(i, p)| (i, [p[0] as f64, p[1] as f64]))
        .collect();
    let xs = finite.iter().map(|(_, p)| p[0]);
    let ys = finite.iter().map(|(_, p)| p[1]);
    let frame = Frame::layout(
        width as i32,
        height as i32,
        legend_width,
        range(xs, 0.04),
        range(ys, 0.04),
        false,
    );
    frame.draw_axes(&mut img, title, x_label, y_label);
    let radius = match finite.len() {
        0..=500 => 3.5,
        501..=5000 => 2.5,
        5001..=20000 => 2.0,
        _ => 1.5,
    };
    for &(i, [x, y]) in &finite {
        let color = labels
            .get(i)
            .and_then(|&l| PALETTE.get(l as usize))
            .copied()
            .unwrap_or(BLACK);
        disc(&mut img, frame.px(x), frame.py(y), radius, color, 0.75);
    }
    // Legend to the right of the plot.
    let (lx, ly) = (frame.right + 16, frame.top + 4);
    for (i, (entry, &color)) in entries.iter().zip(&PALETTE).enumerate() {
        let y = ly + i as i32 * 26;
        disc(&mut img, (lx + 8) as f64, (y + 7) as f64, 6.0, color, 1.0);
        draw_text(&mut img, lx + 22, y, entry, TEXT_SCALE, INK);
    }
    img
}

/// A named sequence of (x, y) points for [`line_chart`].
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f32, f32)>,
}

/// Line chart (800×500 RGB) of several series (e.g. train and test loss per epoch) with axes,
/// ticks, a title and a legend; a single point per series still draws (as a marker). When every
/// x is a whole number (epochs) the x ticks are whole numbers too. Non-finite points break the
/// line and are skipped.
pub fn line_chart(series: &[Series], title: &str, x_label: &str, y_label: &str) -> RgbImage {
    let (width, height) = (800, 500);
    let mut img = RgbImage::from_pixel(width, height, WHITE);
    let finite = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
    };
    let integer_x = finite().all(|p| p.0.fract() == 0.0);
    let xs = || finite().map(|p| p.0 as f64);
    let single_x = xs().next().filter(|&x0| xs().all(|x| x == x0));
    let x_range = match single_x {
        // One epoch: show it between its neighbours.
        Some(x) if integer_x => (x - 1.0, x + 1.0),
        _ => range(xs(), 0.0),
    };
    let frame = Frame::layout(
        width as i32,
        height as i32,
        0,
        x_range,
        range(finite().map(|p| p.1 as f64), 0.05),
        integer_x,
    );
    frame.draw_axes(&mut img, title, x_label, y_label);
    let mut drawn = Vec::new();
    for (k, s) in series.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        let pts: Vec<Option<(f64, f64)>> = s
            .points
            .iter()
            .map(|&(x, y)| {
                (x.is_finite() && y.is_finite()).then(|| (frame.px(x as f64), frame.py(y as f64)))
            })
            .collect();
        for pair in pts.windows(2) {
            if let [Some(a), Some(b)] = pair {
                segment(&mut img, *a, *b, 1.25, color);
            }
        }
        let n = pts.iter().flatten().count();
        let marker = marker_radius(n);
        if let Some(r) = marker {
            for &(x, y) in pts.iter().flatten() {
                disc(&mut img, x, y, r, color, 1.0);
            }
        }
        drawn.push(pts);
    }
    draw_legend(&mut img, &frame, series, &drawn);
    img
}

/// Markers on every point of short series (bigger for a lone point), none on long ones.
fn marker_radius(points: usize) -> Option<f64> {
    match points {
        0..=3 => Some(4.5),
        4..=60 => Some(3.5),
        _ => None,
    }
}

/// Legend box in the corner of the plot that hides the least of the `drawn` lines (pixel
/// positions; top-right on ties): per series a line sample (with a marker when the series has
/// them), then the name.
fn draw_legend(
    img: &mut RgbImage,
    frame: &Frame,
    series: &[Series],
    drawn: &[Vec<Option<(f64, f64)>>],
) {
    if series.is_empty() {
        return;
    }
    let line_h = 22;
    let text_w = series
        .iter()
        .map(|s| text_width(&s.name, TEXT_SCALE))
        .max()
        .unwrap_or(0);
    let (box_w, box_h) = (44 + text_w + 10, series.len() as i32 * line_h + 10);
    let (left, top) = (frame.left + 10, frame.top + 10);
    let (right, bottom) = (frame.right - box_w - 10, frame.bottom - box_h - 10);
    let corners = [(right, top), (left, top), (right, bottom), (left, bottom)];
    let hidden = |&(x0, y0): &(i32, i32)| {
        let inside = |(x, y): (f64, f64)| {
            x >= x0 as f64 && x <= (x0 + box_w) as f64 && y >= y0 as f64 && y <= (y0 + box_h) as f64
        };
        // Points along each segment, 16 per segment.
        drawn
            .iter()
            .flat_map(|pts| pts.windows(2))
            .filter_map(|w| Some((w[0]?, w[1].or(w[0])?)))
            .chain(drawn.iter().flatten().flatten().map(|&p| (p, p)))
            .flat_map(|(a, b)| {
                (0..16).map(move |i| {
                    let t = i as f64 / 15.0;
                    (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1))
                })
            })
            .filter(|&p| inside(p))
            .count()
    };
    let (x0, y0) = corners
        .iter()
        .copied()
        .min_by_key(hidden)
        .unwrap_or((right, top));
    fill_rect(img, x0, y0, box_w, box_h, WHITE);
    stroke_rect(img, x0, y0, box_w, box_h, GRID_DARK);
    for (k, s) in series.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        let y = y0 + 5 + k as i32 * line_h;
        let mid = (y + 7) as f64 + 0.5;
        segment(
            img,
            ((x0 + 8) as f64, mid),
            ((x0 + 36) as f64, mid),
            1.25,
            color,
        );
        let n = drawn.get(k).map_or(0, |pts| pts.iter().flatten().count());
        if let Some(r) = marker_radius(n) {
            disc(img, (x0 + 22) as f64, mid, r.min(3.5), color, 1.0);
        }
        draw_text(img, x0 + 44, y, &s.name, TEXT_SCALE, INK);
    }
}

/// The extensions [`save_image`] knows, for messages.
const PICTURE_EXTENSIONS: &str = ".png, .jpg, .jpeg or .bmp";

/// JPEG quality of [`save_image`]: digits keep sharp edges without the file growing much.
const JPEG_QUALITY: u8 = 95;

/// The format a picture file's extension names (case-insensitive): `.png`, `.jpg`/`.jpeg` or
/// `.bmp`; anything else, or no extension, is an error naming the file.
fn picture_format(path: &Path) -> Result<ImageFormat> {
    let Some(ext) = path.extension() else {
        bail!(
            "{}: no extension to choose the picture format by; name it {PICTURE_EXTENSIONS}",
            path.display()
        );
    };
    let ext = ext.to_string_lossy().to_ascii_lowercase();
    Ok(match ext.as_str() {
        "png" => ImageFormat::Png,
        "jpg" | "jpeg" => ImageFormat::Jpeg,
        "bmp" => ImageFormat::Bmp,
        _ => bail!(
            "{}: cannot write .{ext} pictures; name it {PICTURE_EXTENSIONS}",
            path.display()
        ),
    })
}

/// Fails, naming the file and the accepted extensions, when [`save_image`] would refuse `path`;
/// commands call it before any work.
pub fn check_image_path(path: &Path) -> Result<()> {
    picture_format(path).map(|_| ())
}

/// Encodes `img` in the format `path`'s extension names (see [`check_image_path`]) and writes
/// it atomically (no partial file on error). JPEGs are quality 95, grey or RGB: alpha is
/// dropped, since JPEG has none.
pub fn save_image(path: &Path, img: &DynamicImage) -> Result<()> {
    let format = picture_format(path)?;
    let mut bytes = Vec::new();
    let encoded = if format == ImageFormat::Jpeg {
        let encoder = JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY);
        if img.color().has_color() {
            img.to_rgb8().write_with_encoder(encoder)
        } else {
            img.to_luma8().write_with_encoder(encoder)
        }
    } else {
        img.write_to(&mut Cursor::new(&mut bytes), format)
    };
    encoded
        .map_err(|e| Error::msg(format!("{}: cannot encode {format:?}: {e}", path.display())))?;
    write_atomic(path, &bytes)
}

// ---------------------------------------------------------------------------------------------
// Plot frame: layout, axes and ticks.

const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
/// Text colour.
const INK: Rgb<u8> = Rgb([34, 34, 34]);
/// Plot border and tick marks.
const GRID_DARK: Rgb<u8> = Rgb([90, 90, 90]);
/// Grid lines at the ticks.
const GRID_LIGHT: Rgb<u8> = Rgb([228, 228, 228]);
/// Room right of a scatter plot for its legend, at least.
const LEGEND_WIDTH: i32 = 70;
/// Text is drawn with each font pixel as a 2×2 block.
const TEXT_SCALE: i32 = 2;

/// Matplotlib's "tab10" palette: label `i` gets `PALETTE[i]`.
const PALETTE: [Rgb<u8>; 10] = [
    Rgb([31, 119, 180]),
    Rgb([255, 127, 14]),
    Rgb([44, 160, 44]),
    Rgb([214, 39, 40]),
    Rgb([148, 103, 189]),
    Rgb([140, 86, 75]),
    Rgb([227, 119, 194]),
    Rgb([127, 127, 127]),
    Rgb([188, 189, 34]),
    Rgb([23, 190, 207]),
];

/// (min, max) of the values widened by `pad` × span on each side; a sensible range when the
/// values are all equal or absent.
fn range(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return (0.0, 1.0);
    }
    if lo == hi {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - d, hi + d);
    }
    let span = hi - lo;
    (lo - pad * span, hi + pad * span)
}

/// An axis from `lo` to `hi` with ticks at the multiples of `step` (1, 2 or 5 × 10^k) between.
#[derive(Debug, Clone, Copy)]
struct Axis {
    lo: f64,
    hi: f64,
    step: f64,
}

impl Axis {
    fn fit((min, max): (f64, f64), target_ticks: usize, integer: bool) -> Axis {
        let raw = (max - min) / target_ticks.max(1) as f64;
        let mag = 10f64.powf(raw.log10().floor());
        let norm = raw / mag;
        let nice = if norm <= 1.0 {
            1.0
        } else if norm <= 2.0 {
            2.0
        } else if norm <= 5.0 {
            5.0
        } else {
            10.0
        };
        let mut step = nice * mag;
        if integer {
            step = step.max(1.0);
        }
        // End on a tick when that wastes little room, else where the data ends.
        let slack = 0.15 * (max - min);
        let (lo, hi) = ((min / step).floor() * step, (max / step).ceil() * step);
        Axis {
            lo: if min - lo <= slack { lo } else { min },
            hi: if hi - max <= slack { hi } else { max },
            step,
        }
    }

    /// Tick positions (a handful; the loop is bounded regardless of rounding).
    fn ticks(&self) -> Vec<f64> {
        let first = (self.lo / self.step - 1e-6).ceil() as i64;
        (first..first.saturating_add(64))
            .map(|k| k as f64 * self.step)
            .take_while(|&v| v <= self.hi + self.step * 1e-6)
            .collect()
    }

    fn label(&self, v: f64) -> String {
        format_tick(v, self.step)
    }

    /// Widest tick label in pixels.
    fn label_width(&self) -> i32 {
        self.ticks()
            .iter()
            .map(|&v| text_width(&self.label(v), TEXT_SCALE))
            .max()
            .unwrap_or(0)
    }
}

/// A tick value printed with as many decimals as its step needs; scientific notation for very
/// large or very small scales.
fn format_tick(v: f64, step: f64) -> String {
    if (v / step).abs() < 1e-6 {
        return "0".to_string();
    }
    let step_exp = (step.log10() + 1e-9).floor() as i32;
    let v_exp = (v.abs().log10() + 1e-9).floor() as i32;
    if (-4..6).contains(&step_exp) && v_exp < 6 {
        format!("{:.*}", (-step_exp).max(0) as usize, v)
    } else {
        format!("{:.*e}", (v_exp - step_exp).max(0) as usize, v)
    }
}

/// Where the plot area sits in the image and which data ranges it shows.
struct Frame {
    left: i32,
    top: i32,
    right: i32,
    bottom: i32,
    x: Axis,
    y: Axis,
}

impl Frame {
    /// Plot area of a `width`×`height` image with `legend` pixels kept free on the right; the
    /// left margin fits the y tick labels, and the x ticks are thinned until their labels fit.
    fn layout(
        width: i32,
        height: i32,
        legend: i32,
        x_range: (f64, f64),
        y_range: (f64, f64),
        integer_x: bool,
    ) -> Frame {
        let glyph_h = 7 * TEXT_SCALE;
        let y = Axis::fit(y_range, (height as usize / 90).max(2), false);
        let left = 12 + glyph_h + 12 + y.label_width() + 10;
        let right = width - 20 - legend;
        let (top, bottom) = (54, height - (12 + glyph_h + 12 + glyph_h + 14));
        let mut x = Axis::fit(x_range, 8, integer_x);
        for target in (2..8).rev() {
            let spacing = (right - left) as f64 * x.step / (x.hi - x.lo);
            if spacing >= (x.label_width() + 16) as f64 {
                break;
            }
            x = Axis::fit(x_range, target, integer_x);
        }
        Frame {
            left,
            top,
            right,
            bottom,
            x,
            y,
        }
    }

    fn px(&self, x: f64) -> f64 {
        self.left as f64
            + (x - self.x.lo) / (self.x.hi - self.x.lo) * (self.right - self.left) as f64
    }

    fn py(&self, y: f64) -> f64 {
        self.bottom as f64
            - (y - self.y.lo) / (self.y.hi - self.y.lo) * (self.bottom - self.top) as f64
    }

    /// Grid, border, ticks with labels, title (bold, centred above) and axis labels.
    fn draw_axes(&self, img: &mut RgbImage, title: &str, x_label: &str, y_label: &str) {
        let (w, h) = (self.right - self.left, self.bottom - self.top);
        let glyph_h = 7 * TEXT_SCALE;
        for v in self.x.ticks() {
            let x = self.px(v).round() as i32;
            fill_rect(img, x, self.top, 1, h, GRID_LIGHT);
            fill_rect(img, x, self.bottom, 1, 6, GRID_DARK);
            let label = self.x.label(v);
            let tw = text_width(&label, TEXT_SCALE);
            draw_text(img, x - tw / 2, self.bottom + 10, &label, TEXT_SCALE, INK);
        }
        for v in self.y.ticks() {
            let y = self.py(v).round() as i32;
            fill_rect(img, self.left, y, w, 1, GRID_LIGHT);
            fill_rect(img, self.left - 6, y, 6, 1, GRID_DARK);
            let label = self.y.label(v);
            let tw = text_width(&label, TEXT_SCALE);
            draw_text(
                img,
                self.left - 10 - tw,
                y - glyph_h / 2,
                &label,
                TEXT_SCALE,
                INK,
            );
        }
        stroke_rect(img, self.left, self.top, w + 1, h + 1, GRID_DARK);

        let width = img.width() as i32;
        let title_scale = if text_width(title, TEXT_SCALE) <= width - 20 {
            TEXT_SCALE
        } else {
            1
        };
        let tw = text_width(title, title_scale);
        let tx = (width - tw) / 2;
        draw_text(img, tx, 18, title, title_scale, INK);
        draw_text(img, tx + 1, 18, title, title_scale, INK);

        let xw = text_width(x_label, TEXT_SCALE);
        let x_label_y = self.bottom + 10 + glyph_h + 12;
        draw_text(
            img,
            self.left + (w - xw) / 2,
            x_label_y,
            x_label,
            TEXT_SCALE,
            INK,
        );
        let yw = text_width(y_label, TEXT_SCALE);
        draw_text_up(img, 12, self.top + (h - yw) / 2, y_label, TEXT_SCALE, INK);
    }
}

// ---------------------------------------------------------------------------------------------
// Raster primitives (all clip to the image).

fn blend(img: &mut RgbImage, x: i32, y: i32, color: Rgb<u8>, alpha: f64) {
    if x < 0 || y < 0 || x >= img.width() as i32 || y >= img.height() as i32 || alpha <= 0.0 {
        return;
    }
    let a = alpha.min(1.0);
    let p = img.get_pixel_mut(x as u32, y as u32);
    for c in 0..3 {
        p.0[c] = (p.0[c] as f64 * (1.0 - a) + color.0[c] as f64 * a).round() as u8;
    }
}

fn fill_rect(img: &mut RgbImage, x: i32, y: i32, w: i32, h: i32, color: Rgb<u8>) {
    for yy in y..y + h {
        for xx in x..x + w {
            blend(img, xx, yy, color, 1.0);
        }
    }
}

/// 1-pixel outline of the `w`×`h` rectangle at (x, y).
fn stroke_rect(img: &mut RgbImage, x: i32, y: i32, w: i32, h: i32, color: Rgb<u8>) {
    fill_rect(img, x, y, w, 1, color);
    fill_rect(img, x, y + h - 1, w, 1, color);
    fill_rect(img, x, y, 1, h, color);
    fill_rect(img, x + w - 1, y, 1, h, color);
}

/// Anti-aliased filled disc of radius `r` centred at (cx, cy) (pixel centres at +0.5).
fn disc(img: &mut RgbImage, cx: f64, cy: f64, r: f64, color: Rgb<u8>, alpha: f64) {
    let (x0, x1) = ((cx - r - 1.0).floor() as i32, (cx + r + 1.0).ceil() as i32);
    let (y0, y1) = ((cy - r - 1.0).floor() as i32, (cy + r + 1.0).ceil() as i32);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let d = ((x as f64 + 0.5 - cx).powi(2) + (y as f64 + 0.5 - cy).powi(2)).sqrt();
            let coverage = (r + 0.5 - d).clamp(0.0, 1.0);
            blend(img, x, y, color, alpha * coverage);
        }
    }
}

/// Anti-aliased line from `a` to `b`, `half_width` pixels either side, with round ends.
fn segment(img: &mut RgbImage, a: (f64, f64), b: (f64, f64), half_width: f64, color: Rgb<u8>) {
    let pad = half_width + 1.0;
    let (x0, x1) = (
        (a.0.min(b.0) - pad).floor() as i32,
        (a.0.max(b.0) + pad).ceil() as i32,
    );
    let (y0, y1) = (
        (a.1.min(b.1) - pad).floor() as i32,
        (a.1.max(b.1) + pad).ceil() as i32,
    );
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
            let t = if len2 > 0.0 {
                (((px - a.0) * dx + (py - a.1) * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let d = ((px - a.0 - t * dx).powi(2) + (py - a.1 - t * dy).powi(2)).sqrt();
            let coverage = (half_width + 0.5 - d).clamp(0.0, 1.0);
            blend(img, x, y, color, coverage);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Text: a 5×7 bitmap font covering printable ASCII, drawn with each font pixel as a
// `scale`×`scale` block; characters advance 6 font pixels.

/// Width in pixels of `text` drawn at `scale`.
fn text_width(text: &str, scale: i32) -> i32 {
    let n = text.chars().count() as i32;
    if n == 0 { 0 } else { (n * 6 - 1) * scale }
}

/// Draws `text` with its top-left corner at (x, y).
fn draw_text(img: &mut RgbImage, x: i32, y: i32, text: &str, scale: i32, color: Rgb<u8>) {
    for_each_text_pixel(text, |tx, ty| {
        fill_rect(img, x + tx * scale, y + ty * scale, scale, scale, color);
    });
}

/// Draws `text` rotated 90° counter-clockwise (reading upwards), its bounding box's top-left at
/// (x, y).
fn draw_text_up(img: &mut RgbImage, x: i32, y: i32, text: &str, scale: i32, color: Rgb<u8>) {
    let len = text_width(text, 1);
    for_each_text_pixel(text, |tx, ty| {
        fill_rect(
            img,
            x + ty * scale,
            y + (len - 1 - tx) * scale,
            scale,
            scale,
            color,
        );
    });
}

/// Calls `f(x, y)` for every lit font pixel of `text`, in font-pixel units from its top-left
/// (rows 7 and 8 are descenders below the baseline).
fn for_each_text_pixel(text: &str, mut f: impl FnMut(i32, i32)) {
    for (i, c) in text.chars().enumerate() {
        let rows = glyph(c);
        for (ty, bits) in rows.iter().enumerate() {
            for tx in 0..5 {
                if bits & (0x10 >> tx) != 0 {
                    f(i as i32 * 6 + tx, ty as i32);
                }
            }
        }
    }
}

/// The rows of a character (bit 4 = leftmost column): 7 above the baseline, 2 for descenders;
/// '?' for characters the font lacks.
fn glyph(c: char) -> [u8; 9] {
    let rows = match c {
        'g' => return [0x00, 0x00, 0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E],
        'j' => return [0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'p' => return [0x00, 0x00, 0x1E, 0x11, 0x11, 0x11, 0x1E, 0x10, 0x10],
        'q' => return [0x00, 0x00, 0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x01],
        'y' => return [0x00, 0x00, 0x11, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E],
        ' '..='~' => FONT[c as usize - 32],
        '×' => [0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x00],
        '·' => [0x00, 0x00, 0x00, 0x0C, 0x0C, 0x00, 0x00],
        '−' | '–' | '—' => FONT['-' as usize - 32],
        _ => FONT['?' as usize - 32],
    };
    let mut out = [0; 9];
    out[..7].copy_from_slice(&rows);
    out
}

/// ASCII 32..=126 above the baseline, after the classic HD44780 character ROM (`glyph` gives
/// g, j, p, q, y real descenders instead of the squashed forms here).
#[rustfmt::skip]
const FONT: [[u8; 7]; 95] = [
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // ' '
    [0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04], // !
    [0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00], // "
    [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A], // #
    [0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04], // $
    [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03], // %
    [0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D], // &
    [0x0C, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00], // '
    [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02], // (
    [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08], // )
    [0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00], // *
    [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00], // +
    [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08], // ,
    [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00], // -
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C], // .
    [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00], // /
    [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E], // 0
    [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E], // 1
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F], // 2
    [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E], // 3
    [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02], // 4
    [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E], // 5
    [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E], // 6
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08], // 7
    [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E], // 8
    [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C], // 9
    [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00], // :
    [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08], // ;
    [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02], // <
    [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00], // =
    [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08], // >
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04], // ?
    [0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E], // @
    [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11], // A
    [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E], // B
    [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E], // C
    [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C], // D
    [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F], // E
    [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10], // F
    [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F], // G
    [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11], // H
    [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], // I
    [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C], // J
    [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11], // K
    [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F], // L
    [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11], // M
    [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11], // N
    [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], // O
    [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10], // P
    [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D], // Q
    [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11], // R
    [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E], // S
    [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04], // T
    [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], // U
    [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04], // V
    [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A], // W
    [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11], // X
    [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04], // Y
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F], // Z
    [0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E], // [
    [0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00], // \
    [0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E], // ]
    [0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00], // ^
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F], // _
    [0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00], // `
    [0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F], // a
    [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E], // b
    [0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E], // c
    [0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F], // d
    [0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E], // e
    [0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08], // f
    [0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E], // g
    [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11], // h
    [0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E], // i
    [0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C], // j
    [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12], // k
    [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], // l
    [0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11], // m
    [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11], // n
    [0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E], // o
    [0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10], // p
    [0x00, 0x00, 0x0D, 0x13, 0x0F, 0x01, 0x01], // q
    [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10], // r
    [0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E], // s
    [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06], // t
    [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D], // u
    [0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04], // v
    [0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A], // w
    [0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11], // x
    [0x00, 0x00, 0x11, 0x11, 0x0F, 0x01, 0x0E], // y
    [0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F], // z
    [0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02], // {
    [0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04], // |
    [0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08], // }
    [0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00], // ~
];
