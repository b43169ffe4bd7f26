//! `nn.MaxPool2d(2, padding=p)`: 2×2 stride-2 max pooling whose argmax the backward pass
//! routes the gradient through.

use super::{Dims, Fuses, Layer, ParamTable, Record, Scratch, ScratchFor};
use crate::error::Result;
use crate::gpu::Tensor;
use crate::kernels::grads::GradPartials;
use crate::kernels::{InputGrad, pool};
use crate::shapes::{Activation, Pool2dShape};

#[derive(Debug, Clone, PartialEq)]
pub struct MaxPool2x2 {
    name: String,
    input: Dims,
    padding: usize,
}

impl MaxPool2x2 {
    pub fn new(_: &mut ParamTable, name: &str, input: Dims, padding: usize) -> MaxPool2x2 {
        MaxPool2x2 {
            name: name.to_string(),
            input,
            padding,
        }
    }

    fn shape(&self, n: usize) -> Pool2dShape {
        Pool2dShape {
            n,
            c: self.input.c,
            h_in: self.input.h,
            w_in: self.input.w,
            padding: self.padding,
        }
    }
}

impl Layer for MaxPool2x2 {
    fn name(&self) -> &str {
        &self.name
    }
    fn input(&self) -> Dims {
        self.input
    }
    fn output(&self) -> Dims {
        let s = self.shape(1);
        Dims::new(self.input.c, s.out_h(), s.out_w())
    }
    fn fuses(&self) -> Fuses {
        Fuses::Nothing
    }

    /// The argmax of every output cell, u32 `[n, C, OH, OW]`.
    fn scratch(&self, at: ScratchFor) -> Result<Scratch> {
        Ok(Scratch {
            tensors: vec![Tensor::zeros(
                at.gpu,
                &self.output().batch(at.n),
                &format!("{} {} argmax", at.label, self.name),
            )?],
            inner: None,
        })
    }

    fn forward(
        &self,
        r: &mut Record,
        y: &Tensor,
        x: &Tensor,
        _: Option<Activation>,
        s: &Scratch,
    ) -> Result<()> {
        pool::max_pool2x2_forward(r.plan, r.gpu, y, &s.tensors[0], x, self.shape(r.n));
        Ok(())
    }

    fn backward(
        &self,
        r: &mut Record,
        _: &mut GradPartials,
        dx: Option<InputGrad>,
        dy: &Tensor,
        _: &Tensor,
        _: &Tensor,
        s: &Scratch,
    ) -> Result<()> {
        if let Some(dx) = dx {
            let shape = self.shape(r.n);
            pool::max_pool2x2_backward(r.plan, r.gpu, dx.dx, dy, &s.tensors[0], shape)
        }
        Ok(())
    }
}
