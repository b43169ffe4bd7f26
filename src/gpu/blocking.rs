//! Blocking forms of the asynchronous GPU calls, for native code (the command line, the
//! tests): each one is the async call run to completion by [`platform::block_on`]. A web page
//! awaits the async calls instead.

use super::{AdapterChoice, AdapterSummary, DeviceLimits, Gpu, Plan, Tensor};
use crate::error::Result;
use crate::platform;

/// [`super::adapters`], blocking.
pub fn enumerate_adapters() -> Vec<AdapterSummary> {
    platform::block_on(super::adapters())
}

impl Gpu {
    /// Opens the chosen adapter with its full limits ([`Gpu::request`], blocking).
    pub fn new(choice: &AdapterChoice) -> Result<Gpu> {
        Self::new_with(choice, DeviceLimits::Adapter)
    }

    /// Opens the chosen adapter with the given limits ([`Gpu::request`], blocking).
    pub fn new_with(choice: &AdapterChoice, limits: DeviceLimits) -> Result<Gpu> {
        platform::block_on(Gpu::request(choice, limits))
    }

    /// Blocks until all submitted work is done ([`Gpu::idle`], blocking).
    pub fn wait(&self) -> Result<()> {
        platform::block_on(self.idle())
    }

    /// [`Gpu::fetch_bytes`], blocking.
    pub fn read_bytes(&self, buffer: &wgpu::Buffer, offset: u64, size: u64) -> Result<Vec<u8>> {
        platform::block_on(self.fetch_bytes(buffer, offset, size))
    }
}

impl Plan {
    /// [`Plan::compile`], then [`Plan::submit`], and waits (tests, one-off work).
    pub fn run(&mut self, gpu: &Gpu) -> Result<()> {
        self.compile(gpu);
        self.submit(gpu);
        gpu.wait()
    }
}

impl Tensor {
    /// [`Tensor::fetch_f32`], blocking.
    pub fn read_f32(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        platform::block_on(self.fetch_f32(gpu))
    }

    /// [`Tensor::fetch_u32`], blocking.
    pub fn read_u32(&self, gpu: &Gpu) -> Result<Vec<u32>> {
        platform::block_on(self.fetch_u32(gpu))
    }
}
