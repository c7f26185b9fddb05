//! Long-running tasks whose end is never silently lost.
//!
//! Every task of a [`Supervisor`] is meant to run until the process stops: one that returns,
//! fails or panics has ended unexpectedly. [`Supervisor::exited`] says which did and why; the
//! caller logs it and decides; the operator stops the process (its `run` module
//! says why that rather than restarting the task in place).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;

use tokio::task::{AbortHandle, Id, JoinHandle, JoinSet};

/// How a supervised task ended.
#[derive(Debug)]
pub struct Exit {
    /// The task's name.
    pub task: &'static str,
    /// Why: returned, failed with an error, panicked or was cancelled.
    pub reason: String,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "task {:?} ended unexpectedly: {}",
            self.task, self.reason
        )
    }
}

impl std::error::Error for Exit {}

/// A set of named tasks (see the module docs). Dropping it aborts them.
#[derive(Default)]
pub struct Supervisor {
    tasks: JoinSet<anyhow::Result<()>>,
    names: HashMap<Id, &'static str>,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("tasks", &self.names())
            .finish()
    }
}

impl Supervisor {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns `task` under `name`.
    pub fn spawn<F>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let handle = self.tasks.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Spawns `task`, which returns nothing, under `name`.
    pub fn spawn_unit<F>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn(name, async move {
            task.await;
            Ok(())
        });
    }

    /// Supervises the task of `handle`, spawned elsewhere, under `name` (aborted with the
    /// others).
    pub fn adopt<T: Send + 'static>(&mut self, name: &'static str, handle: JoinHandle<T>) {
        let guard = AbortOnDrop(handle.abort_handle());
        self.spawn(name, async move {
            let _guard = guard;
            match handle.await {
                Ok(_) => Ok(()),
                Err(e) if e.is_panic() => anyhow::bail!("panicked: {}", panic_message(e)),
                Err(_) => anyhow::bail!("cancelled"),
            }
        });
    }

    /// The names of the tasks that run, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.names.values().copied().collect();
        names.sort_unstable();
        names
    }

    /// How many tasks run.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no task runs.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Waits until a task ends and says which and why (never resolves while none runs).
    pub async fn exited(&mut self) -> Exit {
        let Some(joined) = self.tasks.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let (id, reason) = match joined {
            Ok((id, Ok(()))) => (id, "returned".to_owned()),
            Ok((id, Err(e))) => (id, format!("failed: {e:#}")),
            Err(e) if e.is_panic() => (e.id(), format!("panicked: {}", panic_message(e))),
            Err(e) => (e.id(), "cancelled".to_owned()),
        };
        let task = self.names.remove(&id).unwrap_or("unnamed");
        Exit { task, reason }
    }

    /// Aborts every task and waits until they are gone.
    pub async fn shutdown(mut self) {
        self.tasks.shutdown().await;
        self.names.clear();
    }
}

/// Aborts an adopted task when its supervising task goes.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    let payload = e.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_the_task_that_ended_and_why() {
        let mut s = Supervisor::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<&'static str>();
        s.spawn_unit("forever", std::future::pending());
        s.spawn("worker", async move {
            match rx.await {
                Ok("fail") => anyhow::bail!("the store went away"),
                Ok(_) => Ok(()),
                Err(_) => panic!("sender dropped"),
            }
        });
        assert_eq!(s.names(), ["forever", "worker"]);
        tx.send("fail").unwrap();
        let exit = s.exited().await;
        assert_eq!(exit.task, "worker");
        assert_eq!(exit.reason, "failed: the store went away");
        assert_eq!(
            exit.to_string(),
            "task \"worker\" ended unexpectedly: failed: the store went away"
        );
        assert_eq!(s.len(), 1);

        s.spawn_unit("panics", async { panic!("boom") });
        let exit = s.exited().await;
        assert_eq!(
            (exit.task, exit.reason.as_str()),
            ("panics", "panicked: boom")
        );

        s.spawn_unit("returns", async {});
        assert_eq!(s.exited().await.reason, "returned");

        s.adopt("adopted", tokio::spawn(async { panic!("elsewhere") }));
        let exit = s.exited().await;
        assert_eq!(exit.task, "adopted");
        assert_eq!(exit.reason, "failed: panicked: elsewhere");
        s.shutdown().await;
    }
}
