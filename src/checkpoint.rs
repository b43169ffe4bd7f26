//! Model checkpoints as safetensors files: named little-endian tensors (f32, or i64 for counters
//! such as batch norm's `num_batches_tracked`) plus string metadata in the `__metadata__` header
//! entry, loadable by PyTorch (`safetensors.torch.load_file` then `load_state_dict`). Writes are
//! atomic; loads check dtype and finiteness.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use safetensors::{Dtype, SafeTensors, View};

use crate::bail;
use crate::error::{Error, Result};
use crate::files::{self, write_atomic};

/// One tensor: row-major `data` of `shape` (an empty shape is a scalar holding one value).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    /// How the file stores it; an [`Stored::I64`] tensor's values are whole numbers.
    pub stored: Stored,
}

/// A tensor's dtype in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    F32,
    /// Counters (PyTorch's `num_batches_tracked`); exact up to 2²⁴ as the f32 `data` holds them.
    I64,
}

impl NamedTensor {
    /// An f32 tensor.
    pub fn f32(name: impl Into<String>, shape: &[usize], data: Vec<f32>) -> NamedTensor {
        NamedTensor {
            name: name.into(),
            shape: shape.to_vec(),
            data,
            stored: Stored::F32,
        }
    }
}

/// Tensors and free-form string metadata (model kind, epoch, ...). [`load`] returns the tensors
/// in file order, which is sorted by name (safetensors writes them so).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Checkpoint {
    pub tensors: Vec<NamedTensor>,
    pub metadata: BTreeMap<String, String>,
}

impl Checkpoint {
    pub fn get(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }
}

/// Borrowed tensor handed to the safetensors serializer.
struct TensorView<'a>(&'a NamedTensor);

impl View for TensorView<'_> {
    fn dtype(&self) -> Dtype {
        match self.0.stored {
            Stored::F32 => Dtype::F32,
            Stored::I64 => Dtype::I64,
        }
    }

    fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        let values = self.0.data.iter();
        Cow::Owned(match self.0.stored {
            Stored::F32 => values.flat_map(|v| v.to_le_bytes()).collect(),
            Stored::I64 => values.flat_map(|&v| (v as i64).to_le_bytes()).collect(),
        })
    }

    fn data_len(&self) -> usize {
        self.0.data.len()
            * match self.0.stored {
                Stored::F32 => 4,
                Stored::I64 => 8,
            }
    }
}

/// Writes `ckpt` to `path` atomically (an existing file is replaced only by a complete new one).
/// Refuses empty or duplicate names, data whose length does not match the shape, and NaN or
/// infinite values, so a diverged run never overwrites a good checkpoint with garbage.
pub fn save(path: &Path, ckpt: &Checkpoint) -> Result<()> {
    write_atomic(path, &to_bytes(ckpt, &path.display())?)
}

/// The safetensors file [`save`] writes, as bytes (a web page's download); `file` names it in
/// errors.
pub fn to_bytes(ckpt: &Checkpoint, file: &dyn std::fmt::Display) -> Result<Vec<u8>> {
    let mut seen = HashSet::new();
    for t in &ckpt.tensors {
        if t.name.is_empty() || t.name == "__metadata__" {
            bail!("{file}: cannot save a tensor named {:?}", t.name);
        }
        if !seen.insert(t.name.as_str()) {
            bail!("{file}: cannot save: two tensors named {:?}", t.name);
        }
        let expected = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if expected != Some(t.data.len()) {
            bail!(
                "{file}: cannot save tensor {:?}: shape {:?} does not match its {} values",
                t.name,
                t.shape,
                t.data.len()
            );
        }
        if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
            bail!(
                "{file}: cannot save tensor {:?}: value {} at index {i}",
                t.name,
                t.data[i]
            );
        }
    }
    let metadata: HashMap<String, String> = ckpt
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let views = ckpt
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), TensorView(t)));
    safetensors::serialize(views, (!metadata.is_empty()).then_some(metadata))
        .map_err(|e| Error::msg(format!("{file}: cannot serialize checkpoint: {e}")))
}

/// Reads a checkpoint written by [`save`] (or any safetensors file of F32 tensors). Errors name
/// the file: missing, a directory (pointing at a `model.safetensors` inside it), not safetensors
/// or corrupt, a dtype other than F32, NaN or infinite values (naming the tensor).
pub fn load(path: &Path) -> Result<Checkpoint> {
    let file = path.display();
    let inside = path.join("model.safetensors");
    let what = if inside.is_file() {
        format!("a safetensors checkpoint file such as {}", inside.display())
    } else {
        "a safetensors checkpoint file".to_string()
    };
    let bytes = files::read(path, &what)?;
    from_bytes(&bytes, &file)
}

/// A checkpoint from the bytes of a safetensors file, checked as [`load`] checks a file; `file`
/// names it in errors.
pub fn from_bytes(bytes: &[u8], file: &dyn std::fmt::Display) -> Result<Checkpoint> {
    if bytes.is_empty() {
        bail!("{file}: empty file, not a safetensors checkpoint");
    }
    let (header_len, header) = SafeTensors::read_metadata(bytes).map_err(|e| {
        Error::msg(format!(
            "{file}: not a safetensors checkpoint or corrupt: {e}"
        ))
    })?;
    // read_metadata checked that the offsets tile the data exactly up to the end of the file.
    let body = bytes.get(8 + header_len..).unwrap_or_default();
    let metadata: BTreeMap<String, String> = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let mut tensors = Vec::new();
    for name in header.offset_keys() {
        let Some(info) = header.info(&name) else {
            bail!("{file}: corrupt safetensors header: tensor {name:?} has no entry");
        };
        let (start, end) = info.data_offsets;
        let Some(raw) = body.get(start..end) else {
            bail!("{file}: corrupt safetensors header: tensor {name:?} lies outside the file");
        };
        let (data, stored): (Vec<f32>, Stored) = match info.dtype {
            Dtype::F32 => (
                raw.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Stored::F32,
            ),
            Dtype::I64 => (
                raw.chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                    .collect(),
                Stored::I64,
            ),
            other => bail!(
                "{file}: tensor {name:?} has dtype {other}, only F32 (and I64 counters) are supported"
            ),
        };
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            bail!(
                "{file}: tensor {name:?} holds {} at index {i} (a diverged run?)",
                data[i]
            );
        }
        tensors.push(NamedTensor {
            name,
            shape: info.shape.clone(),
            data,
            stored,
        });
    }
    Ok(Checkpoint { tensors, metadata })
}
