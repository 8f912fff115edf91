//! `cargo xtask <task>`: the project's own tasks.
//!
//! - `ci`: exactly what `.ci/run` runs (format check, every target built and tested).
//! - `bench [--quick] [NAME...]`: the criterion benches `benches/benches/NAME.rs` (all of them when no
//!   name is given), then each matching `benches/torch_NAME.py` timing the same work with PyTorch in the
//!   same run, then a table of ratios (ours / PyTorch).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(
            args.iter().any(|a| a == "--quick"),
            &args[1..]
                .iter()
                .filter(|a| !a.starts_with("--"))
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ),
        _ => {
            eprintln!("usage: cargo xtask ci | cargo xtask bench [--quick] [NAME...]");
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

/// (min, median) time in ms per iteration of each criterion benchmark under target/criterion,
/// keyed by "group/id", from the raw samples. Both are reported: this machine is a VM whose
/// neighbours add long stalls, so the median drifts between runs while the minimum is stable.
fn criterion_times() -> Result<BTreeMap<String, (f64, f64)>, String> {
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
            } else if p.ends_with("new/sample.json") {
                let text =
                    std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                let id = p
                    .parent()
                    .and_then(Path::parent)
                    .and_then(|d| d.strip_prefix(&base).ok())
                    .map(|d| d.display().to_string());
                let (iters, times) = (number_array(&text, "iters"), number_array(&text, "times"));
                let mut per_iter: Vec<f64> =
                    iters.iter().zip(&times).map(|(n, t)| t / n / 1e6).collect();
                per_iter.sort_by(f64::total_cmp);
                if let (Some(id), Some(&min)) = (id, per_iter.first()) {
                    out.insert(id, (min, per_iter[per_iter.len() / 2]));
                }
            }
        }
    }
    Ok(out)
}

/// The numbers of the JSON array under `key`, read without a JSON dependency.
fn number_array(json: &str, key: &str) -> Vec<f64> {
    let Some(start) = json.find(&format!("\"{key}\"")) else {
        return Vec::new();
    };
    let rest = &json[start..];
    let (Some(open), Some(close)) = (rest.find('['), rest.find(']')) else {
        return Vec::new();
    };
    rest[open + 1..close]
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

/// The bench targets: `benches/benches/NAME.rs`, sorted.
fn bench_names() -> Result<Vec<String>, String> {
    let dir = root().join("benches/benches");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".rs")?.to_string())
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Lines "id min_ms median_ms" printed by the PyTorch script `script`.
fn torch_times(
    python: &str,
    script: &Path,
    quick: bool,
) -> Result<BTreeMap<String, (f64, f64)>, String> {
    let mut cmd = Command::new(python);
    cmd.arg(script);
    if quick {
        cmd.arg("--quick");
    }
    eprintln!("+ {python} {}", script.display());
    let out = cmd
        .output()
        .map_err(|e| format!("{python}: {e} (set TESSERA_TORCH_PYTHON to a python with torch)"))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((
                it.next()?.to_string(),
                (it.next()?.parse().ok()?, it.next()?.parse().ok()?),
            ))
        })
        .collect())
}

fn bench(quick: bool, names: &[&str]) -> Result<(), String> {
    let all = bench_names()?;
    let names: Vec<&str> = if names.is_empty() {
        all.iter().map(String::as_str).collect()
    } else {
        if let Some(unknown) = names.iter().find(|n| !all.iter().any(|a| a == *n)) {
            return Err(format!(
                "no bench benches/benches/{unknown}.rs (have: {})",
                all.join(", ")
            ));
        }
        names.to_vec()
    };
    let mut args = vec!["bench", "-p", "tessera-benches"];
    for name in &names {
        args.extend(["--bench", name]);
    }
    if quick {
        args.extend(["--", "--quick"]);
    }
    run("cargo", &args)?;
    let ours = criterion_times()?;
    let python = std::env::var("TESSERA_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut torch = BTreeMap::new();
    for name in &names {
        let script = root().join(format!("benches/torch_{name}.py"));
        if script.exists() {
            torch.extend(torch_times(&python, &script, quick)?);
        }
    }
    println!("| benchmark | tessera min / median (ms) | PyTorch min / median (ms) | ratio of mins | ratio of medians |");
    println!("|---|---:|---:|---:|---:|");
    for (id, (tmin, tmed)) in &torch {
        match ours.get(id) {
            Some((omin, omed)) => {
                println!(
                    "| {id} | {omin:.3} / {omed:.3} | {tmin:.3} / {tmed:.3} | {:.2} | {:.2} |",
                    omin / tmin,
                    omed / tmed
                )
            }
            None => println!("| {id} | (not run) | {tmin:.3} / {tmed:.3} | | |"),
        }
    }
    Ok(())
}
