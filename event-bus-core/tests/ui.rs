//! Compile-time behaviour of `#[derive(Event)]` and `#[subscriber]`: what compiles, and the
//! errors (with their spans) for what must not. Regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p event-bus-core --test ui`, then read them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
