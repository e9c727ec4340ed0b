//! A smooth weighted rotation over a fixed set of services.
//!
//! **A stand-in** until FluxGate's `Balance` layer lands: it has no health checks, no latency
//! awareness and no changing endpoint set. The gateway only uses it through [`WeightedRotation`],
//! so replacing it is a change of one type. The order is nginx's smooth weighted round robin:
//! with weights 5, 1, 1 the picks are `a a b a c a a`, spread out rather than in bursts.
//!
//! # Example
//!
//! ```
//! use fluxgate_examples::rotation::SmoothWeighted;
//! use std::num::NonZeroU32;
//!
//! let weights = [5, 1, 1].map(|w| NonZeroU32::new(w).unwrap());
//! let mut picker = SmoothWeighted::new(&weights);
//! let picks: Vec<usize> = (0..7).map(|_| picker.pick()).collect();
//! assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0]);
//! ```

use std::cmp::Reverse;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tower::Service;

/// The selection state of a smooth weighted round robin.
#[derive(Debug, Clone)]
pub struct SmoothWeighted {
    weights: Vec<i64>,
    current: Vec<i64>,
    total: i64,
}

impl SmoothWeighted {
    /// A rotation over `weights.len()` choices.
    #[must_use]
    pub fn new(weights: &[NonZeroU32]) -> Self {
        let weights: Vec<i64> = weights.iter().map(|w| i64::from(w.get())).collect();
        Self {
            current: vec![0; weights.len()],
            total: weights.iter().sum(),
            weights,
        }
    }

    /// The index of the next choice (0 when there are no choices).
    pub fn pick(&mut self) -> usize {
        for (current, weight) in self.current.iter_mut().zip(&self.weights) {
            *current += weight;
        }
        // The first of the largest wins a tie, which keeps the order stable.
        let best = self
            .current
            .iter()
            .enumerate()
            .max_by_key(|&(index, current)| (*current, Reverse(index)))
            .map_or(0, |(index, _)| index);
        if let Some(current) = self.current.get_mut(best) {
            *current -= self.total;
        }
        best
    }
}

/// Why a [`WeightedRotation`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// There were no services to rotate over.
    #[error("a rotation needs at least one upstream")]
    Empty,
}

/// A service that sends each request to the next of its services in smooth weighted order.
///
/// Clones share the rotation, so the order holds across connections. `poll_ready` waits until
/// every service is ready (as tower's `Steer` does), since the choice is made in `call`.
#[derive(Debug, Clone)]
pub struct WeightedRotation<S> {
    services: Vec<S>,
    picker: Arc<Mutex<SmoothWeighted>>,
}

impl<S> WeightedRotation<S> {
    /// A rotation over `services`, each with its weight.
    ///
    /// # Errors
    ///
    /// [`RotationError::Empty`] when `services` is empty.
    pub fn new(services: Vec<(S, NonZeroU32)>) -> Result<Self, RotationError> {
        if services.is_empty() {
            return Err(RotationError::Empty);
        }
        let (services, weights): (Vec<S>, Vec<NonZeroU32>) = services.into_iter().unzip();
        Ok(Self {
            services,
            picker: Arc::new(Mutex::new(SmoothWeighted::new(&weights))),
        })
    }

    /// The services, in the order they were given.
    #[must_use]
    pub fn services(&self) -> &[S] {
        &self.services
    }
}

impl<S, Req> Service<Req> for WeightedRotation<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let mut pending = false;
        for service in &mut self.services {
            match service.poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => pending = true,
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let index = self
            .picker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pick();
        // `new` refuses an empty list and `pick` returns an index below its length.
        let last = self.services.len() - 1;
        self.services[index.min(last)].call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_weights_exactly_over_a_cycle() {
        let weights = [3, 2, 1].map(|w| NonZeroU32::new(w).unwrap());
        let mut picker = SmoothWeighted::new(&weights);
        let mut counts = [0; 3];
        for _ in 0..600 {
            counts[picker.pick()] += 1;
        }
        assert_eq!(counts, [300, 200, 100]);
    }
}
