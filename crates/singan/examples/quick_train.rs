//! Trains the quick preset on an image into a model folder and prints the time of every scale
//! and of the whole run (the number docs/PERF.md records).
//!
//! `cargo run --release -p tessera-singan --example quick_train -- IMAGE MODEL_DIR`
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;
use tessera_singan::{image_io, train, Event, TrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (image, dir) = match args.as_slice() {
        [image, dir] => (image, dir),
        _ => return Err("usage: quick_train IMAGE MODEL_DIR".into()),
    };
    let config = TrainConfig::quick();
    println!("{config:?}");
    let start = Instant::now();
    let mut scale_start = Instant::now();
    let model = train(
        &image_io::read_image(image)?,
        &config,
        Some(Path::new(dir)),
        &mut |e: Event<'_>| {
            match e {
                Event::ScaleStart {
                    scale,
                    width,
                    noise_amp,
                    ..
                } => {
                    scale_start = Instant::now();
                    println!("scale {scale}: width {width}, noise amp {noise_amp:.4}");
                }
                Event::ScaleDone { scale, model } => println!(
                    "scale {scale} {:?} done in {:.1} s",
                    model.shape(scale),
                    scale_start.elapsed().as_secs_f64()
                ),
                Event::Iteration(_) => {}
            }
            ControlFlow::Continue(())
        },
    )?;
    println!(
        "{} scales in {:.1} s",
        model.num_trained(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
