//! `nn.BatchNorm2d(c)`: batch statistics (two-level, shifted) and a running-statistics update
//! in training, the running statistics otherwise; the following activation in the normalising
//! pass; γ and β gradients through the gradient partials.

use super::{Dims, Fuses, Layer, ParamTable, Record, Scratch, ScratchFor};
use crate::error::Result;
use crate::gpu::Tensor;
use crate::kernels::grads::GradPartials;
use crate::kernels::{InputGrad, batchnorm};
use crate::model::layers::Init;
use crate::shapes::{Activation, BatchNorm2dShape, ParamOffsets};

#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm2d {
    name: String,
    dims: Dims,
    params: ParamOffsets,
    /// Offset of `running_mean` in the running-statistics buffer; `running_var` follows.
    running: usize,
}

impl BatchNorm2d {
    /// `NAME.weight` (1) and `NAME.bias` (0) `[C]`, and the buffers `NAME.running_mean` (0) and
    /// `NAME.running_var` (1).
    pub fn new(t: &mut ParamTable, name: &str, dims: Dims) -> BatchNorm2d {
        let c = dims.c;
        let weight = t.add_init(&format!("{name}.weight"), &[c], Init::Const(1.0));
        let bias = t.add_init(&format!("{name}.bias"), &[c], Init::Const(0.0));
        let running = t.add_buffer(&format!("{name}.running_mean"), &[c], Init::Const(0.0));
        t.add_buffer(&format!("{name}.running_var"), &[c], Init::Const(1.0));
        BatchNorm2d {
            name: name.to_string(),
            dims,
            params: ParamOffsets { weight, bias },
            running,
        }
    }

    fn shape(&self, n: usize) -> BatchNorm2dShape {
        BatchNorm2dShape {
            n,
            c: self.dims.c,
            h: self.dims.h,
            w: self.dims.w,
        }
    }

    fn running<'a>(&self, buffer: &'a wgpu::Buffer) -> batchnorm::Running<'a> {
        batchnorm::Running {
            buffer,
            mean: self.running,
            var: self.running + self.dims.c,
        }
    }
}

impl Layer for BatchNorm2d {
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
        Fuses::Both
    }
    fn backward_partials(&self, n: usize) -> usize {
        batchnorm::backward_partials(self.shape(n))
    }

    /// Training: the batch mean and inverse deviation the backward pass reads.
    fn scratch(&self, at: ScratchFor) -> Result<Scratch> {
        let tensors = if at.training {
            vec![Tensor::zeros(
                at.gpu,
                &[batchnorm::saved_len(self.shape(at.n))],
                &format!("{} {} batch statistics", at.label, self.name),
            )?]
        } else {
            Vec::new()
        };
        Ok(Scratch {
            tensors,
            inner: None,
        })
    }

    fn forward(
        &self,
        r: &mut Record,
        y: &Tensor,
        x: &Tensor,
        epilogue: Option<Activation>,
        s: &Scratch,
    ) -> Result<()> {
        let shape = self.shape(r.n);
        let running = self.running(r.buffers);
        match s.tensors.first() {
            Some(saved) => batchnorm::forward_train(
                r.plan,
                r.gpu,
                y,
                saved,
                running,
                x,
                r.params,
                self.params,
                shape,
                epilogue,
            ),
            None => {
                batchnorm::forward_eval(
                    r.plan,
                    r.gpu,
                    y,
                    running,
                    x,
                    r.params,
                    self.params,
                    shape,
                    epilogue,
                );
                Ok(())
            }
        }
    }

    /// A following activation's derivative was applied by the layer after it (or by the
    /// caller), so `dy` is the gradient of the normalised output itself.
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
        let saved = s
            .tensors
            .first()
            .expect("a training stack keeps batch statistics");
        batchnorm::backward(
            r.plan,
            r.gpu,
            dx,
            partials,
            dy,
            y,
            x,
            saved,
            r.params,
            self.params,
            self.shape(r.n),
            None,
        );
        Ok(())
    }
}
