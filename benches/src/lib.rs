//! Helpers shared by FluxGate's benches.
//!
//! Wall-clock medians on a shared 2-core machine move by tens of percent; instruction counts
//! do not. Each library bench that compares FluxGate with a baseline can therefore also run one
//! of its variants under callgrind: set `BENCH_CALLGRIND=<bench id>` and run the bench binary
//! as `valgrind --tool=callgrind --toggle-collect='fluxgate_benches::measure*' <binary>`; the
//! instructions collected divided by [`CALLGRIND_OPS`] are the variant's cost per request.

/// Operations measured per callgrind run.
pub const CALLGRIND_OPS: usize = 100_000;

/// The variant named by `BENCH_CALLGRIND`, when the bench runs for callgrind.
#[must_use]
pub fn callgrind_variant() -> Option<String> {
    std::env::var("BENCH_CALLGRIND").ok()
}

/// Feeds every input to `op`: the only code callgrind collects (`--toggle-collect`), so that
/// building the inputs is not counted.
///
/// ```
/// let mut sum = 0u64;
/// fluxgate_benches::measure(vec![1u64, 2, 3], |n| sum += n);
/// assert_eq!(sum, 6);
/// ```
#[inline(never)]
pub fn measure<T>(inputs: Vec<T>, mut op: impl FnMut(T)) {
    for input in inputs {
        op(input);
    }
}
