//! [`RedisCheck`]: the answer of a [`RedisStore`](super::RedisStore) decision.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;

use crate::store::{StoreError, Verdict};

/// The answer of [`RedisStore::check`](super::RedisStore): ready at once for local and fallback decisions, a Redis
/// call otherwise. Never resolves to an error (failures fall back).
#[must_use = "futures do nothing unless polled"]
pub struct RedisCheck {
    pub(crate) state: State,
}

pub(crate) enum State {
    Ready(Option<Verdict>),
    Remote(BoxFuture<'static, Result<Verdict, StoreError>>),
}

impl RedisCheck {
    pub(crate) fn ready(verdict: Verdict) -> Self {
        Self {
            state: State::Ready(Some(verdict)),
        }
    }
}

impl std::fmt::Debug for RedisCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.state {
            State::Ready(_) => "RedisCheck::Ready",
            State::Remote(_) => "RedisCheck::Remote",
        })
    }
}

impl Future for RedisCheck {
    type Output = Result<Verdict, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Ready(verdict) => Poll::Ready(Ok(verdict.take().unwrap_or_default())),
            State::Remote(future) => future.as_mut().poll(cx),
        }
    }
}
