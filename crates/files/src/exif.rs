//! The one EXIF fact kept: which way up the photo is. Everything else an EXIF block may
//! hold (GPS position, time, camera serial, maker notes) is dropped with the block.

use crate::reader::{be_u16, be_u32, le_u16, le_u32};

const ORIENTATION_TAG: u16 = 0x0112;
const SHORT: u16 = 3;

/// EXIF orientation 1–8: how to turn the stored pixels to show them upright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Orientation(pub(crate) u16);

impl Default for Orientation {
    fn default() -> Self {
        Orientation(1)
    }
}

impl Orientation {
    /// The orientation an EXIF block (`Exif\0\0` and a TIFF structure) records, if any.
    pub(crate) fn read(exif: &[u8]) -> Option<Orientation> {
        let tiff = exif.strip_prefix(b"Exif\0\0")?;
        let big = match tiff.get(..2)? {
            b"MM" => true,
            b"II" => false,
            _ => return None,
        };
        let u16_at = |at| if big { be_u16(tiff, at) } else { le_u16(tiff, at) };
        let u32_at = |at| if big { be_u32(tiff, at) } else { le_u32(tiff, at) };
        let ifd = usize::try_from(u32_at(4)?).ok()?;
        let entries = u16_at(ifd)?;
        (0..usize::from(entries)).find_map(|i| {
            let entry = ifd + 2 + 12 * i;
            if u16_at(entry)? != ORIENTATION_TAG || u16_at(entry + 2)? != SHORT {
                return None;
            }
            let value = u16_at(entry + 8)?;
            (1..=8).contains(&value).then_some(Orientation(value))
        })
    }

    pub(crate) fn is_upright(self) -> bool {
        self.0 == 1
    }

    /// A minimal EXIF block (`Exif\0\0`, big-endian TIFF, one IFD, one entry) recording
    /// only this orientation.
    pub(crate) fn exif_block(self) -> Vec<u8> {
        let mut block = b"Exif\0\0MM\0\x2A\0\0\0\x08".to_vec();
        block.extend_from_slice(&1u16.to_be_bytes());
        block.extend_from_slice(&ORIENTATION_TAG.to_be_bytes());
        block.extend_from_slice(&SHORT.to_be_bytes());
        block.extend_from_slice(&1u32.to_be_bytes());
        block.extend_from_slice(&self.0.to_be_bytes());
        block.extend_from_slice(&[0, 0]);
        block.extend_from_slice(&0u32.to_be_bytes());
        block
    }

    /// Where the stored pixel at (`x`, `y`) of a `width`×`height` image goes when shown
    /// upright, and the upright size.
    pub(crate) fn upright(self, width: u32, height: u32) -> (u32, u32) {
        if self.swaps_sides() { (height, width) } else { (width, height) }
    }

    pub(crate) fn swaps_sides(self) -> bool {
        matches!(self.0, 5..=8)
    }

    /// The upright position of stored pixel (`x`, `y`).
    pub(crate) fn place(self, x: u32, y: u32, width: u32, height: u32) -> (u32, u32) {
        let (right, bottom) = (width - 1 - x, height - 1 - y);
        match self.0 {
            2 => (right, y),
            3 => (right, bottom),
            4 => (x, bottom),
            5 => (y, x),
            6 => (height - 1 - y, x),
            7 => (height - 1 - y, right),
            8 => (y, right),
            _ => (x, y),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimal_block_reads_back() {
        for value in 1..=8 {
            assert_eq!(Orientation::read(&Orientation(value).exif_block()), Some(Orientation(value)));
        }
        assert_eq!(Orientation::read(b"Exif\0\0XX"), None);
        assert_eq!(Orientation::read(b"not exif"), None);
    }

    #[test]
    fn a_quarter_turn_swaps_the_sides() {
        // Orientation 6: the stored image is shown turned 90° clockwise.
        let six = Orientation(6);
        assert_eq!(six.upright(4, 2), (2, 4));
        assert_eq!(six.place(0, 0, 4, 2), (1, 0));
        assert_eq!(six.place(3, 1, 4, 2), (0, 3));
        assert_eq!(Orientation(3).place(0, 0, 4, 2), (3, 1));
    }
}
