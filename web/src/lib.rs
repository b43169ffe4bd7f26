//! gpu-ae in a web page: wasm-bindgen exports that drive the library's own [`Trainer`],
//! [`Inference`], [`Evaluator`] and checkpoints on the browser's WebGPU adapter. The kernels,
//! shaders, plans and data rules are the crate's: a folder the person picks is read by
//! [`MemoryFolder`], the same code as `gpu-ae train --data DIR`, and a training's settings are
//! the [`TrainConfig`] record the command line writes. This file only keeps the page's state
//! (one adapter, one dataset, one training, one model to look at) and converts to and from
//! JavaScript values. The page
//! (`static/app.js`) awaits every call; at most one training epoch runs at a time, and the
//! preview calls ([`samples`], [`manifold`], [`reconstructions`], [`latents`]) may run while it
//! does: their GPU work is queued between the training submissions.

mod selftest;

use gpu_ae::checkpoint;
use gpu_ae::data::decode::Prepared;
use gpu_ae::data::memory::{MemoryFile, MemoryFolder, prepare_file};
use gpu_ae::data::{self, DataOptions, classes, fingerprint};
use gpu_ae::data::{Binarize, Dataset, Split, SplitRule};
use gpu_ae::gpu::{AdapterChoice, DeviceLimits, Elem, Gpu, is_software};
use gpu_ae::metadata::{self, Metadata};
use gpu_ae::model::graph::{Model, values_from_checkpoint};
use gpu_ae::model::record::read_spec;
use gpu_ae::model::{Architecture, ModelSpec, Task};
use gpu_ae::pictures::apply;
use gpu_ae::pictures::infer::Inference;
use gpu_ae::pictures::projection::principal_plane;
use gpu_ae::run::ResumeState;
use gpu_ae::run::batch_plans::epoch_steps;
use gpu_ae::run::evaluate::Evaluator;
use gpu_ae::run::gpu_split::GpuSplit;
use gpu_ae::run::settings::{DatasetRecord, TrainConfig, read_binarize};
use gpu_ae::run::train::{EpochEnd, TrainProgress, Trainer};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// Images per inference batch of the previews (a batch is padded to it: small keeps a preview
/// of a few images cheap on a slow adapter).
const VIEW_BATCH: usize = 32;
/// Images per batch of the test-set evaluation (its figures do not depend on it).
const EVAL_BATCH: usize = 100;

/// A training in the page.
struct Training {
    trainer: Trainer<'static>,
    /// The dataset as its checkpoints record it (the folder's name, the digest of its images).
    record: DatasetRecord,
    /// The epoch the next call trains (0-based; its shuffle), from the step where a pause
    /// stopped it with the loss sums of the steps before (step 0 at its start).
    kept: TrainProgress,
    /// Why an epoch failed (a loss that diverged, a lost device): such a training does not
    /// continue.
    failed: Option<String>,
}

/// The model the previews show: the training's (its parameters copied in before each
/// preview) or one opened from a checkpoint.
struct View {
    inference: Inference<'static>,
    /// The training's parameters and running statistics, `[P]` and `[B]`.
    source: Option<(wgpu::Buffer, wgpu::Buffer)>,
    spec: ModelSpec,
    /// The test images the previews encode and the evaluation scores: the training's dataset,
    /// or the page's when an opened model takes its images (and classes); labels as the
    /// model's classes.
    data: Option<Rc<Dataset>>,
    /// Whether the model trained on binarised images (then evaluated on binarised ones).
    binarize: Binarize,
    /// The test images [`evaluate`] scored last, on the GPU, and the subset they are (0: all
    /// of the split): the page evaluates the same images after every epoch.
    scored: RefCell<Option<(usize, Rc<GpuSplit>)>>,
}

thread_local! {
    /// The page's one device, alive as long as the page.
    static GPU: Cell<Option<&'static Gpu>> = const { Cell::new(None) };
    /// The dataset the page trains on: MNIST, or a folder the person picked.
    static DATA: RefCell<Option<Rc<Dataset>>> = const { RefCell::new(None) };
    /// A picked folder's name and files while the page hands them in.
    static FILES: RefCell<Option<(String, Vec<MemoryFile>)>> = const { RefCell::new(None) };
    /// A picked folder while its images are decoded.
    static FOLDER: RefCell<Option<MemoryFolder>> = const { RefCell::new(None) };
    /// `None` while an epoch runs (the epoch owns it).
    static TRAINING: RefCell<Option<Training>> = const { RefCell::new(None) };
    static VIEW: RefCell<Option<Rc<View>>> = const { RefCell::new(None) };
    /// Why the device was lost, once it was ([`device_lost`]).
    static LOST: RefCell<Option<String>> = const { RefCell::new(None) };
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

/// `{"train", "test", "channels", "size", "classes", "ignored", "split"}` of a dataset.
fn dataset_json(d: &Dataset) -> serde_json::Value {
    serde_json::json!({
        "name": d.dir.display().to_string(),
        "train": d.train.images.count,
        "test": d.test.images.count,
        "channels": d.test.images.channels,
        "size": d.test.images.rows,
        "classes": d.classes,
        "ignored": d.ignored,
        "outside_split": d.outside_split,
        "split": d.split_rule.to_string(),
    })
}

/// Makes `d` the page's dataset and returns [`dataset_json`].
fn set_dataset(d: Dataset) -> String {
    let info = dataset_json(&d).to_string();
    DATA.with(|m| *m.borrow_mut() = Some(Rc::new(d)));
    info
}

fn view() -> Result<Rc<View>, JsValue> {
    VIEW.with(|v| v.borrow().clone())
        .ok_or_else(|| js_err("no model yet: start a training or open a checkpoint"))
}

/// Opens the browser's WebGPU adapter (again, after [`device_lost`]) with the limits it has (never more than it offers), and
/// returns `{"backend", "software", "limits": {...}, "f16": bool}` as JSON. `description` is
/// the adapter as the page's `GPUAdapterInfo` names it (wgpu's name is empty on the web): a
/// software renderer (SwiftShader) gets the grids of a CPU adapter. Idempotent.
#[wasm_bindgen]
pub async fn open_gpu(description: String) -> Result<String, JsValue> {
    // A lost device is replaced, and what lived on it (the training, the model on view) dropped.
    if LOST.with(|l| l.borrow_mut().take()).is_some() {
        TRAINING.with(|t| t.borrow_mut().take());
        VIEW.with(|v| v.borrow_mut().take());
        GPU.with(|g| g.set(None));
    }
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
            gpu.device.set_device_lost_callback(|reason, message| {
                let why = format!("{reason:?}: {message}");
                LOST.with(|l| *l.borrow_mut() = Some(why));
            });
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
    Ok(set_dataset(dataset))
}

/// Begins handing in a folder the person picked, named `name`: each of its files goes in by
/// [`folder_file`], then [`open_folder`] reads them. The module keeps the only copy of the
/// bytes, so the page can let go of each file once handed in.
#[wasm_bindgen]
pub fn begin_folder(name: String) {
    FOLDER.with(|f| *f.borrow_mut() = None);
    FILES.with(|f| *f.borrow_mut() = Some((name, Vec::new())));
}

/// Hands in one file of the folder [`begin_folder`] named: its path relative to the folder
/// (`/` separators) and its bytes.
#[wasm_bindgen]
pub fn folder_file(path: String, bytes: Vec<u8>) -> Result<(), JsValue> {
    FILES.with(|f| match &mut *f.borrow_mut() {
        Some((_, files)) => {
            files.push(MemoryFile { path, bytes });
            Ok(())
        }
        None => Err(js_err("folder_file: no folder begun (call begin_folder)")),
    })
}

/// Starts reading the folder whose files were handed in ([`begin_folder`], [`folder_file`]):
/// by the rules of `gpu-ae train --data DIR` ([`MemoryFolder`]), with `channels` and `size`
/// the options (0: the images' own) and `test_percent` the split's. Returns `{"done",
/// "total", "size", "channels", "to_decode"}`: the side and channels (0: as each image) every
/// image is prepared at, and the paths of the images to decode, in order; the page's workers
/// decode them ([`folder_image_bytes`], [`prepare_image`]) and hand them in ([`folder_add`]),
/// or [`decode_folder`] decodes them here.
#[wasm_bindgen]
pub fn open_folder(channels: u8, size: usize, test_percent: u32) -> Result<String, JsValue> {
    let (name, files) = FILES
        .with(|f| f.borrow_mut().take())
        .ok_or_else(|| js_err("open_folder: no folder begun (call begin_folder)"))?;
    let opts = DataOptions {
        channels: (channels > 0).then_some(channels),
        size: (size > 0).then_some(size),
        test_percent,
    };
    let folder = data::open_files(Path::new(&name), files, &opts).map_err(js_err)?;
    let (done, total) = folder.progress();
    let (size, channels) = folder.shape();
    let answer = serde_json::json!({
        "done": done,
        "total": total,
        "size": size,
        "channels": channels.unwrap_or(0),
        "to_decode": folder.to_decode(),
    });
    FOLDER.with(|f| *f.borrow_mut() = Some(folder));
    Ok(answer.to_string())
}

/// An image of a picked folder decoded and prepared by gpu-ae's decoder ([`prepare_image`]),
/// for [`folder_add`].
#[wasm_bindgen]
pub struct PreparedImage {
    planes: Vec<u8>,
    /// Whether the image was grey.
    pub grey: bool,
    /// Whether it was scaled or made grey.
    pub converted: bool,
}

#[wasm_bindgen]
impl PreparedImage {
    /// Its planes `[planes, size, size]`, moved out.
    pub fn take_planes(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.planes)
    }
}

/// The bytes of image `k` of [`open_folder`]'s `to_decode` (its index in that list), for a
/// worker to prepare; the module frees them once the image is handed in.
#[wasm_bindgen]
pub fn folder_image_bytes(k: usize) -> Result<Vec<u8>, JsValue> {
    FOLDER.with(|f| {
        let f = f.borrow();
        let folder = f
            .as_ref()
            .ok_or_else(|| js_err("no folder is being read (call open_folder)"))?;
        folder
            .image_bytes(k)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| js_err(format!("folder_image_bytes: no image {k} left to decode")))
    })
}

/// Decodes and prepares one image of the folder `name` (`path` inside it, `bytes`) at
/// [`open_folder`]'s `size` and `channels` (0: as the image): what the page's decoding workers
/// run, each with its own instance of this module. The error names the file.
#[wasm_bindgen]
pub fn prepare_image(
    name: &str,
    path: &str,
    bytes: &[u8],
    channels: u8,
    size: usize,
) -> Result<PreparedImage, JsValue> {
    let channels = (channels > 0).then_some(channels);
    let p = prepare_file(Path::new(name), path, bytes, channels, size).map_err(js_err)?;
    Ok(PreparedImage {
        planes: p.planes,
        grey: p.grey,
        converted: p.converted,
    })
}

/// Hands in the next image of [`open_folder`]'s `to_decode`, prepared by [`prepare_image`];
/// answers as [`decode_folder`].
#[wasm_bindgen]
pub fn folder_add(planes: Vec<u8>, grey: bool, converted: bool) -> Result<String, JsValue> {
    folder_step(|folder| {
        folder.add_prepared(Prepared {
            planes,
            grey,
            converted,
        })
    })
}

/// Decodes up to `count` more images of the folder [`open_folder`] started, on the page's
/// thread (where the page has no workers); returns
/// `{"done", "total"}`, and once every image is decoded the folder becomes the page's dataset
/// and the answer is `{"done", "total", "dataset": {...}}` ([`dataset_json`]). An image that
/// does not decode is an error naming it, and the folder is dropped.
#[wasm_bindgen]
pub fn decode_folder(count: usize) -> Result<String, JsValue> {
    folder_step(|folder| folder.decode_next(count))
}

/// Runs `step` on the folder being read: `{"done", "total"}`, or once every image is decoded
/// `{"done", "total", "dataset"}` with the folder made the page's dataset. A failed step
/// drops the folder.
fn folder_step(
    step: impl FnOnce(&mut MemoryFolder) -> gpu_ae::Result<()>,
) -> Result<String, JsValue> {
    let mut folder = FOLDER
        .with(|f| f.borrow_mut().take())
        .ok_or_else(|| js_err("no folder is being read (call open_folder)"))?;
    step(&mut folder).map_err(js_err)?;
    let (done, total) = folder.progress();
    if done < total {
        FOLDER.with(|f| *f.borrow_mut() = Some(folder));
        return Ok(serde_json::json!({ "done": done, "total": total }).to_string());
    }
    let info: serde_json::Value = serde_json::from_str(&set_dataset(folder.finish())).unwrap();
    Ok(serde_json::json!({ "done": done, "total": total, "dataset": info }).to_string())
}

/// The settings of a new training from the page: a JSON object whose keys are the
/// [`TrainConfig`] record's (the `gpu-ae train` flags and checkpoint metadata keys: `model`,
/// `latent`, `widths` as `32,64,128`, `norm`, `act`, `block`, `upsample`, `beta`, `batch`,
/// `lr`, `lr_schedule`, `warmup_steps`, `seed`, `precision`, …; values as strings or numbers),
/// read and checked by the same code, with the image shape and a conditional model's classes
/// from the data. Three keys are the page's own: `epochs` (the cosine schedule's horizon),
/// `images` (train on the first N training images; 0 or absent: all) and `conditional`.
struct PageSettings {
    cfg: TrainConfig,
    images: usize,
}

impl PageSettings {
    fn read(json: &str, data: &Dataset) -> gpu_ae::Result<PageSettings> {
        let what = Path::new("the page's settings");
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)
            .map_err(|e| gpu_ae::Error::msg(format!("the page's settings: {e}")))?;
        let mut map = Metadata::new();
        for (key, value) in object {
            let text = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            map.insert(key, text);
        }
        let mut take = |key: &str| map.remove(key);
        let count = |key: &str, text: Option<String>| -> gpu_ae::Result<usize> {
            text.map_or(Ok(0), |t| {
                t.parse()
                    .map_err(|_| gpu_ae::Error::msg(format!("{key}: {t:?} is not a count")))
            })
        };
        let epochs = count("epochs", take("epochs"))?.max(1);
        let images = count("images", take("images"))?;
        let conditional = take("conditional").is_some_and(|t| t == "true");
        let im = &data.test.images;
        map.insert("channels".into(), im.channels.to_string());
        map.insert("size".into(), im.rows.to_string());
        if conditional {
            let splits = [&data.train, &data.test];
            let names = classes::names(&data.classes, &splits, &data.dir)?;
            map.insert("classes".into(), serde_json::to_string(&names).unwrap());
        }
        let mut cfg: TrainConfig = metadata::read(&map, what)?;
        let count = match images {
            0 => data.train.images.count,
            n => n.min(data.train.images.count),
        };
        cfg.schedule = cfg
            .schedule
            .over_epochs(epochs, epoch_steps(count, cfg.batch))
            .ok_or_else(|| gpu_ae::Error::msg("epochs: more than 2³² training steps"))?;
        Ok(PageSettings { cfg, images })
    }
}

/// The page's dataset as a model trains on it: a conditional model's labels renumbered as its
/// classes.
fn dataset_for(spec: &ModelSpec, data: &Rc<Dataset>) -> gpu_ae::Result<Rc<Dataset>> {
    if !spec.is_conditional() {
        return Ok(data.clone());
    }
    let mut d = (**data).clone();
    for split in [&mut d.train, &mut d.test] {
        split.labels = classes::relabel(&split.labels, &data.classes, &spec.classes, &data.dir)?;
    }
    Ok(Rc::new(d))
}

/// A new trainer with `settings` ([`PageSettings`]) on the page's dataset; also the dataset as
/// the model trains on it, and as its checkpoints record it.
fn new_trainer(
    gpu: &'static Gpu,
    settings: &str,
) -> gpu_ae::Result<(Trainer<'static>, Rc<Dataset>, DatasetRecord)> {
    let original = DATA
        .with(|d| d.borrow().clone())
        .ok_or_else(|| gpu_ae::Error::msg("no images yet: load MNIST or pick a folder"))?;
    let page = PageSettings::read(settings, &original)?;
    let cfg = page.cfg;
    if cfg.precision == Elem::F16 && !gpu.has_f16() {
        gpu_ae::bail!("precision f16: this adapter has no shader-f16; train in f32");
    }
    let record = DatasetRecord {
        path: original.dir.clone(),
        digest: fingerprint::dataset_digest(&original),
        split: original.split_rule,
    };
    let data = dataset_for(&cfg.spec, &original)?;
    let train = match page.images {
        0 => data.train.clone(),
        n => data.train.clone().first(n),
    };
    let split = GpuSplit::upload(gpu, &train, &data.dir)?;
    let trainer = Trainer::new(gpu, cfg, split, None, None, 0)?;
    Ok((trainer, data, record))
}

/// Starts a new training (replacing any other) with `settings` ([`PageSettings`]) on the page's
/// dataset, and makes it the model the previews show. Returns [`install_training`]'s answer.
#[wasm_bindgen]
pub fn start_training(settings: String) -> Result<String, JsValue> {
    let gpu = gpu()?;
    refuse_while_training()?;
    let (trainer, data, record) = new_trainer(gpu, &settings).map_err(js_err)?;
    let steps = trainer.steps_per_epoch();
    let kept = TrainProgress::start(0, steps, f64::from(trainer.cfg.beta), None);
    install_training(gpu, trainer, data, record, kept)
}

/// Continues a run in the page from its two checkpoint files (the bytes of a
/// `model.safetensors` and its `optimizer.safetensors`, `name` for errors; written by `gpu-ae
/// train` or downloaded from this page, a paused epoch included) on the page's dataset, which
/// must hold the images it trained on; `images` > 0 trains on the first `images` training
/// images as the run did. Returns [`install_training`]'s answer, with `"epoch"` (0-based) and
/// `"steps_done"` where it continues.
#[wasm_bindgen]
pub fn resume_training(
    model: &[u8],
    optimizer: &[u8],
    name: &str,
    images: usize,
) -> Result<String, JsValue> {
    let gpu = gpu()?;
    refuse_while_training()?;
    let original = DATA
        .with(|d| d.borrow().clone())
        .ok_or_else(|| js_err("pick the run's images (its folder, or MNIST) first"))?;
    let model_path = Path::new(name);
    let opt_path = Path::new("optimizer.safetensors");
    let ckpt = checkpoint::from_bytes(model, &name).map_err(js_err)?;
    let opt = checkpoint::from_bytes(optimizer, &"optimizer.safetensors").map_err(js_err)?;
    let state = ResumeState::read(&ckpt, &opt, model_path, opt_path).map_err(js_err)?;
    let r = &state.record;
    let digest = fingerprint::dataset_digest(&original);
    if let Some(d) = r.data.as_ref().filter(|d| d.digest != digest) {
        return Err(js_err(format!(
            "{name}: the run trained on other images ({}, {}) than the page's {} ({digest}); pick the folder it trained on, with its size and channels",
            d.path.display(),
            d.digest,
            original.dir.display()
        )));
    }
    let record = DatasetRecord {
        path: original.dir.clone(),
        digest,
        split: original.split_rule,
    };
    let data = dataset_for(&r.cfg.spec, &original).map_err(js_err)?;
    let train = match images {
        0 => data.train.clone(),
        n => data.train.clone().first(n),
    };
    let split = GpuSplit::upload(gpu, &train, &data.dir).map_err(js_err)?;
    let (epoch, steps_done, partial) = (r.epoch, r.steps, r.partial);
    let trainer = Trainer::new(
        gpu,
        r.cfg.clone(),
        split,
        Some(state.values),
        Some(state.moments),
        steps_done,
    )
    .map_err(js_err)?;
    let steps = trainer.steps_per_epoch();
    let kept = TrainProgress::start(epoch, steps, f64::from(trainer.cfg.beta), partial);
    let answer = install_training(gpu, trainer, data, record, kept)?;
    let mut answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    answer["epoch"] = epoch.into();
    answer["steps_done"] = steps_done.into();
    Ok(answer.to_string())
}

/// An error while an epoch runs (it owns the training): pause first.
fn refuse_while_training() -> Result<(), JsValue> {
    // A view of a training whose trainer is not in its slot: an epoch owns it right now.
    let viewing_training = VIEW.with(|v| v.borrow().as_ref().is_some_and(|v| v.source.is_some()));
    if viewing_training && TRAINING.with(|t| t.borrow().is_none()) {
        return Err(js_err("an epoch is running: pause first"));
    }
    Ok(())
}

/// Makes `trainer` the page's training (from `kept`) and its model the one the previews show.
/// Returns `{"params": P, "steps_per_epoch": S, "f16": bool, "channels": C, "size": S,
/// "settings": {...}, "rows": [...], "classes": [...], "task"}` (the model's image shape,
/// which the previews draw; every setting as the run records it; the captions of
/// [`task_picture`]'s rows).
fn install_training(
    gpu: &'static Gpu,
    trainer: Trainer<'static>,
    data: Rc<Dataset>,
    record: DatasetRecord,
    kept: TrainProgress,
) -> Result<String, JsValue> {
    let cfg = &trainer.cfg;
    let (f16, binarize) = (cfg.precision == Elem::F16, cfg.binarize);
    let recorded = serde_json::to_value(metadata::write(cfg)).unwrap();
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
    let answer = serde_json::json!({
        "params": params,
        "steps_per_epoch": steps,
        "f16": f16,
        "channels": spec.image.channels,
        "size": spec.image.size,
        "settings": recorded,
        "rows": task_rows(&spec),
        "classes": spec.classes,
        "task": spec.task.name(),
    });
    TRAINING.with(|t| {
        *t.borrow_mut() = Some(Training {
            trainer,
            record,
            kept,
            failed: None,
        })
    });
    VIEW.with(|v| {
        *v.borrow_mut() = Some(Rc::new(View {
            inference,
            source,
            spec,
            data: Some(data),
            binarize,
            scored: RefCell::new(None),
        }))
    });
    Ok(answer.to_string())
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

/// Trains one epoch, or the rest of one that [`pause`] stopped (bit-identically to an epoch
/// trained in one call), calling `on_progress` with [`progress_json`] after each submission's
/// losses arrive (the epoch's loss and images/s so far). Resolves to `{"finished": bool,
/// "progress": {...}}` when the epoch ends or [`pause`] stopped it.
#[wasm_bindgen]
pub async fn train_epoch(on_progress: js_sys::Function) -> Result<String, JsValue> {
    let mut t = TRAINING
        .with(|t| t.borrow_mut().take())
        .ok_or_else(|| js_err("no training to continue (start one, or one is running)"))?;
    if let Some(why) = &t.failed {
        let e = js_err(format!("this training failed ({why}); start a new one"));
        TRAINING.with(|slot| *slot.borrow_mut() = Some(t));
        return Err(e);
    }
    PAUSE.with(|p| p.set(false));
    // The step count when this epoch began (a continued epoch began in an earlier call).
    let epoch_base = t.trainer.steps_done - t.kept.step as u64;
    let mut last = String::new();
    let kept = t.kept;
    let result = t
        .trainer
        .continue_epoch(&kept, &|_| PAUSE.with(Cell::get), &mut |p| {
            last = progress_json(p, epoch_base);
            let _ = on_progress.call1(&JsValue::NULL, &JsValue::from_str(&last));
        })
        .await;
    let finished = match &result {
        Ok(EpochEnd::Finished(p)) => {
            t.kept = TrainProgress::start(p.epoch + 1, p.steps, p.kl_weight, None);
            true
        }
        // Paused: the next call continues this epoch where it stopped.
        Ok(EpochEnd::Stopped(p)) => {
            t.kept = *p;
            false
        }
        Err(e) => {
            t.failed = Some(e.to_string());
            false
        }
    };
    TRAINING.with(|slot| *slot.borrow_mut() = Some(t));
    result.map_err(js_err)?;
    let progress: serde_json::Value = serde_json::from_str(&last).unwrap_or_default();
    Ok(serde_json::json!({ "finished": finished, "progress": progress }).to_string())
}

/// Why the browser took the GPU device away (a driver reset, a tab in the background too long,
/// too much memory asked for), once it has: every later GPU call fails, and the page says so.
/// None while the device works.
#[wasm_bindgen]
pub fn device_lost() -> Option<String> {
    LOST.with(|l| l.borrow().clone())
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

impl View {
    /// The test images the previews and the evaluation use.
    fn data(&self) -> Result<&Rc<Dataset>, JsValue> {
        self.data.as_ref().ok_or_else(|| {
            js_err("the page's images are not this model's: pick its folder (or MNIST) first")
        })
    }

    /// The test split on the GPU for [`evaluate`]: all of it, or with `subset` > 0 its seeded
    /// random `subset` (uploaded once for each subset asked).
    fn scored_split(&self, gpu: &Gpu, subset: usize) -> Result<Rc<GpuSplit>, JsValue> {
        if let Some((n, split)) = &*self.scored.borrow()
            && *n == subset
        {
            return Ok(split.clone());
        }
        let data = self.data()?;
        let test = match subset {
            0 => data.test.clone(),
            n => data.test.clone().random_subset(n, 0),
        };
        let split = Rc::new(GpuSplit::upload(gpu, &test, &data.dir).map_err(js_err)?);
        *self.scored.borrow_mut() = Some((subset, split.clone()));
        Ok(split)
    }

    /// The first `count` test images as floats in [0, 1], `[count, C·S·S]`, and a conditional
    /// model's labels of them.
    fn test_images(&self, count: usize) -> Result<(Vec<f32>, Option<Vec<u32>>), JsValue> {
        let data = self.data()?;
        let im = &data.test.images;
        let count = count.min(im.count);
        let images = im.pixels[..count * im.pixels_per_image()]
            .iter()
            .map(|&b| b as f32 / 255.0)
            .collect();
        let labels = self
            .spec
            .is_conditional()
            .then(|| data.test.labels[..count].to_vec());
        Ok((images, labels))
    }
}

/// `count` samples from the prior, `[count, C, S, S]` in [0, 1]; a conditional model's sample
/// i is of class i mod K (a grid of K columns shows one class per column).
#[wasm_bindgen]
pub async fn samples(count: usize, seed: u32) -> Result<Vec<f32>, JsValue> {
    let (gpu, v) = (gpu()?, view()?);
    v.sync(gpu);
    let codes = apply::prior_samples(count, v.spec.latent, seed);
    let k = v.spec.classes.len() as u32;
    let labels: Option<Vec<u32>> = (k > 0).then(|| (0..count as u32).map(|i| i % k).collect());
    v.inference
        .decode(&codes, labels.as_deref())
        .await
        .map_err(js_err)
}

/// The 2-D latent manifold, `rows × rows` images `[rows², C, S, S]` (latent 2 only; a
/// conditional model's of class `class`).
#[wasm_bindgen]
pub async fn manifold(rows: usize, class: u32) -> Result<Vec<f32>, JsValue> {
    let (gpu, v) = (gpu()?, view()?);
    if v.spec.latent != 2 {
        return Err(js_err("the manifold needs a 2-D latent"));
    }
    v.sync(gpu);
    let codes = apply::manifold_codes(rows, rows);
    let labels = v.spec.is_conditional().then(|| vec![class; rows * rows]);
    v.inference
        .decode(&codes, labels.as_deref())
        .await
        .map_err(js_err)
}

/// The captions of the rows [`task_picture`] returns, by the model's task (as the command
/// line's `reconstruct`, `denoise` and `upscale` pictures).
fn task_rows(spec: &ModelSpec) -> &'static [&'static str] {
    match spec.task {
        Task::Reconstruct => &["test images", "reconstructions"],
        Task::Denoise { .. } => &["noisy test images", "denoised", "clean"],
        Task::Superres => &["half-size input", "bilinear", "gpu-ae", "original"],
    }
}

/// The model's task on the first `count` test images, [`task_rows`] rows of `[count, C, S, S]`
/// each: a reconstruction model's images and reconstructions; a denoising model's noisy
/// inputs (noise keyed by image), outputs and clean images; a super-resolution model's
/// half-size inputs upscaled by nearest and bilinear resizing, its outputs and the originals.
#[wasm_bindgen]
pub async fn task_picture(count: usize) -> Result<Vec<f32>, JsValue> {
    let (gpu, v) = (gpu()?, view()?);
    v.sync(gpu);
    let (images, labels) = v.test_images(count)?;
    let r = v
        .inference
        .reconstruct(&images, labels.as_deref())
        .await
        .map_err(js_err)?;
    let mut rows = match v.spec.task {
        Task::Reconstruct => r.outputs,
        Task::Denoise { .. } => [r.inputs, r.outputs].concat(),
        Task::Superres => {
            let small = v.spec.image.size / 2;
            let nearest = apply::upscale_nearest(&r.inputs, small, small);
            let bilinear = apply::upscale_bilinear(&r.inputs, small, small);
            [nearest, bilinear, r.outputs].concat()
        }
    };
    if v.spec.task == Task::Reconstruct {
        rows.splice(0..0, images);
    } else {
        rows.extend(images);
    }
    Ok(rows)
}

/// `steps` pictures along the line between the codes of test images `a` and `b` (a
/// conditional model draws them all as `a`'s class), `[steps, C, S, S]`.
#[wasm_bindgen]
pub async fn interpolation(a: usize, b: usize, steps: usize) -> Result<Vec<f32>, JsValue> {
    let (gpu, v) = (gpu()?, view()?);
    v.sync(gpu);
    let count = v.data()?.test.images.count;
    if a.max(b) >= count {
        return Err(js_err(format!(
            "interpolation: image {} does not exist (the test set has {count})",
            a.max(b)
        )));
    }
    let (images, labels) = v.test_images(count.min(a.max(b) + 1))?;
    let pixels = v.inference.pixels();
    let pick = |i: usize| &images[i * pixels..(i + 1) * pixels];
    let both = [pick(a), pick(b)].concat();
    let pair = labels.as_ref().map(|l| vec![l[a], l[b]]);
    let codes = v
        .inference
        .reconstruct(&both, pair.as_deref())
        .await
        .map_err(js_err)?
        .codes;
    let (za, zb) = codes.split_at(v.inference.code_len());
    let line = apply::line_codes(za, zb, steps);
    let classes = labels.map(|l| vec![l[a]; steps]);
    v.inference
        .decode(&line, classes.as_deref())
        .await
        .map_err(js_err)
}

/// The codes (posterior means) of the first `count` test images on a plane: themselves for a
/// 2-D code, else their first two principal components. `{"points": [x0, y0, x1, …],
/// "axes": [..2], "labels": [..]}`.
#[wasm_bindgen]
pub async fn code_plane(count: usize) -> Result<String, JsValue> {
    let (gpu, v) = (gpu()?, view()?);
    v.sync(gpu);
    let (images, labels) = v.test_images(count)?;
    let r = v
        .inference
        .reconstruct(&images, labels.as_deref())
        .await
        .map_err(js_err)?;
    let plane = principal_plane(&r.codes, v.inference.code_len());
    let points: Vec<f32> = plane.points.iter().flatten().copied().collect();
    let labels = &v.data()?.test.labels[..plane.points.len()];
    Ok(serde_json::json!({ "points": points, "axes": plane.axes, "labels": labels }).to_string())
}

/// The labels of the first `count` test images (the dataset's; a conditional model's classes).
#[wasm_bindgen]
pub fn test_labels(count: usize) -> Result<Vec<u32>, JsValue> {
    let v = view()?;
    let labels = &v.data()?.test.labels;
    Ok(labels[..count.min(labels.len())].to_vec())
}

/// The model's figures on the test split, as `gpu-ae eval` computes them with its default
/// seed (0): on all of it, or with `subset` > 0 on a seeded random `subset` of it (`gpu-ae
/// eval --subset N`, seed 0). `{"images", "of", "test_bce" or "test_mse", "test_kl",
/// "test_neg_elbo", "test_psnr"}` (`of`: the test split's size).
#[wasm_bindgen]
pub async fn evaluate(subset: usize) -> Result<String, JsValue> {
    let (gpu, v) = (gpu()?, view()?);
    v.sync(gpu);
    let split = v.scored_split(gpu, subset)?;
    let data = v.data()?;
    let model = &v.inference.model;
    let evaluator =
        Evaluator::new(gpu, model, &split, EVAL_BATCH, 0, v.binarize).map_err(js_err)?;
    let m = evaluator.run(gpu).await.map_err(js_err)?;
    let of = data.test.images.count;
    let mut out = serde_json::json!({ "images": m.count, "of": of, "test_psnr": m.psnr });
    out[format!("test_{}", v.spec.loss.name())] = m.rec.into();
    if let Some(kl) = m.kl {
        out["test_kl"] = kl.into();
        out["test_neg_elbo"] = m.total().into();
    }
    Ok(out.to_string())
}

/// The training's two checkpoint files as `gpu-ae train` writes them: `model.safetensors`
/// (PyTorch names, the model and run in its metadata: `gpu-ae eval`, `sample`, `train --init`
/// read it) and `optimizer.safetensors` (Adam's moments, for a run folder that `train
/// --resume` continues). Only while no epoch runs.
async fn checkpoint_files() -> Result<(checkpoint::Checkpoint, checkpoint::Checkpoint), JsValue> {
    let t = TRAINING
        .with(|t| t.borrow_mut().take())
        .ok_or_else(|| js_err("no training to save (or an epoch is running: pause first)"))?;
    // A paused epoch is recorded as a checkpoint inside it records it, so `--resume`
    // continues it.
    let partial = (t.kept.step > 0).then(|| t.kept.partial());
    let result = t
        .trainer
        .checkpoint(t.kept.epoch, partial, &t.record, BTreeMap::new())
        .await;
    TRAINING.with(|slot| *slot.borrow_mut() = Some(t));
    result.map_err(js_err)
}

/// The bytes of the training's `model.safetensors` (see [`checkpoint_files`]).
#[wasm_bindgen]
pub async fn checkpoint_bytes() -> Result<Vec<u8>, JsValue> {
    let (model, _) = checkpoint_files().await?;
    checkpoint::to_bytes(&model, &"model.safetensors").map_err(js_err)
}

/// The bytes of the training's `optimizer.safetensors` (see [`checkpoint_files`]).
#[wasm_bindgen]
pub async fn optimizer_bytes() -> Result<Vec<u8>, JsValue> {
    let (_, optimizer) = checkpoint_files().await?;
    checkpoint::to_bytes(&optimizer, &"optimizer.safetensors").map_err(js_err)
}

/// Opens a checkpoint (the bytes of a `model.safetensors`, `name` for errors) as the model the
/// previews show; returns `{"model", "latent", "channels", "size", "epoch", "conditional",
/// "classes", "data": bool}` (`data`: whether the page's images are the model's, so that the
/// reconstructions, codes and evaluation can use them).
#[wasm_bindgen]
pub fn open_checkpoint(bytes: &[u8], name: &str) -> Result<String, JsValue> {
    let gpu = gpu()?;
    let path = Path::new(name);
    let ckpt = checkpoint::from_bytes(bytes, &name).map_err(js_err)?;
    let spec = read_spec(&ckpt, path).map_err(js_err)?;
    let binarize = read_binarize(&ckpt, path).map_err(js_err)?;
    let arch = Architecture::new(spec.clone()).map_err(js_err)?;
    let values = values_from_checkpoint(&arch, &ckpt, path).map_err(js_err)?;
    let model = Model::upload(gpu, arch, &values).map_err(js_err)?;
    let inference = Inference::new(gpu, model, VIEW_BATCH, 0).map_err(js_err)?;
    // The page's images, when they are of the model's shape (and have its classes).
    let data = DATA.with(|d| d.borrow().clone()).filter(|d| {
        let im = &d.test.images;
        (im.channels, im.rows) == (spec.image.channels, spec.image.size)
    });
    let data = data.and_then(|d| dataset_for(&spec, &d).ok());
    let info = serde_json::json!({
        "model": spec.kind.name(),
        "latent": spec.latent,
        "channels": spec.image.channels,
        "size": spec.image.size,
        "epoch": ckpt.meta("epoch"),
        "conditional": spec.is_conditional(),
        "classes": spec.classes,
        "data": data.is_some(),
        "task": spec.task.name(),
        "rows": task_rows(&spec),
    });
    VIEW.with(|v| {
        *v.borrow_mut() = Some(Rc::new(View {
            inference,
            source: None,
            spec,
            data,
            binarize,
            scored: RefCell::new(None),
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
