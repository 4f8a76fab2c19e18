//! Criterion benches for the pure core (no Python): `cargo bench --bench book`.
//!
//! Every group measures the engine next to baselines run on the same messages in the same
//! process: a generic JSON parse (`serde_json::Value`, what any consumer pays just to read the
//! message) and a straightforward `BTreeMap` book (parse + apply). Before timing, the engine's
//! final book is checked against the BTreeMap book level by level, so a fast wrong answer fails
//! the bench. After Criterion, an explicit best-of-N ratio table is printed.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use bybit_core::BookEngine;
use criterion::{criterion_group, BatchSize, Criterion, Throughput};

/// Deterministic xorshift so the stream is identical on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const TICKS_MID: i64 = 600_000; // 60000.0 with a 0.1 tick

fn px(t: i64) -> String {
    format!("{}.{}", t / 10, t % 10)
}

/// A 200-level snapshot then `n` deltas of 1-10 levels near the top, u +1 each, never crossing.
fn bybit_stream(n: usize) -> Vec<String> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::with_capacity(n + 1);
    let lvl = |p: i64, s: u64| format!("[\"{}\",\"{}.{:03}\"]", px(p), s / 1000, s % 1000);
    let bids: Vec<String> = (0..200).map(|i| lvl(TICKS_MID - 1 - i, 1000 + i as u64 * 37)).collect();
    let asks: Vec<String> = (0..200).map(|i| lvl(TICKS_MID + 1 + i, 1000 + i as u64 * 41)).collect();
    out.push(format!(
        r#"{{"topic":"orderbook.200.BTCUSDT","type":"snapshot","ts":1700000000000,"data":{{"s":"BTCUSDT","b":[{}],"a":[{}],"u":1,"seq":1}},"cts":1700000000000}}"#,
        bids.join(","),
        asks.join(",")
    ));
    for k in 0..n {
        let m = 1 + rng.below(10) as usize;
        let (mut b, mut a) = (Vec::new(), Vec::new());
        for _ in 0..m {
            let depth = rng.below(30) as i64;
            // Sizes are absolute; one in eight updates deletes the level.
            let size = if rng.below(8) == 0 { 0 } else { 1 + rng.below(50_000) };
            if rng.below(2) == 0 {
                b.push(lvl(TICKS_MID - 1 - depth, size));
            } else {
                a.push(lvl(TICKS_MID + 1 + depth, size));
            }
        }
        out.push(format!(
            r#"{{"topic":"orderbook.200.BTCUSDT","type":"delta","ts":{},"data":{{"s":"BTCUSDT","b":[{}],"a":[{}],"u":{},"seq":{}}},"cts":{}}}"#,
            1700000000000u64 + k as u64,
            b.join(","),
            a.join(","),
            k + 2,
            k + 2,
            1700000000000u64 + k as u64
        ));
    }
    out
}

/// The baseline a Rust user would write: generic JSON, BTreeMap<ticks, size string>.
#[derive(Default)]
struct BTreeBook {
    bids: BTreeMap<i64, String>,
    asks: BTreeMap<i64, String>,
    u: u64,
}

fn ticks(s: &str) -> i64 {
    let (i, f) = s.split_once('.').unwrap_or((s, "0"));
    i.parse::<i64>().unwrap() * 10 + f.parse::<i64>().unwrap()
}

impl BTreeBook {
    fn apply(&mut self, msg: &str) {
        let v: serde_json::Value = serde_json::from_str(msg).unwrap();
        let d = &v["data"];
        let u = d["u"].as_u64().unwrap();
        if v["type"] == "snapshot" {
            self.bids.clear();
            self.asks.clear();
        } else if u != self.u + 1 {
            return;
        }
        self.u = u;
        for (side, key) in [(&mut self.bids, "b"), (&mut self.asks, "a")] {
            for l in d[key].as_array().unwrap() {
                let (p, s) = (l[0].as_str().unwrap(), l[1].as_str().unwrap());
                if s.bytes().all(|c| c == b'0' || c == b'.') {
                    side.remove(&ticks(p));
                } else {
                    side.insert(ticks(p), s.to_owned());
                }
            }
        }
        while self.bids.len() > 200 {
            let k = *self.bids.keys().next().unwrap();
            self.bids.remove(&k);
        }
        while self.asks.len() > 200 {
            let k = *self.asks.keys().next_back().unwrap();
            self.asks.remove(&k);
        }
    }
}

fn check_against_reference(msgs: &[String]) {
    let mut eng = BookEngine::new("bybit", 0, 100).unwrap();
    let mut reference = BTreeBook::default();
    for m in msgs {
        eng.apply(m.as_bytes()).unwrap();
        reference.apply(m);
    }
    let book = eng.book("BTCUSDT").unwrap();
    let (bids, asks) = book.levels_strings(0);
    let rb: Vec<(String, String)> = reference.bids.iter().rev().map(|(k, v)| (px(*k), v.clone())).collect();
    let ra: Vec<(String, String)> = reference.asks.iter().map(|(k, v)| (px(*k), v.clone())).collect();
    assert_eq!(bids, rb, "native bids differ from the BTreeMap reference");
    assert_eq!(asks, ra, "native asks differ from the BTreeMap reference");
    assert_eq!(book.stats.gaps, 0);
    assert!(!book.is_crossed());
}

fn benches(c: &mut Criterion) {
    let msgs = bybit_stream(20_000);
    check_against_reference(&msgs);
    let snapshot = msgs[0].clone();
    let deltas = &msgs[1..];

    let mut g = c.benchmark_group("bybit_delta_stream");
    g.throughput(Throughput::Elements(deltas.len() as u64));
    g.sample_size(20);
    g.bench_function("native_engine", |b| {
        b.iter_batched_ref(
            || {
                let mut e = BookEngine::new("bybit", 0, 100).unwrap();
                e.apply(snapshot.as_bytes()).unwrap();
                e
            },
            |e| {
                for m in deltas {
                    black_box(e.apply(m.as_bytes()).unwrap());
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("baseline_serde_json_value_parse_only", |b| {
        b.iter(|| {
            for m in deltas {
                black_box(serde_json::from_str::<serde_json::Value>(m).unwrap());
            }
        })
    });
    g.bench_function("baseline_btreemap_book", |b| {
        b.iter_batched_ref(
            || {
                let mut r = BTreeBook::default();
                r.apply(&snapshot);
                r
            },
            |r| {
                for m in deltas {
                    r.apply(m);
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    // The feature vector kept current on every update, next to the same engine without it.
    let mut g = c.benchmark_group("features_kept_current");
    g.throughput(Throughput::Elements(deltas.len() as u64));
    g.sample_size(10);
    for features in [false, true] {
        let name = if features { "engine_with_features" } else { "engine_bare" };
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || {
                    let mut e = BookEngine::new("bybit", 0, 100).unwrap();
                    if features {
                        e.enable_features();
                    }
                    e.apply(snapshot.as_bytes()).unwrap();
                    e
                },
                |e| {
                    for m in deltas {
                        black_box(e.apply(m.as_bytes()).unwrap());
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();

    let mut g = c.benchmark_group("reads");
    let mut e = BookEngine::new("bybit", 0, 100).unwrap();
    for m in &msgs {
        e.apply(m.as_bytes()).unwrap();
    }
    g.bench_function("top_of_book", |b| {
        b.iter(|| {
            let book = e.book(black_box("BTCUSDT")).unwrap();
            black_box((book.bids.best().copied(), book.asks.best().copied()))
        })
    });
    g.bench_function("levels_strings_10", |b| b.iter(|| black_box(e.book("BTCUSDT").unwrap().levels_strings(10))));
    g.finish();

    let mut g = c.benchmark_group("snapshot_load_200");
    g.bench_function("native_engine", |b| {
        b.iter_batched_ref(
            || BookEngine::new("bybit", 0, 100).unwrap(),
            |e| black_box(e.apply(snapshot.as_bytes()).unwrap()),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("baseline_serde_json_value_parse_only", |b| {
        b.iter(|| black_box(serde_json::from_str::<serde_json::Value>(&snapshot).unwrap()))
    });
    g.finish();
}

/// Best-of-5 wall time of `f`, in nanoseconds per message.
fn best_ns_per_msg(n: usize, mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn ratio_table() {
    let msgs = bybit_stream(50_000);
    let deltas = &msgs[1..];
    let native = best_ns_per_msg(deltas.len(), || {
        let mut e = BookEngine::new("bybit", 0, 100).unwrap();
        e.apply(msgs[0].as_bytes()).unwrap();
        for m in deltas {
            black_box(e.apply(m.as_bytes()).unwrap());
        }
    });
    let parse = best_ns_per_msg(deltas.len(), || {
        for m in deltas {
            black_box(serde_json::from_str::<serde_json::Value>(m).unwrap());
        }
    });
    let btree = best_ns_per_msg(deltas.len(), || {
        let mut r = BTreeBook::default();
        r.apply(&msgs[0]);
        for m in deltas {
            r.apply(m);
        }
    });
    println!("\nratio table (same process, best of 5, 50k realistic 1-10 level Bybit deltas):");
    println!("  native engine (parse+validate+apply) : {native:8.1} ns/msg");
    println!("  serde_json::Value parse only         : {parse:8.1} ns/msg  -> native is {:.2}x faster", parse / native);
    println!("  BTreeMap book (parse+apply)          : {btree:8.1} ns/msg  -> native is {:.2}x faster", btree / native);
    let with_features = best_ns_per_msg(deltas.len(), || {
        let mut e = BookEngine::new("bybit", 0, 100).unwrap();
        e.enable_features();
        e.apply(msgs[0].as_bytes()).unwrap();
        for m in deltas {
            black_box(e.apply(m.as_bytes()).unwrap());
        }
    });
    println!("  native engine with the feature vector: {with_features:8.1} ns/msg  -> {:.2}x the bare engine", with_features / native);
}

criterion_group!(book_benches, benches);

fn main() {
    book_benches();
    Criterion::default().configure_from_args().final_summary();
    ratio_table();
}
