//! The one flat parameter buffer's table (llm.c style: Adam is then one dispatch over
//! everything) and the flat buffer of running statistics: PyTorch `state_dict` names, shapes,
//! offsets and how PyTorch initialises each tensor.

use crate::host_rng::SplitMix64;

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

/// The tables of offsets into the one flat parameter buffer and into the flat buffer of
/// running statistics (batch norm's `running_mean` and `running_var`: state, not trained).
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
