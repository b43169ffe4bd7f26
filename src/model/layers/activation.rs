//! An element-wise activation module (`nn.ReLU`, `nn.LeakyReLU(slope)`, `nn.Sigmoid`,
//! `nn.Tanh`). After a layer that fuses it, it records nothing; elsewhere it is its own pass,
//! and its backward pass works from its output.

use super::{Dims, Fuses, Layer, Record, Scratch};
use crate::error::Result;
use crate::gpu::Tensor;
use crate::kernels::grads::GradPartials;
use crate::kernels::{InputGrad, activation};
use crate::model::layers::ParamTable;
use crate::shapes::Activation;

#[derive(Debug, Clone, PartialEq)]
pub struct Act {
    name: String,
    dims: Dims,
    pub act: Activation,
}

impl Act {
    pub fn new(_: &mut ParamTable, name: &str, dims: Dims, act: Activation) -> Act {
        Act {
            name: name.to_string(),
            dims,
            act,
        }
    }
}

impl Layer for Act {
    fn name(&self) -> &str {
        &self.name
    }
    fn input(&self) -> Dims {
        self.dims
    }
    fn output(&self) -> Dims {
        self.dims
    }
    fn fuses(&self) -> Fuses {
        Fuses::Activation(self.act)
    }

    fn forward(
        &self,
        r: &mut Record,
        y: &Tensor,
        x: &Tensor,
        _: Option<Activation>,
        _: &Scratch,
    ) -> Result<()> {
        activation::forward(r.plan, r.gpu, y, x, self.act);
        Ok(())
    }

    /// Only when someone needs the input gradient.
    fn backward(
        &self,
        r: &mut Record,
        _: &mut GradPartials,
        dx: Option<InputGrad>,
        dy: &Tensor,
        _: &Tensor,
        y: &Tensor,
        _: &Scratch,
    ) -> Result<()> {
        if let Some(dx) = dx {
            activation::backward(r.plan, r.gpu, dx.dx, dy, y, self.act)
        }
        Ok(())
    }
}
