//! Sums accumulated in f64 over independent lanes.
//!
//! A sequential `iter().sum::<f64>()` is bound by the latency of one dependent add per element
//! (about 4 cycles); eight independent accumulators let the compiler vectorize the loop. The
//! additions happen in a different order than a sequential sum, a difference within f64
//! rounding, far below the f32 results.
const LANES: usize = 8;

/// Two sums over the elements of three equally long slices: Σ f(a[i], b[i], c[i]).
#[inline]
pub(crate) fn lane_sums(
    a: &[f32],
    b: &[f32],
    c: &[f32],
    f: impl Fn(f32, f32, f32) -> (f64, f64),
) -> (f64, f64) {
    debug_assert!(a.len() == b.len() && b.len() == c.len());
    let (mut s, mut t) = ([0f64; LANES], [0f64; LANES]);
    let whole = a.len() / LANES * LANES;
    for ((a, b), c) in a[..whole]
        .chunks_exact(LANES)
        .zip(b[..whole].chunks_exact(LANES))
        .zip(c[..whole].chunks_exact(LANES))
    {
        for l in 0..LANES {
            let (u, v) = f(a[l], b[l], c[l]);
            s[l] += u;
            t[l] += v;
        }
    }
    let (mut s, mut t) = (s.iter().sum::<f64>(), t.iter().sum::<f64>());
    for i in whole..a.len() {
        let (u, v) = f(a[i], b[i], c[i]);
        s += u;
        t += v;
    }
    (s, t)
}

/// Σ x[i] in f64.
pub(crate) fn sum(x: &[f32]) -> f64 {
    lane_sums(x, x, x, |v, _, _| (v as f64, 0.0)).0
}

/// (Σ x[i], Σ x[i]²) in f64.
pub(crate) fn sum_and_squares(x: &[f32]) -> (f64, f64) {
    lane_sums(x, x, x, |v, _, _| {
        let v = v as f64;
        (v, v * v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_sums_match_sequential_sums_at_every_length() {
        for len in [0usize, 1, 7, 8, 9, 16, 31, 1000] {
            let x: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
            let seq: f64 = x.iter().map(|&v| v as f64).sum();
            let sq: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum();
            assert!(
                (sum(&x) - seq).abs() <= 1e-12 * (1.0 + seq.abs()),
                "len {len}"
            );
            let (s, q) = sum_and_squares(&x);
            assert!((s - seq).abs() <= 1e-12 * (1.0 + seq.abs()));
            assert!((q - sq).abs() <= 1e-12 * (1.0 + sq));
        }
    }
}
