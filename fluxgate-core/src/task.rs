//! The one lifecycle of FluxGate's background tasks: [`TaskHandle`].
//!
//! Every `spawn` in FluxGate (health checks, policy followers, the canary judge, policy sources,
//! Redis sync) returns a handle, and **dropping the handle stops the task**. Keep the handle as
//! long as the work should go on (next to the service it serves); drop it, or call
//! [`TaskHandle::abort`], to stop it. A task that should outlive its handle is
//! [`detach`](TaskHandle::detach)ed explicitly. The handles are `#[must_use]`, so a handle
//! dropped by mistake (`judge.spawn();`) is a compiler warning rather than work that silently
//! never runs.
//!
//! Tasks also end on their own when what they serve is gone (a health checker whose balancer
//! was dropped, a judge whose router was dropped), so a detached task does not leak.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::task::{JoinError, JoinHandle};

/// A spawned background task that stops when this handle is dropped; see the
/// [module docs](self).
///
/// ```
/// use fluxgate_core::task::TaskHandle;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (tx, rx) = tokio::sync::oneshot::channel::<()>();
/// let task = TaskHandle::spawn(async move {
///     let _keep = tx;
///     std::future::pending::<()>().await;
/// });
/// assert!(!task.is_finished());
/// drop(task); // stops the task: its sender is dropped with it
/// assert!(rx.await.is_err());
/// # }
/// ```
#[derive(Debug)]
#[must_use = "dropping a TaskHandle stops its task; keep it, or call `detach`"]
pub struct TaskHandle {
    task: Option<JoinHandle<()>>,
}

impl TaskHandle {
    /// Spawns `future` on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as [`tokio::spawn`] does.
    pub fn spawn<F>(future: F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        Self::from_join_handle(tokio::spawn(future))
    }

    /// Takes charge of a task already spawned: dropping the handle aborts it.
    pub fn from_join_handle(task: JoinHandle<()>) -> Self {
        Self { task: Some(task) }
    }

    /// Stops the task at its next await point (as dropping the handle does).
    pub fn abort(&self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }

    /// Whether the task has ended (on its own, or aborted).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Lets the task run on its own until it ends: dropping the handle no longer stops it.
    ///
    /// ```
    /// use fluxgate_core::task::TaskHandle;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (tx, rx) = tokio::sync::oneshot::channel();
    /// TaskHandle::spawn(async move { tx.send(7).unwrap() }).detach();
    /// assert_eq!(rx.await, Ok(7));
    /// # }
    /// ```
    pub fn detach(mut self) {
        self.task = None;
    }

    /// Waits for the task to end.
    ///
    /// # Errors
    ///
    /// The task panicked, or was aborted.
    ///
    /// ```
    /// use fluxgate_core::task::TaskHandle;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let task = TaskHandle::spawn(async {});
    /// assert!(task.join().await.is_ok());
    /// # }
    /// ```
    pub async fn join(self) -> Result<(), JoinError> {
        self.await
    }
}

/// Awaiting the handle waits for the task to end, as [`join`](TaskHandle::join) does (and as
/// awaiting a tokio `JoinHandle` does).
///
/// ```
/// use fluxgate_core::task::TaskHandle;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// assert!(TaskHandle::spawn(async {}).await.is_ok());
/// # }
/// ```
impl Future for TaskHandle {
    type Output = Result<(), JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.task.as_mut() {
            Some(task) => Pin::new(task).poll(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TaskHandle;

    #[tokio::test]
    async fn abort_stops_and_join_reports_it() {
        let task = TaskHandle::spawn(std::future::pending());
        task.abort();
        let ended = task.join().await;
        assert!(ended.is_err_and(|error| error.is_cancelled()));
    }

    #[tokio::test]
    async fn dropping_the_handle_frees_what_the_task_held() {
        let held = std::sync::Arc::new(());
        let mine = std::sync::Arc::clone(&held);
        let task = TaskHandle::spawn(async move {
            let _mine = mine;
            std::future::pending::<()>().await;
        });
        tokio::task::yield_now().await;
        assert!(!task.is_finished());
        assert_eq!(std::sync::Arc::strong_count(&held), 2);
        drop(task);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(std::sync::Arc::strong_count(&held), 1);
    }
}
