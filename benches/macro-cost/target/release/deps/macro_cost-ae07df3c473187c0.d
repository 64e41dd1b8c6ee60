/work/main/benches/macro-cost/target/release/deps/macro_cost-ae07df3c473187c0.d: src/main.rs

/work/main/benches/macro-cost/target/release/deps/macro_cost-ae07df3c473187c0: src/main.rs

src/main.rs:

# env-dep:CARGO_MANIFEST_DIR=/work/main/benches/macro-cost
