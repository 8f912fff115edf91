//! Adam's update in one pass: PyTorch's `torch.optim.Adam` step as tessera-nn composed it from
//! eleven elementwise ops (eleven passes and as many fresh buffers per parameter), fused. The
//! arithmetic is the composition's, operation for operation in f32, so results are unchanged.
use super::pool;
use crate::backend::AdamStep;
use rayon::prelude::*;

const CHUNK: usize = 1 << 13;

/// The new (parameter, m, v) after one step; all slices have one length (checked by `Tensor`).
pub fn adam_step(p: &[f32], g: &[f32], m: &[f32], v: &[f32], s: AdamStep) -> [Vec<f32>; 3] {
    let len = p.len();
    let t = s.step as f64;
    let bias_correction1 = 1.0 - s.beta1.powf(t);
    let bias_correction2 = 1.0 - s.beta2.powf(t);
    let decay = s.weight_decay as f32;
    // m moves toward g by 1 − β1 (PyTorch's `lerp`); v decays by β2.
    let new1 = (1.0 - s.beta1) as f32;
    let (keep2, new2) = (s.beta2 as f32, (1.0 - s.beta2) as f32);
    let inv_sqrt_bc2 = (1.0 / bias_correction2.sqrt()) as f32;
    let eps = s.eps as f32;
    let step_size = (s.lr / bias_correction1) as f32;
    let (mut p2, mut m2, mut v2) = (pool::take(len), pool::take(len), pool::take(len));
    p2.par_chunks_mut(CHUNK)
        .zip(m2.par_chunks_mut(CHUNK))
        .zip(v2.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(i, ((p2, m2), v2))| {
            let at = i * CHUNK..i * CHUNK + p2.len();
            let (p, g, m, v) = (&p[at.clone()], &g[at.clone()], &m[at.clone()], &v[at]);
            for j in 0..p2.len() {
                let g = if decay != 0.0 {
                    g[j] + p[j] * decay
                } else {
                    g[j]
                };
                let mj = m[j] + (g - m[j]) * new1;
                let vj = v[j] * keep2 + g * g * new2;
                let denom = vj.sqrt() * inv_sqrt_bc2 + eps;
                p2[j] = p[j] - mj / denom * step_size;
                m2[j] = mj;
                v2[j] = vj;
            }
        });
    [p2, m2, v2]
}
