//! JPEG: a walk over the segments that keeps what draws the picture and drops every
//! metadata segment.
//!
//! Kept: the frame, tables and scans; JFIF (APP0), the colour profile (APP2 ICC_PROFILE)
//! and Adobe's colour-transform flag (APP14). Dropped: EXIF and XMP (APP1), multi-picture
//! and other APP2 data, IPTC (APP13), every other APPn, comments, and anything after the
//! end-of-image marker (some phones append data there).

use crate::exif::Orientation;
use crate::reader::be_u16;
use crate::{FileError, FileType};

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const COM: u8 = 0xFE;
const APP0: u8 = 0xE0;
const APP1: u8 = 0xE1;
const APP2: u8 = 0xE2;
const APP14: u8 = 0xEE;

fn truncated() -> FileError {
    FileError::Truncated(FileType::Jpeg)
}

fn corrupt(detail: &str) -> FileError {
    FileError::corrupt(FileType::Jpeg, detail)
}

/// Whether a marker stands alone (no length follows).
fn standalone(marker: u8) -> bool {
    matches!(marker, 0x01 | 0xD0..=0xD7)
}

/// Whether a marker starts a frame (SOF0–SOF15 but DHT, JPG and DAC).
fn is_frame(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

fn kept(marker: u8, payload: &[u8]) -> bool {
    match marker {
        APP0 => payload.starts_with(b"JFIF\0"),
        APP2 => payload.starts_with(b"ICC_PROFILE\0"),
        APP14 => payload.starts_with(b"Adobe"),
        0xE0..=0xEF | COM => false,
        _ => true,
    }
}

/// The JPEG without its metadata, and the orientation its EXIF recorded (kept in a new
/// minimal EXIF block when it is not upright).
pub(crate) fn strip(bytes: &[u8]) -> Result<(Vec<u8>, Orientation), FileError> {
    if bytes.get(..2) != Some(&[0xFF, SOI][..]) {
        return Err(corrupt("it does not start with a start-of-image marker"));
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&[0xFF, SOI]);
    let mut orientation = None;
    // Where the orientation block goes: after SOI, or after a leading JFIF segment.
    let mut exif_at = out.len();
    let (mut frame, mut scans) = (false, 0usize);
    let mut at = 2;
    loop {
        if *bytes.get(at).ok_or_else(truncated)? != 0xFF {
            return Err(corrupt("a segment does not start with a marker"));
        }
        // Fill bytes: any number of 0xFF before the marker code.
        while bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let marker = *bytes.get(at + 1).ok_or_else(truncated)?;
        if marker == EOI {
            if !frame || scans == 0 {
                return Err(corrupt("it has no picture (no frame or no scan)"));
            }
            out.extend_from_slice(&[0xFF, EOI]);
            break;
        }
        if standalone(marker) {
            out.extend_from_slice(&[0xFF, marker]);
            at += 2;
            continue;
        }
        let length = usize::from(be_u16(bytes, at + 2).ok_or_else(truncated)?);
        if length < 2 {
            return Err(corrupt("a segment has an impossible length"));
        }
        let end = at + 2 + length;
        let segment = bytes.get(at..end).ok_or_else(truncated)?;
        let payload = &segment[4..];
        if marker == APP1 && payload.starts_with(b"Exif\0\0") && orientation.is_none() {
            orientation = Orientation::read(payload);
        }
        if kept(marker, payload) {
            out.extend_from_slice(segment);
            if marker == APP0 && exif_at == 2 {
                exif_at = out.len();
            }
        }
        frame |= is_frame(marker);
        at = end;
        if marker == SOS {
            scans += 1;
            let data_end = scan_end(bytes, at)?;
            out.extend_from_slice(&bytes[at..data_end]);
            at = data_end;
        }
    }
    let orientation = orientation.unwrap_or_default();
    if !orientation.is_upright() {
        let block = orientation.exif_block();
        let mut segment = vec![0xFF, APP1];
        // A 24-byte block: its length always fits.
        segment.extend_from_slice(&u16::try_from(block.len() + 2).unwrap_or(u16::MAX).to_be_bytes());
        segment.extend_from_slice(&block);
        out.splice(exif_at..exif_at, segment);
    }
    Ok((out, orientation))
}

/// Where the entropy-coded data starting at `at` ends: at the first marker that is not a
/// stuffed 0xFF00 or a restart marker.
fn scan_end(bytes: &[u8], mut at: usize) -> Result<usize, FileError> {
    loop {
        let next = bytes.get(at..).ok_or_else(truncated)?.iter().position(|&b| b == 0xFF).ok_or_else(truncated)?;
        at += next;
        match *bytes.get(at + 1).ok_or_else(truncated)? {
            0x00 | 0xD0..=0xD7 | 0xFF => at += 1,
            _ => return Ok(at),
        }
    }
}
