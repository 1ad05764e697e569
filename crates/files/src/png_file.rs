//! PNG: a walk over the chunks, each checked against its CRC, keeping what draws the
//! picture and dropping text, EXIF, time stamps and any ancillary chunk not known to be
//! harmless.

use crate::reader::be_u32;
use crate::{FileError, FileType};

pub(crate) const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Ancillary chunks kept: colour, transparency, density and animation; nothing that can
/// carry words, places or times.
const KEPT_ANCILLARY: &[&[u8; 4]] = &[
    b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB", b"cICP", b"mDCV", b"cLLI", b"bKGD", b"pHYs", b"acTL",
    b"fcTL", b"fdAT",
];

fn truncated() -> FileError {
    FileError::Truncated(FileType::Png)
}

pub(crate) fn strip(bytes: &[u8]) -> Result<Vec<u8>, FileError> {
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(SIGNATURE);
    let mut at = SIGNATURE.len();
    let mut first = true;
    loop {
        let length = usize::try_from(be_u32(bytes, at).ok_or_else(truncated)?)
            .map_err(|_| FileError::corrupt(FileType::Png, "a chunk is too long"))?;
        let end = at.checked_add(12 + length).ok_or_else(truncated)?;
        let chunk = bytes.get(at..end).ok_or_else(truncated)?;
        let (kind, body, crc) = (&chunk[4..8], &chunk[4..8 + length], &chunk[8 + length..]);
        if crc32fast::hash(body).to_be_bytes() != crc {
            return Err(FileError::corrupt(FileType::Png, "a chunk fails its checksum"));
        }
        if first && kind != b"IHDR" {
            return Err(FileError::corrupt(FileType::Png, "it does not start with its header chunk"));
        }
        first = false;
        let critical = kind[0].is_ascii_uppercase();
        if critical && !matches!(kind, b"IHDR" | b"PLTE" | b"IDAT" | b"IEND") {
            return Err(FileError::corrupt(FileType::Png, "it has a critical chunk of an unknown kind"));
        }
        if critical || KEPT_ANCILLARY.iter().any(|k| k.as_slice() == kind) {
            out.extend_from_slice(chunk);
        }
        at = end;
        if kind == b"IEND" {
            return Ok(out);
        }
    }
}
