//! Data for SPADE: the procedural landscape dataset, folder layouts of the reference datasets
//! (ADE20K, COCO-Stuff, Cityscapes) and a custom one, the reference transforms and label rules,
//! batching, and the colour palette for label maps.
//!
//! Label rules follow the reference: a label map holds one class id per pixel (8-bit grey or
//! palette PNG; a palette PNG's indices are the ids); the value 255 becomes `label_nc`, the
//! "unknown" id; the one-hot map has `label_nc + contain_dontcare_label` channels, and any id at or
//! above that count is an error that names the file, the pixel and the allowed range (the
//! reference crashes with a CUDA scatter index error there). ADE20K keeps the reference's
//! effective behaviour: raw values 0..=150 are channel ids as they are, channel 0 meaning "other"
//! (its label shift never takes effect), so that imported ADE20K generators see what they were
//! trained on.
//!
//! Every file read is checked: its header's size is bounded before any pixel is decoded, the label
//! map must have its image's size, and each image must pair with a label map of the same name.

mod dataset;
mod io;
mod layout;
pub mod palette;
pub mod procedural;
#[cfg(test)]
mod tests;
mod transform;

use std::path::PathBuf;

pub use dataset::{read_label_map, Dataset, DatasetOptions, LoadedSample, Phase, SampleBatch};
pub use io::{read_id_map, read_rgb, write_atomic, write_png_atomic, MAX_PIXELS, MAX_SIDE};
pub use layout::{Layout, SamplePaths};
pub use transform::{resize_nearest, Preprocess, TransformParams};

/// What went wrong reading a dataset or writing its files; every variant names the file or folder.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: corrupt or unsupported image: {reason}", path.display())]
    Decode { path: PathBuf, reason: String },
    #[error(
        "{}: header says {width}×{height} pixels; the limit is {MAX_SIDE} per side and {MAX_PIXELS} in all",
        path.display()
    )]
    TooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
    },
    #[error("{}: {what} is {found}; expected {expected}", path.display())]
    Format {
        path: PathBuf,
        what: &'static str,
        found: String,
        expected: &'static str,
    },
    #[error(
        "{}: label map is {label_w}×{label_h} but its image {} is {image_w}×{image_h}",
        label.display(), image.display()
    )]
    SizeMismatch {
        label: PathBuf,
        label_w: u32,
        label_h: u32,
        image: PathBuf,
        image_w: u32,
        image_h: u32,
    },
    #[error(
        "{}: pixel ({x}, {y}) has label id {value}, outside 0..{channels} \
         (label_nc {label_nc}{dontcare}); {advice}",
        path.display(),
        dontcare = if *contain_dontcare { " + 1 don't-care channel" } else { "" },
        advice = if *value == 255 {
            "255 marks unknown pixels and needs --contain-dontcare-label"
        } else {
            "raise --label-nc or remap the labels"
        }
    )]
    LabelOutOfRange {
        path: PathBuf,
        x: u32,
        y: u32,
        value: u32,
        channels: usize,
        label_nc: usize,
        contain_dontcare: bool,
    },
    #[error("{}: no images found{hint}", dir.display())]
    Empty { dir: PathBuf, hint: String },
    #[error("{}: no {what} for sample {stem:?} in {}", path.display(), dir.display())]
    Unpaired {
        path: PathBuf,
        what: &'static str,
        stem: String,
        dir: PathBuf,
    },
    #[error("{}: {what} folder is missing", dir.display())]
    MissingDir { dir: PathBuf, what: String },
    #[error("invalid data option: {0}")]
    Options(String),
    #[error("{}: cannot encode PNG: {reason}", path.display())]
    Encode { path: PathBuf, reason: String },
    #[error(transparent)]
    Tensor(#[from] tessera_tensor::Error),
}

pub type Result<T> = std::result::Result<T, DataError>;
