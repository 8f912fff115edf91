//! Fused batch / instance normalization with an optional modulation (per-channel affine, or
//! SPADE's spatial `x̂·(1 + γ) + β`).
//!
//! Forward runs the tensor crate's fused kernels (a statistics pass and one output pass). The
//! backward rule has two forms. Without `create_graph` (the rule runs with recording off) it calls
//! the fused backward kernel on raw tensors. With `create_graph` it writes the same gradient
//!
//! `dx = rstd·(g − mean(g) − x̂·mean(g·x̂))`, g = dy·s (s = 1, γ[c] or 1 + γ),
//!
//! with recorded ops, x̂ and rstd as differentiable functions of x, so gradients of gradients
//! are exact (the WGAN-GP penalty through a critic's batch norm needs them).
use crate::{is_grad_enabled, Result, Var};
use tessera_tensor::{NormModulation, Tensor};

/// The output of [`Var::normalize`] and the statistics it normalized with: mean and
/// 1/sqrt(σ² + ε) (biased σ²), shaped [1, C, 1, 1] (batch) or [N, C, 1, 1] (instance).
pub struct Normalized {
    pub output: Var,
    pub mean: Tensor,
    pub rstd: Tensor,
}

/// Axes a statistics group spans.
fn group_axes(instance: bool) -> &'static [usize] {
    if instance {
        &[2, 3]
    } else {
        &[0, 2, 3]
    }
}

/// [C] (or any C-element shape) → [1, C, 1, 1] for broadcasting over NCHW.
fn per_channel(v: &Var) -> Result<Var> {
    v.reshape([1, v.value().numel(), 1, 1])
}

impl Var {
    /// Batch normalization (statistics per channel over N, H, W, as in training mode) or, with
    /// `instance`, instance normalization (per sample and channel) of an [N, C, H, W] input, with
    /// the biased variance and `eps` as PyTorch normalizes, followed by the modulation `m`:
    /// none, per channel `x̂·γ[c] + β[c]` (γ, β with C elements: an affine `BatchNorm2d`), or
    /// SPADE's `x̂·(1 + γ) + β` (γ, β of x's shape). Differentiable to any order in x, γ and β.
    pub fn normalize(
        &self,
        instance: bool,
        eps: f32,
        m: NormModulation<&Var>,
    ) -> Result<Normalized> {
        let x = self.value();
        let (mean, rstd) = x.norm_stats(instance, eps)?;
        let value = x.norm_modulate(&mean, &rstd, instance, m.map(|v| v.value()))?;
        let mut inputs = vec![self.clone()];
        let kind = match m {
            NormModulation::None => NormModulation::None,
            NormModulation::Channel { gamma, beta } => {
                inputs.extend([gamma.clone(), beta.clone()]);
                NormModulation::Channel {
                    gamma: (),
                    beta: (),
                }
            }
            NormModulation::Spatial { gamma, beta } => {
                inputs.extend([gamma.clone(), beta.clone()]);
                NormModulation::Spatial {
                    gamma: (),
                    beta: (),
                }
            }
        };
        let (mean_c, rstd_c) = (mean.clone(), rstd.clone());
        let output = Var::from_op("normalize", value, inputs, move |ctx, g| {
            if is_grad_enabled() {
                normalize_grads_recorded(ctx, g, instance, eps, kind)
            } else {
                normalize_grads_fused(ctx, g, instance, (&mean_c, &rstd_c), kind)
            }
        });
        Ok(Normalized { output, mean, rstd })
    }

    /// `(x − mean)·rstd` with given (constant) statistics, then the modulation `m`, fused: the
    /// eval-mode form of [`Var::normalize`], with running statistics. `mean`, `rstd` are shaped
    /// [1, C, 1, 1] (or [N, C, 1, 1] with `instance`).
    pub fn normalize_with_stats(
        &self,
        mean: &Tensor,
        rstd: &Tensor,
        instance: bool,
        m: NormModulation<&Var>,
    ) -> Result<Var> {
        let value = self
            .value()
            .norm_modulate(mean, rstd, instance, m.map(|v| v.value()))?;
        let mut inputs = vec![self.clone()];
        let spatial = matches!(m, NormModulation::Spatial { .. });
        if let NormModulation::Channel { gamma, beta } | NormModulation::Spatial { gamma, beta } = m
        {
            inputs.extend([gamma.clone(), beta.clone()]);
        }
        let (mean, rstd) = (Var::constant(mean.clone()), Var::constant(rstd.clone()));
        Ok(Var::from_op(
            "normalize_with_stats",
            value,
            inputs,
            move |ctx, g| {
                // Linear in x for fixed statistics: every gradient is a product of recorded ops.
                let x = &ctx.inputs[0];
                let xhat = || x.sub(&mean)?.mul(&rstd);
                let scale = match ctx.inputs.get(1) {
                    None => rstd.clone(),
                    Some(gamma) if spatial => gamma.add_scalar(1.0)?.mul(&rstd)?,
                    Some(gamma) => per_channel(gamma)?.mul(&rstd)?,
                };
                let mut grads = vec![ctx.grad_for(0, || g.mul(&scale))?];
                if ctx.inputs.len() == 3 {
                    let (gamma, beta) = (&ctx.inputs[1], &ctx.inputs[2]);
                    if spatial {
                        grads.push(ctx.grad_for(1, || g.mul(&xhat()?))?);
                        grads.push(ctx.grad_for(2, || Ok(g.clone()))?);
                    } else {
                        grads.push(ctx.grad_for(1, || {
                            g.mul(&xhat()?)?
                                .sum(&[0, 2, 3], false)?
                                .reshape(gamma.dims().to_vec())
                        })?);
                        grads.push(ctx.grad_for(2, || {
                            g.sum(&[0, 2, 3], false)?.reshape(beta.dims().to_vec())
                        })?);
                    }
                }
                Ok(grads)
            },
        ))
    }
}

/// The backward rule with recording off: fused kernels on raw tensors.
fn normalize_grads_fused(
    ctx: &crate::BackwardCtx<'_>,
    g: &Var,
    instance: bool,
    (mean, rstd): (&Tensor, &Tensor),
    kind: NormModulation<()>,
) -> Result<Vec<Option<Var>>> {
    let (x, dy) = (ctx.inputs[0].value(), g.value());
    let constant = |t: Tensor| Var::constant(t);
    Ok(match kind {
        NormModulation::None => {
            vec![ctx.grad_for(0, || {
                Ok(constant(dy.norm_backward(x, mean, rstd, instance, None)?.0))
            })?]
        }
        NormModulation::Spatial { .. } => {
            let gamma = ctx.inputs[1].value();
            let (dx, dgamma) = if ctx.needs[0] || ctx.needs[1] {
                let (dx, dg) = dy.norm_backward(x, mean, rstd, instance, Some(gamma))?;
                (Some(constant(dx)), dg.map(constant))
            } else {
                (None, None)
            };
            vec![
                dx.filter(|_| ctx.needs[0]),
                dgamma.filter(|_| ctx.needs[1]),
                ctx.grad_for(2, || Ok(g.clone()))?,
            ]
        }
        NormModulation::Channel { .. } => {
            let (gamma, beta) = (&ctx.inputs[1], &ctx.inputs[2]);
            let c = gamma.value().numel();
            vec![
                ctx.grad_for(0, || {
                    let scaled = dy.mul(&gamma.value().reshape([1, c, 1, 1])?)?;
                    Ok(constant(
                        scaled.norm_backward(x, mean, rstd, instance, None)?.0,
                    ))
                })?,
                ctx.grad_for(1, || {
                    let xhat = x.norm_modulate(mean, rstd, instance, NormModulation::None)?;
                    let dg = dy.mul(&xhat)?.sum(&[0, 2, 3], false)?;
                    Ok(constant(dg.reshape(gamma.dims().to_vec())?))
                })?,
                ctx.grad_for(2, || {
                    Ok(constant(
                        dy.sum(&[0, 2, 3], false)?.reshape(beta.dims().to_vec())?,
                    ))
                })?,
            ]
        }
    })
}

/// The backward rule with recording on: the same gradients as recorded, differentiable ops.
fn normalize_grads_recorded(
    ctx: &crate::BackwardCtx<'_>,
    g: &Var,
    instance: bool,
    eps: f32,
    kind: NormModulation<()>,
) -> Result<Vec<Option<Var>>> {
    let x = &ctx.inputs[0];
    let axes = group_axes(instance);
    // x̂ as a function of x: the op's own output when unmodulated, else the op without modulation.
    let xhat = || -> Result<Var> {
        match kind {
            NormModulation::None => Ok(ctx.output.clone()),
            _ => Ok(x.normalize(instance, eps, NormModulation::None)?.output),
        }
    };
    let dx = |scaled: Var, xhat: &Var| -> Result<Var> {
        let rstd = x.var(axes, false, true)?.add_scalar(eps)?.rsqrt()?;
        let centred = scaled
            .sub(&scaled.mean(axes, true)?)?
            .sub(&xhat.mul(&scaled.mul(xhat)?.mean(axes, true)?)?)?;
        rstd.mul(&centred)
    };
    Ok(match kind {
        NormModulation::None => vec![ctx.grad_for(0, || dx(g.clone(), &xhat()?))?],
        NormModulation::Spatial { .. } => {
            let gamma = &ctx.inputs[1];
            let xh = xhat()?;
            vec![
                ctx.grad_for(0, || dx(g.mul(&gamma.add_scalar(1.0)?)?, &xh))?,
                ctx.grad_for(1, || g.mul(&xh))?,
                ctx.grad_for(2, || Ok(g.clone()))?,
            ]
        }
        NormModulation::Channel { .. } => {
            let (gamma, beta) = (&ctx.inputs[1], &ctx.inputs[2]);
            let xh = xhat()?;
            vec![
                ctx.grad_for(0, || dx(g.mul(&per_channel(gamma)?)?, &xh))?,
                ctx.grad_for(1, || {
                    g.mul(&xh)?
                        .sum(&[0, 2, 3], false)?
                        .reshape(gamma.dims().to_vec())
                })?,
                ctx.grad_for(2, || {
                    g.sum(&[0, 2, 3], false)?.reshape(beta.dims().to_vec())
                })?,
            ]
        }
    })
}
