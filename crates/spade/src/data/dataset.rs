//! A dataset opened from a [`Layout`]: samples loaded with the reference's transforms and label
//! rules, and batched into tensors.
use std::path::Path;

use rand::seq::SliceRandom;
use rand::Rng;
use tessera_tensor::{Device, Tensor};

use super::io::{read_id_map, read_rgb};
use super::layout::{Layout, SamplePaths};
use super::transform::{Geometry, Preprocess, TransformParams};
use super::{DataError, Result};
use crate::semantic::IdMap;

/// Training reads the `train` split and may flip; testing reads the `val` split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Train,
    Test,
}

/// How a dataset is read: its layout, its label rules and its transform.
#[derive(Debug, Clone)]
pub struct DatasetOptions {
    pub layout: Layout,
    pub phase: Phase,
    /// Number of classes; the label value 255 becomes this id ("unknown").
    pub label_nc: usize,
    /// One more one-hot channel, for the unknown id.
    pub contain_dontcare_label: bool,
    /// Do not read instance maps.
    pub no_instance: bool,
    pub preprocess: Preprocess,
    pub load_size: u32,
    pub crop_size: u32,
    /// Width / height of the generator's output.
    pub aspect_ratio: f32,
    /// Random horizontal flips (the reference's training default; `--no_flip` turns it off).
    pub flip: bool,
}

impl DatasetOptions {
    /// The one-hot channel count: valid label ids are `0..channels()`.
    pub fn label_channels(&self) -> usize {
        self.label_nc + usize::from(self.contain_dontcare_label)
    }

    fn geometry(&self) -> Geometry {
        Geometry {
            preprocess: self.preprocess,
            load_size: self.load_size,
            crop_size: self.crop_size,
            aspect_ratio: self.aspect_ratio,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(DataError::Options(msg));
        if self.label_nc == 0 {
            return bad("label_nc must be at least 1".into());
        }
        if self.load_size == 0 || self.crop_size == 0 {
            return bad(format!(
                "load size {} and crop size {} must be positive",
                self.load_size, self.crop_size
            ));
        }
        if !(self.aspect_ratio.is_finite() && self.aspect_ratio > 0.0) {
            return bad(format!(
                "aspect ratio {} must be positive",
                self.aspect_ratio
            ));
        }
        Ok(())
    }
}

/// One transformed sample: the photo as 3×H×W floats in [-1, 1], its label map (ids after the
/// label rules) and instance map, all H×W.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedSample {
    pub width: u32,
    pub height: u32,
    pub image: Vec<f32>,
    pub labels: IdMap,
    pub instances: Option<IdMap>,
}

/// A batch: photos `[n, 3, h, w]` in [-1, 1] and per sample its label map and instance map,
/// the input of [`crate::semantic_input`].
#[derive(Debug, Clone)]
pub struct SampleBatch {
    pub images: Tensor,
    pub labels: Vec<IdMap>,
    pub instances: Option<Vec<IdMap>>,
}

/// A dataset's paired files and how to read them.
#[derive(Debug, Clone)]
pub struct Dataset {
    options: DatasetOptions,
    samples: Vec<SamplePaths>,
}

impl Dataset {
    /// Lists and pairs the files of `options.layout`; errors if the folder holds no sample or a
    /// photo lacks its maps. Files are read (and checked) as samples are loaded.
    pub fn open(options: DatasetOptions) -> Result<Dataset> {
        options.validate()?;
        let samples = options
            .layout
            .samples(options.phase, !options.no_instance)?;
        Ok(Dataset { options, samples })
    }

    pub fn options(&self) -> &DatasetOptions {
        &self.options
    }

    pub fn samples(&self) -> &[SamplePaths] {
        &self.samples
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Loads sample `index`: reads and checks its files, draws crop and flip from `rng`, and
    /// transforms the photo and its maps alike.
    pub fn load(&self, index: usize, rng: &mut impl Rng) -> Result<LoadedSample> {
        let paths = &self.samples[index];
        let photo = read_rgb(&paths.image)?;
        let (w, h) = photo.dimensions();
        let o = &self.options;
        let labels = read_label_map(&paths.label, o.label_nc, o.contain_dontcare_label)?;
        check_same_size(&labels, &paths.label, w, h, &paths.image)?;
        let instances = match (&paths.instance, self.options.no_instance) {
            (Some(path), false) => {
                let map = read_id_map(path)?;
                check_same_size(&map, path, w, h, &paths.image)?;
                Some(map)
            }
            _ => None,
        };
        let geometry = self.options.geometry();
        let params: TransformParams = geometry.draw(w, h, self.options.flip, rng);
        let photo = geometry.apply_rgb(&photo, params);
        let (ow, oh) = photo.dimensions();
        let plane = ow as usize * oh as usize;
        // ToTensor then Normalize(0.5, 0.5), computed as the reference does.
        let mut image = vec![0f32; 3 * plane];
        for (i, px) in photo.pixels().enumerate() {
            for c in 0..3 {
                image[c * plane + i] = (f32::from(px[c]) / 255.0 - 0.5) / 0.5;
            }
        }
        Ok(LoadedSample {
            width: ow,
            height: oh,
            image,
            labels: geometry.apply_ids(&labels, params),
            instances: instances.map(|m| geometry.apply_ids(&m, params)),
        })
    }

    /// Loads the samples at `indices` into one batch on `device`. All must come out the same size
    /// (always true for the cropping and `fixed` modes).
    pub fn batch(
        &self,
        indices: &[usize],
        rng: &mut impl Rng,
        device: Device,
    ) -> Result<SampleBatch> {
        let mut loaded: Vec<LoadedSample> = Vec::with_capacity(indices.len());
        for &i in indices {
            let sample = self.load(i, rng)?;
            if let Some(first) = loaded.first() {
                if (first.width, first.height) != (sample.width, sample.height) {
                    return Err(DataError::Options(format!(
                        "{} comes out {}×{} but {} comes out {}×{}; with preprocess mode {} \
                         photos of different sizes need batch size 1",
                        self.samples[indices[0]].image.display(),
                        first.width,
                        first.height,
                        self.samples[i].image.display(),
                        sample.width,
                        sample.height,
                        self.options.preprocess
                    )));
                }
            }
            loaded.push(sample);
        }
        let (w, h) = loaded.first().map_or((0, 0), |s| (s.width, s.height));
        let images = loaded
            .iter()
            .flat_map(|s| s.image.iter().copied())
            .collect();
        let images = Tensor::from_vec(images, [loaded.len(), 3, h as usize, w as usize], device)?;
        let instances = loaded.iter().map(|s| s.instances.clone()).collect();
        Ok(SampleBatch {
            images,
            labels: loaded.into_iter().map(|s| s.labels).collect(),
            instances,
        })
    }

    /// One epoch's batches: sample indices shuffled by `rng`, cut into batches of `batch_size`,
    /// the last incomplete batch dropped (as the reference's training loader does).
    pub fn epoch(&self, batch_size: usize, rng: &mut impl Rng) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(rng);
        order
            .chunks_exact(batch_size.max(1))
            .map(<[usize]>::to_vec)
            .collect()
    }
}

/// Reads a label map and applies the label rules: 255 becomes `label_nc`, and every id must be
/// below the one-hot channel count, `label_nc + contain_dontcare_label`.
pub fn read_label_map(path: &Path, label_nc: usize, contain_dontcare_label: bool) -> Result<IdMap> {
    let mut map = read_id_map(path)?;
    let channels = label_nc + usize::from(contain_dontcare_label);
    for (i, id) in map.ids.iter_mut().enumerate() {
        let raw = *id;
        if raw == 255 {
            *id = label_nc as u32;
        }
        if *id as usize >= channels {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                x: (i % map.width) as u32,
                y: (i / map.width) as u32,
                value: raw,
                channels,
                label_nc,
                contain_dontcare: contain_dontcare_label,
            });
        }
    }
    Ok(map)
}

fn check_same_size(map: &IdMap, path: &Path, w: u32, h: u32, image: &Path) -> Result<()> {
    if (map.width, map.height) == (w as usize, h as usize) {
        return Ok(());
    }
    Err(DataError::SizeMismatch {
        label: path.to_path_buf(),
        label_w: map.width as u32,
        label_h: map.height as u32,
        image: image.to_path_buf(),
        image_w: w,
        image_h: h,
    })
}
