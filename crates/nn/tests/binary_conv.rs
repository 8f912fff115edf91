//! The lookup convolution of binary maps against the dense convolution, and its finite-
//! difference gradient checks (first and second order).
use std::sync::Arc;
use tessera_autograd::gradcheck::{check_grad, check_grad_grad, GradcheckConfig};
use tessera_autograd::{grad, Var};
use tessera_nn::binary_conv::{binary_conv, binary_conv_adjoint, BinaryMap};
use tessera_nn::{ModuleExt, Spade, SpadeConfig, SpadeNorm};
use tessera_tensor::{Conv2dParams, Device, Rng, Tensor};

/// One-hot labels of `classes` channels plus a sparse binary extra channel.
fn binary_map(n: usize, classes: usize, h: usize, w: usize, rng: &mut Rng) -> Tensor {
    let c = classes + 1;
    let mut v = vec![0f32; n * c * h * w];
    for img in 0..n {
        for p in 0..h * w {
            let label = (rng.next_u64() % classes as u64) as usize;
            v[(img * c + label) * h * w + p] = 1.0;
            if rng.next_u64().is_multiple_of(5) {
                v[(img * c + classes) * h * w + p] = 1.0;
            }
        }
    }
    Tensor::from_vec(v, [n, c, h, w], Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let (a, b) = (a.to_vec().unwrap(), b.to_vec().unwrap());
    a.iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn lookup_equals_the_dense_convolution_and_its_weight_gradient() {
    let mut rng = Rng::seed(1);
    for (k, (h, w), (oh, ow)) in [
        (3, (9, 7), (9, 7)),
        (1, (8, 8), (3, 5)),
        (5, (12, 10), (7, 16)),
    ] {
        let dense = binary_map(2, 6, h, w, &mut rng);
        let map = BinaryMap::from_dense(&dense).unwrap().expect("binary");
        let map = Arc::new(map.resize_nearest(oh, ow));
        let dense = Var::constant(dense).upsample_nearest2d([oh, ow]).unwrap();
        let weight =
            Var::param(Tensor::randn([5, 7, k, k], 0.0, 0.3, &mut rng, Device::Cpu).unwrap());
        let fast = binary_conv(&map, &weight).unwrap();
        let slow = dense
            .conv2d(&weight, None, Conv2dParams::new(1, k / 2, 1))
            .unwrap();
        assert!(max_diff(fast.value(), slow.value()) < 1e-5, "k {k}");
        let g = Var::constant(
            Tensor::randn(slow.shape().clone(), 0.0, 1.0, &mut rng, Device::Cpu).unwrap(),
        );
        let gf = grad(&[&fast], &[&weight], Some(std::slice::from_ref(&g)), false).unwrap();
        let gs = grad(&[&slow], &[&weight], Some(std::slice::from_ref(&g)), false).unwrap();
        assert!(max_diff(gf[0].value(), gs[0].value()) < 1e-4, "k {k}");
        let adj = binary_conv_adjoint(&map, &g, k).unwrap();
        assert!(max_diff(adj.value(), gs[0].value()) < 1e-4, "k {k}");
    }
}

#[test]
fn only_exact_binary_maps_take_the_lookup() {
    let t = |v: &[f32]| Tensor::from_slice(v, [1, 2, 1, 2], Device::Cpu).unwrap();
    assert!(BinaryMap::from_dense(&t(&[1.0, 0.0, 0.0, 1.0]))
        .unwrap()
        .is_some());
    assert!(BinaryMap::from_dense(&t(&[0.5, 0.0, 0.5, 1.0]))
        .unwrap()
        .is_none());
    // Every channel on: more active channels per pixel than the lookup is worth.
    let full = Tensor::ones([1, 9, 2, 2], Device::Cpu).unwrap();
    assert!(BinaryMap::from_dense(&full).unwrap().is_none());
}

#[test]
fn gradients_match_finite_differences_to_second_order() {
    let mut rng = Rng::seed(2);
    let map = Arc::new(
        BinaryMap::from_dense(&binary_map(2, 3, 5, 4, &mut rng))
            .unwrap()
            .unwrap(),
    );
    let weight = Tensor::randn([3, 4, 3, 3], 0.0, 0.5, &mut rng, Device::Cpu).unwrap();
    let cfg = GradcheckConfig::default();
    // tanh makes the second derivative non-zero (the convolution itself is linear).
    let f =
        |xs: &[Var]| -> tessera_autograd::Result<Var> { binary_conv(&map, &xs[0]).unwrap().tanh() };
    let r1 = check_grad(f, std::slice::from_ref(&weight), &cfg).unwrap();
    let r2 = check_grad_grad(f, std::slice::from_ref(&weight), &cfg).unwrap();
    assert!(r1.checked > 0 && r2.checked >= r1.checked, "{r1:?} {r2:?}");
    let g = Tensor::randn([2, 3, 5, 4], 0.0, 1.0, &mut rng, Device::Cpu).unwrap();
    let adj = |xs: &[Var]| -> tessera_autograd::Result<Var> {
        binary_conv_adjoint(&map, &xs[0], 3).unwrap().tanh()
    };
    let r1 = check_grad(adj, std::slice::from_ref(&g), &cfg).unwrap();
    let r2 = check_grad_grad(adj, std::slice::from_ref(&g), &cfg).unwrap();
    assert!(r1.checked > 0 && r2.checked >= r1.checked, "{r1:?} {r2:?}");
}

/// The SPADE layer takes the lookup for a constant binary label map and the dense convolution for
/// the same map when it needs a gradient: outputs and parameter gradients agree.
#[test]
fn spade_layer_gives_the_same_result_by_lookup_and_by_the_dense_convolution() {
    let mut rng = Rng::seed(3);
    let layer = Spade::new(SpadeConfig::new(4, 7, SpadeNorm::Batch).hidden(5), &mut rng).unwrap();
    let seg = binary_map(2, 6, 10, 8, &mut rng);
    let x = Var::param(Tensor::randn([2, 4, 5, 4], 0.0, 1.0, &mut rng, Device::Cpu).unwrap());
    let g = Var::constant(Tensor::randn([2, 4, 5, 4], 0.0, 1.0, &mut rng, Device::Cpu).unwrap());
    let params: Vec<Var> = layer.params().iter().map(|p| p.var()).collect();
    let mut wrt: Vec<&Var> = params.iter().collect();
    wrt.push(&x);
    let run = |seg: &Var| {
        let y = layer.forward(&x, seg).unwrap();
        let grads = grad(&[&y], &wrt, Some(std::slice::from_ref(&g)), false).unwrap();
        (y, grads)
    };
    // The constant map takes the lookup, the one that needs a gradient the dense convolution.
    let (fast, fast_grads) = run(&Var::constant(seg.clone()));
    let (slow, slow_grads) = run(&Var::param(seg));
    assert!(max_diff(fast.value(), slow.value()) < 1e-5);
    for (a, b) in fast_grads.iter().zip(&slow_grads) {
        assert!(max_diff(a.value(), b.value()) < 1e-4);
    }
}
