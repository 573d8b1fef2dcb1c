//! Against the byte-exact vectors Salt's own functions produced
//! (`shared/docs/salt-test-vectors.json`), in both directions where the
//! operation is deterministic.

use super::*;

fn vectors() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/docs/salt-test-vectors.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("test vectors missing at {path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn hx(v: &serde_json::Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn keys(v: &serde_json::Value) -> (PrivateKey, PrivateKey) {
    let m = PrivateKey::from_pem(v["keys"]["master_pem"].as_str().unwrap().as_bytes(), None).unwrap();
    let n = PrivateKey::from_pem(v["keys"]["minion_pem"].as_str().unwrap().as_bytes(), None).unwrap();
    (m, n)
}

#[test]
fn crypticle_vector_both_ways() {
    let v = vectors();
    let c = &v["crypticle"];
    let k = Crypticle::from_key_string(c["key_string"].as_str().unwrap()).unwrap();
    let iv: [u8; 16] = hx(&c["iv"]).try_into().unwrap();
    let plain = hx(&c["plaintext_before_padding"]);
    assert_eq!(k.encrypt_with_iv(&plain, &iv).unwrap(), hx(&c["ciphertext_full"]));
    assert_eq!(k.decrypt(&hx(&c["ciphertext_full"])).unwrap(), plain);
    // open() strips pickle:: and yields the msgpack of the object.
    assert_eq!(
        k.open(&hx(&c["ciphertext_full"]), None).unwrap().unwrap(),
        hx(&c["msgpack_of_object"])
    );
    let sealed = k.seal(&hx(&c["msgpack_of_object"]), None).unwrap();
    assert_eq!(k.decrypt(&sealed).unwrap(), plain);

    let w = &c["with_nonce"];
    let nonce = w["nonce"].as_str().unwrap();
    let wplain = hx(&w["plaintext_before_padding"]);
    let payload = &wplain[8 + 32..];
    let sealed = k.seal(payload, Some(nonce)).unwrap();
    assert_eq!(k.decrypt(&sealed).unwrap(), wplain);
    assert_eq!(k.open(&sealed, Some(nonce)).unwrap().unwrap(), payload);
    assert!(matches!(
        k.open(&sealed, Some("ffffffffffffffffffffffffffffffff")),
        Err(CryptoError::BadNonce)
    ));
}

#[test]
fn crypticle_refuses_tampering_and_garbage() {
    let k = Crypticle::generate();
    assert_eq!(k.key_string().len(), 76);
    let ct = k.encrypt(b"hello").unwrap();
    let mut bad = ct.clone();
    bad[20] ^= 1;
    assert!(matches!(k.decrypt(&bad), Err(CryptoError::BadMac)));
    assert!(matches!(k.decrypt(&ct[..ct.len() - 1]), Err(CryptoError::BadLength)));
    assert!(matches!(k.decrypt(&[]), Err(CryptoError::BadLength)));
    let other = Crypticle::generate();
    assert!(matches!(other.decrypt(&ct), Err(CryptoError::BadMac)));
    assert!(k.open(&k.encrypt(b"no prefix").unwrap(), None).unwrap().is_none());
    assert!(Crypticle::from_key_string("not base64!").is_err());
    assert!(Crypticle::from_key_string("AAAA").is_err());
}

#[test]
fn pkcs1v15_signatures_match_salts() {
    let v = vectors();
    let (master, _) = keys(&v);
    for (name, algo) in [
        ("pkcs1v15_sha1", SigAlgo::Pkcs1v15Sha1),
        ("pkcs1v15_sha224", SigAlgo::Pkcs1v15Sha224),
    ] {
        let msg = hx(&v["rsa"][name]["message"]);
        let sig = hx(&v["rsa"][name]["signature"]);
        assert_eq!(master.sign(algo, &msg).unwrap(), sig, "{name}");
        assert!(master.public_key().verify(algo, &msg, &sig).unwrap());
        assert!(!master.public_key().verify(algo, b"other", &sig).unwrap());
    }
}

#[test]
fn oaep_decrypts_salts_ciphertexts_and_round_trips() {
    let v = vectors();
    let (_, minion) = keys(&v);
    for (name, algo) in [
        ("oaep_sha1_to_minion", EncAlgo::OaepSha1),
        ("oaep_sha224_to_minion", EncAlgo::OaepSha224),
    ] {
        let plain = v["rsa"][name]["plaintext"].as_str().unwrap().as_bytes();
        let ct = hx(&v["rsa"][name]["ciphertext"]);
        assert_eq!(minion.decrypt_oaep(algo, &ct).unwrap(), plain, "{name}");
        let again = minion.public_key().encrypt_oaep(algo, plain).unwrap();
        assert_eq!(minion.decrypt_oaep(algo, &again).unwrap(), plain);
    }
    assert!(minion.decrypt_oaep(EncAlgo::OaepSha1, &[1, 2, 3]).is_err());
    assert!("OAEP-MD5".parse::<EncAlgo>().is_err());
    assert_eq!("PKCS1v15-SHA224".parse::<SigAlgo>().unwrap(), SigAlgo::Pkcs1v15Sha224);
}

#[test]
fn x931_matches_salts_tok_and_auth_sig() {
    let v = vectors();
    let (master, minion) = keys(&v);
    let tok = &v["rsa"]["minion_tok"];
    assert_eq!(
        minion.x931_encrypt(&hx(&tok["plaintext"])).unwrap(),
        hx(&tok["signature"])
    );
    assert_eq!(
        minion.public_key().x931_decrypt(&hx(&tok["signature"])).unwrap(),
        b"salt"
    );
    let a = &v["rsa"]["auth_reply_sig"];
    let digest = sha256_hex(a["aes_key_string"].as_str().unwrap().as_bytes());
    assert_eq!(digest, a["digest_ascii_hex"].as_str().unwrap());
    let sig = master.x931_encrypt(digest.as_bytes()).unwrap();
    assert_eq!(sig, hx(&a["signature"]));
    assert_eq!(master.public_key().x931_decrypt(&sig).unwrap(), digest.as_bytes());
    // Garbage of the right length is refused, not a panic.
    assert!(master.public_key().x931_decrypt(&vec![7u8; 256]).is_err());
    assert!(master.public_key().x931_decrypt(&[1, 2]).is_err());
}

#[test]
fn both_x931_branches_occur_and_verify() {
    let key = PrivateKey::generate(1024).unwrap();
    let public = key.public_key();
    for i in 0..40u8 {
        let msg = [b's', b'a', b'l', b't', i];
        let s = key.x931_encrypt(&msg).unwrap();
        assert_eq!(public.x931_decrypt(&s).unwrap(), msg);
    }
}

#[test]
fn pem_formats_as_salt_writes_them() {
    let v = vectors();
    let (master, _) = keys(&v);
    let pub_pem = String::from_utf8(master.public_key().to_pem_spki().unwrap()).unwrap();
    assert_eq!(pub_pem, v["keys"]["master_pub"].as_str().unwrap());
    let pem = String::from_utf8(master.to_pem_pkcs1().unwrap()).unwrap();
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n") && pem.ends_with("-----END RSA PRIVATE KEY-----\n"));
    assert_eq!(
        PrivateKey::from_pem(pem.as_bytes(), None)
            .unwrap()
            .public_key()
            .to_pem_spki()
            .unwrap(),
        pub_pem.as_bytes()
    );
    assert_eq!(
        clean_key(v["keys"]["minion_pub"].as_str().unwrap()),
        v["keys"]["minion_pub_clean_key"].as_str().unwrap()
    );
    assert!(PublicKey::from_pem(b"garbage").is_err());
    let n = new_nonce();
    assert_eq!(n.len(), 32);
    assert!(n.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
}
