//! A generator built and trained a little in PyTorch, converted by
//! crates/spade-cli/convert_torch_generator.py, loads here and reproduces PyTorch's eval output
//! (tests/fixtures/make_spade_converter.py writes both files).
mod common;

use common::{semantics, Golden};
use tessera_autograd::{no_grad, Var};
use tessera_spade::{load_generator, Error, ModelConfig};
use tessera_tests::fixtures_dir;

fn config() -> ModelConfig {
    ModelConfig {
        contain_dontcare_label: true,
        no_instance: true,
        ngf: 1,
        crop_size: 32,
        spade_hidden: 2,
        ..ModelConfig::base(3)
    }
}

#[test]
fn converted_pytorch_generator_reproduces_its_eval_output() {
    let path = fixtures_dir().join("spade_converted_G.safetensors");
    let generator = load_generator(&path, &config()).unwrap();
    let seg = Var::constant(semantics(70, 2, 32, 32, 4, false));
    let mut golden = Golden::new("spade_converter", 1e-4);
    // Recording a graph (the composite modulation) and without one (the one-pass kernel).
    let y = generator.forward(&seg, None).unwrap();
    golden.check("gen.eval.out", y.value());
    let y = no_grad(|| generator.forward(&seg, None)).unwrap();
    assert!(!y.requires_grad());
    golden.check("gen.eval.out", y.value());
    golden.finish(6);
}

#[test]
fn weights_of_another_config_are_an_error_naming_the_file() {
    let path = fixtures_dir().join("spade_converted_G.safetensors");
    // Without the don't-care label: 3 label channels where the file's fc has 4.
    let wrong = ModelConfig {
        contain_dontcare_label: false,
        ..config()
    };
    let err = load_generator(&path, &wrong).err().unwrap();
    assert!(matches!(err, Error::Checkpoint { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("spade_converted_G.safetensors") && msg.contains("semantic_nc 3"),
        "{msg}"
    );
    assert!(msg.contains("fc.weight"), "{msg}");
    let missing = load_generator(fixtures_dir().join("no-such-file.safetensors"), &config());
    assert!(missing.err().unwrap().to_string().contains("no-such-file"));
}
