//! Model checkpoints as safetensors files: named little-endian tensors (f32, or i64 for counters
//! such as batch norm's `num_batches_tracked`) plus string metadata in the `__metadata__` header
//! entry, loadable by PyTorch (`safetensors.torch.load_file` then `load_state_dict`). Writes are
//! atomic; loads check the header length and the declared tensor data against the file's length
//! before reading the rest, name a PyTorch pickle as one (with the line that converts it), and
//! check dtypes (integers only for counters; `import` converts F16, BF16 and F64) and finiteness.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
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

/// The most header a checkpoint may declare (PyTorch's state_dicts need a few kilobytes): a
/// larger length is a file of another kind, refused before it is read.
const MAX_HEADER_BYTES: u64 = 100 << 20;

/// How a load takes dtypes other than F32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Floats {
    /// Only F32 (and I64 counters): gpu-ae's own checkpoints.
    F32,
    /// F16, BF16 and F64 converted to f32: PyTorch state_dicts as people save them.
    Convert,
}

/// Reads a checkpoint written by [`save`] (or any safetensors file of F32 tensors). Errors name
/// the file: missing, a directory (pointing at a `model.safetensors` inside it), a PyTorch pickle
/// (saying how to convert it), not safetensors or corrupt (a header length larger than the file
/// or than 100 MiB, tensor data that does not fill the file: found from the header, before the
/// rest of the file is read), a dtype other than F32, integers other than `num_batches_tracked`
/// counters, NaN or infinite values (naming the tensor).
pub fn load(path: &Path) -> Result<Checkpoint> {
    load_as(path, Floats::F32).map(|(ckpt, _)| ckpt)
}

/// Reads a PyTorch state_dict as [`load`] does, but converts F16, BF16 and F64 tensors to f32;
/// also returns what was converted ("3 F16 tensors"), one entry per dtype, for a note.
pub fn load_state_dict(path: &Path) -> Result<(Checkpoint, Vec<String>)> {
    load_as(path, Floats::Convert)
}

fn load_as(path: &Path, floats: Floats) -> Result<(Checkpoint, Vec<String>)> {
    let file = path.display();
    let inside = path.join("model.safetensors");
    let what = if inside.is_file() {
        format!("a safetensors checkpoint file such as {}", inside.display())
    } else {
        "a safetensors checkpoint file".to_string()
    };
    let mut reader = files::open(path, &what)?;
    let len = reader.metadata().map_err(|e| Error::io(path, e))?.len();
    // The header length, and one byte more to tell a pickle from a header.
    let mut bytes = Vec::new();
    (&mut reader)
        .take(9)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    let header_len = check_start(&bytes, len, path)?;
    let header_end = 8 + header_len as usize;
    bytes.resize(header_end, 0);
    reader
        .read_exact(&mut bytes[9.min(header_end)..])
        .map_err(|e| Error::io(path, e))?;
    let data = declared_data(&bytes[8..], &file)?;
    let held = len - 8 - header_len;
    if data != held {
        bail!(
            "{file}: not a safetensors checkpoint or corrupt: its header declares {data} bytes of tensor data and the file holds {held}"
        );
    }
    bytes.reserve_exact(held as usize);
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    parse(&bytes, &file, floats)
}

/// Checks the first bytes of a safetensors file of `len` bytes (at least the first 9 when it has
/// them) and returns its header length: refuses an empty file, a PyTorch pickle (`torch.save`
/// writes a zip archive, or a bare pickle in its legacy format), and a header length larger than
/// the file or than [`MAX_HEADER_BYTES`].
fn check_start(start: &[u8], len: u64, path: &Path) -> Result<u64> {
    let file = path.display();
    if len == 0 {
        bail!("{file}: empty file, not a safetensors checkpoint");
    }
    // A safetensors header is JSON: its first byte, after the 8-byte length, is '{'.
    let zip = start.starts_with(b"PK\x03\x04");
    let pickle = start.len() > 1 && start[0] == 0x80 && (2..=5).contains(&start[1]);
    if (zip || pickle) && start.get(8) != Some(&b'{') {
        bail!("{}", pickle_message(path));
    }
    let Some(head) = start.get(..8) else {
        bail!(
            "{file}: not a safetensors checkpoint or corrupt: {len} bytes, shorter than the 8-byte header length"
        );
    };
    let header_len = u64::from_le_bytes(head.try_into().expect("8 bytes"));
    if header_len > MAX_HEADER_BYTES {
        bail!(
            "{file}: not a safetensors checkpoint or corrupt: its header length {header_len} is more than 100 MiB"
        );
    }
    if header_len > len - 8 {
        bail!(
            "{file}: not a safetensors checkpoint or corrupt: its header length {header_len} is more than the file's {len} bytes"
        );
    }
    Ok(header_len)
}

/// The error for a PyTorch pickle at `path`, with the line that converts it.
fn pickle_message(path: &Path) -> String {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let mut out = path.with_file_name(format!("{stem}.safetensors"));
    if out == path {
        out = path.with_file_name(format!("{stem}.converted.safetensors"));
    }
    format!(
        "{}: a PyTorch pickle file (torch.save), not safetensors; convert it with python3 -c \"import torch, safetensors.torch as s; sd = torch.load('{}', map_location='cpu'); sd = sd.get('state_dict', sd) if isinstance(sd, dict) else sd.state_dict(); s.save_file({{k: v.contiguous() for k, v in sd.items()}}, '{}')\" and use {} (`gpu-ae import` makes a state_dict a checkpoint)",
        path.display(),
        path.display(),
        out.display(),
        out.display()
    )
}

/// The bytes of tensor data a safetensors header (its JSON) declares: the largest end offset.
/// Errors name `file`: JSON that is no object, an entry without two offsets.
fn declared_data(header: &[u8], file: &dyn std::fmt::Display) -> Result<u64> {
    let corrupt = |why: String| {
        Error::msg(format!(
            "{file}: not a safetensors checkpoint or corrupt: {why}"
        ))
    };
    let json: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header)
        .map_err(|e| corrupt(format!("invalid JSON in header: {e}")))?;
    let mut end = 0;
    for (name, entry) in json.iter().filter(|(name, _)| *name != "__metadata__") {
        let offsets = entry["data_offsets"].as_array();
        let Some(last) = offsets
            .and_then(|o| o.get(1))
            .and_then(serde_json::Value::as_u64)
        else {
            return Err(corrupt(format!("tensor {name:?} has no data_offsets")));
        };
        end = end.max(last);
    }
    Ok(end)
}

/// A checkpoint from the bytes of a safetensors file, checked as [`load`] checks a file; `file`
/// names it in errors.
pub fn from_bytes(bytes: &[u8], file: &dyn std::fmt::Display) -> Result<Checkpoint> {
    check_start(bytes, bytes.len() as u64, Path::new(&file.to_string()))?;
    parse(bytes, file, Floats::F32).map(|(ckpt, _)| ckpt)
}

/// The tensors and metadata of a whole safetensors file whose start [`check_start`] passed, and
/// what was converted to f32 (see [`load_state_dict`]).
fn parse(
    bytes: &[u8],
    file: &dyn std::fmt::Display,
    floats: Floats,
) -> Result<(Checkpoint, Vec<String>)> {
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
    let mut converted: BTreeMap<String, usize> = BTreeMap::new();
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
            Dtype::F16 | Dtype::BF16 | Dtype::F64 if floats == Floats::Convert => {
                *converted.entry(info.dtype.to_string()).or_insert(0) += 1;
                (to_f32(raw, info.dtype), Stored::F32)
            }
            other if floats == Floats::Convert && is_integer(other) => bail!(
                "{file}: tensor {name:?} holds integers ({other}); a state_dict's weights are floating point (only *.num_batches_tracked counters may be integers)"
            ),
            other => bail!(
                "{file}: tensor {name:?} has dtype {other}, only F32 (and I64 counters) are supported"
            ),
        };
        if stored == Stored::I64 && !is_counter(&name) {
            bail!(
                "{file}: tensor {name:?} holds integers (I64); only *.num_batches_tracked counters may be integers, weights are floating point"
            );
        }
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
    let converted = converted
        .into_iter()
        .map(|(dtype, n)| match n {
            1 => format!("1 {dtype} tensor"),
            n => format!("{n} {dtype} tensors"),
        })
        .collect();
    Ok((Checkpoint { tensors, metadata }, converted))
}

/// Whether a tensor of this name may hold integers: batch norm's step counter.
fn is_counter(name: &str) -> bool {
    name == "num_batches_tracked" || name.ends_with(".num_batches_tracked")
}

fn is_integer(dtype: Dtype) -> bool {
    matches!(
        dtype,
        Dtype::BOOL
            | Dtype::U8
            | Dtype::I8
            | Dtype::I16
            | Dtype::U16
            | Dtype::I32
            | Dtype::U32
            | Dtype::I64
            | Dtype::U64
    )
}

/// Little-endian F16, BF16 or F64 values as f32 (F64 values beyond f32's range become infinite,
/// which the finiteness check then names).
fn to_f32(raw: &[u8], dtype: Dtype) -> Vec<f32> {
    match dtype {
        Dtype::F16 => raw
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => raw
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => raw
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
    }
}
