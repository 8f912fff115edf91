//! Writes the reconstruction G(z*) and random samples of a model folder as PNG files.
//!
//! `cargo run --release -p tessera-singan --example sample -- MODEL_DIR OUT_DIR [COUNT]`
use std::path::Path;
use tessera_singan::{image_io, store, SampleOptions};
use tessera_tensor::Rng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (model_dir, out) = match args.as_slice() {
        [m, o, ..] => (Path::new(m), Path::new(o)),
        _ => return Err("usage: sample MODEL_DIR OUT_DIR [COUNT]".into()),
    };
    let count: usize = args.get(2).map(|c| c.parse()).transpose()?.unwrap_or(4);
    let model = store::load(model_dir)?;
    std::fs::create_dir_all(out)?;
    image_io::write_png(&model.reconstruct()?, out.join("reconstruction.png"))?;
    image_io::write_png(&model.reals[model.num_trained() - 1], out.join("real.png"))?;
    let mut rng = Rng::seed(1);
    for i in 0..count {
        let sample = model.sample(&SampleOptions::default(), &mut rng)?;
        image_io::write_png(&sample, out.join(format!("sample_{i}.png")))?;
    }
    Ok(())
}
