//! The object-store backends against moto's S3 server: a blob bigger than one part
//! goes up in parts and comes back whole; a blob whose reader fails half-way leaves
//! no object behind (a cache must never hold part of a blob under its digest).

#![cfg(feature = "s3")]

use std::collections::BTreeMap;
use std::io::Read;

use kiln_oci::Descriptor;
use kiln_remotecache::S3Config;
use kiln_test::cloud::Moto;
use sha2::Digest as _;

const BUCKET: &str = "kiln-objects";

fn config(moto: &Moto) -> S3Config {
    let attrs: BTreeMap<String, String> = [
        ("endpoint_url", moto.endpoint()),
        ("bucket", BUCKET.to_owned()),
        ("region", "us-east-1".to_owned()),
        ("access_key_id", "test".to_owned()),
        ("secret_access_key", "test".to_owned()),
        ("use_path_style", "true".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    S3Config::parse(&attrs).unwrap()
}

/// Bytes no compressor would shrink, deterministic.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn descriptor(bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".to_owned(),
        digest: format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes))),
        size: bytes.len() as u64,
        ..Descriptor::default()
    }
}

#[test]
fn a_big_blob_goes_up_in_parts_and_comes_back_whole() {
    let Some(moto) = Moto::start() else {
        return;
    };
    moto.create_bucket(BUCKET);
    let backend = config(&moto).open().unwrap();
    let bytes = noise(21 << 20);
    let blob = descriptor(&bytes);
    assert!(!backend.has_blob(&blob).unwrap());
    backend.write_blob(&blob, &mut bytes.as_slice()).unwrap();
    assert!(backend.has_blob(&blob).unwrap());
    let mut back = Vec::new();
    backend.read_blob(&blob, &mut back).unwrap();
    assert!(
        back == bytes,
        "the blob came back changed ({} bytes)",
        back.len()
    );
    assert_eq!(
        moto.keys(BUCKET, "blobs/"),
        [format!("blobs/{}", blob.digest)]
    );
}

/// Gives `good` bytes, then fails.
struct FailingReader {
    good: std::io::Cursor<Vec<u8>>,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.good.read(buf)? {
            0 => Err(std::io::Error::other("the disk went away")),
            n => Ok(n),
        }
    }
}

#[test]
fn a_blob_whose_reader_fails_leaves_nothing() {
    let Some(moto) = Moto::start() else {
        return;
    };
    moto.create_bucket(BUCKET);
    let backend = config(&moto).open().unwrap();
    let bytes = noise(20 << 20);
    let blob = descriptor(&bytes);
    let mut reader = FailingReader {
        good: std::io::Cursor::new(bytes[..17 << 20].to_vec()),
    };
    let error = backend.write_blob(&blob, &mut reader).unwrap_err();
    assert!(error.to_string().contains("the disk went away"), "{error}");
    assert!(!backend.has_blob(&blob).unwrap());
    assert!(moto.keys(BUCKET, "blobs/").is_empty());
    // A missing blob reads as an error naming it, not as empty bytes.
    let error = backend.read_blob(&blob, &mut Vec::new()).unwrap_err();
    assert!(error.to_string().contains(&blob.digest), "{error}");
}

/// An export asks which blobs are there with one listing, not one request per blob.
#[test]
fn blobs_already_there_are_found_in_one_listing() {
    let Some(moto) = Moto::start() else {
        return;
    };
    moto.create_bucket(BUCKET);
    let blobs: Vec<Vec<u8>> = (1..=3).map(|i| noise(1000 * i)).collect();
    let first = config(&moto).open().unwrap();
    for bytes in &blobs {
        first
            .write_blob(&descriptor(bytes), &mut bytes.as_slice())
            .unwrap();
    }
    // The next export's backend: everything is there, nothing is written again.
    let next = config(&moto).open().unwrap();
    moto.start_recording();
    for bytes in &blobs {
        assert!(next.has_blob(&descriptor(bytes)).unwrap());
        next.write_blob(&descriptor(bytes), &mut bytes.as_slice())
            .unwrap();
    }
    assert!(!next.has_blob(&descriptor(b"not there")).unwrap());
    let requests = moto.recorded();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let (method, url) = &requests[0];
    assert!(
        method == "GET" && url.contains("list-type=2"),
        "{requests:?}"
    );
}
