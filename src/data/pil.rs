//! Pixel operations that give the same bytes as Pillow (PIL), so that an image folder read by
//! gpu-ae holds exactly the pixels `../shared/reference/pytorch_images.py` trains on:
//!
//! - [`composite_over_white`]: `Image.alpha_composite` of an RGBA image onto opaque white
//!   (Pillow's integer formula; it equals round((c·a + 255·(255 − a)) / 255) for every c, a);
//! - [`luma`]: `convert("L")` from RGB, ITU-R 601-2 luma in 16-bit fixed point,
//!   L = (R·19595 + G·38470 + B·7471 + 0x8000) >> 16;
//! - [`eight_bits`]: how Pillow reads 16-bit PNGs as 8 bits (grey clipped at 255, colour and
//!   alpha by their high byte);
//! - [`resize`] with [`Filter::Box`] or [`Filter::Bilinear`]: `Image.resize` (Pillow's
//!   `ImagingResample`: separable, two passes each rounding to u8, in Pillow 13's order, with
//!   22-bit fixed-point coefficients computed in f64 as Pillow does);
//! - [`scale_and_crop`]: the reference's "scale so the shorter side is S, then centre-crop S×S".
//!
//! Images here are interleaved `[height, width, channels]` u8 (the layout decoders give); the
//! caller makes them planar. Measured against Pillow 13.0 (see `tests/io_images.rs`): every
//! pixel equal for the operations above.

/// Fraction bits of Pillow's resampling coefficients (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// Pillow's `alpha_composite` of `rgba` (`[h, w, 4]`) over opaque white, alpha dropped:
/// `[h, w, 3]`.
pub fn composite_over_white(rgba: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(rgba.len() / 4 * 3);
    for px in rgba.chunks_exact(4) {
        let a = u32::from(px[3]);
        if a == 0 {
            rgb.extend_from_slice(&[255, 255, 255]);
            continue;
        }
        // AlphaComposite.c with dst = (255, 255, 255, 255): 7 extra bits of precision and
        // rounded divisions by 255 (`SHIFTFORDIV255`).
        let blend = 255 * (255 - a);
        let outa255 = a * 255 + blend;
        let coef1 = a * 255 * 255 * (1 << 7) / outa255;
        let coef2 = 255 * (1 << 7) - coef1;
        for &c in &px[..3] {
            let tmp = u32::from(c) * coef1 + 255 * coef2 + (0x80 << 7);
            rgb.push(((((tmp >> 8) + tmp) >> 8) >> 7) as u8);
        }
    }
    rgb
}

/// Pillow's `convert("L")` of one RGB pixel (ITU-R 601-2 luma, exact for grey: L(v, v, v) = v).
pub fn luma_of(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000) >> 16) as u8
}

/// `[h, w, 3]` RGB to `[h, w]` grey with [`luma_of`].
pub fn luma(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks_exact(3)
        .map(|p| luma_of(p[0], p[1], p[2]))
        .collect()
}

/// Pillow's 8 bits of 16-bit PNG samples: a grey PNG (colour type 0) opens as mode `I;16`,
/// whose `convert("L")` and `convert("RGB")` clip at 255 (`grey` true: min(v, 255), so most of
/// the range is white); every other 16-bit PNG (grey+alpha, RGB, RGBA) opens as 8-bit `RGB` or
/// `RGBA`, each sample its high byte (v >> 8, not rounded).
pub fn eight_bits(samples: &[u16], grey: bool) -> Vec<u8> {
    samples
        .iter()
        .map(|&v| {
            if grey {
                v.min(255) as u8
            } else {
                (v >> 8) as u8
            }
        })
        .collect()
}

/// Resampling filters of `Image.resize` used by the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `Image.BOX`: each output pixel is the area average of the input pixels it covers.
    Box,
    /// `Image.BILINEAR`: a triangle filter widened by the scale factor when shrinking.
    Bilinear,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Box => 0.5,
            Filter::Bilinear => 1.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }
        }
    }
}

/// The input span and fixed-point weights of each output pixel along one axis
/// (`precompute_coeffs` + `normalize_coeffs_8bpc` of Pillow's Resample.c, for the whole image).
struct Coeffs {
    /// `[out, 2]`: first input index, number of inputs.
    bounds: Vec<(usize, usize)>,
    /// `[out, ksize]`
    weights: Vec<i32>,
    ksize: usize,
}

impl Coeffs {
    fn new(in_size: usize, out_size: usize, filter: Filter) -> Coeffs {
        // Pillow passes the box edges as f32 and subtracts them in f32; exact for sizes < 2²⁴.
        let scale = in_size as f32 as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filter.support() * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut bounds = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * ksize];
        let mut k = vec![0f64; ksize];
        for xx in 0..out_size {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            // C's (int) truncates towards zero, as `as` does.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
            let mut ww = 0.0;
            for (x, kx) in k.iter_mut().enumerate().take(xmax) {
                let w = filter.weight(((x + xmin) as f64 - center + 0.5) * ss);
                *kx = w;
                ww += w;
            }
            for (x, &kx) in k.iter().enumerate().take(xmax) {
                let kx = if ww != 0.0 { kx / ww } else { kx };
                let fixed = kx * f64::from(1u32 << PRECISION_BITS);
                weights[xx * ksize + x] = if kx < 0.0 {
                    (-0.5 + fixed) as i32
                } else {
                    (0.5 + fixed) as i32
                };
            }
            bounds.push((xmin, xmax));
        }
        Coeffs {
            bounds,
            weights,
            ksize,
        }
    }
}

/// Pillow's `clip8`: the fixed-point sum rounded (the sum starts at one half) and clamped.
fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// `Image.resize((out_w, out_h), filter)` of an interleaved `[h, w, channels]` image:
/// `[out_h, out_w, channels]`. Two passes, each rounding to u8; a pass whose size does not change
/// is skipped, as in Pillow. Pillow 13 runs the vertical pass first when the height shrinks by
/// more than twice as many pixels as the width (`ImagingResampleInner`); earlier Pillows always
/// ran the horizontal pass first, which can differ by one level on such images.
pub fn resize(
    src: &[u8],
    channels: usize,
    (w, h): (usize, usize),
    (out_w, out_h): (usize, usize),
    filter: Filter,
) -> Vec<u8> {
    assert_eq!(
        src.len(),
        w * h * channels,
        "resize: image is not [h, w, c]"
    );
    let (dw, dh) = (w as i64 - out_w as i64, h as i64 - out_h as i64);
    let vertical_first = dh > 0 && dh > dw * 2;
    let mut image = src.to_vec();
    if vertical_first {
        if out_h != h {
            image = vertical(&image, w * channels, h, out_h, filter);
        }
        if out_w != w {
            image = horizontal(&image, channels, w, out_h, out_w, filter);
        }
    } else {
        if out_w != w {
            image = horizontal(&image, channels, w, h, out_w, filter);
        }
        if out_h != h {
            image = vertical(&image, out_w * channels, h, out_h, filter);
        }
    }
    image
}

/// Resamples every row of an interleaved `[rows, w, channels]` image to `out_w` pixels.
fn horizontal(
    image: &[u8],
    channels: usize,
    w: usize,
    rows: usize,
    out_w: usize,
    filter: Filter,
) -> Vec<u8> {
    let c = Coeffs::new(w, out_w, filter);
    let mut out = vec![0u8; rows * out_w * channels];
    for y in 0..rows {
        let row = &image[y * w * channels..(y + 1) * w * channels];
        for (xx, &(xmin, n)) in c.bounds.iter().enumerate() {
            let k = &c.weights[xx * c.ksize..][..n];
            for ch in 0..channels {
                let mut ss = 1i32 << (PRECISION_BITS - 1);
                for (x, &kx) in k.iter().enumerate() {
                    ss += i32::from(row[(xmin + x) * channels + ch]) * kx;
                }
                out[(y * out_w + xx) * channels + ch] = clip8(ss);
            }
        }
    }
    out
}

/// Resamples every column of a `[h, stride]` image (stride = width · channels) to `out_h` rows.
fn vertical(image: &[u8], stride: usize, h: usize, out_h: usize, filter: Filter) -> Vec<u8> {
    let c = Coeffs::new(h, out_h, filter);
    let mut out = vec![0u8; out_h * stride];
    for (yy, &(ymin, n)) in c.bounds.iter().enumerate() {
        let k = &c.weights[yy * c.ksize..][..n];
        for i in 0..stride {
            let mut ss = 1i32 << (PRECISION_BITS - 1);
            for (y, &ky) in k.iter().enumerate() {
                ss += i32::from(image[(ymin + y) * stride + i]) * ky;
            }
            out[yy * stride + i] = clip8(ss);
        }
    }
    out
}

/// The size the reference scales a `w`×`h` image to before cropping `size`×`size`: the shorter
/// side becomes `size`, the other `max(size, round(side · size / shorter))` with Python's
/// `round` (ties to even).
pub fn scaled_size(w: usize, h: usize, size: usize) -> (usize, usize) {
    let scale = size as f64 / w.min(h) as f64;
    let side = |s: usize| size.max((s as f64 * scale).round_ties_even() as usize);
    (side(w), side(h))
}

/// The reference's `load_image` geometry: an interleaved `[h, w, channels]` image that is not
/// `size`×`size` is resized so its shorter side is `size` ([`Filter::Box`] when the shorter side
/// is a multiple of `size`, else [`Filter::Bilinear`]) and the centre `size`×`size` cropped
/// (left = (new_w − size) / 2, top = (new_h − size) / 2, rounded down). `[size, size, channels]`.
pub fn scale_and_crop(src: &[u8], channels: usize, (w, h): (usize, usize), size: usize) -> Vec<u8> {
    if (w, h) == (size, size) {
        return src.to_vec();
    }
    let (nw, nh) = scaled_size(w, h, size);
    let filter = if w.min(h) % size == 0 {
        Filter::Box
    } else {
        Filter::Bilinear
    };
    let scaled = resize(src, channels, (w, h), (nw, nh), filter);
    let (left, top) = ((nw - size) / 2, (nh - size) / 2);
    let mut out = Vec::with_capacity(size * size * channels);
    for y in top..top + size {
        let row = (y * nw + left) * channels;
        out.extend_from_slice(&scaled[row..row + size * channels]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_equals_rounded_blend_for_every_value_and_alpha() {
        for a in 0..=255u32 {
            let rgba: Vec<u8> = (0..=255u8).flat_map(|c| [c, c, c, a as u8]).collect();
            let rgb = composite_over_white(&rgba);
            for c in 0..=255u32 {
                let want = (c * a + 255 * (255 - a) + 127) / 255;
                assert_eq!(u32::from(rgb[c as usize * 3]), want, "c {c} a {a}");
            }
        }
    }

    #[test]
    fn luma_of_grey_is_the_grey() {
        for v in 0..=255 {
            assert_eq!(luma_of(v, v, v), v);
        }
    }

    #[test]
    fn scaled_size_rounds_ties_to_even_like_python() {
        assert_eq!(scaled_size(64, 64, 32), (32, 32));
        assert_eq!(scaled_size(64, 48, 32), (43, 32));
        // 5 · 1/2 = 2.5 rounds to 2 in Python, and max(1, 2) = 2.
        assert_eq!(scaled_size(5, 2, 1), (2, 1));
        assert_eq!(scaled_size(7, 2, 1), (4, 1));
        assert_eq!(scaled_size(20, 100, 28), (28, 140));
    }

    #[test]
    fn box_halving_rounds_each_pass() {
        // Rows [0 1; 0 0]: the horizontal pass gives 0.5 → 1 and 0, the vertical pass 0.5 → 1;
        // a one-pass area average would give 0.25 → 0.
        assert_eq!(resize(&[0, 1, 0, 0], 1, (2, 2), (1, 1), Filter::Box), [1]);
        assert_eq!(resize(&[0, 1, 2, 3], 1, (2, 2), (1, 1), Filter::Box), [2]);
    }

    #[test]
    fn crop_is_centred() {
        // A 4×2 grey ramp scaled to height 2 is unchanged; the crop keeps columns 1 and 2.
        let src = [0, 10, 20, 30, 40, 50, 60, 70];
        assert_eq!(scale_and_crop(&src, 1, (4, 2), 2), [10, 20, 50, 60]);
    }
}
