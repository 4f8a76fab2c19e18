//! Every codec on arbitrary bytes: no panic, and a malformed message never changes a book.
#![no_main]

use bybit_core::BookEngine;
use libfuzzer_sys::fuzz_target;

const SEEDS: &[(&str, &[u8])] = &[
    ("bybit", br#"{"topic":"orderbook.50.X","type":"snapshot","ts":1,"data":{"s":"X","b":[["100.5","1"]],"a":[["101","2"]],"u":10}}"#),
    ("okx", br#"{"arg":{"channel":"books","instId":"X"},"action":"snapshot","data":[{"asks":[["3366.8","9","0","1"]],"bids":[["3366.1","7","0","1"]],"ts":"5"}]}"#),
    ("kraken", br#"[1,{"as":[["5.0","1.0","1.0"]],"bs":[["4.0","1.0","1.0"]]},"book-10","X"]"#),
];

fn levels(e: &BookEngine) -> Vec<(String, Vec<(String, String)>, Vec<(String, String)>)> {
    e.books().iter().map(|b| { let (x, y) = b.levels_strings(0); (b.symbol.clone(), x, y) }).collect()
}

fuzz_target!(|data: &[u8]| {
    for ex in ["bybit", "binance", "okx", "kraken"] {
        let mut e = BookEngine::new(ex, 0, 100).unwrap();
        for (name, seed) in SEEDS {
            if *name == ex {
                e.apply(seed).unwrap();
            }
        }
        if ex == "binance" {
            e.apply_snapshot("BTCUSDT", br#"{"lastUpdateId":100,"bids":[["10.0","1"]],"asks":[["11.0","1"]]}"#).unwrap();
        }
        let before = levels(&e);
        if e.apply(data).is_err() {
            assert_eq!(levels(&e), before, "{ex}: an error changed the books");
        }
        let _ = e.apply_snapshot("BTCUSDT", data);
        let _ = e.apply_lines(data, Some("BTCUSDT"), 3);
    }
});
