//! `nn.Upsample(size=(H, W), mode="nearest")`: nearest-neighbour resizing to a given side
//! (source index `⌊i·in/out⌋`, odd sizes included). Its backward pass is a gather that folds
//! in the derivative of the activation before it.

use super::{Dims, Fuses, Layer, ParamTable, Record, Scratch};
use crate::error::Result;
use crate::gpu::Tensor;
use crate::kernels::grads::GradPartials;
use crate::kernels::{InputGrad, upsample};
use crate::shapes::{Activation, UpsampleShape};

#[derive(Debug, Clone, PartialEq)]
pub struct Upsample {
    name: String,
    input: Dims,
    pub h_out: usize,
    pub w_out: usize,
}

impl Upsample {
    pub fn new(
        _: &mut ParamTable,
        name: &str,
        input: Dims,
        (h_out, w_out): (usize, usize),
    ) -> Upsample {
        Upsample {
            name: name.to_string(),
            input,
            h_out,
            w_out,
        }
    }

    fn shape(&self, n: usize) -> UpsampleShape {
        UpsampleShape {
            n,
            c: self.input.c,
            h_in: self.input.h,
            w_in: self.input.w,
            h_out: self.h_out,
            w_out: self.w_out,
        }
    }
}

impl Layer for Upsample {
    fn name(&self) -> &str {
        &self.name
    }
    fn input(&self) -> Dims {
        self.input
    }
    fn output(&self) -> Dims {
        Dims::new(self.input.c, self.h_out, self.w_out)
    }
    fn fuses(&self) -> Fuses {
        Fuses::InputOnly
    }

    fn forward(
        &self,
        r: &mut Record,
        y: &Tensor,
        x: &Tensor,
        _: Option<Activation>,
        _: &Scratch,
    ) -> Result<()> {
        upsample::nearest_forward(r.plan, r.gpu, y, x, self.shape(r.n));
        Ok(())
    }

    fn backward(
        &self,
        r: &mut Record,
        _: &mut GradPartials,
        dx: Option<InputGrad>,
        dy: &Tensor,
        x: &Tensor,
        _: &Tensor,
        _: &Scratch,
    ) -> Result<()> {
        if let Some(dx) = dx {
            upsample::nearest_backward(r.plan, r.gpu, dx, dy, x, self.shape(r.n))
        }
        Ok(())
    }
}
