//! Helpers shared by the cross-crate tests: loading PyTorch fixtures and comparing tensors.
//!
//! Fixtures are safetensors files under `tests/fixtures/`, written by
//! `tests/fixtures/make_fixtures.py` (see its docstring for how to regenerate them). Every
//! tensor in them is float32 and named `<case>.<name>`; a case name may itself contain dots,
//! the tensor name after the last dot does not.
//!
//! Comparisons use one relative error, [`rel_error`]:
//!
//! ```text
//! err(a, b) = max|a − b| / max(max|b|, 1e-6)
//! ```
//!
//! where `b` is the reference. A comparison passes when `err ≤ TOL` ([`TOL`] = 1e-4). Dividing
//! by the largest reference magnitude (not elementwise) keeps entries that are tiny because of
//! cancellation from dominating, while still catching any entry that is wrong at the scale of
//! the tensor.
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use safetensors::{Dtype, SafeTensors};
use tessera_autograd::Var;
use tessera_tensor::{Device, Tensor};

/// The relative tolerance of every golden comparison.
pub const TOL: f64 = 1e-4;

/// Smallest denominator of [`rel_error`], so all-zero references compare absolutely.
pub const FLOOR: f64 = 1e-6;

/// The directory holding the fixture files.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The tensors of one fixture file, by name.
pub struct Fixture {
    file: String,
    tensors: HashMap<String, Tensor>,
}

impl Fixture {
    /// Loads `tests/fixtures/<name>.safetensors` onto the CPU. Panics with the path on failure.
    pub fn load(name: &str) -> Fixture {
        let path = fixtures_dir().join(format!("{name}.safetensors"));
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
        let st = SafeTensors::deserialize(&bytes)
            .unwrap_or_else(|e| panic!("cannot parse fixture {}: {e}", path.display()));
        let mut tensors = HashMap::new();
        for (key, view) in st.tensors() {
            assert_eq!(
                view.dtype(),
                Dtype::F32,
                "{}: tensor {key} is not float32",
                path.display()
            );
            let data: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let t = Tensor::from_vec(data, view.shape().to_vec(), Device::Cpu)
                .unwrap_or_else(|e| panic!("{}: tensor {key}: {e}", path.display()));
            tensors.insert(key, t);
        }
        Fixture {
            file: name.to_string(),
            tensors,
        }
    }

    /// The tensor `<case>.<name>`; panics naming the fixture when it is missing.
    pub fn get(&self, case: &str, name: &str) -> Tensor {
        self.try_get(case, name)
            .unwrap_or_else(|| panic!("fixture {}: no tensor {case}.{name}", self.file))
    }

    pub fn try_get(&self, case: &str, name: &str) -> Option<Tensor> {
        self.tensors.get(&format!("{case}.{name}")).cloned()
    }

    /// `<case>.<name>` as a leaf that requires grad.
    pub fn param(&self, case: &str, name: &str) -> Var {
        Var::param(self.get(case, name))
    }

    /// `<case>.<name>` as a constant var.
    pub fn constant(&self, case: &str, name: &str) -> Var {
        Var::constant(self.get(case, name))
    }

    /// The values of `<case>.<name>` (a small tensor of whole numbers) as usizes.
    pub fn usizes(&self, case: &str, name: &str) -> Vec<usize> {
        self.floats(case, name)
            .into_iter()
            .map(|v| {
                assert!(
                    v >= 0.0 && v.fract() == 0.0,
                    "fixture {}: {case}.{name} holds {v}, not a whole number",
                    self.file
                );
                v as usize
            })
            .collect()
    }

    pub fn floats(&self, case: &str, name: &str) -> Vec<f32> {
        self.get(case, name)
            .to_vec()
            .expect("fixture tensor to_vec")
    }

    /// The case names (the key up to its last dot) that start with `prefix`, sorted.
    pub fn cases(&self, prefix: &str) -> Vec<String> {
        let set: BTreeSet<String> = self
            .tensors
            .keys()
            .filter(|k| k.starts_with(prefix))
            .filter_map(|k| k.rsplit_once('.').map(|(case, _)| case.to_string()))
            .collect();
        set.into_iter().collect()
    }
}

/// `max|got − want| / max(max|want|, FLOOR)`, computed in f64. Panics when shapes differ.
pub fn rel_error(got: &Tensor, want: &Tensor) -> f64 {
    rel_error_scaled(got, want, 0.0)
}

/// Like [`rel_error`] with the denominator at least `scale`: `max|got − want| /
/// max(max|want|, scale, FLOOR)`. For references that are zero in exact arithmetic (what is left
/// is rounding noise), `scale` is the magnitude of the quantity they belong to.
pub fn rel_error_scaled(got: &Tensor, want: &Tensor, scale: f64) -> f64 {
    assert_eq!(
        got.dims(),
        want.dims(),
        "shape mismatch: got {:?}, want {:?}",
        got.dims(),
        want.dims()
    );
    let a = got.to_vec().expect("to_vec");
    let b = want.to_vec().expect("to_vec");
    let mut diff = 0f64;
    let mut mag = 0f64;
    for (&x, &y) in a.iter().zip(&b) {
        let d = (x as f64 - y as f64).abs();
        // NaN anywhere fails the comparison.
        diff = if d.is_nan() {
            f64::INFINITY
        } else {
            diff.max(d)
        };
        mag = mag.max((y as f64).abs());
    }
    diff / mag.max(scale).max(FLOOR)
}

/// The largest |value| of a tensor.
pub fn max_abs(t: &Tensor) -> f64 {
    t.to_vec()
        .expect("to_vec")
        .iter()
        .fold(0f64, |m, &v| m.max((v as f64).abs()))
}

/// Collects comparisons and reports every failure at once (so one run shows all mismatches).
#[derive(Default)]
pub struct Report {
    checked: usize,
    failures: Vec<String>,
    /// The largest relative error of a passing or failing comparison, and what it was.
    worst: Option<(f64, String)>,
}

impl Report {
    pub fn new() -> Report {
        Report::default()
    }

    /// Compares `got` with the reference `want` within [`TOL`] relative error.
    pub fn check(&mut self, what: &str, got: &Tensor, want: &Tensor) {
        self.check_scaled(what, got, want, 0.0);
    }

    /// [`Report::check`] with a denominator of at least `scale` (see [`rel_error_scaled`]).
    pub fn check_scaled(&mut self, what: &str, got: &Tensor, want: &Tensor, scale: f64) {
        self.checked += 1;
        if got.dims() != want.dims() {
            self.failures.push(format!(
                "{what}: shape {:?}, expected {:?}",
                got.dims(),
                want.dims()
            ));
            return;
        }
        let err = rel_error_scaled(got, want, scale);
        if self
            .worst
            .as_ref()
            .is_none_or(|(w, _)| err > *w || err.is_nan())
        {
            self.worst = Some((err, what.to_string()));
        }
        // NaN fails too.
        if err.is_nan() || err > TOL {
            self.failures.push(format!(
                "{what}: relative error {err:.3e} > {TOL:e} (max|want| = {:.3e}, max|got| = {:.3e})",
                max_abs(want),
                max_abs(got)
            ));
        }
    }

    /// Records a failure that is not a tensor comparison (e.g. an op returning an error).
    pub fn fail(&mut self, what: &str, why: impl std::fmt::Display) {
        self.checked += 1;
        self.failures.push(format!("{what}: {why}"));
    }

    /// How many comparisons were made.
    pub fn checked(&self) -> usize {
        self.checked
    }

    /// The largest relative error seen so far and the comparison it came from.
    pub fn worst(&self) -> Option<(f64, &str)> {
        self.worst.as_ref().map(|(e, w)| (*e, w.as_str()))
    }

    /// Panics listing every failure; also fails when fewer than `min_checks` comparisons ran,
    /// so a fixture that lost its cases cannot pass silently.
    pub fn finish(self, min_checks: usize) {
        assert!(
            self.checked >= min_checks,
            "only {} comparisons ran, expected at least {min_checks}",
            self.checked
        );
        if let Some((err, what)) = self.worst() {
            // Shown with `--nocapture`: how much headroom the tolerance has.
            eprintln!(
                "{} comparisons, worst relative error {err:.2e} ({what})",
                self.checked
            );
        }
        if !self.failures.is_empty() {
            panic!(
                "{} of {} comparisons failed:\n  {}",
                self.failures.len(),
                self.checked,
                self.failures.join("\n  ")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v, [v.len()], Device::Cpu).unwrap()
    }

    #[test]
    fn rel_error_divides_by_the_largest_reference_magnitude() {
        let err = rel_error(&t(&[1.0, 2.0, -4.0]), &t(&[1.0, 2.5, -4.0]));
        assert!((err - 0.125).abs() < 1e-12);
    }

    #[test]
    fn rel_error_floors_the_denominator_and_flags_nan() {
        assert!((rel_error(&t(&[1e-7]), &t(&[0.0])) - 0.1).abs() < 1e-6);
        assert!(rel_error(&t(&[f32::NAN]), &t(&[0.0])).is_infinite());
        assert!((rel_error_scaled(&t(&[1e-3]), &t(&[0.0]), 10.0) - 1e-4).abs() < 1e-9);
    }

    #[test]
    fn report_collects_failures() {
        let mut r = Report::new();
        r.check("same", &t(&[1.0]), &t(&[1.0]));
        r.check("off", &t(&[1.0]), &t(&[2.0]));
        assert_eq!(r.checked(), 2);
        assert_eq!(r.failures.len(), 1);
    }
}
