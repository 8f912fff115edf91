//! `spade`: SPADE / GauGAN from the command line: make the procedural dataset, train, synthesize
//! photos from label maps, colour label maps.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod arch;
mod images;
mod plot;
mod synth;
mod train;

/// Everything that can stop a subcommand; each names the file or option at fault.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Data(#[from] tessera_spade::data::DataError),
    #[error(transparent)]
    Model(#[from] tessera_spade::Error),
    #[error(transparent)]
    Nn(#[from] tessera_nn::Error),
    #[error(transparent)]
    Gan(#[from] tessera_gan::Error),
    #[error(transparent)]
    Tensor(#[from] tessera_tensor::Error),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
}

impl From<tessera_autograd::Error> for CliError {
    fn from(e: tessera_autograd::Error) -> Self {
        CliError::Model(e.into())
    }
}

pub type Result<T> = std::result::Result<T, CliError>;

#[derive(Parser)]
#[command(
    name = "spade",
    version,
    about = "SPADE / GauGAN: photos from semantic label maps"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the procedural landscape dataset (images/, labels/, instances/, classes.txt).
    GenData(GenDataArgs),
    /// Train a SPADE model on a dataset folder, with sample grids, loss plots and checkpoints.
    Train(Box<train::TrainArgs>),
    /// Synthesize a photo from a label map with a trained or imported generator.
    Synth(Box<synth::SynthArgs>),
    /// Colour a label map with the class palette.
    Colorize(ColorizeArgs),
}

#[derive(clap::Args)]
struct GenDataArgs {
    /// Output folder (created; existing files of the same names are replaced).
    #[arg(long)]
    out: PathBuf,
    /// Number of scenes.
    #[arg(long, default_value_t = 64)]
    count: usize,
    /// Scene size: N for N×N, or WxH.
    #[arg(long, default_value = "128", value_parser = parse_size)]
    size: (u32, u32),
    /// Random seed: the same seed writes the same bytes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Do not write instances/.
    #[arg(long)]
    no_instances: bool,
}

#[derive(clap::Args)]
struct ColorizeArgs {
    /// Label map (8-bit grey or palette PNG of class ids).
    label: PathBuf,
    /// Output PNG.
    #[arg(long)]
    out: PathBuf,
}

/// `N` or `WxH`, each side 1..=16384.
fn parse_size(s: &str) -> std::result::Result<(u32, u32), String> {
    let side = |t: &str| match t.trim().parse::<u32>() {
        Ok(v) if (1..=tessera_spade::data::MAX_SIDE).contains(&v) => Ok(v),
        _ => Err(format!(
            "{t:?} is not a side length in 1..={}",
            tessera_spade::data::MAX_SIDE
        )),
    };
    match s.split_once(['x', 'X']) {
        Some((w, h)) => Ok((side(w)?, side(h)?)),
        None => side(s).map(|v| (v, v)),
    }
}

fn gen_data(args: &GenDataArgs) -> Result<()> {
    use tessera_spade::data::procedural::{write_dataset, ProceduralOptions};
    let options = ProceduralOptions {
        count: args.count,
        width: args.size.0,
        height: args.size.1,
        seed: args.seed,
        instances: !args.no_instances,
    };
    let bar = images::progress_bar(args.count as u64, "scenes");
    write_dataset(&args.out, &options, |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    println!(
        "wrote {} scenes of {}×{} to {} ({} classes, --label-nc {})",
        args.count,
        args.size.0,
        args.size.1,
        args.out.display(),
        tessera_spade::data::procedural::NUM_CLASSES,
        tessera_spade::data::procedural::NUM_CLASSES
    );
    Ok(())
}

fn colorize(args: &ColorizeArgs) -> Result<()> {
    let map = tessera_spade::data::read_id_map(&args.label)?;
    let rgb = tessera_spade::data::palette::colorize(&map.ids);
    images::write_rgb(&args.out, &rgb, map.width, map.height)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::GenData(a) => gen_data(a),
        Command::Train(a) => train::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Colorize(a) => colorize(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
