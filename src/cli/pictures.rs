//! The picture commands of the `gpu-ae` binary (`sample`, `reconstruct`, `encode`, `denoise`,
//! `upscale`): check the checkpoint suits the command, run the model through
//! [`gpu_ae::pictures::infer`], and write pictures (PNG, JPEG or BMP, as the extension says) and CSVs
//! atomically, only after everything succeeded.

use super::{AdapterArg, flags, model_data};
use clap::Args;
use gpu_ae::data::SplitRule;
use gpu_ae::data::classes;
use gpu_ae::data::decode;
use gpu_ae::error::Result;
use gpu_ae::files;
use gpu_ae::model::graph::Model;
use gpu_ae::model::{ImageShape, Task};
use gpu_ae::pictures::apply;
use gpu_ae::pictures::infer::Inference;
use gpu_ae::pictures::projection::principal_plane;
use gpu_ae::pictures::viz;
use gpu_ae::platform::block_on;
use gpu_ae::run::train::load_model;
use gpu_ae::{bail, noteln, outln};
use image::DynamicImage;
use std::path::{Path, PathBuf};

/// How a picture lays out its images: each enlarged `scale` times, `padding` pixels between.
#[derive(Args, Clone, Copy)]
pub struct CellArgs {
    /// Enlarge each image this many times.
    #[arg(long, default_value_t = 2, value_parser = flags::count, allow_negative_numbers = true)]
    pub scale: usize,
    /// Pixels between cells.
    #[arg(long, default_value_t = 2, value_parser = flags::whole::<usize>, allow_negative_numbers = true)]
    pub padding: usize,
}

/// The test images of a picture command.
#[derive(Args, Clone)]
pub struct TestImagesArg {
    /// The test images: an IDX folder or a folder of images (default: the folder the model was
    /// trained on when it is here, else assets/mnist).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

#[derive(Args, Clone)]
pub struct GridArgs {
    #[arg(long, default_value_t = 8, value_parser = flags::count, allow_negative_numbers = true)]
    pub rows: usize,
    #[arg(long, default_value_t = 8, value_parser = flags::count, allow_negative_numbers = true)]
    pub cols: usize,
    #[command(flatten)]
    pub cells: CellArgs,
}

#[derive(Args)]
pub struct SampleArgs {
    /// Checkpoint (default: the conv-vae shipped in assets/models, the 2-D one with --manifold,
    /// the conditional 2-D one with --label).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    #[command(flatten)]
    pub grid: GridArgs,
    #[arg(long, default_value_t = 0, value_parser = flags::whole::<u32>, allow_negative_numbers = true)]
    pub seed: u32,
    /// The picture: .png, .jpg/.jpeg or .bmp.
    #[arg(long, default_value = "samples.png", value_name = "PICTURE")]
    pub out: PathBuf,
    /// Decode an evenly spaced grid of the prior's quantiles (2-D latent models).
    #[arg(long, conflicts_with = "interpolate")]
    pub manifold: bool,
    /// Decode the straight line between the codes of test images A and B.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    pub interpolate: Option<Vec<usize>>,
    /// The test images for --interpolate: an IDX folder or a folder of images (default: the
    /// folder the model was trained on when it is here, else assets/mnist).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Conditional models: the class(es) to draw, as indices or names, comma-separated (one
    /// row per class when several; default: one row per class of the model). A name holding a
    /// comma is given alone or in double quotes, as encode's CSV quotes it: '"a,b",c'.
    #[arg(long, value_name = "CLASS,…", allow_hyphen_values = true)]
    pub label: Option<String>,
    #[command(flatten)]
    pub adapter: AdapterArg,
}

#[derive(Args)]
pub struct PictureArgs {
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    #[command(flatten)]
    pub images: TestImagesArg,
    /// Test images shown.
    #[arg(long, default_value_t = 10, value_parser = flags::count, allow_negative_numbers = true)]
    pub count: usize,
    #[command(flatten)]
    pub cells: CellArgs,
    /// Seed of the input noise (denoise).
    #[arg(long, default_value_t = 0, value_parser = flags::whole::<u32>, allow_negative_numbers = true)]
    pub seed: u32,
    /// The picture: .png, .jpg/.jpeg or .bmp.
    #[arg(long, value_name = "PICTURE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub adapter: AdapterArg,
}

#[derive(Args)]
pub struct EncodeArgs {
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    #[command(flatten)]
    pub images: TestImagesArg,
    /// CSV of index,label,z0,…; the scatter plot goes beside it as .png.
    #[arg(long, value_name = "CSV")]
    pub out: PathBuf,
    #[command(flatten)]
    pub adapter: AdapterArg,
}

#[derive(Args)]
pub struct UpscaleArgs {
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// An image of half the model's side to upscale (14×14 for an MNIST model), in any format
    /// training reads (PNG, JPEG, BMP, GIF, WebP); default: the whole test set, with PSNR figures.
    #[arg(long, value_name = "IMAGE")]
    pub input: Option<PathBuf>,
    #[command(flatten)]
    pub images: TestImagesArg,
    /// Test images shown in the comparison picture.
    #[arg(long, default_value_t = 10, value_parser = flags::count, allow_negative_numbers = true)]
    pub count: usize,
    #[command(flatten)]
    pub cells: CellArgs,
    /// The picture: .png, .jpg/.jpeg or .bmp.
    #[arg(long, value_name = "PICTURE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub adapter: AdapterArg,
}

/// Shipped checkpoints, trained by gpu-ae itself (recipe in the README).
const SHIPPED_L16: &str = "assets/models/conv-vae-L16.safetensors";
const SHIPPED_L2: &str = "assets/models/conv-vae-L2.safetensors";
const SHIPPED_CVAE_L2: &str = "assets/models/conv-cvae-L2.safetensors";
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

/// Checks a grid of `rows`×`cols` cells of `side`×`side` images before any work; `cols_flag`
/// is the flag that set `cols` (`--cols`, or `--count` for the comparison pictures). The size
/// arithmetic is checked, so absurd values are an error instead of an overflow or a failed
/// allocation.
fn check_grid(
    rows: usize,
    cols: usize,
    cols_flag: &str,
    cells: CellArgs,
    side: usize,
) -> Result<()> {
    let CellArgs { scale, padding } = cells;
    if rows.checked_mul(cols).is_none_or(|cells| cells > 10_000) {
        bail!("{rows} rows × {cols_flag} {cols} is more than 10000 cells");
    }
    // The picture size of viz::image_grid.
    let length = |n: usize| {
        side.checked_mul(n)?
            .checked_mul(scale)?
            .checked_add(padding.checked_mul(n + 1)?)
    };
    let pixels = length(cols)
        .zip(length(rows))
        .and_then(|(w, h)| w.checked_mul(h));
    if pixels.is_none_or(|p| p > MAX_PICTURE_PIXELS) {
        bail!(
            "--scale {scale} and --padding {padding} make a picture of more than {MAX_PICTURE_PIXELS} pixels"
        );
    }
    Ok(())
}

/// The test images of `dir` (an IDX folder or a folder of images, split by `split` as the
/// checkpoint records it) as the model takes them, `[count, C, S, S]` in [0, 1], with their
/// labels and the class names (image folders) or an empty list (IDX labels are the digits).
/// A folder of images is converted to the model's size and channels; an IDX folder must match.
fn test_images(dir: &Path, image: ImageShape, split: &SplitRule) -> Result<TestImages> {
    // The loader converts a folder of images to the model's shape and refuses an IDX folder
    // of another shape.
    let set = gpu_ae::data::load_test(dir, &image.data_options(split))?;
    if let Some(note) = set.conversion_note(image) {
        noteln!("{note}");
    }
    Ok(TestImages {
        pixels: set
            .test
            .images
            .pixels
            .iter()
            .map(|&p| p as f32 / 255.0)
            .collect(),
        labels: set.test.labels,
        classes: set.classes,
        dir: dir.to_path_buf(),
    })
}

/// A test set as [`test_images`] returns it.
struct TestImages {
    /// `[count, C, S, S]` in [0, 1].
    pixels: Vec<f32>,
    /// `[count]` class indices (`data::UNLABELLED` for none).
    labels: Vec<u32>,
    /// Class names of image folders (label i is `classes[i]`); empty for IDX folders.
    classes: Vec<String>,
    /// The folder, for errors.
    dir: PathBuf,
}

impl TestImages {
    /// The images' classes as indices into a conditional model's classes (None for an
    /// unconditional model, which takes none).
    fn model_labels(&self, model: &Model) -> Result<Option<Vec<u32>>> {
        let spec = &model.arch.spec;
        if !spec.is_conditional() {
            return Ok(None);
        }
        classes::relabel(&self.labels, &self.classes, &spec.classes, &self.dir).map(Some)
    }
}

/// Where a trained model's test images come from, as its checkpoint records it.
struct TestSource {
    /// How its run split its data into train and test images (the split of the first image
    /// folder it trained on; IDX folders come split).
    split: SplitRule,
    /// The folder it trained on, when recorded.
    trained_on: Option<PathBuf>,
}

impl TestSource {
    /// The test images of `--data` (`given`), or by default of the folder [`model_data`]
    /// chooses, at the model's `image` shape.
    fn images(&self, given: Option<&Path>, image: ImageShape) -> Result<TestImages> {
        let dir = model_data(given, self.trained_on.as_deref(), image)?;
        test_images(&dir, image, &self.split)
    }

    /// The test images of `--data` (`given`) as `model` takes them: `[count, C, S, S]` in
    /// [0, 1], with a conditional model's labels of them.
    fn model_images(
        &self,
        given: Option<&Path>,
        model: &Model,
    ) -> Result<(Vec<f32>, Option<Vec<u32>>)> {
        let set = self.images(given, model.arch.spec.image)?;
        let labels = set.model_labels(model)?;
        Ok((set.pixels, labels))
    }
}

/// A trained model on its adapter, and where its test images come from.
fn open(adapter: &AdapterArg, checkpoint: &Path) -> Result<(gpu_ae::gpu::Gpu, Model, TestSource)> {
    let gpu = adapter.open(false)?;
    let (model, ckpt) = load_model(&gpu, checkpoint)?;
    let source = TestSource {
        split: gpu_ae::run::settings::read_split(&ckpt, checkpoint)?,
        trained_on: gpu_ae::run::settings::read_data_path(&ckpt),
    };
    Ok((gpu, model, source))
}

/// Writes `images` (`[count, C, S, S]`) as a grid of `rows`×`cols` cells.
fn save_grid(
    path: &Path,
    images: &[f32],
    image: ImageShape,
    (rows, cols): (usize, usize),
    CellArgs { scale, padding }: CellArgs,
) -> Result<()> {
    let grid = viz::image_grid(
        images,
        image.channels,
        image.size,
        image.size,
        rows,
        cols,
        scale,
        padding,
    );
    viz::save_image(path, &grid)
}

/// The classes `sample` draws, one per row of its picture (None for an unconditional model):
/// `--label`'s, or every class of the model.
fn sample_rows(a: &SampleArgs, model: &Model, checkpoint: &Path) -> Result<Option<Vec<u32>>> {
    let spec = &model.arch.spec;
    match (&a.label, spec.is_conditional()) {
        (Some(_), false) => bail!(
            "--label: {} is not a conditional model (train one with --conditional)",
            checkpoint.display()
        ),
        (Some(arg), true) => classes::parse_labels(arg, &spec.classes).map(Some),
        (None, true) => Ok(Some((0..spec.classes.len() as u32).collect())),
        (None, false) => Ok(None),
    }
}

pub fn sample(a: SampleArgs) -> Result<()> {
    let g = &a.grid;
    check_picture_out(&a.out)?;
    let checkpoint = a.checkpoint.clone().unwrap_or_else(|| {
        shipped(match (&a.label, a.manifold) {
            (Some(_), _) => SHIPPED_CVAE_L2,
            (None, true) => SHIPPED_L2,
            (None, false) => SHIPPED_L16,
        })
    });
    let (gpu, model, source) = open(&a.adapter, &checkpoint)?;
    let image = model.arch.spec.image;
    let kind = model.arch.spec.kind;
    let code = model.arch.code_len();
    let classes = sample_rows(&a, &model, &checkpoint)?;
    // A conditional model draws one block per class: a row of samples (the same codes in every
    // row, so a column keeps its style), a whole manifold, or one grid for a single class.
    let blocks = classes.as_ref().map_or(1, Vec::len);
    let rows = match &classes {
        Some(c) if c.len() > 1 && !a.manifold => c.len(),
        _ => g.rows * blocks,
    };
    check_grid(rows, g.cols, "--cols", g.cells, image.size)?;
    let count = rows * g.cols;
    let per_block = count / blocks;
    // Block b's class for each image.
    let labels: Option<Vec<u32>> = classes.as_ref().map(|c| {
        c.iter()
            .flat_map(|&l| std::iter::repeat_n(l, per_block))
            .collect()
    });
    let inference = Inference::new(&gpu, model, BATCH.min(count), a.seed)?;
    let repeat = |codes: Vec<f32>| -> Vec<f32> { codes.repeat(blocks) };
    let images = if a.manifold {
        if code != 2 {
            bail!(
                "{}: --manifold needs a model with a 2-D latent; this {kind} has {code} dimensions",
                checkpoint.display()
            );
        }
        block_on(inference.decode(
            &repeat(apply::manifold_codes(g.rows, g.cols)),
            labels.as_deref(),
        ))?
    } else if let Some(ab) = &a.interpolate {
        let set = source.images(a.data.as_deref(), image)?;
        let test_labels = set.model_labels(&inference.model)?;
        let pixels = image.pixels();
        let total = set.pixels.len() / pixels;
        for &i in ab {
            if i >= total {
                bail!("--interpolate: image {i} does not exist (the test set has {total})");
            }
        }
        let pick = |i: usize| set.pixels[i * pixels..(i + 1) * pixels].to_vec();
        let mut both = pick(ab[0]);
        both.extend(pick(ab[1]));
        let pair = test_labels.as_ref().map(|l| vec![l[ab[0]], l[ab[1]]]);
        let codes = block_on(inference.reconstruct(&both, pair.as_deref()))?.codes;
        let (za, zb) = codes.split_at(code);
        // A conditional model draws the line once per class (a row each).
        block_on(inference.decode(
            &repeat(apply::line_codes(za, zb, per_block)),
            labels.as_deref(),
        ))?
    } else {
        if !inference.model.arch.is_vae() {
            bail!(
                "{}: sampling from N(0, I) needs a VAE (conv-vae or dense-vae); this is a {kind}",
                checkpoint.display()
            );
        }
        // Several classes: one row each, the same codes in every row.
        let codes = if blocks > 1 {
            repeat(apply::prior_samples(per_block, code, a.seed))
        } else {
            apply::prior_samples(count, code, a.seed)
        };
        block_on(inference.decode(&codes, labels.as_deref()))?
    };
    save_grid(&a.out, &images, image, (rows, g.cols), g.cells)?;
    let drawn = match &classes {
        Some(c) => {
            let names = &inference.model.arch.spec.classes;
            let shown: Vec<&str> = c.iter().map(|&l| names[l as usize].as_str()).collect();
            format!(", classes {}", shown.join(","))
        }
        None => String::new(),
    };
    outln!(
        "{}: {count} images decoded by {} ({kind}, L={code}{drawn})",
        a.out.display(),
        checkpoint.display()
    );
    Ok(())
}

pub fn reconstruct(a: PictureArgs) -> Result<()> {
    let out = a.out.clone().unwrap_or_else(|| "reconstruction.png".into());
    check_picture_out(&out)?;
    let (gpu, model, source) = open(&a.adapter, &a.checkpoint)?;
    let image = model.arch.spec.image;
    check_grid(2, a.count, "--count", a.cells, image.size)?;
    let (images, labels) = source.model_images(a.images.data.as_deref(), &model)?;
    let pixels = image.pixels();
    let count = a.count.min(images.len() / pixels);
    let originals = &images[..count * pixels];
    let inference = Inference::new(&gpu, model, count, a.seed)?;
    let r = block_on(inference.reconstruct(originals, labels.as_ref().map(|l| &l[..count])))?;
    let mut rows = originals.to_vec();
    rows.extend(&r.outputs);
    save_grid(&out, &rows, image, (2, count), a.cells)?;
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
    let (gpu, model, source) = open(&a.adapter, &a.checkpoint)?;
    let set = source.images(a.images.data.as_deref(), model.arch.spec.image)?;
    let model_labels = set.model_labels(&model)?;
    let TestImages {
        pixels: images,
        labels,
        classes,
        ..
    } = set;
    let kind = model.arch.spec.kind;
    let inference = Inference::new(&gpu, model, BATCH, 0)?;
    let code = inference.code_len();
    let r = block_on(inference.reconstruct(&images, model_labels.as_deref()))?;
    let mut csv = String::from("index,label");
    for j in 0..code {
        csv.push_str(&format!(",z{j}"));
    }
    csv.push('\n');
    for (i, z) in r.codes.chunks(code).enumerate() {
        // Image folders label by the folder's name (empty for images outside any).
        let label = match classes.get(labels[i] as usize) {
            Some(name) => name.clone(),
            None if classes.is_empty() => labels[i].to_string(),
            None => String::new(),
        };
        csv.push_str(&format!("{i},{}", classes::csv_field(&label)));
        for v in z {
            csv.push_str(&format!(",{v}"));
        }
        csv.push('\n');
    }
    let plane = principal_plane(&r.codes, code);
    let what = if inference.model.arch.is_vae() {
        "posterior mean"
    } else {
        "code"
    };
    let title = format!("{kind} {what} of {} test images", plane.points.len());
    let [x_axis, y_axis] = &plane.axes;
    let img = viz::scatter(&plane.points, &labels, &classes, &title, x_axis, y_axis);
    let rows = format!(
        "{}: {} rows of index,label,z0..z{}",
        a.out.display(),
        plane.points.len(),
        code - 1
    );
    let special = files::is_special(&a.out);
    files::write_atomic(&a.out, csv.as_bytes())?;
    if special {
        // A device or FIFO (`/dev/stdout`, a pipe) took the CSV; a picture beside it would be
        // a new file in /dev, and this line would mix into the CSV on stdout.
        noteln!(
            "{rows}; no scatter plot, since {} is not a regular file",
            a.out.display()
        );
        return Ok(());
    }
    viz::save_image(&plot, &DynamicImage::ImageRgb8(img))?;
    outln!(
        "{rows}; scatter plot {} ({x_axis} against {y_axis})",
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
    let out = a.out.clone().unwrap_or_else(|| "denoise.png".into());
    check_picture_out(&out)?;
    let (gpu, model, source) = open(&a.adapter, &a.checkpoint)?;
    let image = model.arch.spec.image;
    check_grid(3, a.count, "--count", a.cells, image.size)?;
    require_task(&model, &a.checkpoint, "denoise", "denoise")?;
    let noise = match model.arch.spec.task {
        Task::Denoise { noise } => noise,
        _ => unreachable!("checked above"),
    };
    let (images, labels) = source.model_images(a.images.data.as_deref(), &model)?;
    let pixels = image.pixels();
    let inference = Inference::new(&gpu, model, BATCH, a.seed)?;
    let r = block_on(inference.reconstruct(&images, labels.as_deref()))?;
    let n = a.count.min(images.len() / pixels) * pixels;
    let mut rows = r.inputs[..n].to_vec();
    rows.extend(&r.outputs[..n]);
    rows.extend(&images[..n]);
    save_grid(&out, &rows, image, (3, n / pixels), a.cells)?;
    outln!(
        "{}: noisy (top), denoised, clean (bottom). Test set ({} images, noise σ = {noise}): PSNR noisy input {:.2} dB, denoised {:.2} dB",
        out.display(),
        images.len() / pixels,
        apply::psnr(&r.inputs, &images),
        apply::psnr(&r.outputs, &images)
    );
    Ok(())
}

pub fn upscale(a: UpscaleArgs) -> Result<()> {
    let out = a.out.clone().unwrap_or_else(|| {
        if a.input.is_some() {
            "upscaled.png".into()
        } else {
            "upscale.png".into()
        }
    });
    check_picture_out(&out)?;
    let (gpu, model, source) = open(&a.adapter, &a.checkpoint)?;
    let image = model.arch.spec.image;
    // One picture of --input, no padding around it.
    let single = CellArgs {
        padding: 0,
        ..a.cells
    };
    // As every picture command: the flags first, then the model's task.
    match a.input {
        Some(_) => check_grid(1, 1, "--cols", single, image.size)?,
        None => check_grid(4, a.count, "--count", a.cells, image.size)?,
    }
    require_task(&model, &a.checkpoint, "superres", "upscale")?;
    let (c, small) = (image.channels, image.size / 2);
    if let Some(input) = &a.input {
        // Decoded as training decodes a folder's images (any of its formats, alpha over white,
        // grey as Pillow's luma), not scaled.
        let decoded = decode::read_image(input)?;
        let (w, h) = (decoded.width, decoded.height);
        if (h, w) != (small, small) {
            bail!(
                "{}: image is {w}×{h}; this model upscales {small}×{small} images",
                input.display()
            );
        }
        let planes = decode::prepare(&decoded, Some(c as u8), small).planes;
        let pixels: Vec<f32> = planes.iter().map(|&p| f32::from(p) / 255.0).collect();
        if model.arch.spec.is_conditional() {
            bail!(
                "{}: a conditional model needs each image's class, which --input does not give; upscale its test images (without --input)",
                a.checkpoint.display()
            );
        }
        let inference = Inference::new(&gpu, model, 1, 0)?;
        // The model pools its S×S target to S/2: nearest upscaling pools back exactly.
        let r =
            block_on(inference.reconstruct(&apply::upscale_nearest(&pixels, small, small), None))?;
        save_grid(&out, &r.outputs, image, (1, 1), single)?;
        outln!(
            "{}: {} upscaled to {}×{}",
            out.display(),
            input.display(),
            image.size,
            image.size
        );
        return Ok(());
    }
    let (images, labels) = source.model_images(a.images.data.as_deref(), &model)?;
    let inference = Inference::new(&gpu, model, BATCH, 0)?;
    let r = block_on(inference.reconstruct(&images, labels.as_deref()))?;
    // Every plane of every image is one small×small picture to upscale.
    let nearest = apply::upscale_nearest(&r.inputs, small, small);
    let bilinear = apply::upscale_bilinear(&r.inputs, small, small);
    let pixels = image.pixels();
    let n = a.count.min(images.len() / pixels) * pixels;
    let mut rows = nearest[..n].to_vec();
    rows.extend(&bilinear[..n]);
    rows.extend(&r.outputs[..n]);
    rows.extend(&images[..n]);
    save_grid(&out, &rows, image, (4, n / pixels), a.cells)?;
    outln!(
        "{}: {small}×{small} input (top), bilinear, gpu-ae, original (bottom). Test set ({} images): PSNR nearest {:.2} dB, bilinear {:.2} dB, gpu-ae {:.2} dB",
        out.display(),
        images.len() / pixels,
        apply::psnr(&nearest, &images),
        apply::psnr(&bilinear, &images),
        apply::psnr(&r.outputs, &images)
    );
    Ok(())
}
