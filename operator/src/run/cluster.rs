//! Cluster mode: watches, leader election, the compile loop and the status pipeline, each a
//! supervised task.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use switchyard_crds::compile::Compiled;
use switchyard_runtime::supervise::Supervisor;
use tokio::sync::{mpsc, watch};

use super::status_loop::{Inputs, status_loop};
use super::{Metrics, circuit_view, probing, usage};
use crate::channel::SnapshotHub;
use crate::circuits::CircuitBoard;
use crate::config::Config;
use crate::controller::{self, Stores};
use crate::probes::Prober;
use crate::status_writer::StatusWriter;
use crate::store::Store;

/// The watch caches, their tasks and the change signal (see [`controller::start_watches`]).
pub(super) type Watches = (Stores, Vec<tokio::task::JoinHandle<()>>, mpsc::Receiver<()>);

/// Starts the cluster mode's tasks in `tasks`:
///
/// - `watch` (one per watched kind) and `compile`: every replica watches, compiles and serves
///   snapshots;
/// - `leader election`: the lease; only its holder writes;
/// - `probes`, `usage`, `circuit view`: each computes one input of status on its own clock
///   and hands it over through a `watch` channel, so a slow probe or a slow store query never
///   holds up the others;
/// - `status writer`: the one task that writes status and Events, on the leader only, after
///   every compile, every change of an input and every aggregation tick.
#[allow(clippy::too_many_arguments)]
pub(super) async fn start(
    tasks: &mut Supervisor,
    config: &Config,
    client: kube::Client,
    (stores, watch_tasks, changed): Watches,
    hub: SnapshotHub,
    (store, board): (Store, CircuitBoard),
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    for t in watch_tasks {
        tasks.adopt("watch", t);
    }
    let lease = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &config.lease_name)
        .with_namespace(&config.pod_namespace)
        .build()
        .await
        .context("creating the lease manager")?;
    let (leader, lease_task) = lease.watch().await;
    tasks.spawn("leader election", async move {
        let r = lease_task.await;
        anyhow::bail!("the lease manager stopped: {r:?}")
    });

    let (latest_tx, latest) = watch::channel::<Option<Arc<Compiled>>>(None);
    let compile_metrics = metrics.clone();
    tasks.spawn_unit(
        "compile",
        controller::compile_loop(
            stores.clone(),
            changed,
            config.debounce(),
            latest_tx,
            move |c| {
                compile_metrics.compiled(c, Duration::ZERO);
                if hub.publish(c.snapshot.clone()) {
                    compile_metrics.published(&c.snapshot.version);
                    tracing::info!(version = %c.snapshot.version, objects = c.diagnostics.len(), "snapshot published");
                    c.log_issues();
                }
                ready.store(true, Ordering::Release);
            },
        ),
    );

    let every = Duration::from_millis(config.aggregate_interval_ms.max(500));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let (probes_tx, probes) = watch::channel(Default::default());
    tasks.spawn_unit(
        "probes",
        probing::probe_loop(
            stores.clone(),
            (latest.clone(), leader.clone()),
            Prober::new(http),
            probing::Schedule {
                every,
                discovery_s: config.discovery_interval_s,
            },
            probes_tx,
        ),
    );
    let (usage_tx, usage) = watch::channel(None);
    tasks.spawn_unit(
        "usage",
        usage::usage_loop(
            store,
            (latest.clone(), leader.clone()),
            every,
            metrics.clone(),
            usage_tx,
        ),
    );
    let (circuits_tx, circuits) = watch::channel(None);
    tasks.spawn_unit(
        "circuit view",
        circuit_view::circuit_view_loop(board, every, circuits_tx),
    );

    let writer = StatusWriter::new(client.clone());
    let recorder = kube::runtime::events::Recorder::new(
        client,
        kube::runtime::events::Reporter {
            controller: crate::status_writer::FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    tasks.spawn_unit(
        "status writer",
        status_loop(
            stores,
            Inputs {
                latest,
                leader,
                usage,
                probes,
                circuits,
            },
            (writer, recorder),
            every,
            metrics,
        ),
    );
    Ok(())
}
