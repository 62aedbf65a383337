//! memberlist's encryption: AES-GCM with a keyring for online key rotation.
//!
//! An encrypted payload is `version (1 byte) | nonce (12) | ciphertext | tag (16)`. Version 1
//! encrypts the message as it is; version 0 (older memberlist) first pads it with PKCS#7 to the
//! AES block size. The key length picks AES-128, -192 or -256. The primary key (the first) encrypts;
//! every key is tried to decrypt, which is how a cluster rotates keys without downtime.

use aes_gcm::aead::{Aead, AeadCore, OsRng, Payload};
use aes_gcm::aes::{Aes128, Aes192, Aes256};
use aes_gcm::{AesGcm, KeyInit};

use crate::error::{Error, Result};

type Aes128Gcm = AesGcm<Aes128, aes_gcm::aead::consts::U12>;
type Aes192Gcm = AesGcm<Aes192, aes_gcm::aead::consts::U12>;
type Aes256Gcm = AesGcm<Aes256, aes_gcm::aead::consts::U12>;

const NONCE: usize = 12;
const TAG: usize = 16;
/// Bytes encryption adds to a message (version 1): version, nonce and tag.
pub const OVERHEAD: usize = 1 + NONCE + TAG;

/// The encryption keys of a node; the first is the primary.
#[derive(Clone, Default)]
pub struct Keyring {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "Keyring({} keys)", self.keys.len())
    }
}

fn check_key(key: &[u8]) -> Result<()> {
    if matches!(key.len(), 16 | 24 | 32) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "an encryption key must be 16, 24 or 32 bytes (AES-128/192/256), got {}",
            key.len()
        )))
    }
}

fn seal(key: &[u8], nonce: &[u8], msg: &[u8], aad: &[u8]) -> Vec<u8> {
    let payload = Payload { msg, aad };
    let nonce = aes_gcm::Nonce::from_slice(nonce);
    let sealed = match key.len() {
        16 => Aes128Gcm::new_from_slice(key).map(|c| c.encrypt(nonce, payload)),
        24 => Aes192Gcm::new_from_slice(key).map(|c| c.encrypt(nonce, payload)),
        _ => Aes256Gcm::new_from_slice(key).map(|c| c.encrypt(nonce, payload)),
    };
    sealed
        .expect("key length checked when added")
        .expect("AES-GCM encryption of an in-memory buffer")
}

fn open(key: &[u8], nonce: &[u8], ciphertext: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let payload = Payload {
        msg: ciphertext,
        aad,
    };
    let nonce = aes_gcm::Nonce::from_slice(nonce);
    match key.len() {
        16 => Aes128Gcm::new_from_slice(key)
            .ok()?
            .decrypt(nonce, payload)
            .ok(),
        24 => Aes192Gcm::new_from_slice(key)
            .ok()?
            .decrypt(nonce, payload)
            .ok(),
        _ => Aes256Gcm::new_from_slice(key)
            .ok()?
            .decrypt(nonce, payload)
            .ok(),
    }
}

impl Keyring {
    /// A keyring; `keys[0]` becomes the primary. Every key must be 16, 24 or 32 bytes.
    pub fn new(keys: Vec<Vec<u8>>) -> Result<Keyring> {
        keys.iter().try_for_each(|k| check_key(k))?;
        let mut ring = Keyring { keys: Vec::new() };
        for k in keys {
            if !ring.keys.contains(&k) {
                ring.keys.push(k);
            }
        }
        Ok(ring)
    }

    /// True if the keyring has no key (encryption off).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, primary first.
    pub fn keys(&self) -> &[Vec<u8>] {
        &self.keys
    }

    /// Adds a key (as a secondary) if it is not there yet.
    pub fn add(&mut self, key: Vec<u8>) -> Result<()> {
        check_key(&key)?;
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
        Ok(())
    }

    /// Makes `key` (already in the ring) the primary.
    pub fn use_key(&mut self, key: &[u8]) -> Result<()> {
        let i = self
            .keys
            .iter()
            .position(|k| k == key)
            .ok_or_else(|| Error::InvalidArgument("that key is not in the keyring".into()))?;
        let k = self.keys.remove(i);
        self.keys.insert(0, k);
        Ok(())
    }

    /// Removes a secondary key; the primary cannot be removed.
    pub fn remove(&mut self, key: &[u8]) -> Result<()> {
        match self.keys.iter().position(|k| k == key) {
            Some(0) => Err(Error::InvalidArgument(
                "the primary key cannot be removed; make another key primary first".into(),
            )),
            Some(i) => {
                self.keys.remove(i);
                Ok(())
            }
            None => Err(Error::InvalidArgument(
                "that key is not in the keyring".into(),
            )),
        }
    }

    /// Encrypts `msg` with the primary key (version 1), authenticating `aad` too.
    pub fn encrypt(&self, msg: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let key = self
            .keys
            .first()
            .ok_or_else(|| Error::InvalidArgument("the keyring is empty".into()))?;
        let nonce = match key.len() {
            16 => Aes128Gcm::generate_nonce(&mut OsRng).to_vec(),
            24 => Aes192Gcm::generate_nonce(&mut OsRng).to_vec(),
            _ => Aes256Gcm::generate_nonce(&mut OsRng).to_vec(),
        };
        let mut out = Vec::with_capacity(OVERHEAD + msg.len());
        out.push(1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&seal(key, &nonce, msg, aad));
        Ok(out)
    }

    /// Decrypts a payload of version 0 or 1 with whichever key opens it.
    pub fn decrypt(&self, data: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let version = *data
            .first()
            .ok_or_else(|| Error::Decode("empty encrypted payload".into()))?;
        if version > 1 {
            return Err(Error::Decode(format!(
                "unsupported encryption version {version}"
            )));
        }
        let min = 1 + NONCE + TAG + if version == 0 { 16 } else { 0 };
        if data.len() < min {
            return Err(Error::Decode(format!(
                "encrypted payload too short: {} bytes, need at least {min}",
                data.len()
            )));
        }
        let (nonce, ciphertext) = data[1..].split_at(NONCE);
        let plain = self
            .keys
            .iter()
            .find_map(|k| open(k, nonce, ciphertext, aad))
            .ok_or_else(|| Error::Decode("no key in the keyring decrypts this payload".into()))?;
        if version == 0 {
            // PKCS#7: the last byte says how many padding bytes to drop.
            let pad = usize::from(*plain.last().unwrap_or(&0));
            if pad == 0 || pad > 16 || pad > plain.len() {
                return Err(Error::Decode("bad PKCS#7 padding".into()));
            }
            return Ok(plain[..plain.len() - pad].to_vec());
        }
        Ok(plain)
    }

    /// Encrypts with version 0 (PKCS#7 padding), as older memberlist did; only the tests need
    /// it (distcore reads version 0 and always writes version 1).
    #[cfg(test)]
    pub fn encrypt_v0(&self, msg: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let key = self
            .keys
            .first()
            .ok_or_else(|| Error::InvalidArgument("the keyring is empty".into()))?;
        let pad = 16 - msg.len() % 16;
        let mut padded = msg.to_vec();
        padded.extend(std::iter::repeat_n(pad as u8, pad));
        let nonce = Aes128Gcm::generate_nonce(&mut OsRng).to_vec();
        let mut out = vec![0];
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&seal(key, &nonce, &padded, aad));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_all_key_sizes_and_rotation() {
        for len in [16, 24, 32] {
            let ring = Keyring::new(vec![vec![7u8; len]]).unwrap();
            let sealed = ring.encrypt(b"hello", b"ad").unwrap();
            assert_eq!(sealed.len(), OVERHEAD + 5);
            assert_eq!(sealed[0], 1);
            assert_eq!(ring.decrypt(&sealed, b"ad").unwrap(), b"hello");
            assert!(ring.decrypt(&sealed, b"other ad").is_err());
            let v0 = ring.encrypt_v0(b"hello", b"").unwrap();
            assert_eq!(ring.decrypt(&v0, b"").unwrap(), b"hello");
        }
        let old = vec![1u8; 16];
        let new = vec![2u8; 32];
        let mut a = Keyring::new(vec![old.clone()]).unwrap();
        let sealed_old = a.encrypt(b"x", b"").unwrap();
        a.add(new.clone()).unwrap();
        a.use_key(&new).unwrap();
        let sealed_new = a.encrypt(b"y", b"").unwrap();
        let b = Keyring::new(vec![old.clone(), new.clone()]).unwrap();
        assert_eq!(b.decrypt(&sealed_old, b"").unwrap(), b"x");
        assert_eq!(b.decrypt(&sealed_new, b"").unwrap(), b"y");
        assert!(a.remove(&new).is_err());
        a.remove(&old).unwrap();
        assert!(a.decrypt(&sealed_old, b"").is_err());
        assert!(Keyring::new(vec![vec![0; 15]]).is_err());
        assert!(a.decrypt(&[1, 2, 3], b"").is_err());
        assert!(a.decrypt(&[9; 40], b"").is_err());
    }
}
