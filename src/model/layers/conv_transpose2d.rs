//! `nn.ConvTranspose2d(c_in, c_out, k, stride, padding, output_padding)` with bias: the
//! products of `conv2d.wgsl` with the roles of input and output swapped, the following
//! activation in the epilogue.

use super::{Dims, Fuses, Layer, ParamTable, Record, Scratch};
use crate::error::Result;
use crate::gpu::Tensor;
use crate::kernels::grads::GradPartials;
use crate::kernels::{InputGrad, conv_transpose2d};
use crate::shapes::{Activation, ConvTranspose2dShape, ParamOffsets};

#[derive(Debug, Clone, PartialEq)]
pub struct ConvTranspose2d {
    name: String,
    input: Dims,
    pub c_out: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub output_padding: usize,
    params: ParamOffsets,
}

impl ConvTranspose2d {
    /// `NAME.weight [c_in, c_out, k, k]` and `NAME.bias [c_out]`, initialised U(±1/√(c_out·k²))
    /// (PyTorch takes the fan-in from `weight.size(1)`, which is C_out here).
    pub fn new(
        t: &mut ParamTable,
        name: &str,
        input: Dims,
        c_out: usize,
        (kernel, stride, padding, output_padding): (usize, usize, usize, usize),
    ) -> ConvTranspose2d {
        let fan_in = c_out * kernel * kernel;
        let weight = t.add(
            &format!("{name}.weight"),
            &[input.c, c_out, kernel, kernel],
            fan_in,
        );
        let bias = t.add(&format!("{name}.bias"), &[c_out], fan_in);
        ConvTranspose2d {
            name: name.to_string(),
            input,
            c_out,
            kernel,
            stride,
            padding,
            output_padding,
            params: ParamOffsets { weight, bias },
        }
    }

    fn shape(&self, n: usize) -> ConvTranspose2dShape {
        ConvTranspose2dShape {
            n,
            c_in: self.input.c,
            h_in: self.input.h,
            w_in: self.input.w,
            c_out: self.c_out,
            kernel_h: self.kernel,
            kernel_w: self.kernel,
            stride: self.stride,
            padding: self.padding,
            output_padding: self.output_padding,
        }
    }
}

impl Layer for ConvTranspose2d {
    fn name(&self) -> &str {
        &self.name
    }
    fn input(&self) -> Dims {
        self.input
    }
    fn output(&self) -> Dims {
        let s = self.shape(1);
        Dims::new(self.c_out, s.out_h(), s.out_w())
    }
    fn fuses(&self) -> Fuses {
        Fuses::Both
    }
    fn forward_macs(&self) -> u64 {
        (self.input.numel() * self.c_out * self.kernel * self.kernel) as u64
    }
    fn backward_partials(&self, n: usize) -> usize {
        conv_transpose2d::backward_partials(self.shape(n))
    }

    fn forward(
        &self,
        r: &mut Record,
        y: &Tensor,
        x: &Tensor,
        epilogue: Option<Activation>,
        _: &Scratch,
    ) -> Result<()> {
        let s = self.shape(r.n);
        conv_transpose2d::forward(r.plan, r.gpu, y, x, r.params, self.params, s, epilogue);
        Ok(())
    }

    fn backward(
        &self,
        r: &mut Record,
        partials: &mut GradPartials,
        dx: Option<InputGrad>,
        dy: &Tensor,
        x: &Tensor,
        _: &Tensor,
        _: &Scratch,
    ) -> Result<()> {
        let s = self.shape(r.n);
        conv_transpose2d::backward(r.plan, r.gpu, dx, partials, dy, x, r.params, self.params, s);
        Ok(())
    }
}
