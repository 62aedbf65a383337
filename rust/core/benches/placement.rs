//! Criterion benches for the non-ketama placement algorithms: batch lookups on pre-hashed keys
//! (reported per key), single lookups, and table/ring builds.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use distcore_core::hashing::anchor::AnchorRing;
use distcore_core::hashing::bounded::BoundedLoadRing;
use distcore_core::hashing::jump::{jump_hash, JumpRing};
use distcore_core::hashing::maglev::{MaglevRing, DEFAULT_TABLE_SIZE};
use distcore_core::hashing::nodes::Placement;
use distcore_core::hashing::rendezvous::RendezvousRing;

const BATCH: usize = 100_000;

fn names(n: usize) -> Vec<(String, f64)> {
    (0..n)
        .map(|i| (format!("10.0.{}.{}:11211", i / 256, i % 256), 1.0))
        .collect()
}

fn keys() -> Vec<u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    (0..BATCH)
        .map(|_| {
            // xorshift64*: cheap, well spread pre-hashed keys.
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        })
        .collect()
}

fn batch<P: Placement>(c: &mut Criterion, name: &str, ring: &P) {
    let keys = keys();
    let mut out = vec![0u32; keys.len()];
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function(name, |b| {
        b.iter(|| ring.locate_into(black_box(&keys), &mut out).unwrap());
    });
    g.finish();
}

fn batches(c: &mut Criterion) {
    for n in [10, 100, 1000] {
        let nodes = names(n);
        batch(
            c,
            &format!("jump/n={n}"),
            &JumpRing::with_weighted_nodes(nodes.clone()).unwrap(),
        );
        batch(
            c,
            &format!("maglev/n={n}"),
            &MaglevRing::with_nodes(nodes.clone(), DEFAULT_TABLE_SIZE).unwrap(),
        );
        batch(
            c,
            &format!("anchor/n={n}"),
            &AnchorRing::with_weighted_nodes(nodes.clone(), None).unwrap(),
        );
        batch(
            c,
            &format!("bounded/n={n}"),
            &BoundedLoadRing::with_nodes(nodes.clone(), 1.25, 100).unwrap(),
        );
        if n <= 100 {
            batch(
                c,
                &format!("rendezvous/n={n}"),
                &RendezvousRing::with_nodes(nodes.clone()).unwrap(),
            );
            let mut weighted = nodes.clone();
            weighted[0].1 = 2.0;
            batch(
                c,
                &format!("rendezvous_weighted/n={n}"),
                &RendezvousRing::with_nodes(weighted).unwrap(),
            );
        }
    }
    // The plain per-key loop, to compare with the lockstep batch in `jump_hash_batch`.
    let keys = keys();
    let mut out = vec![0u32; keys.len()];
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("jump_scalar_loop/n=10", |b| {
        b.iter(|| {
            for (o, &k) in out.iter_mut().zip(black_box(&keys)) {
                *o = jump_hash(k, 10);
            }
        });
    });
    g.finish();
    // AnchorHash with half of a 1000-bucket anchor removed (the paper's harder case).
    let mut half = AnchorRing::with_weighted_nodes(names(1000), Some(1000)).unwrap();
    for i in (0..1000).step_by(2) {
        half.remove_node(&format!("10.0.{}.{}:11211", i / 256, i % 256))
            .unwrap();
    }
    batch(c, "anchor/n=500,capacity=1000", &half);
}

fn singles(c: &mut Criterion) {
    let keys = keys();
    let mut i = 0;
    let mut next = || {
        i = (i + 1) % keys.len();
        keys[i]
    };
    c.bench_function("single/jump_hash/n=10", |b| {
        b.iter(|| jump_hash(black_box(next()), 10));
    });
    let maglev = MaglevRing::with_nodes(names(100), DEFAULT_TABLE_SIZE).unwrap();
    c.bench_function("single/maglev/n=100", |b| {
        b.iter(|| maglev.locate(black_box(next())));
    });
    let mut bounded = BoundedLoadRing::with_nodes(names(100), 1.25, 100).unwrap();
    c.bench_function("single/bounded_assign_release/n=100", |b| {
        b.iter(|| {
            let i = bounded.assign(black_box(next())).unwrap();
            let name = bounded.nodes().name(i).to_owned();
            bounded.release(&name).unwrap();
        });
    });
    c.bench_function("single/key_string/maglev/n=100", |b| {
        b.iter(|| maglev.get(black_box(b"user:1234567890:profile")));
    });
}

fn builds(c: &mut Criterion) {
    let mut g = c.benchmark_group("build");
    g.sample_size(10);
    for n in [10, 100, 1000] {
        let nodes = names(n);
        g.bench_function(format!("maglev/M=65537/n={n}"), |b| {
            b.iter_batched(
                || nodes.clone(),
                |nodes| MaglevRing::with_nodes(nodes, DEFAULT_TABLE_SIZE).unwrap(),
                BatchSize::SmallInput,
            );
        });
        g.bench_function(format!("bounded/100pts/n={n}"), |b| {
            b.iter_batched(
                || nodes.clone(),
                |nodes| BoundedLoadRing::with_nodes(nodes, 1.25, 100).unwrap(),
                BatchSize::SmallInput,
            );
        });
    }
    let mut anchor = AnchorRing::with_weighted_nodes(names(1000), None).unwrap();
    g.bench_function("anchor/remove_add/n=1000", |b| {
        b.iter(|| {
            anchor.remove_node("10.0.1.7:11211").unwrap();
            anchor.add_node("10.0.1.7:11211", 1.0).unwrap();
        });
    });
    g.finish();
}

criterion_group!(benches, batches, singles, builds);
criterion_main!(benches);
