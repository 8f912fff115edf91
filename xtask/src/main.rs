//! `cargo xtask <task>`: the project's own tasks.
//!
//! - `ci`: exactly what `.ci/run` runs (format check, every target built and tested).
//! - `bench [--quick]`: the criterion benches, then `benches/torch_bench.py` timing the same work
//!   with PyTorch in the same run, then a table of ratios (ours / PyTorch).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(args.iter().any(|a| a == "--quick")),
        _ => {
            eprintln!("usage: cargo xtask ci | cargo xtask bench [--quick]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    eprintln!("+ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
        .status()
        .map_err(|e| format!("{program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

fn ci() -> Result<(), String> {
    let has_rustfmt = Command::new("cargo")
        .args(["fmt", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_rustfmt {
        run("cargo", &["fmt", "--all", "--", "--check"])?;
    } else {
        eprintln!("xtask ci: SKIPPED the format check: rustfmt is not installed");
    }
    // Every package and target: libraries, tests, examples, and the benches run once in test mode.
    run("cargo", &["test", "--workspace", "--all-targets"])?;
    run("cargo", &["test", "--workspace", "--doc"])
}

/// Mean time in ms of each criterion benchmark under target/criterion, keyed by "group/id".
fn criterion_means() -> Result<BTreeMap<String, f64>, String> {
    let mut out = BTreeMap::new();
    let base = root().join("target/criterion");
    let mut stack = vec![base.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.ends_with("new/estimates.json") {
                let text =
                    std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                let id = p
                    .parent()
                    .and_then(Path::parent)
                    .and_then(|d| d.strip_prefix(&base).ok())
                    .map(|d| d.display().to_string());
                if let (Some(id), Some(ns)) = (id, mean_point_estimate(&text)) {
                    out.insert(id, ns / 1e6);
                }
            }
        }
    }
    Ok(out)
}

/// The `mean.point_estimate` of a criterion estimates.json, read without a JSON dependency.
fn mean_point_estimate(json: &str) -> Option<f64> {
    let after = &json[json.find("\"mean\"")?..];
    let after = &after[after.find("\"point_estimate\"")? + "\"point_estimate\"".len()..];
    let num: String = after
        .trim_start_matches([' ', ':'])
        .chars()
        .take_while(|c| c.is_ascii_digit() || ".eE+-".contains(*c))
        .collect();
    num.parse().ok()
}

/// Lines "id ms" printed by the PyTorch script.
fn torch_times(python: &str, quick: bool) -> Result<BTreeMap<String, f64>, String> {
    let mut cmd = Command::new(python);
    cmd.arg(root().join("benches/torch_bench.py"));
    if quick {
        cmd.arg("--quick");
    }
    eprintln!("+ {python} benches/torch_bench.py");
    let out = cmd
        .output()
        .map_err(|e| format!("{python}: {e} (set TESSERA_TORCH_PYTHON to a python with torch)"))?;
    if !out.status.success() {
        return Err(format!(
            "torch_bench.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect())
}

fn bench(quick: bool) -> Result<(), String> {
    let mut args = vec!["bench", "-p", "tessera-benches", "--bench", "ops"];
    if quick {
        args.extend(["--", "--quick"]);
    }
    run("cargo", &args)?;
    let ours = criterion_means()?;
    let python = std::env::var("TESSERA_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let torch = torch_times(&python, quick)?;
    println!("| benchmark | tessera (ms) | PyTorch (ms) | ratio tessera/PyTorch |");
    println!("|---|---:|---:|---:|");
    for (id, t) in &torch {
        match ours.get(id) {
            Some(o) => println!("| {id} | {o:.3} | {t:.3} | {:.2} |", o / t),
            None => println!("| {id} | (not run) | {t:.3} | |"),
        }
    }
    Ok(())
}
