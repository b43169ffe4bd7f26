//! Layers and stacks of layers. A layer knows its kind, its PyTorch name (`enc.0`) and where its
//! parameters sit in the flat parameter buffer; a [`Stack`] is a `nn.Sequential` whose per-example
//! shapes are known, and a [`StackBuffers`] is that stack instantiated on the GPU for one batch
//! size, with its forward and backward dispatches recorded into plans. Layers never touch wgpu
//! beyond handing buffers to the kernel launchers.

use crate::error::Result;
use crate::gpu::{Elem, Gpu, Plan, Tensor};
use crate::host_rng::SplitMix64;
use crate::kernels::grads::GradPartials;
use crate::kernels::{InputGrad, activation, batchnorm, conv_transpose2d, conv2d, linear, pool};
use crate::shapes::{
    Activation, BatchNorm2dShape, Conv2dShape, ConvTranspose2dShape, LinearShape, ParamOffsets,
    Pool2dShape,
};

/// Per-example shape `[C, H, W]`; a feature vector of F values is `[F, 1, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Dims {
    pub const fn new(c: usize, h: usize, w: usize) -> Dims {
        Dims { c, h, w }
    }
    pub const fn flat(f: usize) -> Dims {
        Dims { c: f, h: 1, w: 1 }
    }
    pub fn numel(&self) -> usize {
        self.c * self.h * self.w
    }
    /// Tensor shape for a batch of `n`: `[n, C, H, W]`.
    pub fn batch(&self, n: usize) -> [usize; 4] {
        [n, self.c, self.h, self.w]
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerKind {
    Linear {
        in_features: usize,
        out_features: usize,
    },
    Conv2d {
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    ConvTranspose2d {
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        output_padding: usize,
    },
    /// `nn.BatchNorm2d(c)`: batch statistics in training, running statistics otherwise.
    BatchNorm2d {
        c: usize,
    },
    Act(Activation),
    MaxPool2x2 {
        padding: usize,
    },
    Upsample2x,
    /// `nn.Unflatten`: views the previous output as `[C, H, W]`. Free in NCHW, so a stack
    /// records no dispatch for it and it never becomes a [`Layer`].
    Unflatten(Dims),
}

/// How PyTorch initialises a tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// U(±1/√fan_in): Linear and convolution weights and biases.
    FanIn(usize),
    /// Every value the same: batch norm's weight (1), bias and running mean (0), running var (1).
    Const(f32),
}

/// One entry of a flat buffer: a PyTorch `state_dict` name, shape and offset.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamEntry {
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
    pub init: Init,
}

impl ParamEntry {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The tables of offsets into the one flat parameter buffer (llm.c style: Adam is then one
/// dispatch over everything) and into the flat buffer of running statistics (batch norm's
/// `running_mean` and `running_var`: state, not trained).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParamTable {
    pub entries: Vec<ParamEntry>,
    pub total: usize,
    pub buffers: Vec<ParamEntry>,
    pub buffers_total: usize,
}

fn append(
    entries: &mut Vec<ParamEntry>,
    total: &mut usize,
    name: &str,
    shape: &[usize],
    init: Init,
) -> usize {
    let offset = *total;
    let entry = ParamEntry {
        name: name.to_string(),
        shape: shape.to_vec(),
        offset,
        init,
    };
    *total += entry.len();
    entries.push(entry);
    offset
}

impl ParamTable {
    /// Appends a parameter tensor initialised U(±1/√fan_in) and returns its element offset.
    pub fn add(&mut self, name: &str, shape: &[usize], fan_in: usize) -> usize {
        self.add_init(name, shape, Init::FanIn(fan_in))
    }

    /// Appends a parameter tensor and returns its element offset.
    pub fn add_init(&mut self, name: &str, shape: &[usize], init: Init) -> usize {
        append(&mut self.entries, &mut self.total, name, shape, init)
    }

    /// Appends a running-statistics tensor and returns its offset in the buffers.
    pub fn add_buffer(&mut self, name: &str, shape: &[usize], init: Init) -> usize {
        append(
            &mut self.buffers,
            &mut self.buffers_total,
            name,
            shape,
            init,
        )
    }

    pub fn get(&self, name: &str) -> Option<&ParamEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// PyTorch's default init: for Linear/Conv/ConvTranspose, kaiming_uniform with a = √5 for
    /// weights, which is U(±1/√fan_in), and U(±1/√fan_in) for biases, from a seeded stream;
    /// batch norm's weight 1 and bias 0.
    pub fn init(&self, seed: u64) -> Vec<f32> {
        init_values(&self.entries, self.total, seed)
    }

    /// The running statistics of a new model: means 0, variances 1.
    pub fn init_buffers(&self) -> Vec<f32> {
        init_values(&self.buffers, self.buffers_total, 0)
    }

    /// Batch norm layers: the prefixes (`enc.1`) whose `num_batches_tracked` a checkpoint holds.
    pub fn batch_norms(&self) -> impl Iterator<Item = &str> {
        self.buffers
            .iter()
            .filter_map(|e| e.name.strip_suffix(".running_mean"))
    }
}

fn init_values(entries: &[ParamEntry], total: usize, seed: u64) -> Vec<f32> {
    let mut values = vec![0.0f32; total];
    for (i, e) in entries.iter().enumerate() {
        let slice = &mut values[e.offset..e.offset + e.len()];
        match e.init {
            Init::FanIn(fan_in) => {
                let mut rng = SplitMix64::derived(seed, 0x1417, i as u64);
                let bound = 1.0 / (fan_in as f32).sqrt();
                for v in slice {
                    *v = rng.uniform(-bound, bound);
                }
            }
            Init::Const(c) => slice.fill(c),
        }
    }
    values
}

/// A layer with its PyTorch name and (for Linear, convolution and batch norm layers) its
/// parameter offsets; a batch norm layer also has the offset of its running mean in the buffers
/// (its running variance follows).
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub name: String,
    pub kind: LayerKind,
    pub params: Option<ParamOffsets>,
    pub running: Option<usize>,
}

impl Layer {
    /// Registers the parameters of `kind` under `name` and returns the layer.
    pub fn new(table: &mut ParamTable, name: &str, kind: LayerKind) -> Layer {
        let params = match kind {
            LayerKind::Linear {
                in_features,
                out_features,
            } => Some(ParamOffsets {
                weight: table.add(
                    &format!("{name}.weight"),
                    &[out_features, in_features],
                    in_features,
                ),
                bias: table.add(&format!("{name}.bias"), &[out_features], in_features),
            }),
            LayerKind::Conv2d {
                c_in,
                c_out,
                kernel,
                ..
            } => {
                let fan_in = c_in * kernel * kernel;
                Some(ParamOffsets {
                    weight: table.add(
                        &format!("{name}.weight"),
                        &[c_out, c_in, kernel, kernel],
                        fan_in,
                    ),
                    bias: table.add(&format!("{name}.bias"), &[c_out], fan_in),
                })
            }
            LayerKind::ConvTranspose2d {
                c_in,
                c_out,
                kernel,
                ..
            } => {
                // PyTorch computes fan_in from weight.size(1), which is C_out here.
                let fan_in = c_out * kernel * kernel;
                Some(ParamOffsets {
                    weight: table.add(
                        &format!("{name}.weight"),
                        &[c_in, c_out, kernel, kernel],
                        fan_in,
                    ),
                    bias: table.add(&format!("{name}.bias"), &[c_out], fan_in),
                })
            }
            LayerKind::BatchNorm2d { c } => Some(ParamOffsets {
                weight: table.add_init(&format!("{name}.weight"), &[c], Init::Const(1.0)),
                bias: table.add_init(&format!("{name}.bias"), &[c], Init::Const(0.0)),
            }),
            _ => None,
        };
        let running = match kind {
            LayerKind::BatchNorm2d { c } => {
                let mean =
                    table.add_buffer(&format!("{name}.running_mean"), &[c], Init::Const(0.0));
                table.add_buffer(&format!("{name}.running_var"), &[c], Init::Const(1.0));
                Some(mean)
            }
            _ => None,
        };
        Layer {
            name: name.to_string(),
            kind,
            params,
            running,
        }
    }

    /// Output shape for input shape `d` (panics on a shape the architecture never builds).
    pub fn out_dims(&self, d: Dims) -> Dims {
        match self.kind {
            LayerKind::Linear {
                in_features,
                out_features,
            } => {
                assert_eq!(d.numel(), in_features, "{}: input features", self.name);
                Dims::flat(out_features)
            }
            LayerKind::Conv2d { .. } => {
                let s = self.conv_shape(1, d);
                Dims::new(s.c_out, s.out_h(), s.out_w())
            }
            LayerKind::ConvTranspose2d { .. } => {
                let s = self.conv_t_shape(1, d);
                Dims::new(s.c_out, s.out_h(), s.out_w())
            }
            LayerKind::BatchNorm2d { c } => {
                assert_eq!(d.c, c, "{}: input channels", self.name);
                d
            }
            LayerKind::Act(_) => d,
            LayerKind::MaxPool2x2 { padding } => {
                let s = pool_shape(1, d, padding);
                Dims::new(d.c, s.out_h(), s.out_w())
            }
            LayerKind::Upsample2x => Dims::new(d.c, 2 * d.h, 2 * d.w),
            LayerKind::Unflatten(to) => {
                assert_eq!(d.numel(), to.numel(), "{}: unflatten size", self.name);
                to
            }
        }
    }

    fn conv_shape(&self, n: usize, d: Dims) -> Conv2dShape {
        let LayerKind::Conv2d {
            c_in,
            c_out,
            kernel,
            stride,
            padding,
        } = self.kind
        else {
            unreachable!("conv_shape on {}", self.name)
        };
        assert_eq!(d.c, c_in, "{}: input channels", self.name);
        Conv2dShape {
            n,
            c_in,
            h_in: d.h,
            w_in: d.w,
            c_out,
            kernel_h: kernel,
            kernel_w: kernel,
            stride,
            padding,
        }
    }

    fn conv_t_shape(&self, n: usize, d: Dims) -> ConvTranspose2dShape {
        let LayerKind::ConvTranspose2d {
            c_in,
            c_out,
            kernel,
            stride,
            padding,
            output_padding,
        } = self.kind
        else {
            unreachable!("conv_t_shape on {}", self.name)
        };
        assert_eq!(d.c, c_in, "{}: input channels", self.name);
        ConvTranspose2dShape {
            n,
            c_in,
            h_in: d.h,
            w_in: d.w,
            c_out,
            kernel_h: kernel,
            kernel_w: kernel,
            stride,
            padding,
            output_padding,
        }
    }

    fn linear_shape(&self, n: usize) -> LinearShape {
        let LayerKind::Linear {
            in_features,
            out_features,
        } = self.kind
        else {
            unreachable!("linear_shape on {}", self.name)
        };
        LinearShape {
            n,
            in_features,
            out_features,
        }
    }
}

fn batch_norm_shape(n: usize, d: Dims) -> BatchNorm2dShape {
    BatchNorm2dShape {
        n,
        c: d.c,
        h: d.h,
        w: d.w,
    }
}

fn pool_shape(n: usize, d: Dims, padding: usize) -> Pool2dShape {
    Pool2dShape {
        n,
        c: d.c,
        h_in: d.h,
        w_in: d.w,
        padding,
    }
}

/// A `nn.Sequential` with known per-example shapes: `dims[i]` is the input of layer `i`,
/// `dims[len]` the output of the stack; `fusion[i]` how layer `i` runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Stack {
    pub layers: Vec<Layer>,
    pub dims: Vec<Dims>,
    pub fusion: Vec<Fusion>,
}

/// How a layer runs once activations are fused into their neighbours, decided in one place
/// ([`Stack::new`]): an activation that follows a layer with parameters (Linear, convolutions,
/// batch norm) is applied in that layer's epilogue and records nothing itself, and the layer
/// with parameters after it applies its derivative in its own input-gradient product. The
/// pre-activation is never stored, and neither is the activation output's gradient.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Fusion {
    /// An activation folded into the layer before it: no dispatch of its own, and it shares
    /// that layer's output tensor.
    pub folded: bool,
    /// The activation this layer applies to its output (the next layer, folded).
    pub epilogue: Option<Activation>,
    /// The activation that produced this layer's input, whose derivative this layer's
    /// input-gradient product applies.
    pub input_act: Option<Activation>,
}

impl Stack {
    /// Builds a stack named `prefix` (`enc`, `dec`) from `(index, kind)` pairs; the layer is
    /// named `prefix.index`, its position in PyTorch's `nn.Sequential` (reshapes and a final
    /// sigmoid fused into the loss take indices without being layers here).
    pub fn new(
        table: &mut ParamTable,
        prefix: &str,
        input: Dims,
        kinds: &[(usize, LayerKind)],
    ) -> Stack {
        let mut dims = vec![input];
        let mut layers = Vec::with_capacity(kinds.len());
        for &(index, kind) in kinds {
            let layer = Layer::new(table, &format!("{prefix}.{index}"), kind);
            let out = layer.out_dims(*dims.last().expect("dims starts non-empty"));
            if let LayerKind::Unflatten(_) = kind {
                *dims.last_mut().expect("dims starts non-empty") = out;
                continue;
            }
            dims.push(out);
            layers.push(layer);
        }
        let kinds: Vec<LayerKind> = layers.iter().map(|l| l.kind).collect();
        let folded = |i: usize| match kinds[i] {
            LayerKind::Act(act) if i > 0 && has_params(kinds[i - 1]) => Some(act),
            _ => None,
        };
        let fusion = (0..kinds.len())
            .map(|i| Fusion {
                folded: folded(i).is_some(),
                epilogue: (i + 1 < kinds.len()).then(|| folded(i + 1)).flatten(),
                input_act: match (i.checked_sub(1).map(|j| kinds[j]), kinds[i]) {
                    (Some(LayerKind::Act(act)), kind) if has_params(kind) => Some(act),
                    _ => None,
                },
            })
            .collect();
        Stack {
            layers,
            dims,
            fusion,
        }
    }

    pub fn input(&self) -> Dims {
        self.dims[0]
    }

    pub fn output(&self) -> Dims {
        *self.dims.last().expect("dims is never empty")
    }

    /// Multiply-accumulates of one example's forward pass (for `bench`'s FLOP count).
    pub fn forward_macs(&self) -> u64 {
        let mut macs = 0u64;
        for (i, l) in self.layers.iter().enumerate() {
            let (din, dout) = (self.dims[i], self.dims[i + 1]);
            macs += match l.kind {
                LayerKind::Linear {
                    in_features,
                    out_features,
                } => (in_features * out_features) as u64,
                LayerKind::Conv2d { c_in, kernel, .. } => {
                    (dout.numel() * c_in * kernel * kernel) as u64
                }
                LayerKind::ConvTranspose2d { c_out, kernel, .. } => {
                    (din.numel() * c_out * kernel * kernel) as u64
                }
                _ => 0,
            };
        }
        macs
    }
}

/// Layers with parameters: each applies a following activation in its own epilogue, and folds
/// a preceding one's derivative into its input gradient.
fn has_params(kind: LayerKind) -> bool {
    matches!(
        kind,
        LayerKind::Linear { .. }
            | LayerKind::Conv2d { .. }
            | LayerKind::ConvTranspose2d { .. }
            | LayerKind::BatchNorm2d { .. }
    )
}

impl Stack {
    /// The stack's final activation: a caller whose own input-gradient product produces the
    /// stack output's gradient can fold it in ([`Backward::BeforeOutputActivation`]).
    pub fn output_activation(&self) -> Option<Activation> {
        match self.layers.last().map(|l| l.kind) {
            Some(LayerKind::Act(act)) => Some(act),
            _ => None,
        }
    }

    /// Scratch values the backward pass reserves in its [`GradPartials`] at batch size `n`.
    pub fn backward_partials(&self, n: usize) -> usize {
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| match l.kind {
                LayerKind::Linear { .. } => linear::backward_partials(l.linear_shape(n)),
                LayerKind::Conv2d { .. } => {
                    conv2d::backward_partials(l.conv_shape(n, self.dims[i]))
                }
                LayerKind::ConvTranspose2d { .. } => {
                    conv_transpose2d::backward_partials(l.conv_t_shape(n, self.dims[i]))
                }
                LayerKind::BatchNorm2d { .. } => {
                    batchnorm::backward_partials(batch_norm_shape(n, self.dims[i]))
                }
                _ => 0,
            })
            .sum()
    }
}

/// Which backward pass a [`StackBuffers`] is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backward {
    /// None: inference, no gradient tensors.
    None,
    /// From the gradient of the stack output.
    FromOutput,
    /// From the gradient of the input of the stack's final activation: the caller's own
    /// input-gradient product applies that activation's derivative
    /// ([`Stack::output_activation`]), so the stack skips it.
    BeforeOutputActivation,
}

/// A [`Stack`] on the GPU for batch size `n`: the output of each layer, the gradient of each
/// layer output (when built for training), all stored as one [`Elem`], and the pooling argmax
/// indices. A layer whose activation is fused shares its output tensor with that activation
/// (the pre-activation is never stored), and the gradient of an activation output whose
/// backward pass is fused is never stored either.
pub struct StackBuffers {
    n: usize,
    tensors: Vec<Tensor>,
    /// Index into `tensors` of the output of layer i: `[n, dims[i+1]]`.
    outs: Vec<usize>,
    /// Index into `tensors` of the gradient w.r.t. the output of layer i, for i < len − 1 (the
    /// last one is the caller's); None where no pass writes it.
    grads: Vec<Option<usize>>,
    argmax: Vec<Option<Tensor>>,
    /// Batch norm layers of a training stack: the batch mean and inverse deviation the backward
    /// pass reads (`batchnorm::saved_len`).
    saved: Vec<Option<Tensor>>,
    backward: Backward,
}

impl StackBuffers {
    pub fn new(
        gpu: &Gpu,
        stack: &Stack,
        n: usize,
        elem: Elem,
        backward: Backward,
        label: &str,
    ) -> Result<Self> {
        debug_assert!(
            backward != Backward::BeforeOutputActivation || stack.output_activation().is_some()
        );
        let len = stack.layers.len();
        let mut tensors = Vec::new();
        let mut outs = vec![0; len];
        let mut grads = vec![None; len];
        let mut argmax = Vec::new();
        // Outputs from the last layer back, so a fused layer can take its activation's tensor.
        for i in (0..len).rev() {
            let layer = &stack.layers[i];
            let shape = stack.dims[i + 1].batch(n);
            if i + 1 < len && stack.fusion[i + 1].folded {
                outs[i] = outs[i + 1];
            } else {
                outs[i] = tensors.len();
                tensors.push(Tensor::zeros_as(
                    gpu,
                    &shape,
                    elem,
                    &format!("{label} {}", layer.name),
                )?);
            }
            // The gradient of layer i's output is written by layer i + 1's backward pass unless
            // that fuses an activation, and it is the caller's for the final activation's input.
            let written = match backward {
                Backward::None => false,
                Backward::FromOutput => i + 1 < len,
                Backward::BeforeOutputActivation => i + 2 < len,
            } && stack
                .fusion
                .get(i + 1)
                .is_none_or(|f| f.input_act.is_none());
            if written {
                grads[i] = Some(tensors.len());
                tensors.push(Tensor::zeros_as(
                    gpu,
                    &shape,
                    elem,
                    &format!("{label} d{}", layer.name),
                )?);
            }
        }
        let mut saved = Vec::new();
        for (i, layer) in stack.layers.iter().enumerate() {
            argmax.push(match layer.kind {
                LayerKind::MaxPool2x2 { .. } => Some(Tensor::zeros(
                    gpu,
                    &stack.dims[i + 1].batch(n),
                    &format!("{label} {} argmax", layer.name),
                )?),
                _ => None,
            });
            saved.push(match layer.kind {
                LayerKind::BatchNorm2d { .. } if backward != Backward::None => Some(Tensor::zeros(
                    gpu,
                    &[batchnorm::saved_len(batch_norm_shape(n, stack.dims[i]))],
                    &format!("{label} {} batch statistics", layer.name),
                )?),
                _ => None,
            });
        }
        Ok(StackBuffers {
            n,
            tensors,
            outs,
            grads,
            argmax,
            saved,
            backward,
        })
    }

    fn out(&self, i: usize) -> &Tensor {
        &self.tensors[self.outs[i]]
    }

    fn grad(&self, i: usize) -> &Tensor {
        &self.tensors[self.grads[i].expect("a gradient tensor for every unfused layer output")]
    }

    pub fn output(&self) -> &Tensor {
        self.out(self.outs.len() - 1)
    }

    /// The stack's final activation when the caller applies its backward pass
    /// ([`Backward::BeforeOutputActivation`]).
    pub fn caller_activation(&self, stack: &Stack) -> Option<Activation> {
        match self.backward {
            Backward::BeforeOutputActivation => stack.output_activation(),
            _ => None,
        }
    }

    /// The gradient w.r.t. layer `i`'s output as the backward pass leaves it (`dout` for the
    /// last layer; for a layer with a fused activation, w.r.t. its pre-activation).
    pub fn output_grad<'a>(&'a self, i: usize, dout: &'a Tensor) -> &'a Tensor {
        if i + 1 == self.outs.len() {
            dout
        } else {
            self.grad(i)
        }
    }

    /// Records the forward pass of `stack` from `input` into `plan`. Batch norm layers use the
    /// batch's statistics and update the running ones in `buffers` when the stack is built for
    /// training, and the running ones otherwise.
    pub fn forward(
        &self,
        plan: &mut Plan,
        gpu: &Gpu,
        stack: &Stack,
        input: &Tensor,
        params: &wgpu::Buffer,
        buffers: &wgpu::Buffer,
    ) -> Result<()> {
        let n = self.n;
        for (i, layer) in stack.layers.iter().enumerate() {
            if stack.fusion[i].folded {
                continue;
            }
            let act = stack.fusion[i].epilogue;
            let x = if i == 0 { input } else { self.out(i - 1) };
            let y = self.out(i);
            let d = stack.dims[i];
            let at = layer.params;
            match layer.kind {
                LayerKind::Linear { .. } => linear::forward(
                    plan,
                    gpu,
                    y,
                    x,
                    params,
                    at.expect("linear has params"),
                    layer.linear_shape(n),
                    act,
                ),
                LayerKind::Conv2d { .. } => conv2d::forward(
                    plan,
                    gpu,
                    y,
                    x,
                    params,
                    at.expect("conv has params"),
                    layer.conv_shape(n, d),
                    act,
                ),
                LayerKind::ConvTranspose2d { .. } => conv_transpose2d::forward(
                    plan,
                    gpu,
                    y,
                    x,
                    params,
                    at.expect("conv has params"),
                    layer.conv_t_shape(n, d),
                    act,
                ),
                LayerKind::BatchNorm2d { c } => {
                    let running = batchnorm::Running {
                        buffer: buffers,
                        mean: layer.running.expect("batch norm has running statistics"),
                        var: layer.running.expect("batch norm has running statistics") + c,
                    };
                    let at = at.expect("batch norm has params");
                    let shape = batch_norm_shape(n, d);
                    match &self.saved[i] {
                        Some(saved) => batchnorm::forward_train(
                            plan, gpu, y, saved, running, x, params, at, shape, act,
                        )?,
                        None => batchnorm::forward_eval(
                            plan, gpu, y, running, x, params, at, shape, act,
                        ),
                    }
                }
                LayerKind::Act(act) => activation::forward(plan, gpu, y, x, act),
                LayerKind::MaxPool2x2 { padding } => pool::max_pool2x2_forward(
                    plan,
                    gpu,
                    y,
                    self.argmax[i].as_ref().expect("pool has argmax"),
                    x,
                    pool_shape(n, d, padding),
                ),
                LayerKind::Upsample2x => {
                    pool::upsample2x_forward(plan, gpu, y, x, pool_shape(n, d, 0))
                }
                LayerKind::Unflatten(_) => unreachable!("stacks hold no unflatten layers"),
            }
        }
        Ok(())
    }

    /// Records the backward pass: `dout` is the gradient of the stack output, or, when built
    /// with [`Backward::BeforeOutputActivation`], of the input of the stack's final activation.
    /// Parameter gradients go to `partials`; the gradient of the stack input to `din` when given.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        plan: &mut Plan,
        gpu: &Gpu,
        stack: &Stack,
        din: Option<&Tensor>,
        partials: &mut GradPartials,
        dout: &Tensor,
        input: &Tensor,
        params: &wgpu::Buffer,
    ) {
        let n = self.n;
        let last = stack.layers.len() - 1;
        let top = match self.backward {
            Backward::BeforeOutputActivation => last - 1,
            _ => last,
        };
        let mut i = top;
        loop {
            let layer = &stack.layers[i];
            let x = if i == 0 { input } else { self.out(i - 1) };
            let dy = if i == top { dout } else { self.grad(i) };
            let fused = stack.fusion[i].input_act;
            // Where the input gradient goes: past a fused activation, to that activation's input.
            let target = if fused.is_some() { i - 1 } else { i };
            let dx = if target == 0 {
                din
            } else {
                Some(self.grad(target - 1))
            };
            let d = stack.dims[i];
            let at = layer.params;
            match layer.kind {
                LayerKind::Linear { .. } => linear::backward(
                    plan,
                    gpu,
                    dx.map(|dx| InputGrad { dx, act: fused }),
                    partials,
                    dy,
                    x,
                    params,
                    at.expect("linear has params"),
                    layer.linear_shape(n),
                ),
                LayerKind::Conv2d { .. } => conv2d::backward(
                    plan,
                    gpu,
                    dx.map(|dx| InputGrad { dx, act: fused }),
                    partials,
                    dy,
                    x,
                    params,
                    at.expect("conv has params"),
                    layer.conv_shape(n, d),
                ),
                LayerKind::ConvTranspose2d { .. } => conv_transpose2d::backward(
                    plan,
                    gpu,
                    dx.map(|dx| InputGrad { dx, act: fused }),
                    partials,
                    dy,
                    x,
                    params,
                    at.expect("conv has params"),
                    layer.conv_t_shape(n, d),
                ),
                // A following activation's derivative was applied by the layer after it (or by
                // the caller), so `dy` is the gradient of the normalised output itself.
                LayerKind::BatchNorm2d { .. } => batchnorm::backward(
                    plan,
                    gpu,
                    dx.map(|dx| InputGrad { dx, act: fused }),
                    partials,
                    dy,
                    self.out(i),
                    x,
                    self.saved[i]
                        .as_ref()
                        .expect("a training stack keeps batch statistics"),
                    params,
                    at.expect("batch norm has params"),
                    batch_norm_shape(n, d),
                    None,
                ),
                // Parameter-free layers only matter when someone needs their input gradient.
                LayerKind::Act(act) => {
                    if let Some(dx) = dx {
                        activation::backward(plan, gpu, dx, dy, self.out(i), act)
                    }
                }
                LayerKind::MaxPool2x2 { padding } => {
                    if let Some(dx) = dx {
                        pool::max_pool2x2_backward(
                            plan,
                            gpu,
                            dx,
                            dy,
                            self.argmax[i].as_ref().expect("pool has argmax"),
                            pool_shape(n, d, padding),
                        )
                    }
                }
                LayerKind::Upsample2x => {
                    if let Some(dx) = dx {
                        pool::upsample2x_backward(plan, gpu, dx, dy, pool_shape(n, d, 0))
                    }
                }
                LayerKind::Unflatten(_) => unreachable!("stacks hold no unflatten layers"),
            }
            if target == 0 {
                break;
            }
            i = target - 1;
        }
    }
}
