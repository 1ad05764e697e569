//! Files kept on a ticket (photos of a leak before and after the work, scans of letters):
//! what the ticket records about each, and the rules on names and numbers. The bytes live
//! in object storage under `object_key`; their type was read from the bytes themselves
//! and their metadata stripped before they got there.

use chrono::{DateTime, Utc};

/// The longest file name kept, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// A file name as people gave it, safe to show and to offer as a download name: a single
/// name, never a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName(String);

impl FileName {
    /// Refuses empty and over-long names, control characters, and anything path-like:
    /// separators (`/`, `\`), `.` and `..`, and drive prefixes (`C:`).
    pub fn parse(raw: &str) -> Result<FileName, &'static str> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("is required");
        }
        if name.len() > MAX_FILE_NAME_BYTES {
            return Err("is longer than 255 bytes");
        }
        if name.chars().any(char::is_control) {
            return Err("contains control characters");
        }
        if name.contains(['/', '\\']) || name == "." || name == ".." || name.as_bytes().get(1) == Some(&b':') {
            return Err("must be a plain file name, not a path");
        }
        Ok(FileName(name.to_owned()))
    }

    /// A stored name, trusted as it was checked when written.
    pub fn stored(name: String) -> FileName {
        FileName(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The small JPEG kept beside an image for list views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThumbnailFacts {
    pub object_key: String,
    pub size_bytes: u64,
    pub width: u32,
    pub height: u32,
}

/// A file on a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub id: String,
    pub ticket_id: String,
    pub property_id: String,
    /// The history event the file belongs to (a resolve's "after" photo), if any.
    pub event_id: Option<String>,
    pub file_name: FileName,
    /// The media type read from the bytes (`image/jpeg`, `application/pdf`, …).
    pub content_type: String,
    /// Bytes as stored (after stripping).
    pub size_bytes: u64,
    /// SHA-256 of the stored bytes, lower-case hex: identical bytes on one ticket are kept
    /// once.
    pub sha256: String,
    pub object_key: String,
    pub thumbnail: Option<ThumbnailFacts>,
    /// What the uploader said the file shows.
    pub caption: String,
    pub uploaded_by: String,
    pub created_at: DateTime<Utc>,
}

impl Attachment {
    /// The note of the event that records it.
    pub fn note(&self) -> String {
        let name = self.file_name.as_str();
        match self.caption.as_str() {
            "" => format!("attached {name} ({}, {} bytes)", self.content_type, self.size_bytes),
            caption => format!("attached {name} ({}, {} bytes): {caption}", self.content_type, self.size_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_names_not_paths() {
        assert_eq!(FileName::parse(" 漏水照片.jpg ").map(|n| n.0), Ok("漏水照片.jpg".to_owned()));
        for bad in ["../../etc/passwd", "a/b.jpg", "..", ".", "C:photo.jpg", "c:\\x.jpg", "a\\b.png", "x\u{0}.jpg", ""]
        {
            assert!(FileName::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(FileName::parse(&"a".repeat(256)).is_err());
        assert!(FileName::parse(&"a".repeat(255)).is_ok());
        assert_eq!(FileName::parse("..hidden.jpg").map(|n| n.0), Ok("..hidden.jpg".to_owned()));
    }
}
