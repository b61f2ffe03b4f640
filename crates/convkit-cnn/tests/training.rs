//! End to end: a short deterministic training run lowers the loss; models round-trip through
//! files; bad files and bad inputs are clear errors.

use convkit_cnn::mnist::{self, Augmentation};
use convkit_cnn::train::{EpochOptions, evaluate, train_epoch};
use convkit_cnn::{Adam, CnnError, LayerSpec, Mode, Optimizer, Sequential, Sgd, Tensor, lenet};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn first_images(data: &mnist::Dataset, count: usize) -> mnist::Dataset {
    let pixels = (0..count).flat_map(|i| data.image(i).to_vec()).collect();
    mnist::Dataset::new(pixels, data.labels()[..count].to_vec()).unwrap()
}

#[test]
fn the_vendored_sample_splits_400_and_100_per_digit() {
    let data = mnist::load().unwrap();
    for (set, per_class) in [(&data.train, 400), (&data.test, 100)] {
        let mut counts = [0; 10];
        set.labels()
            .iter()
            .for_each(|&l| counts[usize::from(l)] += 1);
        assert_eq!(counts, [per_class; 10]);
    }
}

#[test]
fn a_few_steps_lower_the_loss_and_repeat_exactly() {
    let data = mnist::load().unwrap();
    let train = first_images(&data.train, 320);
    let run = |optimizer: &mut dyn Optimizer| {
        let mut network = Sequential::new([1, 28, 28], &lenet(), 3).unwrap();
        let before = evaluate(&mut network, &train, 64).unwrap().loss;
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let options = EpochOptions {
            batch_size: 32,
            augmentation: Augmentation::NONE,
        };
        for _ in 0..2 {
            train_epoch(&mut network, optimizer, &train, options, &mut rng, |_| {}).unwrap();
        }
        let after = evaluate(&mut network, &train, 64).unwrap().loss;
        (before, after)
    };
    for optimizer in [
        &mut Adam::new(1e-3) as &mut dyn Optimizer,
        &mut Sgd::new(0.02, 0.9).weight_decay(1e-4),
    ] {
        let (before, after) = run(optimizer);
        assert!(
            after < 0.6 * before,
            "{optimizer:?}: loss {before} -> {after}"
        );
    }
    // Same seeds, same pool size: the same numbers.
    assert_eq!(run(&mut Adam::new(1e-3)), run(&mut Adam::new(1e-3)));
}

#[test]
fn a_saved_model_loads_with_identical_outputs() {
    let mut network = Sequential::new([1, 28, 28], &lenet(), 5).unwrap();
    let data = mnist::load().unwrap();
    let (images, _) = data.test.batch(&[0, 1, 2]);
    let before = network.forward(images.clone(), Mode::Eval).unwrap();
    let path = std::env::temp_dir().join(format!("convkit-cnn-{}.safetensors", std::process::id()));
    network.save(&path).unwrap();
    let mut loaded = Sequential::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(loaded.specs(), network.specs());
    assert_eq!(loaded.forward(images, Mode::Eval).unwrap(), before);
}

#[test]
fn corrupt_or_mismatched_files_are_clear_errors() {
    let network = Sequential::new([1, 28, 28], &lenet(), 5).unwrap();
    let bytes = network.to_bytes().unwrap();
    let message = |result: Result<Sequential, CnnError>| result.unwrap_err().to_string();

    assert!(message(Sequential::from_bytes(b"not a model")).contains("not a safetensors file"));
    assert!(message(Sequential::from_bytes(&bytes[..bytes.len() - 10])).contains("<memory>"));

    // A file from another architecture: same tensor names, other shapes.
    let mut other = lenet();
    other[0] = LayerSpec::Conv2d {
        in_channels: 1,
        out_channels: 6,
        kernel: [5, 5],
        stride: [1, 1],
        padding: [0, 0],
        activation: convkit_cnn::Nonlinearity::Relu,
    };
    other[2] = LayerSpec::Conv2d {
        in_channels: 6,
        out_channels: 32,
        kernel: [5, 5],
        stride: [1, 1],
        padding: [0, 0],
        activation: convkit_cnn::Nonlinearity::Relu,
    };
    let other_bytes = Sequential::new([1, 28, 28], &other, 1)
        .unwrap()
        .to_bytes()
        .unwrap();
    // Splice: the metadata of `network` with the tensors of `other` is what a mismatched
    // file looks like; build it by editing the header's architecture instead.
    let header_len = u64::from_le_bytes(other_bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(other_bytes[8..8 + header_len].to_vec()).unwrap();
    let lenet_layers = serde_json::to_string(&lenet()).unwrap();
    let other_layers = serde_json::to_string(&other).unwrap();
    let escaped = |s: &str| serde_json::to_string(s).unwrap();
    let edited = header.replace(&escaped(&other_layers), &escaped(&lenet_layers));
    assert_ne!(edited, header, "the architecture string is in the header");
    let mut mismatched = ((edited.len()) as u64).to_le_bytes().to_vec();
    mismatched.extend_from_slice(edited.as_bytes());
    mismatched.extend_from_slice(&other_bytes[8 + header_len..]);
    let error = message(Sequential::from_bytes(&mismatched));
    assert!(
        error.contains("0.weight") && error.contains("[12, 1, 5, 5]"),
        "{error}"
    );

    let missing = std::path::Path::new("/nonexistent/model.safetensors");
    assert!(message(Sequential::load(missing)).contains("/nonexistent/model.safetensors"));
}

#[test]
fn wrong_shapes_and_configurations_are_errors_not_panics() {
    let mut network = Sequential::new([1, 28, 28], &lenet(), 5).unwrap();
    let wrong = Tensor::zeros([2, 1, 27, 28]);
    assert!(matches!(
        network.forward(wrong, Mode::Eval),
        Err(CnnError::Shape { .. })
    ));
    assert!(matches!(
        network.backward(Tensor::zeros([2, 10, 1, 1])),
        Err(CnnError::NoForward { .. })
    ));
    // Layers that do not chain.
    let mut broken = lenet();
    broken[5] = LayerSpec::Dense {
        inputs: 500,
        outputs: 120,
    };
    assert!(matches!(
        Sequential::new([1, 28, 28], &broken, 1),
        Err(CnnError::Shape { .. })
    ));
    let padded_too_much = [LayerSpec::Conv2d {
        in_channels: 1,
        out_channels: 2,
        kernel: [3, 3],
        stride: [1, 1],
        padding: [3, 0],
        activation: convkit_cnn::Nonlinearity::Identity,
    }];
    assert!(matches!(
        Sequential::new([1, 8, 8], &padded_too_much, 1),
        Err(CnnError::Config(_))
    ));
    assert!(Tensor::new([2, 2, 2, 2], vec![0.0; 15]).is_err());
}
