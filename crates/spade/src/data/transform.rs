//! The reference's preprocessing: resize (bicubic for photos, nearest for id maps), crop and
//! horizontal flip, with one set of parameters shared by a photo and its maps.
use std::fmt;
use std::str::FromStr;

use image::imageops::{self, FilterType};
use image::RgbImage;
use rand::Rng;

use super::DataError;
use crate::semantic::IdMap;

/// The reference's `--preprocess_mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preprocess {
    /// Resize to load×load (aspect ignored), then a random crop.
    ResizeAndCrop,
    /// A random crop of the photo as it is.
    Crop,
    /// Width to `load_size`, height keeping the aspect.
    ScaleWidth,
    ScaleWidthAndCrop,
    /// Shorter side to `load_size`, keeping the aspect.
    ScaleShortside,
    ScaleShortsideAndCrop,
    /// Width `crop_size`, height `round(crop_size / aspect_ratio)` (Cityscapes: 512×256).
    Fixed,
    /// No resize; sides rounded to multiples of 32, as the reference does for this mode.
    None,
}

const NAMES: [(&str, Preprocess); 8] = [
    ("resize_and_crop", Preprocess::ResizeAndCrop),
    ("crop", Preprocess::Crop),
    ("scale_width", Preprocess::ScaleWidth),
    ("scale_width_and_crop", Preprocess::ScaleWidthAndCrop),
    ("scale_shortside", Preprocess::ScaleShortside),
    (
        "scale_shortside_and_crop",
        Preprocess::ScaleShortsideAndCrop,
    ),
    ("fixed", Preprocess::Fixed),
    ("none", Preprocess::None),
];

impl FromStr for Preprocess {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, DataError> {
        NAMES
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, p)| *p)
            .ok_or_else(|| {
                let names: Vec<_> = NAMES.iter().map(|(n, _)| *n).collect();
                DataError::Options(format!(
                    "unknown preprocess mode {s:?}; expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

impl fmt::Display for Preprocess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = NAMES
            .iter()
            .find(|(_, p)| p == self)
            .map_or("?", |(n, _)| n);
        f.write_str(name)
    }
}

/// The sizes a [`Preprocess`] works with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    pub preprocess: Preprocess,
    pub load_size: u32,
    pub crop_size: u32,
    pub aspect_ratio: f32,
}

/// One draw of the random parts of the transform, shared by a photo and its maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransformParams {
    pub crop_x: u32,
    pub crop_y: u32,
    pub flip: bool,
}

impl Preprocess {
    fn crops(self) -> bool {
        matches!(
            self,
            Preprocess::ResizeAndCrop
                | Preprocess::Crop
                | Preprocess::ScaleWidthAndCrop
                | Preprocess::ScaleShortsideAndCrop
        )
    }
}

fn scaled(side: u32, num: u32, den: u32) -> u32 {
    ((u64::from(side) * u64::from(num) / u64::from(den.max(1))) as u32).max(1)
}

impl Geometry {
    /// The crop's size: crop_size wide, crop_size / aspect_ratio high. The reference crops a square
    /// whatever the aspect; the two agree at aspect 1, and this way a crop mode with another aspect
    /// yields what the generator produces.
    fn crop(&self) -> (u32, u32) {
        let h = (self.crop_size as f32 / self.aspect_ratio).round().max(1.0) as u32;
        (self.crop_size, h)
    }

    /// The size a `w`×`h` photo is resized to before cropping.
    pub fn resized(&self, w: u32, h: u32) -> (u32, u32) {
        let load = self.load_size;
        match self.preprocess {
            Preprocess::ResizeAndCrop => (load, load),
            Preprocess::Crop => (w, h),
            Preprocess::ScaleWidth | Preprocess::ScaleWidthAndCrop => (load, scaled(load, h, w)),
            Preprocess::ScaleShortside | Preprocess::ScaleShortsideAndCrop => {
                if w <= h {
                    (load, scaled(load, h, w))
                } else {
                    (scaled(load, w, h), load)
                }
            }
            Preprocess::Fixed => self.crop(),
            Preprocess::None => {
                let round32 = |s: u32| ((s as f32 / 32.0).round() as u32 * 32).max(32);
                (round32(w), round32(h))
            }
        }
    }

    /// The size of a `w`×`h` photo after the transform.
    pub fn output(&self, w: u32, h: u32) -> (u32, u32) {
        if self.preprocess.crops() {
            self.crop()
        } else {
            self.resized(w, h)
        }
    }

    /// Draws crop offsets (uniform over the positions that fit) and, when `flip` is on, a
    /// horizontal flip with probability ½.
    pub fn draw(&self, w: u32, h: u32, flip: bool, rng: &mut impl Rng) -> TransformParams {
        let (rw, rh) = self.resized(w, h);
        let (cw, ch) = self.output(w, h);
        TransformParams {
            crop_x: rng.random_range(0..=rw.saturating_sub(cw)),
            crop_y: rng.random_range(0..=rh.saturating_sub(ch)),
            flip: flip && rng.random_bool(0.5),
        }
    }

    /// Resizes (bicubic), crops and flips a photo.
    pub fn apply_rgb(&self, image: &RgbImage, params: TransformParams) -> RgbImage {
        let (rw, rh) = self.resized(image.width(), image.height());
        let (cw, ch) = self.output(image.width(), image.height());
        let resized = if (rw, rh) == image.dimensions() {
            image.clone()
        } else {
            // Catmull–Rom is PIL's BICUBIC kernel (a = −0.5).
            imageops::resize(image, rw, rh, FilterType::CatmullRom)
        };
        // Pixels of a crop that reaches past the resized photo are black, as PIL's crop leaves them.
        RgbImage::from_fn(cw, ch, |x, y| {
            let sx = if params.flip { cw - 1 - x } else { x } + params.crop_x;
            let sy = y + params.crop_y;
            if sx < rw && sy < rh {
                *resized.get_pixel(sx, sy)
            } else {
                image::Rgb([0, 0, 0])
            }
        })
    }

    /// Resizes (nearest), crops and flips an id map.
    pub fn apply_ids(&self, map: &IdMap, params: TransformParams) -> IdMap {
        let (w, h) = (map.width as u32, map.height as u32);
        let (rw, rh) = self.resized(w, h);
        let (cw, ch) = self.output(w, h);
        let source = |dst, out, len| nearest_source(dst, out, len) as usize;
        let mut ids = Vec::with_capacity(cw as usize * ch as usize);
        for y in 0..ch {
            for x in 0..cw {
                let rx = if params.flip { cw - 1 - x } else { x } + params.crop_x;
                let ry = y + params.crop_y;
                ids.push(if rx < rw && ry < rh {
                    map.ids[source(ry, rh, h) * map.width + source(rx, rw, w)]
                } else {
                    0
                });
            }
        }
        IdMap::new(map.source.clone(), ch as usize, cw as usize, ids)
    }
}

/// The source index PIL's NEAREST reads for target index `dst` when resizing `len` to `out`:
/// the source pixel under the target pixel's centre.
fn nearest_source(dst: u32, out: u32, len: u32) -> u32 {
    let s = ((f64::from(dst) + 0.5) * f64::from(len) / f64::from(out)) as u32;
    s.min(len - 1)
}

/// Resizes an id map to `width`×`height` with PIL's NEAREST rule.
pub fn resize_nearest(map: &IdMap, width: usize, height: usize) -> IdMap {
    let (w, h) = (map.width as u32, map.height as u32);
    let ids = (0..height as u32)
        .flat_map(|y| {
            let sy = nearest_source(y, height as u32, h) as usize;
            (0..width as u32)
                .map(move |x| map.ids[sy * map.width + nearest_source(x, width as u32, w) as usize])
        })
        .collect();
    IdMap::new(map.source.clone(), height, width, ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn geometry(preprocess: Preprocess) -> Geometry {
        Geometry {
            preprocess,
            load_size: 12,
            crop_size: 8,
            aspect_ratio: 1.0,
        }
    }

    #[test]
    fn sizes_follow_each_mode() {
        assert_eq!(
            geometry(Preprocess::ResizeAndCrop).resized(30, 20),
            (12, 12)
        );
        assert_eq!(geometry(Preprocess::ResizeAndCrop).output(30, 20), (8, 8));
        assert_eq!(geometry(Preprocess::ScaleWidth).output(30, 20), (12, 8));
        assert_eq!(
            geometry(Preprocess::ScaleShortside).output(30, 20),
            (18, 12)
        );
        assert_eq!(geometry(Preprocess::Crop).resized(30, 20), (30, 20));
        assert_eq!(geometry(Preprocess::None).output(70, 20), (64, 32));
        let fixed = Geometry {
            crop_size: 16,
            aspect_ratio: 2.0,
            ..geometry(Preprocess::Fixed)
        };
        assert_eq!(fixed.output(100, 100), (16, 8));
        assert_eq!(
            "scale_width_and_crop".parse::<Preprocess>().unwrap(),
            Preprocess::ScaleWidthAndCrop
        );
        assert!("bogus".parse::<Preprocess>().is_err());
    }

    #[test]
    fn ids_resize_nearest_and_share_crop_and_flip() {
        // A 4×2 map doubled to 8×4 then cropped 4×4 at x=2 and flipped.
        let map = IdMap::new("test", 2, 4, vec![0, 1, 2, 3, 4, 5, 6, 7]);
        let g = Geometry {
            preprocess: Preprocess::ScaleWidthAndCrop,
            load_size: 8,
            crop_size: 4,
            aspect_ratio: 1.0,
        };
        let p = TransformParams {
            crop_x: 2,
            crop_y: 0,
            flip: true,
        };
        let out = g.apply_ids(&map, p);
        assert_eq!((out.width, out.height), (4, 4));
        // Resized columns 2..6 hold source columns 1,1,2,2; flipped: 2,2,1,1.
        assert_eq!(&out.ids[0..4], &[2, 2, 1, 1]);
        assert_eq!(&out.ids[12..16], &[6, 6, 5, 5]);
    }

    #[test]
    fn draws_stay_inside_and_flip_only_when_asked() {
        let g = geometry(Preprocess::ResizeAndCrop);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let draws: Vec<_> = (0..200).map(|_| g.draw(30, 20, true, &mut rng)).collect();
        assert!(draws.iter().all(|p| p.crop_x <= 4 && p.crop_y <= 4));
        assert!(draws.iter().any(|p| p.flip) && draws.iter().any(|p| !p.flip));
        assert!((0..50).all(|_| !g.draw(30, 20, false, &mut rng).flip));
    }
}
