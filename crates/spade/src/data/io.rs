//! Reading photos and id maps with bounded allocation, and writing PNGs atomically.
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;

use image::codecs::png::PngEncoder;
use image::{DynamicImage, ExtendedColorType, ImageDecoder, ImageEncoder, ImageReader, RgbImage};

use super::{DataError, Result};
use crate::semantic::IdMap;

/// Largest accepted width or height, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Largest accepted pixel count (a 64-megapixel image).
pub const MAX_PIXELS: u64 = 1 << 26;

fn check_size(path: &Path, width: u32, height: u32) -> Result<()> {
    let too_large =
        width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS;
    if too_large {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
        });
    }
    if width == 0 || height == 0 {
        return Err(DataError::Decode {
            path: path.to_path_buf(),
            reason: format!("image has no pixels ({width}×{height})"),
        });
    }
    Ok(())
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a photo (PNG, JPEG or GIF, any colour type) as 8-bit RGB. The header's size is checked
/// against [`MAX_SIDE`] and [`MAX_PIXELS`] before any pixel is decoded.
pub fn read_rgb(path: &Path) -> Result<RgbImage> {
    let decode_err = |reason: String| DataError::Decode {
        path: path.to_path_buf(),
        reason,
    };
    let reader = ImageReader::new(BufReader::new(open(path)?))
        .with_guessed_format()
        .map_err(|e| decode_err(e.to_string()))?;
    let decoder = reader
        .into_decoder()
        .map_err(|e| decode_err(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    check_size(path, width, height)?;
    let image = DynamicImage::from_decoder(decoder).map_err(|e| decode_err(e.to_string()))?;
    Ok(image.to_rgb8())
}

/// Reads a label or instance map: a grey (1, 2, 4, 8 or 16 bits) or palette PNG whose sample
/// values (palette indices for a palette PNG) are the ids. Colour PNGs are refused: their pixel
/// values are not ids. The map's `source` is the path.
pub fn read_id_map(path: &Path) -> Result<IdMap> {
    let decode_err = |e: png::DecodingError| DataError::Decode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut decoder = png::Decoder::new(BufReader::new(open(path)?));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let header = decoder.read_header_info().map_err(decode_err)?;
    let (width, height) = (header.width, header.height);
    check_size(path, width, height)?;
    let mut reader = decoder.read_info().map_err(decode_err)?;
    let (color, depth) = reader.output_color_type();
    if !matches!(color, png::ColorType::Grayscale | png::ColorType::Indexed) {
        return Err(DataError::Format {
            path: path.to_path_buf(),
            what: "id map",
            found: format!("a {color:?} PNG"),
            expected: "a grey or palette PNG whose values are the ids",
        });
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| DataError::Decode {
            path: path.to_path_buf(),
            reason: "image buffer size overflows".into(),
        })?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(decode_err)?;
    let bits = depth as usize;
    let mut ids = Vec::with_capacity(width as usize * height as usize);
    for row in buf.chunks_exact(frame.line_size).take(height as usize) {
        ids.extend((0..width as usize).map(|x| sample(row, x, bits)));
    }
    Ok(IdMap::new(
        path.display().to_string(),
        height as usize,
        width as usize,
        ids,
    ))
}

/// The `x`-th sample of a PNG row packed at `bits` bits per sample (big-endian for 16 bits,
/// most significant bits first below 8).
fn sample(row: &[u8], x: usize, bits: usize) -> u32 {
    match bits {
        16 => u32::from(u16::from_be_bytes([row[2 * x], row[2 * x + 1]])),
        8 => u32::from(row[x]),
        _ => {
            let bit = x * bits;
            let shift = 8 - bits - bit % 8;
            u32::from((row[bit / 8] >> shift) & ((1u8 << bits) - 1))
        }
    }
}

/// Encodes `pixels` (`width`×`height` of `color`) as PNG and writes it to `path` atomically (see
/// [`write_atomic`]), so a reader never sees a half-written file.
pub fn write_png_atomic(
    path: &Path,
    pixels: &[u8],
    width: u32,
    height: u32,
    color: ExtendedColorType,
) -> Result<()> {
    let mut bytes = Vec::new();
    PngEncoder::new(&mut bytes)
        .write_image(pixels, width, height, color)
        .map_err(|e| DataError::Encode {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder is written, synced,
/// then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io_err = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(folder).map_err(io_err)?;
    // Temporary files are private (0600); the result is an ordinary file, readable by all.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let readable = std::fs::Permissions::from_mode(0o644);
        tmp.as_file().set_permissions(readable).map_err(io_err)?;
    }
    tmp.write_all(bytes).map_err(io_err)?;
    tmp.as_file().sync_all().map_err(io_err)?;
    tmp.persist(path).map_err(|e| io_err(e.error))?;
    Ok(())
}
