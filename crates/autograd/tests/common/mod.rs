//! Input generators and check helpers shared by the autograd integration tests.
#![allow(dead_code)]
use proptest::test_runner::TestCaseError;
use tessera_autograd::gradcheck::{check_grad, check_grad_grad, GradcheckConfig, Outputs};
use tessera_autograd::Var;
use tessera_tensor::{Device, Rng, Tensor};

pub const CPU: Device = Device::Cpu;

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

pub fn tensor(v: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape.to_vec(), CPU).unwrap()
}

/// N(0, 1) values.
pub fn normal(shape: &[usize], seed: u64) -> Tensor {
    tensor(Rng::seed(seed).normal_vec(numel(shape), 0.0, 1.0), shape)
}

/// Uniform on [lo, hi).
pub fn uniform(shape: &[usize], lo: f32, hi: f32, seed: u64) -> Tensor {
    tensor(Rng::seed(seed).uniform_vec(numel(shape), lo, hi), shape)
}

/// Values at least `margin` away from 0 (either sign), magnitude below margin + ~3.
pub fn away_from_zero(shape: &[usize], margin: f32, seed: u64) -> Tensor {
    let mut rng = Rng::seed(seed);
    let v = rng
        .normal_vec(numel(shape), 0.0, 1.0)
        .into_iter()
        .map(|x| x.signum() * (margin + x.abs().min(3.0)))
        .collect();
    tensor(v, shape)
}

/// Distinct values on a shuffled grid of spacing 0.3 (offset by `offset`, jitter < 0.02): any
/// two values, and any value of this grid and one of a grid offset by 0.15, are ≥ 0.1 apart.
pub fn distinct(shape: &[usize], offset: f32, seed: u64) -> Tensor {
    let n = numel(shape);
    let mut rng = Rng::seed(seed);
    let jitter = rng.uniform_vec(n, 0.0, 0.02);
    let mut v: Vec<f32> = (0..n)
        .map(|k| (k as f32 - (n / 2) as f32) * 0.3 + offset + jitter[k])
        .collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    tensor(v, shape)
}

/// A random 0/1 mask.
pub fn mask(shape: &[usize], seed: u64) -> Tensor {
    let v = Rng::seed(seed)
        .uniform_vec(numel(shape), 0.0, 1.0)
        .into_iter()
        .map(|u| (u < 0.5) as u8 as f32)
        .collect();
    tensor(v, shape)
}

/// A random permutation of 0..n.
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::seed(seed);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        p.swap(i, j);
    }
    p
}

/// Shapes `a` and `b` that broadcast to `out`: dims whose bit is set become 1, and the
/// leading `drop` dims are removed.
pub fn broadcast_operand(out: &[usize], ones: u32, drop: usize) -> Vec<usize> {
    out.iter()
        .enumerate()
        .skip(drop.min(out.len()))
        .map(|(i, &d)| if ones >> i & 1 == 1 { 1 } else { d })
        .collect()
}

pub fn cfg(seed: u64) -> GradcheckConfig {
    GradcheckConfig::default().with_seed(seed)
}

/// First- and second-order checks of `f` at `inputs`, as a proptest result naming `what`.
pub fn check_both<F, O>(what: &str, f: F, inputs: &[Tensor], seed: u64) -> Result<(), TestCaseError>
where
    F: Fn(&[Var]) -> tessera_autograd::Result<O>,
    O: Outputs,
{
    let c = cfg(seed);
    let shapes: Vec<_> = inputs.iter().map(|t| t.shape().clone()).collect();
    check_grad(&f, inputs, &c)
        .map_err(|e| TestCaseError::fail(format!("{what} at {shapes:?}: {e}")))?;
    check_grad_grad(&f, inputs, &c)
        .map_err(|e| TestCaseError::fail(format!("{what} at {shapes:?}: {e}")))?;
    Ok(())
}
