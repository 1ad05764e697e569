//! Sign-in through the company's identity provider: a real JWKS document served over HTTP
//! on the loopback address from RSA and EC keys this test makes (found through the issuer's
//! discovery document), tokens it signs, keys it rotates mid-test; role and property read
//! from the directory, so moving or deactivating someone takes effect without a new token.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use propdesk_proto::v1 as pb;
use propdesk_testkit::Backend;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::{App, Server, assert_reason, authed, free_port, new_request_id};

const AUDIENCE: &str = "propdesk-desk";

/// A signing key of the test's identity provider.
struct ProviderKey {
    kid: String,
    algorithm: Algorithm,
    signing: EncodingKey,
    public: Value,
}

impl ProviderKey {
    fn rsa(kid: &str) -> ProviderKey {
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("an RSA key");
        let der = private.to_pkcs1_der().expect("PKCS#1");
        let public = json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
        });
        ProviderKey {
            kid: kid.into(),
            algorithm: Algorithm::RS256,
            signing: EncodingKey::from_rsa_der(der.as_bytes()),
            public,
        }
    }

    fn ec(kid: &str) -> ProviderKey {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a P-256 key");
        // Uncompressed point: 0x04, x, y.
        let point = pair.public_key_raw();
        let public = json!({
            "kty": "EC", "crv": "P-256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        ProviderKey {
            kid: kid.into(),
            algorithm: Algorithm::ES256,
            signing: EncodingKey::from_ec_der(&pair.serialize_der()),
            public,
        }
    }

    /// A token for `subject` from `issuer`, with `changes` applied to the usual claims.
    fn sign(&self, issuer: &str, subject: &str, changes: Value) -> String {
        let now = chrono::Utc::now().timestamp();
        let mut claims = json!({
            "iss": issuer, "aud": [AUDIENCE, "other-app"], "sub": format!("idp-{subject}"),
            "email": subject, "iat": now, "nbf": now, "exp": now + 600,
        });
        for (name, value) in changes.as_object().expect("an object") {
            claims[name] = value.clone();
        }
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.signing).expect("sign")
    }
}

/// The identity provider's web side: discovery and the key set, read through HTTP.
struct Provider {
    issuer: String,
    published: Arc<Mutex<Vec<Value>>>,
    key_reads: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Provider {
    async fn start(keys: &[&ProviderKey]) -> Provider {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the provider");
        let issuer = format!("http://{}/realms/staff", listener.local_addr().expect("address"));
        let published = Arc::new(Mutex::new(keys.iter().map(|k| k.public.clone()).collect::<Vec<_>>()));
        let key_reads = Arc::new(Mutex::new(0));
        let (shared, reads, discovery_issuer) = (published.clone(), key_reads.clone(), issuer.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (shared, reads, issuer) = (shared.clone(), reads.clone(), discovery_issuer.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let request = String::from_utf8_lossy(&head).to_string();
                    let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let (status, body) = if path.ends_with("/.well-known/openid-configuration") {
                        ("200 OK", json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/certs") }))
                    } else if path.ends_with("/certs") {
                        *reads.lock().expect("lock") += 1;
                        ("200 OK", json!({ "keys": shared.lock().expect("lock").clone() }))
                    } else {
                        ("404 Not Found", json!({}))
                    };
                    let body = body.to_string();
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        Provider { issuer, published, key_reads, task }
    }

    fn publish(&self, keys: &[&ProviderKey]) {
        *self.published.lock().expect("lock") = keys.iter().map(|k| k.public.clone()).collect();
    }

    fn key_reads(&self) -> usize {
        *self.key_reads.lock().expect("lock")
    }
}

fn list_at(property_id: &str) -> pb::ListTicketsRequest {
    pb::ListTicketsRequest { property_id: property_id.to_owned(), page_size: 5, ..Default::default() }
}

/// Asks until `accepted` is false (or `within` passes); answers how long it took.
async fn until_refused(
    intake: &mut pb::ticket_service_client::TicketServiceClient<tonic::transport::Channel>,
    token: &str,
    property_id: &str,
    within: Duration,
) -> (Duration, tonic::Status) {
    let start = Instant::now();
    loop {
        match intake.list_tickets(authed(token, list_at(property_id))).await {
            Err(status) => return (start.elapsed(), status),
            Ok(_) if start.elapsed() > within => panic!("still accepted after {within:?}"),
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_provider_tokens_name_a_directory_staff_member_whose_changes_apply_at_once() {
    let (rsa_key, ec_key) = (ProviderKey::rsa("rsa-2026-11"), ProviderKey::ec("ec-2026-11"));
    let provider = Provider::start(&[&rsa_key, &ec_key]).await;
    let issuer = provider.issuer.clone();
    let settings = [
        ("PROPDESK__AUTH__OIDC__ISSUER", issuer.clone()),
        ("PROPDESK__AUTH__OIDC__AUDIENCE", AUDIENCE.to_owned()),
        ("PROPDESK__AUTH__OIDC__SUBJECT_CLAIM", "email".to_owned()),
        ("PROPDESK__AUTH__OIDC__MIN_REFRESH_INTERVAL_SECS", "1".to_owned()),
        ("PROPDESK__AUTH__OIDC__ROTATION_OVERLAP_SECS", "3".to_owned()),
        ("PROPDESK__AUTH__DIRECTORY_CACHE_SECS", "2".to_owned()),
    ];
    let mut app = App::start_with(Backend::Postgres, &settings).await;
    let (property, other_property) = (app.world.property_id.clone(), app.world.other_property_id.clone());
    let admin = app.world.admin.clone();
    let hire = pb::CreateStaffRequest {
        property_id: property.clone(),
        name: "Li Na".into(),
        role: pb::StaffRole::Agent as i32,
        on_duty: true,
        request_id: new_request_id(),
        external_id: "li.na@example.com".into(),
        ..Default::default()
    };
    let li = app.directory.create_staff(authed(&admin, hire.clone())).await.expect("hire Li").into_inner();
    assert_eq!((li.external_id.as_str(), li.active), ("li.na@example.com", true));
    let taken = pb::CreateStaffRequest { request_id: new_request_id(), name: "Another Li".into(), ..hire };
    assert_reason(
        app.directory.create_staff(authed(&admin, taken)).await,
        Code::InvalidArgument,
        pb::ErrorReason::ExternalIdTaken,
        "an identity is one person's",
    );

    // RS256 and ES256 tokens of the provider are accepted; role and property come from Li's
    // staff record (the token claims neither).
    let by_rsa = rsa_key.sign(&issuer, "li.na@example.com", json!({}));
    let by_ec = ec_key.sign(&issuer, "li.na@example.com", json!({}));
    for token in [&by_rsa, &by_ec] {
        let ticket = app.tickets.create_ticket(authed(token, app.new_ticket("plumbing", "厨房水管漏水"))).await;
        let ticket = ticket.expect("an agent signed in through the provider logs a ticket").into_inner();
        assert_eq!(ticket.first_contact_agent_id, li.id, "the ticket names Li's staff id, not the token's subject");
    }

    // Every bad token is refused UNAUTHENTICATED.
    let stranger = ProviderKey::rsa("rsa-2026-11");
    let now = chrono::Utc::now().timestamp();
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(
            json!({"iss": issuer, "aud": AUDIENCE, "email": "li.na@example.com", "exp": now + 600}).to_string()
        )
    );
    // HS256 keyed with the provider's public key, which anyone can read.
    let public_as_secret = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(rsa_key.kid.clone());
        let claims =
            json!({"iss": issuer, "aud": AUDIENCE, "sub": "x", "email": "li.na@example.com", "exp": now + 600});
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(rsa_key.public.to_string().as_bytes()))
            .expect("sign")
    };
    let bad = [
        ("alg none", unsigned, pb::ErrorReason::TokenInvalid),
        ("HS256 with the public key as secret", public_as_secret, pb::ErrorReason::TokenInvalid),
        (
            "a key the provider does not publish, under a published kid",
            stranger.sign(&issuer, "li.na@example.com", json!({})),
            pb::ErrorReason::TokenInvalid,
        ),
        (
            "wrong issuer",
            rsa_key.sign("https://elsewhere.example/realms/staff", "li.na@example.com", json!({})),
            pb::ErrorReason::TokenInvalid,
        ),
        (
            "wrong audience",
            rsa_key.sign(&issuer, "li.na@example.com", json!({"aud": "payroll"})),
            pb::ErrorReason::TokenInvalid,
        ),
        (
            "no audience",
            rsa_key.sign(&issuer, "li.na@example.com", json!({"aud": null})),
            pb::ErrorReason::TokenInvalid,
        ),
        (
            "expired",
            rsa_key.sign(
                &issuer,
                "li.na@example.com",
                json!({"exp": now - 3600, "iat": now - 7200, "nbf": now - 7200}),
            ),
            pb::ErrorReason::TokenExpired,
        ),
        (
            "not yet valid",
            ec_key.sign(&issuer, "li.na@example.com", json!({"nbf": now + 3600})),
            pb::ErrorReason::TokenInvalid,
        ),
        (
            "no subject claim",
            rsa_key.sign(&issuer, "li.na@example.com", json!({"email": null})),
            pb::ErrorReason::TokenInvalid,
        ),
    ];
    for (case, token, reason) in bad {
        let result = app.tickets.list_tickets(authed(&token, list_at(&property))).await;
        assert_reason(result, Code::Unauthenticated, reason, case);
    }
    // A valid token naming nobody in the directory.
    let nobody = rsa_key.sign(&issuer, "nobody@example.com", json!({}));
    assert_reason(
        app.tickets.list_tickets(authed(&nobody, list_at(&property))).await,
        Code::PermissionDenied,
        pb::ErrorReason::StaffNotFound,
        "an identity no staff member has",
    );

    // Made-up key ids cannot make the intake hammer the provider: one read per interval.
    let reads_before = provider.key_reads();
    for n in 0..20 {
        let mut forged = Header::new(Algorithm::RS256);
        forged.kid = Some(format!("made-up-{n}"));
        let claims = json!({"iss": issuer, "aud": AUDIENCE, "email": "li.na@example.com", "exp": now + 600});
        let token = jsonwebtoken::encode(&forged, &claims, &stranger.signing).expect("sign");
        let result = app.tickets.list_tickets(authed(&token, list_at(&property))).await;
        assert_reason(result, Code::Unauthenticated, pb::ErrorReason::TokenInvalid, "an unknown kid");
    }
    let reads = provider.key_reads() - reads_before;
    assert!(reads <= 2, "20 unknown kids within a second read the keys {reads} times");

    // Rotation: the provider adds a new key and signs with it; the intake reads the keys
    // again on the unknown kid and accepts it, and the old key keeps working meanwhile.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let rotated = ProviderKey::rsa("rsa-2026-12");
    provider.publish(&[&rsa_key, &rotated, &ec_key]);
    let by_rotated = rotated.sign(&issuer, "li.na@example.com", json!({}));
    app.tickets.list_tickets(authed(&by_rotated, list_at(&property))).await.expect("the new key verifies at once");
    app.tickets.list_tickets(authed(&by_rsa, list_at(&property))).await.expect("the old key still verifies");
    // Then the old key is withdrawn: the next read (a new EC key's first token) drops it,
    // and its tokens stay good through the overlap only.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let next_ec = ProviderKey::ec("ec-2026-12");
    provider.publish(&[&rotated, &next_ec]);
    let by_next_ec = next_ec.sign(&issuer, "li.na@example.com", json!({}));
    app.tickets.list_tickets(authed(&by_next_ec, list_at(&property))).await.expect("the next EC key verifies");
    let withdrawn_at = Instant::now();
    app.tickets.list_tickets(authed(&by_rsa, list_at(&property))).await.expect("a withdrawn key within the overlap");
    let (_, refused) = until_refused(&mut app.tickets, &by_rsa, &property, Duration::from_secs(10)).await;
    assert!(withdrawn_at.elapsed() >= Duration::from_secs(2), "the overlap was honoured");
    assert_reason(Err::<(), _>(refused), Code::Unauthenticated, pb::ErrorReason::TokenInvalid, "after the overlap");
    app.tickets.list_tickets(authed(&by_rotated, list_at(&property))).await.expect("the current key still verifies");

    // The directory decides, through another replica: Li moved to the other property is
    // refused at the first within 5 s, on the same token, and served at the second.
    let replica = Server::start(&["intake"], &app.env, None).await;
    let mut directory = pb::directory_service_client::DirectoryServiceClient::new(replica.channel().await);
    let mut replica_tickets = pb::ticket_service_client::TicketServiceClient::new(replica.channel().await);
    replica_tickets.list_tickets(authed(&by_rotated, list_at(&property))).await.expect("the replica serves Li");
    let root = crate::helpers::token("root", propdesk_domain::Role::Admin, &[]);
    let moved = pb::UpdateStaffRequest {
        staff_id: li.id.clone(),
        property_id: Some(other_property.clone()),
        ..Default::default()
    };
    directory.update_staff(authed(&root, moved)).await.expect("move Li");
    let (took, refused) = until_refused(&mut app.tickets, &by_rotated, &property, Duration::from_secs(5)).await;
    assert_reason(Err::<(), _>(refused), Code::PermissionDenied, pb::ErrorReason::PropertyNotServed, "after the move");
    println!("a move reached the other replica in {took:?}");
    app.tickets.list_tickets(authed(&by_rotated, list_at(&other_property))).await.expect("Li serves the new property");
    // The replica that made the change knows at once.
    assert_reason(
        replica_tickets.list_tickets(authed(&by_rotated, list_at(&property))).await,
        Code::PermissionDenied,
        pb::ErrorReason::PropertyNotServed,
        "the replica that moved Li",
    );

    // Deactivated: refused everywhere within 5 s, taken off duty, not listed, cannot go on duty.
    let leave = pb::UpdateStaffRequest { staff_id: li.id.clone(), active: Some(false), ..Default::default() };
    let left = directory.update_staff(authed(&root, leave)).await.expect("deactivate Li").into_inner();
    assert!(!left.active && !left.on_duty, "deactivated and off duty: {left:?}");
    let (took, refused) = until_refused(&mut app.tickets, &by_rotated, &other_property, Duration::from_secs(5)).await;
    assert_reason(Err::<(), _>(refused), Code::PermissionDenied, pb::ErrorReason::StaffInactive, "deactivated");
    println!("a deactivation reached the other replica in {took:?}");
    for property_id in [&property, &other_property] {
        assert_reason(
            app.tickets.list_tickets(authed(&by_next_ec, list_at(property_id))).await,
            Code::PermissionDenied,
            pb::ErrorReason::StaffInactive,
            "deactivated, any key, any property",
        );
    }
    let on_duty = pb::SetOnDutyRequest { staff_id: li.id.clone(), on_duty: true };
    assert_reason(
        directory.set_on_duty(authed(&root, on_duty)).await,
        Code::FailedPrecondition,
        pb::ErrorReason::StaffInactive,
        "a deactivated person going on duty",
    );
    let listed = |include_inactive| pb::ListStaffRequest {
        property_id: other_property.clone(),
        include_inactive,
        page_size: 200,
        ..Default::default()
    };
    let active_only = directory.list_staff(authed(&root, listed(false))).await.expect("list").into_inner().staff;
    assert!(active_only.iter().all(|s| s.id != li.id), "the deactivated are left out of the list");
    let everyone = directory.list_staff(authed(&root, listed(true))).await.expect("list").into_inner().staff;
    assert!(everyone.iter().any(|s| s.id == li.id && !s.active), "and listed when asked for");
    drop(replica);

    // Production switches shared-secret tokens off: the admin's HS256 token is refused,
    // the provider's tokens still work.
    let mut env = app.env.clone();
    env.push(("PROPDESK__AUTH__SHARED_SECRET_TOKENS", "false".to_owned()));
    let strict = Server::start(&["intake"], &env, None).await;
    let mut strict_tickets = pb::ticket_service_client::TicketServiceClient::new(strict.channel().await);
    assert_reason(
        strict_tickets.list_tickets(authed(&admin, list_at(&property))).await,
        Code::Unauthenticated,
        pb::ErrorReason::TokenInvalid,
        "an HS256 token where they are switched off",
    );
    let chen = pb::CreateStaffRequest {
        property_id: property.clone(),
        name: "Chen".into(),
        role: pb::StaffRole::Dispatcher as i32,
        department: pb::Department::Engineering as i32,
        request_id: new_request_id(),
        external_id: "chen@example.com".into(),
        ..Default::default()
    };
    app.directory.create_staff(authed(&admin, chen)).await.expect("hire Chen");
    let by_chen = rotated.sign(&issuer, "chen@example.com", json!({}));
    strict_tickets.list_tickets(authed(&by_chen, list_at(&property))).await.expect("the provider's token works");

    // A provider that cannot be reached: the token cannot be checked, so UNAVAILABLE (the
    // client retries) rather than UNAUTHENTICATED (which would send the user to sign in).
    let mut env = app.env.clone();
    env.retain(|(key, _)| *key != "PROPDESK__AUTH__OIDC__ISSUER");
    env.push(("PROPDESK__AUTH__OIDC__ISSUER", format!("http://127.0.0.1:{}/realms/staff", free_port())));
    let cut_off = Server::start(&["intake"], &env, None).await;
    let mut cut_off_tickets = pb::ticket_service_client::TicketServiceClient::new(cut_off.channel().await);
    assert_reason(
        cut_off_tickets.list_tickets(authed(&by_chen, list_at(&property))).await,
        Code::Unavailable,
        pb::ErrorReason::IdentityProviderUnavailable,
        "the provider down",
    );
}
