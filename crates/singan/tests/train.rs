//! End to end on a tiny image: training a few scales for a few epochs into a model folder,
//! sampling, reconstructing, loading, resuming an interrupted run, and refusing bad model files.
use std::ops::ControlFlow;
use std::path::Path;
use tessera_nn::checkpoint::safetensors::{from_bytes, save_state_dict};
use tessera_nn::ModuleExt;
use tessera_singan::store::{self, scale_file_name};
use tessera_singan::{
    resume, train, Error, Event, PyramidConfig, SampleOptions, SinGan, TrainConfig,
};
use tessera_tensor::{Device, Rng, Tensor};

/// 3 scales (18×22, 21×26, 24×29), 8 channels wide, 4 epochs each.
fn tiny_config() -> TrainConfig {
    TrainConfig {
        pyramid: PyramidConfig {
            scale_factor_init: 0.75,
            min_size: 18,
            max_size: 29,
        },
        iterations: 4,
        lr_milestone: 3,
        width: 8,
        max_width: 8,
        seed: 11,
        ..TrainConfig::paper()
    }
}

/// A smooth colour pattern with some texture, in [−1, 1].
fn tiny_image() -> Tensor {
    let (h, w) = (24, 29);
    let mut v = Vec::with_capacity(3 * h * w);
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let t = ((x as f32 * 0.7 + c as f32).sin() * (y as f32 * 0.4).cos()) * 0.8;
                v.push(t);
            }
        }
    }
    Tensor::from_vec(v, [1, 3, h, w], Device::Cpu).unwrap()
}

fn quiet(_: Event<'_>) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

fn same(a: &Tensor, b: &Tensor) -> bool {
    a.dims() == b.dims() && a.to_vec().unwrap() == b.to_vec().unwrap()
}

#[test]
fn trains_samples_reconstructs_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let mut iterations = 0;
    let mut done = Vec::new();
    let model = train(
        &tiny_image(),
        &tiny_config(),
        Some(dir.path()),
        &mut |e: Event<'_>| {
            match e {
                Event::Iteration(p) => {
                    let l = p.losses;
                    assert!([l.d, l.g, l.rec, l.gp].iter().all(|v| v.is_finite()));
                    assert!(l.gp >= 0.0 && l.rec >= 0.0);
                    iterations += 1;
                }
                Event::ScaleDone { scale, model } => {
                    assert_eq!(model.num_trained(), scale + 1);
                    done.push(scale);
                }
                Event::ScaleStart { .. } => {}
            }
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert_eq!(model.pyramid.shapes, [[18, 22], [21, 26], [24, 29]]);
    assert_eq!((iterations, done), (12, vec![0, 1, 2]));
    assert!(model.is_complete());
    assert_eq!(model.scales[0].noise_amp, 1.0);
    assert!(model.scales[1].noise_amp > 0.0 && model.scales[2].noise_amp > 0.0);

    let rec = model.reconstruct().unwrap();
    assert_eq!(rec.dims(), &[1, 3, 24, 29]);
    assert!(same(&rec, &model.reconstruct().unwrap()), "deterministic");
    let mut rng = Rng::seed(3);
    let a = model.sample(&SampleOptions::default(), &mut rng).unwrap();
    let b = model.sample(&SampleOptions::default(), &mut rng).unwrap();
    assert_eq!(a.dims(), &[1, 3, 24, 29]);
    assert!(!same(&a, &b), "two samples differ");
    let wide = SampleOptions {
        scale_h: 1.5,
        scale_v: 0.8,
        ..SampleOptions::default()
    };
    // round(0.8·24) × round(1.5·29) = 19 × 44 (43.5 rounds to even).
    assert_eq!(
        model.sample(&wide, &mut rng).unwrap().dims(),
        &[1, 3, 19, 44]
    );
    let injected = model.injection_input(&model.reals[2], 1).unwrap();
    assert_eq!(injected.dims(), &[1, 3, 21, 26]);
    let edited = model
        .generate(1, &injected, &SampleOptions::default(), &mut rng)
        .unwrap();
    assert_eq!(edited.dims(), &[1, 3, 24, 29]);

    let loaded = store::load(dir.path()).unwrap();
    assert!(loaded.is_complete());
    assert_eq!(loaded.pyramid, model.pyramid);
    assert_eq!(loaded.config, model.config);
    assert!(same(&loaded.reconstruct().unwrap(), &rec));
    let (s1, s2) = (
        model
            .sample(&SampleOptions::default(), &mut Rng::seed(9))
            .unwrap(),
        loaded
            .sample(&SampleOptions::default(), &mut Rng::seed(9))
            .unwrap(),
    );
    assert!(same(&s1, &s2));
}

#[test]
fn resume_after_an_interruption_ends_where_the_uninterrupted_run_does() {
    let config = tiny_config();
    let whole = train(&tiny_image(), &config, None, &mut quiet).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let stopped = train(&tiny_image(), &config, Some(dir.path()), &mut |e: Event<
        '_,
    >| match e {
        // Killed in the middle of scale 1: scale 0 is saved, scale 1 is lost.
        Event::Iteration(p) if p.scale == 1 && p.iteration == 2 => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    assert!(matches!(
        stopped,
        Err(Error::Stopped {
            scale: 1,
            iteration: 2
        })
    ));
    assert!(dir.path().join(scale_file_name(0)).exists());
    assert!(!dir.path().join(scale_file_name(1)).exists());
    assert_eq!(store::load(dir.path()).unwrap().num_trained(), 1);
    // Training again into the same folder is refused; resuming continues at scale 1.
    assert!(matches!(
        train(&tiny_image(), &config, Some(dir.path()), &mut quiet),
        Err(Error::ModelFile { .. })
    ));
    let mut resumed_scales = Vec::new();
    let resumed = resume(dir.path(), &mut |e: Event<'_>| {
        if let Event::ScaleStart { scale, .. } = e {
            resumed_scales.push(scale);
        }
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(resumed_scales, [1, 2]);
    for (a, b) in whole.scales.iter().zip(&resumed.scales) {
        assert_eq!(a.noise_amp, b.noise_amp);
        for ((name, x), (_, y)) in a
            .generator
            .state_dict()
            .iter()
            .zip(b.generator.state_dict().iter())
        {
            assert!(same(x, y), "{name}");
        }
    }
    assert!(same(
        &whole.reconstruct().unwrap(),
        &resumed.reconstruct().unwrap()
    ));
}

/// Rewrites `file` in `dir` with one metadata entry changed.
fn tamper(dir: &Path, file: &str, key: &str, value: &str) {
    let path = dir.join(file);
    let (tensors, mut meta) = from_bytes(&std::fs::read(&path).unwrap(), &path).unwrap();
    meta.insert(key.into(), value.into());
    save_state_dict(&path, &tensors, Some(&meta)).unwrap();
}

fn load_error(dir: &Path) -> (std::path::PathBuf, String) {
    match store::load(dir) {
        Err(Error::ModelFile { path, why }) => (path, why),
        other => panic!(
            "expected a model-file error, got {:?}",
            other.map(|m| m.num_trained())
        ),
    }
}

#[test]
fn bad_model_files_give_errors_naming_the_file() {
    let config = TrainConfig {
        iterations: 1,
        ..tiny_config()
    };
    let model = train(&tiny_image(), &config, None, &mut quiet).unwrap();
    let fresh = || {
        let dir = tempfile::tempdir().unwrap();
        store::save(dir.path(), &model).unwrap();
        dir
    };
    assert!(store::load(fresh().path()).unwrap().is_complete());

    let dir = fresh();
    tamper(dir.path(), &scale_file_name(1), "format_version", "7");
    let (path, why) = load_error(dir.path());
    assert!(
        path.ends_with(scale_file_name(1)) && why.contains("version 7"),
        "{why}"
    );

    let dir = fresh();
    tamper(
        dir.path(),
        &scale_file_name(2),
        "shapes",
        "[[18,22],[21,26],[25,29]]",
    );
    let (path, why) = load_error(dir.path());
    assert!(
        path.ends_with(scale_file_name(2)) && why.contains("another model"),
        "{why}"
    );

    let dir = fresh();
    tamper(dir.path(), &scale_file_name(1), "width", "16");
    let (path, _) = load_error(dir.path());
    assert!(path.ends_with(scale_file_name(1)));

    // A generator tensor of the wrong shape.
    let dir = fresh();
    let path = dir.path().join(scale_file_name(0));
    let (mut tensors, meta) = from_bytes(&std::fs::read(&path).unwrap(), &path).unwrap();
    tensors.insert(
        "netG.tail.0.bias".into(),
        Tensor::zeros([4], Device::Cpu).unwrap(),
    );
    save_state_dict(&path, &tensors, Some(&meta)).unwrap();
    let (path, why) = load_error(dir.path());
    assert!(
        path.ends_with(scale_file_name(0)) && why.contains("tail.0.bias"),
        "{why}"
    );

    // Not a model file at all, and a gap in the scales.
    let dir = fresh();
    std::fs::write(dir.path().join(scale_file_name(1)), b"garbage").unwrap();
    assert!(matches!(
        store::load(dir.path()),
        Err(Error::Nn(_)) | Err(Error::ModelFile { .. })
    ));
    let dir = fresh();
    std::fs::remove_file(dir.path().join(scale_file_name(1))).unwrap();
    let (path, _) = load_error(dir.path());
    assert_eq!(path, dir.path());

    // An image smaller than the coarsest scale.
    let small = Tensor::zeros([1, 3, 10, 40], Device::Cpu).unwrap();
    assert!(matches!(
        SinGan::untrained(&small, &config),
        Err(Error::ImageTooSmall {
            height: 10,
            width: 40,
            ..
        })
    ));
}

#[test]
fn presets_follow_the_reference_and_the_demo_stays_small() {
    let p = TrainConfig::paper();
    assert_eq!((p.iterations, p.d_steps, p.g_steps), (2000, 3, 3));
    assert_eq!((p.lr_g, p.lr_d, p.betas), (5e-4, 5e-4, (0.5, 0.999)));
    assert_eq!((p.lr_milestone, p.lr_gamma), (1600, 0.1));
    assert_eq!((p.lambda_grad, p.alpha, p.noise_amp_init), (0.1, 10.0, 0.1));
    assert_eq!(p.pyramid, PyramidConfig::default());
    assert_eq!(
        (
            p.width_for_scale(3),
            p.width_for_scale(4),
            p.width_for_scale(8)
        ),
        (32, 64, 128)
    );
    assert!(p.fixed_z_star && !p.noise_padding);
    let q = TrainConfig::quick();
    assert!((0..10).all(|n| q.width_for_scale(n) == 32));
    // The bundled 427×640 photo: 5 scales from 26×37 to 65×96.
    let plan = tessera_singan::Pyramid::plan(427, 640, &q.pyramid).unwrap();
    assert_eq!(plan.shapes.first(), Some(&[26, 37]));
    assert_eq!(plan.shapes.last(), Some(&[65, 96]));
    assert_eq!(plan.shapes.len(), 5);
}

#[test]
fn z_star_redrawn_each_epoch_as_the_reference_code_does() {
    let paper = TrainConfig {
        iterations: 3,
        ..tiny_config()
    };
    let code = TrainConfig {
        fixed_z_star: false,
        ..paper.clone()
    };
    let fixed = train(&tiny_image(), &paper, None, &mut quiet).unwrap();
    let redrawn = train(&tiny_image(), &code, None, &mut quiet).unwrap();
    // Same seed: the paper's z* is the first draw, the code's the last of three more.
    assert!(!same(&fixed.z_star, &redrawn.z_star));
    let z = redrawn.z_star.to_vec().unwrap();
    assert!(z.iter().any(|v| *v != 0.0));
    assert_eq!(redrawn.reconstruct().unwrap().dims(), &[1, 3, 24, 29]);
}
