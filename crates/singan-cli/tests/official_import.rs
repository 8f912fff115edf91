//! A model trained with the official PyTorch code, converted by convert_official.py, loads and
//! reconstructs its training image as PyTorch does. The fixture (a tiny random model saved the
//! official way, its conversion and the torch reconstruction) comes from
//! tests/fixtures/make_singan_official_model.py.
use std::path::{Path, PathBuf};
use std::process::Command;

use tessera_nn::checkpoint::safetensors::load_state_dict;
use tessera_singan::{image_io, store};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn expected_reconstruction() -> Vec<f32> {
    let expected = load_state_dict(fixtures().join("official_tiny_expected.safetensors")).unwrap();
    expected["reconstruction"].to_vec().unwrap()
}

/// Largest and mean absolute difference.
fn differences(got: &[f32], want: &[f32]) -> (f32, f32) {
    assert_eq!(got.len(), want.len());
    let diffs: Vec<f32> = got.iter().zip(want).map(|(a, b)| (a - b).abs()).collect();
    let max = diffs.iter().cloned().fold(0.0, f32::max);
    (max, diffs.iter().sum::<f32>() / diffs.len() as f32)
}

#[test]
fn converted_official_model_reconstructs_as_pytorch() {
    let model = store::load(&fixtures().join("official_tiny")).unwrap();
    assert_eq!(model.num_trained(), 3);
    assert!(model.is_complete());
    assert!(model.scales.iter().all(|s| s.critic.is_some()));
    let got = model.reconstruct().unwrap();
    assert_eq!(got.dims(), &[1, 3, 14, 18]);
    // Between scales the reconstruction passes through the 8-bit resize, so a float difference
    // at a truncation boundary could move a pixel by 1/255; the generators are otherwise the
    // same float32 arithmetic.
    let (max, mean) = differences(&got.to_vec().unwrap(), &expected_reconstruction());
    assert!(max < 1e-4, "max |Δ| {max}, mean {mean}");
}

#[test]
fn reconstruct_command_writes_the_imported_models_reconstruction() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.png");
    let status = Command::new(env!("CARGO_BIN_EXE_singan"))
        .args(["reconstruct", "--model"])
        .arg(fixtures().join("official_tiny"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let written = image_io::read_image(&out).unwrap().to_vec().unwrap();
    // The PNG holds the nearest 8-bit value of each pixel, clamped to [-1, 1] (the residual
    // generator's output is not clamped).
    let clamped: Vec<f32> = expected_reconstruction()
        .iter()
        .map(|v| v.clamp(-1.0, 1.0))
        .collect();
    let (max, _) = differences(&written, &clamped);
    assert!(max <= 1.0 / 255.0 + 1e-4, "max |Δ| {max}");
}
