//! Thumbnails: the picture decoded (JPEG at a reduced scale, so a 12-megapixel photo never
//! needs its full size in memory), shrunk by area averaging to fit a square of
//! `thumbnail_edge` pixels, turned upright, and encoded as a JPEG.

use std::io::Cursor;

use crate::exif::Orientation;
use crate::{FileError, FileType, Limits};

const QUALITY: u8 = 80;

/// A small JPEG of an image, upright.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Pixels as RGB, three bytes each, row by row.
struct Rgb {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

pub(crate) fn make(
    file_type: FileType,
    bytes: &[u8],
    orientation: Orientation,
    limits: &Limits,
) -> Result<Option<Thumbnail>, FileError> {
    let picture = match file_type {
        FileType::Jpeg => jpeg(bytes, limits)?,
        FileType::Png => png(bytes, limits)?,
        FileType::Webp => webp(bytes, limits)?,
        FileType::Heic | FileType::Pdf => return Ok(None),
    };
    let small = shrink(&picture, limits.thumbnail_edge);
    let upright = turn(&small, orientation);
    encode(&upright).map(Some)
}

fn check_pixels(width: u32, height: u32, limits: &Limits) -> Result<(), FileError> {
    if width == 0 || height == 0 {
        return Err(FileError::TooManyPixels { width, height, max: limits.max_pixels });
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(FileError::TooManyPixels { width, height, max: limits.max_pixels });
    }
    Ok(())
}

fn jpeg(bytes: &[u8], limits: &Limits) -> Result<Rgb, FileError> {
    let bad = |e: jpeg_decoder::Error| FileError::corrupt(FileType::Jpeg, e.to_string());
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.read_info().map_err(bad)?;
    let info = decoder.info().ok_or_else(|| FileError::corrupt(FileType::Jpeg, "no frame header"))?;
    check_pixels(u32::from(info.width), u32::from(info.height), limits)?;
    let edge = u16::try_from(limits.thumbnail_edge).unwrap_or(u16::MAX);
    // The decoder picks the smallest scale (1/8 to 1) at least this large.
    let (width, height) = decoder.scale(edge, edge).map_err(bad)?;
    let data = decoder.decode().map_err(bad)?;
    let (width, height) = (u32::from(width), u32::from(height));
    let pixels = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => data,
        jpeg_decoder::PixelFormat::L8 => data.iter().flat_map(|&l| [l, l, l]).collect(),
        jpeg_decoder::PixelFormat::L16 => data.chunks_exact(2).flat_map(|l| [l[0], l[0], l[0]]).collect(),
        jpeg_decoder::PixelFormat::CMYK32 => data
            .chunks_exact(4)
            .flat_map(|p| {
                let k = u16::from(p[3]);
                p[..3].iter().map(move |&c| u8::try_from(u16::from(c) * k / 255).unwrap_or(u8::MAX)).collect::<Vec<_>>()
            })
            .collect(),
    };
    sized(width, height, pixels, FileType::Jpeg)
}

fn png(bytes: &[u8], limits: &Limits) -> Result<Rgb, FileError> {
    let bad = |e: png::DecodingError| FileError::corrupt(FileType::Png, e.to_string());
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let header = {
        let mut probe = png::Decoder::new(Cursor::new(bytes));
        probe.read_header_info().map_err(bad)?.clone()
    };
    check_pixels(header.width, header.height, limits)?;
    decoder.set_limits(png::Limits { bytes: usize::MAX });
    let mut reader = decoder.read_info().map_err(bad)?;
    let size = reader.output_buffer_size().ok_or_else(|| FileError::corrupt(FileType::Png, "too large to decode"))?;
    let mut buffer = vec![0; size];
    let frame = reader.next_frame(&mut buffer).map_err(bad)?;
    buffer.truncate(frame.buffer_size());
    let channels = frame.color_type.samples();
    let pixels = buffer.chunks_exact(channels).flat_map(|p| rgb_of(p, channels)).collect();
    sized(frame.width, frame.height, pixels, FileType::Png)
}

fn webp(bytes: &[u8], limits: &Limits) -> Result<Rgb, FileError> {
    let bad = |e: image_webp::DecodingError| FileError::corrupt(FileType::Webp, e.to_string());
    let mut decoder = image_webp::WebPDecoder::new(Cursor::new(bytes)).map_err(bad)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, limits)?;
    let size = decoder.output_buffer_size().ok_or_else(|| FileError::corrupt(FileType::Webp, "too large to decode"))?;
    let mut buffer = vec![0; size];
    decoder.read_image(&mut buffer).map_err(bad)?;
    let channels = if decoder.has_alpha() { 4 } else { 3 };
    let pixels = buffer.chunks_exact(channels).flat_map(|p| rgb_of(p, channels)).collect();
    sized(width, height, pixels, FileType::Webp)
}

/// One pixel of 1–4 eight-bit samples as RGB, transparency laid over white.
fn rgb_of(p: &[u8], channels: usize) -> [u8; 3] {
    let over_white = |c: u8, a: u8| {
        let (c, a) = (u16::from(c), u16::from(a));
        u8::try_from((c * a + 255 * (255 - a)) / 255).unwrap_or(u8::MAX)
    };
    match channels {
        1 => [p[0]; 3],
        2 => [over_white(p[0], p[1]); 3],
        3 => [p[0], p[1], p[2]],
        _ => [over_white(p[0], p[3]), over_white(p[1], p[3]), over_white(p[2], p[3])],
    }
}

fn sized(width: u32, height: u32, pixels: Vec<u8>, file_type: FileType) -> Result<Rgb, FileError> {
    if pixels.len() as u64 != u64::from(width) * u64::from(height) * 3 {
        return Err(FileError::corrupt(file_type, "the decoded picture has the wrong size"));
    }
    Ok(Rgb { width, height, pixels })
}

/// Shrinks to fit `edge`×`edge` (never enlarges), each new pixel the mean of the pixels it
/// covers.
fn shrink(picture: &Rgb, edge: u32) -> Rgb {
    let (w, h) = (picture.width, picture.height);
    let longer = w.max(h);
    if longer <= edge {
        return Rgb { width: w, height: h, pixels: picture.pixels.clone() };
    }
    let scaled = |side: u32| ((u64::from(side) * u64::from(edge)).div_ceil(u64::from(longer)) as u32).max(1);
    let (tw, th) = (scaled(w), scaled(h));
    let span = |t: u32, target: u32, source: u32| {
        let start = (u64::from(t) * u64::from(source) / u64::from(target)) as u32;
        let end = ((u64::from(t + 1) * u64::from(source) / u64::from(target)) as u32).max(start + 1);
        start..end.min(source)
    };
    let mut pixels = Vec::with_capacity((tw * th * 3) as usize);
    for ty in 0..th {
        let rows = span(ty, th, h);
        for tx in 0..tw {
            let columns = span(tx, tw, w);
            let mut sum = [0u64; 3];
            let mut count = 0u64;
            for y in rows.clone() {
                let row = (y * w) as usize * 3;
                for x in columns.clone() {
                    let at = row + x as usize * 3;
                    for (s, &c) in sum.iter_mut().zip(&picture.pixels[at..at + 3]) {
                        *s += u64::from(c);
                    }
                    count += 1;
                }
            }
            pixels.extend(sum.map(|s| (s / count.max(1)) as u8));
        }
    }
    Rgb { width: tw, height: th, pixels }
}

/// Turns the pixels upright as the EXIF orientation says.
fn turn(picture: &Rgb, orientation: Orientation) -> Rgb {
    if orientation.is_upright() {
        return Rgb { width: picture.width, height: picture.height, pixels: picture.pixels.clone() };
    }
    let (w, h) = (picture.width, picture.height);
    let (uw, uh) = orientation.upright(w, h);
    let mut pixels = vec![0; picture.pixels.len()];
    for y in 0..h {
        for x in 0..w {
            let (ux, uy) = orientation.place(x, y, w, h);
            let from = ((y * w + x) * 3) as usize;
            let to = ((uy * uw + ux) * 3) as usize;
            pixels[to..to + 3].copy_from_slice(&picture.pixels[from..from + 3]);
        }
    }
    Rgb { width: uw, height: uh, pixels }
}

fn encode(picture: &Rgb) -> Result<Thumbnail, FileError> {
    let mut jpeg = Vec::new();
    let side = |n: u32| u16::try_from(n).map_err(|_| FileError::corrupt(FileType::Jpeg, "thumbnail too large"));
    let (width, height) = (side(picture.width)?, side(picture.height)?);
    jpeg_encoder::Encoder::new(&mut jpeg, QUALITY)
        .encode(&picture.pixels, width, height, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| FileError::corrupt(FileType::Jpeg, format!("thumbnail: {e}")))?;
    Ok(Thumbnail { jpeg, width: picture.width, height: picture.height })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinking_keeps_the_shape_and_averages() {
        // 4×2, left half black, right half white → 2×1: one black, one white pixel.
        let mut pixels = Vec::new();
        for _ in 0..2 {
            pixels.extend([0u8; 6]);
            pixels.extend([255u8; 6]);
        }
        let small = shrink(&Rgb { width: 4, height: 2, pixels }, 2);
        assert_eq!((small.width, small.height), (2, 1));
        assert_eq!(small.pixels, vec![0, 0, 0, 255, 255, 255]);
    }

    #[test]
    fn a_small_picture_is_not_enlarged() {
        let small = shrink(&Rgb { width: 3, height: 1, pixels: vec![9; 9] }, 320);
        assert_eq!((small.width, small.height), (3, 1));
    }

    #[test]
    fn a_sideways_picture_is_turned_upright() {
        // Stored 2×1 (red, blue), orientation 6: shown 1×2 with red on top.
        let turned = turn(&Rgb { width: 2, height: 1, pixels: vec![255, 0, 0, 0, 0, 255] }, Orientation(6));
        assert_eq!((turned.width, turned.height), (1, 2));
        assert_eq!(turned.pixels, vec![255, 0, 0, 0, 0, 255]);
    }
}
