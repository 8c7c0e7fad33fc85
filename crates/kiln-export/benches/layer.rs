//! Layer export speed: a 64 MiB layer of `seq`-like text (compressible about 4:1, like
//! the shared bench's `big-layer`) written as a blob in each compression.
//!
//! `cargo bench -p kiln-export` (throughput is printed in MB/s)

use std::io::Write as _;

use divan::{Bencher, counter::BytesCount};
use kiln_export::layer::{LayerFormat, write_layer};
use kiln_oci::Compression;
use kiln_store::ContentStore;

fn main() {
    divan::main();
}

const SIZE: usize = 64 << 20;

#[divan::bench(args = [Compression::Uncompressed, Compression::Gzip, Compression::Zstd], sample_count = 3)]
fn write_64mib_layer(bencher: Bencher, compression: Compression) {
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("layer");
    fs_err::create_dir_all(&layer).unwrap();
    let mut file = std::io::BufWriter::new(fs_err::File::create(layer.join("seq.txt")).unwrap());
    let mut written = 0;
    let mut i = 0u64;
    while written < SIZE {
        let line = format!("{i}\n");
        written += line.len();
        file.write_all(line.as_bytes()).unwrap();
        i += 1;
    }
    file.flush().unwrap();
    drop(file);
    let store = ContentStore::open(dir.path().join("store")).unwrap();
    bencher.counter(BytesCount::new(SIZE)).bench(|| {
        let format = LayerFormat {
            compression,
            oci: true,
            ..LayerFormat::default()
        };
        write_layer(&store, &layer, &[], &format).unwrap()
    });
}
