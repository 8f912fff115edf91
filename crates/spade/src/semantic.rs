//! The conditioning tensor: one-hot label maps, the don't-care channel, and instance edges,
//! by the reference's rules.
//!
//! * A raw label value of 255 becomes `label_nc`, the "unknown" id, which has a channel only
//!   with `contain_dontcare_label`.
//! * Ids are used as they are: ADE20K's 0 ("other") is channel 0 and its classes 1..150 are
//!   channels 1..150 (the reference's ADE label shift never takes effect, and the pretrained
//!   weights expect this layout).
//! * An id ≥ the number of one-hot channels is [`Error::LabelOutOfRange`] naming the file, the
//!   pixel, the value and the valid range.
//! * The instance-edge channel (last, unless `no_instance`) is 1 where a pixel's instance id
//!   differs from one of its 4-neighbours, on both sides of a boundary. With `no_instance`,
//!   instance maps are ignored, as the reference does.
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use tessera_tensor::{Device, Tensor};

/// The raw value that means "unknown label".
pub const UNKNOWN_LABEL_VALUE: u32 = 255;

/// One integer map (labels or instance ids), row-major, with the file it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdMap {
    /// The file (or other source) named in errors.
    pub source: String,
    pub height: usize,
    pub width: usize,
    /// `height · width` ids, row by row.
    pub ids: Vec<u32>,
}

impl IdMap {
    pub fn new(source: impl Into<String>, height: usize, width: usize, ids: Vec<u32>) -> Self {
        IdMap {
            source: source.into(),
            height,
            width,
            ids,
        }
    }

    fn check_len(&self) -> Result<()> {
        if self.ids.len() != self.height * self.width || self.ids.is_empty() {
            return Err(Error::InputMap {
                file: self.source.clone(),
                why: format!(
                    "holds {} ids for a {}×{} map",
                    self.ids.len(),
                    self.height,
                    self.width
                ),
            });
        }
        Ok(())
    }
}

/// The instance-edge map of one instance map: 1.0 where a 4-neighbour has another id.
pub fn instance_edges(instances: &IdMap) -> Result<Vec<f32>> {
    instances.check_len()?;
    let (h, w) = (instances.height, instances.width);
    let id = |y: usize, x: usize| instances.ids[y * w + x];
    let mut edges = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            let v = id(y, x);
            let differs = (x > 0 && id(y, x - 1) != v)
                || (x + 1 < w && id(y, x + 1) != v)
                || (y > 0 && id(y - 1, x) != v)
                || (y + 1 < h && id(y + 1, x) != v);
            if differs {
                edges[y * w + x] = 1.0;
            }
        }
    }
    Ok(edges)
}

/// The conditioning tensor `[N, semantic_nc, H, W]` of a batch of label maps (and, unless the
/// config has `no_instance`, their instance maps, one per label map, same size).
pub fn semantic_input(
    config: &ModelConfig,
    labels: &[IdMap],
    instances: Option<&[IdMap]>,
) -> Result<Tensor> {
    let Some(first) = labels.first() else {
        return Err(Error::InputMap {
            file: "(batch)".into(),
            why: "no label maps given".into(),
        });
    };
    let (h, w) = (first.height, first.width);
    let (nc, snc) = (config.label_channels(), config.semantic_nc());
    let instances = if config.no_instance {
        None
    } else {
        let inst = instances.ok_or_else(|| Error::InputMap {
            file: first.source.clone(),
            why: "the model uses instance maps (no_instance is off) and none was given".into(),
        })?;
        if inst.len() != labels.len() {
            return Err(Error::InputMap {
                file: first.source.clone(),
                why: format!(
                    "{} instance maps for {} label maps",
                    inst.len(),
                    labels.len()
                ),
            });
        }
        Some(inst)
    };
    let plane = h * w;
    let mut out = vec![0f32; labels.len() * snc * plane];
    for (i, label) in labels.iter().enumerate() {
        label.check_len()?;
        if (label.height, label.width) != (h, w) {
            return Err(Error::InputMap {
                file: label.source.clone(),
                why: format!(
                    "is {}×{}, the batch's first map ({}) is {h}×{w}",
                    label.height, label.width, first.source
                ),
            });
        }
        let sample = &mut out[i * snc * plane..(i + 1) * snc * plane];
        for (p, &raw) in label.ids.iter().enumerate() {
            let id = if raw == UNKNOWN_LABEL_VALUE {
                config.label_nc as u32
            } else {
                raw
            };
            if id as usize >= nc {
                return Err(Error::LabelOutOfRange {
                    file: label.source.clone(),
                    x: p % w,
                    y: p / w,
                    value: raw,
                    max: nc - 1,
                    channels: nc,
                    label_nc: config.label_nc,
                    dontcare: if config.contain_dontcare_label {
                        " + 1 don't-care"
                    } else {
                        ", no don't-care label"
                    },
                });
            }
            sample[id as usize * plane + p] = 1.0;
        }
        if let Some(inst) = instances {
            let map = &inst[i];
            if (map.height, map.width) != (h, w) {
                return Err(Error::InputMap {
                    file: map.source.clone(),
                    why: format!(
                        "instance map is {}×{}, its label map {} is {h}×{w}",
                        map.height, map.width, label.source
                    ),
                });
            }
            sample[nc * plane..].copy_from_slice(&instance_edges(map)?);
        }
    }
    Ok(Tensor::from_vec(
        out,
        [labels.len(), snc, h, w],
        Device::Cpu,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(label_nc: usize, dontcare: bool, instances: bool) -> ModelConfig {
        ModelConfig {
            contain_dontcare_label: dontcare,
            no_instance: !instances,
            ..ModelConfig::base(label_nc)
        }
    }

    #[test]
    fn one_hot_puts_255_on_the_dontcare_channel_and_edges_last() {
        let c = config(3, true, true);
        let labels = IdMap::new("a.png", 2, 3, vec![0, 1, 2, 255, 3, 0]);
        let inst = IdMap::new("a_inst.png", 2, 3, vec![5, 5, 7, 5, 5, 7]);
        let t = semantic_input(&c, &[labels], Some(&[inst])).unwrap();
        assert_eq!(t.dims(), &[1, 5, 2, 3]);
        let v = t.to_vec().unwrap();
        let ch = |k: usize| v[k * 6..(k + 1) * 6].to_vec();
        assert_eq!(ch(0), [1., 0., 0., 0., 0., 1.]);
        assert_eq!(ch(3), [0., 0., 0., 1., 1., 0.]);
        // Column 1 and column 2 differ: both sides of the boundary are edges.
        assert_eq!(ch(4), [0., 1., 1., 0., 1., 1.]);
    }

    #[test]
    fn out_of_range_ids_name_the_file_pixel_and_range() {
        let c = config(3, false, false);
        let labels = IdMap::new("labels/x.png", 2, 2, vec![0, 1, 2, 7]);
        let err = semantic_input(&c, &[labels], None).unwrap_err().to_string();
        assert!(
            err.contains("labels/x.png") && err.contains("(1, 1)"),
            "{err}"
        );
        assert!(err.contains("holds 7") && err.contains("0..=2"), "{err}");
        // Without a don't-care channel, 255 has nowhere to go either.
        let labels = IdMap::new("y.png", 1, 1, vec![255]);
        let err = semantic_input(&c, &[labels], None).unwrap_err().to_string();
        assert!(err.contains("holds 255"), "{err}");
    }

    #[test]
    fn mismatched_maps_are_errors_naming_the_file() {
        let c = config(3, false, true);
        let a = IdMap::new("a.png", 2, 2, vec![0; 4]);
        let b = IdMap::new("b.png", 2, 3, vec![0; 6]);
        let err = semantic_input(&c, &[a.clone(), b.clone()], Some(&[a.clone(), b]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("b.png"), "{err}");
        assert!(semantic_input(&c, std::slice::from_ref(&a), None)
            .unwrap_err()
            .to_string()
            .contains("a.png"));
        let short = IdMap::new("s.png", 2, 2, vec![0; 3]);
        assert!(semantic_input(&config(3, false, false), &[short], None).is_err());
    }
}
