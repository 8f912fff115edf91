//! Seeded random numbers, reproducible across runs and platforms (ChaCha8 stream; the
//! normal sampler is rand_distr's, pinned by Cargo.lock).
use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

#[derive(Clone, Debug)]
pub struct Rng(ChaCha8Rng);

impl Rng {
    pub fn seed(seed: u64) -> Self {
        Rng(ChaCha8Rng::seed_from_u64(seed))
    }
    pub fn normal_vec(&mut self, n: usize, mean: f32, std: f32) -> Vec<f32> {
        (0..n)
            .map(|_| mean + std * self.0.sample::<f32, _>(StandardNormal))
            .collect()
    }
    /// Uniform on [lo, hi).
    pub fn uniform_vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let v = lo + (hi - lo) * self.0.random::<f32>();
                // Rounding can land on `hi` when |lo| ≫ hi − lo; keep the range half-open.
                if v < hi {
                    v
                } else {
                    lo
                }
            })
            .collect()
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0.random()
    }
}
