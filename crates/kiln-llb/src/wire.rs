//! BuildKit's exact wire encoding of LLB.
//!
//! BuildKit marshals ops with vtprotobuf, which differs from prost's encoding in two
//! ways that change bytes, and so digests: an `Op`'s `oneof` is written after all its
//! other fields (not at its field number), and a map entry always carries its key and
//! value, even when empty. Messages without maps or reordered oneofs are encoded by
//! prost, which agrees with vtprotobuf on them (fields by number, zero values skipped,
//! packed repeated scalars). Maps are `BTreeMap`s, so entries come out sorted by key,
//! as BuildKit's deterministic marshalling writes them.

use std::collections::BTreeMap;

use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint};

use crate::pb;

fn put_bytes(buf: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(bytes.len() as u64, buf);
    buf.extend_from_slice(bytes);
}

fn put_string(buf: &mut Vec<u8>, tag: u32, value: &str) {
    if !value.is_empty() {
        put_bytes(buf, tag, value.as_bytes());
    }
}

fn put_message(buf: &mut Vec<u8>, tag: u32, message: &impl Message) {
    put_bytes(buf, tag, &message.encode_to_vec());
}

/// A map field: one entry message per key, key (1) and value (2) always written.
fn put_map<V>(
    buf: &mut Vec<u8>,
    tag: u32,
    map: &BTreeMap<String, V>,
    encode_value: impl Fn(&mut Vec<u8>, &V),
) {
    for (key, value) in map {
        let mut entry = Vec::new();
        put_bytes(&mut entry, 1, key.as_bytes());
        encode_value(&mut entry, value);
        put_bytes(buf, tag, &entry);
    }
}

fn string_value(entry: &mut Vec<u8>, value: &String) {
    put_bytes(entry, 2, value.as_bytes());
}

/// Encodes an `Op` exactly as BuildKit does; its sha256 is the op's digest.
pub fn encode_op(op: &pb::Op) -> Vec<u8> {
    use pb::op::Op as Kind;
    let mut buf = Vec::new();
    for input in &op.inputs {
        put_message(&mut buf, 1, input);
    }
    if let Some(platform) = &op.platform {
        put_message(&mut buf, 10, platform);
    }
    if let Some(constraints) = &op.constraints {
        put_message(&mut buf, 11, constraints);
    }
    match &op.op {
        Some(Kind::Exec(exec)) => put_message(&mut buf, 2, exec),
        Some(Kind::Source(source)) => put_bytes(&mut buf, 3, &encode_source_op(source)),
        Some(Kind::File(file)) => put_message(&mut buf, 4, file),
        Some(Kind::Build(build)) => put_bytes(&mut buf, 5, &encode_build_op(build)),
        Some(Kind::Merge(merge)) => put_message(&mut buf, 6, merge),
        Some(Kind::Diff(diff)) => put_message(&mut buf, 7, diff),
        None => {}
    }
    buf
}

fn encode_source_op(source: &pb::SourceOp) -> Vec<u8> {
    let mut buf = Vec::new();
    put_string(&mut buf, 1, &source.identifier);
    put_map(&mut buf, 2, &source.attrs, string_value);
    buf
}

fn encode_build_op(build: &pb::BuildOp) -> Vec<u8> {
    let mut buf = Vec::new();
    if build.builder != 0 {
        encode_key(1, WireType::Varint, &mut buf);
        encode_varint(build.builder as u64, &mut buf);
    }
    put_map(&mut buf, 2, &build.inputs, |entry, input| {
        put_message(entry, 2, input)
    });
    if let Some(def) = &build.def {
        put_bytes(&mut buf, 3, &encode_definition(def));
    }
    put_map(&mut buf, 4, &build.attrs, string_value);
    buf
}

/// Encodes an `OpMetadata` exactly as BuildKit does.
pub fn encode_op_metadata(metadata: &pb::OpMetadata) -> Vec<u8> {
    let mut buf = Vec::new();
    if metadata.ignore_cache {
        encode_key(1, WireType::Varint, &mut buf);
        encode_varint(1, &mut buf);
    }
    put_map(&mut buf, 2, &metadata.description, string_value);
    if let Some(export_cache) = &metadata.export_cache {
        put_message(&mut buf, 4, export_cache);
    }
    put_map(&mut buf, 5, &metadata.caps, |entry, value| {
        encode_key(2, WireType::Varint, entry);
        encode_varint(u64::from(*value), entry);
    });
    if let Some(group) = &metadata.progress_group {
        put_message(&mut buf, 6, group);
    }
    buf
}

fn encode_source(source: &pb::Source) -> Vec<u8> {
    let mut buf = Vec::new();
    put_map(&mut buf, 1, &source.locations, |entry, locations| {
        put_message(entry, 2, locations)
    });
    for info in &source.infos {
        let mut info_buf = Vec::new();
        put_string(&mut info_buf, 1, &info.filename);
        if !info.data.is_empty() {
            put_bytes(&mut info_buf, 2, &info.data);
        }
        if let Some(def) = &info.definition {
            put_bytes(&mut info_buf, 3, &encode_definition(def));
        }
        put_string(&mut info_buf, 4, &info.language);
        put_bytes(&mut buf, 2, &info_buf);
    }
    buf
}

/// Encodes a `Definition` exactly as BuildKit does.
pub fn encode_definition(def: &pb::Definition) -> Vec<u8> {
    let mut buf = Vec::new();
    for op in &def.def {
        put_bytes(&mut buf, 1, op);
    }
    put_map(&mut buf, 2, &def.metadata, |entry, metadata| {
        put_bytes(entry, 2, &encode_op_metadata(metadata));
    });
    if let Some(source) = &def.source {
        put_bytes(&mut buf, 3, &encode_source(source));
    }
    buf
}

/// Decodes a `Definition`.
pub fn decode_definition(bytes: &[u8]) -> Result<pb::Definition, crate::Error> {
    pb::Definition::decode(bytes).map_err(|source| crate::Error::Decode {
        what: "definition",
        source,
    })
}

/// Decodes an `Op`.
pub fn decode_op(bytes: &[u8]) -> Result<pb::Op, crate::Error> {
    pb::Op::decode(bytes).map_err(|source| crate::Error::Decode { what: "op", source })
}
