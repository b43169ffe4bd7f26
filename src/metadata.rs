//! The codec of checkpoint metadata (safetensors' `__metadata__`, a map of strings, and a
//! run's `run.json`, the same map as JSON): a typed record with serde's derive becomes one flat
//! map of strings and back. A record declares its keys once, with its fields; these `with`
//! helpers say how a field's value is written: [`text`] (`Display`/`FromStr`: numbers, paths),
//! [`choice`] (a flag's value, by clap's own name), [`path`], [`list`] (`32,64,128`, as `--widths` takes
//! them) and [`json`] (a JSON value in the string, for lists of names). The records themselves
//! live with what they describe: [`crate::model::record`] (the model) and
//! [`crate::run::settings`] (a training run's settings and progress).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// A record written as a flat map of strings (see [`write`]).
pub type Metadata = BTreeMap<String, String>;

/// `record` as a flat map of strings: its fields (flattened ones included) by their keys,
/// each value written by its `with` helper.
///
/// # Panics
/// When `record` is not a struct of string-valued fields: a defect of its declaration.
pub fn write<T: Serialize>(record: &T) -> Metadata {
    let value = serde_json::to_value(record).expect("a record serializes");
    let serde_json::Value::Object(fields) = value else {
        panic!("a metadata record is a struct");
    };
    fields
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            serde_json::Value::Null => None,
            other => panic!("metadata field {k} is not written as a string: {other}"),
        })
        .collect()
}

/// Reads a `T` from the flat map `metadata` (other keys are ignored); an error names `path`
/// and what is missing or bad: the key of a bad value (the helpers quote the value, which
/// names the key holding it), or the key that is missing.
pub fn read<T: DeserializeOwned>(metadata: &Metadata, path: &Path) -> Result<T> {
    let fields = metadata
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| {
        let what = e.to_string().replace("missing field", "no key");
        let keys: Vec<&str> = metadata
            .iter()
            .filter(|(_, v)| what.contains(&format!("bad value {v:?}")))
            .map(|(k, _)| k.as_str())
            .collect();
        match keys.is_empty() {
            true => Error::msg(format!("{}: {what} in metadata", path.display())),
            false => Error::msg(format!("{}: {}: {what}", path.display(), keys.join(" or "))),
        }
    })
}

/// `32,64,128`, as `--widths` takes them.
pub fn join_widths(widths: &[usize]) -> String {
    widths
        .iter()
        .map(|w| w.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// A value written with `Display` and read with `FromStr` (`#[serde(with = "metadata::text")]`).
pub mod text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use std::fmt::Display;
    use std::str::FromStr;

    pub fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, T: FromStr, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        text.trim().parse().map_err(|_| {
            D::Error::custom(format!(
                "bad value {text:?} (not a {})",
                super::type_name::<T>()
            ))
        })
    }
}

/// An optional [`text`] value: absent when `None`.
pub mod text_opt {
    use serde::{Deserializer, Serializer};
    use std::fmt::Display;
    use std::str::FromStr;

    pub fn serialize<T: Display, S: Serializer>(
        value: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: FromStr, D: Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error> {
        super::text::deserialize(d).map(Some)
    }
}

/// A flag's value by clap's own name for it (`leaky-relu`), so that the metadata and the
/// command line spell each choice once.
pub mod choice {
    use clap::ValueEnum;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<T: ValueEnum, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&name(value))
    }

    pub fn deserialize<'de, T: ValueEnum, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        T::from_str(&text, false).map_err(|_| {
            let names: Vec<String> = T::value_variants().iter().map(name).collect();
            D::Error::custom(format!("bad value {text:?} (one of {})", names.join(", ")))
        })
    }

    /// The name `--norm`, `--act` and the metadata use.
    pub fn name(v: &impl ValueEnum) -> String {
        v.to_possible_value()
            .expect("no skipped values")
            .get_name()
            .to_string()
    }
}

/// Counts written `32,64,128` (each at least 1).
pub mod list {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(value: &[usize], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::join_widths(value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<usize>, D::Error> {
        let text = String::deserialize(d)?;
        text.split(',')
            .map(|w| w.trim().parse().ok().filter(|&n: &usize| n >= 1))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| D::Error::custom(format!("bad value {text:?} (not counts like 32,64)")))
    }
}

/// A JSON value in the string (a conditional model's class names: `["cat","dog"]`).
pub mod json {
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error};

    pub fn serialize<T: Serialize, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(value).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text)
            .map_err(|e| D::Error::custom(format!("bad value {text:?} ({e})")))
    }
}

/// A path, written as it displays (`#[serde(with = "metadata::path")]`; `path::optional` for
/// an `Option<PathBuf>` that is absent when `None`).
pub mod path {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::path::PathBuf;

    pub fn serialize<S: Serializer>(value: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&value.display())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        String::deserialize(d).map(PathBuf::from)
    }

    pub mod optional {
        use serde::{Deserializer, Serializer};
        use std::path::PathBuf;

        pub fn serialize<S: Serializer>(value: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
            match value {
                Some(p) => super::serialize(p, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

/// `usize` for `usize`, `f32` for `f32`: what a [`text`] value must be.
fn type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}
