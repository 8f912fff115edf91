//! `cargo xtask <task>`: the project's own tasks.
//!
//! - `ci`: exactly what `.ci/run` runs: fetches NVRTC (CUDA 13) from PyPI so the kernel compile
//!   check runs (REQUIRE_NVRTC=1), then the format check, every target built and tested, the API
//!   docs built with warnings as errors, and the `cuda` feature built and its GPU tests run (they
//!   print SKIP without a GPU).
//! - `bench [--quick] [--rounds=N] [NAME...]`: for each bench `benches/benches/NAME.rs` (all of them
//!   when no name is given), the criterion bench, then the matching `benches/torch_NAME.py` timing the
//!   same work with PyTorch; the whole repeated N times (default 1), alternating, so that both sides
//!   see the same spells of a noisy host; then a table of ratios (ours / PyTorch) of the minimum over
//!   every sample of every round and of the median of the rounds' medians.
//! - `gpu-bundle`: builds, in release and with the `cuda` feature, the CUDA test binaries, the kernel
//!   benchmark, the `spade_norm` and `singan` criterion benches and the scripts that run them into `gpu-bundle/` (ignored by git), to be carried to a
//!   GPU machine that has no Rust toolchain and run there with `gpu-bundle/run.sh` (docs/GPU.md).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::SystemTime;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("gpu-bundle") => gpu_bundle(),
        Some("bench") => bench(
            args.iter().any(|a| a == "--quick"),
            match args.iter().find_map(|a| a.strip_prefix("--rounds=")) {
                None => 1,
                Some(n) => match n.parse::<usize>() {
                    Ok(n) if n >= 1 => n,
                    _ => {
                        eprintln!("xtask bench: --rounds takes a whole number ≥ 1, got {n:?}");
                        return ExitCode::from(2);
                    }
                },
            },
            &args[1..]
                .iter()
                .filter(|a| !a.starts_with("--"))
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ),
        _ => {
            eprintln!("usage: cargo xtask ci | cargo xtask bench [--quick] [--rounds=N] [NAME...] | cargo xtask gpu-bundle");
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
    let nvrtc = fetch_nvrtc()?;
    let has_rustfmt = Command::new("cargo")
        .args(["fmt", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_rustfmt {
        run("cargo", &["fmt", "--all", "--", "--check"])?;
    } else {
        eprintln!("xtask ci: SKIPPED the format check: rustfmt is not installed");
    }
    let path = match std::env::var("LD_LIBRARY_PATH") {
        Ok(p) if !p.is_empty() => format!("{}:{p}", nvrtc.display()),
        _ => nvrtc.display().to_string(),
    };
    // Inherited by every cargo (and test) process below: the kernels compile with this NVRTC and
    // a missing library fails the compile check instead of skipping it.
    std::env::set_var("LD_LIBRARY_PATH", path);
    std::env::set_var("REQUIRE_NVRTC", "1");
    // Every package and target: libraries, tests, examples, and the benches run once in test mode.
    run("cargo", &["test", "--workspace", "--all-targets"])?;
    run("cargo", &["test", "--workspace", "--doc"])?;
    // The API docs build without warnings (broken links, stray HTML) for users of single crates.
    std::env::set_var("RUSTDOCFLAGS", "-D warnings");
    run("cargo", &["doc", "--workspace", "--no-deps"])?;
    std::env::remove_var("RUSTDOCFLAGS");
    // The CUDA backend builds without a toolkit; its GPU tests skip visibly without a GPU.
    run(
        "cargo",
        &[
            "test",
            "-p",
            "tessera-tensor",
            "-p",
            "tessera-autograd",
            "-p",
            "tessera-tests",
            "--features",
            "tessera-tensor/cuda,tessera-autograd/cuda,tessera-tests/cuda",
            "--test",
            "cuda_backend",
            "--test",
            "cuda_tf32",
            "--test",
            "cuda_winograd",
            "--test",
            "cuda_grad",
            "--test",
            "cuda_training",
            // Without a GPU these tests pass after printing SKIP: show that line in the log.
            "--",
            "--nocapture",
        ],
    )
}

/// NVRTC from the PyPI wheel, pinned to CUDA 13.0 like cudarc's `cuda-13000` bindings.
const NVRTC_WHEEL: &str = "nvidia-cuda-nvrtc==13.0.88";

/// The folder holding `libnvrtc.so.13` (and its builtins), fetched once with pip into
/// `target/cuda-tools/` (ignored by git, reused by later runs).
fn fetch_nvrtc() -> Result<PathBuf, String> {
    let dir = root().join("target/cuda-tools/nvrtc-13.0.88");
    if dir.join("libnvrtc.so.13").exists() {
        return Ok(dir);
    }
    let wheels = dir.join("wheel");
    run(
        "python3",
        &[
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            &wheels.display().to_string(),
            NVRTC_WHEEL,
        ],
    )
    .map_err(|e| {
        format!("{e}: fetching {NVRTC_WHEEL} from PyPI failed (needed by the kernel compile check)")
    })?;
    // Only the two libraries are kept (the wheel also ships `.alt` variants and headers).
    let unpack = r#"
import glob, os, sys, zipfile
dest, wheels = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(wheels, "nvidia_cuda_nvrtc-*.whl"))
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if base == "libnvrtc.so.13" or base.startswith("libnvrtc-builtins.so"):
            with z.open(name) as src, open(os.path.join(dest, base + ".part"), "wb") as out:
                out.write(src.read())
            os.replace(os.path.join(dest, base + ".part"), os.path.join(dest, base))
"#;
    run(
        "python3",
        &[
            "-c",
            unpack,
            &dir.display().to_string(),
            &wheels.display().to_string(),
        ],
    )?;
    std::fs::remove_dir_all(&wheels).map_err(|e| format!("{}: {e}", wheels.display()))?;
    Ok(dir)
}

/// (min, median) time in ms per iteration of each criterion benchmark under target/criterion,
/// keyed by "group/id", from the raw samples. Both are reported: this machine is a VM whose
/// neighbours add long stalls, so the median drifts between runs while the minimum is stable.
fn criterion_times(since: SystemTime) -> Result<BTreeMap<String, (f64, f64)>, String> {
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
            } else if p.ends_with("new/sample.json") && modified_since(&p, since) {
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

/// Whether `path` was written at or after `since`: criterion leaves the results of every earlier
/// run on disk, and only the bench just run may count.
fn modified_since(path: &Path, since: SystemTime) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= since)
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

fn bench(quick: bool, rounds: usize, names: &[&str]) -> Result<(), String> {
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
    let python = std::env::var("TESSERA_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    // (min, median) of every round, by benchmark id.
    type Rounds = BTreeMap<String, Vec<(f64, f64)>>;
    let (mut ours, mut torch): (Rounds, Rounds) = Default::default();
    for round in 1..=rounds {
        for name in &names {
            if rounds > 1 {
                eprintln!("xtask bench: round {round} of {rounds}, {name}");
            }
            let mut args = vec!["bench", "-p", "tessera-benches", "--bench", name];
            if quick {
                args.extend(["--", "--quick"]);
            }
            let started = SystemTime::now();
            run("cargo", &args)?;
            for (id, t) in criterion_times(started)? {
                ours.entry(id).or_default().push(t);
            }
            let script = root().join(format!("benches/torch_{name}.py"));
            if script.exists() {
                for (id, t) in torch_times(&python, &script, quick)? {
                    torch.entry(id).or_default().push(t);
                }
            }
        }
    }
    // The minimum over every round's minimum, and the median of the rounds' medians.
    let summary = |v: &[(f64, f64)]| {
        let min = v.iter().map(|t| t.0).fold(f64::INFINITY, f64::min);
        let mut medians: Vec<f64> = v.iter().map(|t| t.1).collect();
        medians.sort_by(f64::total_cmp);
        (min, medians[medians.len() / 2])
    };
    println!("| benchmark | tessera min / median (ms) | PyTorch min / median (ms) | ratio of mins | ratio of medians |");
    println!("|---|---:|---:|---:|---:|");
    for (id, runs) in &torch {
        let (tmin, tmed) = summary(runs);
        match ours.get(id) {
            Some(o) => {
                let (omin, omed) = summary(o);
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

/// The test targets the GPU bundle runs: every test that exercises the CUDA backend.
const GPU_TESTS: [&str; 6] = [
    "cuda_backend",
    "cuda_tf32",
    "cuda_winograd",
    "cuda_grad",
    "cuda_training",
    "kernels_compile",
];

/// Paths of the executables cargo reports building (`--message-format=json` output), keyed by
/// target name. Read without a JSON dependency: cargo escapes nothing in plain Unix paths.
fn built_executables(json_lines: &str) -> Vec<(String, PathBuf)> {
    let field = |line: &str, key: &str| -> Option<String> {
        let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
        let len = line[start..].find('"')?;
        Some(line[start..start + len].to_string())
    };
    json_lines
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
        .filter_map(|l| {
            let exe = field(l, "executable")?;
            let name = field(&l[l.find("\"target\"")?..], "name")?;
            Some((name, PathBuf::from(exe)))
        })
        .collect()
}

fn cargo_json(args: &[&str]) -> Result<String, String> {
    eprintln!("+ cargo {}", args.join(" "));
    let out = Command::new("cargo")
        .args(args)
        .current_dir(root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`cargo {}` failed ({})",
            args.join(" "),
            out.status
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn copy_into(src: &Path, dir: &Path, name: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dst = dir.join(name);
    std::fs::copy(src, &dst).map_err(|e| format!("{} -> {}: {e}", src.display(), dst.display()))?;
    Ok(())
}

fn gpu_bundle() -> Result<(), String> {
    let features = "tessera-tensor/cuda,tessera-autograd/cuda,tessera-tests/cuda";
    let mut test_args = vec![
        "test",
        "--release",
        "--no-run",
        "--message-format=json",
        "-p",
        "tessera-tensor",
        "-p",
        "tessera-autograd",
        "-p",
        "tessera-cuda",
        "-p",
        "tessera-tests",
        "--features",
        features,
    ];
    for t in GPU_TESTS {
        test_args.extend(["--test", t]);
    }
    let tests = built_executables(&cargo_json(&test_args)?);
    let bench = built_executables(&cargo_json(&[
        "build",
        "--release",
        "--message-format=json",
        "-p",
        "tessera-cuda",
        "--example",
        "gpu_bench",
    ])?);
    let criterion = built_executables(&cargo_json(&[
        "bench",
        "--no-run",
        "--message-format=json",
        "-p",
        "tessera-benches",
        "--features",
        "cuda",
        "--bench",
        "spade_norm",
        "--bench",
        "singan",
    ])?);
    let bundle = root().join("gpu-bundle");
    if bundle.exists() {
        std::fs::remove_dir_all(&bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
    }
    for name in GPU_TESTS {
        let (_, exe) = tests
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| format!("cargo built no test binary `{name}`"))?;
        copy_into(exe, &bundle.join("tests"), name)?;
    }
    let (_, exe) = bench
        .iter()
        .find(|(n, _)| n == "gpu_bench")
        .ok_or("cargo built no gpu_bench example")?;
    copy_into(exe, &bundle.join("bin"), "gpu_bench")?;
    let (_, exe) = criterion
        .iter()
        .find(|(n, _)| n == "spade_norm")
        .ok_or("cargo built no spade_norm bench")?;
    copy_into(exe, &bundle.join("bin"), "spade_norm")?;
    let (_, exe) = criterion
        .iter()
        .find(|(n, _)| n == "singan")
        .ok_or("cargo built no singan bench")?;
    copy_into(exe, &bundle.join("bin"), "singan")?;
    for (src, name) in [
        ("crates/cuda/gpu/run.sh", "run.sh"),
        ("crates/cuda/gpu/report.py", "report.py"),
        ("benches/torch_gpu_kernels.py", "torch_gpu_kernels.py"),
        ("benches/torch_spade_norm.py", "torch_spade_norm.py"),
        ("benches/torch_singan.py", "torch_singan.py"),
        ("benches/torch_timing.py", "torch_timing.py"),
    ] {
        copy_into(&root().join(src), &bundle, name)?;
    }
    let mut total = 0u64;
    let mut stack = vec![bundle.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let e = e.map_err(|e| e.to_string())?;
            let meta = e.metadata().map_err(|e| e.to_string())?;
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                total += meta.len();
            }
        }
    }
    eprintln!(
        "gpu-bundle: {} ({:.1} MiB); on the GPU machine run gpu-bundle/run.sh (OUT=... for the report)",
        bundle.display(),
        total as f64 / (1 << 20) as f64
    );
    if total > 64 << 20 {
        return Err(format!(
            "the bundle is {total} bytes, over the 64 MiB a device run carries"
        ));
    }
    Ok(())
}
