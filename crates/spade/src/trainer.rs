//! Training: the reference's alternating G and D steps, two-time-scale Adam, the linear
//! learning-rate decay, and resumable checkpoints of the whole training state.
use crate::config::ModelConfig;
use crate::discriminator::{MultiscaleDiscriminator, ScaleOutputs};
use crate::encoder::{reparameterize, ConvEncoder};
use crate::error::{config_error, Error, Result};
use crate::generator::SpadeGenerator;
use crate::init::init_xavier;
use crate::loss::{
    discriminator_gan_losses, feature_matching, generator_gan_loss, split_fake_real,
};
use std::collections::BTreeMap;
use std::path::Path;
use tessera_autograd::{grad, no_grad, Var};
use tessera_gan::{kl_divergence, VggPerceptualLoss};
use tessera_nn::checkpoint::Checkpoint;
use tessera_nn::optim::{Adam, AdamConfig, LinearDecay};
use tessera_nn::{join, Module, ModuleExt, Param};
use tessera_tensor::{Device, Rng, Tensor};

/// Optimization and loss options (the reference's `train_options` that are not architecture).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Base learning rate (`--lr`, 2e-4).
    pub lr: f64,
    /// Adam betas without TTUR (`--beta1` 0.5, `--beta2` 0.999).
    pub beta1: f64,
    pub beta2: f64,
    /// `--no_TTUR`: both networks at `lr` with (beta1, beta2). With TTUR (the default) G runs
    /// at lr/2 and D at 2·lr, both with betas (0, 0.9).
    pub no_ttur: bool,
    /// Epochs at the full rate (`--niter`, 50) and of linear decay to zero (`--niter_decay`,
    /// 0). The paper's ADE20K and Cityscapes runs use 100 and 100.
    pub niter: usize,
    pub niter_decay: usize,
    pub lambda_feat: f32,
    pub lambda_vgg: f32,
    pub lambda_kld: f32,
    /// `--no_ganFeat_loss`.
    pub no_ganfeat_loss: bool,
    /// Xavier gain of the init (`--init_variance`, 0.02).
    pub init_gain: f32,
    /// Seed of the init and of the VAE noise.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            lr: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            no_ttur: false,
            niter: 50,
            niter_decay: 0,
            lambda_feat: 10.0,
            lambda_vgg: 10.0,
            lambda_kld: 0.05,
            no_ganfeat_loss: false,
            init_gain: crate::init::INIT_GAIN,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// G's base learning rate: lr/2 with TTUR, lr without.
    pub fn lr_g(&self) -> f64 {
        if self.no_ttur {
            self.lr
        } else {
            self.lr / 2.0
        }
    }
    /// D's base learning rate: 2·lr with TTUR, lr without.
    pub fn lr_d(&self) -> f64 {
        if self.no_ttur {
            self.lr
        } else {
            self.lr * 2.0
        }
    }
    /// (0, 0.9) with TTUR, (beta1, beta2) without.
    pub fn betas(&self) -> (f64, f64) {
        if self.no_ttur {
            (self.beta1, self.beta2)
        } else {
            (0.0, 0.9)
        }
    }

    fn to_pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("lr", self.lr.to_string()),
            ("beta1", self.beta1.to_string()),
            ("beta2", self.beta2.to_string()),
            ("no_TTUR", self.no_ttur.to_string()),
            ("niter", self.niter.to_string()),
            ("niter_decay", self.niter_decay.to_string()),
            ("lambda_feat", self.lambda_feat.to_string()),
            ("lambda_vgg", self.lambda_vgg.to_string()),
            ("lambda_kld", self.lambda_kld.to_string()),
            ("no_ganFeat_loss", self.no_ganfeat_loss.to_string()),
            ("init_variance", self.init_gain.to_string()),
            ("seed", self.seed.to_string()),
        ]
    }

    fn from_metadata(meta: &BTreeMap<String, String>) -> Result<Self> {
        fn get<T: std::str::FromStr>(meta: &BTreeMap<String, String>, k: &str) -> Result<T> {
            let v = meta
                .get(&format!("{TRAIN_PREFIX}{k}"))
                .ok_or_else(|| config_error(k, "missing from the stored training options"))?;
            v.parse()
                .map_err(|_| config_error(k, format!("cannot parse {v:?}")))
        }
        Ok(TrainConfig {
            lr: get(meta, "lr")?,
            beta1: get(meta, "beta1")?,
            beta2: get(meta, "beta2")?,
            no_ttur: get(meta, "no_TTUR")?,
            niter: get(meta, "niter")?,
            niter_decay: get(meta, "niter_decay")?,
            lambda_feat: get(meta, "lambda_feat")?,
            lambda_vgg: get(meta, "lambda_vgg")?,
            lambda_kld: get(meta, "lambda_kld")?,
            no_ganfeat_loss: get(meta, "no_ganFeat_loss")?,
            init_gain: get(meta, "init_variance")?,
            seed: get(meta, "seed")?,
        })
    }
}

/// One training batch: the conditioning tensor [N, semantic_nc, H, W] and the real images
/// [N, 3, H, W] in [−1, 1].
#[derive(Clone, Debug)]
pub struct Batch {
    pub semantics: Tensor,
    pub image: Tensor,
}

/// What a generator step computed: each loss term (weighted, as summed) and the fake images.
#[derive(Clone, Debug)]
pub struct GeneratorStep {
    pub gan: f32,
    pub feat: Option<f32>,
    pub vgg: Option<f32>,
    pub kld: Option<f32>,
    pub total: f32,
    /// The generated images [N, 3, H, W].
    pub fake: Tensor,
}

/// The discriminator's hinge terms and their sum.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiscriminatorStep {
    pub fake: f32,
    pub real: f32,
    pub total: f32,
}

const MODEL_PREFIX: &str = "model.";
const TRAIN_PREFIX: &str = "train.";
const KIND_KEY: &str = "kind";
const KIND: &str = "tessera-spade trainer";

/// Generator, discriminator, encoder (VAE mode), their optimizers, and the step and epoch
/// counters.
///
/// Per batch, as the reference: [`Trainer::generator_step`] then
/// [`Trainer::discriminator_step`] on the same batch. G's optimizer covers G and E. Fake and
/// real go through D together as `[fake; real]`; the D step regenerates the fake without a
/// graph (with new noise in VAE mode). Call [`Trainer::set_epoch`] at the start of each epoch
/// for the learning-rate schedule.
pub struct Trainer {
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub generator: SpadeGenerator,
    pub discriminator: MultiscaleDiscriminator,
    pub encoder: Option<ConvEncoder>,
    pub vgg: Option<VggPerceptualLoss>,
    opt_g: Adam,
    opt_d: Adam,
    rng: Rng,
    /// Generator steps taken.
    pub step: u64,
    /// The epoch being trained (0-based).
    pub epoch: usize,
}

fn prefixed(prefix: &str, m: &dyn Module) -> Vec<(String, Param)> {
    m.named_params()
        .into_iter()
        .map(|(n, p)| (join(prefix, &n), p))
        .collect()
}

impl Trainer {
    /// Fresh networks with the reference's Xavier init (gain `train.init_gain`), in training
    /// mode. `vgg` turns the perceptual loss on (the reference's default; its weights are the
    /// user's).
    pub fn new(
        model: &ModelConfig,
        train: &TrainConfig,
        vgg: Option<VggPerceptualLoss>,
    ) -> Result<Self> {
        model.validate()?;
        let mut rng = Rng::seed(train.seed);
        let generator = SpadeGenerator::new(model, &mut rng)?;
        let discriminator = MultiscaleDiscriminator::new(model, &mut rng)?;
        let encoder = if model.use_vae {
            Some(ConvEncoder::new(model, &mut rng)?)
        } else {
            None
        };
        init_xavier(&generator, train.init_gain, &mut rng)?;
        init_xavier(&discriminator, train.init_gain, &mut rng)?;
        if let Some(e) = &encoder {
            init_xavier(e, train.init_gain, &mut rng)?;
        }
        let (b1, b2) = train.betas();
        let mut g_params = prefixed("G", &generator);
        if let Some(e) = &encoder {
            g_params.extend(prefixed("E", e));
        }
        let opt_g = Adam::new(g_params, AdamConfig::new(train.lr_g()).betas(b1, b2))?;
        let opt_d = Adam::new(
            prefixed("D", &discriminator),
            AdamConfig::new(train.lr_d()).betas(b1, b2),
        )?;
        Ok(Trainer {
            model: model.clone(),
            train: train.clone(),
            generator,
            discriminator,
            encoder,
            vgg,
            opt_g,
            opt_d,
            rng,
            step: 0,
            epoch: 0,
        })
    }

    /// Moves G, D, E and the VGG loss to `device`; the steps then run there (batches are moved
    /// to it, the optimizers' moments follow at their next step).
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        self.generator.to_device(device)?;
        self.discriminator.to_device(device)?;
        if let Some(e) = &self.encoder {
            e.to_device(device)?;
        }
        if let Some(v) = &self.vgg {
            v.vgg.to_device(device)?;
        }
        Ok(())
    }

    /// The device the networks are on.
    pub fn device(&self) -> Device {
        self.generator.device()
    }

    /// `batch`'s label maps and images as constants on the trainer's device.
    fn batch_on_device(&self, batch: &Batch) -> Result<(Var, Var)> {
        let device = self.device();
        Ok((
            Var::constant(batch.semantics.to_device(device)?),
            Var::constant(batch.image.to_device(device)?),
        ))
    }

    /// Sets both learning rates for `epoch` (0-based): constant for `niter` epochs, then
    /// linearly to zero over `niter_decay` (each network from its own base rate).
    pub fn set_epoch(&mut self, epoch: usize) {
        self.epoch = epoch;
        let t = &self.train;
        LinearDecay::new(t.lr_g(), t.niter, t.niter_decay).apply(&mut self.opt_g, epoch);
        LinearDecay::new(t.lr_d(), t.niter, t.niter_decay).apply(&mut self.opt_d, epoch);
    }

    /// The current learning rates (G, D).
    pub fn learning_rates(&self) -> (f64, f64) {
        (self.opt_g.lr(), self.opt_d.lr())
    }

    fn check_batch(&self, batch: &Batch) -> Result<()> {
        let (s, i) = (batch.semantics.dims(), batch.image.dims());
        let ok = s.len() == 4
            && i.len() == 4
            && s[1] == self.model.semantic_nc()
            && i[1] == 3
            && s[0] == i[0]
            && s[0] > 0
            && s[2..] == i[2..];
        if !ok {
            return Err(crate::error::shape_error(
                "Trainer",
                format!(
                    "a batch needs semantics [N, {}, H, W] and images [N, 3, H, W], got {} and {}",
                    self.model.semantic_nc(),
                    batch.semantics.shape(),
                    batch.image.shape()
                ),
            ));
        }
        Ok(())
    }

    /// The fake images, and in VAE mode the encoder's (μ, log σ²) of the real ones.
    fn generate_fake(&mut self, seg: &Var, real: &Var) -> Result<(Var, Option<(Var, Var)>)> {
        match &self.encoder {
            Some(e) => {
                let (mu, logvar) = e.forward(real)?;
                let z = reparameterize(&mu, &logvar, &mut self.rng)?;
                Ok((self.generator.forward(seg, Some(&z))?, Some((mu, logvar))))
            }
            None => Ok((self.generator.forward(seg, None)?, None)),
        }
    }

    /// D's outputs on `[cat(seg, fake); cat(seg, real)]`, split into (fake, real).
    fn discriminate(
        &self,
        seg: &Var,
        fake: &Var,
        real: &Var,
    ) -> Result<(ScaleOutputs, ScaleOutputs)> {
        let fake_in = Var::concat(&[seg, fake], 1)?;
        let real_in = Var::concat(&[seg, real], 1)?;
        let both = Var::concat(&[&fake_in, &real_in], 0)?;
        split_fake_real(&self.discriminator.forward(&both)?)
    }

    /// One generator (and encoder) update: hinge + feature matching + VGG (if given) + KL (VAE).
    pub fn generator_step(&mut self, batch: &Batch) -> Result<GeneratorStep> {
        // Inside a rayon worker, the kernels' forks skip the hand-off from the calling thread.
        tessera_autograd::on_worker_thread(|| self.generator_step_here(batch))
    }

    fn generator_step_here(&mut self, batch: &Batch) -> Result<GeneratorStep> {
        self.check_batch(batch)?;
        let (seg, real) = self.batch_on_device(batch)?;
        let (fake, stats) = self.generate_fake(&seg, &real)?;
        let (pred_fake, pred_real) = self.discriminate(&seg, &fake, &real)?;
        let gan = generator_gan_loss(&pred_fake)?;
        let mut total = gan.clone();
        let value = |v: &Var| v.value().to_scalar();
        let feat = if self.train.no_ganfeat_loss {
            None
        } else {
            let f = feature_matching(&pred_fake, &pred_real, self.train.lambda_feat)?;
            total = total.add(&f)?;
            Some(value(&f)?)
        };
        let vgg = match &self.vgg {
            Some(v) => {
                let l = v.loss(&fake, &real)?.mul_scalar(self.train.lambda_vgg)?;
                total = total.add(&l)?;
                Some(value(&l)?)
            }
            None => None,
        };
        let kld = match &stats {
            Some((mu, logvar)) => {
                let l = kl_divergence(mu, logvar)?.mul_scalar(self.train.lambda_kld)?;
                total = total.add(&l)?;
                Some(value(&l)?)
            }
            None => None,
        };
        let total = tessera_gan::check_finite("generator loss", total)?;
        let vars = self.opt_g.vars();
        let wrt: Vec<&Var> = vars.iter().collect();
        let grads = grad(&[&total], &wrt, None, false)?;
        let grads: Vec<Tensor> = grads.iter().map(|g| g.value().clone()).collect();
        self.opt_g.step(&grads)?;
        self.step += 1;
        Ok(GeneratorStep {
            gan: value(&gan)?,
            feat,
            vgg,
            kld,
            total: value(&total)?,
            fake: fake.value().clone(),
        })
    }

    /// One discriminator update on a freshly generated (detached) fake.
    pub fn discriminator_step(&mut self, batch: &Batch) -> Result<DiscriminatorStep> {
        tessera_autograd::on_worker_thread(|| self.discriminator_step_here(batch))
    }

    fn discriminator_step_here(&mut self, batch: &Batch) -> Result<DiscriminatorStep> {
        self.check_batch(batch)?;
        let (seg, real) = self.batch_on_device(batch)?;
        let fake = no_grad(|| self.generate_fake(&seg, &real))?.0.detach();
        let (pred_fake, pred_real) = self.discriminate(&seg, &fake, &real)?;
        let (loss_fake, loss_real) = discriminator_gan_losses(&pred_fake, &pred_real)?;
        let total = tessera_gan::check_finite("discriminator loss", loss_fake.add(&loss_real)?)?;
        let vars = self.opt_d.vars();
        let wrt: Vec<&Var> = vars.iter().collect();
        let grads = grad(&[&total], &wrt, None, false)?;
        let grads: Vec<Tensor> = grads.iter().map(|g| g.value().clone()).collect();
        self.opt_d.step(&grads)?;
        Ok(DiscriminatorStep {
            fake: loss_fake.value().to_scalar()?,
            real: loss_real.value().to_scalar()?,
            total: total.value().to_scalar()?,
        })
    }

    /// Everything needed to resume: G, D and E (prefixes `G.`, `D.`, `E.`), both optimizers,
    /// step, epoch, and both configurations.
    pub fn to_checkpoint(&self) -> Checkpoint {
        let mut ckpt = Checkpoint::new();
        ckpt.add_module("G", &self.generator);
        ckpt.add_module("D", &self.discriminator);
        if let Some(e) = &self.encoder {
            ckpt.add_module("E", e);
        }
        ckpt.optimizers.insert("G".into(), self.opt_g.state());
        ckpt.optimizers.insert("D".into(), self.opt_d.state());
        let meta = &mut ckpt.metadata;
        meta.insert(KIND_KEY.into(), KIND.into());
        meta.insert("step".into(), self.step.to_string());
        meta.insert("epoch".into(), self.epoch.to_string());
        self.model.to_metadata(MODEL_PREFIX, meta);
        for (k, v) in self.train.to_pairs() {
            meta.insert(format!("{TRAIN_PREFIX}{k}"), v);
        }
        ckpt
    }

    /// Writes the training state atomically (temporary file, fsync, rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(self.to_checkpoint().save(path)?)
    }

    /// A trainer restored from a checkpoint written by [`Trainer::save`], with the model and
    /// training options stored in it. The VAE noise continues from a generator reseeded with
    /// the seed and the step, so a resumed run draws other noise than an uninterrupted one.
    pub fn load(path: impl AsRef<Path>, vgg: Option<VggPerceptualLoss>) -> Result<Self> {
        let path = path.as_ref();
        let ckpt = Checkpoint::load(path)?;
        let err = |why: String| Error::Checkpoint {
            path: path.to_path_buf(),
            why,
        };
        if ckpt.metadata.get(KIND_KEY).map(String::as_str) != Some(KIND) {
            return Err(err("not a tessera-spade training checkpoint".into()));
        }
        let model = ModelConfig::from_metadata(MODEL_PREFIX, &ckpt.metadata)
            .map_err(|e| err(format!("stored model options: {e}")))?;
        let train = TrainConfig::from_metadata(&ckpt.metadata)
            .map_err(|e| err(format!("stored training options: {e}")))?;
        let counter = |k: &str| -> Result<u64> {
            ckpt.metadata
                .get(k)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| err(format!("missing or unreadable {k}")))
        };
        let (step, epoch) = (counter("step")?, counter("epoch")? as usize);
        let mut trainer = Trainer::new(&model, &train, vgg)?;
        let load = |r: Result<()>| r.map_err(|e| err(e.to_string()));
        load(
            ckpt.load_module("G", &trainer.generator)
                .map_err(Error::from),
        )?;
        load(
            ckpt.load_module("D", &trainer.discriminator)
                .map_err(Error::from),
        )?;
        if let Some(e) = &trainer.encoder {
            load(ckpt.load_module("E", e).map_err(Error::from))?;
        }
        let opt = |name: &str| {
            ckpt.optimizers
                .get(name)
                .ok_or_else(|| err(format!("no optimizer state {name}")))
        };
        load(trainer.opt_g.load_state(opt("G")?).map_err(Error::from))?;
        load(trainer.opt_d.load_state(opt("D")?).map_err(Error::from))?;
        trainer.step = step;
        trainer.epoch = epoch;
        trainer.rng = Rng::seed(train.seed ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        Ok(trainer)
    }

    /// [`Trainer::load`], refusing ([`Error::Checkpoint`] naming the file and every differing
    /// option) a checkpoint written for another model configuration than `expected`.
    pub fn load_matching(
        path: impl AsRef<Path>,
        expected: &ModelConfig,
        vgg: Option<VggPerceptualLoss>,
    ) -> Result<Self> {
        let path = path.as_ref();
        let ckpt = Checkpoint::load(path)?;
        let stored = ModelConfig::from_metadata(MODEL_PREFIX, &ckpt.metadata).map_err(|e| {
            Error::Checkpoint {
                path: path.to_path_buf(),
                why: format!("stored model options: {e}"),
            }
        })?;
        let diff = stored.differences(expected);
        if !diff.is_empty() {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                why: format!(
                    "written for another model configuration (file vs requested): {}",
                    diff.join(", ")
                ),
            });
        }
        Trainer::load(path, vgg)
    }
}
