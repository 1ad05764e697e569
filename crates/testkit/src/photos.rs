//! Photos as phones make them, for attachment tests: pictures with an EXIF block that
//! records where they were taken.

/// The latitude the test photos claim, in whole degrees, minutes and seconds.
pub const LATITUDE: [u32; 3] = [31, 14, 7];

/// An EXIF block (`Exif\0\0` and a big-endian TIFF) with an orientation and a GPS position
/// (latitude reference and latitude).
pub fn gps_exif(orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\0\x2A\0\0\0\x08".to_vec();
    let entry = |tiff: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]| {
        tiff.extend_from_slice(&tag.to_be_bytes());
        tiff.extend_from_slice(&kind.to_be_bytes());
        tiff.extend_from_slice(&count.to_be_bytes());
        tiff.extend_from_slice(&value);
    };
    // IFD0 at 8 (30 bytes), the GPS IFD at 38 (30 bytes), the latitude's rationals at 68.
    tiff.extend_from_slice(&2u16.to_be_bytes());
    let [o1, o2] = orientation.to_be_bytes();
    entry(&mut tiff, 0x0112, 3, 1, [o1, o2, 0, 0]);
    entry(&mut tiff, 0x8825, 4, 1, 38u32.to_be_bytes());
    tiff.extend_from_slice(&0u32.to_be_bytes());
    tiff.extend_from_slice(&2u16.to_be_bytes());
    entry(&mut tiff, 0x0001, 2, 2, *b"N\0\0\0");
    entry(&mut tiff, 0x0002, 5, 3, 68u32.to_be_bytes());
    tiff.extend_from_slice(&0u32.to_be_bytes());
    for part in LATITUDE {
        tiff.extend_from_slice(&part.to_be_bytes());
        tiff.extend_from_slice(&1u32.to_be_bytes());
    }
    let mut block = b"Exif\0\0".to_vec();
    block.extend_from_slice(&tiff);
    block
}

/// RGB pixels of a smooth scene with fine grain (`seed` varies it), so a JPEG of it is
/// about as large as a phone photo of the same size.
pub fn scene(width: u16, height: u16, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut pixels = Vec::with_capacity(usize::from(width) * usize::from(height) * 3);
    for y in 0..u32::from(height) {
        for x in 0..u32::from(width) {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let grain = (state & 0x3F) as u8;
            let r = ((x * 255) / u32::from(width)) as u8;
            let g = ((y * 255) / u32::from(height)) as u8;
            let b = (((x + y) / 7) % 256) as u8;
            pixels.extend([r.wrapping_add(grain), g.wrapping_add(grain / 2), b ^ grain]);
        }
    }
    pixels
}

/// A JPEG photo carrying [`gps_exif`], a comment and an XMP packet.
pub fn jpeg_with_gps(width: u16, height: u16, orientation: u16, quality: u8) -> Vec<u8> {
    let mut jpeg = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut jpeg, quality);
    let mut xmp = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
    xmp.extend_from_slice(b"<x:xmpmeta><exif:GPSLatitude>31,14.1N</exif:GPSLatitude></x:xmpmeta>");
    let built = encoder
        .add_app_segment(1, gps_exif(orientation))
        .and_then(|()| encoder.add_app_segment(1, xmp))
        .and_then(|()| encoder.add_app_segment(13, b"Photoshop 3.0\0IPTC by the camera".to_vec()))
        .and_then(|()| encoder.encode(&scene(width, height, 7), width, height, jpeg_encoder::ColorType::Rgb));
    if let Err(e) = built {
        panic!("test photo: {e}");
    }
    jpeg
}

/// A PNG carrying [`gps_exif`] (an eXIf chunk) and a text chunk.
pub fn png_with_gps(width: u32, height: u32) -> Vec<u8> {
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let written = encoder.add_text_chunk("Location".into(), "Building 3, unit 1301".into()).and_then(|()| {
            let mut writer = encoder.write_header()?;
            writer.write_chunk(png::chunk::ChunkType(*b"eXIf"), &gps_exif(1)[6..])?;
            let pixels = scene(u16::try_from(width).unwrap_or(u16::MAX), u16::try_from(height).unwrap_or(u16::MAX), 3);
            writer.write_image_data(&pixels)?;
            writer.finish()
        });
        if let Err(e) = written {
            panic!("test png: {e}");
        }
    }
    png
}

/// A lossless WebP carrying [`gps_exif`].
pub fn webp_with_gps(width: u32, height: u32) -> Vec<u8> {
    let mut webp = Vec::new();
    let mut encoder = image_webp::WebPEncoder::new(&mut webp);
    encoder.set_exif_metadata(gps_exif(1)[6..].to_vec());
    let pixels = scene(u16::try_from(width).unwrap_or(u16::MAX), u16::try_from(height).unwrap_or(u16::MAX), 5);
    if let Err(e) = encoder.encode(&pixels, width, height, image_webp::ColorType::Rgb8) {
        panic!("test webp: {e}");
    }
    webp
}
