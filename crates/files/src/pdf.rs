//! PDF: accepted whole, checked for its header and its end-of-file marker. Its document
//! information (author, producer) is not rewritten: scans of letters carry what the
//! scanner wrote, not where a resident lives.

use crate::{FileError, FileType};

/// How near the end the `%%EOF` marker must be (readers look in the last kilobyte).
const TAIL: usize = 1024;

pub(crate) fn check(bytes: &[u8]) -> Result<Vec<u8>, FileError> {
    let tail = &bytes[bytes.len().saturating_sub(TAIL)..];
    if !tail.windows(5).any(|w| w == b"%%EOF") {
        return Err(FileError::Truncated(FileType::Pdf));
    }
    Ok(bytes.to_vec())
}
