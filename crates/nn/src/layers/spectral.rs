//! `SpectralNorm`: `torch.nn.utils.spectral_norm` as a wrapper around a layer with a weight.
use super::layer_error;
use crate::module::{join, Entry, Module};
use crate::{Buffer, Param, Result};
use tessera_autograd::{no_grad, Var};
use tessera_tensor::{Device, Rng, Tensor};

/// A layer whose weight [`SpectralNorm`] can normalize: it exposes the weight parameter and a
/// forward that takes a replacement weight.
pub trait WeightLayer: Module {
    /// The layer's name in errors.
    fn layer_name(&self) -> &'static str;
    /// The weight parameter (named `weight` by the layer's `visit`).
    fn weight(&self) -> &Param;
    /// The weight axis that indexes outputs, which becomes the rows of the matrix whose
    /// spectral norm is taken: 0 for `Conv2d` and `Linear`, 1 for `ConvTranspose2d` (PyTorch's
    /// default `dim`).
    fn output_axis(&self) -> usize {
        0
    }
    /// The layer's forward with `weight` (the parameter's shape) in place of the parameter.
    fn forward_with_weight(&self, x: &Var, weight: &Var) -> Result<Var>;
}

/// Spectral normalization of a layer's weight (Miyato et al. 2018), with the semantics of
/// `torch.nn.utils.spectral_norm(layer)`:
///
/// * state: the layer's weight becomes the parameter `weight_orig`; buffers `weight_u` (length
///   `rows`) and `weight_v` (length `cols`) hold the power-iteration vectors, where the weight
///   is viewed as a matrix of `rows` = size of [`WeightLayer::output_axis`] by everything else.
///   Other names are the layer's own (`conv.weight_orig`, `conv.weight_u`, `conv.weight_v`,
///   `conv.bias` under a parent's prefix `conv`).
/// * training forward: `n_power_iterations` (default 1) steps of `v = normalize(Wᵀu)`,
///   `u = normalize(Wv)` without recording a graph (`normalize(a) = a / max(‖a‖, eps)`, eps
///   1e-12), stored back into the buffers; then the layer runs with `W / σ`, `σ = uᵀWv`.
///   σ is differentiated with respect to `W` only: u and v are constants.
/// * eval forward: the same with the stored u and v, no iteration.
///
/// Initial u and v are `normalize(N(0, 1))` draws of sizes rows and cols, drawn independently
/// (as PyTorch does, from tessera's generator, so the values differ from PyTorch's; load a
/// state dict to reproduce a PyTorch model).
#[derive(Debug)]
pub struct SpectralNorm<L: WeightLayer> {
    pub inner: L,
    pub weight_u: Buffer,
    pub weight_v: Buffer,
    n_power_iterations: usize,
    eps: f32,
    training: bool,
}

/// `a / max(‖a‖₂, eps)` of a vector (PyTorch's `F.normalize(a, dim=0, eps)`).
fn normalize(a: &Tensor, eps: f32) -> Result<Tensor> {
    let norm = a.sqr()?.sum_all()?.sqrt()?.to_scalar()?.max(eps);
    Ok(a.div(&Tensor::scalar(norm, a.device())?)?)
}

impl<L: WeightLayer> SpectralNorm<L> {
    /// Wraps `inner` with one power iteration per training forward and eps 1e-12, in training
    /// mode. u and v are drawn from `rng`.
    pub fn new(inner: L, rng: &mut Rng) -> Result<Self> {
        let (rows, cols) = Self::matrix_dims(&inner)?;
        let draw = |n: usize, rng: &mut Rng| -> Result<Tensor> {
            let t = Tensor::from_vec(rng.normal_vec(n, 0.0, 1.0), [n], Device::Cpu)?;
            normalize(&t, 1e-12)
        };
        let u = draw(rows, rng)?;
        let v = draw(cols, rng)?;
        Ok(SpectralNorm {
            inner,
            weight_u: Buffer::new(u),
            weight_v: Buffer::new(v),
            n_power_iterations: 1,
            eps: 1e-12,
            training: true,
        })
    }

    /// Sets the number of power iterations per training forward (at least 1).
    pub fn with_power_iterations(mut self, n: usize) -> Result<Self> {
        if n == 0 {
            return Err(layer_error(
                "SpectralNorm",
                "n_power_iterations must be positive, got 0",
            ));
        }
        self.n_power_iterations = n;
        Ok(self)
    }

    /// Sets the eps of the normalizations (default 1e-12).
    pub fn with_eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    pub fn n_power_iterations(&self) -> usize {
        self.n_power_iterations
    }

    pub fn is_training(&self) -> bool {
        self.training
    }

    fn matrix_dims(inner: &L) -> Result<(usize, usize)> {
        let shape = inner.weight().shape();
        let d = shape.dims();
        let axis = inner.output_axis();
        if axis >= d.len() {
            return Err(layer_error(
                "SpectralNorm",
                format!(
                    "{}: output axis {axis} of a weight of shape {shape}",
                    inner.layer_name()
                ),
            ));
        }
        let rows = d[axis];
        Ok((rows, shape.numel() / rows.max(1)))
    }

    /// The weight viewed as a [rows, cols] matrix (output axis first).
    fn as_matrix(&self, w: &Var) -> Result<Var> {
        let axis = self.inner.output_axis();
        let rank = w.dims().len();
        let (rows, cols) = Self::matrix_dims(&self.inner)?;
        let w = if axis == 0 {
            w.clone()
        } else {
            let mut perm = vec![axis];
            perm.extend((0..rank).filter(|&a| a != axis));
            w.permute(&perm)?
        };
        Ok(w.reshape([rows, cols])?)
    }

    /// u and v after the power iterations of a training forward (not stored). Wᵀu is computed
    /// as the row uᵀW, which reads W in place (a transposed copy of a 512 × 4608 weight took
    /// 8 % of a SPADE generator's forward).
    fn power_iteration(&self, w_mat: &Tensor) -> Result<(Tensor, Tensor)> {
        let (rows, cols) = (w_mat.dims()[0], w_mat.dims()[1]);
        let mut u = self.weight_u.get();
        let mut v = self.weight_v.get();
        for _ in 0..self.n_power_iterations {
            v = normalize(
                &u.reshape([1, rows])?.matmul(w_mat)?.reshape([cols])?,
                self.eps,
            )?;
            u = normalize(
                &w_mat.matmul(&v.reshape([cols, 1])?)?.reshape([rows])?,
                self.eps,
            )?;
        }
        Ok((u, v))
    }

    /// `(W / σ, u, v)` with `σ = uᵀWv`; u and v after the power iterations when training.
    fn normalized(&self) -> Result<(Var, Tensor, Tensor)> {
        let w = self.inner.weight().var();
        let w_mat = self.as_matrix(&w)?;
        let (rows, cols) = (w_mat.dims()[0], w_mat.dims()[1]);
        let (u, v) = if self.training {
            no_grad(|| self.power_iteration(w_mat.value()))?
        } else {
            (self.weight_u.get(), self.weight_v.get())
        };
        let uc = Var::constant(u.reshape([1, rows])?);
        let vc = Var::constant(v.reshape([cols, 1])?);
        let sigma = uc.matmul(&w_mat.matmul(&vc)?)?;
        let sigma = sigma.reshape(vec![1; w.dims().len()])?;
        Ok((w.div(&sigma)?, u, v))
    }

    /// The normalized weight `W / σ` as the next forward would use it (in training mode this
    /// runs the power iterations and stores u and v, like a forward).
    pub fn weight(&self) -> Result<Var> {
        let (w, u, v) = self.normalized()?;
        if self.training {
            self.store(u, v)?;
        }
        Ok(w)
    }

    fn store(&self, u: Tensor, v: Tensor) -> Result<()> {
        self.weight_u.set("weight_u", u)?;
        self.weight_v.set("weight_v", v)
    }

    /// The wrapped layer's forward with the normalized weight. u and v are stored only when
    /// the forward succeeds.
    pub fn forward(&self, x: &Var) -> Result<Var> {
        let (w, u, v) = self.normalized()?;
        let y = self.inner.forward_with_weight(x, &w)?;
        if self.training {
            self.store(u, v)?;
        }
        Ok(y)
    }
}

impl<L: WeightLayer> Module for SpectralNorm<L> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        let weight = join(prefix, "weight");
        let weight_orig = join(prefix, "weight_orig");
        self.inner.visit(prefix, &mut |name, e| {
            if name == weight {
                f(&weight_orig, e)
            } else {
                f(name, e)
            }
        });
        f(&join(prefix, "weight_u"), Entry::Buffer(&self.weight_u));
        f(&join(prefix, "weight_v"), Entry::Buffer(&self.weight_v));
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
        self.inner.set_training(training);
    }
}
