//! ResNet's basic block at constant width, `pytorch_images.ResBlock`:
//! `y = act(x + bn2(conv2(act(bn1(conv1(x))))))`, the convolutions 3×3, stride 1, padding 1,
//! with bias, batch norm optional. The branch is a [`Stack`] of its own (`NAME.conv1`,
//! `NAME.bn1`, `NAME.act1`, `NAME.conv2`, `NAME.bn2`, fused as any stack), and the skip is
//! `kernels::residual`: `add_act` forward; backward, the final activation's derivative, the
//! branch, then `add_grads` adds the branch's and the skip's gradients of the block input
//! (folding in the derivative of the activation before the block).

use super::{
    Act, BatchNorm2d, Conv2d, Dims, Fuses, Layer, ParamTable, Record, Scratch, ScratchFor, Stack,
    StackBuffers, StackBuilder,
};
use crate::error::Result;
use crate::gpu::Tensor;
use crate::kernels::grads::GradPartials;
use crate::kernels::{InputGrad, activation, residual};
use crate::model::layers::Backward;
use crate::shapes::Activation;

#[derive(Debug, Clone)]
pub struct ResBlock {
    name: String,
    dims: Dims,
    branch: Stack,
    act: Activation,
}

impl ResBlock {
    /// The block on `dims` (its width `dims.c`), with `NAME.bn1`/`NAME.bn2` when `batch_norm`.
    pub fn new(
        t: &mut ParamTable,
        name: &str,
        dims: Dims,
        batch_norm: bool,
        act: Activation,
    ) -> ResBlock {
        let w = dims.c;
        let mut b = StackBuilder::new(t, name, dims);
        b.push_named("conv1", |t, name, d| Conv2d::new(t, name, d, w, 3, 1, 1));
        if batch_norm {
            b.push_named("bn1", BatchNorm2d::new);
        }
        b.push_named("act1", |t, name, d| Act::new(t, name, d, act));
        b.push_named("conv2", |t, name, d| Conv2d::new(t, name, d, w, 3, 1, 1));
        if batch_norm {
            b.push_named("bn2", BatchNorm2d::new);
        }
        ResBlock {
            name: name.to_string(),
            dims,
            branch: b.finish(),
            act,
        }
    }
}

impl Layer for ResBlock {
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
        Fuses::InputOnly
    }
    fn forward_macs(&self) -> u64 {
        self.branch.forward_macs()
    }
    fn backward_partials(&self, n: usize) -> usize {
        self.branch.backward_partials(n)
    }

    /// The branch on the GPU; training adds `g` (the gradient of the sum `x + r`) and the
    /// branch's gradient of the block input, both `[n, C, H, W]`.
    fn scratch(&self, at: ScratchFor) -> Result<Scratch> {
        let backward = if at.training {
            Backward::FromOutput
        } else {
            Backward::None
        };
        let label = format!("{} {}", at.label, self.name);
        let inner = StackBuffers::new(at.gpu, &self.branch, at.n, at.elem, backward, &label)?;
        let shape = self.dims.batch(at.n);
        let tensors = if at.training {
            vec![
                Tensor::zeros_as(at.gpu, &shape, at.elem, &format!("{label} d sum"))?,
                Tensor::zeros_as(at.gpu, &shape, at.elem, &format!("{label} d branch input"))?,
            ]
        } else {
            Vec::new()
        };
        Ok(Scratch {
            tensors,
            inner: Some(inner),
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
        let inner = s.inner.as_ref().expect("a residual block keeps its branch");
        inner.forward(r, &self.branch, x)?;
        residual::add_act(r.plan, r.gpu, y, x, inner.output(), self.act);
        Ok(())
    }

    fn backward(
        &self,
        r: &mut Record,
        partials: &mut GradPartials,
        dx: Option<InputGrad>,
        dy: &Tensor,
        x: &Tensor,
        y: &Tensor,
        s: &Scratch,
    ) -> Result<()> {
        let inner = s.inner.as_ref().expect("a residual block keeps its branch");
        let [d_sum, d_branch_input] = &s.tensors[..] else {
            unreachable!("a training block keeps its two gradients")
        };
        activation::backward(r.plan, r.gpu, d_sum, dy, y, self.act);
        let din = dx.is_some().then_some(d_branch_input);
        inner.backward(r, &self.branch, din, partials, d_sum, x)?;
        if let Some(dx) = dx {
            residual::add_grads(r.plan, r.gpu, dx, d_branch_input, d_sum, x);
        }
        Ok(())
    }
}
