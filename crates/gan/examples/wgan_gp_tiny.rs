//! A tiny WGAN-GP on the CPU: a conv generator learns an 8×8 ramp pattern against a critic
//! conv → BatchNorm2d (training mode) → LeakyReLU(0.2) → conv, trained with the gradient penalty
//! λ·mean((‖∂D(x̂)/∂x̂‖₂ − 1)²), whose gradient with respect to the critic's weights is a
//! gradient of a gradient.
//!
//! Run: `cargo run --release -p tessera-gan --example wgan_gp_tiny`
use tessera_autograd::{grad, no_grad, Var};
use tessera_gan::{
    gradient_penalty, sample_alpha, wgan_critic_loss, wgan_generator_loss, Mixing, Result,
};
use tessera_nn::{Adam, AdamConfig, BatchNorm2d, Conv2d, Conv2dConfig, Module, ModuleExt};
use tessera_tensor::{Device, Rng, Tensor};

const N: usize = 16;
const HW: usize = 8;
const LAMBDA: f32 = 10.0;

struct Critic {
    conv1: Conv2d,
    norm: BatchNorm2d,
    conv2: Conv2d,
}

impl Critic {
    fn score(&self, x: &Var) -> Result<Var> {
        let h = self
            .norm
            .forward(&self.conv1.forward(x)?)?
            .leaky_relu(0.2)?;
        Ok(self.conv2.forward(&h)?.mean(&[1, 2, 3], false)?)
    }
}

impl Module for Critic {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, tessera_nn::Entry<'_>)) {
        self.conv1.visit(&tessera_nn::join(prefix, "conv1"), f);
        self.norm.visit(&tessera_nn::join(prefix, "norm"), f);
        self.conv2.visit(&tessera_nn::join(prefix, "conv2"), f);
    }
    fn set_training(&mut self, training: bool) {
        self.norm.set_training(training);
    }
}

struct Generator {
    conv1: Conv2d,
    conv2: Conv2d,
}

impl Generator {
    fn sample(&self, z: &Var) -> Result<Var> {
        let h = self.conv1.forward(z)?.leaky_relu(0.2)?;
        Ok(self.conv2.forward(&h)?.tanh()?)
    }
}

impl Module for Generator {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, tessera_nn::Entry<'_>)) {
        self.conv1.visit(&tessera_nn::join(prefix, "conv1"), f);
        self.conv2.visit(&tessera_nn::join(prefix, "conv2"), f);
    }
    fn set_training(&mut self, _training: bool) {}
}

/// One Adam step on `loss` for the optimizer's parameters.
fn step(opt: &mut Adam, loss: &Var) -> Result<()> {
    let vars = opt.vars();
    let wrt: Vec<&Var> = vars.iter().collect();
    let grads: Vec<Tensor> = grad(&[loss], &wrt, None, false)?
        .iter()
        .map(|g| g.value().clone())
        .collect();
    Ok(opt.step(&grads)?)
}

fn main() -> Result<()> {
    let mut rng = Rng::seed(7);
    let same = |i, o| Conv2dConfig::new(i, o, 3).padding(1);
    let critic = Critic {
        conv1: Conv2d::new(same(1, 8), &mut rng)?,
        norm: BatchNorm2d::new(8)?,
        conv2: Conv2d::new(same(8, 1), &mut rng)?,
    };
    let generator = Generator {
        conv1: Conv2d::new(same(4, 8), &mut rng)?,
        conv2: Conv2d::new(same(8, 1), &mut rng)?,
    };
    let adam = AdamConfig {
        betas: (0.5, 0.999),
        ..AdamConfig::new(2e-3)
    };
    let mut d_opt = Adam::new(critic.named_params(), adam)?;
    let mut g_opt = Adam::new(generator.named_params(), adam)?;

    // The "data set": a diagonal ramp in [-1, 1].
    let pattern: Vec<f32> = (0..HW * HW)
        .map(|i| (i / HW + i % HW) as f32 / (HW as f32 - 1.0) - 1.0)
        .collect();
    let real = Var::constant(Tensor::from_vec(
        pattern.repeat(N),
        [N, 1, HW, HW],
        Device::Cpu,
    )?);
    let score = |x: &Var| critic.score(x);

    println!("iter  critic_loss  gradient_penalty  generator_loss  |fake-real|");
    for it in 0..=300 {
        let z = Var::constant(Tensor::randn(
            [N, 4, HW, HW],
            0.0,
            1.0,
            &mut rng,
            Device::Cpu,
        )?);
        let fake = no_grad(|| generator.sample(&z))?;
        let alpha = sample_alpha(Mixing::PerSample, N, &mut rng, Device::Cpu)?;
        let gp = gradient_penalty(&score, &real, &fake, &alpha, LAMBDA)?;
        let d_loss = wgan_critic_loss(&critic.score(&real)?, &critic.score(&fake)?)?.add(&gp)?;
        step(&mut d_opt, &d_loss)?;

        let fake = generator.sample(&z)?;
        let g_loss = wgan_generator_loss(&critic.score(&fake)?)?;
        step(&mut g_opt, &g_loss)?;

        if it % 25 == 0 {
            let dist = fake
                .value()
                .sub(real.value())?
                .abs()?
                .mean_all()?
                .to_scalar()?;
            let v = |x: &Var| x.value().to_scalar();
            println!(
                "{it:4}  {:11.4}  {:16.4}  {:14.4}  {dist:11.4}",
                v(&d_loss)?,
                v(&gp)?,
                v(&g_loss)?
            );
        }
    }
    Ok(())
}
