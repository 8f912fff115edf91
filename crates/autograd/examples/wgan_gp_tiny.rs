//! A tiny WGAN-GP: a conv generator learns an 8×8 pattern against a critic
//! conv → batch norm (training mode) → LeakyReLU(0.2) → conv, with the gradient penalty
//! λ·mean((‖∂D(x̂)/∂x̂‖₂ − 1)²) differentiated with respect to the critic's weights (grad of grad).
//!
//! Run: `cargo run --release -p tessera-autograd --example wgan_gp_tiny`
//! The optimizer is a few lines of Adam written here; the library one lives in tessera-nn.
use tessera_autograd::{grad, no_grad, Result, Var};
use tessera_tensor::{Conv2dParams, Device, Rng, Tensor};

const N: usize = 16;
const HW: usize = 8;
const LAMBDA: f32 = 10.0;

struct Adam {
    params: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: i32,
    lr: f32,
}

impl Adam {
    fn new(params: Vec<Var>, lr: f32) -> Result<Self> {
        let zeros = |p: &Var| Tensor::zeros(p.shape().clone(), Device::Cpu);
        let m = params
            .iter()
            .map(zeros)
            .collect::<std::result::Result<_, _>>()?;
        let v = params
            .iter()
            .map(zeros)
            .collect::<std::result::Result<_, _>>()?;
        Ok(Adam {
            params,
            m,
            v,
            t: 0,
            lr,
        })
    }
    /// One step with betas (0.5, 0.999); returns the updated parameters (new leaves).
    fn step(&mut self, grads: &[Var]) -> Result<()> {
        self.t += 1;
        let (b1, b2) = (0.5f32, 0.999f32);
        for i in 0..self.params.len() {
            let g = grads[i].value();
            self.m[i] = self.m[i].mul_scalar(b1)?.add(&g.mul_scalar(1.0 - b1)?)?;
            self.v[i] = self.v[i]
                .mul_scalar(b2)?
                .add(&g.sqr()?.mul_scalar(1.0 - b2)?)?;
            let mhat = self.m[i].mul_scalar(1.0 / (1.0 - b1.powi(self.t)))?;
            let vhat = self.v[i].mul_scalar(1.0 / (1.0 - b2.powi(self.t)))?;
            let update = mhat
                .div(&vhat.sqrt()?.add_scalar(1e-8)?)?
                .mul_scalar(self.lr)?;
            self.params[i] = Var::param(self.params[i].value().sub(&update)?);
        }
        Ok(())
    }
}

fn init(shape: [usize; 4], rng: &mut Rng) -> Result<Var> {
    let fan_in = (shape[1] * shape[2] * shape[3]) as f32;
    Ok(Var::param(Tensor::randn(
        shape,
        0.0,
        1.0 / fan_in.sqrt(),
        rng,
        Device::Cpu,
    )?))
}

fn zeros(n: usize) -> Result<Var> {
    Ok(Var::param(Tensor::zeros([n], Device::Cpu)?))
}

/// Batch norm in training mode, composed from differentiable ops (twice differentiable).
fn batch_norm(x: &Var, gamma: &Var, beta: &Var) -> Result<Var> {
    let c = x.dims()[1];
    let mean = x.mean(&[0, 2, 3], true)?;
    let centred = x.sub(&mean)?;
    let var = centred.sqr()?.mean(&[0, 2, 3], true)?;
    let normed = centred.mul(&var.add_scalar(1e-5)?.rsqrt()?)?;
    normed
        .mul(&gamma.reshape([1, c, 1, 1])?)?
        .add(&beta.reshape([1, c, 1, 1])?)
}

/// params: [w1, b1, gamma, beta, w2, b2]; one score per sample.
fn critic(p: &[Var], x: &Var) -> Result<Var> {
    let same = Conv2dParams::new(1, 1, 1);
    let h = x.conv2d(&p[0], Some(&p[1]), same)?;
    let h = batch_norm(&h, &p[2], &p[3])?.leaky_relu(0.2)?;
    h.conv2d(&p[4], Some(&p[5]), same)?.mean(&[1, 2, 3], false)
}

/// params: [w1, b1, w2, b2].
fn generator(p: &[Var], z: &Var) -> Result<Var> {
    let same = Conv2dParams::new(1, 1, 1);
    let h = z.conv2d(&p[0], Some(&p[1]), same)?.leaky_relu(0.2)?;
    h.conv2d(&p[2], Some(&p[3]), same)?.tanh()
}

fn gradient_penalty(d: &[Var], real: &Var, fake: &Var, rng: &mut Rng) -> Result<Var> {
    let alpha = Var::constant(Tensor::rand_uniform(
        [N, 1, 1, 1],
        0.0,
        1.0,
        rng,
        Device::Cpu,
    )?);
    let mixed = real
        .mul(&alpha)?
        .add(&fake.mul(&alpha.affine(-1.0, 1.0)?)?)?;
    // The mix is an input to differentiate against, not a constant.
    let mixed = Var::param(mixed.value().clone());
    let score = critic(d, &mixed)?;
    let g = grad(&[&score], &[&mixed], None, true)?.remove(0);
    let norm = g.sqr()?.sum(&[1, 2, 3], false)?.add_scalar(1e-12)?.sqrt()?;
    norm.add_scalar(-1.0)?.sqr()?.mean_all()?.mul_scalar(LAMBDA)
}

fn main() -> Result<()> {
    let mut rng = Rng::seed(7);
    // The "data set": a diagonal ramp pattern.
    let pattern: Vec<f32> = (0..HW * HW)
        .map(|i| ((i / HW + i % HW) as f32 / (HW as f32 - 1.0)) - 1.0)
        .collect();
    let real = Var::constant(Tensor::from_vec(
        pattern.repeat(N),
        [N, 1, HW, HW],
        Device::Cpu,
    )?);

    let mut d_opt = Adam::new(
        vec![
            init([8, 1, 3, 3], &mut rng)?,
            zeros(8)?,
            Var::param(Tensor::ones([8], Device::Cpu)?),
            zeros(8)?,
            init([1, 8, 3, 3], &mut rng)?,
            zeros(1)?,
        ],
        2e-3,
    )?;
    let mut g_opt = Adam::new(
        vec![
            init([8, 4, 3, 3], &mut rng)?,
            zeros(8)?,
            init([1, 8, 3, 3], &mut rng)?,
            zeros(1)?,
        ],
        2e-3,
    )?;

    println!("iter  critic_loss  gradient_penalty  generator_loss  |fake-real|");
    for it in 0..=300 {
        let z = Var::constant(Tensor::randn(
            [N, 4, HW, HW],
            0.0,
            1.0,
            &mut rng,
            Device::Cpu,
        )?);
        let fake = no_grad(|| generator(&g_opt.params, &z))?;
        let wasserstein = critic(&d_opt.params, &fake)?
            .mean_all()?
            .sub(&critic(&d_opt.params, &real)?.mean_all()?)?;
        let gp = gradient_penalty(&d_opt.params, &real, &fake, &mut rng)?;
        let d_loss = wasserstein.add(&gp)?;
        let params: Vec<&Var> = d_opt.params.iter().collect();
        let d_grads = grad(&[&d_loss], &params, None, false)?;
        d_opt.step(&d_grads)?;

        let fake = generator(&g_opt.params, &z)?;
        let g_loss = critic(&d_opt.params, &fake)?.mean_all()?.neg()?;
        let params: Vec<&Var> = g_opt.params.iter().collect();
        let g_grads = grad(&[&g_loss], &params, None, false)?;
        g_opt.step(&g_grads)?;

        if it % 25 == 0 {
            let dist = fake
                .value()
                .sub(real.value())?
                .abs()?
                .mean_all()?
                .to_scalar()?;
            println!(
                "{it:4}  {:11.4}  {:16.4}  {:14.4}  {dist:11.4}",
                d_loss.value().to_scalar()?,
                gp.value().to_scalar()?,
                g_loss.value().to_scalar()?
            );
        }
    }
    Ok(())
}
