//! Shapes, parameter counts and names of the reference configurations.
use tessera_autograd::Var;
use tessera_nn::{Module, ModuleExt};
use tessera_spade::{
    count_params, semantic_input, ConvEncoder, IdMap, ModelConfig, MultiscaleDiscriminator,
    SpadeGenerator, UpsamplingLayers,
};
use tessera_tensor::{Device, Rng, Tensor};

fn millions(n: usize) -> f64 {
    (n as f64 / 1e4).round() / 100.0
}

/// The reference's counts (spade.md §11), to 0.01 M. Building the full-size models allocates
/// their weights (about 0.4 GB for a generator) but runs no forward.
#[test]
fn parameter_counts_match_the_reference_configs() {
    let mut rng = Rng::seed(0);
    let ade = ModelConfig::ade20k();
    let count_g =
        |c: &ModelConfig, rng: &mut Rng| count_params(&SpadeGenerator::new(c, rng).unwrap());
    assert_eq!(millions(count_g(&ade, &mut rng)), 96.49);
    assert_eq!(
        millions(count_params(
            &MultiscaleDiscriminator::new(&ade, &mut rng).unwrap()
        )),
        5.84
    );
    let vae = ModelConfig {
        use_vae: true,
        ..ModelConfig::ade20k()
    };
    assert_eq!(
        millions(count_params(&ConvEncoder::new(&vae, &mut rng).unwrap())),
        10.46
    );
    assert_eq!(millions(count_g(&vae, &mut rng)), 111.94);
    assert_eq!(millions(count_g(&ModelConfig::coco(), &mut rng)), 97.48);
    // spade.md's table says 5.91 M; its layer list gives 2 × 2,952,257 = 5,904,514.
    assert_eq!(
        count_params(&MultiscaleDiscriminator::new(&ModelConfig::coco(), &mut rng).unwrap()),
        5_904_514
    );
    let city = ModelConfig::cityscapes();
    assert_eq!(millions(count_g(&city, &mut rng)), 93.05);
    assert_eq!(
        millions(count_params(
            &MultiscaleDiscriminator::new(&city, &mut rng).unwrap()
        )),
        5.60
    );
    let city_vae = ModelConfig {
        use_vae: true,
        ..city
    };
    assert_eq!(millions(count_g(&city_vae, &mut rng)), 101.14);
}

#[test]
fn generator_names_follow_the_reference_state_dict() {
    let mut rng = Rng::seed(1);
    let g = SpadeGenerator::new(&ModelConfig::small(), &mut rng).unwrap();
    let sd = g.state_dict();
    let snc = 13;
    let shape = |k: &str| {
        sd.get(k)
            .unwrap_or_else(|| panic!("no {k}"))
            .dims()
            .to_vec()
    };
    assert_eq!(shape("fc.weight"), [512, snc, 3, 3]);
    assert_eq!(shape("head_0.conv_0.weight_orig"), [512, 512, 3, 3]);
    assert_eq!(shape("head_0.conv_0.weight_u"), [512]);
    assert_eq!(shape("head_0.conv_0.weight_v"), [512 * 9]);
    assert_eq!(shape("up_0.conv_s.weight_orig"), [256, 512, 1, 1]);
    assert!(!sd.contains_key("up_0.conv_s.bias"));
    assert!(!sd.contains_key("head_0.conv_s.weight_orig"));
    assert_eq!(shape("up_0.norm_s.mlp_shared.0.weight"), [64, snc, 3, 3]);
    assert_eq!(shape("up_3.norm_1.mlp_gamma.weight"), [32, 64, 3, 3]);
    assert_eq!(
        shape("G_middle_1.norm_0.param_free_norm.running_mean"),
        [512]
    );
    assert!(sd.contains_key("G_middle_1.norm_0.param_free_norm.num_batches_tracked"));
    assert_eq!(shape("conv_img.weight"), [3, 32, 3, 3]);
    // 7 blocks (4 with a learned shortcut): the reference's 234 keys for its 7-block G.
    assert_eq!(sd.len(), 234);
}

#[test]
fn encoder_and_discriminator_names_follow_the_reference() {
    let mut rng = Rng::seed(2);
    let c = ModelConfig {
        use_vae: true,
        ..ModelConfig::small()
    };
    let e = ConvEncoder::new(&c, &mut rng).unwrap().state_dict();
    assert_eq!(e["layer1.0.weight_orig"].dims(), [32, 3, 3, 3]);
    assert_eq!(e["layer5.0.weight_v"].dims(), [256 * 9]);
    assert_eq!(e["fc_mu.weight"].dims(), [256, 256 * 16]);
    assert!(!e.contains_key("layer6.0.weight_orig"));
    let d = MultiscaleDiscriminator::new(&c, &mut rng)
        .unwrap()
        .state_dict();
    assert_eq!(d["discriminator_0.model0.0.weight"].dims(), [32, 16, 4, 4]);
    assert_eq!(
        d["discriminator_1.model3.0.0.weight_orig"].dims(),
        [256, 128, 4, 4]
    );
    assert!(!d.contains_key("discriminator_1.model3.0.0.bias"));
    assert_eq!(d["discriminator_1.model4.0.weight"].dims(), [1, 256, 4, 4]);
}

fn random_labels(c: &ModelConfig, n: usize, h: usize, w: usize, seed: u64) -> Var {
    let mut rng = Rng::seed(seed);
    let maps: Vec<IdMap> = (0..n)
        .map(|i| {
            let ids = (0..h * w)
                .map(|_| (rng.next_u64() % c.label_channels() as u64) as u32)
                .collect();
            IdMap::new(format!("map{i}"), h, w, ids)
        })
        .collect();
    let inst = (!c.no_instance).then(|| maps.clone());
    Var::constant(semantic_input(c, &maps, inst.as_deref()).unwrap())
}

#[test]
fn small_models_produce_the_reference_shapes() {
    let mut rng = Rng::seed(3);
    // A narrow Cityscapes-like config: aspect 2, "more", instances.
    let c = ModelConfig {
        ngf: 2,
        ndf: 4,
        spade_hidden: 4,
        crop_size: 64,
        label_nc: 5,
        ..ModelConfig::cityscapes()
    };
    // 64 / 2^6 = 1 wide, round(0.5) = 0 high (ties to even, as Python): no model.
    assert_eq!(c.latent_hw(), (0, 1));
    assert!(SpadeGenerator::new(&c, &mut rng).is_err());
    let c = ModelConfig {
        crop_size: 128,
        ..c
    };
    let g = SpadeGenerator::new(&c, &mut rng).unwrap();
    let seg = random_labels(&c, 2, 64, 128, 4);
    let img = g.forward(&seg, None).unwrap();
    assert_eq!(img.dims(), [2, 3, 64, 128]);
    let d = MultiscaleDiscriminator::new(&c, &mut rng).unwrap();
    let x = Var::concat(&[&seg, &img], 1).unwrap();
    let outs = d.forward(&x).unwrap();
    let dims: Vec<Vec<usize>> = outs[0].iter().map(|o| o.dims()[2..].to_vec()).collect();
    assert_eq!(dims, [[33, 65], [17, 33], [9, 17], [10, 18], [11, 19]]);
    assert_eq!(outs[1][4].dims(), [2, 1, 7, 11]);
    // "most" ends in a half-width block.
    let most = ModelConfig {
        num_upsampling_layers: UpsamplingLayers::Most,
        aspect_ratio: 1.0,
        no_instance: true,
        ..c
    };
    let g = SpadeGenerator::new(&most, &mut rng).unwrap();
    assert_eq!(g.ups.len(), 5);
    assert_eq!(g.conv_img.config.in_channels, 1);
    // Batch 2: at 1×1, batch norm needs more than one sample (as in PyTorch).
    let seg = random_labels(&most, 2, 128, 128, 5);
    assert_eq!(g.forward(&seg, None).unwrap().dims(), [2, 3, 128, 128]);
}

#[test]
fn vae_mode_encodes_and_decodes() {
    let mut rng = Rng::seed(6);
    let c = ModelConfig {
        ngf: 2,
        spade_hidden: 4,
        use_vae: true,
        ..ModelConfig::small()
    };
    let e = ConvEncoder::new(&c, &mut rng).unwrap();
    let g = SpadeGenerator::new(&c, &mut rng).unwrap();
    // Not 128²: the encoder resizes bilinearly first.
    let img =
        Var::constant(Tensor::randn([2, 3, 96, 80], 0.0, 0.5, &mut rng, Device::Cpu).unwrap());
    let (mu, logvar) = e.forward(&img).unwrap();
    assert_eq!(mu.dims(), [2, 256]);
    let z = tessera_spade::reparameterize(&mu, &logvar, &mut rng).unwrap();
    let seg = random_labels(&c, 2, 128, 128, 7);
    assert_eq!(g.forward(&seg, Some(&z)).unwrap().dims(), [2, 3, 128, 128]);
    assert!(g.forward(&seg, None).is_err());
    let mut g = g;
    g.set_training(false);
    assert!(g.forward(&seg, Some(&z)).is_ok());
}
