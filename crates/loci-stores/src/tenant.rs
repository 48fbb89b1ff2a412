//! Tenant-bound transactions: the only way to reach tenant data.

use loci_core::OrgId;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement, TransactionTrait};

use crate::StoreError;

/// A database transaction that carries its tenant.
///
/// Every repository function takes a `&TenantTx`, so a tenant query cannot be
/// written without a tenant context; repositories also filter on
/// [`TenantTx::org`] in every statement. On PostgreSQL the context is
/// additionally set with `set_config('loci.org_id', $1, true)` (the bindable
/// form of `SET LOCAL`), which row-level security reads; being
/// transaction-local it is gone when the transaction ends, so it never leaks to
/// the next user of a pooled connection.
#[derive(Debug)]
pub struct TenantTx {
    txn: DatabaseTransaction,
    org: OrgId,
}

impl TenantTx {
    pub(crate) async fn begin(conn: &DatabaseConnection, org: OrgId, read_only: bool) -> Result<Self, StoreError> {
        let txn = conn.begin().await?;
        if txn.get_database_backend() == DbBackend::Postgres {
            // The tenant and, for reads, the read-only mode in one round trip
            // (`SET TRANSACTION READ ONLY` would be a second one); both are
            // transaction-local. Entering read-only mode is allowed at any
            // point of a transaction.
            let sql = if read_only {
                "SELECT set_config('loci.org_id', $1, true), set_config('transaction_read_only', 'on', true)"
            } else {
                "SELECT set_config('loci.org_id', $1, true)"
            };
            txn.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, [org.as_str().into()])).await?;
        }
        Ok(Self { txn, org })
    }

    /// The tenant every statement of this transaction is bound to.
    pub fn org(&self) -> &OrgId {
        &self.org
    }

    pub(crate) fn conn(&self) -> &DatabaseTransaction {
        &self.txn
    }

    pub(crate) fn org_str(&self) -> String {
        self.org.as_str().to_owned()
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        use tracing::Instrument;
        self.txn.commit().instrument(tracing::info_span!("db.commit")).await?;
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        self.txn.rollback().await?;
        Ok(())
    }

    /// Row count of a tenant table as this transaction sees it, with no
    /// application-level filter: on PostgreSQL this is what RLS lets through.
    /// Test support only: proves the database itself isolates tenants.
    #[cfg(feature = "testing")]
    pub async fn count_visible_rows(&self, table: &str) -> Result<i64, StoreError> {
        if !loci_migration::TENANT_TABLES.contains(&table) {
            return Err(StoreError::Config(format!("{table} is not a tenant table")));
        }
        let row = self
            .txn
            .query_one_raw(Statement::from_string(
                self.txn.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM \"{table}\""),
            ))
            .await?;
        Ok(row.map(|r| r.try_get::<i64>("", "n")).transpose()?.unwrap_or(0))
    }
}
