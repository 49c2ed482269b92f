//! The API token format: `pf_<id>_<secret>`.
//!
//! `id` (16 lowercase letters and digits) is public: it is the lookup key
//! and shows in listings. `secret` is 32 random bytes, base64url: only its
//! SHA-256 is stored, which is enough for a random high-entropy secret (no
//! password hashing needed, as crates.io does for its tokens).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};

const PREFIX: &str = "pf_";
const ID_LEN: usize = 16;
const SECRET_BYTES: usize = 32;

/// A freshly made token: `full` is shown once; `hash` is stored.
pub struct Minted {
    pub id: String,
    pub full: String,
    pub hash: String,
}

/// Makes a new token from the system's secure random source.
pub fn mint() -> Result<Minted, String> {
    let rng = SystemRandom::new();
    let mut id_bytes = [0u8; ID_LEN];
    let mut secret = [0u8; SECRET_BYTES];
    rng.fill(&mut id_bytes)
        .and_then(|()| rng.fill(&mut secret))
        .map_err(|_| "the system's random source failed".to_string())?;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let id: String = id_bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    let secret = URL_SAFE_NO_PAD.encode(secret);
    Ok(Minted {
        full: format!("{PREFIX}{id}_{secret}"),
        hash: hash(&secret),
        id,
    })
}

/// Splits `pf_<id>_<secret>`; `None` when it is not shaped like one.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    // The id has no `_`; the secret (base64url) may.
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (id_ok && !secret.is_empty() && secret.len() <= 128).then_some((id, secret))
}

/// Hex SHA-256 of a secret.
pub fn hash(secret: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two hashes without an early exit.
pub fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse_and_verify() {
        let t = mint().unwrap();
        let (id, secret) = parse(&t.full).expect("parses");
        assert_eq!(id, t.id);
        assert!(same_hash(&hash(secret), &t.hash));
        assert!(!same_hash(&hash("other"), &t.hash));
        assert!(t.full.len() >= 3 + 16 + 1 + 43);
        let other = mint().unwrap();
        assert_ne!(other.id, t.id);
        assert_ne!(other.full, t.full);
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        for bad in [
            "",
            "pf_",
            "pf_abc_def",
            "xx_aaaaaaaaaaaaaaaa_secret",
            "pf_AAAAAAAAAAAAAAAA_secret",
            "pf_aaaaaaaaaaaaaaaa_",
            "eyJhbGciOi.eyJzdWIi.sig",
        ] {
            assert!(parse(bad).is_none(), "{bad:?} parsed");
        }
        assert!(parse("pf_aaaaaaaaaaaaaaaa_se_cr-et").is_some());
    }
}
