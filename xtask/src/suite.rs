//! The bench suite: real network layers (NCHW, f32, batch 1 unless named).

use convkit::{ConvSpec, Padding};

/// One named layer.
#[derive(Clone, Copy, Debug)]
pub struct Layer {
    pub name: &'static str,
    pub spec: ConvSpec,
    /// Whether the layer adds a bias (the suite's layers all do).
    pub bias: bool,
    /// The network it belongs to (`--models` layers; the suite's belong to none).
    pub network: Option<&'static str>,
    /// How often it occurs in its network (1 in the suite).
    pub count: usize,
}

impl Layer {
    /// A suite layer: a bias, no network, occurring once.
    pub const fn suite(name: &'static str, spec: ConvSpec) -> Layer {
        Layer {
            name,
            spec,
            bias: true,
            network: None,
            count: 1,
        }
    }
}

const fn same3x3(channels: usize, size: usize) -> ConvSpec {
    ConvSpec::new(1, channels, channels, [size, size], [3, 3]).padding(Padding::symmetric([1, 1]))
}

/// Every layer of the suite, small to large.
pub fn layers() -> Vec<Layer> {
    let layer = Layer::suite;
    vec![
        layer("mnist_conv1_5x5", ConvSpec::new(1, 1, 8, [28, 28], [5, 5])),
        layer("mnist_conv2_5x5", ConvSpec::new(1, 8, 16, [12, 12], [5, 5])),
        layer(
            "cifar_conv1_3x3",
            ConvSpec::new(1, 3, 32, [32, 32], [3, 3]).padding(Padding::symmetric([1, 1])),
        ),
        layer(
            "resnet_stem_7x7s2",
            ConvSpec::new(1, 3, 64, [224, 224], [7, 7])
                .stride([2, 2])
                .padding(Padding::symmetric([3, 3])),
        ),
        layer("resnet_3x3_64", same3x3(64, 56)),
        layer("resnet_3x3_128", same3x3(128, 28)),
        layer("resnet_3x3_256", same3x3(256, 14)),
        layer("resnet_3x3_512", same3x3(512, 7)),
        layer("resnet_3x3_s2", same3x3(128, 56).stride([2, 2])),
        layer(
            "pointwise_256_64",
            ConvSpec::new(1, 256, 64, [56, 56], [1, 1]),
        ),
        layer(
            "pointwise_64_256",
            ConvSpec::new(1, 64, 256, [56, 56], [1, 1]),
        ),
        layer("vgg_3x3_256", same3x3(256, 56)),
        layer(
            "batch8_3x3_128",
            ConvSpec::new(8, 128, 128, [28, 28], [3, 3]).padding(Padding::symmetric([1, 1])),
        ),
        layer("depthwise_3x3_32", same3x3(32, 112).groups(32)),
        layer(
            "dilated_3x3_64",
            same3x3(64, 56)
                .dilation([2, 2])
                .padding(Padding::symmetric([2, 2])),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layer_is_valid_and_keeps_its_spatial_size_where_named() {
        for layer in layers() {
            let [oh, ow] = layer.spec.output_hw().expect(layer.name);
            assert!(oh > 0 && ow > 0);
        }
        let stem = layers()
            .into_iter()
            .find(|l| l.name == "resnet_stem_7x7s2")
            .unwrap();
        assert_eq!(stem.spec.output_hw(), Ok([112, 112]));
    }
}
