//! `nn.Conv2d(c_in, c_out, k, stride, padding)` with bias: an implicit GEMM with the following
//! activation in its epilogue; input gradient split by stride phase, weight and bias gradients
//! as one split-K product.

use super::{Dims, Fuses, Layer, ParamTable, Record, Scratch};
use crate::error::Result;
use crate::gpu::Tensor;
use crate::kernels::grads::GradPartials;
use crate::kernels::{InputGrad, conv2d};
use crate::shapes::{Activation, Conv2dShape, ParamOffsets};

#[derive(Debug, Clone, PartialEq)]
pub struct Conv2d {
    name: String,
    input: Dims,
    pub c_out: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    params: ParamOffsets,
}

impl Conv2d {
    /// `NAME.weight [c_out, c_in, k, k]` and `NAME.bias [c_out]`, initialised U(±1/√(c_in·k²)).
    pub fn new(
        t: &mut ParamTable,
        name: &str,
        input: Dims,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Conv2d {
        let fan_in = input.c * kernel * kernel;
        let weight = t.add(
            &format!("{name}.weight"),
            &[c_out, input.c, kernel, kernel],
            fan_in,
        );
        let bias = t.add(&format!("{name}.bias"), &[c_out], fan_in);
        Conv2d {
            name: name.to_string(),
            input,
            c_out,
            kernel,
            stride,
            padding,
            params: ParamOffsets { weight, bias },
        }
    }

    fn shape(&self, n: usize) -> Conv2dShape {
        Conv2dShape {
            n,
            c_in: self.input.c,
            h_in: self.input.h,
            w_in: self.input.w,
            c_out: self.c_out,
            kernel_h: self.kernel,
            kernel_w: self.kernel,
            stride: self.stride,
            padding: self.padding,
        }
    }
}

impl Layer for Conv2d {
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
        (self.output().numel() * self.input.c * self.kernel * self.kernel) as u64
    }
    fn backward_partials(&self, n: usize) -> usize {
        conv2d::backward_partials(self.shape(n))
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
        conv2d::forward(r.plan, r.gpu, y, x, r.params, self.params, s, epilogue);
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
        conv2d::backward(r.plan, r.gpu, dx, partials, dy, x, r.params, self.params, s);
        Ok(())
    }
}
