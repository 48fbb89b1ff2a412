//! Repositories of the store contract. Every function takes a [`TenantTx`]
//! and filters on its org in the statement itself.
//!
//! [`TenantTx`]: crate::TenantTx

pub mod access_logs;
pub mod apps;
pub mod categories;
pub mod code;
pub mod experiments;
pub mod feedback;
pub mod gdpr;
pub mod jobs;
pub mod memories;
pub mod memory_analytics;
pub mod orgs;
pub mod outbox;
pub mod users;

use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{ConnectionTrait, DbBackend};

/// The JSON column's `key` holds exactly the string `value`, on either
/// engine (a number or boolean never matches, so both engines agree).
pub(crate) fn json_text_equals(tx: &crate::TenantTx, column: &str, key: &str, value: &str) -> SimpleExpr {
    match tx.conn().get_database_backend() {
        DbBackend::Postgres => Expr::cust_with_values(
            format!("(jsonb_typeof(\"{column}\" -> $1) = 'string' AND (\"{column}\" ->> $2) = $3)"),
            [key.to_owned(), key.to_owned(), value.to_owned()],
        ),
        _ => {
            let path = format!("$.\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""));
            Expr::cust_with_values(
                format!("(json_type(\"{column}\", ?) = 'text' AND json_extract(\"{column}\", ?) = ?)"),
                [path.clone(), path, value.to_owned()],
            )
        }
    }
}
