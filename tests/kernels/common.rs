//! Shared test helpers: the GPU under test, deterministic inputs, how tensors are stored,
//! sentinel-padded outputs, tolerance checks.

use gpu_ae::gpu::{AdapterChoice, DeviceLimits, Elem, Gpu, LARGE_GPU_WORKGROUPS, Tensor};

/// The adapter under test, opened with WebGPU's default limits (so a kernel that a browser
/// would refuse fails here first) and choosing its grids as a large GPU does
/// (`busy_workgroups`), so that the shapes reach the tile shapes GPUs run whatever adapter
/// runs the tests. Fails (never skips) when there is none, saying how to get one.
pub fn gpu() -> Gpu {
    match Gpu::new_with(&AdapterChoice::Best, DeviceLimits::WebGpu) {
        Ok(mut g) => {
            g.busy_workgroups = LARGE_GPU_WORKGROUPS;
            g
        }
        Err(e) => panic!("GPU tests need an adapter: {e}"),
    }
}

/// `Gpu::busy_workgroups` of a large GPU and of a CPU adapter: kernels whose grids depend on
/// it are checked under both.
pub const BUSY: [usize; 2] = [LARGE_GPU_WORKGROUPS, 1];

/// The adapter under test for the f16 storage variants, or None (saying so) where it has no
/// SHADER_F16. Vulkan, Metal and DX12 adapters have it, lavapipe too; only a GL adapter may
/// lack it, so anywhere else a missing SHADER_F16 fails the test instead of skipping it.
pub fn gpu_with_f16() -> Option<Gpu> {
    let gpu = gpu();
    if gpu.has_f16() {
        return Some(gpu);
    }
    assert_eq!(
        gpu.info.backend,
        wgpu::Backend::Gl,
        "{} has no SHADER_F16",
        gpu.describe()
    );
    println!("skipped: {} has no SHADER_F16", gpu.describe());
    None
}

/// How a kernel's float tensors are stored: the layer input and its gradient (x, dx) as
/// `input`, the layer output and its gradient (y, dy) as `output`. Parameters, gradient sums,
/// split-K slices and losses are f32 whatever the storage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Storage {
    pub input: Elem,
    pub output: Elem,
}

impl Storage {
    /// `--precision f32`.
    pub const F32: Storage = Storage {
        input: Elem::F32,
        output: Elem::F32,
    };
    /// A layer inside the encoder or decoder with `--precision f16`.
    pub const F16: Storage = Storage {
        input: Elem::F16,
        output: Elem::F16,
    };
}

/// `v` as a tensor stored as `elem` holds it: rounded to the nearest f16 for [`Elem::F16`]. The
/// CPU reference takes these values, so that it sees the inputs the GPU reads.
pub fn stored(elem: Elem, mut v: Vec<f32>) -> Vec<f32> {
    if elem == Elem::F16 {
        v.iter_mut()
            .for_each(|x| *x = half::f16::from_f32(*x).to_f32());
    }
    v
}

/// The relative tolerance of an output stored as `elem`, from the one its f32 storage needs.
/// With the reference given the same (rounded) inputs, f16 storage only adds the rounding of
/// the output: at most 2^-11 ≈ 4.9e-4 of a normal value where the conversion rounds to nearest
/// (lavapipe), 2^-10 ≈ 9.8e-4 where it picks the other neighbour, which WGSL allows; 1e-3
/// covers both. Below 6.1e-5 (subnormals) it is at most 2^-24 ≈ 6e-8 absolute, which every
/// atol used with f16 covers (the exact comparisons are of copies, which f16 keeps exact).
pub fn rtol(elem: Elem, f32_rtol: f32) -> f32 {
    match elem {
        Elem::F32 => f32_rtol,
        Elem::F16 => f32_rtol + 1e-3,
    }
}

/// Fills the elements past the end of a [`padded`] tensor; exact in f16 too.
pub const SENTINEL: f32 = -1234.0;
/// Elements of sentinel after a [`padded`] tensor.
const TAIL: usize = 5;

/// A `shape` tensor stored as `elem` holding `data`, in a buffer that continues with `TAIL`
/// sentinels (stored as `elem` too, so with an odd element count the first shares the last
/// element's word), so that writes past the tensor's end show up in [`read_padded`].
pub fn padded(gpu: &Gpu, shape: &[usize], elem: Elem, data: &[f32], label: &str) -> Tensor {
    let mut v = data.to_vec();
    v.extend([SENTINEL; TAIL]);
    let t = Tensor::from_f32_as(gpu, &[v.len()], elem, &v, label).unwrap();
    Tensor {
        buffer: t.buffer,
        shape: shape.to_vec(),
        elem,
    }
}

/// Reads a [`padded`] tensor back and checks its tail is untouched.
pub fn read_padded(gpu: &Gpu, t: &Tensor, what: &str) -> Vec<f32> {
    let n = t.numel();
    let all = Tensor {
        buffer: t.buffer.clone(),
        shape: vec![n + TAIL],
        elem: t.elem,
    }
    .read_f32(gpu)
    .unwrap();
    assert!(
        all[n..].iter().all(|&v| v == SENTINEL),
        "{what}: wrote past the end"
    );
    all[..n].to_vec()
}

/// Deterministic values in `[lo, hi)` (xorshift).
pub fn values(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

/// `|got − want| ≤ atol + rtol·|want|` element-wise, reporting the worst element. Also fails
/// when `want` is all (near) zero, since such a comparison could not catch a wrong kernel.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert!(
        want.iter().any(|w| w.abs() > atol),
        "{what}: reference is all ~0, the comparison could not fail"
    );
    let mut worst: Option<(usize, f32)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let excess = (g - w).abs() - (atol + rtol * w.abs());
        if (excess > 0.0 || excess.is_nan()) && worst.is_none_or(|(_, e)| excess > e) {
            worst = Some((i, excess));
        }
    }
    if let Some((i, _)) = worst {
        let bad = got
            .iter()
            .zip(want)
            .filter(|(g, w)| {
                let err = (*g - *w).abs();
                err > atol + rtol * w.abs() || err.is_nan()
            })
            .count();
        panic!(
            "{what}: {bad}/{} elements out of tolerance (atol {atol}, rtol {rtol}); worst at {i}: gpu {} vs reference {}",
            got.len(),
            got[i],
            want[i]
        );
    }
}
