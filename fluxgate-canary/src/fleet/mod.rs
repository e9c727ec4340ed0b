#![doc = include_str!("../../docs/fleet.md")]

mod counts;
mod driver;
mod local;
mod overview;
#[cfg(feature = "redis")]
mod redis;
mod state;
mod store;

pub use counts::{Counts, LATENCY_BINS, SideCounts};
pub use local::LocalFleet;
pub use overview::{FleetOverview, PublishedWindow, SideFigures};
#[cfg(feature = "redis")]
pub use redis::{RedisFleet, keys};
pub use state::{FleetState, FleetStatus, request};
pub use store::{
    Fleet, FleetError, FleetFuture, FleetStore, MergedWindow, SyncReply, SyncRequest, WriteResult,
};

pub(crate) use counts::Tally;
pub(crate) use driver::{FleetLink, run};
