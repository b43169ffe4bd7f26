//! Layer geometry shared by the GPU kernels, the CPU reference and the layers: sizes of one
//! call, with the output sizes derived the way PyTorch derives them.

/// `y[N, out] = x[N, in] · W[out, in]ᵀ + b[out]` (PyTorch `nn.Linear`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearShape {
    pub n: usize,
    pub in_features: usize,
    pub out_features: usize,
}

/// `nn.Conv2d`: input `[N, C_in, H, W]`, weight `[C_out, C_in, KH, KW]`, output
/// `[N, C_out, out_h, out_w]`, symmetric zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dShape {
    pub n: usize,
    pub c_in: usize,
    pub h_in: usize,
    pub w_in: usize,
    pub c_out: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2dShape {
    pub fn out_h(&self) -> usize {
        (self.h_in + 2 * self.padding - self.kernel_h) / self.stride + 1
    }
    pub fn out_w(&self) -> usize {
        (self.w_in + 2 * self.padding - self.kernel_w) / self.stride + 1
    }
    pub fn weight_len(&self) -> usize {
        self.c_out * self.c_in * self.kernel_h * self.kernel_w
    }
}

/// `nn.ConvTranspose2d`: input `[N, C_in, H, W]`, weight `[C_in, C_out, KH, KW]`, output
/// `[N, C_out, out_h, out_w]` with `out = (in − 1)·stride − 2·padding + kernel + output_padding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvTranspose2dShape {
    pub n: usize,
    pub c_in: usize,
    pub h_in: usize,
    pub w_in: usize,
    pub c_out: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride: usize,
    pub padding: usize,
    pub output_padding: usize,
}

impl ConvTranspose2dShape {
    pub fn out_h(&self) -> usize {
        (self.h_in - 1) * self.stride + self.kernel_h + self.output_padding - 2 * self.padding
    }
    pub fn out_w(&self) -> usize {
        (self.w_in - 1) * self.stride + self.kernel_w + self.output_padding - 2 * self.padding
    }
    pub fn weight_len(&self) -> usize {
        self.c_in * self.c_out * self.kernel_h * self.kernel_w
    }
}

/// 2×2 pooling with stride 2 over `[N, C, H, W]`; `padding` pads every side (PyTorch
/// `MaxPool2d(2, padding=p)`: padded cells never win the max).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2dShape {
    pub n: usize,
    pub c: usize,
    pub h_in: usize,
    pub w_in: usize,
    pub padding: usize,
}

impl Pool2dShape {
    pub fn out_h(&self) -> usize {
        (self.h_in + 2 * self.padding - 2) / 2 + 1
    }
    pub fn out_w(&self) -> usize {
        (self.w_in + 2 * self.padding - 2) / 2 + 1
    }
}

/// `nn.BatchNorm2d(c)` over `[N, C, H, W]`: statistics per channel over `N·H·W` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchNorm2dShape {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl BatchNorm2dShape {
    /// Values per channel, `N·H·W`: the `n` of the statistics.
    pub fn count(&self) -> usize {
        self.n * self.h * self.w
    }
    pub fn numel(&self) -> usize {
        self.n * self.c * self.h * self.w
    }
}

/// Where a layer's weight and bias start in the flat parameter buffer (and, at the same
/// offsets, in the gradient and Adam-moment buffers), in f32 elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamOffsets {
    pub weight: usize,
    pub bias: usize,
}

/// Element-wise activation functions (PyTorch semantics; `LeakyRelu` carries its slope).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    Relu,
    LeakyRelu(f32),
    Sigmoid,
    Tanh,
}

impl Activation {
    /// `(code, slope)` as the shaders take them (`shaders/act.wgsl`); `None` is code 0.
    pub fn code(act: Option<Activation>) -> (u32, f32) {
        match act {
            None => (0, 0.0),
            Some(Activation::Relu) => (1, 0.0),
            Some(Activation::LeakyRelu(slope)) => (2, slope),
            Some(Activation::Sigmoid) => (3, 0.0),
            Some(Activation::Tanh) => (4, 0.0),
        }
    }
}

/// `nn.Upsample(size=(h_out, w_out), mode="nearest")` over `[N, C, H, W]`: output cell
/// `(i, j)` copies input cell `(⌊i·H/h_out⌋, ⌊j·W/w_out⌋)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpsampleShape {
    pub n: usize,
    pub c: usize,
    pub h_in: usize,
    pub w_in: usize,
    pub h_out: usize,
    pub w_out: usize,
}

impl UpsampleShape {
    pub fn input_len(&self) -> usize {
        self.n * self.c * self.h_in * self.w_in
    }
    pub fn output_len(&self) -> usize {
        self.n * self.c * self.h_out * self.w_out
    }
}
