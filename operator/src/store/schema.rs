//! Versioned schema, applied on connect.
//!
//! Migrations are embedded SQL scripts (`operator/migrations/NNNN_*.sql`) that run unchanged on
//! both backends. `switchyard_schema` records the versions applied; [`apply`] runs the missing
//! ones in one transaction, under a lock (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a transaction
//! advisory lock), so operators connecting at the same time apply each migration once.
//! Migrations are append-only: never edit one that has shipped, add the next.

use super::StoreError;
use super::sql::{Db, Dialect, Sql};

/// One schema step.
struct Migration {
    version: i64,
    description: &'static str,
    script: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "interceptions and rollups",
        script: include_str!("../../migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        description: "has_alerts flag for the facade",
        script: include_str!("../../migrations/0002_facade.sql"),
    },
];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 2;

/// Advisory lock key for migrations on PostgreSQL (any constant; "swyd" in ASCII).
const PG_MIGRATION_LOCK: i64 = 0x7377_7964;

#[derive(sqlx::FromRow)]
struct VersionRow {
    version: Option<i64>,
}

/// Brings the schema up to [`SCHEMA_VERSION`]; a no-op when it is already there.
pub(crate) async fn apply(db: &Db) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    if db.dialect() == Dialect::Postgres {
        let mut lock = Sql::new("SELECT pg_advisory_xact_lock(");
        lock.bind(PG_MIGRATION_LOCK).push(")");
        tx.execute(lock).await?;
    }
    tx.script(
        "CREATE TABLE IF NOT EXISTS switchyard_schema (\
         version BIGINT NOT NULL PRIMARY KEY, \
         description TEXT NOT NULL, \
         applied_at BIGINT NOT NULL)",
    )
    .await?;
    let current = tx
        .fetch_all::<VersionRow>(Sql::new(
            "SELECT MAX(version) AS version FROM switchyard_schema",
        ))
        .await?
        .into_iter()
        .next()
        .and_then(|r| r.version)
        .unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.script(m.script).await?;
        let mut record =
            Sql::new("INSERT INTO switchyard_schema (version, description, applied_at) VALUES (");
        record
            .bind(m.version)
            .push(", ")
            .bind(m.description)
            .push(", ")
            .bind(jiff::Timestamp::now().as_microsecond())
            .push(")");
        tx.execute(record).await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_consecutively_up_to_the_schema_version() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.description);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(SCHEMA_VERSION));
    }
}
