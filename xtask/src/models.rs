//! `--models FILE`: the layers of whole networks, read from a models file (the format of
//! `benches/models/models.json`, described in `benches/models/README.md`).

use crate::model::Geometry;
use crate::suite::Layer;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The repository's copy of the shared models file, relative to the workspace root.
pub const DEFAULT_FILE: &str = "benches/models/models.json";

#[derive(Deserialize)]
struct ModelsFile {
    models: BTreeMap<String, Vec<LayerEntry>>,
}

/// One layer as the file writes it: ONNX's names and orders.
#[derive(Deserialize)]
struct LayerEntry {
    name: String,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    r: usize,
    s: usize,
    stride: [usize; 2],
    /// `[top, left, bottom, right]`.
    pads: [usize; 4],
    dilation: [usize; 2],
    groups: usize,
    bias: bool,
    count: usize,
}

/// Every layer of every network in the models file at `path`, network by network (in name
/// order), each layer tagged with its network and count. Names are leaked: they live as long
/// as the bench run, as the suite's static names do.
pub fn load(path: &Path) -> Result<Vec<Layer>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let file: ModelsFile = serde_json::from_str(&text)
        .map_err(|error| format!("{} is not a models file: {error}", path.display()))?;
    let mut layers = Vec::new();
    for (network, entries) in file.models {
        let network: &'static str = Box::leak(network.into_boxed_str());
        for entry in entries {
            let spec = Geometry {
                n: entry.n,
                c: entry.c,
                k: entry.k,
                hw: [entry.h, entry.w],
                kernel: [entry.r, entry.s],
                stride: entry.stride,
                pads: entry.pads,
                dilation: entry.dilation,
                groups: entry.groups,
                nhwc: false,
            }
            .spec();
            spec.shape().map_err(|error| {
                format!("{network}/{} in {}: {error}", entry.name, path.display())
            })?;
            if entry.count == 0 {
                return Err(format!(
                    "{network}/{} in {}: count 0",
                    entry.name,
                    path.display()
                ));
            }
            layers.push(Layer {
                name: Box::leak(entry.name.into_boxed_str()),
                spec,
                bias: entry.bias,
                network: Some(network),
                count: entry.count,
            });
        }
    }
    if layers.is_empty() {
        return Err(format!("{} lists no layers", path.display()));
    }
    Ok(layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_models_file_loads_with_valid_layers() {
        let layers = load(&crate::workspace_root().join(DEFAULT_FILE)).unwrap();
        for network in ["resnet50", "mobilenet_v2", "conv1d_audio"] {
            assert!(
                layers.iter().any(|l| l.network == Some(network)),
                "{network}"
            );
        }
        let stem = layers.iter().find(|l| l.name == "resnet50_0").unwrap();
        assert_eq!(stem.spec.output_hw(), Ok([112, 112]));
        assert!(!stem.bias);
        let depthwise = layers.iter().find(|l| l.name == "mamba_dwconv").unwrap();
        assert_eq!(depthwise.spec.group_count(), 1536);
    }
}
