//! `/api/v1/gdpr`: the subject access export (gdpr:read), the erasure
//! (gdpr:delete) and their audit (admin:read). Naming another subject of the
//! org needs admin:write too (every role reads `*:read` scopes, so only the
//! write scope marks an administrator). See `loci_domain::gdpr`.

use actix_web::{HttpResponse, web};
use futures::{SinkExt, StreamExt};
use loci_domain::DomainError;
use loci_domain::gdpr::{AuditView, ErasureReport, ExportSink, Subject};
use loci_security::scopes::{ADMIN_READ, ADMIN_WRITE, GDPR_DELETE, GDPR_READ};
use serde::Deserialize;

use loci_app::Services;
use loci_http::{Authenticated, Problem, ValidJson};

/// Whose data.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Another subject of the caller's org (needs admin:write); default: the caller.
    subject: Option<String>,
}

/// An erasure.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// Why: 10 to 500 characters, kept in the audit log.
    reason: String,
    /// Another subject of the caller's org (needs admin:write); default: the caller.
    #[serde(default)]
    subject: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// 1 to 1000 (default 100).
    limit: Option<u64>,
}

/// Forwards the export's pieces to the response body.
struct ChannelSink(futures::channel::mpsc::Sender<Vec<u8>>);

#[async_trait::async_trait]
impl ExportSink for ChannelSink {
    async fn write(&mut self, bytes: Vec<u8>) -> Result<(), DomainError> {
        self.0.send(bytes).await.map_err(|_| DomainError::Internal("the client went away during an export".into()))
    }
}

#[utoipa::path(post, path = "/api/v1/gdpr/export", tag = "gdpr", params(ExportQuery), responses((status = 200, description = "Everything Loci holds about the subject, streamed as one JSON document: {format_version, org_id, user_id, subject, export_date, relational {users, apps, memories, memory_status_history, memory_access_logs, memory_jobs, feedback_events, experiment_assignments, gdpr_audit_logs, categories}, vector, lexical, graph, episodic, partial, errors}", content_type = "application/json", body = Object), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn export(
    state: web::Data<Services>,
    auth: Authenticated,
    q: web::Query<ExportQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GDPR_READ])?;
    let who = Subject::named(q.into_inner().subject, p)?;
    if who != Subject::Caller {
        auth.require(&[GDPR_READ, ADMIN_WRITE])?;
    }
    let (tx, mut rx) = futures::channel::mpsc::channel::<Vec<u8>>(8);
    let principal = p.clone();
    let services = state.clone();
    let task = actix_web::rt::spawn(async move {
        let mut sink = ChannelSink(tx);
        services.gdpr.export(&principal, &who, &mut sink).await
    });
    // Nothing written yet means the export failed before it began: answer
    // with its problem instead of an empty 200.
    let Some(first) = rx.next().await else {
        return Err(match task.await {
            Ok(Err(e)) => e.into(),
            _ => DomainError::Internal("the export stopped before writing anything".into()).into(),
        });
    };
    let body = futures::stream::once(async move { first })
        .chain(rx)
        .map(|chunk| Ok::<_, actix_web::Error>(web::Bytes::from(chunk)));
    let name = format!("loci-gdpr-export-{}.json", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Content-Disposition", format!("attachment; filename=\"{name}\"")))
        .insert_header(("Cache-Control", "no-store"))
        .streaming(body))
}

#[utoipa::path(post, path = "/api/v1/gdpr/erase", tag = "gdpr", request_body = EraseRequest, responses((status = 200, description = "What each store removed (relational, vector, lexical, graph, episodic, sessions) with its status; `partial` when a store failed: call again until `completed` (a completed call finds nothing left)", body = ErasureReport), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn erase(
    state: web::Data<Services>,
    auth: Authenticated,
    body: ValidJson<EraseRequest>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GDPR_DELETE])?;
    let EraseRequest { reason, subject: named } = body.0;
    let who = Subject::named(named, p)?;
    if who != Subject::Caller {
        auth.require(&[GDPR_DELETE, ADMIN_WRITE])?;
    }
    Ok(HttpResponse::Ok().json(state.gdpr.erase(p, &who, &reason).await?))
}

#[utoipa::path(get, path = "/api/v1/gdpr/audit", tag = "gdpr", params(AuditQuery), responses((status = 200, description = "The org's exports and erasures, newest first", body = Vec<AuditView>), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn audit(
    state: web::Data<Services>,
    auth: Authenticated,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[ADMIN_READ])?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::validation(vec![loci_http::FieldError {
            field: "limit".into(),
            message: "1 to 1000".into(),
        }]));
    }
    Ok(HttpResponse::Ok().json(state.gdpr.audit_log(p, limit).await?))
}
