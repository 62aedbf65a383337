//! Criterion benches for the hashing algorithms (the Python-visible costs are in benches/).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use distcore_core::hashing::HashFn;

fn key_hashes(c: &mut Criterion) {
    let key = b"user:1234567890:profile";
    for f in HashFn::ALL {
        c.bench_function(&format!("hash/{}", f.name()), |b| {
            b.iter(|| f.hash(black_box(key)));
        });
    }
}

criterion_group!(benches, key_hashes);
criterion_main!(benches);
