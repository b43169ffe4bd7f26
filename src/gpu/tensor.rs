//! `Tensor`: a GPU storage buffer with its logical shape and element storage ([`Elem`]: f32
//! words, which also hold u32 indices and packed pixels, or f16 halves), plus upload and
//! asynchronous readback that convert to and from f32 on the host. [`Binding`] is what a launcher hands
//! to [`Plan::dispatch`](super::Plan::dispatch): a buffer and how its floats are stored.

use super::Gpu;
use crate::error::Result;

/// How a float tensor is stored on the GPU. Kernels compute in f32 either way; an f16 tensor
/// is converted as it is loaded and rounded as it is stored (`--precision f16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Elem {
    /// 4-byte words: f32, or u32 for indices, counters and packed u8 pixels.
    #[default]
    F32,
    /// IEEE half precision (needs the adapter's SHADER_F16).
    F16,
}

impl Elem {
    pub fn bytes(self) -> u64 {
        match self {
            Elem::F32 => 4,
            Elem::F16 => 2,
        }
    }

    /// The WGSL scalar type, also the name `--precision` takes.
    pub fn wgsl(self) -> &'static str {
        match self {
            Elem::F32 => "f32",
            Elem::F16 => "f16",
        }
    }
}

impl std::fmt::Display for Elem {
    /// `f32` or `f16`, as `--precision` takes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.wgsl())
    }
}

impl std::str::FromStr for Elem {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Elem> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Elem::F32),
            "f16" | "fp16" | "float16" | "half" => Ok(Elem::F16),
            other => crate::bail!("--precision: expected f32 or f16, got {other:?}"),
        }
    }
}

/// A buffer bound to a kernel, and how the floats in it are stored.
#[derive(Clone, Copy)]
pub struct Binding<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub elem: Elem,
}

/// A raw buffer binds as f32 words (parameters, gradients, partials, counters).
impl<'a> From<&'a wgpu::Buffer> for Binding<'a> {
    fn from(buffer: &'a wgpu::Buffer) -> Binding<'a> {
        Binding {
            buffer,
            elem: Elem::F32,
        }
    }
}

/// A GPU buffer and its shape, NCHW for images (`[N, C, H, W]`), `[N, F]` for features.
pub struct Tensor {
    pub buffer: wgpu::Buffer,
    pub shape: Vec<usize>,
    pub elem: Elem,
}

impl Tensor {
    /// A zero-filled f32 tensor.
    pub fn zeros(gpu: &Gpu, shape: &[usize], label: &str) -> Result<Tensor> {
        Self::zeros_as(gpu, shape, Elem::F32, label)
    }

    /// A zero-filled tensor stored as `elem` (the buffer is padded to whole 4-byte words).
    pub fn zeros_as(gpu: &Gpu, shape: &[usize], elem: Elem, label: &str) -> Result<Tensor> {
        let numel: usize = shape.iter().product();
        let buffer = gpu.storage_buffer(numel as u64 * elem.bytes(), label)?;
        Ok(Tensor {
            buffer,
            shape: shape.to_vec(),
            elem,
        })
    }

    /// An f32 tensor holding `data`, whose length must match `shape`.
    pub fn from_f32(gpu: &Gpu, shape: &[usize], data: &[f32], label: &str) -> Result<Tensor> {
        Self::from_f32_as(gpu, shape, Elem::F32, data, label)
    }

    /// A tensor stored as `elem` holding `data` (rounded to f16 for [`Elem::F16`]).
    pub fn from_f32_as(
        gpu: &Gpu,
        shape: &[usize],
        elem: Elem,
        data: &[f32],
        label: &str,
    ) -> Result<Tensor> {
        let t = Self::zeros_as(gpu, shape, elem, label)?;
        t.write_f32(gpu, data);
        Ok(t)
    }

    /// A tensor holding `data` (u32: indices, packed u8 pixels).
    pub fn from_u32(gpu: &Gpu, shape: &[usize], data: &[u32], label: &str) -> Result<Tensor> {
        Self::from_bytes(gpu, shape, bytemuck::cast_slice(data), label)
    }

    /// A word tensor holding `bytes` as the GPU reads them (4 per element, little-endian
    /// words), so u8 data packed 4 to a u32 word needs no host-side packing pass.
    pub fn from_bytes(gpu: &Gpu, shape: &[usize], bytes: &[u8], label: &str) -> Result<Tensor> {
        let t = Self::zeros(gpu, shape, label)?;
        assert_eq!(
            bytes.len(),
            t.numel() * 4,
            "{label}: data length does not match shape {shape:?}"
        );
        gpu.queue.write_buffer(&t.buffer, 0, bytes);
        Ok(t)
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// This tensor as a kernel binding.
    pub fn bind(&self) -> Binding<'_> {
        Binding {
            buffer: &self.buffer,
            elem: self.elem,
        }
    }

    /// Overwrites the whole tensor with `data` (queued before the next submit), rounding to
    /// f16 for an f16 tensor.
    pub fn write_f32(&self, gpu: &Gpu, data: &[f32]) {
        assert_eq!(data.len(), self.numel(), "write_f32: length mismatch");
        match self.elem {
            Elem::F32 => gpu
                .queue
                .write_buffer(&self.buffer, 0, bytemuck::cast_slice(data)),
            Elem::F16 => {
                let mut halves: Vec<half::f16> =
                    data.iter().map(|&v| half::f16::from_f32(v)).collect();
                // Whole 4-byte words: writes must be multiples of 4 bytes.
                if halves.len() % 2 == 1 {
                    halves.push(half::f16::ZERO);
                }
                gpu.queue
                    .write_buffer(&self.buffer, 0, bytemuck::cast_slice(&halves));
            }
        }
    }

    /// All elements as f32, once the work submitted before is done.
    pub async fn fetch_f32(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        let n = self.numel();
        let size = (n as u64 * self.elem.bytes()).next_multiple_of(4);
        let bytes = gpu.fetch_bytes(&self.buffer, 0, size).await?;
        Ok(match self.elem {
            Elem::F32 => bytemuck::pod_collect_to_vec(&bytes),
            Elem::F16 => bytes
                .chunks_exact(2)
                .take(n)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        })
    }

    /// All elements as u32 (a word tensor), once the work submitted before is done.
    pub async fn fetch_u32(&self, gpu: &Gpu) -> Result<Vec<u32>> {
        assert_eq!(self.elem, Elem::F32, "fetch_u32 of an f16 tensor");
        let bytes = gpu
            .fetch_bytes(&self.buffer, 0, self.numel() as u64 * 4)
            .await?;
        Ok(bytemuck::cast_slice(&bytes).to_vec())
    }
}
