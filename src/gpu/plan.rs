//! `Plan`: a list of compute dispatches (pipeline + bind group + grid) built once and recorded
//! many times. A model's training step is one plan recorded into one compute pass; `profile`
//! records each dispatch in its own pass between timestamp queries for `gpu-ae bench`.
//! Dispatches whose pipeline is not cached yet wait for [`Plan::compile`], which builds all of
//! them at once on every CPU core.
//!
//! Binding convention for every kernel: `@group(0) @binding(0)` is a uniform struct of sizes
//! and flags; storage buffers follow at the bindings the launcher names.

use super::{Binding, Gpu, PipelineRequest, Shader, fetch_mapped};
use crate::error::{Error, Result};

struct Dispatch {
    label: String,
    shader: Shader,
    /// Storage variant (see [`Shader::halves`]).
    halves: u32,
    entry: String,
    constants: Vec<(String, f64)>,
    /// The uniform params, then the storage buffers by binding number.
    bindings: Vec<(u32, wgpu::Buffer)>,
    /// Pipeline and bind group; None until [`Plan::compile`] when the pipeline was not cached.
    ready: Option<(wgpu::ComputePipeline, wgpu::BindGroup)>,
    workgroups: [u32; 3],
    /// Total size of the storage buffers bound (an upper bound on the bytes it touches).
    bound_bytes: u64,
}

impl Dispatch {
    fn constants(&self) -> Vec<(&str, f64)> {
        self.constants
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect()
    }

    /// The pipeline this dispatch needs; `constants` from [`Dispatch::constants`].
    fn request<'a>(&'a self, constants: &'a [(&'a str, f64)]) -> PipelineRequest<'a> {
        PipelineRequest {
            shader: &self.shader,
            halves: self.halves,
            entry: &self.entry,
            constants,
        }
    }

    /// Creates the bind group for `pipeline` (automatic layout) and marks the dispatch ready.
    fn bind(&mut self, gpu: &Gpu, pipeline: wgpu::ComputePipeline) {
        let entries: Vec<wgpu::BindGroupEntry> = self
            .bindings
            .iter()
            .map(|(b, buf)| wgpu::BindGroupEntry {
                binding: *b,
                resource: buf.as_entire_binding(),
            })
            .collect();
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&self.label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        self.ready = Some((pipeline, bind_group));
    }

    fn ready(&self) -> (&wgpu::ComputePipeline, &wgpu::BindGroup) {
        let (p, b) = self
            .ready
            .as_ref()
            .unwrap_or_else(|| panic!("{}: Plan::compile was not called", self.label));
        (p, b)
    }
}

/// Dispatches recorded in order; wgpu inserts the barriers between them.
#[derive(Default)]
pub struct Plan {
    dispatches: Vec<Dispatch>,
}

/// Workgroup grid for `threads` invocations in groups of `wg`, split over x and y when the
/// count exceeds the device's per-dimension limit. Kernels recover the linear index as
/// `gid.x + gid.y * nwg.x * WG` and must bounds-check it.
pub fn grid_1d(gpu: &Gpu, threads: usize, wg: u32) -> [u32; 3] {
    let groups = (threads as u64).div_ceil(wg as u64);
    let max = gpu.limits.max_compute_workgroups_per_dimension as u64;
    if groups <= max {
        [groups as u32, 1, 1]
    } else {
        [max as u32, groups.div_ceil(max) as u32, 1]
    }
}

/// GPU time per kernel label and per dispatch, from timestamp queries.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// (label, total nanoseconds, dispatch count), in first-seen order.
    pub kernels: Vec<(String, f64, usize)>,
    /// One entry per dispatch of the plan, in order: (label, workgroups, total nanoseconds).
    pub dispatches: Vec<(String, [u32; 3], f64)>,
}

impl Plan {
    pub fn new() -> Plan {
        Plan::default()
    }

    /// Adds one dispatch of `entry` in `shader`. `params` goes to binding 0 as a uniform;
    /// `buffers` are bound as storage at the given binding numbers; the f16 ones pick the
    /// shader's storage variant. A grid with a zero dimension adds nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch<P: bytemuck::Pod>(
        &mut self,
        gpu: &Gpu,
        shader: &Shader,
        entry: &str,
        constants: &[(&str, f64)],
        params: &P,
        buffers: &[(u32, Binding)],
        workgroups: [u32; 3],
    ) {
        if workgroups.contains(&0) {
            return;
        }
        let label = format!("{}::{entry}", shader.name);
        let uniform = gpu.uniform(params, &label);
        let mut bindings = vec![(0, uniform)];
        bindings.extend(buffers.iter().map(|(b, buf)| (*b, buf.buffer.clone())));
        let mut d = Dispatch {
            label,
            shader: *shader,
            halves: shader.halves(entry, buffers.iter().map(|(b, x)| (*b, x.elem))),
            entry: entry.to_string(),
            constants: constants.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            bindings,
            ready: None,
            workgroups,
            bound_bytes: buffers.iter().map(|(_, b)| b.buffer.size()).sum(),
        };
        let cached = gpu.cached_pipeline(&d.request(&d.constants()));
        if let Some(pipeline) = cached {
            d.bind(gpu, pipeline);
        }
        self.dispatches.push(d);
    }

    /// Builds the pipelines of every dispatch that is still waiting for one, all at once on
    /// every CPU core, and their bind groups. Needed before [`Plan::record`] and
    /// [`Plan::profile`] ([`Plan::run`] does it itself); cheap when nothing waits.
    pub fn compile(&mut self, gpu: &Gpu) {
        let waiting: Vec<usize> = (0..self.dispatches.len())
            .filter(|&i| self.dispatches[i].ready.is_none())
            .collect();
        if waiting.is_empty() {
            return;
        }
        let constants: Vec<Vec<(&str, f64)>> = waiting
            .iter()
            .map(|&i| self.dispatches[i].constants())
            .collect();
        let requests: Vec<PipelineRequest> = waiting
            .iter()
            .zip(&constants)
            .map(|(&i, c)| self.dispatches[i].request(c))
            .collect();
        gpu.build_pipelines(&requests);
        let pipelines: Vec<wgpu::ComputePipeline> = requests
            .iter()
            .map(|r| gpu.cached_pipeline(r).expect("build_pipelines built it"))
            .collect();
        drop(requests);
        for (i, pipeline) in waiting.into_iter().zip(pipelines) {
            self.dispatches[i].bind(gpu, pipeline);
        }
    }

    /// Appends all dispatches of `other` after this plan's.
    pub fn extend(&mut self, other: Plan) {
        self.dispatches.extend(other.dispatches);
    }

    pub fn len(&self) -> usize {
        self.dispatches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dispatches.is_empty()
    }

    /// Sum over dispatches of the storage bytes each binds: an upper bound on the memory
    /// traffic of one replay (exact for kernels that stream through their buffers once).
    pub fn bound_bytes(&self) -> u64 {
        self.dispatches.iter().map(|d| d.bound_bytes).sum()
    }

    /// Labels of the dispatches, in order (`shader::entry`).
    pub fn labels(&self) -> Vec<&str> {
        self.dispatches.iter().map(|d| d.label.as_str()).collect()
    }

    /// Records every dispatch into an open compute pass. Panics when [`Plan::compile`] is due.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            let (pipeline, bind_group) = d.ready();
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, bind_group, &[]);
            let [x, y, z] = d.workgroups;
            pass.dispatch_workgroups(x, y, z);
        }
    }

    /// Records the (compiled) plan into a new encoder and submits it; a readback after it
    /// ([`Tensor::fetch_f32`](super::Tensor::fetch_f32)) waits for it.
    pub fn submit(&self, gpu: &Gpu) {
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("plan"),
            });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("plan"),
                timestamp_writes: None,
            });
            self.record(&mut pass);
        }
        gpu.queue.submit([encoder.finish()]);
    }

    /// Runs the plan `repeats` times with each dispatch in its own timestamped pass and returns
    /// the GPU time per kernel label. Needs `TIMESTAMP_QUERY` (see [`Gpu::has_timestamps`]).
    pub async fn profile(&self, gpu: &Gpu, repeats: usize) -> Result<Profile> {
        if !gpu.has_timestamps() {
            return Err(Error::msg(format!(
                "{}: timestamp queries are not supported",
                gpu.info.name
            )));
        }
        let n = self.dispatches.len() as u32;
        let mut profile = Profile::default();
        if n == 0 {
            return Ok(profile);
        }
        let query_set = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profile"),
            ty: wgpu::QueryType::Timestamp,
            count: 2 * n,
        });
        let bytes = 16 * n as u64;
        let resolve = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile resolve"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let period = gpu.queue.get_timestamp_period() as f64;
        let mut totals: Vec<(String, f64, usize)> = Vec::new();
        let mut per_dispatch = vec![0f64; self.dispatches.len()];
        for _ in 0..repeats {
            let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profile staging"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut encoder = gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("profile"),
                });
            for (i, d) in self.dispatches.iter().enumerate() {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(&d.label),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: &query_set,
                        beginning_of_pass_write_index: Some(2 * i as u32),
                        end_of_pass_write_index: Some(2 * i as u32 + 1),
                    }),
                });
                let (pipeline, bind_group) = d.ready();
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, bind_group, &[]);
                let [x, y, z] = d.workgroups;
                pass.dispatch_workgroups(x, y, z);
            }
            encoder.resolve_query_set(&query_set, 0..2 * n, &resolve, 0);
            encoder.copy_buffer_to_buffer(&resolve, 0, &staging, 0, bytes);
            let index = gpu.queue.submit([encoder.finish()]);
            let raw = fetch_mapped(gpu, &staging, Some(index)).await?;
            let stamps: &[u64] = bytemuck::cast_slice(&raw);
            for (i, d) in self.dispatches.iter().enumerate() {
                let ns = stamps[2 * i + 1].saturating_sub(stamps[2 * i]) as f64 * period;
                per_dispatch[i] += ns;
                match totals.iter_mut().find(|(l, _, _)| *l == d.label) {
                    Some(t) => {
                        t.1 += ns;
                        t.2 += 1;
                    }
                    None => totals.push((d.label.clone(), ns, 1)),
                }
            }
        }
        profile.kernels = totals;
        profile.dispatches = self
            .dispatches
            .iter()
            .zip(per_dispatch)
            .map(|(d, ns)| (d.label.clone(), d.workgroups, ns))
            .collect();
        Ok(profile)
    }
}
