//! Folder layouts: where the photos, label maps and instance maps of each dataset live, and how a
//! photo is paired with its maps.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::dataset::Phase;
use super::{DataError, Result};

/// Extensions read as photos (the formats this build of `image` decodes).
const PHOTO_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "gif"];

/// A dataset's folder layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// ADE20K (ADEChallengeData2016): under `root`, at any depth, `*_train_*.jpg` photos with
    /// `*_train_*.png` label maps of the same name (`_val_` for the test phase), as
    /// `images/training/` and `annotations/training/` hold them.
    Ade20k { root: PathBuf },
    /// COCO-Stuff: `root/{train,val}_img/*.jpg`, `{train,val}_label/*.png`, `{train,val}_inst/*.png`.
    Coco { root: PathBuf },
    /// Cityscapes: `root/leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png`,
    /// `root/gtFine/{train,val}/<city>/<name>_gtFine_labelIds.png` and `…_gtFine_instanceIds.png`.
    Cityscapes { root: PathBuf },
    /// Any dataset: photos in `images`, label maps of the same file stem in `labels`, and
    /// optionally instance maps in `instances` (the reference's `--image_dir`, `--label_dir`,
    /// `--instance_dir`).
    Custom {
        images: PathBuf,
        labels: PathBuf,
        instances: Option<PathBuf>,
    },
}

/// The files of one sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamplePaths {
    pub image: PathBuf,
    pub label: PathBuf,
    pub instance: Option<PathBuf>,
}

/// Every file under `dir` (recursively when `recursive`), sorted.
fn files(dir: &Path, recursive: bool) -> Result<Vec<PathBuf>> {
    let io_err = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.is_dir() {
        return Err(DataError::MissingDir {
            dir: dir.to_path_buf(),
            what: "dataset".into(),
        });
    }
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).map_err(io_err)? {
            let path = entry.map_err(io_err)?.path();
            if path.is_dir() {
                if recursive {
                    pending.push(path);
                }
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string()
}

fn require_dir(dir: PathBuf, what: &str) -> Result<PathBuf> {
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(DataError::MissingDir {
            dir,
            what: what.to_string(),
        })
    }
}

/// Keys files by `key` (None: not part of the dataset). Two files with one key are ambiguous.
fn keyed(
    paths: Vec<PathBuf>,
    key: impl Fn(&Path) -> Option<String>,
) -> Result<BTreeMap<String, PathBuf>> {
    let mut map = BTreeMap::new();
    for path in paths {
        if let Some(k) = key(&path) {
            if let Some(first) = map.insert(k.clone(), path.clone()) {
                return Err(DataError::Options(format!(
                    "{} and {} both stand for sample {k:?}",
                    first.display(),
                    path.display()
                )));
            }
        }
    }
    Ok(map)
}

/// Pairs each photo with the label (and instance) map of the same key; a photo without a label
/// map, or a label map without a photo, is an error naming the file.
fn pair(
    images: BTreeMap<String, PathBuf>,
    mut labels: BTreeMap<String, PathBuf>,
    mut instances: Option<BTreeMap<String, PathBuf>>,
    dirs: (&Path, &Path, Option<&Path>),
) -> Result<Vec<SamplePaths>> {
    let mut samples = Vec::with_capacity(images.len());
    for (key, image) in images {
        let label = labels.remove(&key).ok_or_else(|| DataError::Unpaired {
            path: image.clone(),
            what: "label map",
            stem: key.clone(),
            dir: dirs.1.to_path_buf(),
        })?;
        let instance = match instances.as_mut() {
            Some(map) => Some(map.remove(&key).ok_or_else(|| DataError::Unpaired {
                path: image.clone(),
                what: "instance map",
                stem: key.clone(),
                dir: dirs.2.unwrap_or(dirs.1).to_path_buf(),
            })?),
            None => None,
        };
        samples.push(SamplePaths {
            image,
            label,
            instance,
        });
    }
    if let Some((key, label)) = labels.into_iter().next() {
        return Err(DataError::Unpaired {
            path: label,
            what: "photo",
            stem: key,
            dir: dirs.0.to_path_buf(),
        });
    }
    Ok(samples)
}

impl Layout {
    /// Whether this layout provides instance maps.
    pub fn has_instances(&self) -> bool {
        match self {
            Layout::Ade20k { .. } => false,
            Layout::Coco { .. } | Layout::Cityscapes { .. } => true,
            Layout::Custom { instances, .. } => instances.is_some(),
        }
    }

    /// Lists and pairs the samples of `phase`; instance maps are looked up when `with_instances`.
    pub fn samples(&self, phase: Phase, with_instances: bool) -> Result<Vec<SamplePaths>> {
        let split = match phase {
            Phase::Train => "train",
            Phase::Test => "val",
        };
        let photo = |p: &Path| has_extension(p, &PHOTO_EXTENSIONS);
        let png = |p: &Path| has_extension(p, &["png"]);
        let by_stem = |paths: Vec<PathBuf>, keep: &dyn Fn(&Path) -> bool| {
            keyed(paths, |p| keep(p).then(|| stem(p)))
        };
        let (samples, searched) = match self {
            Layout::Ade20k { root } => {
                let all = files(root, true)?;
                let tag = format!("_{split}_");
                let in_split = |p: &Path| file_name(p).contains(&tag);
                let images = by_stem(all.clone(), &|p| {
                    in_split(p) && has_extension(p, &["jpg", "jpeg"])
                })?;
                let labels = by_stem(all, &|p| in_split(p) && png(p))?;
                let dirs = (root.as_path(), root.as_path(), None);
                (pair(images, labels, None, dirs)?, root.clone())
            }
            Layout::Coco { root } => {
                let image_dir = require_dir(root.join(format!("{split}_img")), "COCO photo")?;
                let label_dir = require_dir(root.join(format!("{split}_label")), "COCO label")?;
                let images = by_stem(files(&image_dir, false)?, &photo)?;
                let labels = by_stem(files(&label_dir, false)?, &png)?;
                let (instances, inst_dir) = if with_instances {
                    let dir = require_dir(root.join(format!("{split}_inst")), "COCO instance")?;
                    (Some(by_stem(files(&dir, false)?, &png)?), Some(dir))
                } else {
                    (None, None)
                };
                let dirs = (
                    image_dir.as_path(),
                    label_dir.as_path(),
                    inst_dir.as_deref(),
                );
                (pair(images, labels, instances, dirs)?, image_dir.clone())
            }
            Layout::Cityscapes { root } => {
                let image_dir =
                    require_dir(root.join("leftImg8bit").join(split), "Cityscapes photo")?;
                let label_dir = require_dir(root.join("gtFine").join(split), "Cityscapes label")?;
                let suffixed = |suffix: &'static str| {
                    move |p: &Path| file_name(p).strip_suffix(suffix).map(str::to_string)
                };
                let images = keyed(files(&image_dir, true)?, suffixed("_leftImg8bit.png"))?;
                let annotations = files(&label_dir, true)?;
                let labels = keyed(annotations.clone(), suffixed("_gtFine_labelIds.png"))?;
                let instances = with_instances
                    .then(|| keyed(annotations, suffixed("_gtFine_instanceIds.png")))
                    .transpose()?;
                let dirs = (
                    image_dir.as_path(),
                    label_dir.as_path(),
                    Some(label_dir.as_path()),
                );
                (pair(images, labels, instances, dirs)?, image_dir.clone())
            }
            Layout::Custom {
                images,
                labels,
                instances,
            } => {
                let image_map = by_stem(files(images, false)?, &photo)?;
                let label_map = by_stem(files(labels, false)?, &png)?;
                let instance_map = match (with_instances, instances) {
                    (true, Some(dir)) => Some(by_stem(files(dir, false)?, &png)?),
                    (true, None) => {
                        return Err(DataError::Options(
                            "instance maps are on but no instance folder was given; \
                             pass an instance folder or --no-instance"
                                .into(),
                        ))
                    }
                    (false, _) => None,
                };
                let dirs = (images.as_path(), labels.as_path(), instances.as_deref());
                (
                    pair(image_map, label_map, instance_map, dirs)?,
                    images.clone(),
                )
            }
        };
        if samples.is_empty() {
            return Err(DataError::Empty {
                dir: searched,
                hint: format!(
                    " (looked for {} photos of the {split} split)",
                    PHOTO_EXTENSIONS.join("/")
                ),
            });
        }
        Ok(samples)
    }
}
