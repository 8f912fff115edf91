//! Images in and out: PNG/JPEG files to `[1, 3, H, W]` tensors in [-1, 1] and back, GIF for
//! animations.
//!
//! Reading follows the reference (`skimage.io.imread`, `/255`, `norm`): a pixel value v of an 8-bit
//! image becomes `clamp((v/255 − 0.5)·2, −1, 1)`, with v/255 computed in f64 and rounded to f32
//! once, as numpy then torch do. Other layouts:
//! - grayscale (with or without alpha) is replicated to 3 identical channels;
//! - 16-bit images divide by 65535 instead of 255 (no 8-bit rounding on the way in; the pyramid's
//!   resize quantises to 8 bits anyway, as the reference's does);
//! - an alpha channel is dropped by default, as the reference does (it keeps the first three
//!   channels, so a transparent pixel keeps its stored colour); [`AlphaMode::Composite`] blends
//!   over a background colour instead.
//!
//! Before any pixel is decoded the header's size is checked against [`MAX_SIDE`] and
//! [`MAX_PIXELS`], so a forged header cannot make us allocate gigabytes. Writes are atomic: the
//! bytes go to a temporary file in the destination's folder, are synced, then renamed over it.
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use image::codecs::gif::{GifEncoder, Repeat};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use tessera_tensor::{Device, Tensor};

/// Largest accepted width or height, in pixels.
pub const MAX_SIDE: u32 = 32_768;
/// Largest accepted pixel count (a 64-megapixel photo).
pub const MAX_PIXELS: u64 = 1 << 26;

/// What went wrong reading or writing an image; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImageIoError {
    #[error("{}: cannot open: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a PNG or JPEG image (unrecognised or unsupported format)", path.display())]
    UnknownFormat { path: PathBuf },
    #[error("{}: corrupt or truncated image: {source}", path.display())]
    Decode {
        path: PathBuf,
        source: image::ImageError,
    },
    #[error(
        "{}: image is {width}×{height} pixels; the limit is {MAX_SIDE} per side and {MAX_PIXELS} in all",
        path.display()
    )]
    TooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
    },
    #[error("{}: image has no pixels ({width}×{height})", path.display())]
    Empty {
        path: PathBuf,
        width: u32,
        height: u32,
    },
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot encode: {source}", path.display())]
    Encode {
        path: PathBuf,
        source: image::ImageError,
    },
    #[error("{}: expected an image tensor of shape [1, 3, H, W] or [3, H, W], got {shape:?}", path.display())]
    NotAnImage { path: PathBuf, shape: Vec<usize> },
    #[error("{}: {source}", path.display())]
    Tensor {
        path: PathBuf,
        source: tessera_tensor::Error,
    },
}

pub type Result<T> = std::result::Result<T, ImageIoError>;

/// How an image's alpha channel is treated on reading.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum AlphaMode {
    /// Keep the stored colour and ignore alpha, as the reference does.
    #[default]
    Drop,
    /// Blend over this background colour (RGB in [0, 1]): `c·a + bg·(1 − a)`.
    Composite { background: [f32; 3] },
}

/// Reads a PNG or JPEG file into a `[1, 3, H, W]` tensor in [-1, 1], dropping any alpha channel.
pub fn read_image(path: impl AsRef<Path>) -> Result<Tensor> {
    read_image_with(path, AlphaMode::Drop)
}

/// Reads a PNG or JPEG file into a `[1, 3, H, W]` tensor in [-1, 1], treating alpha as `alpha`.
pub fn read_image_with(path: impl AsRef<Path>, alpha: AlphaMode) -> Result<Tensor> {
    let path = path.as_ref();
    let image = decode_checked(path)?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    let sixteen_bit = {
        let color = image.color();
        color.bytes_per_pixel() / color.channel_count() > 1
    };
    let planar = if sixteen_bit {
        planar_rgb(
            &image.to_rgba16().into_raw(),
            width * height,
            65535.0,
            alpha,
        )
    } else {
        planar_rgb(&image.to_rgba8().into_raw(), width * height, 255.0, alpha)
    };
    Tensor::from_vec(planar, [1, 3, height, width], Device::Cpu).map_err(|source| {
        ImageIoError::Tensor {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// The image's size as `(height, width)`, read from its header only.
pub fn image_size(path: impl AsRef<Path>) -> Result<(usize, usize)> {
    let path = path.as_ref();
    let decoder = open_decoder(path)?;
    let (width, height) = decoder.dimensions();
    check_size(path, width, height)?;
    Ok((height as usize, width as usize))
}

fn open_decoder(path: &Path) -> Result<impl ImageDecoder> {
    let file = File::open(path).map_err(|source| ImageIoError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .map_err(|source| ImageIoError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    if !matches!(reader.format(), Some(ImageFormat::Png | ImageFormat::Jpeg)) {
        return Err(ImageIoError::UnknownFormat {
            path: path.to_path_buf(),
        });
    }
    // The callers check the header's size (a typed error with the size in it); this allocation
    // cap is a second guard inside the decoders (16 bytes per pixel covers RGBA16 output).
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 16);
    reader.limits(limits);
    reader
        .into_decoder()
        .map_err(|source| decode_error(path, source))
}

fn decode_checked(path: &Path) -> Result<DynamicImage> {
    let decoder = open_decoder(path)?;
    let (width, height) = decoder.dimensions();
    check_size(path, width, height)?;
    DynamicImage::from_decoder(decoder).map_err(|source| decode_error(path, source))
}

fn decode_error(path: &Path, source: image::ImageError) -> ImageIoError {
    ImageIoError::Decode {
        path: path.to_path_buf(),
        source,
    }
}

fn check_size(path: &Path, width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(ImageIoError::Empty {
            path: path.to_path_buf(),
            width,
            height,
        });
    }
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ImageIoError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
        });
    }
    Ok(())
}

/// Interleaved RGBA samples → planar RGB in [-1, 1].
fn planar_rgb<T: Copy + Into<f64>>(
    rgba: &[T],
    pixels: usize,
    full_scale: f64,
    alpha: AlphaMode,
) -> Vec<f32> {
    let mut planar = vec![0.0f32; 3 * pixels];
    for (p, px) in rgba.chunks_exact(4).enumerate() {
        for c in 0..3 {
            let value = (px[c].into() / full_scale) as f32;
            let value = match alpha {
                AlphaMode::Drop => value,
                AlphaMode::Composite { background } => {
                    let a = (px[3].into() / full_scale) as f32;
                    value * a + background[c] * (1.0 - a)
                }
            };
            planar[c * pixels + p] = ((value - 0.5) * 2.0).clamp(-1.0, 1.0);
        }
    }
    planar
}

/// Converts a `[1, 3, H, W]` or `[3, H, W]` tensor in [-1, 1] to 8-bit RGB: `denorm` (clamp to
/// [0, 1]), then ×255 rounded to nearest. (The reference saves through matplotlib, which truncates;
/// rounding is the closer 8-bit value.)
pub fn to_rgb8(tensor: &Tensor, path: &Path) -> Result<RgbImage> {
    let (height, width) = match tensor.dims() {
        [1, 3, h, w] | [3, h, w] => (*h, *w),
        dims => {
            return Err(ImageIoError::NotAnImage {
                path: path.to_path_buf(),
                shape: dims.to_vec(),
            })
        }
    };
    let values = tensor.to_vec().map_err(|source| ImageIoError::Tensor {
        path: path.to_path_buf(),
        source,
    })?;
    let pixels = height * width;
    let mut rgb = Vec::with_capacity(3 * pixels);
    for p in 0..pixels {
        for c in 0..3 {
            let unit = ((values[c * pixels + p] + 1.0) / 2.0).clamp(0.0, 1.0);
            // NaN clamps to NaN and casts to 0: a broken pixel shows as black, not as a panic.
            rgb.push((unit * 255.0).round() as u8);
        }
    }
    RgbImage::from_raw(width as u32, height as u32, rgb).ok_or_else(|| ImageIoError::NotAnImage {
        path: path.to_path_buf(),
        shape: tensor.dims().to_vec(),
    })
}

/// Writes a `[1, 3, H, W]` (or `[3, H, W]`) tensor in [-1, 1] as an 8-bit RGB PNG, atomically.
pub fn write_png(tensor: &Tensor, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let image = to_rgb8(tensor, path)?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, ImageFormat::Png)
        .map_err(|source| ImageIoError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
    write_file_atomically(path, bytes.get_ref())
}

/// Writes frames (each `[1, 3, H, W]` in [-1, 1], all the same size) as a looping GIF at `fps`
/// frames per second, atomically.
pub fn write_gif(frames: &[Tensor], fps: u32, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let encode = |source| ImageIoError::Encode {
        path: path.to_path_buf(),
        source,
    };
    let delay = image::Delay::from_numer_denom_ms(1000, fps.max(1));
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut bytes, 10);
        encoder.set_repeat(Repeat::Infinite).map_err(encode)?;
        for frame in frames {
            let rgba = DynamicImage::ImageRgb8(to_rgb8(frame, path)?).to_rgba8();
            encoder
                .encode_frame(image::Frame::from_parts(rgba, 0, 0, delay))
                .map_err(encode)?;
        }
    }
    write_file_atomically(path, &bytes)
}

/// Writes `bytes` to `path` so that `path` is either the old file or the whole new one: a
/// temporary file in the same folder is written, synced, given the usual `rw-r--r--` mode (the
/// temporary file starts private), then renamed over `path`.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io_error = |source| ImageIoError::Write {
        path: path.to_path_buf(),
        source,
    };
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temp = tempfile::NamedTempFile::new_in(folder).map_err(io_error)?;
    temp.write_all(bytes).map_err(io_error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        temp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io_error)?;
    }
    temp.as_file().sync_all().map_err(io_error)?;
    temp.persist(path).map_err(|e| io_error(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Luma, LumaA, Rgb, Rgba, RgbaImage};

    fn temp_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn norm(v: u8) -> f32 {
        ((f64::from(v) / 255.0) as f32 - 0.5) * 2.0
    }

    /// Pixel (x, y) of channel c of a [1, 3, H, W] tensor.
    fn at(values: &[f32], width: usize, height: usize, c: usize, y: usize, x: usize) -> f32 {
        values[c * width * height + y * width + x]
    }

    #[test]
    fn rgb_png_reads_as_normalised_planar_tensor() {
        let dir = temp_dir();
        let path = dir.path().join("rgb.png");
        let image = ImageBuffer::from_fn(5, 3, |x, y| Rgb([(x * 50) as u8, (y * 100) as u8, 255]));
        image.save(&path).unwrap();
        let t = read_image(&path).unwrap();
        assert_eq!(t.dims(), &[1, 3, 3, 5]);
        let v = t.to_vec().unwrap();
        for y in 0..3 {
            for x in 0..5 {
                assert_eq!(at(&v, 5, 3, 0, y, x), norm((x * 50) as u8));
                assert_eq!(at(&v, 5, 3, 1, y, x), norm((y * 100) as u8));
                assert_eq!(at(&v, 5, 3, 2, y, x), 1.0);
            }
        }
        assert_eq!(image_size(&path).unwrap(), (3, 5));
    }

    #[test]
    fn rgba_drops_alpha_by_default_and_composites_on_request() {
        let dir = temp_dir();
        let path = dir.path().join("rgba.png");
        // One opaque red pixel, one fully transparent blue, one half-transparent black.
        let image: RgbaImage =
            ImageBuffer::from_raw(3, 1, vec![255, 0, 0, 255, 0, 0, 255, 0, 0, 0, 0, 51]).unwrap();
        image.save(&path).unwrap();
        let dropped = read_image(&path).unwrap().to_vec().unwrap();
        assert_eq!(
            dropped,
            vec![1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, 1.0, -1.0]
        );
        let white = AlphaMode::Composite {
            background: [1.0, 1.0, 1.0],
        };
        let composited = read_image_with(&path, white).unwrap().to_vec().unwrap();
        // Blue over white at alpha 0 is white; black at alpha 0.2 over white is 0.8 → 0.6.
        let expected = [1.0, 1.0, 0.6, -1.0, 1.0, 0.6, -1.0, 1.0, 0.6];
        for (got, want) in composited.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{composited:?}");
        }
    }

    #[test]
    fn grayscale_becomes_three_equal_channels() {
        let dir = temp_dir();
        for (name, save) in [("l8.png", 0), ("la8.png", 1)] {
            let path = dir.path().join(name);
            if save == 0 {
                ImageBuffer::from_fn(4, 2, |x, _| Luma([(x * 60) as u8]))
                    .save(&path)
                    .unwrap();
            } else {
                ImageBuffer::from_fn(4, 2, |x, _| LumaA([(x * 60) as u8, 7]))
                    .save(&path)
                    .unwrap();
            }
            let v = read_image(&path).unwrap().to_vec().unwrap();
            for x in 0..4 {
                for c in 0..3 {
                    assert_eq!(at(&v, 4, 2, c, 1, x), norm((x * 60) as u8), "{name}");
                }
            }
        }
    }

    #[test]
    fn sixteen_bit_keeps_its_precision() {
        let dir = temp_dir();
        let path = dir.path().join("rgb16.png");
        let image: ImageBuffer<Rgb<u16>, Vec<u16>> =
            ImageBuffer::from_fn(2, 1, |x, _| Rgb([x as u16 * 65535, 32768, 257]));
        image.save(&path).unwrap();
        let v = read_image(&path).unwrap().to_vec().unwrap();
        let expect = |s: u16| ((f64::from(s) / 65535.0) as f32 - 0.5) * 2.0;
        assert_eq!(
            v,
            vec![
                -1.0,
                1.0,
                expect(32768),
                expect(32768),
                expect(257),
                expect(257)
            ]
        );
        let gray16: ImageBuffer<Luma<u16>, Vec<u16>> =
            ImageBuffer::from_fn(1, 1, |_, _| Luma([1000]));
        let gray_path = dir.path().join("l16.png");
        gray16.save(&gray_path).unwrap();
        assert_eq!(
            read_image(&gray_path).unwrap().to_vec().unwrap(),
            vec![expect(1000); 3]
        );
    }

    #[test]
    fn jpeg_reads_close_to_its_source() {
        let dir = temp_dir();
        let path = dir.path().join("flat.jpg");
        ImageBuffer::from_fn(16, 8, |_, _| Rgb([200u8, 100, 50]))
            .save(&path)
            .unwrap();
        let t = read_image(&path).unwrap();
        assert_eq!(t.dims(), &[1, 3, 8, 16]);
        let v = t.to_vec().unwrap();
        for (c, want) in [200u8, 100, 50].into_iter().enumerate() {
            assert!((at(&v, 16, 8, c, 4, 4) - norm(want)).abs() < 0.05);
        }
    }

    #[test]
    fn png_round_trip_is_exact_for_8_bit_values() {
        let dir = temp_dir();
        let path = dir.path().join("in.png");
        let image: RgbaImage = ImageBuffer::from_fn(7, 4, |x, y| {
            Rgba([
                (x * 37 % 256) as u8,
                (y * 61 % 256) as u8,
                ((x + y) * 13) as u8,
                255,
            ])
        });
        image.save(&path).unwrap();
        let t = read_image(&path).unwrap();
        let out = dir.path().join("out.png");
        write_png(&t, &out).unwrap();
        let back = image::open(&out).unwrap().to_rgba8();
        assert_eq!(back, image);
        // Nothing but the output is left in the folder: the temporary file was renamed.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
    }

    #[test]
    fn writing_clamps_out_of_range_values() {
        let dir = temp_dir();
        let out = dir.path().join("clamped.png");
        let t = Tensor::from_vec(vec![-3.0, 0.0, 3.0], [3, 1, 1], Device::Cpu).unwrap();
        write_png(&t, &out).unwrap();
        assert_eq!(
            image::open(&out).unwrap().to_rgb8().into_raw(),
            vec![0, 128, 255]
        );
        let wrong = Tensor::zeros([1, 1, 2, 2], Device::Cpu).unwrap();
        let err = write_png(&wrong, &out).unwrap_err();
        assert!(matches!(err, ImageIoError::NotAnImage { .. }), "{err}");
    }

    #[test]
    fn gif_has_every_frame() {
        let dir = temp_dir();
        let out = dir.path().join("walk.gif");
        let frames: Vec<Tensor> = (0..4)
            .map(|i| Tensor::full(i as f32 / 2.0 - 1.0, [1, 3, 6, 5], Device::Cpu).unwrap())
            .collect();
        write_gif(&frames, 10, &out).unwrap();
        let decoder =
            image::codecs::gif::GifDecoder::new(BufReader::new(File::open(&out).unwrap())).unwrap();
        let decoded: Vec<image::Frame> = image::AnimationDecoder::into_frames(decoder)
            .collect_frames()
            .unwrap();
        assert_eq!(decoded.len(), 4);
        assert_eq!(decoded[0].buffer().dimensions(), (5, 6));
        assert_eq!(decoded[0].delay().numer_denom_ms(), (100, 1));
    }

    #[test]
    fn corrupt_and_truncated_files_name_the_file() {
        let dir = temp_dir();
        let garbage = dir.path().join("garbage.png");
        std::fs::write(&garbage, b"this is not an image at all").unwrap();
        let err = read_image(&garbage).unwrap_err();
        assert!(matches!(err, ImageIoError::UnknownFormat { .. }), "{err}");
        assert!(err.to_string().contains("garbage.png"));

        for (source, cut, keep) in [("good.png", "truncated.png", 2), ("good.jpg", "cut.jpg", 3)] {
            let good = dir.path().join(source);
            ImageBuffer::from_fn(32, 32, |x, y| Rgb([x as u8 * 8, y as u8 * 8, 0]))
                .save(&good)
                .unwrap();
            let bytes = std::fs::read(&good).unwrap();
            let path = dir.path().join(cut);
            std::fs::write(&path, &bytes[..bytes.len() / keep]).unwrap();
            let err = read_image(&path).unwrap_err();
            assert!(matches!(err, ImageIoError::Decode { .. }), "{err}");
            assert!(err.to_string().contains(cut), "{err}");
        }

        let missing = dir.path().join("missing.png");
        let err = read_image(&missing).unwrap_err();
        assert!(matches!(err, ImageIoError::Open { .. }), "{err}");
        assert!(err.to_string().contains("missing.png"));
    }

    /// A PNG whose header claims `width`×`height`, followed by two bytes of pixel data.
    fn png_header_only(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        for (kind, data) in [
            (&b"IHDR"[..], &ihdr[..]),
            (b"IDAT", &[0x78, 0x9c]),
            (b"IEND", &[]),
        ] {
            let mut chunk = kind.to_vec();
            chunk.extend_from_slice(data);
            bytes.extend_from_slice(&(data.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&chunk);
            bytes.extend_from_slice(&crc32fast::hash(&chunk).to_be_bytes());
        }
        bytes
    }

    #[test]
    fn absurd_header_sizes_are_refused_before_decoding() {
        let dir = temp_dir();
        for (name, w, h) in [("wide.png", 100_000, 10), ("huge.png", 20_000, 20_000)] {
            let path = dir.path().join(name);
            std::fs::write(&path, png_header_only(w, h)).unwrap();
            let err = read_image(&path).unwrap_err();
            assert!(
                matches!(err, ImageIoError::TooLarge { .. }),
                "{name}: {err}"
            );
            assert!(err.to_string().contains(name));
            assert!(matches!(
                image_size(&path),
                Err(ImageIoError::TooLarge { .. })
            ));
        }
    }
}
