//! End-to-end runs of the `singan` binary: a tiny training run (two scales, a few iterations)
//! followed by sampling, and the errors a user sees for bad input.
use std::path::Path;
use std::process::{Command, Output};

use tessera_nn::checkpoint::safetensors::load_state_dict;
use tessera_singan::image_io;
use tessera_tensor::{Device, Tensor};

fn singan(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_singan"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A smooth colour image [1, 3, h, w].
fn write_test_image(path: &Path, h: usize, w: usize) {
    let values: Vec<f32> = (0..3 * h * w)
        .map(|i| {
            let (c, y, x) = (i / (h * w), (i / w) % h, i % w);
            ((x as f32 * 0.3 + y as f32 * 0.2 + c as f32).sin() * 0.8).clamp(-1.0, 1.0)
        })
        .collect();
    let t = Tensor::from_vec(values, [1, 3, h, w], Device::Cpu).unwrap();
    image_io::write_png(&t, path).unwrap();
}

/// A black mask with a white rectangle in the middle.
fn write_mask(path: &Path, h: usize, w: usize) {
    let values: Vec<f32> = (0..3 * h * w)
        .map(|i| {
            let (y, x) = ((i / w) % h, i % w);
            if (h / 3..2 * h / 3).contains(&y) && (w / 3..2 * w / 3).contains(&x) {
                1.0
            } else {
                -1.0
            }
        })
        .collect();
    let t = Tensor::from_vec(values, [1, 3, h, w], Device::Cpu).unwrap();
    image_io::write_png(&t, path).unwrap();
}

#[test]
fn trains_two_scales_then_samples_and_runs_every_application() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    write_test_image(&cwd.join("tiny.png"), 28, 40);
    // 28×40 shrunk to max size 32 is 23×32; min size 22 gives exactly two scales.
    const TINY_RUN: &str = "train tiny.png --preset quick --max-size 32 --min-size 22 --width 8 \
                            --iters 3 --samples 2 --seed 7 --out";
    let train_into = |out: &str| {
        let mut args: Vec<&str> = TINY_RUN.split_whitespace().collect();
        args.push(out);
        singan(&args, cwd)
    };
    let train = train_into("run");
    assert!(train.status.success(), "{}", stderr(&train));
    // The same seed and settings give the same model, every tensor bit for bit (the files'
    // bytes may differ: safetensors does not fix the order of its metadata).
    assert!(train_into("again").status.success());
    for file in ["scale_00.safetensors", "scale_01.safetensors"] {
        let first = load_state_dict(cwd.join("run").join(file)).unwrap();
        let second = load_state_dict(cwd.join("again").join(file)).unwrap();
        assert_eq!(
            first.keys().collect::<Vec<_>>(),
            second.keys().collect::<Vec<_>>()
        );
        for (name, t) in &first {
            assert_eq!(
                t.to_vec().unwrap(),
                second[name].to_vec().unwrap(),
                "{file}: {name}"
            );
        }
    }
    let stdout = String::from_utf8_lossy(&train.stdout);
    assert!(
        stdout.contains("2 scales"),
        "the settings are printed: {stdout}"
    );
    let run = cwd.join("run");
    for file in [
        "pyramid.safetensors",
        "scale_00.safetensors",
        "scale_01.safetensors",
        "images/scale_00/real.png",
        "images/scale_00/sample.png",
        "images/scale_01/reconstruction.png",
        "losses.csv",
        "losses.svg",
        "reconstruction.png",
        "samples/sample_00.png",
        "samples/sample_01.png",
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    assert!(!run.join("scale_02.safetensors").exists());
    let log = std::fs::read_to_string(run.join("losses.csv")).unwrap();
    assert_eq!(log.lines().count(), 1 + 2 * 3, "{log}");

    // Training into a folder that holds a model is refused, pointing at --resume.
    let again = singan(&["train", "tiny.png", "--out", "run"], cwd);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--resume"), "{}", stderr(&again));
    // Resuming a finished run trains nothing and succeeds.
    let resumed = singan(
        &[
            "train",
            "tiny.png",
            "--out",
            "run",
            "--resume",
            "--samples",
            "0",
        ],
        cwd,
    );
    assert!(resumed.status.success(), "{}", stderr(&resumed));

    let sample = singan(
        &[
            "sample",
            "--model",
            "run",
            "--n",
            "3",
            "--scale-h",
            "1.5",
            "--out",
            "wide",
        ],
        cwd,
    );
    assert!(sample.status.success(), "{}", stderr(&sample));
    for i in 0..3 {
        let png = cwd.join(format!("wide/sample_{i:02}.png"));
        assert_eq!(image_io::image_size(&png).unwrap(), (23, 48));
    }
    // Every application runs on the trained model and writes its output.
    write_mask(&cwd.join("tiny_mask.png"), 28, 40);
    for (line, outputs) in [
        ("reconstruct --model run --out rec.png", &["rec.png"][..]),
        ("sr --model run --factor 2 --out sr.png", &["sr.png"]),
        (
            "paint --model run --paint tiny.png --start-scale 1 --quantize --colors 3 --retrain \
             --retrain-iters 2 --out painted.png",
            &["painted.png"],
        ),
        (
            "harmonize --model run --image tiny.png --start-scale 1 --out harmonized.png",
            &["harmonized.png"],
        ),
        (
            "edit --model run --image tiny.png --start-scale 1 --out edited.png",
            &["edited.png", "edited_unmasked.png"],
        ),
        (
            "animate --model run --frames 3 --start-scale 0 --out walk.gif",
            &["walk.gif"],
        ),
    ] {
        let args: Vec<&str> = line.split_whitespace().collect();
        let out = singan(&args, cwd);
        assert!(out.status.success(), "{line}: {}", stderr(&out));
        for file in outputs {
            assert!(cwd.join(file).is_file(), "{line}: {file} missing");
        }
    }
    assert_eq!(image_io::image_size(cwd.join("sr.png")).unwrap(), (46, 64));
    assert_eq!(
        image_io::image_size(cwd.join("harmonized.png")).unwrap(),
        (23, 32)
    );
    let args = "paint --model run --paint tiny.png --start-scale 1 --retrain";
    let retrain_alone = singan(&args.split_whitespace().collect::<Vec<_>>(), cwd);
    assert_eq!(
        retrain_alone.status.code(),
        Some(2),
        "--retrain needs --quantize"
    );

    let beyond = singan(&["sample", "--model", "run", "--gen-start-scale", "5"], cwd);
    assert!(!beyond.status.success());
    assert!(
        stderr(&beyond).contains("--gen-start-scale"),
        "{}",
        stderr(&beyond)
    );
}

#[test]
fn a_corrupt_image_fails_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    std::fs::write(cwd.join("broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let out = singan(&["train", "broken.png", "--out", "run"], cwd);
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("broken.png"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"));
    assert!(
        !cwd.join("run").exists(),
        "nothing is written for a bad image"
    );

    write_test_image(&cwd.join("small.png"), 12, 16);
    let out = singan(&["train", "small.png", "--out", "run"], cwd);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("small.png"), "{}", stderr(&out));
}

/// Without the `cuda` feature a GPU is a clear error, raised before anything is written.
#[cfg(not(feature = "cuda"))]
#[test]
fn a_gpu_without_the_cuda_feature_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    write_test_image(&cwd.join("img.png"), 40, 52);
    let out = singan(
        &[
            "train", "img.png", "--out", "run", "--device", "cuda:0", "--tf32",
        ],
        cwd,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`cuda` feature"), "{}", stderr(&out));
    assert!(!cwd.join("run").exists(), "nothing is written");
}

#[test]
fn invalid_options_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["train", "x.png", "--preset", "fastest"][..],
        &["train", "x.png", "--iters", "0"],
        &["train", "x.png", "--device", "gpu"],
        &["sample", "--model", "m", "--scale-v", "-2"],
        &["animate", "--model", "m", "--alpha", "1.5"],
    ] {
        let out = singan(args, dir.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let missing = singan(&["reconstruct", "--model", "no_such_model"], dir.path());
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("no_such_model"));
    for command in [
        "train",
        "sample",
        "reconstruct",
        "sr",
        "paint",
        "harmonize",
        "edit",
        "animate",
    ] {
        let help = singan(&[command, "--help"], dir.path());
        assert!(help.status.success(), "{command} --help");
        assert!(String::from_utf8_lossy(&help.stdout).contains("Usage"));
    }
}

#[test]
fn a_killed_run_resumes_at_the_unfinished_scale() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    write_test_image(&cwd.join("tiny.png"), 28, 40);
    let args = [
        "train",
        "tiny.png",
        "--max-size",
        "32",
        "--min-size",
        "22",
        "--width",
        "8",
        "--iters",
        "30",
        "--samples",
        "0",
        "--out",
        "run",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_singan"))
        .args(args)
        .current_dir(cwd)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first_scale = cwd.join("run/scale_00.safetensors");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !first_scale.exists() && std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SIGKILL: no chance to clean up, as after a crash or an OOM kill.
    let _ = child.kill();
    child.wait().unwrap();
    assert!(first_scale.exists(), "scale 0 was saved before the kill");
    let interrupted = !cwd.join("run/scale_01.safetensors").exists();

    let mut resume_args = args.to_vec();
    resume_args.push("--resume");
    let resumed = singan(&resume_args, cwd);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    if interrupted {
        let stdout = String::from_utf8_lossy(&resumed.stdout);
        assert!(stdout.contains("resuming run at scale 2/2"), "{stdout}");
    }
    assert!(cwd.join("run/scale_01.safetensors").is_file());
    // The log holds every iteration of the resumed scale (scale 0's rows too, unless the kill
    // came between its model file and its log).
    let log = std::fs::read_to_string(cwd.join("run/losses.csv")).unwrap();
    let rows_of = |scale: &str| {
        log.lines()
            .filter(|l| l.split(',').next() == Some(scale))
            .count()
    };
    assert_eq!(rows_of("1"), 30, "{log}");
    assert!(rows_of("0") == 0 || rows_of("0") == 30, "{log}");
}
