//! One Rust launcher module per WGSL kernel family in `shaders/`. Each launcher records
//! dispatches into a [`Plan`](crate::gpu::Plan); arguments are ordered outputs, inputs, sizes
//! (llm.c style), and every launcher has a CPU twin of the same name in
//! [`reference`](crate::reference). [`ENTRY_POINTS`] lists every compute entry point, for
//! [`Gpu::prepare`](crate::gpu::Gpu::prepare) to compile them all at once at start-up.

pub mod activation;
pub mod adam;
pub mod batchnorm;
pub mod checks;
pub mod condition;
pub mod conv2d;
pub mod conv_transpose2d;
pub mod data;
pub mod grads;
pub mod iwae;
pub mod linear;
pub mod loss;
pub mod pool;
pub mod reduce;
pub mod residual;
pub mod step;
pub mod upsample;
pub mod vae;

use crate::gpu::{Binding, Elem, Shader, Tensor};
use crate::shapes::Activation;

/// Where a layer's backward pass writes the gradient of its input: `dx`, or, when the layer
/// input is the output of activation `act`, the gradient of that activation's input (its
/// backward pass fused into the layer's input-gradient product, computed from the layer input).
#[derive(Clone, Copy)]
pub struct InputGrad<'a> {
    pub dx: &'a Tensor,
    pub act: Option<Activation>,
}

/// How a noise kernel (the VAE's ε, the denoising input noise) keys the counter-based RNG
/// ([`counter_rng`](crate::counter_rng)) for element `col` of batch row `row`, rows being
/// `width` long (the latent size, the pixels of an image), given the step counter `state`
/// ([`step`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoiseKey {
    /// Training: by step and place in the batch, `(state[0], row·width + col)`: every step
    /// draws fresh noise.
    Step,
    /// Evaluation and inference: by image, `(state[1]·batch_size + row, col)`, where
    /// `state[1]·batch_size + row` is the image's index in the split (batches visit it in file
    /// order): an image gets the same noise whatever the batch size. `batch_size` is the full
    /// batch, also for a tail batch's plan.
    Image { batch_size: usize },
}

impl NoiseKey {
    /// The RNG's `(step, index)` for element `col` of row `row`, rows `width` long.
    pub fn counter(self, state: &[u32], row: usize, width: usize, col: usize) -> (u32, u32) {
        match self {
            NoiseKey::Step => (state[0], (row * width + col) as u32),
            NoiseKey::Image { batch_size } => (
                state[1]
                    .wrapping_mul(batch_size as u32)
                    .wrapping_add(row as u32),
                col as u32,
            ),
        }
    }

    /// The shaders' `noise_key` word: 0 keys by step, B > 0 by image with batch size B.
    pub(crate) fn word(self) -> u32 {
        match self {
            NoiseKey::Step => 0,
            NoiseKey::Image { batch_size } => {
                assert!(batch_size > 0, "NoiseKey::Image needs a batch size");
                batch_size as u32
            }
        }
    }
}

/// A tensor held as `splits` slices `[splits, ..shape]` that its consumer adds up: the split-K
/// partials of a product whose summing pass is fused into the kernel that reads it (the VAE
/// latent layer reads the head's and the decoder's partials this way). A plain tensor is one slice.
/// Split-K slices are f32 (sums still to be added up); a whole tensor keeps its storage.
pub struct SplitTensor {
    pub buffer: wgpu::Buffer,
    pub elem: Elem,
    pub splits: usize,
    pub shape: Vec<usize>,
}

impl SplitTensor {
    /// `t` as a single slice.
    pub fn whole(t: &Tensor) -> SplitTensor {
        SplitTensor {
            buffer: t.buffer.clone(),
            elem: t.elem,
            splits: 1,
            shape: t.shape.clone(),
        }
    }

    /// The slices as a kernel binding.
    pub fn bind(&self) -> Binding<'_> {
        Binding {
            buffer: &self.buffer,
            elem: self.elem,
        }
    }

    /// Elements of one slice.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// What a GEMM epilogue does besides adding the bias: apply the layer's activation (forward),
/// or multiply by the derivative of the activation whose output `y` has the output's layout
/// (an input gradient with that activation's backward pass fused).
#[derive(Clone, Copy)]
pub(crate) enum Epilogue<'a> {
    Act(Option<Activation>),
    ActGrad(Activation, &'a Tensor),
}

impl<'a> Epilogue<'a> {
    /// Input-gradient epilogue for `dx`: the derivative of `dx.act` at the layer input `x`.
    pub(crate) fn for_input(dx: &InputGrad, x: &'a Tensor) -> Epilogue<'a> {
        match dx.act {
            Some(act) => Epilogue::ActGrad(act, x),
            None => Epilogue::Act(None),
        }
    }

    /// `(act, slope, dact)` as the shaders' `Params` take them, and the tensor to bind as
    /// `act_y` (None: the shader does not read it, bind any).
    pub(crate) fn fields(&self) -> ((u32, f32, u32), Option<&'a Tensor>) {
        match *self {
            Epilogue::Act(act) => {
                let (code, slope) = Activation::code(act);
                ((code, slope, 0), None)
            }
            Epilogue::ActGrad(act, y) => {
                let (code, slope) = Activation::code(Some(act));
                ((0, slope, code), Some(y))
            }
        }
    }
}

impl<'a> InputGrad<'a> {
    /// The plain input gradient, no activation fused.
    pub fn plain(dx: &'a Tensor) -> InputGrad<'a> {
        InputGrad { dx, act: None }
    }
}

/// Every shader and each of its `@compute` entry points, compiled all at once by
/// [`Gpu::prepare`](crate::gpu::Gpu::prepare) before plans are recorded. A test parses
/// `shaders/*.wgsl` so that this list cannot go stale, and the naga test validates every shader
/// it names.
pub const ENTRY_POINTS: &[(&Shader, &[&str])] = &[
    (&activation::SHADER, &["forward", "backward"]),
    (&adam::SHADER, &["adam_step"]),
    (
        &batchnorm::SHADER,
        &[
            "stats_partials",
            "normalize_train",
            "normalize_eval",
            "backward_partials",
            "backward_dx",
        ],
    ),
    (
        &condition::SHADER,
        &["gather_labels", "concat_onehot", "take_columns"],
    ),
    (&conv2d::SHADER, &["gemm"]),
    (&data::SHADER, &["gather", "add_noise"]),
    (&grads::SHADER, &["finish"]),
    (&iwae::SHADER, &["draw", "replicate", "accumulate"]),
    (&linear::SHADER, &["gemm", "sum_splits"]),
    (&loss::SHADER, &["loss_and_grad", "loss_alone"]),
    (
        &pool::SHADER,
        &["max_pool_forward", "max_pool_backward", "avg_pool_forward"],
    ),
    (&reduce::SHADER, &["channel_partials", "sum_into"]),
    (&residual::SHADER, &["add_act", "add_grads"]),
    (&step::SHADER, &["advance"]),
    (&upsample::SHADER, &["nearest_forward", "nearest_backward"]),
    (&vae::SHADER, &["forward", "backward"]),
];

#[cfg(test)]
mod tests {
    use super::ENTRY_POINTS;
    use std::collections::BTreeSet;

    /// WGSL without its `//` and (nested) `/* */` comments.
    fn strip_comments(src: &str) -> String {
        let mut out = String::new();
        let mut rest = src;
        let mut depth = 0usize;
        while !rest.is_empty() {
            if rest.starts_with("/*") {
                depth += 1;
                rest = &rest[2..];
            } else if depth > 0 && rest.starts_with("*/") {
                depth -= 1;
                rest = &rest[2..];
            } else if depth == 0 && rest.starts_with("//") {
                rest = &rest[rest.find('\n').unwrap_or(rest.len())..];
            } else {
                let c = rest.chars().next().expect("not empty");
                if depth == 0 {
                    out.push(c);
                }
                rest = &rest[c.len_utf8()..];
            }
        }
        out
    }

    /// Names of the functions marked `@compute`: the first `fn NAME` after each `@compute`.
    fn compute_entry_points(src: &str) -> Vec<String> {
        let src = strip_comments(src);
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        let mut names = Vec::new();
        for (at, _) in src.match_indices("@compute") {
            let after = &src[at..];
            let fn_at = after
                .match_indices("fn")
                .map(|(i, _)| i)
                .find(|&i| {
                    !after[..i].ends_with(ident)
                        && after[i + 2..].starts_with(|c: char| c.is_whitespace())
                })
                .unwrap_or_else(|| panic!("@compute without a fn after it"));
            let name: String = after[fn_at + 2..]
                .trim_start()
                .chars()
                .take_while(|&c| ident(c))
                .collect();
            names.push(name);
        }
        names
    }

    #[test]
    fn noise_keyed_by_image_names_the_image_whatever_the_batch() {
        use super::NoiseKey;
        assert_eq!(NoiseKey::Step.counter(&[7, 2, 0, 0], 3, 16, 5), (7, 53));
        // Image 10 as batch 10 of 1, row 3 of batch 1 of 7, row 2 of batch 2 of 4.
        for (batch_size, batch, row) in [(1, 10, 0), (7, 1, 3), (4, 2, 2)] {
            let key = NoiseKey::Image { batch_size };
            assert_eq!(key.counter(&[99, batch, 0, 0], row, 784, 5), (10, 5));
        }
    }

    #[test]
    fn entry_point_parser_reads_attributes_comments_and_layouts() {
        let src = "// @compute fn commented()\n/* @compute /* nested */ fn blocked() */\n\
                   @compute @workgroup_size(WG)\nfn first(@builtin(global_invocation_id) g: vec3<u32>) {}\n\
                   fn helper() {}\n@compute @workgroup_size(8, 8) fn second_2() {}";
        assert_eq!(compute_entry_points(src), ["first", "second_2"]);
    }

    #[test]
    fn entry_points_name_every_compute_function_of_every_shader() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
        let mut in_files = BTreeSet::new();
        for file in std::fs::read_dir(&dir).expect("shaders/ exists") {
            let path = file.expect("readable shaders/").path();
            if path.extension().is_none_or(|x| x != "wgsl") {
                continue;
            }
            let name = path
                .file_stem()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            let src = std::fs::read_to_string(&path).expect("readable shader");
            for entry in compute_entry_points(&src) {
                in_files.insert(format!("{name}::{entry}"));
            }
        }
        let mut listed = BTreeSet::new();
        for (shader, entries) in ENTRY_POINTS {
            for entry in *entries {
                assert!(
                    listed.insert(format!("{}::{entry}", shader.name)),
                    "{}::{entry} listed twice",
                    shader.name
                );
            }
        }
        assert!(in_files.len() > 10, "found only {in_files:?}");
        assert_eq!(
            in_files, listed,
            "@compute entry points in shaders/*.wgsl vs kernels::ENTRY_POINTS"
        );
    }
}
