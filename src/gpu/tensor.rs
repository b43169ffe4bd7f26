//! `Tensor`: a GPU storage buffer of 4-byte elements (f32, or u32 for indices and packed
//! pixels) with its logical shape, plus blocking upload and readback.

use super::Gpu;
use crate::error::Result;

/// A GPU buffer and its shape, NCHW for images (`[N, C, H, W]`), `[N, F]` for features.
pub struct Tensor {
    pub buffer: wgpu::Buffer,
    pub shape: Vec<usize>,
}

impl Tensor {
    /// A zero-filled tensor.
    pub fn zeros(gpu: &Gpu, shape: &[usize], label: &str) -> Result<Tensor> {
        let numel: usize = shape.iter().product();
        let buffer = gpu.storage_buffer(numel as u64 * 4, label)?;
        Ok(Tensor {
            buffer,
            shape: shape.to_vec(),
        })
    }

    /// A tensor holding `data` (f32), whose length must match `shape`.
    pub fn from_f32(gpu: &Gpu, shape: &[usize], data: &[f32], label: &str) -> Result<Tensor> {
        Self::from_bytes(gpu, shape, bytemuck::cast_slice(data), label)
    }

    /// A tensor holding `data` (u32: indices, packed u8 pixels).
    pub fn from_u32(gpu: &Gpu, shape: &[usize], data: &[u32], label: &str) -> Result<Tensor> {
        Self::from_bytes(gpu, shape, bytemuck::cast_slice(data), label)
    }

    /// A tensor holding `bytes` as the GPU reads them (4 per element, little-endian words), so
    /// u8 data packed 4 to a u32 word needs no host-side packing pass.
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

    /// Overwrites the whole tensor with `data` (queued before the next submit).
    pub fn write_f32(&self, gpu: &Gpu, data: &[f32]) {
        assert_eq!(data.len(), self.numel(), "write_f32: length mismatch");
        gpu.queue
            .write_buffer(&self.buffer, 0, bytemuck::cast_slice(data));
    }

    /// Blocking readback of all elements as f32.
    pub fn read_f32(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        let bytes = gpu.read_bytes(&self.buffer, 0, self.numel() as u64 * 4)?;
        Ok(bytemuck::cast_slice(&bytes).to_vec())
    }

    /// Blocking readback of all elements as u32.
    pub fn read_u32(&self, gpu: &Gpu) -> Result<Vec<u32>> {
        let bytes = gpu.read_bytes(&self.buffer, 0, self.numel() as u64 * 4)?;
        Ok(bytemuck::cast_slice(&bytes).to_vec())
    }
}
