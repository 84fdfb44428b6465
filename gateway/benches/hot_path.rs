//! Criterion benches of the gateway's per-request pieces outside
//! translation: admission against a shard's lease (no lock, no channel) and
//! the routing plan of a request (weighted pick and fallback order).
//!
//! `cargo bench -p gateway --bench hot_path`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use gateway::limits::Leases;
use gateway::routing::{Admission, Attempts, Next, Plan};
use store::quota::{CounterId, Measure};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn admission(c: &mut Criterion) {
    let leases = Leases::default();
    let id = CounterId { key: 42, measure: Measure::Requests };
    // Other keys in the table, as on a busy shard.
    for key in 0..1000 {
        leases.granted(CounterId { key, measure: Measure::Requests }, 7, u64::MAX / 2);
    }
    leases.granted(id.clone(), 7, u64::MAX / 2);
    c.bench_function("admission/within_lease", |b| b.iter(|| black_box(leases.take(black_box(&id), 7, 1))));
}

fn routing(c: &mut Criterion) {
    let text = r#"
[providers.a]
kind = "mock"
models = ["m"]
weight = 3
[providers.b]
kind = "mock"
models = ["m"]
[providers.c]
kind = "mock"
models = ["other"]
[fallbacks]
m = ["other"]
"#;
    let config = gateway::config::parse(text, |_| None).unwrap();
    c.bench_function("routing/plan_and_first_attempt", |b| {
        b.iter(|| {
            let plan = Plan::new(&config, black_box("m"), |n| fastrand::u64(0..n));
            let now = Instant::now();
            let mut attempts = Attempts::new(plan, now, &config.routing);
            let next = attempts.next(&config, |_| Admission::Yes, now, &mut |n| fastrand::u64(0..n));
            black_box(matches!(next, Next::Go { .. }))
        })
    });
}

criterion_group!(benches, admission, routing);
criterion_main!(benches);
