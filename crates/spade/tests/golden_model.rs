//! Golden tests of the SPADE networks and one training step against PyTorch, from
//! `tests/fixtures/spade_model.safetensors` (written by `tests/fixtures/make_spade_model.py`;
//! each case's settings are listed beside it there and repeated here).
mod common;

use common::{check_buffers, check_grads, fill_state, semantics, uniform, Golden};
use std::collections::{BTreeMap, BTreeSet};
use tessera_autograd::{no_grad, Var};
use tessera_gan::{Vgg19, Vgg19Config, VggPerceptualLoss};
use tessera_nn::{Module, ModuleExt, SpadeNorm};
use tessera_spade::{
    BlockConfig, ConvEncoder, GeneratorNorm, ModelConfig, MultiscaleDiscriminator, SpadeGenerator,
    SpadeResnetBlock, TrainConfig, Trainer, UpsamplingLayers,
};
use tessera_tensor::Rng;

const FILE: &str = "spade_model";
/// Relative error allowed against the float64 reference (the project's golden tolerance; the
/// worst seen is below 1e-5).
const TOL: f64 = 1e-4;
/// Relative error allowed on the state after a training step. Adam divides each gradient entry
/// by its own magnitude, so an entry that is tiny by chance can turn float32 noise into a
/// visible change of its update; and the running statistics of a batch norm follow biases that
/// moved by rounding noise (see `step.still.*` in the fixture script).
const TOL_STEP: f64 = 1e-3;

fn tiny(label_nc: usize, instances: bool, ngf: usize, crop: usize, hidden: usize) -> ModelConfig {
    ModelConfig {
        no_instance: !instances,
        ngf,
        crop_size: crop,
        spade_hidden: hidden,
        ..ModelConfig::base(label_nc)
    }
}

#[test]
fn residual_block_matches_pytorch() {
    let mut g = Golden::new(FILE, TOL);
    let mut rng = Rng::seed(0);
    let config = BlockConfig {
        fin: 4,
        fout: 3,
        label_nc: 3,
        spectral: true,
        norm: SpadeNorm::Batch,
        kernel: 3,
        hidden: 5,
    };
    let mut block = SpadeResnetBlock::new(config, &mut rng).unwrap();
    fill_state(&block, 1000);
    let x = Var::param(uniform(10, &[2, 4, 6, 6]));
    let seg = Var::constant(semantics(11, 2, 12, 12, 3, false));
    let y = block.forward(&x, &seg).unwrap();
    g.check("block.train.out", y.value());
    check_grads(&mut g, "block.train", &y, &block, &[("x", &x)]);
    check_buffers(&mut g, "block.train.after", &block);
    block.set_training(false);
    g.check("block.eval.out", block.forward(&x, &seg).unwrap().value());
    // Without a graph: the one-pass modulation.
    let y = no_grad(|| block.forward(&x, &seg)).unwrap();
    g.check("block.eval.out", y.value());
    g.finish(40);
}

#[test]
fn generator_matches_pytorch() {
    let mut g = Golden::new(FILE, TOL);
    let mut rng = Rng::seed(0);
    let config = tiny(3, true, 1, 64, 3);
    let mut generator = SpadeGenerator::new(&config, &mut rng).unwrap();
    fill_state(&generator, 2000);
    let seg = Var::param(semantics(20, 2, 64, 64, 3, true));
    let y = generator.forward(&seg, None).unwrap();
    g.check("gen.train.out", y.value());
    check_grads(&mut g, "gen.train", &y, &generator, &[("seg", &seg)]);
    check_buffers(&mut g, "gen.train.after", &generator);
    generator.set_training(false);
    g.check(
        "gen.eval.out",
        generator.forward(&seg, None).unwrap().value(),
    );
    // A constant label map takes the lookup path, and without a graph the one-pass modulation.
    let constant = Var::constant(seg.value().clone());
    let y = no_grad(|| generator.forward(&constant, None)).unwrap();
    g.check("gen.eval.out", y.value());
    g.finish(250);
}

#[test]
fn generator_with_most_upsampling_and_instance_norm_matches_pytorch() {
    let mut g = Golden::new(FILE, TOL);
    let mut rng = Rng::seed(0);
    let config = ModelConfig {
        num_upsampling_layers: UpsamplingLayers::Most,
        norm_g: GeneratorNorm::parse("spadeinstance3x3").unwrap(),
        ..tiny(3, false, 2, 256, 2)
    };
    let generator = SpadeGenerator::new(&config, &mut rng).unwrap();
    fill_state(&generator, 3000);
    let seg = Var::constant(semantics(30, 1, 64, 64, 3, false));
    let y = generator.forward(&seg, None).unwrap();
    assert_eq!(y.dims(), [1, 3, 256, 256]);
    g.check("gen_most.train.out", y.value());
    check_grads(&mut g, "gen_most.train", &y, &generator, &[]);
    g.finish(150);
}

#[test]
fn encoder_matches_pytorch() {
    let mut g = Golden::new(FILE, TOL);
    let mut rng = Rng::seed(0);
    let config = ModelConfig {
        use_vae: true,
        z_dim: 8,
        ..tiny(3, false, 1, 128, 3)
    };
    let encoder = ConvEncoder::new(&config, &mut rng).unwrap();
    fill_state(&encoder, 4000);
    let x = Var::param(uniform(40, &[2, 3, 96, 80]));
    let (mu, logvar) = encoder.forward(&x).unwrap();
    g.check("enc.train.mu", mu.value());
    g.check("enc.train.logvar", logvar.value());
    let out = Var::concat(&[&mu, &logvar], 1).unwrap();
    check_grads(&mut g, "enc.train", &out, &encoder, &[("x", &x)]);
    check_buffers(&mut g, "enc.train.after", &encoder);
    g.finish(25);
}

#[test]
fn discriminator_matches_pytorch() {
    let mut g = Golden::new(FILE, TOL);
    let mut rng = Rng::seed(0);
    // semantic_nc 4 (3 labels + edges) + 3 image channels = 7.
    let config = ModelConfig {
        ndf: 4,
        ..tiny(3, true, 1, 32, 3)
    };
    let d = MultiscaleDiscriminator::new(&config, &mut rng).unwrap();
    fill_state(&d, 5000);
    let x = Var::param(uniform(50, &[2, 7, 20, 24]));
    let outs = d.forward(&x).unwrap();
    let mut flat = Vec::new();
    for (i, scale) in outs.iter().enumerate() {
        for (j, o) in scale.iter().enumerate() {
            g.check(&format!("disc.out.{i}.{j}"), o.value());
            flat.push(o.reshape([o.value().numel()]).unwrap());
        }
    }
    let flat = Var::concat(&flat.iter().collect::<Vec<_>>(), 0).unwrap();
    check_grads(&mut g, "disc.train", &flat, &d, &[("x", &x)]);
    check_buffers(&mut g, "disc.train.after", &d);
    g.finish(40);
}

#[test]
fn one_generator_and_discriminator_step_match_pytorch() {
    let mut g = Golden::new(FILE, TOL);
    let model = ModelConfig {
        ndf: 2,
        ..tiny(3, true, 1, 64, 3)
    };
    let vgg_config = Vgg19Config {
        widths: [2, 2, 3, 3, 4],
    };
    let mut placeholder = std::collections::BTreeMap::new();
    for (name, shape) in vgg_config.required_tensors() {
        placeholder.insert(
            name,
            tessera_tensor::Tensor::zeros(shape, tessera_tensor::Device::Cpu).unwrap(),
        );
    }
    let bytes = tessera_nn::checkpoint::safetensors::to_bytes(&placeholder, None).unwrap();
    let vgg = Vgg19::from_safetensors_bytes(&bytes, vgg_config, "narrow VGG").unwrap();
    fill_state(&vgg, 8000);
    let mut trainer = Trainer::new(
        &model,
        &TrainConfig::default(),
        Some(VggPerceptualLoss::new(vgg)),
    )
    .unwrap();
    fill_state(&trainer.generator, 6000);
    fill_state(&trainer.discriminator, 7000);
    let batch = tessera_spade::Batch {
        semantics: semantics(60, 2, 64, 64, 3, true),
        image: uniform(61, &[2, 3, 64, 64]).mul_scalar(0.9).unwrap(),
    };
    let mut before = BTreeMap::new();
    for (prefix, state) in [
        ("G", trainer.generator.state_dict()),
        ("D", trainer.discriminator.state_dict()),
    ] {
        for (name, t) in state {
            before.insert(format!("{prefix}.{name}"), t);
        }
    }
    let gs = trainer.generator_step(&batch).unwrap();
    let want = g.fixture.floats("step.g_losses", "full");
    g.check_value("G gan", gs.gan, want[0]);
    g.check_value("G feat", gs.feat.unwrap(), want[1]);
    g.check_value("G vgg", gs.vgg.unwrap(), want[2]);
    g.check_value("G total", gs.total, want[3]);
    let ds = trainer.discriminator_step(&batch).unwrap();
    let want = g.fixture.floats("step.d_losses", "full");
    g.check_value("D fake", ds.fake, want[0]);
    g.check_value("D real", ds.real, want[1]);
    g.check_value("D total", ds.total, want[2]);
    // Each parameter's Adam update against PyTorch's; a parameter with an exactly zero
    // gradient may move by at most the learning rate (rounding noise / (|noise| + eps)).
    let mut after = Golden::new(FILE, TOL_STEP);
    for (prefix, net, lr) in [
        ("G", &trainer.generator as &dyn Module, 1e-4f32),
        ("D", &trainer.discriminator as &dyn Module, 4e-4),
    ] {
        let params: BTreeSet<String> = net.named_params().into_iter().map(|(n, _)| n).collect();
        for (name, t) in net.state_dict() {
            let key = format!("{prefix}.{name}");
            if !params.contains(&name) {
                if !name.ends_with("num_batches_tracked") {
                    after.check(&format!("step.after.{key}"), &t);
                }
                continue;
            }
            let delta = t.sub(&before[&key]).unwrap();
            if g.fixture
                .try_get(&format!("step.still.{key}"), "full")
                .is_some()
            {
                let moved = delta
                    .to_vec()
                    .unwrap()
                    .iter()
                    .fold(0f32, |m, v| m.max(v.abs()));
                assert!(
                    moved <= lr * 1.001,
                    "{key} moved by {moved}, more than lr {lr}"
                );
            } else {
                after.check(&format!("step.delta.{key}"), &delta);
            }
        }
    }
    after.finish(250);
    g.finish(7);
}
