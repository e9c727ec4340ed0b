//! Benches of fluxgate-core's primitives (being written).
fn main() {}
