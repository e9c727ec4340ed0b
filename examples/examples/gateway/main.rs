//! The FluxGate gateway example (being written).
fn main() {}
