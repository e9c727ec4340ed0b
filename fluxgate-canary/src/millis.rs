//! Durations in JSON as floating-point milliseconds, for the serde attributes of [`Decision`]
//! and [`Snapshot`](crate::Snapshot).
//!
//! [`Decision`]: crate::Decision

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Serializes a duration as floating-point milliseconds.
pub(crate) fn millis<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64() * 1e3)
}

/// Deserializes a duration from floating-point milliseconds (negative or non-finite: zero).
pub(crate) fn de_millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let ms = f64::deserialize(deserializer)?;
    Ok(Duration::try_from_secs_f64(ms / 1e3).unwrap_or_default())
}

pub(crate) fn opt_millis<S: Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    duration
        .map(|d| d.as_secs_f64() * 1e3)
        .serialize(serializer)
}
