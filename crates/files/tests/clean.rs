//! Files as phones and scanners make them, cleaned: the EXIF read back with an EXIF parser.

use std::io::Cursor;

use exif::{In, Tag};
use propdesk_files::{FileError, FileType, Limits, clean};
use propdesk_testkit::photos;

fn exif_of(bytes: &[u8]) -> Option<exif::Exif> {
    exif::Reader::new().read_from_container(&mut Cursor::new(bytes)).ok()
}

fn has_gps(bytes: &[u8]) -> bool {
    exif_of(bytes)
        .is_some_and(|e| e.fields().any(|f| f.ifd_num == In::PRIMARY && f.tag.context() == exif::Context::Gps))
}

fn contains(bytes: &[u8], needle: &[u8]) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_jpeg_loses_its_gps_but_stays_upright() {
    let photo = photos::jpeg_with_gps(640, 480, 6, 85);
    assert!(has_gps(&photo), "the test photo carries a GPS position");
    let cleaned = clean(&photo, &Limits::default()).unwrap();
    assert_eq!(cleaned.file_type, FileType::Jpeg);
    assert!(!has_gps(&cleaned.bytes));
    for trace in [&b"xmpmeta"[..], b"IPTC", b"GPSLatitude"] {
        assert!(!contains(&cleaned.bytes, trace), "{} survived", String::from_utf8_lossy(trace));
    }
    let exif = exif_of(&cleaned.bytes).expect("the orientation is kept");
    let orientation = exif.get_field(Tag::Orientation, In::PRIMARY).and_then(|f| f.value.get_uint(0));
    assert_eq!(orientation, Some(6));
    assert_eq!(exif.fields().count(), 1, "only the orientation is left");
    // The pictures are the same: decoding both gives the same pixels.
    let pixels = |bytes: &[u8]| jpeg_decoder::Decoder::new(Cursor::new(bytes)).decode().unwrap();
    assert_eq!(pixels(&photo), pixels(&cleaned.bytes));
    // The thumbnail is upright: a landscape photo taken with the phone turned is portrait.
    let thumbnail = cleaned.thumbnail.unwrap();
    assert_eq!((thumbnail.width, thumbnail.height), (240, 320));
    assert!(!has_gps(&thumbnail.jpeg));
    assert_eq!(jpeg_decoder::Decoder::new(Cursor::new(&thumbnail.jpeg)).decode().unwrap().len(), 240 * 320 * 3);
}

#[test]
fn an_upright_jpeg_keeps_no_exif_at_all() {
    let cleaned = clean(&photos::jpeg_with_gps(100, 50, 1, 85), &Limits::default()).unwrap();
    assert!(exif_of(&cleaned.bytes).is_none());
    let thumbnail = cleaned.thumbnail.unwrap();
    assert_eq!((thumbnail.width, thumbnail.height), (100, 50), "a small picture is not enlarged");
}

#[test]
fn a_png_loses_its_exif_and_text() {
    let png = photos::png_with_gps(400, 300);
    assert!(has_gps(&png));
    let cleaned = clean(&png, &Limits::default()).unwrap();
    assert_eq!(cleaned.file_type, FileType::Png);
    assert!(!has_gps(&cleaned.bytes));
    assert!(!contains(&cleaned.bytes, b"unit 1301"));
    assert!(!contains(&cleaned.bytes, b"eXIf"));
    let thumbnail = cleaned.thumbnail.unwrap();
    assert_eq!((thumbnail.width, thumbnail.height), (320, 240));
}

#[test]
fn a_webp_loses_its_exif() {
    let webp = photos::webp_with_gps(200, 100);
    assert!(has_gps(&webp));
    let cleaned = clean(&webp, &Limits::default()).unwrap();
    assert_eq!(cleaned.file_type, FileType::Webp);
    assert!(!has_gps(&cleaned.bytes));
    assert!(!contains(&cleaned.bytes, b"EXIF"));
    let mut decoder = image_webp::WebPDecoder::new(Cursor::new(&cleaned.bytes)).unwrap();
    assert_eq!(decoder.dimensions(), (200, 100));
    assert!(decoder.exif_metadata().unwrap().is_none());
    assert_eq!(cleaned.thumbnail.map(|t| (t.width, t.height)), Some((200, 100)));
}

/// A HEIF container as cameras write it: file type, a meta box whose EXIF item lives in the
/// media data box.
fn heic_with_gps() -> Vec<u8> {
    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = u32::try_from(body.len() + 8).unwrap().to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(body);
        b
    }
    let mut item = vec![0, 0, 0, 6];
    item.extend_from_slice(&photos::gps_exif(1));
    let ftyp = boxed(b"ftyp", b"heic\0\0\0\0mif1heic");
    let hdlr = boxed(b"hdlr", b"\0\0\0\0\0\0\0\0pict\0\0\0\0\0\0\0\0\0\0\0\0\0");
    let infe = boxed(b"infe", b"\x02\0\0\0\0\x01\0\0Exif\0");
    let mut iinf_body = b"\0\0\0\0\0\x01".to_vec();
    iinf_body.extend_from_slice(&infe);
    let iinf = boxed(b"iinf", &iinf_body);
    // iloc v0, 4-byte offsets and lengths; the offset is patched once the layout is known.
    let iloc_of = |offset: u32| {
        let mut body = b"\0\0\0\0\x44\0\0\x01\0\x01\0\0\0\x01".to_vec();
        body.extend_from_slice(&offset.to_be_bytes());
        body.extend_from_slice(&u32::try_from(item.len()).unwrap().to_be_bytes());
        boxed(b"iloc", &body)
    };
    let meta_of = |iloc: Vec<u8>| {
        let mut body = vec![0; 4];
        body.extend_from_slice(&hdlr);
        body.extend_from_slice(&iinf);
        body.extend_from_slice(&iloc);
        boxed(b"meta", &body)
    };
    let head = ftyp.len() + meta_of(iloc_of(0)).len() + 8;
    let mut file = ftyp.clone();
    file.extend_from_slice(&meta_of(iloc_of(u32::try_from(head).unwrap())));
    file.extend_from_slice(&boxed(b"mdat", &item));
    file
}

#[test]
fn a_heic_loses_its_exif_item() {
    let heic = heic_with_gps();
    assert!(has_gps(&heic), "the test HEIC carries a GPS position");
    let cleaned = clean(&heic, &Limits::default()).unwrap();
    assert_eq!(cleaned.file_type, FileType::Heic);
    assert_eq!(cleaned.bytes.len(), heic.len(), "zeroed in place: every offset still holds");
    assert!(!has_gps(&cleaned.bytes));
    assert!(cleaned.thumbnail.is_none());
    // Cut short: the media data box claims more than is there.
    assert_eq!(clean(&heic[..heic.len() - 10], &Limits::default()).err(), Some(FileError::Truncated(FileType::Heic)));
}

#[test]
fn a_pdf_is_kept_whole_but_must_be_complete() {
    let pdf = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n".to_vec();
    let cleaned = clean(&pdf, &Limits::default()).unwrap();
    assert_eq!((cleaned.file_type, cleaned.bytes, cleaned.thumbnail), (FileType::Pdf, pdf.clone(), None));
    assert_eq!(clean(&pdf[..20], &Limits::default()).err(), Some(FileError::Truncated(FileType::Pdf)));
}

#[test]
fn bad_files_are_refused_with_their_reason() {
    let limits = Limits::default();
    let photo = photos::jpeg_with_gps(320, 200, 1, 85);
    assert_eq!(clean(&photo[..photo.len() / 2], &limits).err(), Some(FileError::Truncated(FileType::Jpeg)));
    assert_eq!(clean(&photo[..photo.len() - 2], &limits).err(), Some(FileError::Truncated(FileType::Jpeg)));
    assert_eq!(clean(b"a text file named photo.jpg\n", &limits).err(), Some(FileError::Unsupported));
    assert_eq!(clean(b"", &limits).err(), Some(FileError::Empty));
    let png = photos::png_with_gps(40, 30);
    assert_eq!(clean(&png[..png.len() - 12], &limits).err(), Some(FileError::Truncated(FileType::Png)));
    let mut flipped = png.clone();
    flipped[40] ^= 0xFF;
    assert!(matches!(clean(&flipped, &limits), Err(FileError::Corrupt { file_type: FileType::Png, .. })));
    // A picture of more pixels than the limit allows is not decoded.
    let tight = Limits { max_pixels: 1_000, ..limits };
    assert_eq!(clean(&png, &tight).err(), Some(FileError::TooManyPixels { width: 40, height: 30, max: 1_000 }));
    let webp = photos::webp_with_gps(20, 10);
    assert_eq!(clean(&webp[..webp.len() - 4], &limits).err(), Some(FileError::Truncated(FileType::Webp)));
}
