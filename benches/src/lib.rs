//! Helpers shared by FluxGate's benches (being written).
