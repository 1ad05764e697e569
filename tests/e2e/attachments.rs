//! Photos and documents on tickets: kept in object storage (a folder, or a real S3
//! server), cleaned of where they were taken, downloaded whole, refused when bad, and never
//! left behind by an upload that failed or died.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use propdesk_proto::v1 as pb;
use propdesk_proto::v1::attachment_service_client::AttachmentServiceClient;
use propdesk_testkit::{Backend, photos};
use sea_orm::{ConnectionTrait, TransactionTrait};
use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::helpers::{App, Server, assert_reason, assert_status, authed, free_port};

crate::on_both_backends!(
    photos_before_and_after_are_kept_without_their_gps_and_downloaded_whole,
    bad_files_are_refused_by_name_and_nothing_of_them_is_kept,
);

type Files = AttachmentServiceClient<Channel>;

/// Where an app keeps its files.
enum FileStore {
    Folder(tempfile::TempDir),
    S3(S3Server),
}

impl FileStore {
    fn folder() -> FileStore {
        FileStore::Folder(tempfile::tempdir().expect("temp dir"))
    }

    fn settings(&self) -> Vec<(&'static str, String)> {
        match self {
            FileStore::Folder(dir) => {
                vec![("PROPDESK__ATTACHMENTS__STORE", format!("file://{}", dir.path().display()))]
            }
            FileStore::S3(server) => vec![
                ("PROPDESK__ATTACHMENTS__STORE", format!("s3://{}/tickets", S3Server::BUCKET)),
                ("PROPDESK__ATTACHMENTS__S3__ENDPOINT", format!("http://127.0.0.1:{}", server.port)),
                ("PROPDESK__ATTACHMENTS__S3__REGION", "cn-east-1".into()),
                ("PROPDESK__ATTACHMENTS__S3__ACCESS_KEY_ID", S3Server::ACCESS_KEY.into()),
                ("PROPDESK__ATTACHMENTS__S3__SECRET_ACCESS_KEY", S3Server::SECRET_KEY.into()),
            ],
        }
    }

    /// Every file the store holds on disk (s3s-fs keeps objects as files under its root).
    fn stored_files(&self) -> Vec<PathBuf> {
        let root = match self {
            FileStore::Folder(dir) => dir.path().to_owned(),
            FileStore::S3(server) => server.root.path().join(S3Server::BUCKET),
        };
        files_under(&root)
    }
}

/// Every file under `root`, but the S3 server's own bookkeeping (dot files) and files being
/// written (`#` temp names).
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                pending.push(path);
            } else if !name.starts_with('.') && !name.contains('#') {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// A real S3-protocol server (s3s-fs, from crates.io, installed by
/// scripts/ensure-services) on the loopback address, over a temporary folder.
struct S3Server {
    child: Child,
    port: u16,
    root: tempfile::TempDir,
}

impl S3Server {
    const BUCKET: &'static str = "propdesk-files";
    const ACCESS_KEY: &'static str = "propdesk-test";
    const SECRET_KEY: &'static str = "propdesk-test-secret-key";

    async fn start() -> S3Server {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(root.path().join(S3Server::BUCKET)).expect("the bucket");
        let port = free_port();
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3Server::ACCESS_KEY, "--secret-key", S3Server::SECRET_KEY])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs is installed by scripts/ensure-services (cargo install s3s-fs)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen on {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        S3Server { child, port, root }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(backend: Backend, store: &FileStore, extra: &[(&'static str, String)]) -> (App, Files) {
    let mut settings = store.settings();
    settings.extend(extra.iter().cloned());
    let app = App::start_with(backend, &settings).await;
    let files = AttachmentServiceClient::new(app.server.channel().await);
    (app, files)
}

fn add(ticket_id: &str, name: &str, content: Vec<u8>) -> pb::AddAttachmentRequest {
    pb::AddAttachmentRequest { ticket_id: ticket_id.into(), file_name: name.into(), content, ..Default::default() }
}

/// The header and the bytes of a download, checking every chunk fits the promised size.
async fn download(
    files: &mut Files,
    token: &str,
    id: &str,
    variant: pb::AttachmentVariant,
) -> (pb::DownloadHeader, Vec<u8>) {
    let request = pb::DownloadAttachmentRequest { attachment_id: id.into(), variant: variant as i32 };
    let mut stream = files.download_attachment(authed(token, request)).await.expect("download").into_inner();
    let mut header = None;
    let mut bytes = Vec::new();
    while let Some(part) = stream.next().await {
        match part.expect("a download part").part {
            Some(pb::download_attachment_response::Part::Header(h)) => {
                assert!(header.is_none() && bytes.is_empty(), "the header comes first, once");
                header = Some(h);
            }
            Some(pb::download_attachment_response::Part::Chunk(chunk)) => {
                assert!(!chunk.is_empty() && chunk.len() <= 256 * 1024, "chunk of {} bytes", chunk.len());
                bytes.extend_from_slice(&chunk);
            }
            None => panic!("an empty download part"),
        }
    }
    let header = header.expect("a header");
    assert_eq!(header.size_bytes, bytes.len() as i64, "the header's size is what came");
    (header, bytes)
}

fn exif_of(bytes: &[u8]) -> Option<exif::Exif> {
    exif::Reader::new().read_from_container(&mut Cursor::new(bytes)).ok()
}

fn gps_fields(bytes: &[u8]) -> usize {
    exif_of(bytes).map_or(0, |e| e.fields().filter(|f| f.tag.context() == exif::Context::Gps).count())
}

fn pixels(jpeg: &[u8]) -> Vec<u8> {
    jpeg_decoder::Decoder::new(Cursor::new(jpeg)).decode().expect("a decodable JPEG")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The history event of `ticket_id` of `kind`, newest.
async fn event_of(app: &mut App, ticket_id: &str, kind: pb::TicketEventType) -> pb::TicketEvent {
    let history = app.history(ticket_id).await;
    history.into_iter().rev().find(|e| e.r#type == kind as i32).unwrap_or_else(|| panic!("no {kind:?} event"))
}

async fn photos_before_and_after_are_kept_without_their_gps_and_downloaded_whole(backend: Backend) {
    let store = FileStore::folder();
    let (mut app, mut files) = start(backend, &store, &[]).await;
    photos_round_trip(&mut app, &mut files, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_round_trip_through_a_real_s3_server() {
    let store = FileStore::S3(S3Server::start().await);
    let (mut app, mut files) = start(Backend::Postgres, &store, &[]).await;
    photos_round_trip(&mut app, &mut files, &store).await;
}

/// A technician's before and after photos, a resident's PNG and a scanned letter.
async fn photos_round_trip(app: &mut App, files: &mut Files, store: &FileStore) {
    let plumber = app.world.plumber.clone();
    let ticket = app.create(app.new_ticket("plumbing", "卫生间漏水，天花板有水渍")).await;
    let ticket = app.assign_to_plumber(&ticket).await;

    // Before: a phone photo taken with the phone turned, carrying its GPS position.
    let before = photos::jpeg_with_gps(1600, 1200, 6, 90);
    assert!(gps_fields(&before) > 0, "the test photo says where it was taken");
    let mut request = add(&ticket.id, "漏水-之前.jpg", before.clone());
    request.caption = "before the repair".into();
    let added = files.add_attachment(authed(&plumber, request)).await.expect("upload before").into_inner();
    let first = added.attachment.expect("attachment");
    assert!(!added.already_attached);
    assert_eq!((first.content_type.as_str(), first.file_name.as_str()), ("image/jpeg", "漏水-之前.jpg"));
    assert_eq!((first.thumbnail_width, first.thumbnail_height), (240, 320), "upright thumbnail of a turned photo");
    let ticket = added.ticket.expect("ticket");

    // After: resolve, then attach the photo of the finished work to the RESOLVED event.
    let resolve = pb::ResolveTicketRequest {
        ticket_id: ticket.id.clone(),
        expected_version: ticket.version,
        note: "换了角阀".into(),
        delay_cause: String::new(),
    };
    app.tickets.resolve_ticket(authed(&plumber, resolve)).await.expect("resolve");
    let resolved = event_of(app, &ticket.id, pb::TicketEventType::Resolved).await;
    let after = photos::jpeg_with_gps(1200, 900, 1, 88);
    let mut request = add(&ticket.id, "after.jpg", after.clone());
    request.event_id = resolved.event_id.clone();
    let second = files.add_attachment(authed(&plumber, request)).await.expect("upload after").into_inner();
    let second = second.attachment.expect("attachment");
    assert_eq!(second.event_id, resolved.event_id);

    // A resident's PNG and a scanned letter, added at the desk.
    let agent = app.world.agent.clone();
    let png = photos::png_with_gps(500, 400);
    let png = files.add_attachment(authed(&agent, add(&ticket.id, "水渍.png", png))).await.expect("png").into_inner();
    let png = png.attachment.expect("attachment");
    assert_eq!((png.content_type.as_str(), png.thumbnail_width, png.thumbnail_height), ("image/png", 320, 256));
    let letter = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n".to_vec();
    let pdf = files.add_attachment(authed(&agent, add(&ticket.id, "投诉信.pdf", letter.clone()))).await.expect("pdf");
    let pdf = pdf.into_inner().attachment.expect("attachment");
    assert_eq!((pdf.content_type.as_str(), pdf.thumbnail_width), ("application/pdf", 0));

    // Listed oldest first; by event.
    let list = |event_id: &str| pb::ListAttachmentsRequest { ticket_id: ticket.id.clone(), event_id: event_id.into() };
    let all = files.list_attachments(authed(&agent, list(""))).await.expect("list").into_inner().attachments;
    let ids: Vec<&str> = all.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, [first.id.as_str(), second.id.as_str(), png.id.as_str(), pdf.id.as_str()]);
    let of_resolve = files.list_attachments(authed(&agent, list(&resolved.event_id))).await.expect("list").into_inner();
    assert_eq!(of_resolve.attachments.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), [second.id.as_str()]);

    // The history records each file.
    let history = app.history(&ticket.id).await;
    let attached: Vec<&str> = history
        .iter()
        .filter(|e| e.r#type == pb::TicketEventType::AttachmentAdded as i32)
        .map(|e| e.attachment_id.as_str())
        .collect();
    assert_eq!(attached, ids);
    assert_eq!(first.added_event_id, history.iter().find(|e| e.attachment_id == first.id).unwrap().event_id);

    // Downloads: the same picture, no GPS, the orientation kept, the hash as listed.
    let (header, original) = download(files, &agent, &first.id, pb::AttachmentVariant::Unspecified).await;
    assert_eq!(header.content_type, "image/jpeg");
    assert_eq!(sha256_hex(&original), first.sha256);
    assert_eq!(pixels(&original), pixels(&before), "byte-identical pictures, only the metadata gone");
    assert_eq!(gps_fields(&original), 0, "no GPS survives");
    let exif = exif_of(&original).expect("the orientation is kept");
    let orientation = exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY).and_then(|f| f.value.get_uint(0));
    assert_eq!(orientation, Some(6));
    let (thumb_header, thumbnail) = download(files, &plumber, &first.id, pb::AttachmentVariant::Thumbnail).await;
    assert_eq!(thumb_header.content_type, "image/jpeg");
    assert_eq!(pixels(&thumbnail).len(), 240 * 320 * 3);
    assert_eq!(gps_fields(&thumbnail), 0);
    let (_, letter_back) = download(files, &agent, &pdf.id, pb::AttachmentVariant::Original).await;
    assert_eq!(letter_back, letter, "a PDF comes back as it went in");
    let no_thumbnail = pb::DownloadAttachmentRequest {
        attachment_id: pdf.id.clone(),
        variant: pb::AttachmentVariant::Thumbnail as i32,
    };
    let missing = files.download_attachment(authed(&agent, no_thumbnail)).await.map(|_| ());
    assert_reason(missing, Code::NotFound, pb::ErrorReason::ResourceNotFound, "a PDF has no thumbnail");

    // The same bytes again: the file already there, nothing new kept.
    let again = files.add_attachment(authed(&plumber, add(&ticket.id, "again.jpg", before))).await.expect("again");
    let again = again.into_inner();
    assert!(again.already_attached);
    assert_eq!(again.attachment.expect("attachment").id, first.id);
    let all = files.list_attachments(authed(&agent, list(""))).await.expect("list").into_inner().attachments;
    assert_eq!(all.len(), 4);

    // What the store holds: four files and three thumbnails, none with a GPS position.
    let stored = store.stored_files();
    assert_eq!(stored.len(), 7, "{stored:?}");
    for path in &stored {
        let bytes = std::fs::read(path).expect("read a stored file");
        assert_eq!(gps_fields(&bytes), 0, "{} holds a GPS position", path.display());
        assert!(!bytes.windows(9).any(|w| w == b"unit 1301"), "{} holds the PNG's text", path.display());
    }

    // Another property's staff see none of it.
    let outsider = app.world.outsider.clone();
    let denied = files.list_attachments(authed(&outsider, list(""))).await;
    assert_reason(denied, Code::PermissionDenied, pb::ErrorReason::PropertyNotServed, "list across properties");
    let get = pb::GetAttachmentRequest { attachment_id: first.id.clone() };
    let denied = files.get_attachment(authed(&outsider, get)).await;
    assert_reason(denied, Code::PermissionDenied, pb::ErrorReason::PropertyNotServed, "get across properties");
    let fetch = pb::DownloadAttachmentRequest { attachment_id: first.id.clone(), variant: 0 };
    let denied = files.download_attachment(authed(&outsider, fetch)).await.map(|_| ());
    assert_reason(denied, Code::PermissionDenied, pb::ErrorReason::PropertyNotServed, "download across properties");
}

async fn bad_files_are_refused_by_name_and_nothing_of_them_is_kept(backend: Backend) {
    let store = FileStore::folder();
    let limits = [
        ("PROPDESK__ATTACHMENTS__MAX_BYTES", (200 * 1024).to_string()),
        ("PROPDESK__ATTACHMENTS__UPLOADS_PER_MINUTE", "1".to_owned()),
        ("PROPDESK__ATTACHMENTS__UPLOAD_BURST", "23".to_owned()),
    ];
    let (mut app, mut files) = start(backend, &store, &limits).await;
    let agent = app.world.agent.clone();
    let ticket = app.create(app.new_ticket("plumbing", "厨房下水道堵塞")).await;
    let other = app.create(app.new_ticket("plumbing", "阳台地漏返水")).await;
    let photo = |seed: u16| photos::jpeg_with_gps(320 + seed, 240, 1, 80);

    // Refused before anything is read or counted against the rate.
    let cases: Vec<(&str, pb::AddAttachmentRequest, Code, Option<&str>, pb::ErrorReason)> = vec![
        (
            "zero bytes",
            add(&ticket.id, "empty.jpg", Vec::new()),
            Code::InvalidArgument,
            Some("content"),
            pb::ErrorReason::EmptyFile,
        ),
        (
            "one byte over the limit",
            add(&ticket.id, "big.jpg", vec![0xFF; 200 * 1024 + 1]),
            Code::InvalidArgument,
            Some("content"),
            pb::ErrorReason::FileTooLarge,
        ),
        (
            "a path",
            add(&ticket.id, "../../etc/passwd", photo(0)),
            Code::InvalidArgument,
            Some("file_name"),
            pb::ErrorReason::InvalidField,
        ),
        (
            "no name",
            add(&ticket.id, "", photo(0)),
            Code::InvalidArgument,
            Some("file_name"),
            pb::ErrorReason::InvalidField,
        ),
        (
            "another ticket's event",
            pb::AddAttachmentRequest {
                event_id: event_of(&mut app, &other.id, pb::TicketEventType::Created).await.event_id,
                ..add(&ticket.id, "x.jpg", photo(0))
            },
            Code::InvalidArgument,
            Some("event_id"),
            pb::ErrorReason::InvalidField,
        ),
    ];
    for (case, request, code, field, reason) in cases {
        let result = files.add_attachment(authed(&agent, request)).await;
        let info = assert_status(result, code, field, case);
        assert_eq!(info.reason, reason.as_str_name(), "{case}");
    }
    // Far over the limit: the transport refuses the message itself.
    let huge = files.add_attachment(authed(&agent, add(&ticket.id, "huge.jpg", vec![0xFF; 1024 * 1024]))).await;
    let info = assert_status(huge, Code::OutOfRange, None, "a message far over the limit").reason;
    assert_eq!(info, pb::ErrorReason::RequestTooLarge.as_str_name());
    // Another property's staff cannot attach to this property's ticket.
    let outsider = app.world.outsider.clone();
    let denied = files.add_attachment(authed(&outsider, add(&ticket.id, "x.jpg", photo(0)))).await;
    assert_reason(denied, Code::PermissionDenied, pb::ErrorReason::PropertyNotServed, "attach across properties");

    // Twenty photos fill the ticket; a 21st is refused, as are a renamed text file and a
    // photo cut short.
    for n in 1..=20 {
        files.add_attachment(authed(&agent, add(&ticket.id, &format!("{n}.jpg"), photo(n)))).await.expect("a photo");
    }
    let full = files.add_attachment(authed(&agent, add(&ticket.id, "21.jpg", photo(21)))).await;
    let metadata = assert_reason(full, Code::FailedPrecondition, pb::ErrorReason::TooManyAttachments, "a 21st file");
    assert_eq!(metadata.get("max").map(String::as_str), Some("20"));
    let text = b"This is a text file, renamed photo.jpg\n".to_vec();
    let renamed = files.add_attachment(authed(&agent, add(&other.id, "photo.jpg", text))).await;
    let info = assert_status(renamed, Code::InvalidArgument, Some("content"), "a text file named .jpg");
    assert_eq!(info.reason, pb::ErrorReason::UnsupportedFileType.as_str_name());
    let whole = photo(5);
    let cut = whole[..whole.len() / 2].to_vec();
    let cut = files.add_attachment(authed(&agent, add(&other.id, "cut.jpg", cut))).await;
    let info = assert_status(cut, Code::InvalidArgument, Some("content"), "a JPEG cut short");
    assert_eq!(info.reason, pb::ErrorReason::DamagedFile.as_str_name());

    // 23 uploads in a burst of 23: the next waits.
    let limited = files.add_attachment(authed(&agent, add(&other.id, "24.jpg", photo(24)))).await;
    let status = limited.as_ref().err().cloned();
    assert_reason(limited, Code::ResourceExhausted, pb::ErrorReason::UploadRateLimited, "the 24th upload");
    let retry = tonic_types::StatusExt::get_details_retry_info(&status.expect("a status")).expect("RetryInfo");
    assert!(retry.retry_delay.is_some_and(|d| d > Duration::ZERO && d <= Duration::from_secs(60)), "{retry:?}");
    // Others are not held up by one person's pace.
    let dispatcher = app.world.dispatcher.clone();
    files.add_attachment(authed(&dispatcher, add(&other.id, "d.jpg", photo(25)))).await.expect("another person");

    // Kept: the 21 accepted files and their thumbnails, nothing of the refused ones.
    assert_eq!(store.stored_files().len(), 42, "{:?}", store.stored_files());
    let listed = |id: &str| pb::ListAttachmentsRequest { ticket_id: id.into(), event_id: String::new() };
    let kept = files.list_attachments(authed(&agent, listed(&ticket.id))).await.expect("list").into_inner();
    assert_eq!(kept.attachments.len(), 20);
    let kept = files.list_attachments(authed(&agent, listed(&other.id))).await.expect("list").into_inner();
    assert_eq!(kept.attachments.len(), 1);
    // An id nobody has: NOT_FOUND.
    let unknown = pb::GetAttachmentRequest { attachment_id: uuid::Uuid::now_v7().to_string() };
    assert_reason(
        files.get_attachment(authed(&agent, unknown)).await,
        Code::NotFound,
        pb::ErrorReason::ResourceNotFound,
        "unknown id",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_storing_and_saving_leaves_nothing_visible_and_the_sweep_removes_the_bytes() {
    for store in [FileStore::folder(), FileStore::S3(S3Server::start().await)] {
        killed_upload_leaves_only_orphans_the_sweep_removes(store).await;
    }
}

async fn killed_upload_leaves_only_orphans_the_sweep_removes(store: FileStore) {
    let (mut app, _) = start(Backend::Postgres, &store, &[]).await;
    let agent = app.world.agent.clone();
    let ticket = app.create(app.new_ticket("plumbing", "水管爆裂")).await;

    // Hold the ticket's row: the upload writes its bytes, then waits at its save.
    let db = sea_orm::Database::connect(&app._db.url).await.expect("connect");
    let holder = db.begin().await.expect("begin");
    let lock = format!("SELECT id FROM tickets WHERE id = '{}' FOR UPDATE", ticket.id);
    holder.execute_unprepared(&lock).await.expect("lock the ticket");
    let mut files = AttachmentServiceClient::new(app.server.channel().await);
    let request = authed(&agent, add(&ticket.id, "burst.jpg", photos::jpeg_with_gps(800, 600, 1, 85)));
    let upload = tokio::spawn(async move { files.add_attachment(request).await });
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.stored_files().len() < 2 {
        assert!(Instant::now() < deadline, "the upload never wrote its bytes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.server.kill();
    let outcome: Result<_, Status> = upload.await.expect("join");
    assert!(outcome.is_err(), "the killed intake answered nothing");
    holder.rollback().await.expect("release the ticket");

    // A new intake shows nothing of it; its sweep (bytes older than a second) removes them.
    let stranded = store.stored_files();
    assert_eq!(stranded.len(), 2, "the photo and its thumbnail, named by no row");
    let mut env = app.env.clone();
    env.push(("PROPDESK__ATTACHMENTS__ORPHAN_GRACE_SECS", "1".to_owned()));
    env.push(("PROPDESK__ATTACHMENTS__SWEEP_INTERVAL_SECS", "1".to_owned()));
    app.server = Server::start(&["intake"], &env, None).await;
    let channel = app.server.channel().await;
    app.tickets = pb::ticket_service_client::TicketServiceClient::new(channel.clone());
    let mut files = AttachmentServiceClient::new(channel);
    let list = pb::ListAttachmentsRequest { ticket_id: ticket.id.clone(), event_id: String::new() };
    let listed = files.list_attachments(authed(&agent, list)).await.expect("list").into_inner();
    assert!(listed.attachments.is_empty(), "no attachment is visible");
    let history = app.history(&ticket.id).await;
    assert!(!history.iter().any(|e| e.r#type == pb::TicketEventType::AttachmentAdded as i32));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !store.stored_files().is_empty() {
        assert!(Instant::now() < deadline, "the sweep left {:?}", store.stored_files());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The intake still takes files, and the sweep leaves those alone.
    let request = authed(&agent, add(&ticket.id, "again.jpg", photos::jpeg_with_gps(640, 480, 1, 85)));
    files.add_attachment(request).await.expect("an upload after the restart");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(store.stored_files().len(), 2, "a saved file's bytes stay");
}

/// `propdesk dev` keeps files in a folder beside its database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_keeps_files_beside_its_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&["dev"], &[], Some(dir.path())).await;
    let token = crate::helpers::dev_admin_token(dir.path());
    let channel = server.channel().await;
    let mut directory = pb::directory_service_client::DirectoryServiceClient::new(channel.clone());
    let properties =
        directory.list_properties(authed(&token, pb::ListPropertiesRequest::default())).await.expect("list");
    let property_id = properties.into_inner().properties.first().expect("the demo property").id.clone();
    let mut tickets = pb::ticket_service_client::TicketServiceClient::new(channel.clone());
    let create = pb::CreateTicketRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        property_id,
        kind: pb::TicketKind::Repair as i32,
        channel: pb::Channel::Phone as i32,
        category: "plumbing".into(),
        title: "漏水".into(),
        description: "阳台漏水".into(),
        location: "公共走廊".into(),
        ..Default::default()
    };
    let ticket = tickets.create_ticket(authed(&token, create)).await.expect("create").into_inner();
    let mut files = AttachmentServiceClient::new(channel);
    let photo = photos::jpeg_with_gps(400, 300, 1, 85);
    files.add_attachment(authed(&token, add(&ticket.id, "leak.jpg", photo))).await.expect("upload");
    let stored = files_under(&dir.path().join("propdesk-dev-files"));
    assert_eq!(stored.len(), 2, "the photo and its thumbnail beside the database: {stored:?}");
}
