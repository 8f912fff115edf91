//! Super-resolution (the reference's `SR.py`): the training image is enlarged in steps of about
//! 2^(1/3), each step refined by the finest generator, reused with its noise amplitude.
//!
//! For a factor f the number of steps is `round(ln(1/f) / ln(2^(−1/3)))` (6 for ×4) and each
//! step enlarges by `f^(1/steps)` (1.2599 for ×4). The first step's input is the training image
//! enlarged once; each step's output is enlarged for the next. The noise is grey (one channel)
//! at the first step and RGB after it, as in the reference (the first step counts as "scale 0"
//! of its generation loop). The result is cropped to `floor(f·H)`×`floor(f·W)`.
//!
//! The reference trains SR models with α = 100 and min_size 18; train with those settings for
//! the paper's results (`singan train --alpha 100 --min-size 18`).
use super::{finest_trained, hw, invalid_option, Result};
use crate::model::{crop, noise, pad, SinGan};
use crate::resize::imresize;
use tessera_tensor::{Rng, Tensor};

/// The steps of an enlargement by `factor`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SrPlan {
    /// Number of generator passes.
    pub steps: usize,
    /// Enlargement per pass, `factor^(1/steps)`.
    pub step_scale: f64,
}

impl SrPlan {
    /// The reference's plan for `factor` (> 2^(1/6), so that at least one step is made).
    pub fn new(factor: f64) -> Result<SrPlan> {
        if !(factor.is_finite() && factor > 1.0) {
            return Err(invalid_option(
                "super-resolution factor",
                format!("must be a finite number above 1, got {factor}"),
            ));
        }
        let base = 2f64.powf(-1.0 / 3.0);
        let steps = ((1.0 / factor).ln() / base.ln()).round();
        if steps < 1.0 {
            return Err(invalid_option(
                "super-resolution factor",
                format!("{factor} is below 2^(1/6) ≈ 1.12: no 2^(1/3) step to take"),
            ));
        }
        if steps > 64.0 {
            return Err(invalid_option(
                "super-resolution factor",
                format!("{factor} would take {steps} steps; at most 64 (×2^21)"),
            ));
        }
        let steps = steps as usize;
        Ok(SrPlan {
            steps,
            step_scale: factor.powf(1.0 / steps as f64),
        })
    }
}

/// Enlarges the model's training image (its finest trained scale) by `factor`.
pub fn super_resolve(model: &SinGan, factor: f64, rng: &mut Rng) -> Result<Tensor> {
    let plan = SrPlan::new(factor)?;
    let (finest, [h, w]) = finest_trained(model)?;
    let mut image = imresize(&model.reals[finest], plan.step_scale)?;
    for step in 0..plan.steps {
        if step > 0 {
            image = imresize(&image, plan.step_scale)?;
        }
        // `noise` draws grey noise for "scale 0" and RGB noise for any other index.
        let z = pad(&noise(step.min(1), hw(&image), rng)?)?;
        image = model.generate_scale(finest, &z, &pad(&image)?)?;
    }
    let out = [
        (factor * h as f64).floor() as usize,
        (factor * w as f64).floor() as usize,
    ];
    Ok(crop(&image, out)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::test_model::tiny_model_and_finest;

    #[test]
    fn plan_matches_the_reference_for_x4_and_x2() {
        let x4 = SrPlan::new(4.0).unwrap();
        assert_eq!(x4.steps, 6);
        assert!((x4.step_scale - 1.259_921).abs() < 1e-6);
        let x2 = SrPlan::new(2.0).unwrap();
        assert_eq!(x2.steps, 3);
        assert!(SrPlan::new(1.05).is_err());
        assert!(SrPlan::new(f64::NAN).is_err());
        assert!(SrPlan::new(0.5).is_err());
    }

    #[test]
    fn output_has_the_enlarged_size_and_is_finite() {
        let (model, _, [h, w]) = tiny_model_and_finest();
        let out = super_resolve(&model, 2.0, &mut Rng::seed(1)).unwrap();
        assert_eq!(out.dims(), &[1, 3, 2 * h, 2 * w]);
        assert!(out.to_vec().unwrap().iter().all(|v| v.is_finite()));
    }
}
