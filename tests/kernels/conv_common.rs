//! The check shared by the conv2d and conv_transpose2d tests: one part of a kernel pair on the GPU
//! vs its CPU reference. The two families differ only in their shape type, kernel and reference
//! modules, and where W and b sit in the padded parameter buffer; a [`Family`] describes that.

use crate::common::{BUSY, Storage, assert_close, gpu, padded, read_padded, rtol, stored, values};
use gpu_ae::gpu::{Gpu, Plan, Tensor};
use gpu_ae::kernels::grads::GradPartials;
use gpu_ae::kernels::{InputGrad, conv_transpose2d, conv2d};
use gpu_ae::reference;
use gpu_ae::shapes::{Activation, Conv2dShape, ConvTranspose2dShape, ParamOffsets};
use std::fmt::Debug;

/// Which part of the kernel pair a check runs and asserts.
#[derive(Clone, Copy, Debug)]
pub enum Part {
    /// y from x, W, b.
    Forward,
    /// dW, db (and dx when `with_dx`) from a given dy, x and W; independent of the forward pass.
    Backward { with_dx: bool },
    /// y = act(conv(x) + b): the layer's activation fused into the product.
    ForwardWith(Activation),
    /// dW, db and dx · act'(x) where x is the output of `act`: that activation's backward pass
    /// fused into the input-gradient product.
    BackwardThrough(Activation),
}

/// `part` on every (shape, seed) in f32, with the tiles a large GPU picks and with those a CPU
/// adapter picks (`Gpu::busy_workgroups`, see [`BUSY`]).
pub fn check_on_both_grids<S: ConvShape>(shapes: impl IntoIterator<Item = (S, u64)>, part: Part) {
    let shapes: Vec<(S, u64)> = shapes.into_iter().collect();
    let mut gpu = gpu();
    for busy in BUSY {
        gpu.busy_workgroups = busy;
        for &(s, seed) in &shapes {
            check(&gpu, s, part, seed, Storage::F32);
        }
    }
}

/// `part(act)` for every activation a layer can fuse, on every shape (seeds from `seed`).
pub fn check_activations<S: ConvShape>(
    gpu: &Gpu,
    shapes: &[S],
    part: fn(Activation) -> Part,
    seed: u64,
    storage: Storage,
) {
    for (i, &act) in ACTIVATIONS.iter().enumerate() {
        for (j, &s) in shapes.iter().enumerate() {
            check(gpu, s, part(act), seed + 10 * i as u64 + j as u64, storage);
        }
    }
}

/// Every part, the fused activations included, on every shape with x, y, dy and dx stored as
/// `storage` says (seeds from `seed`).
pub fn check_every_part<S: ConvShape>(gpu: &Gpu, shapes: &[S], seed: u64, storage: Storage) {
    for (j, &s) in shapes.iter().enumerate() {
        check(gpu, s, Part::Forward, seed + j as u64, storage);
        check(gpu, s, BACKWARD, seed + j as u64, storage);
    }
    check_activations(gpu, shapes, Part::ForwardWith, seed + 100, storage);
    check_activations(gpu, shapes, Part::BackwardThrough, seed + 200, storage);
}

/// Every activation a layer can fuse.
pub const ACTIVATIONS: [Activation; 4] = [
    Activation::Relu,
    Activation::LeakyRelu(0.1),
    Activation::Sigmoid,
    Activation::Tanh,
];

pub const BACKWARD: Part = Part::Backward { with_dx: true };

/// x's shape, y's shape and the weight length; the bias has y's channel count.
type Dims<S> = fn(S) -> ([usize; 4], [usize; 4], usize);
type GpuForward<S> =
    fn(&mut Plan, &Gpu, &Tensor, &Tensor, &wgpu::Buffer, ParamOffsets, S, Option<Activation>);
type GpuBackward<S> = fn(
    &mut Plan,
    &Gpu,
    Option<InputGrad>,
    &mut GradPartials,
    &Tensor,
    &Tensor,
    &wgpu::Buffer,
    ParamOffsets,
    S,
);
type CpuForward<S> = fn(&mut [f32], &[f32], &[f32], &[f32], S);
type CpuBackward<S> = fn(Option<&mut [f32]>, &mut [f32], &mut [f32], &[f32], &[f32], &[f32], S);

/// A convolution family: the x/y shapes and weight length its shape type implies, the GPU
/// launchers, the CPU reference, and the layout of its padded parameter buffer.
pub struct Family<S> {
    /// Prefix of every failure message.
    name: &'static str,
    /// Fills the parameter and gradient buffers outside W and b.
    sentinel: f32,
    /// Elements before W, between W and b, and after b in the parameter buffer.
    padding: [usize; 3],
    dims: Dims<S>,
    gpu_forward: GpuForward<S>,
    gpu_backward: GpuBackward<S>,
    /// Scratch the backward pass needs in its `GradPartials`.
    partials: fn(S) -> usize,
    cpu_forward: CpuForward<S>,
    cpu_backward: CpuBackward<S>,
}

/// A shape type that names its convolution family.
pub trait ConvShape: Copy + Debug {
    const FAMILY: Family<Self>;
}

impl ConvShape for Conv2dShape {
    const FAMILY: Family<Self> = Family {
        name: "conv2d",
        sentinel: 12345.0,
        padding: [3, 2, 3],
        dims: |s| {
            let x = [s.n, s.c_in, s.h_in, s.w_in];
            (x, [s.n, s.c_out, s.out_h(), s.out_w()], s.weight_len())
        },
        gpu_forward: conv2d::forward,
        gpu_backward: conv2d::backward,
        partials: conv2d::backward_partials,
        cpu_forward: reference::conv2d::forward,
        cpu_backward: reference::conv2d::backward,
    };
}

impl ConvShape for ConvTranspose2dShape {
    const FAMILY: Family<Self> = Family {
        name: "conv_transpose2d",
        sentinel: -6789.0,
        padding: [5, 1, 4],
        dims: |s| {
            let x = [s.n, s.c_in, s.h_in, s.w_in];
            (x, [s.n, s.c_out, s.out_h(), s.out_w()], s.weight_len())
        },
        gpu_forward: conv_transpose2d::forward,
        gpu_backward: conv_transpose2d::backward,
        partials: conv_transpose2d::backward_partials,
        cpu_forward: reference::conv_transpose2d::forward,
        cpu_backward: reference::conv_transpose2d::backward,
    };
}

/// One part on the GPU vs the reference, with x, y, dy and dx stored as `storage` says and W and
/// b at nonzero offsets of a padded f32 parameter buffer (and dW, db at the same offsets of a
/// sentinel-filled gradient buffer). Outputs start as NaN so every element must be written, and
/// continue with a sentinel tail that must stay; the parameter buffer must come back unchanged.
pub fn check<S: ConvShape>(gpu: &Gpu, s: S, part: Part, seed: u64, storage: Storage) {
    let f = &S::FAMILY;
    let what = format!(
        "{} {part:?} {s:?} {storage:?} busy_workgroups {}",
        f.name, gpu.busy_workgroups
    );
    let (x_shape, y_shape, weight_len) = (f.dims)(s);
    let mut x = values(seed, x_shape.iter().product(), -1.0, 1.0);
    if let Part::BackwardThrough(act) = part {
        // x is that activation's output (for ReLU about half of it exactly 0).
        let pre = x.clone();
        reference::activation::forward(&mut x, &pre, act);
    }
    let x = stored(storage.input, x);
    let w = values(seed + 1, weight_len, -0.5, 0.5);
    let b = values(seed + 2, y_shape[1], -1.0, 1.0);
    let dy = stored(
        storage.output,
        values(seed + 3, y_shape.iter().product(), -1.0, 1.0),
    );
    let [before, between, after] = f.padding;
    let at = ParamOffsets {
        weight: before,
        bias: before + w.len() + between,
    };
    let total = at.bias + b.len() + after;
    let mut flat = vec![f.sentinel; total];
    flat[at.weight..at.weight + w.len()].copy_from_slice(&w);
    flat[at.bias..at.bias + b.len()].copy_from_slice(&b);

    let params = Tensor::from_f32(gpu, &[total], &flat, "params").unwrap();
    let xt = Tensor::from_f32_as(gpu, &x_shape, storage.input, &x, "x").unwrap();
    match part {
        Part::Forward | Part::ForwardWith(_) => {
            let act = match part {
                Part::ForwardWith(act) => Some(act),
                _ => None,
            };
            let yt = padded(
                gpu,
                &y_shape,
                storage.output,
                &vec![f32::NAN; dy.len()],
                "y",
            );
            let mut plan = Plan::new();
            (f.gpu_forward)(&mut plan, gpu, &yt, &xt, &params.buffer, at, s, act);
            plan.run(gpu).unwrap();

            let mut y = vec![0.0; dy.len()];
            (f.cpu_forward)(&mut y, &x, &w, &b, s);
            if let Some(act) = act {
                let pre = y.clone();
                reference::activation::forward(&mut y, &pre, act);
            }
            assert_close(
                &format!("{what} y"),
                &read_padded(gpu, &yt, &what),
                &y,
                1e-4,
                rtol(storage.output, 1e-4),
            );
        }
        Part::Backward { .. } | Part::BackwardThrough(_) => {
            let (with_dx, act) = match part {
                Part::Backward { with_dx } => (with_dx, None),
                Part::BackwardThrough(act) => (true, Some(act)),
                _ => unreachable!(),
            };
            let grads = Tensor::from_f32(gpu, &[total], &vec![f.sentinel; total], "grads").unwrap();
            let dyt = Tensor::from_f32_as(gpu, &y_shape, storage.output, &dy, "dy").unwrap();
            let dxt = padded(gpu, &x_shape, storage.input, &vec![f32::NAN; x.len()], "dx");
            let mut plan = Plan::new();
            let dx_arg = with_dx.then_some(InputGrad { dx: &dxt, act });
            let mut partials = GradPartials::new(gpu, (f.partials)(s)).unwrap();
            (f.gpu_backward)(
                &mut plan,
                gpu,
                dx_arg,
                &mut partials,
                &dyt,
                &xt,
                &params.buffer,
                at,
                s,
            );
            partials.finish(&mut plan, gpu, &grads.buffer, 1.0).unwrap();
            plan.run(gpu).unwrap();

            let mut dx = vec![0.0; x.len()];
            let mut dw = vec![0.0; w.len()];
            let mut db = vec![0.0; b.len()];
            (f.cpu_backward)(Some(&mut dx), &mut dw, &mut db, &dy, &x, &w, s);
            if let Some(act) = act {
                let g = dx.clone();
                reference::activation::backward(&mut dx, &g, &x, act);
            }

            let g = grads.read_f32(gpu).unwrap();
            // n · out_h · out_w output positions are summed into each dW and db element.
            let positions = (y_shape[0] * y_shape[2] * y_shape[3]) as f32;
            let atol = 1e-5 * positions.max(10.0);
            assert_close(
                &format!("{what} dw"),
                &g[at.weight..at.weight + w.len()],
                &dw,
                atol,
                1e-4,
            );
            assert_close(
                &format!("{what} db"),
                &g[at.bias..at.bias + b.len()],
                &db,
                atol,
                1e-4,
            );
            for (i, &v) in g.iter().enumerate() {
                let inside = (at.weight..at.weight + w.len()).contains(&i)
                    || (at.bias..at.bias + b.len()).contains(&i);
                assert!(
                    inside || v == f.sentinel,
                    "{what}: gradient element {i} outside dW/db was written"
                );
            }
            let got_dx = read_padded(gpu, &dxt, &what);
            if with_dx {
                let dx_rtol = rtol(storage.input, 1e-4);
                assert_close(&format!("{what} dx"), &got_dx, &dx, 1e-4, dx_rtol);
            } else {
                assert!(
                    got_dx.iter().all(|v| v.is_nan()),
                    "{what}: dx written although not asked for"
                );
            }
        }
    }
    let p = params.read_f32(gpu).unwrap();
    assert_eq!(p, flat, "{what}: the parameter buffer changed");
}
