//! `gpu-ae devices`: every adapter wgpu sees, as text or JSON.

use gpu_ae::error::Result;
use gpu_ae::gpu::{AdapterChoice, Gpu, enumerate_adapters};
use gpu_ae::outln;

pub fn devices(json: bool) -> Result<()> {
    gpu_ae::gpu::backends_from_env()?;
    let adapters = enumerate_adapters();
    if adapters.is_empty() {
        // Gpu::new gives the error that says how to get an adapter.
        Gpu::new(&AdapterChoice::Best)?;
    }
    for a in &adapters {
        if json {
            outln!("{}", a.to_json());
        } else {
            let i = &a.info;
            outln!(
                "[{}] {} — {:?}, {:?}, driver {} {}",
                a.index,
                i.name,
                i.backend,
                i.device_type,
                i.driver,
                i.driver_info
            );
            outln!(
                "    max buffer {}, max storage binding {}, workgroup storage {} B, {} invocations/workgroup, f16 {}, timestamps {}",
                gpu_ae::gpu::human_bytes(a.limits.max_buffer_size),
                gpu_ae::gpu::human_bytes(a.limits.max_storage_buffer_binding_size),
                a.limits.max_compute_workgroup_storage_size,
                a.limits.max_compute_invocations_per_workgroup,
                if a.shader_f16 { "yes" } else { "no" },
                if a.timestamp_query { "yes" } else { "no" },
            );
        }
    }
    Ok(())
}
