//! Saving and loading trained networks as safetensors files.
//!
//! Format (version 1): a standard [safetensors](https://github.com/huggingface/safetensors)
//! file, so PyTorch, NumPy or any safetensors reader can open it. Tensors: one `F32` tensor
//! per parameter, named `"{layer index}.{parameter name}"` (`"0.weight"`, `"0.bias"`, ...),
//! convolution weights OIHW and dense weights `[outputs, inputs]`, little-endian. Header
//! metadata (all strings): `format` = `"convkit-cnn"`, `version` = `"1"`, `input_shape` = the
//! JSON array `[channels, height, width]`, `layers` = the JSON array of [`LayerSpec`]s. Loading
//! rebuilds the network from the metadata and requires exactly its parameters, with their
//! shapes; anything else is a [`CnnError::Model`] naming what is wrong.

use crate::layer::LayerSpec;
use crate::{CnnError, Sequential};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// The `format` metadata value.
pub const FORMAT: &str = "convkit-cnn";
/// The format version this crate writes and reads.
pub const VERSION: &str = "1";

impl Sequential {
    /// The network as safetensors bytes (see the module documentation).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CnnError> {
        let model_error = |reason: String| CnnError::Model {
            path: "<memory>".into(),
            reason,
        };
        let metadata = HashMap::from([
            ("format".to_owned(), FORMAT.to_owned()),
            ("version".to_owned(), VERSION.to_owned()),
            (
                "input_shape".to_owned(),
                serde_json::to_string(&self.input_shape())
                    .map_err(|e| model_error(e.to_string()))?,
            ),
            (
                "layers".to_owned(),
                serde_json::to_string(&self.specs()).map_err(|e| model_error(e.to_string()))?,
            ),
        ]);
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .named_parameters()
            .into_iter()
            .map(|(name, p)| {
                let data = p.values().iter().flat_map(|v| v.to_le_bytes()).collect();
                (name, data, p.shape().to_vec())
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(name, data, shape)| {
                TensorView::new(Dtype::F32, shape.clone(), data)
                    .map(|view| (name.as_str(), view))
                    .map_err(|e| model_error(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        safetensors::serialize(views, Some(metadata)).map_err(|e| model_error(e.to_string()))
    }

    /// Writes the network to `path`.
    pub fn save(&self, path: &Path) -> Result<(), CnnError> {
        let bytes = self.to_bytes()?;
        std::fs::write(path, bytes).map_err(|source| CnnError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Rebuilds a network from safetensors bytes written by [`Sequential::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Sequential, CnnError> {
        Sequential::from_bytes_named(bytes, "<memory>")
    }

    /// Reads a network saved by [`Sequential::save`].
    pub fn load(path: &Path) -> Result<Sequential, CnnError> {
        let bytes = std::fs::read(path).map_err(|source| CnnError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Sequential::from_bytes_named(&bytes, &path.display().to_string())
    }

    fn from_bytes_named(bytes: &[u8], path: &str) -> Result<Sequential, CnnError> {
        let error = |reason: String| CnnError::Model {
            path: path.to_owned(),
            reason,
        };
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| error(format!("not a safetensors file ({e})")))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let field = |key: &str| {
            metadata
                .get(key)
                .ok_or_else(|| error(format!("metadata has no `{key}`")))
        };
        if field("format")? != FORMAT {
            return Err(error(format!(
                "format is `{}`, not `{FORMAT}`",
                field("format")?
            )));
        }
        if field("version")? != VERSION {
            return Err(error(format!(
                "format version {} (this build reads version {VERSION})",
                field("version")?
            )));
        }
        let input_shape: [usize; 3] = serde_json::from_str(field("input_shape")?)
            .map_err(|e| error(format!("bad input_shape: {e}")))?;
        let specs: Vec<LayerSpec> = serde_json::from_str(field("layers")?)
            .map_err(|e| error(format!("bad layers: {e}")))?;
        let mut network = Sequential::new(input_shape, &specs, 0)
            .map_err(|e| error(format!("the saved architecture is invalid: {e}")))?;
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| error(e.to_string()))?;
        let expected: Vec<String> = network
            .named_parameters()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        if let Some(extra) = tensors
            .names()
            .into_iter()
            .find(|n| !expected.iter().any(|e| e == n))
        {
            return Err(error(format!("unexpected tensor `{extra}`")));
        }
        for (name, parameter) in expected.iter().zip(network.parameters_mut()) {
            let view = tensors
                .tensor(name)
                .map_err(|_| error(format!("missing tensor `{name}`")))?;
            if view.dtype() != Dtype::F32 || view.shape() != parameter.shape() {
                return Err(error(format!(
                    "tensor `{name}` is {:?} {:?}, the network needs F32 {:?}",
                    view.dtype(),
                    view.shape(),
                    parameter.shape()
                )));
            }
            for (value, chunk) in parameter
                .values_mut()
                .iter_mut()
                .zip(view.data().chunks_exact(4))
            {
                *value = f32::from_le_bytes(chunk.try_into().expect("chunks of four bytes"));
                if !value.is_finite() {
                    return Err(error(format!("tensor `{name}` holds {value}")));
                }
            }
        }
        Ok(network)
    }
}
