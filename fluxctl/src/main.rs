//! `fluxctl`: the command line for FluxGate policies (being written).
fn main() {}
