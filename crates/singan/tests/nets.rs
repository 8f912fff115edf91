//! Per-scale networks: parameter counts and names as the reference's, output shapes, the
//! residual add.
use tessera_autograd::Var;
use tessera_nn::{Module, ModuleExt};
use tessera_singan::net::{width_for_scale, Critic, Generator};
use tessera_tensor::{Device, Rng, Tensor};

fn count(m: &impl ModuleExt) -> usize {
    m.params().iter().map(|p| p.shape().numel()).sum()
}

#[test]
fn parameter_counts_match_the_reference() {
    let mut rng = Rng::seed(0);
    for (width, g, d) in [
        (32, 29_763, 29_185),
        (64, 114_819, 113_665),
        (128, 450_819, 448_513),
    ] {
        assert_eq!(
            count(&Generator::new(width, &mut rng).unwrap()),
            g,
            "G {width}"
        );
        assert_eq!(
            count(&Critic::new(width, &mut rng).unwrap()),
            d,
            "D {width}"
        );
    }
    // The balloons model: 9 scales, widths 32×4, 64×4, 128.
    let total: usize = (0..9)
        .map(|n| count(&Generator::new(width_for_scale(n, 32, 128), &mut rng).unwrap()))
        .sum();
    assert_eq!(total, 1_029_147);
}

#[test]
fn widths_double_every_four_scales_up_to_the_cap() {
    let widths: Vec<usize> = (0..10).map(|n| width_for_scale(n, 32, 128)).collect();
    assert_eq!(widths, [32, 32, 32, 32, 64, 64, 64, 64, 128, 128]);
    assert_eq!(width_for_scale(9, 32, 32), 32);
}

#[test]
fn state_dict_names_are_the_reference_names() {
    let mut rng = Rng::seed(0);
    let g = Generator::new(8, &mut rng).unwrap();
    let names: Vec<String> = g.state_dict().into_keys().collect();
    for expected in [
        "head.conv.weight",
        "head.conv.bias",
        "head.norm.weight",
        "head.norm.bias",
        "head.norm.running_mean",
        "head.norm.running_var",
        "head.norm.num_batches_tracked",
        "body.block1.conv.weight",
        "body.block3.norm.running_var",
        "tail.0.weight",
        "tail.0.bias",
    ] {
        assert!(names.iter().any(|n| n == expected), "missing {expected}");
    }
    assert_eq!(names.len(), 5 * 2 + 4 * 5);
    let d = Critic::new(8, &mut rng).unwrap();
    let names: Vec<String> = d.state_dict().into_keys().collect();
    assert!(names.iter().any(|n| n == "tail.weight"));
    assert!(names.iter().any(|n| n == "body.block2.norm.running_mean"));
}

#[test]
fn generator_adds_its_output_to_the_cropped_previous_image() {
    let mut rng = Rng::seed(1);
    let mut g = Generator::new(8, &mut rng).unwrap();
    g.set_training(false);
    let x = Tensor::randn([1, 3, 22, 27], 0.0, 1.0, &mut rng, Device::Cpu).unwrap();
    let y = Tensor::randn([1, 3, 22, 27], 0.0, 1.0, &mut rng, Device::Cpu).unwrap();
    let out = g
        .forward(&Var::constant(x.clone()), &Var::constant(y.clone()))
        .unwrap();
    assert_eq!(out.dims(), &[1, 3, 12, 17]);
    // out − crop(y) is the tanh branch: inside (−1, 1).
    let crop = y.narrow(2, 5, 12).unwrap().narrow(3, 5, 17).unwrap();
    let branch = out.value().sub(&crop).unwrap().to_vec().unwrap();
    assert!(branch.iter().all(|v| v.abs() < 1.0));
    assert!(branch.iter().any(|v| v.abs() > 1e-4));
    let d = Critic::new(8, &mut rng).unwrap();
    assert_eq!(
        d.forward(&Var::constant(x)).unwrap().dims(),
        &[1, 1, 12, 17]
    );
}
