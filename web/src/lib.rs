//! gpu-ae in a web page: wasm-bindgen exports that drive the library's own [`Trainer`],
//! [`Inference`] and checkpoints on the browser's WebGPU adapter. The kernels, shaders and
//! plans are the crate's; this file only keeps the page's state (one adapter, MNIST, one
//! training, one model to look at) and converts to and from JavaScript values. The page
//! (`static/app.js`) awaits every call; at most one training epoch runs at a time, and the
//! preview calls ([`samples`], [`manifold`], [`reconstructions`], [`latents`]) may run while it
//! does: their GPU work is queued between the training submissions.

mod selftest;

use gpu_ae::checkpoint;
use gpu_ae::data::{self, fingerprint};
use gpu_ae::data::{Binarize, Dataset, Split, SplitRule};
use gpu_ae::gpu::{AdapterChoice, DeviceLimits, Elem, Gpu, is_software};
use gpu_ae::model::graph::{Model, values_from_checkpoint};
use gpu_ae::model::record::read_spec;
use gpu_ae::model::{Architecture, LossKind, ModelKind, ModelSpec, Task};
use gpu_ae::pictures::apply;
use gpu_ae::pictures::infer::Inference;
use gpu_ae::run::gpu_split::GpuSplit;
use gpu_ae::run::settings::DatasetRecord;
use gpu_ae::run::settings::TrainConfig;
use gpu_ae::run::train::{EpochEnd, TrainProgress, Trainer};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// Images per inference batch of the previews.
const VIEW_BATCH: usize = 100;

/// A training in the page.
struct Training {
    trainer: Trainer<'static>,
    /// The epoch the next call trains (0-based; its shuffle).
    epoch: usize,
    /// The step it starts at: where a paused epoch stopped, else 0.
    step: usize,
}

/// The model the previews show: the training's (its parameters copied in before each
/// preview) or one opened from a checkpoint.
struct View {
    inference: Inference<'static>,
    /// The training's parameters and running statistics, `[P]` and `[B]`.
    source: Option<(wgpu::Buffer, wgpu::Buffer)>,
    spec: ModelSpec,
}

thread_local! {
    /// The page's one device, alive as long as the page.
    static GPU: Cell<Option<&'static Gpu>> = const { Cell::new(None) };
    static MNIST: RefCell<Option<Rc<Dataset>>> = const { RefCell::new(None) };
    /// `None` while an epoch runs (the epoch owns it).
    static TRAINING: RefCell<Option<Training>> = const { RefCell::new(None) };
    static VIEW: RefCell<Option<Rc<View>>> = const { RefCell::new(None) };
    /// Set by [`pause`]: the running epoch stops before its next submission.
    static PAUSE: Cell<bool> = const { Cell::new(false) };
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console)]
    fn error(message: &str);
}

/// Runs when the module is instantiated: a panic's message goes to the browser's console
/// (and so into the headless test's output) before the call fails.
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| error(&format!("gpu-ae panicked: {info}"))));
}

fn js_err(e: impl std::fmt::Display) -> JsValue {
    JsValue::from_str(&e.to_string())
}

fn gpu() -> Result<&'static Gpu, JsValue> {
    GPU.with(Cell::get)
        .ok_or_else(|| js_err("the GPU is not open yet (call open_gpu)"))
}

fn mnist() -> Result<Rc<Dataset>, JsValue> {
    MNIST
        .with(|m| m.borrow().clone())
        .ok_or_else(|| js_err("MNIST is not loaded yet (call load_mnist)"))
}

fn view() -> Result<Rc<View>, JsValue> {
    VIEW.with(|v| v.borrow().clone())
        .ok_or_else(|| js_err("no model yet: start a training or open a checkpoint"))
}

/// Opens the browser's WebGPU adapter with the limits it has (never more than it offers), and
/// returns `{"backend", "software", "limits": {...}, "f16": bool}` as JSON. `description` is
/// the adapter as the page's `GPUAdapterInfo` names it (wgpu's name is empty on the web): a
/// software renderer (SwiftShader) gets the grids of a CPU adapter. Idempotent.
#[wasm_bindgen]
pub async fn open_gpu(description: String) -> Result<String, JsValue> {
    let gpu = match GPU.with(Cell::get) {
        Some(gpu) => gpu,
        None => {
            let mut gpu = Gpu::request(&AdapterChoice::Best, DeviceLimits::Adapter)
                .await
                .map_err(js_err)?;
            let named = wgpu::AdapterInfo {
                name: description,
                ..gpu.info.clone()
            };
            if is_software(&named) {
                gpu.busy_workgroups = 1;
            }
            let gpu: &'static Gpu = Box::leak(Box::new(gpu));
            GPU.with(|g| g.set(Some(gpu)));
            gpu
        }
    };
    let l = &gpu.limits;
    Ok(serde_json::json!({
        "backend": format!("{:?}", gpu.info.backend),
        "software": gpu.busy_workgroups == 1,
        "f16": gpu.has_f16(),
        "limits": {
            "max_storage_buffer_binding_size": l.max_storage_buffer_binding_size,
            "max_storage_buffers_per_shader_stage": l.max_storage_buffers_per_shader_stage,
            "max_compute_invocations_per_workgroup": l.max_compute_invocations_per_workgroup,
            "max_compute_workgroup_storage_size": l.max_compute_workgroup_storage_size,
        },
    })
    .to_string())
}

/// Parses MNIST's four IDX files (gzip or raw, as downloaded) and keeps them; returns
/// `{"train": n, "test": m, "channels": 1, "size": S}` (S: the images' side).
#[wasm_bindgen]
pub fn load_mnist(
    train_images: &[u8],
    train_labels: &[u8],
    test_images: &[u8],
    test_labels: &[u8],
) -> Result<String, JsValue> {
    let split = |images: &[u8], labels: &[u8], name: &str| -> gpu_ae::Result<Split> {
        let images = data::idx::images_from_bytes(Path::new(&format!("{name}-images")), images)?;
        let labels = data::idx::labels_from_bytes(Path::new(&format!("{name}-labels")), labels)?;
        Ok(Split {
            images,
            labels: labels.into_iter().map(u32::from).collect(),
        })
    };
    let dataset = Dataset {
        dir: "mnist".into(),
        train: split(train_images, train_labels, "train").map_err(js_err)?,
        test: split(test_images, test_labels, "t10k").map_err(js_err)?,
        classes: Vec::new(),
        split_rule: SplitRule::IdxFiles,
        ignored: 0,
        outside_split: 0,
    };
    let counts = serde_json::json!({
        "train": dataset.train.images.count,
        "test": dataset.test.images.count,
        "channels": dataset.test.images.channels,
        "size": dataset.test.images.rows,
    });
    MNIST.with(|m| *m.borrow_mut() = Some(Rc::new(dataset)));
    Ok(counts.to_string())
}

/// A conv-vae of latent size `latent` for MNIST.
fn conv_vae(latent: usize) -> ModelSpec {
    ModelSpec::mnist(ModelKind::ConvVae, latent, Task::Reconstruct, LossKind::Bce)
}

/// A fresh trainer of conv-vae (latent `latent`) on the first `images` MNIST training images,
/// its activations stored as `precision`.
fn new_trainer(
    gpu: &'static Gpu,
    latent: usize,
    batch: usize,
    lr: f32,
    images: usize,
    seed: u64,
    precision: Elem,
) -> gpu_ae::Result<Trainer<'static>> {
    let mnist = MNIST
        .with(|m| m.borrow().clone())
        .ok_or_else(|| gpu_ae::Error::msg("MNIST is not loaded yet"))?;
    let train = mnist.train.clone().first(images);
    let split = GpuSplit::upload(gpu, &train, Path::new("mnist"))?;
    let cfg = TrainConfig {
        spec: conv_vae(latent),
        batch,
        lr,
        schedule: Default::default(),
        seed,
        precision,
        beta: 1.0,
        binarize: Binarize::None,
        init: None,
    };
    Trainer::new(gpu, cfg, split, None, None, 0)
}

/// Starts a new training of conv-vae (latent 2 or 16) on the first `images` training images
/// (replacing any other), activations stored as f16 when `f16` (the adapter needs
/// `shader-f16`), and makes it the model the previews show. Returns
/// `{"params": P, "steps_per_epoch": S, "f16": bool, "channels": C, "size": S}` (the model's
/// image shape, which the previews draw).
#[wasm_bindgen]
pub fn start_training(
    latent: usize,
    batch: usize,
    lr: f32,
    images: usize,
    seed: u32,
    f16: bool,
) -> Result<String, JsValue> {
    let gpu = gpu()?;
    // A view of a training whose trainer is not in its slot: an epoch owns it right now.
    let viewing_training = VIEW.with(|v| v.borrow().as_ref().is_some_and(|v| v.source.is_some()));
    if viewing_training && TRAINING.with(|t| t.borrow().is_none()) {
        return Err(js_err("an epoch is running: pause first"));
    }
    if f16 && !gpu.has_f16() {
        return Err(js_err("this adapter has no shader-f16: train in f32"));
    }
    let precision = if f16 { Elem::F16 } else { Elem::F32 };
    let trainer =
        new_trainer(gpu, latent, batch, lr, images, seed as u64, precision).map_err(js_err)?;
    let arch = trainer.model.arch.clone();
    let params = arch.params.total;
    let steps = trainer.steps_per_epoch();
    let model = Model::new(gpu, arch, &vec![0.0; params]).map_err(js_err)?;
    let inference = Inference::new(gpu, model, VIEW_BATCH, 0).map_err(js_err)?;
    let source = Some((
        trainer.model.params.buffer.clone(),
        trainer.model.buffers.buffer.clone(),
    ));
    let spec = trainer.cfg.spec.clone();
    let spec_image = spec.image;
    TRAINING.with(|t| {
        *t.borrow_mut() = Some(Training {
            trainer,
            epoch: 0,
            step: 0,
        })
    });
    VIEW.with(|v| {
        *v.borrow_mut() = Some(Rc::new(View {
            inference,
            source,
            spec,
        }))
    });
    Ok(serde_json::json!({
        "params": params,
        "steps_per_epoch": steps,
        "f16": f16,
        "channels": spec_image.channels,
        "size": spec_image.size,
    })
    .to_string())
}

/// One line of progress as JSON: the epoch, steps done and per epoch, the mean loss so far,
/// and images per second.
fn progress_json(p: &TrainProgress, steps_done: u64) -> String {
    serde_json::json!({
        "epoch": p.epoch,
        "step": p.step,
        "steps": p.steps,
        "steps_done": steps_done + p.step as u64,
        "loss": p.mean_loss(),
        "images": p.images,
        "seconds": p.seconds,
        "images_per_s": p.images as f64 / p.seconds.max(1e-9),
    })
    .to_string()
}

/// Trains one epoch, or the rest of one that [`pause`] stopped, calling `on_progress` with
/// [`progress_json`] after each submission's losses arrive (the loss and images/s of this
/// call's steps). Resolves to `{"finished": bool, "progress": {...}}` when the epoch ends or
/// [`pause`] stopped it.
#[wasm_bindgen]
pub async fn train_epoch(on_progress: js_sys::Function) -> Result<String, JsValue> {
    let mut t = TRAINING
        .with(|t| t.borrow_mut().take())
        .ok_or_else(|| js_err("no training to continue (start one, or one is running)"))?;
    PAUSE.with(|p| p.set(false));
    let steps_before = t.trainer.steps_done;
    // The step count when this epoch began (a continued epoch began in an earlier call).
    let epoch_base = steps_before - t.step as u64;
    let mut last = String::new();
    let result = t
        .trainer
        .run_epoch(t.epoch, t.step, &|_| PAUSE.with(Cell::get), &mut |p| {
            last = progress_json(p, epoch_base);
            let _ = on_progress.call1(&JsValue::NULL, &JsValue::from_str(&last));
        })
        .await;
    let finished = matches!(result, Ok(EpochEnd::Finished(_)));
    if finished {
        (t.epoch, t.step) = (t.epoch + 1, 0);
    } else {
        // Paused (or failed): the next call continues this epoch where it stopped.
        t.step += (t.trainer.steps_done - steps_before) as usize;
    }
    TRAINING.with(|slot| *slot.borrow_mut() = Some(t));
    result.map_err(js_err)?;
    let progress: serde_json::Value = serde_json::from_str(&last).unwrap_or_default();
    Ok(serde_json::json!({ "finished": finished, "progress": progress }).to_string())
}

/// Asks the running epoch to stop before its next submission.
#[wasm_bindgen]
pub fn pause() {
    PAUSE.with(|p| p.set(true));
}

impl View {
    /// Copies the training's current parameters into the preview model (queued after the
    /// training work submitted so far).
    fn sync(&self, gpu: &Gpu) {
        let Some((params, buffers)) = &self.source else {
            return;
        };
        let model = &self.inference.model;
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("preview parameters"),
            });
        encoder.copy_buffer_to_buffer(params, 0, &model.params.buffer, 0, params.size());
        encoder.copy_buffer_to_buffer(buffers, 0, &model.buffers.buffer, 0, buffers.size());
        gpu.queue.submit([encoder.finish()]);
    }
}

/// `count` samples from the prior, `[count, C, S, S]` in [0, 1].
#[wasm_bindgen]
pub async fn samples(count: usize, seed: u32) -> Result<Vec<f32>, JsValue> {
    let (gpu, v) = (gpu()?, view()?);
    v.sync(gpu);
    let codes = apply::prior_samples(count, v.spec.latent, seed);
    v.inference.decode(&codes, None).await.map_err(js_err)
}

/// The 2-D latent manifold, `rows × rows` images `[rows², C, S, S]` (latent 2 only).
#[wasm_bindgen]
pub async fn manifold(rows: usize) -> Result<Vec<f32>, JsValue> {
    let (gpu, v) = (gpu()?, view()?);
    if v.spec.latent != 2 {
        return Err(js_err("the manifold needs a 2-D latent"));
    }
    v.sync(gpu);
    let codes = apply::manifold_codes(rows, rows);
    v.inference.decode(&codes, None).await.map_err(js_err)
}

/// The first `count` test images as floats in [0, 1], `[count, C·S·S]`.
fn test_images(mnist: &Dataset, count: usize) -> Vec<f32> {
    let im = &mnist.test.images;
    let count = count.min(im.count);
    im.pixels[..count * im.pixels_per_image()]
        .iter()
        .map(|&b| b as f32 / 255.0)
        .collect()
}

/// The first `count` test images and their reconstructions: `[2, count, C, S, S]`.
#[wasm_bindgen]
pub async fn reconstructions(count: usize) -> Result<Vec<f32>, JsValue> {
    let (gpu, v, mnist) = (gpu()?, view()?, mnist()?);
    v.sync(gpu);
    let mut images = test_images(&mnist, count);
    let r = v
        .inference
        .reconstruct(&images, None)
        .await
        .map_err(js_err)?;
    images.extend(r.outputs);
    Ok(images)
}

/// The codes (posterior means) of the first `count` test images, `[count, L]`.
#[wasm_bindgen]
pub async fn latents(count: usize) -> Result<Vec<f32>, JsValue> {
    let (gpu, v, mnist) = (gpu()?, view()?, mnist()?);
    v.sync(gpu);
    let images = test_images(&mnist, count);
    let r = v
        .inference
        .reconstruct(&images, None)
        .await
        .map_err(js_err)?;
    Ok(r.codes)
}

/// The labels of the first `count` test images.
#[wasm_bindgen]
pub fn test_labels(count: usize) -> Result<Vec<u32>, JsValue> {
    let mnist = mnist()?;
    let labels = &mnist.test.labels;
    Ok(labels[..count.min(labels.len())].to_vec())
}

/// The training's model as the `model.safetensors` the command line writes (PyTorch names,
/// the model and run in its metadata), so `gpu-ae sample --checkpoint` reads it. Only while no
/// epoch runs.
#[wasm_bindgen]
pub async fn checkpoint_bytes() -> Result<Vec<u8>, JsValue> {
    let mnist = mnist()?;
    let t = TRAINING
        .with(|t| t.borrow_mut().take())
        .ok_or_else(|| js_err("no training to save (or an epoch is running: pause first)"))?;
    let data = DatasetRecord {
        path: "mnist".into(),
        digest: fingerprint::dataset_digest(&mnist),
        split: SplitRule::IdxFiles,
    };
    // A model to sample from, not to resume (no optimizer file): a paused epoch's steps count
    // in `steps`, and no partial epoch is recorded.
    let result = t
        .trainer
        .checkpoint(t.epoch, None, &data, BTreeMap::new())
        .await;
    TRAINING.with(|slot| *slot.borrow_mut() = Some(t));
    let (model, _optimizer) = result.map_err(js_err)?;
    checkpoint::to_bytes(&model, &"model.safetensors").map_err(js_err)
}

/// Opens a checkpoint (the bytes of a `model.safetensors`, `name` for errors) as the model the
/// previews show; returns `{"model", "latent", "channels", "size", "epoch"}`.
#[wasm_bindgen]
pub fn open_checkpoint(bytes: &[u8], name: &str) -> Result<String, JsValue> {
    let gpu = gpu()?;
    let path = Path::new(name);
    let ckpt = checkpoint::from_bytes(bytes, &name).map_err(js_err)?;
    let spec = read_spec(&ckpt, path).map_err(js_err)?;
    let arch = Architecture::new(spec.clone()).map_err(js_err)?;
    let values = values_from_checkpoint(&arch, &ckpt, path).map_err(js_err)?;
    let model = Model::upload(gpu, arch, &values).map_err(js_err)?;
    let inference = Inference::new(gpu, model, VIEW_BATCH, 0).map_err(js_err)?;
    let info = serde_json::json!({
        "model": spec.kind.name(),
        "latent": spec.latent,
        "channels": spec.image.channels,
        "size": spec.image.size,
        "epoch": ckpt.meta("epoch"),
        "conditional": spec.is_conditional(),
    });
    VIEW.with(|v| {
        *v.borrow_mut() = Some(Rc::new(View {
            inference,
            source: None,
            spec,
        }))
    });
    Ok(info.to_string())
}

/// The self-test of `index.html?selftest`: kernel families against the CPU reference, then
/// conv-vae training steps on a slice of MNIST. Resolves to one JSON line (see
/// [`selftest::run`]).
#[wasm_bindgen]
pub async fn selftest(on_line: js_sys::Function) -> String {
    let log = |line: &str| {
        let _ = on_line.call1(&JsValue::NULL, &JsValue::from_str(line));
    };
    selftest::run(gpu().ok(), &log).await.to_string()
}
