//! The GPU context: `WGPU_BACKEND` checked, adapter choice (the best GPU first; a note when it is
//! a CPU), a device opened with the adapter's real limits (or WebGPU's defaults,
//! [`DeviceLimits`]), the shader and pipeline caches, buffer creation that checks those limits,
//! and asynchronous readback ([`Gpu::fetch_bytes`]; `blocking` adds the native blocking forms).
//!
//! Everything that touches `wgpu` directly lives under `gpu/`; kernels build on [`Gpu`],
//! [`Tensor`] and [`Plan`].

#[cfg(not(target_arch = "wasm32"))]
mod blocking;
mod plan;
mod tensor;

#[cfg(not(target_arch = "wasm32"))]
pub use blocking::enumerate_adapters;
pub use plan::{Plan, Profile, grid_1d};
pub use tensor::{Binding, Elem, Tensor};

use crate::bail;
use crate::error::{Error, Result};
use crate::platform;
use std::cell::RefCell;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A WGSL source file, embedded in the binary. `name` is the file name without extension.
/// Families that need random numbers embed `shaders/rng.wgsl` in front of their own source:
/// `source: concat!(include_str!("../../shaders/rng.wgsl"), include_str!("../../shaders/x.wgsl"))`.
///
/// A storage binding declared `var<storage, ..> NAME: array<NAME_t>` holds floats whose storage
/// the launcher picks per dispatch ([`Elem`] of the bound tensor): the shader is compiled with
/// a prelude that makes each such `NAME_t` an alias of f32 or f16, and converts to and from f32
/// where it loads and stores them (`f32(x[i])`, `y[i] = y_t(v)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
}

impl Shader {
    /// (binding number, element alias) of every storage binding declared with an element type
    /// named after the variable plus `_t`.
    pub fn typed_bindings(&self) -> Vec<(u32, String)> {
        let mut typed = Vec::new();
        for line in self.source.lines() {
            let line = line.trim_start();
            if line.starts_with("//") || !line.contains("var<storage") {
                continue;
            }
            let Some(binding) = line
                .split_once("@binding(")
                .and_then(|(_, rest)| rest.split_once(')'))
                .and_then(|(n, _)| n.trim().parse::<u32>().ok())
            else {
                continue;
            };
            let decl = line.split("//").next().unwrap_or(line);
            let Some(name) = decl.split('>').nth(1).and_then(|s| s.split(':').next()) else {
                continue;
            };
            let alias = format!("{}_t", name.trim());
            if decl.contains(&format!("array<{alias}>")) {
                typed.push((binding, alias));
            }
        }
        typed
    }

    /// Whether the shader declares pipeline-overridable constants without a default
    /// (`override NAME: T;`): it has no pipeline until a launcher picks their values, one
    /// pipeline per configuration, built when a plan records it.
    pub fn is_specialised(&self) -> bool {
        self.source.lines().any(|line| {
            let decl = line.split("//").next().unwrap_or(line).trim_start();
            decl.starts_with("override ") && !decl.contains('=')
        })
    }

    /// The WGSL of one storage variant: bit b of `halves` set makes typed binding b f16, the
    /// other typed bindings are f32.
    pub fn variant_source(&self, halves: u32) -> String {
        let mut prelude = String::new();
        if halves != 0 {
            prelude.push_str("enable f16;\n");
        }
        for (binding, alias) in self.typed_bindings() {
            let elem = if halves & (1 << binding) != 0 {
                Elem::F16
            } else {
                Elem::F32
            };
            prelude.push_str(&format!("alias {alias} = {};\n", elem.wgsl()));
        }
        prelude + self.source
    }

    /// The `halves` mask for tensors stored as given at these binding numbers: bit b set where
    /// binding b is f16. Panics when an f16 tensor is bound where the shader only takes f32 (a
    /// plumbing bug).
    pub fn halves(&self, entry: &str, bindings: impl IntoIterator<Item = (u32, Elem)>) -> u32 {
        let mut halves = 0;
        let mut typed: Option<Vec<(u32, String)>> = None;
        for (b, elem) in bindings {
            if elem == Elem::F16 {
                let typed = typed.get_or_insert_with(|| self.typed_bindings());
                assert!(
                    typed.iter().any(|(t, _)| *t == b),
                    "{}::{entry}: binding {b} takes f32 only, got an f16 tensor",
                    self.name
                );
                halves |= 1 << b;
            }
        }
        halves
    }
}

/// Which adapter to open: the best one (discrete GPU first), or one picked by the user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AdapterChoice {
    #[default]
    Best,
    /// Position in `gpu-ae devices`.
    Index(usize),
    /// Case-insensitive substring of the adapter name.
    Name(String),
}

impl FromStr for AdapterChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            bail!("--adapter: empty adapter name");
        }
        Ok(match s.parse::<usize>() {
            Ok(i) => AdapterChoice::Index(i),
            Err(_) => AdapterChoice::Name(s.to_string()),
        })
    }
}

/// What `gpu-ae devices` shows about one adapter.
#[derive(Debug, Clone)]
pub struct AdapterSummary {
    pub index: usize,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub shader_f16: bool,
    pub timestamp_query: bool,
}

impl AdapterSummary {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "index": self.index,
            "name": self.info.name,
            "backend": format!("{:?}", self.info.backend),
            "type": format!("{:?}", self.info.device_type),
            "driver": self.info.driver,
            "driver_info": self.info.driver_info,
            "max_buffer_size": self.limits.max_buffer_size,
            "max_storage_buffer_binding_size": self.limits.max_storage_buffer_binding_size,
            "max_storage_buffers_per_shader_stage": self.limits.max_storage_buffers_per_shader_stage,
            "max_compute_invocations_per_workgroup": self.limits.max_compute_invocations_per_workgroup,
            "max_compute_workgroup_storage_size": self.limits.max_compute_workgroup_storage_size,
            "max_compute_workgroups_per_dimension": self.limits.max_compute_workgroups_per_dimension,
            "shader_f16": self.shader_f16,
            "timestamp_query": self.timestamp_query,
        })
    }
}

const NO_ADAPTER_HELP: &str = "install a GPU driver with Vulkan, Metal or DX12 support, or for the software \
     Vulkan adapter on Debian/Ubuntu `apt-get install mesa-vulkan-drivers`";

/// The backends `WGPU_BACKEND` allows: all when it is unset, else the comma-separated names
/// wgpu knows (case-insensitive, spaces ignored: vulkan or vk, metal or mtl, dx12 or d3d12, gl,
/// gles or opengl, webgpu, noop). wgpu itself skips a name it does not know, which would turn a
/// typo into "no adapter found"; here it is an error naming the value.
pub fn backends_from_env() -> Result<wgpu::Backends> {
    match std::env::var("WGPU_BACKEND") {
        Ok(value) => parse_backends(&value),
        Err(std::env::VarError::NotPresent) => Ok(wgpu::Backends::all()),
        Err(std::env::VarError::NotUnicode(value)) => bail!(
            "WGPU_BACKEND={}: not valid Unicode ({BACKEND_NAMES})",
            value.to_string_lossy()
        ),
    }
}

const BACKEND_NAMES: &str = "use vulkan, metal, dx12 or gl, comma-separated";

/// The backends of a `WGPU_BACKEND` value; every name must be one wgpu knows.
fn parse_backends(value: &str) -> Result<wgpu::Backends> {
    let mut backends = wgpu::Backends::empty();
    for name in value.split(',') {
        // wgpu's own parser, one name at a time: what it does not know comes back empty.
        let one = wgpu::Backends::from_comma_list(name);
        if one.is_empty() {
            bail!(
                "WGPU_BACKEND={value}: unknown backend {:?} ({BACKEND_NAMES})",
                name.trim()
            );
        }
        backends |= one;
    }
    Ok(backends)
}

/// An instance of `backends` (already narrowed to what `WGPU_BACKEND` allows); the other WGPU_*
/// variables are honoured as wgpu reads them.
fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// Adapter types best first. wgpu's GL backend reports a GPU it cannot place as `Other` ("most
/// likely a discrete GPU") but recognises software renderers as `Cpu`, so `Other` goes before
/// `Cpu`.
fn type_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Backends best first among adapters of one type: the native APIs before GL, which lacks
/// features (f16 storage, for one) and is the fallback where they have no driver.
fn backend_rank(b: wgpu::Backend) -> u32 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::Gl => 1,
        wgpu::Backend::BrowserWebGpu | wgpu::Backend::Noop => 2,
    }
}

/// The position of the best adapter of those given as (type, backend): a discrete GPU first,
/// then integrated, virtual, unknown and CPU adapters; among equals Vulkan, Metal or DX12 before
/// GL, then the first listed. `None` when there are none.
pub fn best_adapter(adapters: &[(wgpu::DeviceType, wgpu::Backend)]) -> Option<usize> {
    adapters
        .iter()
        .enumerate()
        .min_by_key(|&(i, &(t, b))| (type_rank(t), backend_rank(b), i))
        .map(|(i, _)| i)
}

/// Whether an adapter is a software renderer on the CPU: its type says so, or its name or
/// driver is one (Mesa's llvmpipe, which also names lavapipe, Google's SwiftShader, Microsoft's
/// WARP, "Microsoft Basic Render Driver").
pub fn is_software(info: &wgpu::AdapterInfo) -> bool {
    if info.device_type == wgpu::DeviceType::Cpu {
        return true;
    }
    let text = format!("{} {}", info.name, info.driver).to_lowercase();
    [
        "llvmpipe",
        "lavapipe",
        "swiftshader",
        "microsoft basic render driver",
    ]
    .iter()
    .any(|s| text.contains(s))
        || text
            .split(|c: char| !c.is_alphanumeric())
            .any(|word| word == "warp")
}

/// [`Gpu::software_note`] for an adapter described by `info`.
fn software_note(info: &wgpu::AdapterInfo) -> Option<String> {
    if !is_software(info) {
        return None;
    }
    // Measured on 2-core machines (README, Speed): lavapipe 800–920 images/s with the machine
    // to itself, 108 on a slower one, 195–315 with the cores shared; GL's llvmpipe 97 on one
    // machine (552 s per MNIST epoch), 165–250 beside lavapipe's 195–315 when shared, and
    // 384–441 beside lavapipe's 424–572 on one quiet machine.
    let gl = if info.backend == wgpu::Backend::Gl {
        "; on GL, Mesa's Vulkan driver (mesa-vulkan-drivers, lavapipe) is faster"
    } else {
        ""
    };
    Some(format!(
        "{} ({:?}) is a CPU (software) adapter: expect about 100 to 900 images/s training \
         conv-vae on 2 cores, depending on the CPU and its load (1 to 10 minutes per MNIST \
         epoch){gl}; for a GPU install its driver (NVIDIA's, or mesa-vulkan-drivers for AMD and \
         Intel) and see `gpu-ae devices`",
        info.name, info.backend
    ))
}

/// Every adapter wgpu sees on the backends allowed by `WGPU_BACKEND`, in a stable order:
/// Vulkan, Metal and DX12 adapters first, then GL ones (in a browser: its WebGPU adapter).
/// Empty when `WGPU_BACKEND` is not valid: [`Gpu::request`] then says why.
pub async fn adapters() -> Vec<AdapterSummary> {
    let Ok(backends) = backends_from_env() else {
        return Vec::new();
    };
    list(backends)
        .await
        .into_iter()
        .enumerate()
        .map(|(index, a)| summarize(index, &a))
        .collect()
}

/// The adapters of `backends`, in wgpu's order (Vulkan, Metal, DX12, GL).
async fn list(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    let inst = instance(backends);
    inst.enumerate_adapters(wgpu::Backends::all()).await
}

/// The limits a device is opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceLimits {
    /// Everything the adapter offers (large buffers where the hardware allows them).
    #[default]
    Adapter,
    /// WebGPU's defaults (128 MiB per storage binding, 8 storage buffers per stage, 256
    /// invocations and 16 KiB of workgroup memory), or the adapter's where it has less: what
    /// every browser grants. The tests open their devices so, so that a kernel a browser would
    /// refuse fails natively first.
    WebGpu,
}

impl DeviceLimits {
    fn for_adapter(self, adapter: &wgpu::Limits) -> wgpu::Limits {
        match self {
            DeviceLimits::Adapter => adapter.clone(),
            DeviceLimits::WebGpu => wgpu::Limits::defaults().or_worse_values_from(adapter),
        }
    }
}

fn summarize(index: usize, a: &wgpu::Adapter) -> AdapterSummary {
    let features = a.features();
    AdapterSummary {
        index,
        info: a.get_info(),
        limits: a.limits(),
        shader_f16: features.contains(wgpu::Features::SHADER_F16),
        timestamp_query: features.contains(wgpu::Features::TIMESTAMP_QUERY),
    }
}

/// The device, its queue and the caches every kernel launcher uses.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    /// Seconds spent opening it: finding the adapters (driver start-up), then the device.
    pub open_times: OpenTimes,
    /// Workgroups a dispatch should have for this adapter to be busy: kernels whose grid would
    /// have fewer may trade tile size for more, shorter workgroups. [`LARGE_GPU_WORKGROUPS`] on
    /// GPUs; 1 on CPU adapters, where each workgroup costs fixed work and barriers and a few
    /// cores are busy anyway.
    pub busy_workgroups: usize,
    modules: RefCell<HashMap<ModuleKey, wgpu::ShaderModule>>,
    pipelines: RefCell<HashMap<PipelineKey, wgpu::ComputePipeline>>,
}

/// Workgroups that keep a large GPU busy: four per SM of a 132-SM GPU. Fewer leave SMs idle,
/// and a small product then takes as long as one workgroup's walk along K.
pub const LARGE_GPU_WORKGROUPS: usize = 528;

/// Shader modules are cached by shader and storage variant (the `halves` mask).
type ModuleKey = (&'static str, u32);

/// How long [`Gpu::new`] took, in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenTimes {
    /// Instance creation and adapter enumeration (loading and starting the drivers).
    pub adapters_s: f64,
    /// `request_device`.
    pub device_s: f64,
}

/// Pipelines are cached by (shader, storage variant, entry point, override constants).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PipelineKey {
    shader: &'static str,
    halves: u32,
    entry: String,
    constants: Vec<(String, u64)>,
}

impl PipelineKey {
    fn new(shader: &Shader, halves: u32, entry: &str, constants: &[(&str, f64)]) -> PipelineKey {
        PipelineKey {
            shader: shader.name,
            halves,
            entry: entry.to_string(),
            constants: constants
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_bits()))
                .collect(),
        }
    }
}

/// One pipeline to build: `entry` of `shader` in storage variant `halves`, with `constants`.
pub(crate) struct PipelineRequest<'a> {
    pub shader: &'a Shader,
    pub halves: u32,
    pub entry: &'a str,
    pub constants: &'a [(&'a str, f64)],
}

/// wgpu parses and validates the WGSL here. Bounds checks stay on; the loop-bounding counter
/// wgpu would add to every loop (a guard against infinite loops in untrusted shaders, at a cost
/// in the GEMMs' inner loops) is left out.
fn create_module(device: &wgpu::Device, shader: &Shader, halves: u32) -> wgpu::ShaderModule {
    let source = if shader.typed_bindings().is_empty() {
        shader.source.into()
    } else {
        shader.variant_source(halves).into()
    };
    let descriptor = wgpu::ShaderModuleDescriptor {
        label: Some(shader.name),
        source: wgpu::ShaderSource::Wgsl(source),
    };
    let checks = wgpu::ShaderRuntimeChecks {
        force_loop_bounding: false,
        ..wgpu::ShaderRuntimeChecks::checked()
    };
    // SAFETY: the shaders are this crate's own, and every loop in them runs a counter up to a
    // bound fixed before the loop starts (tile counts, split counts, tensor sizes from `Params`),
    // so none can run forever; bounds checks are kept.
    unsafe { device.create_shader_module_trusted(descriptor, checks) }
}

/// The driver compiles the entry point here (automatic bind-group layout).
fn create_pipeline(
    device: &wgpu::Device,
    shader: &Shader,
    module: &wgpu::ShaderModule,
    entry: &str,
    constants: &[(&str, f64)],
) -> wgpu::ComputePipeline {
    let label = format!("{}::{entry}", shader.name);
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(&label),
        layout: None,
        module,
        entry_point: Some(entry),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants,
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    })
}

impl Gpu {
    /// Opens the chosen adapter with `limits` and the optional features gpu-ae can use
    /// (timestamp queries, f16).
    pub async fn request(choice: &AdapterChoice, limits: DeviceLimits) -> Result<Gpu> {
        let start = platform::Instant::now();
        // Starting the GL backend can take long (EGL on a discrete GPU's driver), and GL
        // adapters come after all the others in `gpu-ae devices`: start it only when the
        // choice may fall on one.
        let named = |a: &wgpu::Adapter, name: &str| {
            a.get_info()
                .name
                .to_lowercase()
                .contains(&name.to_lowercase())
        };
        let allowed = backends_from_env()?;
        let mut adapters = list(allowed & wgpu::Backends::PRIMARY).await;
        let settled = match choice {
            AdapterChoice::Best => adapters
                .iter()
                .any(|a| a.get_info().device_type == wgpu::DeviceType::DiscreteGpu),
            AdapterChoice::Index(i) => *i < adapters.len(),
            AdapterChoice::Name(name) => adapters.iter().any(|a| named(a, name)),
        };
        if !settled {
            adapters.extend(list(allowed - wgpu::Backends::PRIMARY).await);
        }
        let backend_note = match std::env::var("WGPU_BACKEND") {
            Ok(b) => format!(" with WGPU_BACKEND={b}"),
            Err(_) => String::new(),
        };
        if adapters.is_empty() {
            bail!("no GPU adapter found{backend_note}: {NO_ADAPTER_HELP}");
        }
        let adapter = match choice {
            AdapterChoice::Best => {
                let kinds: Vec<_> = adapters
                    .iter()
                    .map(|a| {
                        let info = a.get_info();
                        (info.device_type, info.backend)
                    })
                    .collect();
                let best = best_adapter(&kinds).expect("adapters is not empty");
                adapters[best].clone()
            }
            AdapterChoice::Index(i) => match adapters.get(*i) {
                Some(a) => a.clone(),
                None => bail!(
                    "--adapter {i}: only {} adapter(s) found{backend_note} (see `gpu-ae devices`)",
                    adapters.len()
                ),
            },
            AdapterChoice::Name(name) => match adapters.iter().find(|a| named(a, name)) {
                Some(a) => a.clone(),
                None => bail!(
                    "--adapter {name:?}: no adapter name contains it{backend_note} (see `gpu-ae devices`)"
                ),
            },
        };
        let adapters_s = start.elapsed().as_secs_f64();
        let mut gpu = Self::open(&adapter, limits).await?;
        gpu.open_times = OpenTimes {
            adapters_s,
            device_s: start.elapsed().as_secs_f64() - adapters_s,
        };
        Ok(gpu)
    }

    async fn open(adapter: &wgpu::Adapter, limits: DeviceLimits) -> Result<Gpu> {
        let info = adapter.get_info();
        let limits = limits.for_adapter(&adapter.limits());
        let wanted = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16;
        let features = adapter.features() & wanted;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("gpu-ae"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::msg(format!("{}: could not open the device: {e}", info.name)))?;
        let busy_workgroups = if is_software(&info) {
            1
        } else {
            LARGE_GPU_WORKGROUPS
        };
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            features,
            open_times: OpenTimes::default(),
            busy_workgroups,
            modules: RefCell::new(HashMap::new()),
            pipelines: RefCell::new(HashMap::new()),
        })
    }

    /// One line naming the adapter, e.g. "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)".
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }

    /// One line saying that the adapter is a software renderer on the CPU, naming it, the speed
    /// to expect and how to get a GPU driver; `None` on a GPU.
    pub fn software_note(&self) -> Option<String> {
        software_note(&self.info)
    }

    pub fn has_timestamps(&self) -> bool {
        self.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Whether kernels can store f16 tensors (the adapter has SHADER_F16).
    pub fn has_f16(&self) -> bool {
        self.features.contains(wgpu::Features::SHADER_F16)
    }

    /// Builds, on all CPU cores at once, the shader module of every listed shader and the
    /// pipeline (f32 storage, no override constants) of every listed entry point that is not
    /// cached yet, so that recording f32 plans afterwards finds them in the cache. Specialised
    /// shaders ([`Shader::is_specialised`]) are left to [`Plan::compile`], which knows their
    /// configurations. wgpu parses and validates WGSL when a module is created and drivers
    /// compile a pipeline to machine code when it is created: one after the other, that is most
    /// of a cold start-up. wgpu panics when the device rejects a shader.
    pub fn prepare(&self, entry_points: &[(&Shader, &[&str])]) {
        // Entry k of every shader before entry k + 1 of any, so that threads seldom wait for
        // the same module.
        let mut requests = Vec::new();
        let depth = entry_points.iter().map(|(_, e)| e.len()).max().unwrap_or(0);
        for k in 0..depth {
            for (shader, entries) in entry_points.iter().filter(|(s, _)| !s.is_specialised()) {
                if let Some(&entry) = entries.get(k) {
                    requests.push(PipelineRequest {
                        shader,
                        halves: 0,
                        entry,
                        constants: &[],
                    });
                }
            }
        }
        self.build_pipelines(&requests);
    }

    /// Builds every requested pipeline that is not cached yet (and the shader modules they
    /// need) on all CPU cores at once ([`platform::on_workers`]), and caches them. wgpu reports a shader the device
    /// rejects as a panic (our own shaders are validated by naga in the tests).
    pub(crate) fn build_pipelines(&self, requests: &[PipelineRequest]) {
        // One module slot per distinct (shader, variant), filled from the cache or by the first
        // job that needs it (other jobs of that module wait for it).
        let mut modules: Vec<(ModuleKey, &Shader, OnceLock<wgpu::ShaderModule>)> = Vec::new();
        let mut jobs: Vec<(usize, PipelineKey, &PipelineRequest)> = Vec::new();
        for r in requests {
            let key = PipelineKey::new(r.shader, r.halves, r.entry, r.constants);
            if self.pipelines.borrow().contains_key(&key) || jobs.iter().any(|j| j.1 == key) {
                continue;
            }
            let module_key = (r.shader.name, r.halves);
            let slot = match modules.iter().position(|m| m.0 == module_key) {
                Some(slot) => slot,
                None => {
                    let cell = OnceLock::new();
                    if let Some(m) = self.modules.borrow().get(&module_key) {
                        let _ = cell.set(m.clone());
                    }
                    modules.push((module_key, r.shader, cell));
                    modules.len() - 1
                }
            };
            jobs.push((slot, key, r));
        }
        if jobs.is_empty() {
            return;
        }
        let threads = platform::workers().min(jobs.len());
        let device = &self.device;
        let next = AtomicUsize::new(0);
        let work = || {
            let mut built = Vec::new();
            while let Some((slot, key, r)) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                let (_, shader, cell) = &modules[*slot];
                let module = cell.get_or_init(|| create_module(device, shader, r.halves));
                built.push((
                    key.clone(),
                    create_pipeline(device, shader, module, r.entry, r.constants),
                ));
            }
            built
        };
        let built: Vec<_> = platform::on_workers(threads, work)
            .into_iter()
            .flatten()
            .collect();
        let mut cache = self.modules.borrow_mut();
        for (key, _, module) in modules {
            if let Some(m) = module.into_inner() {
                cache.entry(key).or_insert(m);
            }
        }
        let mut cache = self.pipelines.borrow_mut();
        for (key, pipeline) in built {
            cache.insert(key, pipeline);
        }
    }

    /// The cached pipeline for a request, if it was built.
    pub(crate) fn cached_pipeline(&self, r: &PipelineRequest) -> Option<wgpu::ComputePipeline> {
        let key = PipelineKey::new(r.shader, r.halves, r.entry, r.constants);
        self.pipelines.borrow().get(&key).cloned()
    }

    /// "shader::entry" of every pipeline built so far, one per storage variant and
    /// configuration (tests check which ones plans build and that they reuse them).
    pub fn pipelines_built(&self) -> Vec<String> {
        let mut built: Vec<String> = self
            .pipelines
            .borrow()
            .keys()
            .map(|k| format!("{}::{}", k.shader, k.entry))
            .collect();
        built.sort();
        built
    }

    /// The most bytes one storage buffer may hold and be bound: the device's limit per storage
    /// binding and per buffer.
    pub fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// A storage buffer of `bytes` bytes (zeroed), checked against the device limits first so a
    /// too-large batch or dataset is a clear error instead of a device failure.
    pub fn storage_buffer(&self, bytes: u64, label: &str) -> Result<wgpu::Buffer> {
        let bytes = bytes.max(4).next_multiple_of(4);
        if bytes > self.max_binding() {
            bail!(
                "{label}: needs a {} buffer but {} allows at most {} per storage binding; \
                 use a smaller --batch or another adapter",
                human_bytes(bytes),
                self.info.name,
                human_bytes(self.max_binding())
            );
        }
        platform::allocate(&self.device, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })
        .map_err(|err| {
            Error::msg(format!(
                "{label}: out of GPU memory allocating {} on {}: {err}",
                human_bytes(bytes),
                self.info.name
            ))
        })
    }

    /// A small uniform buffer holding `value` (kernel sizes and flags; built once per plan).
    pub fn uniform<T: bytemuck::Pod>(&self, value: &T, label: &str) -> wgpu::Buffer {
        use wgpu::util::DeviceExt;
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::bytes_of(value),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// Resolves when all submitted work is done.
    pub async fn idle(&self) -> Result<()> {
        platform::idle(&self.device, &self.queue)
            .await
            .map_err(|e| Error::msg(format!("{}: {e}", self.info.name)))
    }

    /// Copies `size` bytes at `offset` of `buffer` back to the host, once the work submitted
    /// before is done.
    pub async fn fetch_bytes(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        encoder.copy_buffer_to_buffer(buffer, offset, &staging, 0, size);
        let index = self.queue.submit([encoder.finish()]);
        fetch_mapped(self, &staging, Some(index)).await
    }
}

/// Maps a MAP_READ buffer (after its copy was submitted as `submission`, or at least before
/// the work submitted so far is done when `None`) and returns its bytes.
pub(crate) async fn fetch_mapped(
    gpu: &Gpu,
    staging: &wgpu::Buffer,
    submission: Option<wgpu::SubmissionIndex>,
) -> Result<Vec<u8>> {
    platform::mapped(&gpu.device, staging, submission)
        .await
        .map_err(|e| Error::msg(format!("{}: GPU readback failed: {e}", gpu.info.name)))?;
    let bytes = staging
        .slice(..)
        .get_mapped_range()
        .map_err(|e| Error::msg(format!("GPU readback failed: {e}")))?
        .to_vec();
    staging.unmap();
    Ok(bytes)
}

/// "1.5 GiB"-style size for messages.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::{Elem, Shader, best_adapter, is_software, parse_backends, software_note};
    use wgpu::{AdapterInfo, Backend, Backends, DeviceType};

    const SHADER: Shader = Shader {
        name: "test",
        source: "@group(0) @binding(0) var<uniform> p: Params;\n\
                 @group(0) @binding(1) var<storage, read> x: array<x_t>;  // array<nope_t>\n\
                 // @group(0) @binding(2) var<storage, read> c: array<c_t>;\n\
                 @group(0) @binding(3) var<storage, read_write> loss: array<f32>;\n\
                 @group(0) @binding(4) var<storage, read_write> dx: array<dx_t>;\n\
                 @group(0) @binding(5) var<storage, read> other: array<x_t>;\n",
    };

    #[test]
    fn typed_bindings_are_those_named_after_their_variable() {
        let typed = SHADER.typed_bindings();
        assert_eq!(typed, [(1, "x_t".to_string()), (4, "dx_t".to_string())]);
        let src = SHADER.variant_source(1 << 4);
        assert!(src.starts_with("enable f16;\nalias x_t = f32;\nalias dx_t = f16;\n@group"));
        assert!(!SHADER.variant_source(0).contains("enable f16"));
    }

    #[test]
    fn halves_marks_the_f16_bindings() {
        assert_eq!(
            SHADER.halves("e", [(1, Elem::F16), (4, Elem::F16)]),
            0b10010
        );
        assert_eq!(SHADER.halves("e", [(1, Elem::F32), (3, Elem::F32)]), 0);
    }

    #[test]
    #[should_panic(expected = "test::e: binding 3 takes f32 only, got an f16 tensor")]
    fn an_f16_tensor_on_an_f32_only_binding_panics() {
        SHADER.halves("e", [(1, Elem::F16), (3, Elem::F16)]);
    }

    #[test]
    fn wgpu_backend_takes_wgpu_names_and_names_what_it_does_not_know() {
        assert_eq!(parse_backends("vulkan").unwrap(), Backends::VULKAN);
        assert_eq!(
            parse_backends(" VK, Metal ,dx12,gl").unwrap(),
            Backends::VULKAN | Backends::METAL | Backends::DX12 | Backends::GL
        );
        assert_eq!(
            parse_backends("gles,opengl,d3d12,mtl").unwrap(),
            Backends::GL | Backends::DX12 | Backends::METAL
        );
        let msg = |v: &str| parse_backends(v).unwrap_err().message().to_string();
        assert_eq!(
            msg("bogus"),
            "WGPU_BACKEND=bogus: unknown backend \"bogus\" (use vulkan, metal, dx12 or gl, comma-separated)"
        );
        assert!(msg("vulkan, cuda").contains("unknown backend \"cuda\""));
        // wgpu 30 knows no group names, and an empty name is a mistake too.
        for v in ["primary", "all", "", "vulkan,"] {
            assert!(msg(v).starts_with(&format!("WGPU_BACKEND={v}: unknown backend")));
        }
    }

    #[test]
    fn the_best_adapter_is_a_gpu_on_a_native_api() {
        use Backend::{Dx12, Gl, Metal, Vulkan};
        use DeviceType::{Cpu, DiscreteGpu, IntegratedGpu, Other, VirtualGpu};
        assert_eq!(best_adapter(&[]), None);
        // Type first: discrete, integrated, virtual, unknown (GL's guess for most GPUs), CPU.
        let ranked = [
            (DiscreteGpu, Gl),
            (IntegratedGpu, Vulkan),
            (VirtualGpu, Vulkan),
            (Other, Gl),
            (Cpu, Vulkan),
        ];
        for first in 0..ranked.len() {
            let mut rest = ranked[first..].to_vec();
            rest.reverse();
            assert_eq!(best_adapter(&rest), Some(rest.len() - 1), "{rest:?}");
        }
        // Among equals the native APIs before GL, whatever the order: lavapipe over llvmpipe.
        assert_eq!(best_adapter(&[(Cpu, Gl), (Cpu, Vulkan)]), Some(1));
        assert_eq!(
            best_adapter(&[(DiscreteGpu, Gl), (DiscreteGpu, Dx12)]),
            Some(1)
        );
        // Then the first listed.
        assert_eq!(best_adapter(&[(Cpu, Metal), (Cpu, Vulkan)]), Some(0));
        assert_eq!(
            best_adapter(&[(IntegratedGpu, Gl), (IntegratedGpu, Gl)]),
            Some(0)
        );
    }

    fn adapter(name: &str, driver: &str, t: DeviceType, backend: Backend) -> AdapterInfo {
        AdapterInfo {
            name: name.into(),
            driver: driver.into(),
            ..AdapterInfo::new(t, backend)
        }
    }

    #[test]
    fn software_adapters_are_recognised_and_noted_on_one_line() {
        use Backend::{Dx12, Gl, Vulkan};
        use DeviceType::{Cpu, DiscreteGpu, IntegratedGpu, Other};
        let software = [
            adapter("llvmpipe (LLVM 15.0.6, 256 bits)", "llvmpipe", Cpu, Vulkan),
            adapter("llvmpipe (LLVM 15.0.6, 256 bits)", "", Other, Gl),
            adapter("some CPU", "", Cpu, Vulkan),
            adapter(
                "SwiftShader Device (Subzero)",
                "SwiftShader driver",
                Other,
                Vulkan,
            ),
            adapter("Microsoft Basic Render Driver", "", Other, Dx12),
            adapter("WARP", "", IntegratedGpu, Dx12),
            adapter("GPU", "lavapipe", Other, Vulkan),
        ];
        for info in &software {
            assert!(is_software(info), "{info:?}");
            let note = software_note(info).unwrap();
            assert!(!note.contains('\n'), "{note}");
            assert!(
                note.starts_with(&format!(
                    "{} ({:?}) is a CPU (software) adapter",
                    info.name, info.backend
                )),
                "{note}"
            );
            let on_gl = info.backend == Gl;
            assert_eq!(
                note.contains("(mesa-vulkan-drivers, lavapipe) is faster"),
                on_gl,
                "{note}"
            );
            for part in [
                "100 to 900 images/s",
                "MNIST epoch",
                "mesa-vulkan-drivers",
                "NVIDIA",
                "gpu-ae devices",
            ] {
                assert!(note.contains(part), "{part:?} not in {note}");
            }
        }
        for info in [
            adapter("NVIDIA H200", "NVIDIA", DiscreteGpu, Vulkan),
            adapter("NVIDIA GeForce RTX 4090/PCIe/SSE2", "", Other, Gl),
            adapter(
                "AMD Radeon Graphics (RADV RENOIR)",
                "radv",
                IntegratedGpu,
                Vulkan,
            ),
            adapter("Intel(R) UHD Graphics (Warped)", "", IntegratedGpu, Vulkan),
        ] {
            assert!(!is_software(&info), "{info:?}");
            assert_eq!(software_note(&info), None);
        }
    }
}
