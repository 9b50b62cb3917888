//! A JSON object read field by field, as diffusers' config files are read: an absent or `null`
//! key takes its default, and a value of the wrong type is an error that names the key. Shared
//! by `config.json` (model::diffusers) and `scheduler_config.json` (diffusion::scheduler_config).

use serde_json::{Map, Value};

/// A field whose value cannot be used.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum FieldError {
    /// A value of the wrong JSON type.
    #[error("{key} must be {expected}, not {found}")]
    WrongType { key: String, expected: &'static str, found: String },
    /// A whole number beyond what this machine's `usize` holds (the tab's wasm is 32-bit).
    #[error("{key} = {value} is too large")]
    TooLarge { key: String, value: u64 },
}

/// The object's fields.
pub struct Fields<'a> {
    pub map: &'a Map<String, Value>,
}

impl Fields<'_> {
    /// The value of `key`, unless absent or `null`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn wrong(key: &str, expected: &'static str, found: &Value) -> FieldError {
        FieldError::WrongType { key: key.to_string(), expected, found: found.to_string() }
    }

    pub fn usize(&self, key: &str, default: usize) -> Result<usize, FieldError> {
        self.get(key).map_or(Ok(default), |v| Self::usize_value(key, v))
    }

    pub fn f64(&self, key: &str, default: f64) -> Result<f64, FieldError> {
        self.get(key).map_or(Ok(default), |v| v.as_f64().ok_or_else(|| Self::wrong(key, "a number", v)))
    }

    pub fn bool(&self, key: &str, default: bool) -> Result<bool, FieldError> {
        self.get(key).map_or(Ok(default), |v| v.as_bool().ok_or_else(|| Self::wrong(key, "true or false", v)))
    }

    /// `v` as a whole number named `key` (an element of a list has its own name).
    pub fn usize_value(key: &str, v: &Value) -> Result<usize, FieldError> {
        let n = v.as_u64().ok_or_else(|| Self::wrong(key, "a whole number", v))?;
        // A 32-bit usize (the tab's wasm) must not wrap a huge value into a small one.
        usize::try_from(n).map_err(|_| FieldError::TooLarge { key: key.to_string(), value: n })
    }
}
