//! WebP: a RIFF container whose EXIF and XMP chunks are dropped (and their flags cleared in
//! the extended header), the RIFF size rewritten to match.

use crate::reader::le_u32;
use crate::{FileError, FileType};

/// VP8X flag bits announcing EXIF and XMP chunks.
const EXIF_FLAG: u8 = 0x08;
const XMP_FLAG: u8 = 0x04;

fn truncated() -> FileError {
    FileError::Truncated(FileType::Webp)
}

pub(crate) fn strip(bytes: &[u8]) -> Result<Vec<u8>, FileError> {
    let riff_size = usize::try_from(le_u32(bytes, 4).ok_or_else(truncated)?).map_err(|_| truncated())?;
    let end = riff_size.checked_add(8).ok_or_else(truncated)?;
    if end > bytes.len() {
        return Err(truncated());
    }
    let mut out = Vec::with_capacity(end);
    out.extend_from_slice(b"RIFF\0\0\0\0WEBP");
    let mut at = 12;
    let mut image = false;
    while at < end {
        let size = usize::try_from(le_u32(bytes, at + 4).ok_or_else(truncated)?).map_err(|_| truncated())?;
        // Chunks are padded to an even size.
        let chunk_end = at.checked_add(8 + size + size % 2).ok_or_else(truncated)?;
        if chunk_end > end {
            return Err(truncated());
        }
        let chunk = &bytes[at..chunk_end];
        match &chunk[..4] {
            b"EXIF" | b"XMP " => {}
            b"VP8X" => {
                let mut header = chunk.to_vec();
                if let Some(flags) = header.get_mut(8) {
                    *flags &= !(EXIF_FLAG | XMP_FLAG);
                }
                out.extend_from_slice(&header);
            }
            kind => {
                image |= matches!(kind, b"VP8 " | b"VP8L" | b"ANMF");
                out.extend_from_slice(chunk);
            }
        }
        at = chunk_end;
    }
    if !image {
        return Err(FileError::corrupt(FileType::Webp, "it holds no image"));
    }
    let size = u32::try_from(out.len() - 8).map_err(|_| FileError::corrupt(FileType::Webp, "it is too large"))?;
    out[4..8].copy_from_slice(&size.to_le_bytes());
    Ok(out)
}
