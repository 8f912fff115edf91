//! A procedural landscape dataset: random layered label maps and matching rendered photos, the
//! bundled data for the demo and the tests (no download, any size, any count).
//!
//! Each scene is laid out in resolution-independent coordinates (u, v) ∈ [0, 1]², so one seed
//! gives the same scene at every size:
//! - sky above a horizon, with cloud blobs; a mountain ridge from 1-D fractal noise, snow-capped
//!   when high; sometimes a line of hills in front;
//! - below the horizon, bands of water, sand and grass with wavy shores; sometimes a path winding
//!   to the horizon;
//! - objects on the ground, nearer ones larger and painted later: trees (crown and trunk),
//!   bushes, rocks with ragged outlines; flower patches in the grass.
//!
//! The photo is rendered per class (a sky gradient, water reflecting it, textured grass, sand,
//! rock and foliage from value noise, shading from a pseudo-normal against a random sun
//! direction), then a horizontal lighting gradient, a colour tint and per-pixel noise.
//!
//! Scene `i` of seed `s` depends only on `(s, i)` and the size: the same seed gives the same bytes
//! (on one platform: a few pixels go through the system's `sin`/`atan2`, whose last bit may differ
//! between C libraries), and the first `k` scenes do not depend on how many are written.
use std::path::Path;

use image::ExtendedColorType;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::io::{write_atomic, write_png_atomic};
use super::{DataError, Result};

/// Class names by id.
pub const CLASSES: [&str; 13] = [
    "sky", "cloud", "mountain", "snow", "hill", "water", "sand", "grass", "tree", "bush", "rock",
    "flower", "path",
];
/// The number of classes, the `--label-nc` to train on this dataset with.
pub const NUM_CLASSES: usize = CLASSES.len();

/// Display colours by class id (used by [`super::palette`]).
pub const CLASS_COLOURS: [[u8; 3]; NUM_CLASSES] = [
    [110, 170, 230],
    [235, 235, 245],
    [125, 105, 95],
    [250, 250, 253],
    [95, 140, 65],
    [35, 95, 185],
    [225, 205, 145],
    [75, 175, 55],
    [25, 95, 35],
    [125, 185, 85],
    [145, 145, 150],
    [235, 85, 155],
    [185, 145, 95],
];

const SKY: u8 = 0;
const CLOUD: u8 = 1;
const MOUNTAIN: u8 = 2;
const SNOW: u8 = 3;
const HILL: u8 = 4;
const WATER: u8 = 5;
const SAND: u8 = 6;
const GRASS: u8 = 7;
const TREE: u8 = 8;
const BUSH: u8 = 9;
const ROCK: u8 = 10;
const FLOWER: u8 = 11;
const PATH: u8 = 12;

/// Instance ids of objects start here; stuff pixels carry their class id as instance id, so the
/// instance edge map shows both class and object boundaries (as COCO-Stuff's instance maps do).
const FIRST_OBJECT_INSTANCE: u8 = 100;

/// One generated scene: row-major 8-bit class ids, instance ids and RGB pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scene {
    pub width: u32,
    pub height: u32,
    pub labels: Vec<u8>,
    pub instances: Vec<u8>,
    pub rgb: Vec<u8>,
}

/// What [`write_dataset`] writes.
#[derive(Debug, Clone)]
pub struct ProceduralOptions {
    pub count: usize,
    pub width: u32,
    pub height: u32,
    pub seed: u64,
    /// Also write `instances/` (8-bit instance id maps).
    pub instances: bool,
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seeded 2-D value noise: random values on the integer lattice, smoothly interpolated.
struct Noise {
    seed: u64,
}

impl Noise {
    fn lattice(&self, x: i64, y: i64) -> f32 {
        let h = splitmix64(
            self.seed
                ^ (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F),
        );
        (h >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Smooth noise in [0, 1).
    fn value(&self, x: f32, y: f32) -> f32 {
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
        let (ix, iy) = (x0 as i64, y0 as i64);
        let top = lerp(self.lattice(ix, iy), self.lattice(ix + 1, iy), sx);
        let bottom = lerp(self.lattice(ix, iy + 1), self.lattice(ix + 1, iy + 1), sx);
        lerp(top, bottom, sy)
    }

    /// Fractal (fBm) noise in [0, 1): `octaves` layers, each at twice the frequency and half the
    /// amplitude of the last.
    fn fractal(&self, x: f32, y: f32, octaves: u32) -> f32 {
        let (mut sum, mut norm, mut amp, mut freq) = (0.0, 0.0, 1.0, 1.0);
        for o in 0..octaves {
            // An offset per octave keeps the lattices of the octaves from lining up at the origin.
            let shift = 17.3 * o as f32;
            sum += amp * self.value(x * freq + shift, y * freq - shift);
            norm += amp;
            amp *= 0.5;
            freq *= 2.0;
        }
        sum / norm
    }
}

fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        lerp(a[0], b[0], t),
        lerp(a[1], b[1], t),
        lerp(a[2], b[2], t),
    ]
}

fn scale(c: [f32; 3], s: f32) -> [f32; 3] {
    [c[0] * s, c[1] * s, c[2] * s]
}

/// A 1-D ridge line: v = base − height·(floor + (1 − floor)·n(u)), n a contrast-stretched fBm.
struct Ridge {
    base: f32,
    height: f32,
    floor: f32,
    freq: f32,
    row: f32,
}

impl Ridge {
    fn at(&self, noise: &Noise, u: f32) -> f32 {
        // fBm bunches around ½; stretching it gives peaks and valleys rather than a level band.
        let n = ((noise.fractal(u * self.freq, self.row, 5) - 0.5) * 2.5 + 0.5).clamp(0.0, 1.0);
        self.base - self.height * (self.floor + (1.0 - self.floor) * n)
    }
}

#[derive(Clone, Copy)]
struct Ellipse {
    cu: f32,
    cv: f32,
    ru: f32,
    rv: f32,
}

impl Ellipse {
    fn dist2(&self, u: f32, v: f32) -> f32 {
        ((u - self.cu) / self.ru).powi(2) + ((v - self.cv) / self.rv).powi(2)
    }
}

/// A ground object, painted over the stuff classes in order of its base line.
struct Object {
    class: u8,
    shape: Ellipse,
    /// The v where it stands on the ground; nothing of it is below.
    base: f32,
    /// Trunk half-width in u (trees only).
    trunk: f32,
}

struct Layout {
    horizon: f32,
    mountains: Option<Ridge>,
    snowline: f32,
    hills: Option<Ridge>,
    clouds: Vec<Ellipse>,
    water_end: Option<f32>,
    sand_end: Option<f32>,
    grass_top: f32,
    /// Path: (u at the bottom edge, u at the grass top, wiggle phase).
    path: Option<(f32, f32, f32)>,
    objects: Vec<Object>,
    flowers: Vec<Ellipse>,
}

impl Layout {
    fn random(rng: &mut ChaCha8Rng, noise: &Noise) -> Layout {
        let horizon = rng.random_range(0.42..0.62);
        let mountains = rng.random_bool(0.85).then(|| Ridge {
            base: horizon,
            height: rng.random_range(0.12..(horizon - 0.08)),
            floor: rng.random_range(0.15..0.45),
            freq: rng.random_range(1.5..4.0),
            row: rng.random_range(0.0..1000.0),
        });
        // The snow line sits a fraction of the way down from the highest peak; only high ranges get snow.
        let snowline = match &mountains {
            Some(m) if m.height > 0.2 && rng.random_bool(0.7) => {
                let peak = (0..64)
                    .map(|i| m.at(noise, i as f32 / 63.0))
                    .fold(f32::INFINITY, f32::min);
                peak + rng.random_range(0.15..0.4) * (horizon - peak)
            }
            _ => -1.0,
        };
        let hills = rng.random_bool(0.5).then(|| Ridge {
            base: horizon,
            height: rng.random_range(0.03..0.09),
            floor: 0.2,
            freq: rng.random_range(1.0..3.0),
            row: rng.random_range(0.0..1000.0),
        });
        let sky_bottom = horizon - mountains.as_ref().map_or(0.0, |m| m.height);
        let clouds = (0..rng.random_range(0..=4))
            .map(|_| Ellipse {
                cu: rng.random_range(0.0..1.0),
                cv: rng.random_range(0.04..(sky_bottom - 0.02).max(0.05)),
                ru: rng.random_range(0.06..0.18),
                rv: rng.random_range(0.025..0.06),
            })
            .collect();
        let water_end = rng
            .random_bool(0.55)
            .then(|| horizon + rng.random_range(0.06..0.2));
        let sand_from = water_end.unwrap_or(horizon);
        let sand_end = rng
            .random_bool(if water_end.is_some() { 0.75 } else { 0.2 })
            .then(|| sand_from + rng.random_range(0.03..0.08));
        let grass_top = sand_end.unwrap_or(sand_from);
        let path = rng.random_bool(0.35).then(|| {
            (
                rng.random_range(0.25..0.75),
                rng.random_range(0.3..0.7),
                rng.random_range(0.0..std::f32::consts::TAU),
            )
        });

        let depth = |v: f32| ((v - horizon) / (1.0 - horizon)).clamp(0.0, 1.0);
        let grass_span = 1.0 - grass_top;
        let rock_top = water_end.unwrap_or(horizon);
        // (class, most of them, ground band top, base range within the band, size at the horizon
        // and its growth to the bottom edge, centre lift, radii, trunk half-width; sizes in units of size)
        let kinds = [
            (
                TREE,
                5,
                grass_top,
                0.02..0.45,
                (0.04, 0.14),
                1.4,
                (0.55, 0.95),
                0.08,
            ),
            (
                BUSH,
                4,
                grass_top,
                0.05..1.0,
                (0.02, 0.06),
                0.5,
                (0.9, 0.55),
                0.0,
            ),
            (
                ROCK,
                3,
                rock_top,
                0.05..1.0,
                (0.02, 0.07),
                0.45,
                (1.0, 0.7),
                0.0,
            ),
        ];
        let mut objects = Vec::new();
        for (class, most, top, band, (near, growth), lift, (ru, rv), trunk) in kinds {
            for _ in 0..rng.random_range(0..=most) {
                let base = top + rng.random_range(band.clone()) * (1.0 - top);
                let size = near + growth * depth(base);
                let shape = Ellipse {
                    cu: rng.random_range(0.0..1.0),
                    cv: base - lift * size,
                    ru: ru * size,
                    rv: rv * size,
                };
                objects.push(Object {
                    class,
                    shape,
                    base,
                    trunk: trunk * size,
                });
            }
        }
        objects.sort_by(|a, b| a.base.total_cmp(&b.base));
        let flowers = (0..rng.random_range(0..=3))
            .map(|_| Ellipse {
                cu: rng.random_range(0.0..1.0),
                cv: grass_top + rng.random_range(0.1..1.0) * grass_span,
                ru: rng.random_range(0.05..0.15),
                rv: rng.random_range(0.02..0.05),
            })
            .collect();
        Layout {
            horizon,
            mountains,
            snowline,
            hills,
            clouds,
            water_end,
            sand_end,
            grass_top,
            path,
            objects,
            flowers,
        }
    }

    /// The class of the background ("stuff") at (u, v), before objects are painted.
    fn stuff(&self, noise: &Noise, u: f32, v: f32, speckle: f32) -> u8 {
        let hill_top = self.hills.as_ref().map(|h| h.at(noise, u));
        let ridge = self.mountains.as_ref().map(|m| m.at(noise, u));
        if v < self.horizon {
            if hill_top.is_some_and(|t| v >= t) {
                return HILL;
            }
            if let Some(r) = ridge.filter(|&r| v >= r) {
                let ragged = 0.03 * (noise.fractal(u * 20.0, r * 7.0, 3) - 0.5);
                return if v < self.snowline + ragged {
                    SNOW
                } else {
                    MOUNTAIN
                };
            }
            let wisp = 0.5 * noise.fractal(u * 12.0, v * 12.0, 3);
            return if self.clouds.iter().any(|c| c.dist2(u, v) < 0.75 + wisp) {
                CLOUD
            } else {
                SKY
            };
        }
        let shore = |edge: f32, row: f32| edge + 0.03 * (noise.fractal(u * 6.0, row, 3) - 0.5);
        if self.water_end.is_some_and(|e| v < shore(e, 500.0)) {
            return WATER;
        }
        if self.sand_end.is_some_and(|e| v < shore(e, 700.0)) {
            return SAND;
        }
        if let Some((bottom, top, phase)) = self.path {
            // t runs from 0 at the bottom edge to 1 at the grass top; the path narrows with distance.
            let t = ((1.0 - v) / (1.0 - self.grass_top).max(1e-3)).clamp(0.0, 1.0);
            let centre = lerp(bottom, top, t) + 0.06 * (1.0 - t) * (phase + 5.0 * t).sin();
            if (u - centre).abs() < 0.004 + 0.1 * (1.0 - t) {
                return PATH;
            }
        }
        if speckle > 0.68 && self.flowers.iter().any(|f| f.dist2(u, v) < 1.0) {
            return FLOWER;
        }
        GRASS
    }

    /// The object (index) covering (u, v), the nearest one if several do.
    fn object(&self, noise: &Noise, u: f32, v: f32) -> Option<usize> {
        self.objects.iter().rposition(|o| {
            if v > o.base {
                return false;
            }
            let d2 = o.shape.dist2(u, v);
            match o.class {
                TREE => {
                    let crown = d2 < 1.0 + 0.5 * (noise.fractal(u * 30.0, v * 30.0, 3) - 0.5);
                    let trunk = v > o.shape.cv && (u - o.shape.cu).abs() < o.trunk;
                    crown || trunk
                }
                ROCK => {
                    let angle = (v - o.shape.cv).atan2(u - o.shape.cu);
                    let edge = 0.8 + 0.4 * noise.value(angle.cos() * 1.7 + 50.0, angle.sin() * 1.7);
                    d2 < edge * edge
                }
                _ => d2 < 1.0 + 0.3 * (noise.fractal(u * 25.0, v * 25.0, 2) - 0.5),
            }
        })
    }
}

/// Per-scene rendering choices.
struct Look {
    sun_u: f32,
    warmth: f32,
    exposure: f32,
    sky_top: [f32; 3],
    sky_horizon: [f32; 3],
    tints: [[f32; 3]; NUM_CLASSES],
    flower_colours: [[f32; 3]; 2],
}

const BASE_COLOURS: [[f32; 3]; NUM_CLASSES] = [
    [0.45, 0.65, 0.9],
    [0.96, 0.96, 0.97],
    [0.45, 0.41, 0.44],
    [0.93, 0.95, 0.99],
    [0.24, 0.42, 0.2],
    [0.55, 0.7, 0.85],
    [0.86, 0.77, 0.56],
    [0.3, 0.56, 0.18],
    [0.12, 0.32, 0.12],
    [0.22, 0.45, 0.16],
    [0.52, 0.5, 0.48],
    [0.9, 0.2, 0.2],
    [0.62, 0.5, 0.36],
];

const FLOWER_COLOURS: [[f32; 3]; 4] = [
    [0.9, 0.15, 0.15],
    [0.95, 0.85, 0.2],
    [0.96, 0.96, 0.96],
    [0.6, 0.3, 0.8],
];

impl Look {
    fn random(rng: &mut ChaCha8Rng) -> Look {
        let mut tints = BASE_COLOURS;
        for c in tints.iter_mut().flatten() {
            *c *= rng.random_range(0.88..1.12);
        }
        let sky_top = [
            rng.random_range(0.15..0.35),
            rng.random_range(0.35..0.55),
            rng.random_range(0.75..0.95),
        ];
        let warmth = rng.random_range(0.0..1.0);
        let sky_horizon = mix([0.72, 0.83, 0.95], [0.95, 0.78, 0.6], 0.6 * warmth * warmth);
        let first = rng.random_range(0..FLOWER_COLOURS.len());
        let second = (first + rng.random_range(1..FLOWER_COLOURS.len())) % FLOWER_COLOURS.len();
        Look {
            sun_u: rng.random_range(0.0..1.0),
            warmth,
            exposure: rng.random_range(0.85..1.1),
            sky_top,
            sky_horizon,
            tints,
            flower_colours: [FLOWER_COLOURS[first], FLOWER_COLOURS[second]],
        }
    }

    fn sky(&self, v: f32, horizon: f32) -> [f32; 3] {
        mix(
            self.sky_top,
            self.sky_horizon,
            (v / horizon).clamp(0.0, 1.0).powf(1.5),
        )
    }
}

/// Generates scene `index` of `seed` at `width`×`height`.
pub fn generate(seed: u64, index: u64, width: u32, height: u32) -> Scene {
    let scene_seed = splitmix64(seed ^ splitmix64(index));
    let mut rng = ChaCha8Rng::seed_from_u64(scene_seed);
    let noise = Noise {
        seed: splitmix64(scene_seed),
    };
    let layout = Layout::random(&mut rng, &noise);
    let look = Look::random(&mut rng);
    let (w, h) = (width as usize, height as usize);
    let mut labels = vec![0u8; w * h];
    let mut instances = vec![0u8; w * h];
    let mut rgb = vec![0u8; 3 * w * h];
    for y in 0..h {
        let v = (y as f32 + 0.5) / height as f32;
        for x in 0..w {
            let u = (x as f32 + 0.5) / width as f32;
            // Pixel-scale noise: flower speckles and sand grain stay a couple of pixels wide at any size.
            let speckle = noise.value(x as f32 * 0.5 + 900.0, y as f32 * 0.5);
            let (class, instance) = match layout.object(&noise, u, v) {
                Some(k) => (layout.objects[k].class, FIRST_OBJECT_INSTANCE + k as u8),
                None => {
                    let c = layout.stuff(&noise, u, v, speckle);
                    (c, c)
                }
            };
            let i = y * w + x;
            labels[i] = class;
            instances[i] = instance;
            let colour = shade(&layout, &look, &noise, class, u, v, speckle);
            for (c, out) in colour.iter().zip(&mut rgb[3 * i..3 * i + 3]) {
                let grain = rng.random_range(-0.025..0.025);
                *out = ((c + grain).clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
    Scene {
        width,
        height,
        labels,
        instances,
        rgb,
    }
}

/// The rendered colour of a pixel of `class` at (u, v).
fn shade(
    layout: &Layout,
    look: &Look,
    noise: &Noise,
    class: u8,
    u: f32,
    v: f32,
    speckle: f32,
) -> [f32; 3] {
    let tint = look.tints[class as usize];
    let fbm = |f: f32, octaves| noise.fractal(u * f, v * f, octaves);
    // Relief: the slope of a noise height field against the sun's side, brighter on slopes facing it.
    let relief = |f: f32| {
        let e = 0.5 / f;
        let slope = noise.fractal(u * f + e, v * f, 3) - noise.fractal(u * f - e, v * f, 3);
        let facing = if look.sun_u < 0.5 { -1.0 } else { 1.0 };
        (1.0 + 2.5 * slope * facing).clamp(0.6, 1.35)
    };
    let depth = ((v - layout.horizon) / (1.0 - layout.horizon)).clamp(0.0, 1.0);
    let colour = match class {
        SKY => look.sky(v, layout.horizon),
        CLOUD => {
            let c = scale(tint, 0.8 + 0.25 * fbm(12.0, 4));
            mix(c, look.sky_horizon, 0.15)
        }
        MOUNTAIN | SNOW => {
            let c = scale(tint, (0.75 + 0.4 * fbm(16.0, 4)) * relief(6.0));
            // Aerial perspective: distant rock takes on the colour of the sky at the horizon.
            mix(c, look.sky_horizon, 0.3)
        }
        HILL => scale(tint, (0.7 + 0.5 * fbm(24.0, 3)) * relief(8.0)),
        WATER => {
            let mirrored = look.sky((2.0 * layout.horizon - v).max(0.0), layout.horizon);
            let ripple = 0.12 * (noise.fractal(u * 4.0, v * 90.0, 2) - 0.5);
            let c = [
                mirrored[0] * tint[0],
                mirrored[1] * tint[1],
                mirrored[2] * tint[2],
            ];
            scale(c, 0.85 + ripple)
        }
        SAND => scale(tint, 0.88 + 0.12 * speckle + 0.1 * fbm(10.0, 2)),
        GRASS => {
            let c = scale(tint, 0.7 + 0.5 * noise.fractal(u * 70.0, v * 25.0, 3));
            // Far grass is hazier and lighter; near grass is brighter.
            mix(c, [0.5, 0.62, 0.45], 0.35 * (1.0 - depth))
        }
        TREE | BUSH => scale(tint, (0.55 + 0.8 * fbm(45.0, 3)) * relief(20.0)),
        ROCK => scale(tint, (0.7 + 0.5 * fbm(22.0, 3)) * relief(12.0)),
        FLOWER => look.flower_colours[usize::from(speckle > 0.84)],
        _ => scale(tint, 0.85 + 0.3 * fbm(30.0, 3)),
    };
    let light = look.exposure * (0.82 + 0.28 * (1.0 - (u - look.sun_u).abs()));
    let vignette = 1.0 - 0.3 * ((u - 0.5).powi(2) + (v - 0.5).powi(2));
    let warm = 0.08 * (look.warmth - 0.5);
    [
        colour[0] * light * vignette * (1.0 + warm),
        colour[1] * light * vignette,
        colour[2] * light * vignette * (1.0 - warm),
    ]
}

/// Writes `options.count` scenes as the custom layout under `out`: `images/NNNNN.png` (RGB),
/// `labels/NNNNN.png` (8-bit class ids), `instances/NNNNN.png` (8-bit instance ids, when asked)
/// and `classes.txt` (one class name a line, line k naming id k). Each file is written atomically;
/// `progress` is called after each scene with the number written so far.
pub fn write_dataset(
    out: &Path,
    options: &ProceduralOptions,
    mut progress: impl FnMut(usize),
) -> Result<()> {
    if options.width == 0 || options.height == 0 {
        return Err(DataError::Options(format!(
            "scene size {}×{} has no pixels",
            options.width, options.height
        )));
    }
    let mut folders = vec!["images", "labels"];
    if options.instances {
        folders.push("instances");
    }
    for folder in &folders {
        let dir = out.join(folder);
        std::fs::create_dir_all(&dir).map_err(|source| DataError::Io { path: dir, source })?;
    }
    let mut names = CLASSES.join("\n");
    names.push('\n');
    write_atomic(&out.join("classes.txt"), names.as_bytes())?;
    let (w, h) = (options.width, options.height);
    for index in 0..options.count {
        let scene = generate(options.seed, index as u64, w, h);
        let name = format!("{index:05}.png");
        let images = out.join("images").join(&name);
        write_png_atomic(&images, &scene.rgb, w, h, ExtendedColorType::Rgb8)?;
        let labels = out.join("labels").join(&name);
        write_png_atomic(&labels, &scene.labels, w, h, ExtendedColorType::L8)?;
        if options.instances {
            let instances = out.join("instances").join(&name);
            write_png_atomic(&instances, &scene.instances, w, h, ExtendedColorType::L8)?;
        }
        progress(index + 1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_scene_other_seed_other_scene() {
        let a = generate(7, 3, 48, 32);
        assert_eq!(a, generate(7, 3, 48, 32));
        assert_ne!(a.rgb, generate(8, 3, 48, 32).rgb);
        assert_ne!(a.rgb, generate(7, 4, 48, 32).rgb);
    }

    #[test]
    fn every_id_is_a_class_and_scenes_use_many_classes() {
        let mut used = [false; NUM_CLASSES];
        for index in 0..40 {
            let scene = generate(1, index, 64, 64);
            assert_eq!(scene.labels.len(), 64 * 64);
            assert_eq!(scene.rgb.len(), 3 * 64 * 64);
            for &id in &scene.labels {
                assert!((id as usize) < NUM_CLASSES, "id {id}");
                used[id as usize] = true;
            }
            // Sky is at the top, something of the ground at the bottom.
            assert!(matches!(scene.labels[0], SKY | CLOUD | TREE));
            assert!(!matches!(
                scene.labels[64 * 63],
                SKY | CLOUD | MOUNTAIN | SNOW
            ));
        }
        let missing: Vec<_> = (0..NUM_CLASSES)
            .filter(|&c| !used[c])
            .map(|c| CLASSES[c])
            .collect();
        assert!(missing.is_empty(), "never generated: {missing:?}");
    }

    #[test]
    fn objects_carry_object_instance_ids_and_stuff_its_class_id() {
        let scene = (0..20)
            .map(|i| generate(2, i, 64, 64))
            .find(|s| s.labels.contains(&TREE))
            .expect("a scene with a tree among 20");
        for (&class, &instance) in scene.labels.iter().zip(&scene.instances) {
            if matches!(class, TREE | BUSH | ROCK) {
                assert!(instance >= FIRST_OBJECT_INSTANCE);
            } else {
                assert_eq!(instance, class);
            }
        }
    }

    #[test]
    fn photo_follows_the_labels() {
        // The mean colour of sky pixels is bluer than that of grass pixels in every scene having both.
        for index in 0..10 {
            let s = generate(3, index, 64, 64);
            let mean = |class: u8| {
                let px: Vec<_> = (0..s.labels.len())
                    .filter(|&i| s.labels[i] == class)
                    .collect();
                (!px.is_empty()).then(|| {
                    let sum = |ch: usize| {
                        px.iter()
                            .map(|&i| f32::from(s.rgb[3 * i + ch]))
                            .sum::<f32>()
                    };
                    [sum(0), sum(1), sum(2)].map(|x| x / px.len() as f32)
                })
            };
            if let (Some(sky), Some(grass)) = (mean(SKY), mean(GRASS)) {
                assert!(sky[2] - sky[1] > grass[2] - grass[1], "scene {index}");
            }
        }
    }
}
