//! imresize and the pyramid's reals against an independent numpy implementation of the same
//! algorithm (`tests/fixtures/make_singan_resize.py` → `singan_resize.safetensors`).
use std::collections::BTreeMap;
use std::path::PathBuf;
use tessera_nn::checkpoint::safetensors::load_state_dict;
use tessera_singan::resize::{imresize, imresize_to_shape};
use tessera_singan::{Pyramid, PyramidConfig};
use tessera_tensor::Tensor;

fn fixture() -> BTreeMap<String, Tensor> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/singan_resize.safetensors");
    load_state_dict(&path).unwrap()
}

/// Every pixel within float32 rounding of the reference (the two sum their f64 products in
/// different orders), and the same shape.
fn assert_close(name: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.dims(), want.dims(), "{name}: shape");
    let (g, w) = (got.to_vec().unwrap(), want.to_vec().unwrap());
    let worst = g
        .iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 1e-6, "{name}: max |difference| {worst}");
}

#[test]
fn imresize_matches_the_numpy_reference() {
    let f = fixture();
    let image = &f["image"];
    for s in [0.75, 0.5, 0.4274, 1.0, 1.0 / 0.7781, 1.6] {
        let name = format!("scale_{s:.6}").replace('.', "_");
        assert_close(&name, &imresize(image, s).unwrap(), &f[&name]);
    }
}

#[test]
fn imresize_to_shape_matches_the_numpy_reference() {
    let f = fixture();
    for [h, w] in [[9, 25], [20, 13], [14, 8]] {
        let name = format!("shape_{h}x{w}");
        assert_close(
            &name,
            &imresize_to_shape(&f["image"], [h, w]).unwrap(),
            &f[&name],
        );
    }
}

#[test]
fn pyramid_reals_match_the_numpy_reference() {
    let f = fixture();
    let image = &f["pyr_image"];
    let config = PyramidConfig {
        scale_factor_init: 0.75,
        min_size: 20,
        max_size: 32,
    };
    let plan = Pyramid::plan(36, 30, &config).unwrap();
    let reals = plan.reals(image, [36, 30]).unwrap();
    assert_eq!(reals.len(), 3);
    for (i, real) in reals.iter().enumerate() {
        let name = format!("pyr_{i}");
        assert_close(&name, real, &f[&name]);
    }
}
