//! `singan`: train a SinGAN on one image, then sample, reconstruct, super-resolve, paint,
//! harmonize, edit and animate with it. `singan --help` and `singan <command> --help` describe
//! every option.
mod cli;
mod error;
mod generate;
mod loss_log;
mod train;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Train(args) => train::run(&args),
        cli::Command::Sample(args) => generate::sample(&args),
        cli::Command::Reconstruct(args) => generate::reconstruct(&args),
        cli::Command::Sr(args) => generate::super_resolution(&args),
        cli::Command::Paint(args) => generate::paint(&args),
        cli::Command::Harmonize(args) => {
            generate::masked(&args, tessera_singan::apps::MaskedEditKind::Harmonization)
        }
        cli::Command::Edit(args) => {
            generate::masked(&args, tessera_singan::apps::MaskedEditKind::Editing)
        }
        cli::Command::Animate(args) => generate::animate(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Every message already carries its cause and the file concerned.
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
