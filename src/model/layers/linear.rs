//! `nn.Linear(in, out)`: `y[N, out] = x[N, in] · Wᵀ + b`, a tiled GEMM with the following
//! activation in its epilogue, weight and bias gradients as one split-K product.

use super::{Dims, Fuses, Layer, ParamTable, Record, Scratch};
use crate::error::Result;
use crate::gpu::Tensor;
use crate::kernels::grads::GradPartials;
use crate::kernels::{InputGrad, linear};
use crate::shapes::{Activation, LinearShape, ParamOffsets};

#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    name: String,
    input: Dims,
    out_features: usize,
    pub params: ParamOffsets,
}

impl Linear {
    /// `NAME.weight [out, in]` and `NAME.bias [out]`, initialised U(±1/√in); the input is
    /// flattened.
    pub fn new(t: &mut ParamTable, name: &str, input: Dims, out_features: usize) -> Linear {
        let in_features = input.numel();
        let weight = t.add(
            &format!("{name}.weight"),
            &[out_features, in_features],
            in_features,
        );
        let bias = t.add(&format!("{name}.bias"), &[out_features], in_features);
        Linear {
            name: name.to_string(),
            input,
            out_features,
            params: ParamOffsets { weight, bias },
        }
    }

    /// A Linear layer whose parameters are already in the table at `params` (the VAE head:
    /// `fc_mu` and `fc_logvar` back to back as one Linear(F → 2L)).
    pub fn at(name: &str, in_features: usize, out_features: usize, params: ParamOffsets) -> Linear {
        Linear {
            name: name.to_string(),
            input: Dims::flat(in_features),
            out_features,
            params,
        }
    }

    pub fn shape(&self, n: usize) -> LinearShape {
        LinearShape {
            n,
            in_features: self.input.numel(),
            out_features: self.out_features,
        }
    }
}

impl Layer for Linear {
    fn name(&self) -> &str {
        &self.name
    }
    fn input(&self) -> Dims {
        self.input
    }
    fn output(&self) -> Dims {
        Dims::flat(self.out_features)
    }
    fn fuses(&self) -> Fuses {
        Fuses::Both
    }
    fn forward_macs(&self) -> u64 {
        (self.input.numel() * self.out_features) as u64
    }
    fn backward_partials(&self, n: usize) -> usize {
        linear::backward_partials(self.shape(n))
    }
    fn as_linear(&self) -> Option<&Linear> {
        Some(self)
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
        linear::forward(r.plan, r.gpu, y, x, r.params, self.params, s, epilogue);
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
        linear::backward(r.plan, r.gpu, dx, partials, dy, x, r.params, self.params, s);
        Ok(())
    }
}
