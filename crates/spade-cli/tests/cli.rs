//! The `spade` binary end to end on the procedural dataset: gen-data, a tiny training run, resume
//! (exact, and after Ctrl-C), synth, colorize, and the errors a user meets.
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tessera_nn::checkpoint::safetensors::load_state_dict;

fn spade(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_spade"))
        .args(args)
        .output()
        .expect("run spade");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "spade {args:?} panicked:\n{stderr}"
    );
    out
}

fn ok(args: &[&str]) -> String {
    let out = spade(args);
    assert!(
        out.status.success(),
        "spade {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command expected to fail with `code`; returns its stderr.
fn fails(args: &[&str], code: i32) -> String {
    let out = spade(args);
    assert_eq!(out.status.code(), Some(code), "spade {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn gen_data(dir: &Path, count: &str) {
    ok(&[
        "gen-data",
        "--out",
        s(dir),
        "--count",
        count,
        "--size",
        "32",
        "--seed",
        "3",
    ]);
}

/// A tiny model: 32², ngf = ndf = 8, SPADE hidden 16, with instance edges from instances/.
const TINY: [&str; 14] = [
    "--crop-size",
    "32",
    "--ngf",
    "8",
    "--ndf",
    "8",
    "--spade-hidden",
    "16",
    "--batch-size",
    "2",
    "--no-instance",
    "false",
    "--save-every",
    "2",
];

fn train(data: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["train", "--dataroot", s(data), "--out", s(out)];
    args.extend(TINY);
    args.extend(extra);
    ok(&args)
}

fn png_size(path: &Path) -> (u32, u32) {
    image::image_dimensions(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn gen_data_train_synth_colorize() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = (dir.path().join("data"), dir.path().join("run"));
    gen_data(&data, "4");
    for sub in [
        "images/00003.png",
        "labels/00003.png",
        "instances/00003.png",
        "classes.txt",
    ] {
        assert!(data.join(sub).is_file(), "{sub}");
    }
    let stdout = train(&data, &run, &["--max-steps", "3", "--sample-every", "1"]);
    assert!(stdout.contains("trained to step 3"), "{stdout}");
    for f in [
        "checkpoint.bin",
        "latest_net_G.safetensors",
        "latest_net_D.safetensors",
        "losses.csv",
        "losses.svg",
        "opt.txt",
    ] {
        assert!(run.join(f).is_file(), "{f}");
    }
    // Grid: 2 samples × (label | synthesis | real) of 32².
    assert_eq!(png_size(&run.join("samples/step_0000003.png")), (96, 64));
    let csv = std::fs::read_to_string(run.join("losses.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");

    let label = data.join("labels/00000.png");
    let (a, b) = (dir.path().join("a.png"), dir.path().join("b.png"));
    ok(&[
        "synth",
        s(&label),
        "--checkpoint",
        s(&run.join("checkpoint.bin")),
        "--out",
        s(&a),
    ]);
    let weights = run.join("latest_net_G.safetensors");
    ok(&["synth", s(&label), "--weights", s(&weights), "--out", s(&b)]);
    assert_eq!(png_size(&a), (32, 32));
    // The weights file carries the model options, and both ways give the same eval output.
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // Named explicitly, the default device gives the same output; a GPU without the feature is
    // a clear error.
    let d = dir.path().join("d.png");
    let on = |device: &str, out: &Path| {
        vec![
            "synth",
            s(&label),
            "--weights",
            s(&weights),
            "--out",
            s(out),
            "--device",
            device,
        ]
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>()
    };
    let args = on("cpu", &d);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&d).unwrap());
    // --tf32 concerns GPU convolutions only: on the CPU the output is the same.
    let t = dir.path().join("t.png");
    let mut args = on("cpu", &t);
    args.push("--tf32".into());
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&t).unwrap());
    if cfg!(not(feature = "cuda")) {
        let args = on("cuda", &dir.path().join("e.png"));
        let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>(), 1);
        assert!(err.contains("`cuda` feature"), "{err}");
    }
    // As an imported generator would be run: a preset and the architecture flags.
    let c = dir.path().join("c.png");
    ok(&[
        "synth",
        s(&label),
        "--weights",
        s(&weights),
        "--out",
        s(&c),
        "--config",
        "small",
        "--crop-size",
        "32",
        "--ngf",
        "8",
        "--spade-hidden",
        "16",
        "--no-instance",
        "false",
    ]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());
    // A folder of label maps (with same-named instance maps) gives a folder of photos.
    let photos = dir.path().join("photos");
    ok(&[
        "synth",
        s(&data.join("labels")),
        "--weights",
        s(&weights),
        "--out",
        s(&photos),
        "--instance",
        s(&data.join("instances")),
    ]);
    assert_eq!(std::fs::read_dir(&photos).unwrap().count(), 4);
    assert_eq!(png_size(&photos.join("00003.png")), (32, 32));
    // A preset that does not match the weights names the mismatched tensors.
    let err = fails(
        &[
            "synth",
            s(&label),
            "--weights",
            s(&weights),
            "--out",
            s(&c),
            "--config",
            "small",
        ],
        1,
    );
    assert!(err.contains("head_0"), "{err}");

    let coloured = dir.path().join("colours.png");
    ok(&["colorize", s(&label), "--out", s(&coloured)]);
    let img = image::open(&coloured).unwrap().to_rgb8();
    let ids = image::open(&label).unwrap().to_luma8();
    for (px, id) in img.pixels().zip(ids.pixels()) {
        assert_eq!(
            px.0,
            tessera_spade::data::palette::class_colour(u32::from(id[0]))
        );
    }
}

#[test]
fn resume_continues_exactly_where_an_uninterrupted_run_goes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    gen_data(&data, "4");
    let (straight, resumed) = (dir.path().join("straight"), dir.path().join("resumed"));
    train(&data, &straight, &["--max-steps", "4"]);
    train(&data, &resumed, &["--max-steps", "2"]);
    let err = fails(
        &[
            "train",
            "--dataroot",
            s(&data),
            "--out",
            s(&resumed),
            "--max-steps",
            "4",
        ],
        1,
    );
    assert!(err.contains("--resume"), "{err}");
    let stdout = train(&data, &resumed, &["--max-steps", "4", "--resume"]);
    assert!(stdout.contains("trained to step 4"), "{stdout}");
    // Same data order, same optimizer state: the same training state, weights and loss log.
    let bytes = |d: &Path| std::fs::read(d.join("checkpoint.bin")).unwrap();
    assert!(bytes(&straight) == bytes(&resumed));
    let weights = |d: &Path| {
        let dict = load_state_dict(d.join("latest_net_G.safetensors")).unwrap();
        let values: Vec<_> = dict
            .iter()
            .map(|(k, t)| (k.clone(), t.to_vec().unwrap()))
            .collect();
        values
    };
    assert_eq!(weights(&straight), weights(&resumed));
    let csv = |d: &Path| std::fs::read_to_string(d.join("losses.csv")).unwrap();
    assert_eq!(csv(&straight), csv(&resumed));
}

#[test]
fn ctrl_c_writes_a_checkpoint_and_resume_continues() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = (dir.path().join("data"), dir.path().join("run"));
    gen_data(&data, "4");
    let mut args = vec!["train", "--dataroot", s(&data), "--out", s(&run)];
    // Checkpoints only at the interrupt.
    args.extend(&TINY[..TINY.len() - 2]);
    args.extend(["--save-every", "100000"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_spade"))
        .args(&args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // opt.txt appears once the handler is installed.
    let start = Instant::now();
    while !run.join("opt.txt").exists() {
        assert!(child.try_wait().unwrap().is_none(), "training exited early");
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "training never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let csv = std::fs::read_to_string(run.join("losses.csv")).unwrap();
    let done = csv.lines().count() as u64 - 1;
    assert!(done >= 1, "{csv}");
    let target = (done + 2).to_string();
    let stdout = train(&data, &run, &["--max-steps", &target, "--resume"]);
    assert!(
        stdout.contains(&format!("trained to step {target}")),
        "{stdout}"
    );
}

#[test]
fn vae_model_draws_several_styles() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = (dir.path().join("data"), dir.path().join("run"));
    ok(&[
        "gen-data",
        "--out",
        s(&data),
        "--count",
        "1",
        "--size",
        "128",
    ]);
    // The encoder needs 128² or more; narrow widths keep this cheap.
    ok(&[
        "train",
        "--dataroot",
        s(&data),
        "--out",
        s(&run),
        "--crop-size",
        "128",
        "--ngf",
        "2",
        "--ndf",
        "2",
        "--spade-hidden",
        "4",
        "--z-dim",
        "4",
        "--use-vae",
        "--batch-size",
        "1",
        "--max-steps",
        "1",
    ]);
    assert!(run.join("latest_net_E.safetensors").is_file());
    let out = dir.path().join("v.png");
    let label = data.join("labels/00000.png");
    let photo = data.join("images/00000.png");
    let ckpt = run.join("checkpoint.bin");
    ok(&[
        "synth",
        s(&label),
        "--checkpoint",
        s(&ckpt),
        "--out",
        s(&out),
        "--style",
        s(&photo),
        "--samples",
        "2",
    ]);
    let (a, b) = (dir.path().join("v_0.png"), dir.path().join("v_1.png"));
    assert_eq!(png_size(&a), (128, 128));
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn bad_data_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = (dir.path().join("data"), dir.path().join("run"));
    gen_data(&data, "2");
    let train_args = |extra: &'static str| {
        vec![
            "train".to_string(),
            "--dataroot".into(),
            s(&data).into(),
            "--out".into(),
            s(&run).into(),
            "--crop-size".into(),
            "32".into(),
            "--ngf".into(),
            "8".into(),
            "--ndf".into(),
            "8".into(),
            "--max-steps".into(),
            "1".into(),
            "--label-nc".into(),
            extra.into(),
        ]
    };
    let run_train = |extra| {
        let args = train_args(extra);
        fails(&args.iter().map(String::as_str).collect::<Vec<_>>(), 1)
    };
    // The procedural classes need 13 channels.
    let err = run_train("5");
    assert!(
        err.contains("labels/0000") && err.contains("outside 0..5"),
        "{err}"
    );
    std::fs::write(data.join("images/00001.png"), b"\x89PNG\r\n\x1a\ngarbage").unwrap();
    std::fs::write(data.join("images/00000.png"), b"\x89PNG\r\n\x1a\ngarbage").unwrap();
    let err = run_train("13");
    assert!(
        err.contains("images/0000") && err.contains("corrupt"),
        "{err}"
    );
    std::fs::remove_file(data.join("labels/00001.png")).unwrap();
    let err = run_train("13");
    assert!(
        err.contains("images/00001.png") && err.contains("label map"),
        "{err}"
    );
}

#[test]
fn invalid_values_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = s(dir.path());
    let err = fails(&["gen-data", "--out", p, "--size", "0"], 2);
    assert!(err.contains("--size"), "{err}");
    let err = fails(
        &["train", "--dataroot", p, "--out", p, "--norm", "group"],
        2,
    );
    assert!(err.contains("--norm"), "{err}");
    let err = fails(
        &["train", "--dataroot", p, "--out", p, "--batch-size", "0"],
        2,
    );
    assert!(err.contains("--batch-size"), "{err}");
    let err = fails(
        &["train", "--dataroot", p, "--out", p, "--device", "gpu"],
        2,
    );
    assert!(err.contains("--device"), "{err}");
    let err = fails(
        &["synth", p, "--out", p, "--weights", p, "--device", "cuda:x"],
        2,
    );
    assert!(err.contains("--device"), "{err}");
    let err = fails(
        &[
            "train",
            "--dataroot",
            p,
            "--out",
            p,
            "--preprocess-mode",
            "zoom",
        ],
        2,
    );
    assert!(err.contains("resize_and_crop"), "{err}");
    let data = dir.path().join("data");
    gen_data(&data, "2");
    let run = dir.path().join("run");
    let err = fails(
        &[
            "train",
            "--dataroot",
            s(&data),
            "--out",
            s(&run),
            "--crop-size",
            "40",
            "--ngf",
            "4",
        ],
        1,
    );
    assert!(
        err.contains("40×40") && err.contains("32×32") && err.contains("multiple of 32"),
        "{err}"
    );
    let vgg = dir.path().join("no-vgg.safetensors");
    let err = fails(
        &[
            "train",
            "--dataroot",
            s(&data),
            "--out",
            s(&run),
            "--vgg-weights",
            s(&vgg),
        ],
        1,
    );
    assert!(err.contains("no-vgg.safetensors"), "{err}");
    let err = fails(&["train", "--dataroot", p, "--out", p, "--ngf", "0"], 1);
    assert!(err.contains("ngf"), "{err}");
    let err = fails(
        &[
            "synth",
            "x.png",
            "--weights",
            "w.safetensors",
            "--config",
            "nope",
            "--out",
            p,
        ],
        1,
    );
    assert!(err.contains("nope"), "{err}");
    let err = fails(&["synth", "missing.png", "--out", p], 2);
    assert!(
        err.contains("--weights") || err.contains("--checkpoint"),
        "{err}"
    );
    for cmd in ["gen-data", "train", "synth", "colorize"] {
        assert!(ok(&[cmd, "--help"]).contains("Usage"));
    }
}

/// Without the `cuda` feature a GPU is a clear error, before any training step.
#[cfg(not(feature = "cuda"))]
#[test]
fn a_gpu_without_the_cuda_feature_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    gen_data(&data, "2");
    let run = dir.path().join("run");
    let mut args = vec![
        "train",
        "--dataroot",
        s(&data),
        "--out",
        s(&run),
        "--device",
        "cuda",
    ];
    args.extend(TINY);
    let err = fails(&args, 1);
    assert!(err.contains("`cuda` feature"), "{err}");
    assert!(
        !run.join("checkpoint.bin").exists(),
        "no checkpoint is written"
    );
}
