//! The picture commands of the `gpu-ae` binary (`sample`, `reconstruct`, `encode`, `denoise`,
//! `upscale`): check the checkpoint suits the command, run the model through
//! [`gpu_ae::infer`], and write pictures (PNG, JPEG or BMP, as the extension says) and CSVs
//! atomically, only after everything succeeded.

use super::{AdapterArg, EncodeArgs, PictureArgs, SampleArgs, UpscaleArgs, default_data};
use gpu_ae::apply;
use gpu_ae::error::Result;
use gpu_ae::graph::Model;
use gpu_ae::infer::{Inference, PIXELS};
use gpu_ae::models::Task;
use gpu_ae::train::load_model;
use gpu_ae::{bail, outln};
use gpu_ae::{files, viz};
use image::DynamicImage;
use std::path::{Path, PathBuf};

/// Shipped checkpoints, trained by gpu-ae itself (recipe in the README).
const SHIPPED_L16: &str = "assets/models/conv-vae-L16.safetensors";
const SHIPPED_L2: &str = "assets/models/conv-vae-L2.safetensors";
const BATCH: usize = 500;

fn shipped(rel: &str) -> PathBuf {
    let local = PathBuf::from(rel);
    if local.exists() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Fails early (before any work) when the output's folder does not exist.
fn check_out(path: &Path) -> Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent
        && !dir.is_dir()
    {
        bail!(
            "{}: folder {} does not exist",
            path.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Fails early (before any work) when the picture's extension names no format it can be written
/// in, or its folder does not exist.
fn check_picture_out(path: &Path) -> Result<()> {
    viz::check_image_path(path)?;
    check_out(path)
}

/// Most pixels in one picture (a 16384×16384 square): larger grids would exhaust memory.
const MAX_PICTURE_PIXELS: usize = 1 << 28;

/// Checks a grid of `rows`×`cols` cells of 28×28 images before any work; `cols_flag` is the flag
/// that set `cols` (`--cols`, or `--count` for the comparison pictures). The size arithmetic is
/// checked, so absurd values are an error instead of an overflow or a failed allocation.
fn check_grid(
    rows: usize,
    cols: usize,
    cols_flag: &str,
    scale: usize,
    padding: usize,
) -> Result<()> {
    for (flag, v) in [("--rows", rows), (cols_flag, cols), ("--scale", scale)] {
        if v == 0 {
            bail!("{flag} must be at least 1");
        }
    }
    if rows.checked_mul(cols).is_none_or(|cells| cells > 10_000) {
        bail!("{rows} rows × {cols_flag} {cols} is more than 10000 cells");
    }
    // The picture size of viz::digit_grid.
    let side = |n: usize| {
        (28 * n)
            .checked_mul(scale)?
            .checked_add(padding.checked_mul(n + 1)?)
    };
    let pixels = side(cols)
        .zip(side(rows))
        .and_then(|(w, h)| w.checked_mul(h));
    if pixels.is_none_or(|p| p > MAX_PICTURE_PIXELS) {
        bail!(
            "--scale {scale} and --padding {padding} make a picture of more than {MAX_PICTURE_PIXELS} pixels"
        );
    }
    Ok(())
}

/// Test images `[count, 784]` in [0, 1] and their labels.
fn test_images(dir: &Path) -> Result<(Vec<f32>, Vec<u32>)> {
    let split = gpu_ae::data::load_test(dir, &Default::default())?.test;
    let im = &split.images;
    if im.channels != 1 || im.rows * im.cols != PIXELS {
        bail!(
            "{}: images are {}×{} with {} channel(s); gpu-ae models take 28×28 grey images",
            dir.display(),
            im.rows,
            im.cols,
            im.channels
        );
    }
    Ok((
        im.pixels.iter().map(|&p| p as f32 / 255.0).collect(),
        split.labels,
    ))
}

fn open(adapter: &AdapterArg, checkpoint: &Path) -> Result<(gpu_ae::gpu::Gpu, Model)> {
    let gpu = adapter.open(false)?;
    let (model, _) = load_model(&gpu, checkpoint)?;
    Ok((gpu, model))
}

fn save_grid(
    path: &Path,
    images: &[f32],
    rows: usize,
    cols: usize,
    scale: usize,
    padding: usize,
) -> Result<()> {
    let grid = viz::digit_grid(images, 28, 28, rows, cols, scale, padding);
    viz::save_image(path, &DynamicImage::ImageLuma8(grid))
}

pub fn sample(a: SampleArgs) -> Result<()> {
    let g = &a.grid;
    check_grid(g.rows, g.cols, "--cols", g.scale, g.padding)?;
    check_picture_out(&a.out)?;
    let checkpoint = a
        .checkpoint
        .clone()
        .unwrap_or_else(|| shipped(if a.manifold { SHIPPED_L2 } else { SHIPPED_L16 }));
    let (gpu, model) = open(&a.adapter, &checkpoint)?;
    let kind = model.arch.spec.kind;
    let code = model.arch.code_len();
    let count = g.rows * g.cols;
    let inference = Inference::new(&gpu, model, BATCH.min(count), a.seed)?;
    let images = if a.manifold {
        if code != 2 {
            bail!(
                "{}: --manifold needs a model with a 2-D latent; this {kind} has {code} dimensions",
                checkpoint.display()
            );
        }
        inference.decode(&apply::manifold_codes(g.rows, g.cols))?
    } else if let Some(ab) = &a.interpolate {
        let (images, _) = test_images(&a.data.clone().unwrap_or_else(default_data))?;
        let total = images.len() / PIXELS;
        for &i in ab {
            if i >= total {
                bail!("--interpolate: image {i} does not exist (the test set has {total})");
            }
        }
        let pick = |i: usize| images[i * PIXELS..(i + 1) * PIXELS].to_vec();
        let mut both = pick(ab[0]);
        both.extend(pick(ab[1]));
        let codes = inference.reconstruct(&both)?.codes;
        let (za, zb) = codes.split_at(code);
        inference.decode(&apply::line_codes(za, zb, count))?
    } else {
        if !inference.model.arch.is_vae() {
            bail!(
                "{}: sampling from N(0, I) needs a VAE (conv-vae or dense-vae); this is a {kind}",
                checkpoint.display()
            );
        }
        inference.decode(&apply::prior_samples(count, code, a.seed))?
    };
    save_grid(&a.out, &images, g.rows, g.cols, g.scale, g.padding)?;
    outln!(
        "{}: {count} digits decoded by {} ({kind}, L={code})",
        a.out.display(),
        checkpoint.display()
    );
    Ok(())
}

pub fn reconstruct(a: PictureArgs) -> Result<()> {
    check_grid(2, a.count, "--count", a.scale, a.padding)?;
    let out = a.out.clone().unwrap_or_else(|| "reconstruction.png".into());
    check_picture_out(&out)?;
    let (images, _) = test_images(&a.data.clone().unwrap_or_else(default_data))?;
    let (gpu, model) = open(&a.adapter, &a.checkpoint)?;
    let count = a.count.min(images.len() / PIXELS);
    let originals = &images[..count * PIXELS];
    let inference = Inference::new(&gpu, model, count, a.seed)?;
    let r = inference.reconstruct(originals)?;
    let mut rows = originals.to_vec();
    rows.extend(&r.outputs);
    save_grid(&out, &rows, 2, count, a.scale, a.padding)?;
    outln!(
        "{}: {count} test images (top) and their reconstructions (bottom), PSNR {:.2} dB",
        out.display(),
        apply::psnr(&r.outputs, originals)
    );
    Ok(())
}

pub fn encode(a: EncodeArgs) -> Result<()> {
    let plot = a.out.with_extension("png");
    if plot == a.out {
        bail!(
            "{}: --out is the CSV of codes and its scatter plot goes beside it as .png; name it .csv",
            a.out.display()
        );
    }
    check_out(&a.out)?;
    let dir = a.data.clone().unwrap_or_else(default_data);
    let (images, labels) = test_images(&dir)?;
    let (gpu, model) = open(&a.adapter, &a.checkpoint)?;
    let kind = model.arch.spec.kind;
    let inference = Inference::new(&gpu, model, BATCH, 0)?;
    let code = inference.code_len();
    let r = inference.reconstruct(&images)?;
    let mut csv = String::from("index,label");
    for j in 0..code {
        csv.push_str(&format!(",z{j}"));
    }
    csv.push('\n');
    let mut points = Vec::with_capacity(labels.len());
    for (i, z) in r.codes.chunks(code).enumerate() {
        csv.push_str(&format!("{i},{}", labels[i]));
        for v in z {
            csv.push_str(&format!(",{v}"));
        }
        csv.push('\n');
        points.push([z[0], if code > 1 { z[1] } else { 0.0 }]);
    }
    let what = if inference.model.arch.is_vae() {
        "posterior mean"
    } else {
        "code"
    };
    let title = format!("{kind} {what} of {} test images", points.len());
    let img = viz::scatter(
        &points,
        &labels,
        &title,
        "z0",
        if code > 1 { "z1" } else { "0" },
    );
    files::write_atomic(&a.out, csv.as_bytes())?;
    viz::save_image(&plot, &DynamicImage::ImageRgb8(img))?;
    outln!(
        "{}: {} rows of index,label,z0..z{}; scatter plot {}",
        a.out.display(),
        points.len(),
        code - 1,
        plot.display()
    );
    Ok(())
}

fn require_task(model: &Model, checkpoint: &Path, want: &str, command: &str) -> Result<()> {
    let task = model.arch.spec.task.name();
    if task != want {
        bail!(
            "{}: this {} was trained for {task}; `gpu-ae {command}` needs a checkpoint trained with --task {want}",
            checkpoint.display(),
            model.arch.spec.kind
        );
    }
    Ok(())
}

pub fn denoise(a: PictureArgs) -> Result<()> {
    check_grid(3, a.count, "--count", a.scale, a.padding)?;
    let out = a.out.clone().unwrap_or_else(|| "denoise.png".into());
    check_picture_out(&out)?;
    let dir = a.data.clone().unwrap_or_else(default_data);
    let (gpu, model) = open(&a.adapter, &a.checkpoint)?;
    require_task(&model, &a.checkpoint, "denoise", "denoise")?;
    let noise = match model.arch.spec.task {
        Task::Denoise { noise } => noise,
        _ => unreachable!("checked above"),
    };
    let (images, _) = test_images(&dir)?;
    let inference = Inference::new(&gpu, model, BATCH, a.seed)?;
    let r = inference.reconstruct(&images)?;
    let n = a.count.min(images.len() / PIXELS) * PIXELS;
    let mut rows = r.inputs[..n].to_vec();
    rows.extend(&r.outputs[..n]);
    rows.extend(&images[..n]);
    save_grid(&out, &rows, 3, n / PIXELS, a.scale, a.padding)?;
    outln!(
        "{}: noisy (top), denoised, clean (bottom). Test set ({} images, noise σ = {noise}): PSNR noisy input {:.2} dB, denoised {:.2} dB",
        out.display(),
        images.len() / PIXELS,
        apply::psnr(&r.inputs, &images),
        apply::psnr(&r.outputs, &images)
    );
    Ok(())
}

pub fn upscale(a: UpscaleArgs) -> Result<()> {
    if let Some(input) = &a.input {
        check_grid(1, 1, "--cols", a.scale, 0)?;
        let out = a.out.clone().unwrap_or_else(|| "upscaled.png".into());
        check_picture_out(&out)?;
        let (pixels, h, w) = viz::read_png_gray(input)?;
        if (h, w) != (14, 14) {
            bail!(
                "{}: image is {w}×{h}; upscale needs a 14×14 image",
                input.display()
            );
        }
        let (gpu, model) = open(&a.adapter, &a.checkpoint)?;
        require_task(&model, &a.checkpoint, "superres", "upscale")?;
        let inference = Inference::new(&gpu, model, 1, 0)?;
        // The model pools its 28×28 target to 14×14: nearest upscaling pools back exactly.
        let r = inference.reconstruct(&apply::upscale_nearest(&pixels, 14, 14))?;
        save_grid(&out, &r.outputs, 1, 1, a.scale, 0)?;
        outln!("{}: {} upscaled to 28×28", out.display(), input.display());
        return Ok(());
    }
    let out = a.out.clone().unwrap_or_else(|| "upscale.png".into());
    check_grid(4, a.count, "--count", a.scale, a.padding)?;
    check_picture_out(&out)?;
    let dir = a.data.clone().unwrap_or_else(default_data);
    let (gpu, model) = open(&a.adapter, &a.checkpoint)?;
    require_task(&model, &a.checkpoint, "superres", "upscale")?;
    let (images, _) = test_images(&dir)?;
    let inference = Inference::new(&gpu, model, BATCH, 0)?;
    let r = inference.reconstruct(&images)?;
    let nearest = apply::upscale_nearest(&r.inputs, 14, 14);
    let bilinear = apply::upscale_bilinear(&r.inputs, 14, 14);
    let n = a.count.min(images.len() / PIXELS) * PIXELS;
    let mut rows = nearest[..n].to_vec();
    rows.extend(&bilinear[..n]);
    rows.extend(&r.outputs[..n]);
    rows.extend(&images[..n]);
    save_grid(&out, &rows, 4, n / PIXELS, a.scale, a.padding)?;
    outln!(
        "{}: 14×14 input (top), bilinear, gpu-ae, original (bottom). Test set ({} images): PSNR nearest {:.2} dB, bilinear {:.2} dB, gpu-ae {:.2} dB",
        out.display(),
        images.len() / PIXELS,
        apply::psnr(&nearest, &images),
        apply::psnr(&bilinear, &images),
        apply::psnr(&r.outputs, &images)
    );
    Ok(())
}
