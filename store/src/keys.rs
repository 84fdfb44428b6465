//! Virtual keys: the record the control plane keeps for each client key,
//! how secrets are made and checked, and the calendar of budget periods.
//!
//! A secret is shown once, when it is created, and never stored: a record
//! keeps only its SHA-256 ([`digest`]). The gateway hashes the presented key
//! and looks the digest up in its shard's key table, so the lookup itself
//! needs no constant-time comparison (a hash map keyed by digests leaks
//! nothing useful: the attacker does not choose the digest's bytes). Where
//! two digests are compared directly, [`digest_eq`] does it without an early
//! exit.
//!
//! Records are serialized as compact JSON (sonic-rs), with the digest as hex
//! and a format version, so a record written by this version can be read by
//! the next one; unknown fields are ignored for the same reason.
//!
//! Budget periods are calendar periods in UTC: a daily budget resets at
//! midnight UTC, a monthly one on the first of the month at midnight UTC.
//! The date arithmetic is Howard Hinnant's `days_from_civil` and
//! `civil_from_days` (proleptic Gregorian calendar, exact for every date a
//! `u64` of seconds since 1970 can name within `i64` days), written out
//! here rather than pulling in a date crate for two functions.

use std::collections::BTreeMap;
use std::fmt;

use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The prefix of every secret corelay generates, so a leaked one is easy to
/// recognise (secret scanners match on it) and to tell from provider keys.
pub const SECRET_PREFIX: &str = "sk-corelay-";
/// Random base62 characters after [`SECRET_PREFIX`]: about 238 bits.
pub const SECRET_RANDOM_CHARS: usize = 40;
/// The prefix of generated key ids.
pub const KEY_ID_PREFIX: &str = "key_";
/// Random base62 characters after [`KEY_ID_PREFIX`]: about 95 bits, enough
/// that two generated ids never collide in practice.
pub const KEY_ID_RANDOM_CHARS: usize = 16;
/// The longest key id accepted (a key id appears in Redis key names and in
/// every usage row).
pub const KEY_ID_BYTES_MAX: usize = 64;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SECONDS_PER_DAY: u64 = 86_400;

/// `count` random base62 characters from the operating system's generator.
/// Bytes of 248 and above are dropped rather than reduced modulo 62, so
/// every character is equally likely (248 = 4 × 62).
fn random_base62(count: usize) -> Result<String, StoreError> {
    let rng = ring::rand::SystemRandom::new();
    let mut out = String::with_capacity(count);
    let mut buf = [0u8; 64];
    while out.len() < count {
        rng.fill(&mut buf).map_err(|_| StoreError::Random)?;
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == count {
                break;
            }
            out.push(BASE62[usize::from(b % 62)] as char);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Secrets.

/// A plaintext secret (a key, a token, a credential from the config). Its
/// `Debug` never shows it, so a logged value leaks nothing; [`Secret::expose`]
/// (or `Deref` to `str`) reads it.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl std::ops::Deref for Secret {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 that is stored in place of the secret.
    pub fn digest(&self) -> [u8; 32] {
        digest(self.0.as_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A new secret: `sk-corelay-` and 40 random base62 characters.
pub fn generate_secret() -> Result<Secret, StoreError> {
    Ok(Secret(format!("{SECRET_PREFIX}{}", random_base62(SECRET_RANDOM_CHARS)?)))
}

/// SHA-256 of a secret, as stored and looked up.
pub fn digest(secret: impl AsRef<[u8]>) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, secret.as_ref());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Compares two digests in time that does not depend on where they differ:
/// every byte pair is XORed and the results ORed together, with no early
/// exit, and `black_box` keeps the compiler from turning the fold back into
/// a short-circuiting comparison. (`ring::constant_time` did this, and is
/// deprecated in newer ring.)
pub fn digest_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

// ---------------------------------------------------------------------------
// Key ids.

/// A key's stable identifier: `key_` and 16 base62 characters when
/// generated; any 1 to 64 characters of `[A-Za-z0-9_-]` when given (config
/// keys may use their name). The charset keeps ids safe inside Redis key
/// names and log lines.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

impl KeyId {
    pub fn generate() -> Result<KeyId, StoreError> {
        Ok(KeyId(format!("{KEY_ID_PREFIX}{}", random_base62(KEY_ID_RANDOM_CHARS)?)))
    }

    pub fn parse(id: impl Into<String>) -> Result<KeyId, StoreError> {
        let id = id.into();
        let valid = !id.is_empty()
            && id.len() <= KEY_ID_BYTES_MAX
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid { Ok(KeyId(id)) } else { Err(StoreError::InvalidKeyId(id)) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for KeyId {
    type Error = StoreError;

    fn try_from(id: String) -> Result<KeyId, StoreError> {
        KeyId::parse(id)
    }
}

impl From<KeyId> for String {
    fn from(id: KeyId) -> String {
        id.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------
// Model allowlists.

/// The models a key may use: `*` (all), exact names, and `prefix*` globs. A
/// `*` anywhere but at the end is part of an exact name. Serialized as the
/// list of patterns it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct ModelAllowlist {
    all: bool,
    exact: Vec<String>,
    prefixes: Vec<String>,
}

impl ModelAllowlist {
    /// Every model.
    pub fn all() -> ModelAllowlist {
        ModelAllowlist { all: true, exact: Vec::new(), prefixes: Vec::new() }
    }

    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> ModelAllowlist {
        let mut list = ModelAllowlist { all: false, exact: Vec::new(), prefixes: Vec::new() };
        for p in patterns.iter().map(AsRef::as_ref) {
            match p.strip_suffix('*') {
                Some("") => list.all = true,
                Some(prefix) => list.prefixes.push(prefix.to_owned()),
                None => list.exact.push(p.to_owned()),
            }
        }
        list
    }

    pub fn allows(&self, model: &str) -> bool {
        self.all || self.exact.iter().any(|m| m == model) || self.prefixes.iter().any(|p| model.starts_with(p.as_str()))
    }

    pub fn allows_all(&self) -> bool {
        self.all
    }

    /// The patterns, in a canonical order: `*` first, then exact names,
    /// then globs. `parse(&list.patterns())` gives the same list back.
    pub fn patterns(&self) -> Vec<String> {
        let all = self.all.then(|| "*".to_owned());
        let globs = self.prefixes.iter().map(|p| format!("{p}*"));
        all.into_iter().chain(self.exact.iter().cloned()).chain(globs).collect()
    }
}

impl From<Vec<String>> for ModelAllowlist {
    fn from(patterns: Vec<String>) -> ModelAllowlist {
        ModelAllowlist::parse(&patterns)
    }
}

impl From<ModelAllowlist> for Vec<String> {
    fn from(list: ModelAllowlist) -> Vec<String> {
        list.patterns()
    }
}

// ---------------------------------------------------------------------------
// Budgets and their calendar.

/// How often a budget starts over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    /// Never: the budget is for the key's whole life.
    Total,
    /// Every day at 00:00 UTC.
    Daily,
    /// On the first of every month at 00:00 UTC.
    Monthly,
}

impl BudgetPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Total => "total",
            BudgetPeriod::Daily => "daily",
            BudgetPeriod::Monthly => "monthly",
        }
    }

    pub fn parse(s: &str) -> Option<BudgetPeriod> {
        match s {
            "total" => Some(BudgetPeriod::Total),
            "daily" => Some(BudgetPeriod::Daily),
            "monthly" => Some(BudgetPeriod::Monthly),
            _ => None,
        }
    }

    /// The period that contains `at_unix`.
    pub fn window(self, at_unix: u64) -> BudgetWindow {
        let day = at_unix / SECONDS_PER_DAY;
        let (start_unix, end_unix) = match self {
            BudgetPeriod::Total => (0, None),
            BudgetPeriod::Daily => (day * SECONDS_PER_DAY, Some((day + 1) * SECONDS_PER_DAY)),
            BudgetPeriod::Monthly => {
                let (y, m, _) = civil_from_days(day as i64);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (unix_of_date(y, m, 1), Some(unix_of_date(ny, nm, 1)))
            }
        };
        BudgetWindow { period: self, start_unix, end_unix }
    }
}

/// One occurrence of a budget period: spend is counted from `start_unix`
/// (inclusive) to `end_unix` (exclusive; `None` for a total budget).
/// Daily and monthly windows start on an hour, so they align with the
/// ledger's hourly rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BudgetWindow {
    pub period: BudgetPeriod,
    pub start_unix: u64,
    pub end_unix: Option<u64>,
}

impl BudgetWindow {
    pub fn contains(&self, at_unix: u64) -> bool {
        at_unix >= self.start_unix && self.end_unix.is_none_or(|end| at_unix < end)
    }
}

/// A key's spending limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// The limit in millionths of a US dollar.
    pub usd_micros: u64,
    pub period: BudgetPeriod,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's
/// `days_from_civil`). Shifting the year to start in March puts the leap
/// day last, so a year's day count is a closed formula; eras of 400 years
/// repeat exactly.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    debug_assert!((1..=12).contains(&month) && (1..=31).contains(&day));
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let mp = (i64::from(month) + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (Hinnant's `civil_from_days`):
/// `(year, month 1..=12, day 1..=31)`.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Unix seconds of a date at 00:00 UTC. Dates before 1970 clamp to 0.
fn unix_of_date(year: i64, month: u32, day: u32) -> u64 {
    u64::try_from(days_from_civil(year, month, day)).unwrap_or(0) * SECONDS_PER_DAY
}

// ---------------------------------------------------------------------------
// The record.

/// The format version written into every serialized record.
const RECORD_VERSION: u32 = 1;

/// A virtual key: who it is, what it may do, and its limits. Only the
/// secret's digest is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: KeyId,
    pub name: String,
    #[serde(with = "hex32")]
    pub secret_sha256: [u8; 32],
    pub models: ModelAllowlist,
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    /// Tokens (prompt and completion) per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// Unix seconds after which the key is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Unix seconds.
    pub created_at: u64,
    #[serde(default)]
    pub revoked: bool,
}

/// Why a key is refused, if it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    Active,
    Revoked,
    Expired,
}

impl KeyRecord {
    /// A record with every model allowed and no limits.
    pub fn new(id: KeyId, name: impl Into<String>, secret_sha256: [u8; 32], created_at: u64) -> KeyRecord {
        KeyRecord {
            id,
            name: name.into(),
            secret_sha256,
            models: ModelAllowlist::all(),
            rpm: None,
            tpm: None,
            budget: None,
            expires_at: None,
            metadata: BTreeMap::new(),
            created_at,
            revoked: false,
        }
    }

    /// A new key with a generated id and secret. The secret is returned to
    /// be shown once; the record keeps only its digest.
    pub fn create(name: impl Into<String>, created_at: u64) -> Result<(KeyRecord, Secret), StoreError> {
        let secret = generate_secret()?;
        let record = KeyRecord::new(KeyId::generate()?, name, secret.digest(), created_at);
        Ok((record, secret))
    }

    /// Whether `secret` is this key's, compared in constant time.
    pub fn matches_secret(&self, secret: &str) -> bool {
        digest_eq(&digest(secret), &self.secret_sha256)
    }

    pub fn state(&self, now_unix: u64) -> KeyState {
        if self.revoked {
            KeyState::Revoked
        } else if self.expires_at.is_some_and(|at| now_unix >= at) {
            KeyState::Expired
        } else {
            KeyState::Active
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain owned data with string map keys cannot fail.
        sonic_rs::to_vec(&Versioned { v: RECORD_VERSION, record: self }).expect("a key record serializes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<KeyRecord, StoreError> {
        #[derive(Deserialize)]
        struct Owned {
            v: u32,
            #[serde(flatten)]
            record: KeyRecord,
        }
        let owned: Owned = sonic_rs::from_slice(bytes).map_err(|e| StoreError::corrupt("key record", e))?;
        if owned.v != RECORD_VERSION {
            return Err(StoreError::corrupt("key record", format!("unknown format version {}", owned.v)));
        }
        Ok(owned.record)
    }
}

#[derive(Serialize)]
struct Versioned<'a> {
    v: u32,
    #[serde(flatten)]
    record: &'a KeyRecord,
}

/// Lower-case hex of a byte string.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    bytes.iter().flat_map(|b| [HEX[usize::from(b >> 4)] as char, HEX[usize::from(b & 15)] as char]).collect()
}

/// A 32-byte digest from 64 hex digits (either case).
pub fn digest_from_hex(hex: &str) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *o = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// A digest as 64 hex digits in JSON, rather than an array of 32 numbers.
mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::to_hex(d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        super::digest_from_hex(&text).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_prefix_and_40_base62_characters_and_differ() {
        let a = generate_secret().unwrap();
        let b = generate_secret().unwrap();
        assert_ne!(a, b);
        let random = a.expose().strip_prefix(SECRET_PREFIX).unwrap();
        assert_eq!(random.len(), SECRET_RANDOM_CHARS);
        assert!(random.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(format!("{a:?}"), "[redacted]");
    }

    #[test]
    fn generated_key_ids_are_valid_and_differ() {
        let a = KeyId::generate().unwrap();
        let b = KeyId::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), KEY_ID_PREFIX.len() + KEY_ID_RANDOM_CHARS);
        assert!(a.as_str().starts_with(KEY_ID_PREFIX));
        assert_eq!(KeyId::parse(a.as_str()).unwrap(), a);
    }

    #[test]
    fn key_id_charset_and_length() {
        assert!(KeyId::parse("backend-team_1").is_ok());
        assert!(KeyId::parse("a".repeat(64)).is_ok());
        for bad in ["", "a:b", "a b", "ключ", "a/b"] {
            assert!(KeyId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(KeyId::parse("a".repeat(65)).is_err());
    }

    #[test]
    fn base62_characters_are_all_used() {
        // 62 characters over 4,000 draws: each is expected about 65 times,
        // so a missing one means a broken mapping, not bad luck.
        let s = random_base62(4_000).unwrap();
        for c in BASE62 {
            assert!(s.as_bytes().contains(c), "{}", *c as char);
        }
    }

    #[test]
    fn digest_is_sha256() {
        // FIPS 180-2 test vector.
        assert_eq!(to_hex(&digest("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn digest_eq_compares_every_byte() {
        let a = digest("one");
        assert!(digest_eq(&a, &a));
        for i in [0, 17, 31] {
            let mut b = a;
            b[i] ^= 0x80;
            assert!(!digest_eq(&a, &b));
        }
    }

    #[test]
    fn hex_round_trips() {
        let d = digest("x");
        assert_eq!(digest_from_hex(&to_hex(&d)), Some(d));
        assert_eq!(digest_from_hex(&to_hex(&d).to_uppercase()), Some(d));
        assert_eq!(digest_from_hex("00"), None);
        assert_eq!(digest_from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn allowlist_exact_globs_and_all() {
        let list = ModelAllowlist::parse(&["gpt-4o", "claude-*", "a*b"]);
        assert!(list.allows("gpt-4o"));
        assert!(!list.allows("gpt-4o-mini"));
        assert!(list.allows("claude-sonnet-4"));
        assert!(list.allows("claude-"));
        assert!(!list.allows("claud"));
        assert!(list.allows("a*b"), "an inner star is literal");
        assert!(!list.allows("axb"));
        assert!(!list.allows_all());
        assert!(ModelAllowlist::parse(&["*"]).allows("anything"));
        assert!(ModelAllowlist::all().allows(""));
        assert!(!ModelAllowlist::parse::<&str>(&[]).allows("gpt-4o"), "an empty list allows nothing");
        assert_eq!(list.patterns(), ["gpt-4o", "a*b", "claude-*"]);
        assert_eq!(ModelAllowlist::parse(&list.patterns()), list);
    }

    fn full_record() -> KeyRecord {
        let mut r =
            KeyRecord::new(KeyId::parse("key_abc").unwrap(), "team \"a\"", digest("s3cret-s3cret"), 1_700_000_000);
        r.models = ModelAllowlist::parse(&["gpt-4o", "claude-*"]);
        r.rpm = Some(60);
        r.tpm = Some(100_000);
        r.budget = Some(Budget { usd_micros: 25_000_000, period: BudgetPeriod::Monthly });
        r.expires_at = Some(1_800_000_000);
        r.metadata.insert("team".into(), "search".into());
        r.metadata.insert("ünïcode".into(), "✓".into());
        r
    }

    #[test]
    fn record_round_trips_through_bytes() {
        for r in [full_record(), KeyRecord::new(KeyId::parse("k").unwrap(), "", [0; 32], 0)] {
            let bytes = r.to_bytes();
            assert_eq!(KeyRecord::from_bytes(&bytes).unwrap(), r);
        }
        let text = String::from_utf8(full_record().to_bytes()).unwrap();
        assert!(text.starts_with(r#"{"v":1,"id":"key_abc""#), "{text}");
        assert!(text.contains(&to_hex(&digest("s3cret-s3cret"))), "digest as hex: {text}");
    }

    #[test]
    fn record_decoding_rejects_garbage_and_other_versions_and_ignores_new_fields() {
        assert!(KeyRecord::from_bytes(b"not json").is_err());
        let text = String::from_utf8(full_record().to_bytes()).unwrap();
        assert!(KeyRecord::from_bytes(text.replace(r#""v":1"#, r#""v":2"#).as_bytes()).is_err());
        let bad_id = text.replace("key_abc", "key abc");
        assert!(KeyRecord::from_bytes(bad_id.as_bytes()).is_err());
        let newer = text.replacen('{', r#"{"added_later":[1,2],"#, 1);
        assert_eq!(KeyRecord::from_bytes(newer.as_bytes()).unwrap(), full_record());
    }

    #[test]
    fn state_follows_revocation_and_expiry() {
        let mut r = full_record();
        assert_eq!(r.state(1_799_999_999), KeyState::Active);
        assert_eq!(r.state(1_800_000_000), KeyState::Expired);
        r.revoked = true;
        assert_eq!(r.state(0), KeyState::Revoked);
    }

    #[test]
    fn created_keys_match_their_secret_only() {
        let (record, secret) = KeyRecord::create("ci", 5).unwrap();
        assert!(record.matches_secret(secret.expose()));
        assert!(!record.matches_secret("sk-corelay-wrong"));
        assert_eq!(record.created_at, 5);
        assert!(record.models.allows_all());
    }

    #[test]
    fn civil_dates_against_known_days() {
        // (date, days since 1970-01-01), as Python's `datetime.date` counts them.
        let known = [
            ((1970, 1, 1), 0),
            ((1969, 12, 31), -1),
            ((2000, 2, 29), 11_016),
            ((2000, 3, 1), 11_017),
            ((1900, 3, 1), -25_508),
            ((2024, 2, 29), 19_782),
            ((2024, 12, 31), 20_088),
            ((2025, 1, 1), 20_089),
            ((2038, 1, 19), 24_855),
            ((2100, 3, 1), 47_541),
        ];
        for ((y, m, d), days) in known {
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
            assert_eq!(civil_from_days(days), (y, m, d), "{days}");
        }
        // Every day for 1,000 years round-trips and advances by one.
        let mut prev = civil_from_days(-1);
        for days in 0..365_250 {
            let date = civil_from_days(days);
            assert_eq!(days_from_civil(date.0, date.1, date.2), days);
            assert!(date > prev);
            prev = date;
        }
    }

    #[test]
    fn budget_windows() {
        // 2024-02-29T13:45:10Z
        let t = 1_709_214_310;
        let day = BudgetPeriod::Daily.window(t);
        assert_eq!((day.start_unix, day.end_unix), (1_709_164_800, Some(1_709_251_200)));
        let month = BudgetPeriod::Monthly.window(t);
        // 2024-02-01 and 2024-03-01.
        assert_eq!((month.start_unix, month.end_unix), (1_706_745_600, Some(1_709_251_200)));
        assert_eq!(
            BudgetPeriod::Total.window(t),
            BudgetWindow { period: BudgetPeriod::Total, start_unix: 0, end_unix: None }
        );
        // December rolls into the next year: 2023-12-31T23:59:59Z.
        let dec = BudgetPeriod::Monthly.window(1_704_067_199);
        assert_eq!((dec.start_unix, dec.end_unix), (1_701_388_800, Some(1_704_067_200)));
        // The first second of a period is in it; the end is not.
        assert_eq!(BudgetPeriod::Monthly.window(1_704_067_200).start_unix, 1_704_067_200);
        assert!(month.contains(month.start_unix) && !month.contains(month.end_unix.unwrap()));
        assert!(BudgetPeriod::Total.window(0).contains(u64::MAX));
        for p in [BudgetPeriod::Total, BudgetPeriod::Daily, BudgetPeriod::Monthly] {
            assert_eq!(BudgetPeriod::parse(p.as_str()), Some(p));
            assert_eq!(p.window(t).start_unix % 3600, 0, "windows start on an hour");
        }
    }
}
