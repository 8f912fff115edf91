//! The model folder: one self-describing safetensors file per scale, plus the pyramid (see the
//! crate docs, "Model folder format").
use crate::config::TrainConfig;
use crate::error::model_error;
use crate::model::{SinGan, TrainedScale};
use crate::net::{Critic, Generator, CHANNELS, PAD};
use crate::pyramid::Pyramid;
use crate::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tessera_nn::checkpoint::safetensors::{from_bytes, save_state_dict};
use tessera_nn::{Module, ModuleExt};
use tessera_tensor::{Device, Rng, Tensor};

/// The `format` metadata value of every file.
pub const FORMAT: &str = "tessera-singan";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The file holding the reals of every scale and the run's settings.
pub const PYRAMID_FILE: &str = "pyramid.safetensors";
/// Prefix of the generator's tensors in a scale file.
pub const GENERATOR_PREFIX: &str = "netG.";
/// Prefix of the critic's tensors in a scale file.
pub const CRITIC_PREFIX: &str = "netD.";
/// Limits on what a header may declare, so a hostile file cannot make us allocate much.
const MAX_SCALES: usize = 64;
const MAX_SIDE: usize = 1 << 16;

/// The file name of scale `n`: `scale_00.safetensors`, `scale_01.safetensors`, ….
pub fn scale_file_name(n: usize) -> String {
    format!("scale_{n:02}.safetensors")
}

/// The metadata every file carries.
fn common_metadata(model: &SinGan) -> Result<BTreeMap<String, String>> {
    let json = |what: &str, e: serde_json::Error| crate::error::invalid(what, e.to_string());
    Ok(BTreeMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        ("num_scales".to_string(), model.reals.len().to_string()),
        (
            "scale_factor".to_string(),
            model.pyramid.scale_factor.to_string(),
        ),
        ("scale1".to_string(), model.pyramid.scale1.to_string()),
        (
            "shapes".to_string(),
            serde_json::to_string(&model.pyramid.shapes).map_err(|e| json("shapes", e))?,
        ),
        (
            "config".to_string(),
            serde_json::to_string(&model.config).map_err(|e| json("config", e))?,
        ),
    ]))
}

fn io_error(path: &Path, e: std::io::Error) -> crate::Error {
    model_error(path, e.to_string())
}

/// Starts a model folder: creates `dir` and writes the pyramid file. Refuses a folder that
/// already holds a model.
pub fn create(dir: &Path, model: &SinGan) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    for name in [PYRAMID_FILE.to_string(), scale_file_name(0)] {
        if dir.join(&name).exists() {
            return Err(model_error(
                dir.join(name),
                "the folder already holds a model: resume it or train into another folder",
            ));
        }
    }
    save_pyramid(dir, model)
}

/// Writes `dir/pyramid.safetensors`: every real and the run-wide metadata.
fn save_pyramid(dir: &Path, model: &SinGan) -> Result<()> {
    let tensors: BTreeMap<String, Tensor> = model
        .reals
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("real.{i}"), r.clone()))
        .collect();
    save_state_dict(
        dir.join(PYRAMID_FILE),
        &tensors,
        Some(&common_metadata(model)?),
    )?;
    Ok(())
}

/// Writes scale `n` of `model` to `dir/scale_NN.safetensors` (atomically: a temporary file in
/// the folder, synced, then renamed).
pub fn save_scale(dir: &Path, model: &SinGan, n: usize) -> Result<()> {
    let scale = &model.scales[n];
    let mut tensors = BTreeMap::new();
    for (name, t) in scale.generator.state_dict() {
        tensors.insert(format!("{GENERATOR_PREFIX}{name}"), t);
    }
    if let Some(critic) = &scale.critic {
        for (name, t) in critic.state_dict() {
            tensors.insert(format!("{CRITIC_PREFIX}{name}"), t);
        }
    }
    tensors.insert("real".to_string(), model.reals[n].clone());
    if n == 0 {
        tensors.insert("z_opt".to_string(), model.z_star.clone());
    }
    let mut metadata = common_metadata(model)?;
    metadata.insert("scale".into(), n.to_string());
    metadata.insert("width".into(), scale.generator.width().to_string());
    metadata.insert("noise_amp".into(), scale.noise_amp.to_string());
    save_state_dict(dir.join(scale_file_name(n)), &tensors, Some(&metadata))?;
    Ok(())
}

/// Saves every trained scale of `model` and its pyramid into `dir` (a new folder, or one
/// holding the same model).
pub fn save(dir: &Path, model: &SinGan) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    save_pyramid(dir, model)?;
    (0..model.scales.len()).try_for_each(|n| save_scale(dir, model, n))
}

/// One file's tensors and metadata, after checking its format and version.
struct File {
    path: PathBuf,
    tensors: BTreeMap<String, Tensor>,
    meta: BTreeMap<String, String>,
}

impl File {
    fn read(path: PathBuf) -> Result<File> {
        let bytes = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
        let (tensors, meta) = from_bytes(&bytes, &path)?;
        let file = File {
            path,
            tensors,
            meta,
        };
        let format = file.meta.get("format").map(String::as_str);
        if format != Some(FORMAT) {
            return Err(model_error(
                &file.path,
                format!(
                    "not a tessera-singan model file (format {format:?}, expected \"{FORMAT}\")"
                ),
            ));
        }
        let version = file.field("format_version")?;
        if version != FORMAT_VERSION.to_string() {
            return Err(model_error(
                &file.path,
                format!("format version {version}; this build reads version {FORMAT_VERSION}"),
            ));
        }
        Ok(file)
    }

    fn field(&self, key: &str) -> Result<&str> {
        self.meta
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| model_error(&self.path, format!("metadata lacks \"{key}\"")))
    }

    fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<T> {
        let v = self.field(key)?;
        v.parse().map_err(|_| {
            model_error(
                &self.path,
                format!("metadata \"{key}\" = {v:?} does not parse"),
            )
        })
    }

    fn json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T> {
        serde_json::from_str(self.field(key)?)
            .map_err(|e| model_error(&self.path, format!("metadata \"{key}\": {e}")))
    }

    fn tensor(&self, name: &str, dims: &[usize]) -> Result<Tensor> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| model_error(&self.path, format!("lacks the tensor \"{name}\"")))?;
        if t.dims() != dims {
            return Err(model_error(
                &self.path,
                format!("tensor \"{name}\" is {}, expected {dims:?}", t.shape()),
            ));
        }
        Ok(t.clone())
    }

    /// The tensors under `prefix`, with it taken off.
    fn module_state(&self, prefix: &str) -> BTreeMap<String, Tensor> {
        self.tensors
            .iter()
            .filter_map(|(k, t)| Some((k.strip_prefix(prefix)?.to_string(), t.clone())))
            .collect()
    }

    /// The run-wide metadata: (pyramid, config).
    fn header(&self) -> Result<(Pyramid, TrainConfig)> {
        let shapes: Vec<[usize; 2]> = self.json("shapes")?;
        let num_scales: usize = self.parse("num_scales")?;
        if shapes.is_empty()
            || shapes.len() > MAX_SCALES
            || shapes.len() != num_scales
            || shapes.iter().flatten().any(|&s| s == 0 || s > MAX_SIDE)
        {
            return Err(model_error(
                &self.path,
                format!(
                    "{num_scales} scales with shapes {shapes:?}: need 1 to {MAX_SCALES} scales, each side 1 to {MAX_SIDE}"
                ),
            ));
        }
        let pyramid = Pyramid {
            scale_factor: self.parse("scale_factor")?,
            scale1: self.parse("scale1")?,
            shapes,
        };
        Ok((pyramid, self.json("config")?))
    }
}

/// The scale files present in `dir`, in order; they must be numbered 0, 1, … without a gap.
fn scale_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    let mut indices = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| io_error(dir, e))?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_prefix("scale_")
            .and_then(|r| r.strip_suffix(".safetensors"))
            .and_then(|n| n.parse::<usize>().ok())
        {
            indices.push(n);
        }
    }
    indices.sort_unstable();
    if let Some(gap) = indices.iter().enumerate().find(|&(i, &n)| i != n) {
        return Err(model_error(
            dir,
            format!(
                "the scale files are not numbered from 0 without a gap (found {})",
                scale_file_name(*gap.1)
            ),
        ));
    }
    Ok(indices
        .iter()
        .map(|&n| dir.join(scale_file_name(n)))
        .collect())
}

/// Loads the model in `dir`: every scale file present (checked against each other: format
/// version, scale factor, shapes, settings, tensor shapes), and the pyramid file when the model
/// is incomplete (its reals are needed to resume) or when there are no scale files yet.
/// Errors name the file at fault.
pub fn load(dir: &Path) -> Result<SinGan> {
    let files = scale_files(dir)?
        .into_iter()
        .map(File::read)
        .collect::<Result<Vec<_>>>()?;
    let pyramid_path = dir.join(PYRAMID_FILE);
    let pyramid_file = if pyramid_path.exists() {
        Some(File::read(pyramid_path)?)
    } else {
        None
    };
    let Some(reference) = files.first().or(pyramid_file.as_ref()) else {
        return Err(model_error(
            dir,
            "holds no model (no scale_00.safetensors nor pyramid.safetensors)",
        ));
    };
    let (pyramid, config) = reference.header()?;
    for file in files.iter().chain(&pyramid_file) {
        let (p, c) = file.header()?;
        if p != pyramid || c != config {
            return Err(model_error(
                &file.path,
                format!(
                    "belongs to another model than {} (scale factor, shapes or settings differ)",
                    reference.path.display()
                ),
            ));
        }
    }
    let num_scales = pyramid.shapes.len();
    if files.len() > num_scales {
        return Err(model_error(
            &files[num_scales].path,
            format!("the model has only {num_scales} scales"),
        ));
    }
    let image_dims = |n: usize| {
        let [h, w] = pyramid.shapes[n];
        [1, CHANNELS, h, w]
    };
    let mut reals = Vec::with_capacity(num_scales);
    for n in 0..num_scales {
        reals.push(match (files.get(n), &pyramid_file) {
            (Some(f), _) => f.tensor("real", &image_dims(n))?,
            (None, Some(p)) => p.tensor(&format!("real.{n}"), &image_dims(n))?,
            (None, None) => {
                return Err(model_error(
                    dir.join(PYRAMID_FILE),
                    format!("missing: the model has {} of {num_scales} scales and no pyramid file to resume from", files.len()),
                ))
            }
        });
    }
    let [h0, w0] = pyramid.shapes[0];
    let z_star_dims = [1, CHANNELS, h0 + 2 * PAD, w0 + 2 * PAD];
    let z_star = match files.first() {
        Some(f) => f.tensor("z_opt", &z_star_dims)?,
        None => Tensor::zeros(z_star_dims, Device::Cpu)?,
    };
    let mut scales = Vec::with_capacity(files.len());
    for (n, file) in files.iter().enumerate() {
        scales.push(load_scale(file, n, &config)?);
    }
    Ok(SinGan {
        config,
        pyramid,
        reals,
        z_star,
        scales,
    })
}

/// The generator (and critic, if stored) of one scale file.
fn load_scale(file: &File, n: usize, config: &TrainConfig) -> Result<TrainedScale> {
    let scale: usize = file.parse("scale")?;
    let width: usize = file.parse("width")?;
    let noise_amp: f32 = file.parse("noise_amp")?;
    if scale != n {
        return Err(model_error(
            &file.path,
            format!("holds scale {scale}, expected {n}"),
        ));
    }
    if width == 0 || width > 4096 || !noise_amp.is_finite() {
        return Err(model_error(
            &file.path,
            format!("width {width} or noise_amp {noise_amp} out of range"),
        ));
    }
    if width != config.width_for_scale(n) {
        return Err(model_error(
            &file.path,
            format!(
                "width {width}, but the settings give scale {n} width {}",
                config.width_for_scale(n)
            ),
        ));
    }
    // The weights are overwritten by the file's: the seed does not matter.
    let mut rng = Rng::seed(0);
    let mut generator = Generator::new(width, &mut rng)?;
    generator
        .load_state_dict(&file.module_state(GENERATOR_PREFIX), true)
        .map_err(|e| model_error(&file.path, format!("generator: {e}")))?;
    generator.set_training(false);
    generator.set_requires_grad(false);
    let critic_state = file.module_state(CRITIC_PREFIX);
    let critic = if critic_state.is_empty() {
        None
    } else {
        let mut critic = Critic::new(width, &mut rng)?;
        critic
            .load_state_dict(&critic_state, true)
            .map_err(|e| model_error(&file.path, format!("critic: {e}")))?;
        critic.set_training(false);
        critic.set_requires_grad(false);
        Some(critic)
    };
    Ok(TrainedScale {
        generator,
        noise_amp,
        critic,
    })
}
