//! SPADE's VGG19 perceptual loss, with weights read from a user-given safetensors file.
//!
//! The network is torchvision's `vgg19().features` up to `relu5_1` (layer index 29): 3×3
//! convolutions with padding 1 and bias, each followed by ReLU, and 2×2 stride-2 max pools at
//! indices 4, 9, 18 and 27. Its parameters keep torchvision's names, `features.<i>.weight` and
//! `features.<i>.bias` for the convolutions at i = 0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25,
//! 28; other tensors in the file (deeper layers, the classifier) are ignored. Nothing is
//! downloaded: export the weights yourself, e.g. from PyTorch with
//! `safetensors.torch.save_file({f"features.{k}": v for k, v in vgg19(weights=...).features.state_dict().items()}, path)`.
//!
//! The loss (SPADE's `VGGLoss`) is
//!
//! ```text
//! L_VGG(x, y) = Σₖ wₖ · mean|φₖ(x) − φₖ(y)|,   w = (1/32, 1/16, 1/8, 1/4, 1)
//! ```
//!
//! with φ₁..φ₅ the activations at relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1, each mean over
//! all elements, and `y` (the real image) detached. The images go in as they are, in [−1, 1]:
//! SPADE applies no ImageNet mean/std normalization. SPADE multiplies the loss by
//! λ_vgg = 10; that weight is the caller's.
use crate::error::{check_finite, invalid};
use crate::{Error, Result};
use safetensors::{Dtype, SafeTensors};
use std::path::Path;
use tessera_autograd::{no_grad, Var};
use tessera_nn::{join, Conv2d, Conv2dConfig, Entry, Module};
use tessera_tensor::{Device, MaxPool2dParams, Rng, Tensor};

/// SPADE's weights of the relu1_1 … relu5_1 terms.
pub const SPADE_VGG_WEIGHTS: [f32; 5] = [1.0 / 32.0, 1.0 / 16.0, 1.0 / 8.0, 1.0 / 4.0, 1.0];

/// torchvision index and block (0-based) of every convolution up to conv5_1.
const CONVS: [(usize, usize); 13] = [
    (0, 0),
    (2, 0),
    (5, 1),
    (7, 1),
    (10, 2),
    (12, 2),
    (14, 2),
    (16, 2),
    (19, 3),
    (21, 3),
    (23, 3),
    (25, 3),
    (28, 4),
];

/// The torchvision indices of the convolutions whose ReLU output is a feature (relu1_1 …
/// relu5_1 are layers 1, 6, 11, 20, 29).
const FEATURE_CONVS: [usize; 5] = [0, 5, 10, 19, 28];

/// Channel widths of VGG19's five blocks; torchvision's are (64, 128, 256, 512, 512). Other
/// widths describe a narrowed VGG19 with the same layer indices (used by the tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vgg19Config {
    pub widths: [usize; 5],
}

impl Default for Vgg19Config {
    fn default() -> Self {
        Vgg19Config {
            widths: [64, 128, 256, 512, 512],
        }
    }
}

impl Vgg19Config {
    /// Every tensor the network needs, with its shape, in layer order.
    pub fn required_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let mut cin = 3;
        for (i, block) in CONVS {
            let cout = self.widths[block];
            out.push((format!("features.{i}.weight"), vec![cout, cin, 3, 3]));
            out.push((format!("features.{i}.bias"), vec![cout]));
            cin = cout;
        }
        out
    }
}

/// VGG19 `features` up to relu5_1, frozen (its parameters do not require grad).
pub struct Vgg19 {
    config: Vgg19Config,
    /// (torchvision index, block, layer).
    convs: Vec<(usize, usize, Conv2d)>,
}

impl std::fmt::Debug for Vgg19 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vgg19({:?})", self.config.widths)
    }
}

fn read_f32(view: &safetensors::tensor::TensorView<'_>) -> Vec<f32> {
    view.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

impl Vgg19 {
    /// Reads torchvision's VGG19 weights (`features.<i>.weight`/`bias`) from a safetensors file.
    pub fn from_safetensors(path: impl AsRef<Path>) -> Result<Vgg19> {
        Vgg19::from_safetensors_with(path, Vgg19Config::default())
    }

    /// Like [`Vgg19::from_safetensors`] for a VGG19 of other widths.
    pub fn from_safetensors_with(path: impl AsRef<Path>, config: Vgg19Config) -> Result<Vgg19> {
        let path = path.as_ref();
        let label = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| Error::WeightFile {
            file: label.clone(),
            why: e.to_string(),
        })?;
        Vgg19::from_safetensors_bytes(&bytes, config, &label)
    }

    /// Parses safetensors bytes; `label` names the source in errors. Every missing, mis-shaped
    /// or non-float32 tensor is reported in one [`Error::Weights`].
    pub fn from_safetensors_bytes(bytes: &[u8], config: Vgg19Config, label: &str) -> Result<Vgg19> {
        if config.widths.contains(&0) {
            return Err(invalid(
                "Vgg19",
                format!("zero width in {:?}", config.widths),
            ));
        }
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::WeightFile {
            file: label.to_string(),
            why: e.to_string(),
        })?;
        let mut missing = Vec::new();
        let mut mismatched = Vec::new();
        let mut wrong_dtype = Vec::new();
        let mut tensors = Vec::new();
        for (name, shape) in config.required_tensors() {
            match st.tensor(&name) {
                Err(_) => missing.push(name),
                Ok(view) if view.dtype() != Dtype::F32 => {
                    wrong_dtype.push((name, view.dtype().to_string()))
                }
                Ok(view) if view.shape() != shape.as_slice() => {
                    mismatched.push((name, shape, view.shape().to_vec()))
                }
                Ok(view) => tensors.push(Tensor::from_vec(read_f32(&view), shape, Device::Cpu)?),
            }
        }
        if !missing.is_empty() || !mismatched.is_empty() || !wrong_dtype.is_empty() {
            return Err(Error::Weights {
                file: label.to_string(),
                missing,
                mismatched,
                wrong_dtype,
            });
        }
        Vgg19::from_tensors(config, tensors)
    }

    /// Builds the network from tensors in the order of [`Vgg19Config::required_tensors`].
    fn from_tensors(config: Vgg19Config, tensors: Vec<Tensor>) -> Result<Vgg19> {
        let mut rng = Rng::seed(0);
        let mut convs = Vec::with_capacity(CONVS.len());
        let mut values = tensors.into_iter();
        let mut cin = 3;
        for (i, block) in CONVS {
            let cout = config.widths[block];
            let conv = Conv2d::new(Conv2dConfig::new(cin, cout, 3).padding(1), &mut rng)?;
            let (w, b) = (values.next(), values.next());
            let (Some(w), Some(b), Some(bias)) = (w, b, conv.bias.as_ref()) else {
                return Err(invalid("Vgg19", format!("no tensors for features.{i}")));
            };
            conv.weight.set(&format!("features.{i}.weight"), w)?;
            bias.set(&format!("features.{i}.bias"), b)?;
            conv.weight.set_requires_grad(false);
            bias.set_requires_grad(false);
            convs.push((i, block, conv));
            cin = cout;
        }
        Ok(Vgg19 { config, convs })
    }

    pub fn config(&self) -> Vgg19Config {
        self.config
    }

    /// Moves the weights to `device`.
    pub fn to_device(&self, device: Device) -> Result<()> {
        for (i, _, conv) in &self.convs {
            conv.weight.set(
                &format!("features.{i}.weight"),
                conv.weight.tensor().to_device(device)?,
            )?;
            if let Some(b) = &conv.bias {
                b.set(&format!("features.{i}.bias"), b.tensor().to_device(device)?)?;
            }
            conv.weight.set_requires_grad(false);
            if let Some(b) = &conv.bias {
                b.set_requires_grad(false);
            }
        }
        Ok(())
    }

    /// The activations at relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1 of `x` [N, 3, H, W]
    /// (H, W ≥ 16, so relu5_1 keeps a pixel after four 2×2 pools).
    pub fn features(&self, x: &Var) -> Result<Vec<Var>> {
        let d = x.dims();
        if d.len() != 4 || d[1] != 3 || d[2] < 16 || d[3] < 16 {
            return Err(invalid(
                "Vgg19",
                format!(
                    "expected images [N, 3, H, W] with H, W ≥ 16, got {}",
                    x.shape()
                ),
            ));
        }
        let pool = MaxPool2dParams::new(2, 2, 0);
        let mut h = x.clone();
        let mut block = 0;
        let mut out = Vec::with_capacity(5);
        for (i, b, conv) in &self.convs {
            if *b != block {
                h = h.max_pool2d(pool)?;
                block = *b;
            }
            h = conv.forward(&h)?.relu()?;
            if FEATURE_CONVS.contains(i) {
                out.push(h.clone());
            }
        }
        Ok(out)
    }
}

impl Module for Vgg19 {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        for (i, _, conv) in &self.convs {
            conv.visit(&join(prefix, &format!("features.{i}")), f);
        }
    }
    fn set_training(&mut self, _training: bool) {}
}

/// SPADE's perceptual loss on a frozen [`Vgg19`] (see the module docs for the formula).
#[derive(Debug)]
pub struct VggPerceptualLoss {
    pub vgg: Vgg19,
    /// Weights of the relu1_1 … relu5_1 terms; [`SPADE_VGG_WEIGHTS`] by default.
    pub weights: [f32; 5],
}

impl VggPerceptualLoss {
    pub fn new(vgg: Vgg19) -> Self {
        VggPerceptualLoss {
            vgg,
            weights: SPADE_VGG_WEIGHTS,
        }
    }

    /// `Σₖ wₖ · mean|φₖ(x) − φₖ(y)|` with `y` detached (its features are computed without
    /// recording a graph). `x` is the generated image, `y` the real one, same shape.
    pub fn loss(&self, x: &Var, y: &Var) -> Result<Var> {
        const LOSS: &str = "vgg_perceptual_loss";
        if x.shape() != y.shape() {
            return Err(invalid(
                LOSS,
                format!("x {} and y {} differ in shape", x.shape(), y.shape()),
            ));
        }
        let fx = self.vgg.features(x)?;
        let fy = no_grad(|| self.vgg.features(&y.detach()))?;
        let mut total: Option<Var> = None;
        for ((a, b), &w) in fx.iter().zip(&fy).zip(&self.weights) {
            let term = a.sub(b)?.abs()?.mean_all()?.mul_scalar(w)?;
            total = Some(match total {
                None => term,
                Some(t) => t.add(&term)?,
            });
        }
        let total = total.ok_or_else(|| invalid(LOSS, "no features"))?;
        check_finite(LOSS, total)
    }
}
