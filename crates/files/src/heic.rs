//! HEIC: an ISO base-media file whose metadata items (EXIF, XMP) are overwritten with
//! zeros in place. Rewriting the item tables would move every offset; zeroing keeps the
//! structure valid while nothing of the EXIF (GPS position included) survives.

use std::ops::Range;

use crate::reader::{be_sized, be_u16, be_u32, be_u64};
use crate::{FileError, FileType};

const HEIC_BRANDS: &[&[u8; 4]] = &[b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"];
const GENERAL_BRANDS: &[&[u8; 4]] = &[b"mif1", b"msf1"];

fn truncated() -> FileError {
    FileError::Truncated(FileType::Heic)
}

fn corrupt(detail: &str) -> FileError {
    FileError::corrupt(FileType::Heic, detail)
}

/// Whether the file type box names HEIC (HEVC-coded HEIF), as its main brand or as a
/// compatible brand of a general HEIF file.
pub(crate) fn is_heic(bytes: &[u8]) -> bool {
    if bytes.get(4..8) != Some(b"ftyp") {
        return false;
    }
    let size = be_u32(bytes, 0).and_then(|s| usize::try_from(s).ok()).unwrap_or(0).min(bytes.len());
    let Some(major) = bytes.get(8..12) else { return false };
    let is = |brands: &[&[u8; 4]], brand: &[u8]| brands.iter().any(|b| b.as_slice() == brand);
    if is(HEIC_BRANDS, major) {
        return true;
    }
    let compatible = bytes.get(16..size).unwrap_or_default();
    is(GENERAL_BRANDS, major) && compatible.chunks_exact(4).any(|brand| is(HEIC_BRANDS, brand))
}

/// One box: its type, and where its body lies.
struct IsoBox {
    kind: [u8; 4],
    body: Range<usize>,
}

/// The boxes that exactly fill `range`.
fn boxes(bytes: &[u8], range: Range<usize>) -> Result<Vec<IsoBox>, FileError> {
    let mut found = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let size = be_u32(bytes, at).ok_or_else(truncated)?;
        let kind: [u8; 4] = bytes.get(at + 4..at + 8).ok_or_else(truncated)?.try_into().map_err(|_| truncated())?;
        let (header, end) = match size {
            0 => (8, range.end),
            1 => {
                let large = usize::try_from(be_u64(bytes, at + 8).ok_or_else(truncated)?).map_err(|_| truncated())?;
                (16, at.checked_add(large).ok_or_else(truncated)?)
            }
            n => (8, at + usize::try_from(n).map_err(|_| truncated())?),
        };
        if end < at + header {
            return Err(corrupt("a box is smaller than its own header"));
        }
        if end > range.end {
            return Err(truncated());
        }
        found.push(IsoBox { kind, body: at + header..end });
        at = end;
    }
    Ok(found)
}

fn find<'a>(list: &'a [IsoBox], kind: &[u8; 4]) -> Option<&'a IsoBox> {
    list.iter().find(|b| &b.kind == kind)
}

pub(crate) fn strip(bytes: &[u8]) -> Result<Vec<u8>, FileError> {
    let top = boxes(bytes, 0..bytes.len())?;
    let meta = find(&top, b"meta").ok_or_else(|| corrupt("it has no meta box"))?;
    // `meta` is a full box: version and flags come first.
    let children = boxes(bytes, meta.body.start + 4..meta.body.end)?;
    let metadata_items = match find(&children, b"iinf") {
        Some(iinf) => metadata_items(bytes, iinf)?,
        None => Vec::new(),
    };
    let mut out = bytes.to_vec();
    if metadata_items.is_empty() {
        return Ok(out);
    }
    let iloc = find(&children, b"iloc").ok_or_else(|| corrupt("it has items but no item locations"))?;
    let idat = find(&children, b"idat").map(|b| b.body.clone());
    for extent in extents(bytes, iloc, &metadata_items, idat)? {
        out.get_mut(extent).ok_or_else(truncated)?.fill(0);
    }
    Ok(out)
}

/// The ids of the EXIF and XMP items.
fn metadata_items(bytes: &[u8], iinf: &IsoBox) -> Result<Vec<u32>, FileError> {
    let at = iinf.body.start;
    let version = *bytes.get(at).ok_or_else(truncated)?;
    let entries_at = at + if version == 0 { 6 } else { 8 };
    let mut ids = Vec::new();
    for infe in boxes(bytes, entries_at..iinf.body.end)?.iter().filter(|b| &b.kind == b"infe") {
        let at = infe.body.start;
        let version = *bytes.get(at).ok_or_else(truncated)?;
        let (id, kind_at) = match version {
            2 => (u32::from(be_u16(bytes, at + 4).ok_or_else(truncated)?), at + 8),
            3 => (be_u32(bytes, at + 4).ok_or_else(truncated)?, at + 10),
            // Versions 0 and 1 name no item type: no EXIF item can be told apart.
            _ => continue,
        };
        let kind = bytes.get(kind_at..kind_at + 4).ok_or_else(truncated)?;
        let strings = bytes.get(kind_at + 4..infe.body.end).ok_or_else(truncated)?;
        let mut parts = strings.split(|&b| b == 0);
        let _name = parts.next();
        let content_type = parts.next().unwrap_or_default();
        if kind == b"Exif" || (kind == b"mime" && content_type == b"application/rdf+xml") {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// The byte ranges of the items `ids`, from the item location box.
fn extents(
    bytes: &[u8],
    iloc: &IsoBox,
    ids: &[u32],
    idat: Option<Range<usize>>,
) -> Result<Vec<Range<usize>>, FileError> {
    let mut at = iloc.body.start;
    let version = *bytes.get(at).ok_or_else(truncated)?;
    at += 4;
    let sizes = be_u16(bytes, at).ok_or_else(truncated)?;
    at += 2;
    let size = |shift: u16| usize::from((sizes >> shift) & 0xF);
    let (offset_size, length_size, base_size) = (size(12), size(8), size(4));
    let index_size = if matches!(version, 1 | 2) { size(0) } else { 0 };
    // Item counts and ids are 16-bit before version 2, 32-bit from it.
    let count_or_id = |at: &mut usize| -> Result<u32, FileError> {
        if version < 2 {
            *at += 2;
            be_u16(bytes, *at - 2).map(u32::from).ok_or_else(truncated)
        } else {
            *at += 4;
            be_u32(bytes, *at - 4).ok_or_else(truncated)
        }
    };
    let count = count_or_id(&mut at)?;
    let number = |at: usize, size: usize| -> Result<usize, FileError> {
        let value = be_sized(bytes, at, size).ok_or_else(|| corrupt("an item location has an odd field size"))?;
        usize::try_from(value).map_err(|_| truncated())
    };
    let mut ranges = Vec::new();
    for _ in 0..count {
        let id = count_or_id(&mut at)?;
        let method = if matches!(version, 1 | 2) {
            at += 2;
            be_u16(bytes, at - 2).ok_or_else(truncated)? & 0xF
        } else {
            0
        };
        at += 2; // data reference index
        let base = number(at, base_size)?;
        at += base_size;
        let extent_count = be_u16(bytes, at).ok_or_else(truncated)?;
        at += 2;
        for _ in 0..extent_count {
            at += index_size;
            let offset = number(at, offset_size)?;
            at += offset_size;
            let length = number(at, length_size)?;
            at += length_size;
            if !ids.contains(&id) {
                continue;
            }
            let start = match (method, &idat) {
                (0, _) => base + offset,
                (1, Some(idat)) => idat.start + base + offset,
                _ => return Err(corrupt("a metadata item is stored in a way that cannot be located")),
            };
            if length == 0 {
                return Err(corrupt("a metadata item has no length"));
            }
            ranges.push(start..start.checked_add(length).ok_or_else(truncated)?);
        }
    }
    Ok(ranges)
}
