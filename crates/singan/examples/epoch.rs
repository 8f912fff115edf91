//! Times training epochs of one scale (3 critic + 3 generator steps) and prints ms per epoch;
//! run under `/usr/bin/time -v` for the peak memory of training at that scale.
//!
//! `cargo run --release -p tessera-singan --example epoch -- WIDTH HEIGHT WIDTH_PX [EPOCHS]`
use std::time::Instant;
use tessera_singan::net::PAD;
use tessera_singan::{Critic, Generator, ScaleTrainer, TrainConfig};
use tessera_tensor::{Device, PadMode, Rng, Tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let [width, h, w] = [args[0], args[1], args[2]];
    let epochs = args.get(3).copied().unwrap_or(3);
    let mut rng = Rng::seed(0);
    let image = |rng: &mut Rng| Tensor::rand_uniform([1, 3, h, w], -1.0, 1.0, rng, Device::Cpu);
    let real = image(&mut rng)?;
    let mut padded = || -> Result<Tensor, tessera_tensor::Error> {
        image(&mut rng)?.pad2d([PAD; 4], PadMode::Zero)
    };
    let (noise, z_prev) = (padded()?, padded()?);
    let prevs = vec![padded()?, padded()?, padded()?];
    let z_opt = Tensor::zeros(z_prev.dims().to_vec(), Device::Cpu)?;
    let mut trainer = ScaleTrainer::new(
        Generator::new(width, &mut rng)?,
        Critic::new(width, &mut rng)?,
        &real,
        z_opt,
        z_prev,
        0.1,
        &TrainConfig::paper(),
    )?;
    for epoch in 0..epochs {
        let start = Instant::now();
        let losses = trainer.epoch(epoch, &noise, &prevs, &[0.3, 0.6, 0.9])?;
        println!(
            "epoch {epoch}: {:.1} ms (D {:.4}, G {:.4}, rec {:.4}, GP {:.4})",
            start.elapsed().as_secs_f64() * 1e3,
            losses.d,
            losses.g,
            losses.rec,
            losses.gp
        );
    }
    Ok(())
}
