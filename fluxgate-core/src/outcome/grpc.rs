//! gRPC status codes and how each one counts for the upstream's health.

use std::fmt;

use super::Outcome;

/// A gRPC status code, as carried by the `grpc-status` header or trailer.
///
/// Parse one with [`GrpcCode::from_header_value`]; a value that is not a known code becomes
/// [`GrpcCode::Unknown`], as the gRPC spec asks clients to do.
///
/// ```
/// use fluxgate_core::outcome::{GrpcCode, Outcome};
///
/// assert_eq!(GrpcCode::from_header_value(b"14"), GrpcCode::Unavailable);
/// assert_eq!(GrpcCode::from_header_value(b"banana"), GrpcCode::Unknown);
/// assert_eq!(GrpcCode::NotFound.outcome(), Outcome::Success);
/// assert_eq!(GrpcCode::Internal.as_i32(), 13);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrpcCode {
    /// 0: not an error.
    Ok,
    /// 1: cancelled, usually by the caller.
    Cancelled,
    /// 2: unknown error (also any unparsable or out-of-range code).
    Unknown,
    /// 3: the client sent an invalid argument.
    InvalidArgument,
    /// 4: the deadline expired before the operation completed.
    DeadlineExceeded,
    /// 5: an entity was not found.
    NotFound,
    /// 6: the entity already exists.
    AlreadyExists,
    /// 7: the caller may not do this.
    PermissionDenied,
    /// 8: a resource (quota, memory) is exhausted.
    ResourceExhausted,
    /// 9: the system is not in the state the operation needs.
    FailedPrecondition,
    /// 10: aborted, typically by a concurrency conflict.
    Aborted,
    /// 11: out of the valid range.
    OutOfRange,
    /// 12: not implemented or not supported.
    Unimplemented,
    /// 13: an internal error.
    Internal,
    /// 14: the service is currently unavailable.
    Unavailable,
    /// 15: unrecoverable data loss.
    DataLoss,
    /// 16: no valid authentication credentials.
    Unauthenticated,
}

const CODES: [GrpcCode; 17] = [
    GrpcCode::Ok,
    GrpcCode::Cancelled,
    GrpcCode::Unknown,
    GrpcCode::InvalidArgument,
    GrpcCode::DeadlineExceeded,
    GrpcCode::NotFound,
    GrpcCode::AlreadyExists,
    GrpcCode::PermissionDenied,
    GrpcCode::ResourceExhausted,
    GrpcCode::FailedPrecondition,
    GrpcCode::Aborted,
    GrpcCode::OutOfRange,
    GrpcCode::Unimplemented,
    GrpcCode::Internal,
    GrpcCode::Unavailable,
    GrpcCode::DataLoss,
    GrpcCode::Unauthenticated,
];

impl GrpcCode {
    /// The code with this number, or [`GrpcCode::Unknown`] for numbers outside 0..=16.
    ///
    /// ```
    /// use fluxgate_core::outcome::GrpcCode;
    /// assert_eq!(GrpcCode::from_i32(8), GrpcCode::ResourceExhausted);
    /// assert_eq!(GrpcCode::from_i32(99), GrpcCode::Unknown);
    /// ```
    #[must_use]
    pub fn from_i32(code: i32) -> Self {
        usize::try_from(code)
            .ok()
            .and_then(|i| CODES.get(i).copied())
            .unwrap_or(Self::Unknown)
    }

    /// Parses a `grpc-status` value: ASCII decimal digits, surrounding whitespace allowed.
    /// Anything else (empty, signs, other text, numbers above 16) is [`GrpcCode::Unknown`].
    ///
    /// ```
    /// use fluxgate_core::outcome::GrpcCode;
    /// assert_eq!(GrpcCode::from_header_value(b" 0 "), GrpcCode::Ok);
    /// assert_eq!(GrpcCode::from_header_value(b""), GrpcCode::Unknown);
    /// ```
    #[must_use]
    pub fn from_header_value(value: &[u8]) -> Self {
        let digits = value.trim_ascii();
        if digits.is_empty() || digits.len() > 3 || !digits.iter().all(u8::is_ascii_digit) {
            return Self::Unknown;
        }
        let number = digits
            .iter()
            .fold(0i32, |n, d| n * 10 + i32::from(d - b'0'));
        Self::from_i32(number)
    }

    /// The code's number.
    ///
    /// ```
    /// use fluxgate_core::outcome::GrpcCode;
    /// assert_eq!(GrpcCode::Unauthenticated.as_i32(), 16);
    /// ```
    #[must_use]
    pub fn as_i32(self) -> i32 {
        CODES
            .iter()
            .position(|c| *c == self)
            .map_or(2, |i| i as i32)
    }

    /// How the code counts for the health of the upstream that returned it.
    ///
    /// | codes | outcome | why |
    /// | --- | --- | --- |
    /// | `OK` | success | |
    /// | `UNAVAILABLE`, `RESOURCE_EXHAUSTED` | overload | the upstream sheds load |
    /// | `INTERNAL`, `UNKNOWN`, `DATA_LOSS`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED` | failure | the upstream is broken or too slow |
    /// | `CANCELLED`, `INVALID_ARGUMENT`, `NOT_FOUND`, `ALREADY_EXISTS`, `PERMISSION_DENIED`, `FAILED_PRECONDITION`, `ABORTED`, `OUT_OF_RANGE`, `UNAUTHENTICATED` | success | the caller's doing: the upstream answered correctly |
    ///
    /// ```
    /// use fluxgate_core::outcome::{GrpcCode, Outcome};
    /// assert_eq!(GrpcCode::ResourceExhausted.outcome(), Outcome::Overload);
    /// assert_eq!(GrpcCode::DeadlineExceeded.outcome(), Outcome::Failure);
    /// ```
    #[must_use]
    pub fn outcome(self) -> Outcome {
        match self {
            Self::Unavailable | Self::ResourceExhausted => Outcome::Overload,
            Self::Internal
            | Self::Unknown
            | Self::DataLoss
            | Self::DeadlineExceeded
            | Self::Unimplemented => Outcome::Failure,
            Self::Ok
            | Self::Cancelled
            | Self::InvalidArgument
            | Self::NotFound
            | Self::AlreadyExists
            | Self::PermissionDenied
            | Self::FailedPrecondition
            | Self::Aborted
            | Self::OutOfRange
            | Self::Unauthenticated => Outcome::Success,
        }
    }
}

impl fmt::Display for GrpcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?} ({})", self.as_i32())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn numbers_round_trip() {
        for (i, code) in CODES.iter().enumerate() {
            assert_eq!(code.as_i32(), i as i32);
            assert_eq!(GrpcCode::from_i32(i as i32), *code);
            assert_eq!(GrpcCode::from_header_value(i.to_string().as_bytes()), *code);
        }
    }

    #[test]
    fn invalid_values_are_unknown() {
        for bad in [&b"-1"[..], b"17", b"+3", b"0x1", b"1 4", b"\xff", b"0000"] {
            assert_eq!(
                GrpcCode::from_header_value(bad),
                GrpcCode::Unknown,
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics(value in prop::collection::vec(any::<u8>(), 0..8)) {
            let code = GrpcCode::from_header_value(&value);
            prop_assert_eq!(GrpcCode::from_i32(code.as_i32()), code);
        }
    }
}
