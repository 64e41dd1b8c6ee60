/work/main/benches/macro-cost/target/release/macro-cost: /work/main/benches/macro-cost/src/main.rs
