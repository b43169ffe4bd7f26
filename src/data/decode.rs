//! One image file's bytes to the pixels a dataset holds, as Pillow would give them (see
//! [`super::folder`] for the rules and what was measured against Pillow): decoding with the
//! `image` crate, alpha over white, grey as Pillow's luma, and the scaling and centre crop of
//! [`super::pil`].

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageReader};

use super::pil;
use crate::error::{Error, Result};

/// An image decoded and composited over white, interleaved `[height, width, 3]` RGB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub width: usize,
    pub height: usize,
    /// `[height, width, 3]`
    pub rgb: Vec<u8>,
}

impl Decoded {
    /// Whether every pixel is grey (R = G = B).
    pub fn is_grey(&self) -> bool {
        self.rgb
            .chunks_exact(3)
            .all(|p| p[0] == p[1] && p[1] == p[2])
    }
}

/// Decodes an image file's bytes (format from the content) to RGB with any alpha composited
/// over white as the reference does. The error is the decoder's message.
pub fn decode(bytes: &[u8]) -> std::result::Result<Decoded, String> {
    let image = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .decode()
        .map_err(|e| e.to_string())?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    let image = to_eight_bits(image, bytes);
    let rgb = if image.color().has_alpha() && !png_key_colour(bytes) {
        pil::composite_over_white(&to_rgba8(image))
    } else {
        to_rgb8(image)
    };
    Ok(Decoded { width, height, rgb })
}

/// The image file at `path`, read (a regular file only) and [`decode`]d; errors name it
/// (`<path>: cannot decode: …`).
pub fn read_image(path: &Path) -> Result<Decoded> {
    let bytes = crate::files::read(path, "an image file")?;
    decode(&bytes).map_err(|e| Error::msg(format!("{}: cannot decode: {e}", path.display())))
}

/// Whether `bytes` is a grey or RGB PNG (colour type 0 or 2), whose only transparency can be a
/// tRNS key colour: the decoder turns it into alpha, but Pillow leaves such an image opaque.
fn png_key_colour(bytes: &[u8]) -> bool {
    matches!(png_colour_type(bytes), Some(0 | 2))
}

/// The colour type in a PNG's header (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA); None
/// for other formats.
fn png_colour_type(bytes: &[u8]) -> Option<u8> {
    (bytes.len() > 25 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR")
        .then(|| bytes[25])
}

/// A 16-bit image (only PNG has them among [`EXTENSIONS`](super::listing::EXTENSIONS)) made 8-bit as Pillow reads it
/// ([`pil::eight_bits`]: a grey PNG clipped at 255, key colour or not; any other by the high
/// bytes); 8-bit images as they are.
fn to_eight_bits(image: DynamicImage, bytes: &[u8]) -> DynamicImage {
    let grey = png_colour_type(bytes) == Some(0);
    let (w, h) = (image.width(), image.height());
    let eight = |samples: &[u16]| pil::eight_bits(samples, grey);
    let whole = "as many samples as the image had";
    match image {
        DynamicImage::ImageLuma16(im) => {
            DynamicImage::ImageLuma8(image::ImageBuffer::from_raw(w, h, eight(&im)).expect(whole))
        }
        DynamicImage::ImageLumaA16(im) => {
            DynamicImage::ImageLumaA8(image::ImageBuffer::from_raw(w, h, eight(&im)).expect(whole))
        }
        DynamicImage::ImageRgb16(im) => {
            DynamicImage::ImageRgb8(image::ImageBuffer::from_raw(w, h, eight(&im)).expect(whole))
        }
        DynamicImage::ImageRgba16(im) => {
            DynamicImage::ImageRgba8(image::ImageBuffer::from_raw(w, h, eight(&im)).expect(whole))
        }
        other => other,
    }
}

/// 8-bit RGBA (`[h, w, 4]`); 8-bit images convert exactly (grey+alpha → (l, l, l, a)).
fn to_rgba8(image: DynamicImage) -> Vec<u8> {
    match image {
        DynamicImage::ImageRgba8(im) => im.into_raw(),
        other => other.to_rgba8().into_raw(),
    }
}

/// 8-bit RGB (`[h, w, 3]`), alpha dropped; grey → (l, l, l).
fn to_rgb8(image: DynamicImage) -> Vec<u8> {
    match image {
        DynamicImage::ImageRgb8(im) => im.into_raw(),
        other => other.to_rgb8().into_raw(),
    }
}

/// An image ready for the dataset, planar `[planes, size, size]`: one plane when the image is
/// grey (or grey was asked for), three otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// `[planes, size, size]`, planes 1 or 3.
    pub planes: Vec<u8>,
    /// Whether the image was grey after compositing (the one plane stands for R = G = B).
    pub grey: bool,
    /// Whether it was scaled (another size) or made grey (a colour image, one plane asked for).
    pub converted: bool,
}

/// The reference's `load_image` from a decoded image: grey (`channels` 1, Pillow's luma) or
/// RGB, scaled and centre-cropped to `size`×`size` (see [`pil::scale_and_crop`]). With
/// `channels` None a grey image gives one plane (equal to the three it would give as RGB) and a
/// colour image three.
pub fn prepare(d: &Decoded, channels: Option<u8>, size: usize) -> Prepared {
    let grey = d.is_grey();
    let one_plane = channels == Some(1) || (channels.is_none() && grey);
    let (src, c) = if one_plane {
        // For a grey image luma(v, v, v) = v: the same plane as R.
        (pil::luma(&d.rgb), 1)
    } else {
        (d.rgb.clone(), 3)
    };
    let hwc = pil::scale_and_crop(&src, c, (d.width, d.height), size);
    let n = size * size;
    let mut planes = vec![0u8; c * n];
    for (i, px) in hwc.chunks_exact(c).enumerate() {
        for (ch, &v) in px.iter().enumerate() {
            planes[ch * n + i] = v;
        }
    }
    let converted = (d.width, d.height) != (size, size) || (one_plane && !grey);
    Prepared {
        planes,
        grey,
        converted,
    }
}

/// The reference's whole pipeline on one file's bytes: [`decode`] then [`prepare`]:
/// `[channels, size, size]`, channels 1 or 3.
pub fn load_image(bytes: &[u8], channels: u8, size: usize) -> std::result::Result<Vec<u8>, String> {
    Ok(prepare(&decode(bytes)?, Some(channels), size).planes)
}
