//! Keys from a configuration file, through serde: decoded from the
//! document's text straight into locked memory.
//!
//! Parse from a slice (`serde_json::from_slice`), not a reader: a reader
//! makes serde_json copy every string into a buffer of its own that nobody
//! wipes (see the `lockedmem::serde` docs).
//!
//! ```
//! use lockedmem_dependent::config::ServiceConfig;
//!
//! let doc = br#"{
//!     "signing_key": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
//!     "api_token": "aHVudGVyMg==",
//!     "operator_password": "hunter2"
//! }"#;
//! let config: ServiceConfig = serde_json::from_slice(doc)?;
//! let key = config.signing_key()?;
//! # drop(key);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;

use lockedmem::serde::{Base64, Destination, Hex, Seed, with_options};
use lockedmem::{LockedBox, LockedString, LockedVec};
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer};

use crate::token::Token;
use crate::{KeyError, KeyOptions, SEED_LEN, SigningKey};

/// A signing service's configuration: its key and the secrets beside it.
#[derive(Deserialize, Debug)]
pub struct ServiceConfig {
    /// The signing key's seed, in hex.
    #[serde(with = "lockedmem::serde::hex")]
    signing_key: LockedBox<[u8; SEED_LEN]>,
    /// Keys retired but still accepted, in hex, by name.
    #[serde(default)]
    retired_keys: HashMap<String, Hex<LockedBox<[u8; SEED_LEN]>>>,
    /// The bearer token, in base64.
    #[serde(with = "lockedmem::serde::base64")]
    api_token: LockedVec<u8>,
    /// The operator's password, as text.
    operator_password: Option<LockedString>,
    /// Backup keys, in base64.
    #[serde(default)]
    backup_keys: Vec<Base64<LockedBox<[u8; SEED_LEN]>>>,
}

impl ServiceConfig {
    /// The signing key.
    ///
    /// # Errors
    /// As [`SigningKey::generate`].
    pub fn signing_key(&self) -> Result<SigningKey, KeyError> {
        SigningKey::from_bytes(&self.signing_key)
    }

    /// The retired keys, by name.
    ///
    /// # Errors
    /// As [`SigningKey::generate`].
    pub fn retired_keys(&self) -> Result<HashMap<String, SigningKey>, KeyError> {
        self.retired_keys
            .iter()
            .map(|(name, seed)| Ok((name.clone(), SigningKey::from_bytes(seed)?)))
            .collect()
    }

    /// The backup keys, taking them out of the configuration.
    ///
    /// # Errors
    /// As [`SigningKey::generate`].
    pub fn take_backup_keys(&mut self) -> Result<Vec<SigningKey>, KeyError> {
        std::mem::take(&mut self.backup_keys)
            .into_iter()
            .map(|seed| SigningKey::from_bytes(&seed.into_inner()))
            .collect()
    }

    /// The bearer token (a copy).
    ///
    /// # Errors
    /// As [`Token::generate`].
    pub fn api_token(&self) -> Result<Token, KeyError> {
        Token::collect(self.api_token.iter().copied())
    }

    /// The operator's password, if the file has one and it is not empty.
    pub fn operator_password(&self) -> Option<&LockedString> {
        self.operator_password
            .as_ref()
            .filter(|p| !p.is_empty() && p.is_locked())
    }
}

/// A map of key names to hex seeds (`{"alice": "9d61…", …}`), every seed
/// decoded into memory made as `options` say: many tenants' keys, packed
/// and best effort under a tight lock limit.
///
/// # Errors
/// The deserializer's, which names no byte of a key.
pub fn keys_by_name<'de, D: Deserializer<'de>>(
    deserializer: D,
    options: &KeyOptions,
) -> Result<HashMap<String, LockedBox<[u8; SEED_LEN]>>, D::Error> {
    let map: HashMap<String, Hex<LockedBox<[u8; SEED_LEN]>>> =
        with_options(&options.lockedmem(), || HashMap::deserialize(deserializer))?;
    Ok(map.into_iter().map(|(k, v)| (k, v.into_inner())).collect())
}

/// How a secret is written in a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Text as it is (a string), or bytes.
    Plain,
    /// Hex digits.
    Hex,
    /// Padded base64.
    Base64,
}

/// One secret of any of lockedmem's kinds (a key's seed, a token, a
/// password), decoded from one value of a document into memory made as
/// `options` say.
///
/// # Errors
/// The deserializer's.
pub fn secret<'de, D, T>(
    deserializer: D,
    options: &KeyOptions,
    encoding: Encoding,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Destination,
{
    let seed: Seed<T> = match encoding {
        Encoding::Plain => Seed::new(&options.lockedmem()),
        Encoding::Hex => options.lockedmem().seed::<T>().hex(),
        Encoding::Base64 => options.lockedmem().seed::<T>().base64(),
    };
    seed.deserialize(deserializer)
}
