//! Helpers shared by the tensor op tests: data, index arithmetic for naive references, and
//! comparisons.
#![allow(dead_code)]
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tessera_tensor::{Device, Rng, Tensor};

pub const CPU: Device = Device::Cpu;

pub fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

pub fn numel(dims: &[usize]) -> usize {
    dims.iter().product()
}

pub fn tensor(v: Vec<f32>, dims: &[usize]) -> Tensor {
    Tensor::from_vec(v, dims.to_vec(), CPU).unwrap()
}

pub fn normal(dims: &[usize], seed: u64) -> Tensor {
    tensor(Rng::seed(seed).normal_vec(numel(dims), 0.0, 1.0), dims)
}

/// CUDA device 0 when a driver and a device are present; otherwise prints why `suite` is
/// skipped (a visible SKIP line in CI's log) and returns `None`.
#[cfg(feature = "cuda")]
pub fn cuda_device(suite: &str) -> Option<Device> {
    if !tessera_cuda::driver_present() {
        eprintln!("SKIP: libcuda not found; {suite} not run");
        return None;
    }
    if tessera_cuda::device_count() == 0 {
        eprintln!("SKIP: no CUDA device; {suite} not run");
        return None;
    }
    Some(Device::Cuda(0))
}

pub fn uniform(dims: &[usize], lo: f32, hi: f32, seed: u64) -> Tensor {
    tensor(Rng::seed(seed).uniform_vec(numel(dims), lo, hi), dims)
}

pub fn host(t: &Tensor) -> Vec<f32> {
    t.to_vec().unwrap()
}

/// Multi-index of flat row-major index `i`.
pub fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for a in (0..dims.len()).rev() {
        idx[a] = i % dims[a];
        i /= dims[a];
    }
    idx
}

pub fn ravel(idx: &[usize], dims: &[usize]) -> usize {
    idx.iter().zip(dims).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// Flat index into an operand of shape `dims` broadcast to an output whose multi-index is
/// `out_idx` (trailing alignment; size-1 dims read index 0).
pub fn broadcast_index(out_idx: &[usize], dims: &[usize]) -> usize {
    let lead = out_idx.len() - dims.len();
    let idx: Vec<usize> = dims
        .iter()
        .enumerate()
        .map(|(a, &d)| if d == 1 { 0 } else { out_idx[lead + a] })
        .collect();
    ravel(&idx, dims)
}

/// Shape that broadcasts to `out`: dims whose bit is set become 1, the leading `drop` removed.
pub fn broadcast_operand(out: &[usize], ones: u32, drop: usize) -> Vec<usize> {
    out.iter()
        .enumerate()
        .skip(drop.min(out.len()))
        .map(|(i, &d)| if ones >> i & 1 == 1 { 1 } else { d })
        .collect()
}

pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::seed(seed);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        p.swap(i, j);
    }
    p
}

/// `|got − want| ≤ atol + rtol·|want|` elementwise, as a proptest result.
pub fn close(
    what: &str,
    got: &[f32],
    want: &[f64],
    rtol: f64,
    atol: f64,
) -> Result<(), TestCaseError> {
    if got.len() != want.len() {
        return Err(TestCaseError::fail(format!(
            "{what}: {} values, expected {}",
            got.len(),
            want.len()
        )));
    }
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g as f64 == w
        } else {
            (g as f64 - w).abs() <= atol + rtol * w.abs()
        };
        if !ok {
            return Err(TestCaseError::fail(format!(
                "{what}: element {i}: got {g}, expected {w}"
            )));
        }
    }
    Ok(())
}

/// Exact equality, as a proptest result.
pub fn same(what: &str, got: &[f32], want: &[f32]) -> Result<(), TestCaseError> {
    if got.len() != want.len() {
        return Err(TestCaseError::fail(format!(
            "{what}: {} values, expected {}",
            got.len(),
            want.len()
        )));
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g.to_bits() != w.to_bits() && !(g.is_nan() && w.is_nan()) {
            return Err(TestCaseError::fail(format!(
                "{what}: element {i}: got {g}, expected {w}"
            )));
        }
    }
    Ok(())
}

/// `⟨a, b⟩` in f64.
pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// `Σ|aᵢ·bᵢ|` in f64: the scale of the rounding error of `dot`.
pub fn dot_abs(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 * y as f64).abs())
        .sum()
}

pub fn small_shape() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(1usize..=4, 1..=4)
}
