//! A trained (or partly trained) SinGAN and generation from it.
use crate::config::TrainConfig;
use crate::error::invalid;
use crate::net::{Critic, Generator, CHANNELS, PAD};
use crate::pyramid::Pyramid;
use crate::resize::imresize;
use crate::Result;
use tessera_autograd::{no_grad, Var};
use tessera_nn::ModuleExt;
use tessera_tensor::{Device, PadMode, Rng, Tensor};

/// One finished scale: its frozen generator (eval mode: batch norm uses its running
/// statistics) and noise amplitude, and the critic it was trained against (kept to warm-start
/// the next scale when resuming; absent in imported models).
#[derive(Debug)]
pub struct TrainedScale {
    pub generator: Generator,
    /// σ_n: 1 at scale 0, 0.1·RMSE of the upsampled reconstruction elsewhere (`NoiseAmp[n]`).
    pub noise_amp: f32,
    pub critic: Option<Critic>,
}

/// A SinGAN: the pyramid (scale factor, every scale's size), the reals, the reconstruction
/// noise z* and the scales trained so far, coarsest first.
///
/// Shapes: every image is [1, 3, H, W] in [−1, 1]; noise maps and the inputs of a generator are
/// padded by [`PAD`] = 5 on each side, [1, 3, H + 10, W + 10].
#[derive(Debug)]
pub struct SinGan {
    /// How the model was (or is being) trained.
    pub config: TrainConfig,
    pub pyramid: Pyramid,
    /// The training image at every scale, coarsest first (`reals[N]` is the finest).
    pub reals: Vec<Tensor>,
    /// z*, the fixed noise of scale 0 that reconstructs the image: grey (one channel repeated
    /// three times), padded, [1, 3, H₀ + 10, W₀ + 10]. The reconstruction noise of every finer
    /// scale is zero.
    pub z_star: Tensor,
    /// The trained scales, coarsest first; fewer than `reals.len()` while training.
    pub scales: Vec<TrainedScale>,
}

/// How to sample: the output size relative to the training image, and from which scale the
/// noise is random.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleOptions {
    /// Width factor (the reference's `scale_h`; 1 = the training image's width).
    pub scale_h: f64,
    /// Height factor (`scale_v`).
    pub scale_v: f64,
    /// Scales below this one use the reconstruction noise (z* at 0, zero after), so the coarse
    /// structure is the training image's and only finer detail varies (`gen_start_scale`).
    /// Must be 0 unless both factors are 1.
    pub gen_start_scale: usize,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions {
            scale_h: 1.0,
            scale_v: 1.0,
            gen_start_scale: 0,
        }
    }
}

/// Zero-pads H and W by [`PAD`] (mid-grey in [−1, 1]).
pub fn pad(x: &Tensor) -> Result<Tensor> {
    Ok(x.pad2d([PAD; 4], PadMode::Zero)?)
}

/// The top-left `hw` of `x` (or all of an axis shorter than that).
pub fn crop(x: &Tensor, hw: [usize; 2]) -> Result<Tensor> {
    let d = x.dims();
    Ok(x.narrow(2, 0, hw[0].min(d[2]))?
        .narrow(3, 0, hw[1].min(d[3]))?)
}

/// Standard normal noise [1, 3, h, w]: one channel repeated three times (grey) at scale 0, three
/// independent channels elsewhere (`generate_noise`). Drawn on the host, so a seed gives the same
/// noise whatever device the model runs on.
pub fn noise(scale: usize, hw: [usize; 2], rng: &mut Rng) -> Result<Tensor> {
    let [h, w] = hw;
    Ok(if scale == 0 {
        Tensor::randn([1, 1, h, w], 0.0, 1.0, rng, Device::Cpu)?.expand([1, CHANNELS, h, w])?
    } else {
        Tensor::randn([1, CHANNELS, h, w], 0.0, 1.0, rng, Device::Cpu)?
    })
}

/// Python's `round` (ties to even) of `size · factor`.
fn scaled(size: usize, factor: f64) -> usize {
    (size as f64 * factor).round_ties_even() as usize
}

impl SinGan {
    /// The device the model computes on: that of its tensors.
    pub fn device(&self) -> Device {
        self.z_star.device()
    }

    /// Moves the reals, z* and every trained network to `device`; training and generation then
    /// run there (results come back with `to_device(Device::Cpu)` or `to_vec`).
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        for real in &mut self.reals {
            *real = real.to_device(device)?;
        }
        self.z_star = self.z_star.to_device(device)?;
        for scale in &self.scales {
            scale.generator.to_device(device)?;
            if let Some(critic) = &scale.critic {
                critic.to_device(device)?;
            }
        }
        Ok(())
    }

    /// The number of trained scales.
    pub fn num_trained(&self) -> usize {
        self.scales.len()
    }

    /// Whether every scale of the pyramid is trained.
    pub fn is_complete(&self) -> bool {
        self.scales.len() == self.reals.len()
    }

    /// [height, width] of scale `n`.
    pub fn shape(&self, n: usize) -> [usize; 2] {
        self.pyramid.shapes[n]
    }

    /// The reconstruction noise of scale `n`, padded: z* at 0, zeros elsewhere (`Zs[n]`).
    pub fn z_opt(&self, n: usize) -> Result<Tensor> {
        if n == 0 {
            return Ok(self.z_star.clone());
        }
        let [h, w] = self.shape(n);
        Ok(Tensor::zeros(
            [1, CHANNELS, h + 2 * PAD, w + 2 * PAD],
            self.device(),
        )?)
    }

    fn check_trained(&self, what: &str, n: usize) -> Result<()> {
        if n >= self.scales.len() {
            return Err(invalid(
                what,
                format!(
                    "scale {n} is not trained (the model has {} of {} scales)",
                    self.scales.len(),
                    self.reals.len()
                ),
            ));
        }
        Ok(())
    }

    /// One scale of generation on padded inputs: `G_n(σ_n·z + prev, prev)`, where `z` and
    /// `prev` are [1, 3, H + 10, W + 10] (any H, W ≥ 1); returns [1, 3, H, W]. The building
    /// block of custom generation loops (animation's noise walk).
    pub fn generate_scale(&self, n: usize, z: &Tensor, prev: &Tensor) -> Result<Tensor> {
        self.check_trained("generate_scale", n)?;
        if z.shape() != prev.shape() {
            return Err(invalid(
                "generate_scale",
                format!(
                    "noise {} and previous image {} differ in shape",
                    z.shape(),
                    prev.shape()
                ),
            ));
        }
        let s = &self.scales[n];
        no_grad(|| {
            let input = z.mul_scalar(s.noise_amp)?.add(prev)?;
            let out = s
                .generator
                .forward(&Var::constant(input), &Var::constant(prev.clone()))?;
            Ok(out.value().clone())
        })
    }

    /// The previous scale's output brought to scale `n`: `imresize(prev, 1/sf)`, then the
    /// top-left crop to `target` (the reference's between-scale upsampling). Resized on the host,
    /// returned on `prev`'s device.
    pub fn upsample_to(&self, prev: &Tensor, target: [usize; 2]) -> Result<Tensor> {
        let up = imresize(prev, 1.0 / self.pyramid.scale_factor)?.to_device(prev.device())?;
        crop(&up, target)
    }

    /// The size of scale `n` when sampling with height and width factors: Python's
    /// `round(scale_v·H_n)` × `round(scale_h·W_n)`.
    pub fn scaled_shape(&self, n: usize, scale_v: f64, scale_h: f64) -> [usize; 2] {
        let [h, w] = self.shape(n);
        [scaled(h, scale_v), scaled(w, scale_h)]
    }

    /// The reference's `SinGAN_generate`: runs the trained scales from `start` to the last
    /// trained one, with `injected` [1, 3, h, w] as the image entering scale `start` (zeros for
    /// random samples; a down-and-up-sampled reference image for paint-to-image, harmonization
    /// and editing, see [`SinGan::injection_input`]). At each scale k the noise has the size
    /// [`SinGan::scaled_shape`]`(k, ..)`, drawn fresh (grey at scale 0) for k ≥
    /// `gen_start_scale` and the reconstruction noise below it; the previous output is
    /// upsampled, cropped to that size, padded, and stretched bilinearly (align_corners) if it
    /// came out smaller. Returns the output of the last trained scale.
    pub fn generate(
        &self,
        start: usize,
        injected: &Tensor,
        options: &SampleOptions,
        rng: &mut Rng,
    ) -> Result<Tensor> {
        // Inside a rayon worker, the kernels' forks skip the hand-off from the calling thread.
        tessera_autograd::on_worker_thread(|| self.generate_here(start, injected, options, rng))
    }

    fn generate_here(
        &self,
        start: usize,
        injected: &Tensor,
        options: &SampleOptions,
        rng: &mut Rng,
    ) -> Result<Tensor> {
        self.check_trained("generate", start)?;
        let SampleOptions {
            scale_h,
            scale_v,
            gen_start_scale,
        } = *options;
        if !(scale_h > 0.0 && scale_v > 0.0 && scale_h.is_finite() && scale_v.is_finite()) {
            return Err(invalid(
                "generate",
                format!("scale_h {scale_h} and scale_v {scale_v} must be positive"),
            ));
        }
        if gen_start_scale > start && (scale_h != 1.0 || scale_v != 1.0) {
            return Err(invalid(
                "generate",
                "the reconstruction noise below gen_start_scale has the training size: \
                 arbitrary sizes need gen_start_scale = 0",
            ));
        }
        let d = injected.dims();
        if d.len() != 4 || d[0] != 1 || d[1] != CHANNELS || d[2] == 0 || d[3] == 0 {
            return Err(invalid(
                "generate",
                format!(
                    "the injected image must be [1, 3, H, W], got {}",
                    injected.shape()
                ),
            ));
        }
        let device = self.device();
        let mut image: Option<Tensor> = None;
        for k in start..self.scales.len() {
            let [h, w] = self.scaled_shape(k, scale_v, scale_h);
            let padded = [h + 2 * PAD, w + 2 * PAD];
            let z = if k < gen_start_scale {
                self.z_opt(k)?
            } else {
                pad(&noise(k, [h.max(1), w.max(1)], rng)?.to_device(device)?)?
            };
            let prev = match &image {
                None => pad(&injected.to_device(device)?)?,
                Some(x) => {
                    let up = self.upsample_to(x, [h, w])?;
                    let p = crop(&pad(&up)?, padded)?;
                    if p.dims()[2..] == padded {
                        p
                    } else {
                        p.upsample_bilinear2d(padded, true)?
                    }
                }
            };
            if prev.dims() != z.dims() {
                return Err(invalid(
                    "generate",
                    format!(
                        "at scale {k} the image entering is {} where the noise is {}",
                        prev.shape(),
                        z.shape()
                    ),
                ));
            }
            image = Some(self.generate_scale(k, &z, &prev)?);
        }
        Ok(image.expect("start < scales.len(): at least one scale ran"))
    }

    /// A random sample through every trained scale, at `scale_v`·H × `scale_h`·W.
    pub fn sample(&self, options: &SampleOptions, rng: &mut Rng) -> Result<Tensor> {
        self.check_trained("sample", 0)?;
        let [h, w] = self.scaled_shape(0, options.scale_v, options.scale_h);
        let zeros = Tensor::zeros([1, CHANNELS, h.max(1), w.max(1)], self.device())?;
        self.generate(0, &zeros, options, rng)
    }

    /// The deterministic reconstruction G(z*) of the training image at the last trained scale:
    /// z* at scale 0 and zero noise at every finer scale.
    pub fn reconstruct(&self) -> Result<Tensor> {
        let options = SampleOptions {
            gen_start_scale: self.scales.len(),
            ..SampleOptions::default()
        };
        // No random draw happens: every scale is below gen_start_scale.
        self.sample(&options, &mut Rng::seed(0))
    }

    /// The image entering scale `n` (1 ≤ n ≤ N) when injecting `reference` [1, 3, H_N, W_N]
    /// (the finest real's size): `imresize(reference, sf^(N − n + 1))` cropped to scale n − 1,
    /// then upsampled to scale n and cropped — a blurred version at scale n, as the reference's
    /// paint-to-image, harmonization and editing build it. Pass it to [`SinGan::generate`] with
    /// `start = n`.
    pub fn injection_input(&self, reference: &Tensor, n: usize) -> Result<Tensor> {
        let last = self.reals.len() - 1;
        if n == 0 || n > last {
            return Err(invalid(
                "injection_input",
                format!("the injection scale must be in 1..={last}, got {n}"),
            ));
        }
        let d = reference.dims();
        if d.len() != 4 || d[2..] != self.shape(last) {
            return Err(invalid(
                "injection_input",
                format!(
                    "the reference image is {}, the model's finest scale is {:?}",
                    reference.shape(),
                    self.shape(last)
                ),
            ));
        }
        let down = imresize(reference, self.pyramid.relative_scale(n - 1))?;
        self.upsample_to(&crop(&down, self.shape(n - 1))?, self.shape(n))
    }
}
