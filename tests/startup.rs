//! Start-up: `Gpu::prepare` builds, ahead of the plans, exactly the pipelines that training and
//! evaluation record (but the specialised ones, which their plans build); the dataset upload writes the packed pixels; `gpu-ae bench` breaks its
//! start-up into phases.

use gpu_ae::data::{self, Binarize, Split};
use gpu_ae::gpu::{AdapterChoice, DeviceLimits, Elem, Gpu, Plan, Shader};
use gpu_ae::kernels::{ENTRY_POINTS, data::pack_bytes};
use gpu_ae::model::{LossKind, ModelKind, ModelSpec, Task};
use gpu_ae::platform::block_on;
use gpu_ae::run::bench::{self, BenchOptions};
use gpu_ae::run::evaluate::Evaluator;
use gpu_ae::run::gpu_split::GpuSplit;
use gpu_ae::run::settings::TrainConfig;
use gpu_ae::run::train::Trainer;
use std::path::{Path, PathBuf};

fn gpu() -> Gpu {
    Gpu::new(&AdapterChoice::Best).unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"))
}

fn mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/mnist")
}

/// The first `n` test images of MNIST.
fn few_images(n: usize) -> Split {
    let mut split = data::load_test(&mnist_dir(), &Default::default())
        .unwrap()
        .test;
    split.images.count = n;
    split.images.pixels.truncate(n * 784);
    split.labels.truncate(n);
    split
}

/// The adapter with WebGPU's default limits, as a browser grants them.
fn webgpu_gpu() -> Gpu {
    Gpu::new_with(&AdapterChoice::Best, DeviceLimits::WebGpu)
        .unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"))
}

#[test]
fn webgpu_limits_are_the_browser_defaults_and_refuse_what_a_browser_refuses() {
    let gpu = webgpu_gpu();
    let l = &gpu.limits;
    assert!(l.max_storage_buffer_binding_size <= 128 << 20);
    assert!(l.max_storage_buffers_per_shader_stage <= 8);
    assert!(l.max_compute_invocations_per_workgroup <= 256);
    assert!(l.max_compute_workgroup_storage_size <= 16384);
    // A kernel of 512 invocations per workgroup, fine on most native adapters, is refused.
    let wide = Shader {
        name: "too_wide",
        source: "struct Params { n: u32 }\n\
                 @group(0) @binding(0) var<uniform> p: Params;\n\
                 @group(0) @binding(1) var<storage, read_write> y: array<f32>;\n\
                 @compute @workgroup_size(512) fn main(@builtin(global_invocation_id) g: vec3<u32>) {\n\
                 if g.x < p.n { y[g.x] = 1.0; } }\n",
    };
    let y = gpu_ae::gpu::Tensor::zeros(&gpu, &[512], "y").unwrap();
    let mut plan = Plan::new();
    plan.dispatch(
        &gpu,
        &wide,
        "main",
        &[],
        &[512u32, 0, 0, 0],
        &[(1, y.bind())],
        [1, 1, 1],
    );
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| plan.compile(&gpu)));
    assert!(
        refused.is_err(),
        "a 512-invocation workgroup passed WebGPU's limits"
    );
}

#[test]
fn prepare_builds_every_pipeline_that_training_and_evaluation_record() {
    // WebGPU's limits: every kernel a training or evaluation records also runs in a browser.
    let gpu = webgpu_gpu();
    // Specialised shaders (conv2d) have a pipeline per configuration, built by the plans.
    let specialised: Vec<String> = ENTRY_POINTS
        .iter()
        .filter(|(s, _)| s.is_specialised())
        .map(|(s, _)| format!("{}::", s.name))
        .collect();
    assert_eq!(specialised, ["conv2d::"]);
    let fixed = || -> Vec<String> {
        let built = gpu.pipelines_built();
        built
            .into_iter()
            .filter(|p| !specialised.iter().any(|s| p.starts_with(s)))
            .collect()
    };
    let entries: usize = ENTRY_POINTS
        .iter()
        .filter(|(s, _)| !s.is_specialised())
        .map(|(_, e)| e.len())
        .sum();
    gpu.prepare(ENTRY_POINTS);
    assert_eq!(gpu.pipelines_built().len(), entries);
    gpu.prepare(ENTRY_POINTS);
    assert_eq!(
        gpu.pipelines_built().len(),
        entries,
        "a second prepare rebuilt pipelines"
    );

    // 37 images in batches of 16: full batches and a tail batch, for every model and task.
    let split = few_images(37);
    let spec = |kind, task, loss| ModelSpec::mnist(kind, 3, task, loss);
    let mut specs: Vec<ModelSpec> = ModelKind::ALL
        .iter()
        .map(|&k| spec(k, Task::Reconstruct, LossKind::Bce))
        .collect();
    specs.push(spec(
        ModelKind::ConvAe,
        Task::Denoise { noise: 0.3 },
        LossKind::Mse,
    ));
    specs.push(spec(ModelKind::ConvVae, Task::Superres, LossKind::Bce));
    for spec in specs {
        let cfg = TrainConfig {
            spec: spec.clone(),
            batch: 16,
            lr: 1e-3,
            schedule: Default::default(),
            seed: 1,
            precision: Elem::F32,
            beta: 1.0,
            binarize: Binarize::None,
            init: None,
        };
        let train = GpuSplit::upload(&gpu, &split, &mnist_dir()).unwrap();
        let test = GpuSplit::upload(&gpu, &split, &mnist_dir()).unwrap();
        let trainer = Trainer::new(&gpu, cfg, train, None, None, 0).unwrap();
        Evaluator::new(&gpu, &trainer.model, &test, 16, 1, Binarize::None).unwrap();
        assert_eq!(
            fixed().len(),
            entries,
            "{spec:?}: its plans built a pipeline that prepare did not: {:?}",
            fixed()
        );
    }
}

#[test]
fn upload_writes_the_pixels_packed_four_to_a_word() {
    let gpu = gpu();
    let split = few_images(5);
    let on_gpu = GpuSplit::upload(&gpu, &split, &mnist_dir()).unwrap();
    let words = on_gpu.images.read_u32(&gpu).unwrap();
    assert_eq!(words, pack_bytes(&split.images.pixels));
    assert!(words.iter().any(|&w| w != 0));
    assert_eq!(on_gpu.perm.read_u32(&gpu).unwrap(), [0, 1, 2, 3, 4]);
}

#[test]
fn bench_reports_the_start_up_phases() {
    let opts = BenchOptions {
        spec: ModelSpec::mnist(ModelKind::ConvVae, 4, Task::Reconstruct, LossKind::Bce),
        batch: 32,
        epochs: 1,
        train_limit: Some(32),
        data_dir: mnist_dir(),
        data_options: Default::default(),
        seed: 3,
        precision: Elem::F32,
        conditional: false,
    };
    let report = block_on(bench::run(&opts, || Ok(gpu()))).unwrap();
    let startup = report["startup_s"].as_f64().unwrap();
    let phase = |key: &str| -> f64 {
        let v = report["startup"][key].as_f64();
        v.unwrap_or_else(|| panic!("no startup.{key} in {report}"))
    };
    for key in [
        "adapter_s",
        "data_s",
        "pipelines_s",
        "data_wait_s",
        "upload_s",
        "plans_s",
    ] {
        assert!(phase(key) >= 0.0, "startup.{key} in {report}");
    }
    assert!(phase("adapter_s") > 0.0 && phase("data_s") > 0.0 && phase("pipelines_s") > 0.0);
    // The main thread's phases make up the start-up; data_s ran beside them.
    let main: f64 = [
        "adapter_s",
        "pipelines_s",
        "data_wait_s",
        "upload_s",
        "plans_s",
    ]
    .iter()
    .map(|k| phase(k))
    .sum();
    assert!(
        main <= startup + 1e-3 && main >= 0.9 * startup - 1e-3,
        "phases add up to {main}, startup_s is {startup}: {report}"
    );
    assert!(phase("data_s") <= startup + 1e-3, "{report}");
    assert_eq!(report["images_per_epoch"].as_u64(), Some(32));
}

#[test]
fn bench_reports_a_bad_dataset_by_name() {
    let opts = BenchOptions {
        spec: ModelSpec::mnist(ModelKind::LessonAe, 4, Task::Reconstruct, LossKind::Bce),
        batch: 8,
        epochs: 1,
        train_limit: Some(8),
        data_dir: PathBuf::from("no/such/dataset"),
        data_options: Default::default(),
        seed: 3,
        precision: Elem::F32,
        conditional: false,
    };
    let err = block_on(bench::run(&opts, || Ok(gpu())))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no/such/dataset") && !err.contains('\n'),
        "{err}"
    );
}
