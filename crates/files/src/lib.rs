//! What comes in as an attachment, made safe to keep: the type is read from the bytes
//! (never from the name), a file cut short or malformed is refused, metadata that can say
//! where and when a photo was taken (EXIF with GPS, XMP, comments, maker notes) is stripped
//! before anything is stored, and images get a small JPEG thumbnail for list views.
//!
//! Accepted: JPEG, PNG, WebP, HEIC and PDF. Pure and synchronous: the caller runs it on a
//! blocking thread.

mod exif;
mod heic;
mod jpeg;
mod pdf;
mod png_file;
mod reader;
mod thumbnail;
mod webp;

pub use thumbnail::Thumbnail;

/// The kinds of file an attachment may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    Jpeg,
    Png,
    Webp,
    Heic,
    Pdf,
}

impl FileType {
    pub const ALL: [FileType; 5] = [FileType::Jpeg, FileType::Png, FileType::Webp, FileType::Heic, FileType::Pdf];

    /// The media type the file is served as.
    pub fn mime(self) -> &'static str {
        match self {
            FileType::Jpeg => "image/jpeg",
            FileType::Png => "image/png",
            FileType::Webp => "image/webp",
            FileType::Heic => "image/heic",
            FileType::Pdf => "application/pdf",
        }
    }

    pub fn from_mime(mime: &str) -> Option<FileType> {
        FileType::ALL.into_iter().find(|t| t.mime() == mime)
    }

    /// The name people know the format by.
    pub fn name(self) -> &'static str {
        match self {
            FileType::Jpeg => "JPEG",
            FileType::Png => "PNG",
            FileType::Webp => "WebP",
            FileType::Heic => "HEIC",
            FileType::Pdf => "PDF",
        }
    }

    pub fn is_image(self) -> bool {
        self != FileType::Pdf
    }
}

impl std::fmt::Display for FileType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("the file is empty")]
    Empty,
    #[error("the content is not a JPEG, PNG, WebP, HEIC or PDF file (the type is read from the bytes, not the name)")]
    Unsupported,
    #[error("the {0} file is cut short: it ends before its own structure does")]
    Truncated(FileType),
    #[error("the {file_type} file is malformed: {detail}")]
    Corrupt { file_type: FileType, detail: String },
    #[error("the image is {width}×{height} pixels; at most {max} pixels are accepted")]
    TooManyPixels { width: u32, height: u32, max: u64 },
}

impl FileError {
    fn corrupt(file_type: FileType, detail: impl Into<String>) -> FileError {
        FileError::Corrupt { file_type, detail: detail.into() }
    }
}

/// Bounds on what is decoded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most pixels an image may have (a small file can claim a huge picture).
    pub max_pixels: u64,
    /// The longer side of a thumbnail, in pixels.
    pub thumbnail_edge: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_pixels: 50_000_000, thumbnail_edge: 320 }
    }
}

/// A file fit to store: its type, its bytes with the metadata gone, and for an image its
/// size and a thumbnail (none for HEIC: decoding HEVC is not done here, so desks show an
/// icon for it).
#[derive(Debug, Clone)]
pub struct Cleaned {
    pub file_type: FileType,
    pub bytes: Vec<u8>,
    pub thumbnail: Option<Thumbnail>,
}

/// The type of `bytes`, read from their first bytes.
pub fn detect(bytes: &[u8]) -> Option<FileType> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(FileType::Jpeg)
    } else if bytes.starts_with(png_file::SIGNATURE) {
        Some(FileType::Png)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(FileType::Webp)
    } else if heic::is_heic(bytes) {
        Some(FileType::Heic)
    } else if bytes.starts_with(b"%PDF-") {
        Some(FileType::Pdf)
    } else {
        None
    }
}

/// Checks `bytes` are a whole file of an accepted type, strips its metadata and makes the
/// thumbnail. An image's EXIF orientation is the one piece of metadata kept (alone in a new,
/// minimal EXIF block), so a photo taken sideways still shows upright.
pub fn clean(bytes: &[u8], limits: &Limits) -> Result<Cleaned, FileError> {
    if bytes.is_empty() {
        return Err(FileError::Empty);
    }
    let file_type = detect(bytes).ok_or(FileError::Unsupported)?;
    let (stripped, orientation) = match file_type {
        FileType::Jpeg => jpeg::strip(bytes)?,
        FileType::Png => (png_file::strip(bytes)?, exif::Orientation::default()),
        FileType::Webp => (webp::strip(bytes)?, exif::Orientation::default()),
        FileType::Heic => (heic::strip(bytes)?, exif::Orientation::default()),
        FileType::Pdf => (pdf::check(bytes)?, exif::Orientation::default()),
    };
    let thumbnail = thumbnail::make(file_type, &stripped, orientation, limits)?;
    Ok(Cleaned { file_type, bytes: stripped, thumbnail })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_comes_from_the_bytes() {
        assert_eq!(detect(b"%PDF-1.7\n"), Some(FileType::Pdf));
        assert_eq!(detect(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(FileType::Jpeg));
        assert_eq!(detect(b"RIFF\x10\0\0\0WEBPVP8 "), Some(FileType::Webp));
        assert_eq!(detect(b"just some text, named photo.jpg"), None);
        assert_eq!(clean(b"", &Limits::default()).err(), Some(FileError::Empty));
        assert_eq!(clean(b"hello", &Limits::default()).err(), Some(FileError::Unsupported));
    }

    #[test]
    fn media_types_round_trip() {
        for t in FileType::ALL {
            assert_eq!(FileType::from_mime(t.mime()), Some(t));
        }
        assert_eq!(FileType::from_mime("text/plain"), None);
    }
}
