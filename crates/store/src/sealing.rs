//! Residents' personal data at rest: names, phone numbers and dispute parties' contacts are
//! stored sealed (AES-256-GCM, a fresh 96-bit nonce per value) under a data key named by
//! its id, so keys can rotate: `propdesk rekey` re-seals every value under the active key
//! while the service runs, after which an old key can be removed. Phone look-ups go through
//! a keyed blind index (HMAC-SHA256 of the normalised number, with a key of its own), so no
//! column, index or payload holds a phone number in clear. A leaked backup without the keys
//! shows neither names nor numbers.
//!
//! A sealed value reads `pd1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`; the field's
//! name is authenticated with it, so a value copied into another column does not open.
//! An empty value stays empty (there is nothing to hide). A value without the prefix was
//! written before sealing existed: it reads as it is, and `propdesk rekey` seals it.
//!
//! Every process installs its key ring once at start ([`install`]); the ticket and
//! resident repositories seal and open through it.

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

const PREFIX: &str = "pd1.";
const KEY_BYTES: usize = 32;
/// Hex characters of the blind index kept (128 bits: collisions are out of reach, and the
/// column of the former plain key fits it).
const INDEX_CHARS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key id {0:?} must be 1 to 16 of a-z, 0-9 and '-'")]
    BadId(String),
    #[error("key {0:?} must be {KEY_BYTES} bytes, base64-encoded")]
    BadKey(String),
    #[error("the active key {0:?} is not among the keys")]
    NoActiveKey(String),
    #[error("key id {0:?} appears twice")]
    Duplicate(String),
    #[error("no data key: give at least one as `id:base64`")]
    Empty,
    #[error("keys are already installed in this process")]
    AlreadyInstalled,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("no key ring is installed in this process")]
    NotInstalled,
    #[error("a {field} value is sealed under key {key_id:?}, which is not configured")]
    UnknownKey { field: &'static str, key_id: String },
    #[error("a {field} value does not open (damaged, or sealed for another field)")]
    Damaged { field: &'static str },
    #[error("the system's random source failed")]
    Random,
}

/// The data keys (one active, the rest still opening older values) and the index key.
pub struct KeyRing {
    active_id: String,
    keys: HashMap<String, LessSafeKey>,
    index: hmac::Key,
    random: SystemRandom,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("KeyRing").field("active", &self.active_id).field("keys", &ids).finish_non_exhaustive()
    }
}

fn decode_key(label: &str, encoded: &str) -> Result<Vec<u8>, KeyError> {
    match STANDARD.decode(encoded.trim()) {
        Ok(bytes) if bytes.len() == KEY_BYTES => Ok(bytes),
        _ => Err(KeyError::BadKey(label.to_owned())),
    }
}

fn valid_id(id: &str) -> bool {
    (1..=16).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl KeyRing {
    /// `data_keys` as `id:base64` (32 bytes each), `active` naming the one new values are
    /// sealed with, and the blind index's key (base64, 32 bytes).
    pub fn parse(data_keys: &[String], active: &str, index_key: &str) -> Result<KeyRing, KeyError> {
        let mut keys = HashMap::new();
        for entry in data_keys {
            let (id, encoded) =
                entry.split_once(':').ok_or_else(|| KeyError::BadKey(entry.chars().take(16).collect()))?;
            if !valid_id(id) {
                return Err(KeyError::BadId(id.to_owned()));
            }
            let bytes = decode_key(id, encoded)?;
            let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| KeyError::BadKey(id.to_owned()))?;
            if keys.insert(id.to_owned(), LessSafeKey::new(key)).is_some() {
                return Err(KeyError::Duplicate(id.to_owned()));
            }
        }
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        if !keys.contains_key(active) {
            return Err(KeyError::NoActiveKey(active.to_owned()));
        }
        let index = hmac::Key::new(hmac::HMAC_SHA256, &decode_key("index", index_key)?);
        Ok(KeyRing { active_id: active.to_owned(), keys, index, random: SystemRandom::new() })
    }

    /// A new random key, base64, for configuration.
    pub fn generate_key() -> Result<String, SealError> {
        let mut bytes = [0u8; KEY_BYTES];
        SystemRandom::new().fill(&mut bytes).map_err(|_| SealError::Random)?;
        Ok(STANDARD.encode(bytes))
    }

    pub fn active_id(&self) -> &str {
        &self.active_id
    }

    /// `plain` sealed under the active key for `field`; empty stays empty.
    pub fn seal(&self, field: &'static str, plain: &str) -> Result<String, SealError> {
        if plain.is_empty() {
            return Ok(String::new());
        }
        let key = self.keys.get(&self.active_id).ok_or(SealError::NotInstalled)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut sealed = plain.as_bytes().to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(field.as_bytes()), &mut sealed)
            .map_err(|_| SealError::Damaged { field })?;
        let mut payload = Vec::with_capacity(NONCE_LEN + sealed.len());
        payload.extend_from_slice(&nonce);
        payload.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}.{}", self.active_id, URL_SAFE_NO_PAD.encode(payload)))
    }

    /// The plain text of a stored `field` value (values from before sealing read as they are).
    pub fn open(&self, field: &'static str, stored: &str) -> Result<String, SealError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else { return Ok(stored.to_owned()) };
        let (key_id, encoded) = rest.split_once('.').ok_or(SealError::Damaged { field })?;
        let key = self.keys.get(key_id).ok_or_else(|| SealError::UnknownKey { field, key_id: key_id.to_owned() })?;
        let payload = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| SealError::Damaged { field })?;
        if payload.len() < NONCE_LEN {
            return Err(SealError::Damaged { field });
        }
        let (nonce, sealed) = payload.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Damaged { field })?;
        let mut sealed = sealed.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(field.as_bytes()), &mut sealed)
            .map_err(|_| SealError::Damaged { field })?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::Damaged { field })
    }

    /// Whether `stored` needs no re-sealing: empty, or sealed under the active key.
    pub fn is_current(&self, stored: &str) -> bool {
        stored.is_empty()
            || stored
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split_once('.'))
                .is_some_and(|(id, _)| id == self.active_id)
    }

    /// The blind index of a phone number however it is written (`+86 138-…` and
    /// `138…` alike): what look-ups by phone match; `None` when it has no digits.
    pub fn phone_index(&self, phone: &str) -> Option<String> {
        Some(self.index_of_key(&propdesk_domain::search::phone_key(phone)?))
    }

    /// The blind index of an already normalised phone key (`search::phone_key`).
    pub fn index_of_key(&self, key: &str) -> String {
        let tag = hmac::sign(&self.index, key.as_bytes());
        let mut hex = String::with_capacity(INDEX_CHARS);
        for byte in tag.as_ref().iter().take(INDEX_CHARS / 2) {
            hex.push_str(&format!("{byte:02x}"));
        }
        hex
    }
}

static RING: OnceLock<KeyRing> = OnceLock::new();

/// Installs this process's key ring; once.
pub fn install(ring: KeyRing) -> Result<(), KeyError> {
    RING.set(ring).map_err(|_| KeyError::AlreadyInstalled)
}

/// This process's key ring.
pub fn ring() -> Result<&'static KeyRing, SealError> {
    RING.get().ok_or(SealError::NotInstalled)
}

/// What a look-up by the phone key `key` matches: its blind index (without a key ring,
/// nothing: no stored value is a bare `-`).
pub fn index_of_phone_key(key: &str) -> String {
    ring().map_or_else(|_| "-".to_owned(), |keys| keys.index_of_key(key))
}

/// Installs `make()` unless a ring is installed already (tests share one process).
pub fn install_once(make: impl FnOnce() -> KeyRing) -> &'static KeyRing {
    RING.get_or_init(make)
}

/// Fixed keys for tests and benchmarks: every test process and every `propdesk` process a
/// test starts share them (through [`test_keys::ENV`]). Never for real data.
#[cfg(feature = "test-support")]
pub mod test_keys {
    pub const DATA_KEYS: &str = "test1:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    pub const ACTIVE_KEY: &str = "test1";
    pub const INDEX_KEY: &str = "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=";
    /// The settings that give a process these keys.
    pub const ENV: [(&str, &str); 3] = [
        ("PROPDESK__PRIVACY__DATA_KEYS", DATA_KEYS),
        ("PROPDESK__PRIVACY__ACTIVE_KEY", ACTIVE_KEY),
        ("PROPDESK__PRIVACY__INDEX_KEY", INDEX_KEY),
    ];

    /// Installs them in this process (once; later calls find them there).
    pub fn install() -> &'static super::KeyRing {
        super::install_once(|| {
            super::KeyRing::parse(&[DATA_KEYS.to_owned()], ACTIVE_KEY, INDEX_KEY).expect("the test keys parse")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; KEY_BYTES])
    }

    fn ring(active: &str) -> KeyRing {
        KeyRing::parse(&[format!("old:{}", key(1)), format!("new:{}", key(2))], active, &key(3)).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_under_its_key_only_for_its_field() {
        let old = ring("old");
        let sealed = old.seal("reporter_phone", "13812345678").unwrap();
        assert!(sealed.starts_with("pd1.old.") && !sealed.contains("13812345678"));
        assert_ne!(sealed, old.seal("reporter_phone", "13812345678").unwrap(), "a fresh nonce each time");
        assert_eq!(old.open("reporter_phone", &sealed).unwrap(), "13812345678");
        // Rotated: the new ring still opens the old key's values, and seals with the new.
        let new = ring("new");
        assert_eq!(new.open("reporter_phone", &sealed).unwrap(), "13812345678");
        assert!(!new.is_current(&sealed) && new.is_current(&new.seal("reporter_phone", "x").unwrap()));
        assert_eq!(new.open("reporter_name", &sealed), Err(SealError::Damaged { field: "reporter_name" }));
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(new.open("reporter_phone", &tampered).is_err());
    }

    #[test]
    fn a_value_under_a_removed_key_names_the_key() {
        let sealed = ring("old").seal("name", "李四").unwrap();
        let without_old = KeyRing::parse(&[format!("new:{}", key(2))], "new", &key(3)).unwrap();
        assert_eq!(
            without_old.open("name", &sealed),
            Err(SealError::UnknownKey { field: "name", key_id: "old".into() })
        );
    }

    #[test]
    fn empty_and_legacy_values_read_as_they_are() {
        let ring = ring("new");
        assert_eq!(ring.seal("name", "").unwrap(), "");
        assert_eq!(ring.open("name", "王五").unwrap(), "王五");
        assert!(ring.is_current("") && !ring.is_current("王五"));
    }

    #[test]
    fn the_blind_index_is_keyed_and_ignores_how_the_number_is_written() {
        let ring = ring("new");
        let index = ring.phone_index("+86 138-1234-5678").unwrap();
        assert_eq!(Some(index.clone()), ring.phone_index("13812345678"));
        assert_eq!(index.len(), INDEX_CHARS);
        assert!(!index.contains("13812345678"));
        let other = KeyRing::parse(&[format!("new:{}", key(2))], "new", &key(9)).unwrap();
        assert_ne!(other.phone_index("13812345678"), Some(index), "another index key, another index");
        assert_eq!(ring.phone_index("+ -"), None);
    }

    #[test]
    fn bad_key_configuration_is_refused() {
        assert_eq!(KeyRing::parse(&[], "a", &key(3)).unwrap_err(), KeyError::Empty);
        assert_eq!(
            KeyRing::parse(&[format!("a:{}", key(1))], "b", &key(3)).unwrap_err(),
            KeyError::NoActiveKey("b".into())
        );
        assert_eq!(KeyRing::parse(&["a:c2hvcnQ=".into()], "a", &key(3)).unwrap_err(), KeyError::BadKey("a".into()));
        assert_eq!(
            KeyRing::parse(&[format!("A!:{}", key(1))], "A!", &key(3)).unwrap_err(),
            KeyError::BadId("A!".into())
        );
        let twice = [format!("a:{}", key(1)), format!("a:{}", key(2))];
        assert_eq!(KeyRing::parse(&twice, "a", &key(3)).unwrap_err(), KeyError::Duplicate("a".into()));
        assert_eq!(
            KeyRing::parse(&[format!("a:{}", key(1))], "a", "xx").unwrap_err(),
            KeyError::BadKey("index".into())
        );
    }
}
