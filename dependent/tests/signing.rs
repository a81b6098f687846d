//! The library's keys against RFC 8032's first Ed25519 test vector, and its
//! other parts once each.

use ed25519_dalek::Signature;
use lockedmem::{Backing, Isolation};
use lockedmem_dependent::config::{self, Encoding, ServiceConfig};
use lockedmem_dependent::process::{self, WipeOn};
use lockedmem_dependent::{ForkView, KeyError, KeyOptions, Keyring, SigningKey, Token};

/// RFC 8032, section 7.1, TEST 1: the secret key, its public key, and the
/// signature of the empty message.
const SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const SIGNATURE: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

fn unhex<const N: usize>(hex: &str) -> [u8; N] {
    let mut out = [0; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

#[test]
fn rfc8032_vector_through_every_form_of_the_key() {
    let key = SigningKey::from_hex(&format!("  {SECRET}\n")).unwrap();
    assert_eq!(key.verifying_key().to_bytes(), unhex::<32>(PUBLIC));
    let expected = Signature::from_bytes(&unhex::<64>(SIGNATURE));
    assert_eq!(key.sign(b""), expected);
    assert!(key.memory().locked, "{}", key.memory());
    assert!(key.has_seed(&unhex::<32>(SECRET)));
    assert!(!format!("{key:?}").contains(SECRET), "Debug shows no seed");

    // Out and back in: hex, keypair bytes, a KeyPair, raw bytes.
    assert_eq!(&*key.to_hex(true).unwrap(), format!("{SECRET}\n"));
    let via_hex_file = SigningKey::from_hex_reader(
        &KeyOptions::new(),
        key.to_hex_with(&KeyOptions::new().packed(), true)
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let pair = key.to_keypair_bytes().unwrap();
    let via_pair = SigningKey::from_keypair_bytes(&pair).unwrap();
    let via_pair_with =
        SigningKey::from_keypair_bytes_with(&KeyOptions::new().best_effort(), &pair).unwrap();
    let via_struct = SigningKey::from_keypair(*key.to_keypair().unwrap()).unwrap();
    let via_struct_with =
        SigningKey::from_keypair(*key.to_keypair_with(&KeyOptions::new()).unwrap()).unwrap();
    let via_raw = SigningKey::from_raw_reader(&unhex::<32>(SECRET)[..]).unwrap();
    let via_raw_with =
        SigningKey::from_raw_reader_with(&KeyOptions::new(), &unhex::<32>(SECRET)[..]).unwrap();
    let via_fn = SigningKey::from_fn(|s| *s = unhex(SECRET)).unwrap();
    let via_clone = key.try_clone().unwrap();
    for other in [
        via_hex_file,
        via_pair,
        via_pair_with,
        via_struct,
        via_struct_with,
        via_raw,
        via_raw_with,
        via_fn,
        via_clone,
    ] {
        assert_eq!(other.sign(b""), expected);
    }

    // Hot, cloned, sealed again, revoked.
    let hot = key.into_hot();
    assert_eq!(hot.sign(b""), expected);
    assert!(hot.has_seed(&unhex::<32>(SECRET)));
    let twin = hot.try_clone().unwrap();
    assert!(twin == hot);
    let sealed = twin.seal().unwrap();
    assert_eq!(sealed.sign(b""), expected);
    let revoked = hot.revoke();
    assert_eq!(revoked.public, sealed.verifying_key());
    assert_eq!(revoked.isolation, Isolation::Page);
}

#[test]
fn bad_input_maps_to_the_librarys_errors() {
    let short = &SECRET[..62];
    assert!(matches!(
        SigningKey::from_hex(short),
        Err(KeyError::Malformed { .. })
    ));
    assert!(matches!(
        SigningKey::from_base64("not base64!"),
        Err(KeyError::Malformed { .. })
    ));
    assert!(matches!(
        SigningKey::from_raw_reader(&[1u8; 31][..]),
        Err(KeyError::Io(_))
    ));
    assert!(matches!(
        SigningKey::from_hex_reader(&KeyOptions::new(), &b"\n"[..]),
        Err(KeyError::Malformed { why: "empty" })
    ));
    assert!(matches!(
        SigningKey::from_hex_reader(&KeyOptions::new(), &[b'a'; 200][..]),
        Err(KeyError::Malformed { why: "too long" })
    ));
    let mut pair = SigningKey::generate().unwrap().to_keypair_bytes().unwrap();
    pair[40] ^= 1;
    assert!(matches!(
        SigningKey::from_keypair_bytes(&pair),
        Err(KeyError::PublicKeyMismatch)
    ));
    // A signal the last wipe cannot take: refused, nothing installed.
    assert!(matches!(
        process::install_last_wipe(WipeOn::Stop, &[9]),
        Err(KeyError::Signal { number: 9 })
    ));
    // No message quotes the input.
    let e = SigningKey::from_hex(&SECRET.replace('9', "x")).unwrap_err();
    assert!(!e.to_string().contains("d61b"), "{e}");
}

#[test]
fn options_reach_the_memory() {
    let packed = KeyOptions::new()
        .packed()
        .best_effort()
        .fork_children_see(ForkView::Nothing);
    let key = SigningKey::generate_with(&packed).unwrap();
    let copy = SigningKey::from_bytes_with(&packed, &[7; 32]).unwrap();
    assert_eq!(key.memory().backing, Backing::Anonymous);
    assert_eq!(
        copy.sign(b"m"),
        SigningKey::from_bytes(&[7; 32]).unwrap().sign(b"m")
    );
    let page = KeyOptions::new()
        .page_isolated()
        .require_lock()
        .anonymous_memory()
        .fork_children_see(ForkView::Zeros);
    assert!(
        SigningKey::from_fn_with(&page, |s| s.fill(1))
            .unwrap()
            .memory()
            .locked
    );
    let b64 = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
    let a = SigningKey::from_base64(b64).unwrap();
    let b = SigningKey::from_base64_with(&page, b64).unwrap();
    let c = SigningKey::from_hex_with(&page.fork_children_see(ForkView::Copy), SECRET).unwrap();
    assert_eq!(a.sign(b""), b.sign(b""));
    assert_eq!(b.sign(b""), c.sign(b""));
    // Secret memory where the host has it; ordinary memory stands in else.
    let preferred = SigningKey::generate_with(&KeyOptions::new().secret_memory(false)).unwrap();
    assert!(preferred.memory().locked);
    match SigningKey::generate_with(&KeyOptions::new().secret_memory(true)) {
        Ok(k) => assert_eq!(k.memory().backing, Backing::SecretMem),
        Err(e) => assert!(matches!(e, KeyError::Unsupported { .. }), "{e}"),
    }
    let mut rotated = SigningKey::from_hex(SECRET).unwrap();
    let new_public = rotated.rotate().unwrap();
    assert_ne!(new_public.to_bytes(), unhex::<32>(PUBLIC));
    assert!(new_public.verify_strict(b"x", &rotated.sign(b"x")).is_ok());
}

#[test]
fn configuration_tokens_and_keyring() {
    let doc = format!(
        r#"{{
            "signing_key": "{SECRET}",
            "retired_keys": {{"2025": "{SECRET}"}},
            "api_token": "aHVudGVyMg==",
            "operator_password": "correct horse",
            "backup_keys": ["nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="]
        }}"#
    );
    let mut cfg: ServiceConfig = serde_json::from_slice(doc.as_bytes()).unwrap();
    let key = cfg.signing_key().unwrap();
    assert_eq!(key.verifying_key().to_bytes(), unhex::<32>(PUBLIC));
    assert_eq!(
        cfg.retired_keys().unwrap()["2025"].verifying_key(),
        key.verifying_key()
    );
    assert_eq!(
        cfg.take_backup_keys().unwrap()[0].verifying_key(),
        key.verifying_key()
    );
    let token = cfg.api_token().unwrap();
    assert!(token.matches(b"hunter2") && !token.matches(b"hunter3"));
    let password = cfg.operator_password().unwrap();
    assert_eq!(&**password, "correct horse");

    // Tenants' keys, packed and best effort; one secret at a time.
    let tenants = format!(r#"{{"alice": "{SECRET}", "bob": "{SECRET}"}}"#);
    let packed = KeyOptions::new().packed().best_effort();
    let mut de = serde_json::Deserializer::from_slice(tenants.as_bytes());
    let keys = config::keys_by_name(&mut de, &packed).unwrap();
    assert_eq!(keys["bob"].isolation(), Isolation::Packed);
    let mut de = serde_json::Deserializer::from_slice(br#""AQID""#);
    let bytes: lockedmem::LockedVec<u8> =
        config::secret(&mut de, &packed, Encoding::Base64).unwrap();
    assert_eq!(&bytes[..], [1, 2, 3]);
    let mut de = serde_json::Deserializer::from_slice(br#""0a0b""#);
    let hex: lockedmem::LockedBox<[u8; 2]> =
        config::secret(&mut de, &packed, Encoding::Hex).unwrap();
    assert_eq!(*hex, [10, 11]);
    let mut de = serde_json::Deserializer::from_slice(br#""pw""#);
    let text: lockedmem::LockedString = config::secret(&mut de, &packed, Encoding::Plain).unwrap();
    assert_eq!(&*text, "pw");

    // Tokens, every way in.
    let tokens = [
        Token::from_hex("68756e74657232").unwrap(),
        Token::from_hex_with(&packed, "68756e74657232").unwrap(),
        Token::from_base64("aHVudGVyMg==").unwrap(),
        Token::from_base64_with(&packed, "aHVudGVyMg==").unwrap(),
        Token::read_from(&b"hunter2"[..], 64).unwrap(),
        Token::from_text(password).unwrap().try_clone().unwrap(),
        Token::collect(*b"hunter2").unwrap(),
        Token::collect_with(&packed, *b"hunter2").unwrap(),
    ];
    for t in &tokens[..5] {
        assert!(*t == token && t.len() == 7);
    }
    assert!(tokens[5].matches(b"correct horse"));
    let mut random = Token::generate(16).unwrap();
    assert!(Token::generate_with(&packed, 16).unwrap() != random);
    assert_eq!(random.memory(), (true, Some(Backing::Anonymous)));
    random.revoke();
    assert!(random.is_empty());
    let sealed = tokens[0].try_clone().unwrap().seal().unwrap();
    assert_eq!(&sealed.borrow()[..], b"hunter2");

    // The keyring signs as the keys do, and exports their seeds.
    let mut ring = Keyring::new();
    let first = ring.add(&key).unwrap();
    let second = ring.add(&SigningKey::generate().unwrap()).unwrap();
    assert_eq!((first, second, ring.len()), (0, 1, 2));
    assert_eq!(ring.sign(first, b"").unwrap(), key.sign(b""));
    let other = ring.verifying_key(second).unwrap();
    assert!(
        other
            .verify_strict(b"m", &ring.sign(second, b"m").unwrap())
            .is_ok()
    );
    assert!(ring.sign(2, b"").is_none());
    let backup = ring.export().unwrap();
    assert_eq!(backup[..32], unhex::<32>(SECRET));
    assert_eq!(ring.export_with(&packed).unwrap().len(), 64);
    ring.clear();
    assert!(ring.is_empty());
    let mut workers = Keyring::for_workers(true);
    workers.add(&key).unwrap();
    let mut secret = Keyring::in_secret_memory();
    match secret.add(&key) {
        Ok(_) => assert_eq!(secret.sign(0, b""), Some(key.sign(b""))),
        Err(e) => assert!(matches!(e, KeyError::KeyringFull), "{e}"),
    }
}

#[test]
fn diagnostics_see_the_keys() {
    // Other tests run at the same time: only what this key makes certain.
    let key = SigningKey::generate().unwrap();
    let after = process::diagnostics();
    assert!(after.locked_bytes >= after.host.page_size, "{after}");
    assert!(after.stats.page_boxes >= 1);
    let report = after.to_string();
    assert!(
        report.contains("page size") && report.contains("core dumps"),
        "{report}"
    );
    drop(key);
    process::release_memory(Some(lockedmem::DEFAULT_CACHE_LIMIT));
    assert_eq!(lockedmem::cache_limit(), lockedmem::DEFAULT_CACHE_LIMIT);
}
