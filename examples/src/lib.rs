//! The reusable parts of FluxGate's examples (being written).
