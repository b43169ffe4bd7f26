//! A conditional VAE's class label as a layer: `torch.cat([x.flatten(1), one_hot(label, K)], 1)`,
//! the one-hot block of the batch's labels ([`Record::labels`]) appended to each flattened row
//! (the encoder features before the head, z before the decoder). No parameters and no module
//! index of its own in PyTorch's `Sequential`. Its backward pass drops the label columns, with
//! the derivative of the activation before it folded in, and adds up the split-K slices of the
//! Linear layer after it itself ([`Layer::backward_from_slices`]).

use super::{Dims, Fuses, Layer, ParamTable, Record, Scratch};
use crate::error::Result;
use crate::gpu::Tensor;
use crate::kernels::grads::GradPartials;
use crate::kernels::{InputGrad, SplitTensor, condition};
use crate::shapes::Activation;

#[derive(Debug, Clone, PartialEq)]
pub struct ConcatLabel {
    name: String,
    input: Dims,
    /// K.
    classes: usize,
}

impl ConcatLabel {
    pub fn new(_: &mut ParamTable, name: &str, input: Dims, classes: usize) -> ConcatLabel {
        ConcatLabel {
            name: name.to_string(),
            input,
            classes,
        }
    }

    fn labels<'r>(&self, r: &Record<'r>) -> &'r Tensor {
        r.labels
            .unwrap_or_else(|| panic!("{}: a conditional graph binds its labels", self.name))
    }
}

impl Layer for ConcatLabel {
    fn name(&self) -> &str {
        &self.name
    }
    fn input(&self) -> Dims {
        self.input
    }
    fn output(&self) -> Dims {
        Dims::flat(self.input.numel() + self.classes)
    }
    fn fuses(&self) -> Fuses {
        Fuses::InputOnly
    }
    fn backward_reads_slices(&self) -> bool {
        true
    }

    fn forward(
        &self,
        r: &mut Record,
        y: &Tensor, // [n, A+K]
        x: &Tensor, // [n, A]
        _: Option<Activation>,
        _: &Scratch,
    ) -> Result<()> {
        let labels = self.labels(r);
        let (a, k) = (self.input.numel(), self.classes);
        condition::concat_onehot(r.plan, r.gpu, y, x, labels, r.n, a, k);
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
        self.backward_from_slices(r, dx, &SplitTensor::whole(dy), x);
        Ok(())
    }

    fn backward_from_slices(
        &self,
        r: &mut Record,
        dx: Option<InputGrad>,
        dy: &SplitTensor,
        x: &Tensor,
    ) {
        if let Some(dx) = dx {
            let (a, k) = (self.input.numel(), self.classes);
            condition::take_columns(r.plan, r.gpu, dx, dy, Some(x), r.n, a, k);
        }
    }
}
