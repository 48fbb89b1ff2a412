//! `/api/v1/backup` (backup:read / backup:write).

use actix_multipart::Multipart;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use loci_core::ErrorCode;
use loci_domain::FieldViolation;
use loci_domain::backup::{ImportMode, ImportReport};
use loci_security::scopes::{BACKUP_READ, BACKUP_WRITE};
use serde::Deserialize;

use loci_app::Services;
use loci_http::{Authenticated, Problem};

#[utoipa::path(post, path = "/api/v1/backup/export", tag = "backup", responses((status = 200, description = "A zip with memories.json and memories.jsonl.gz", content_type = "application/zip", body = Vec<u8>), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn export(state: web::Data<Services>, auth: Authenticated) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[BACKUP_READ])?;
    let zip = state.backup.export(p).await?;
    let name = format!("loci-backup-{}.zip", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header(("Content-Disposition", format!("attachment; filename=\"{name}\"")))
        .body(zip))
}

/// The upload form of `/import`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ImportForm {
    /// The backup zip.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// skip (default) or overwrite: what to do with memories the caller already has.
    mode: Option<String>,
}

/// What was uploaded: a zip (multipart form file or `application/zip`) or
/// the backup document itself (`application/json`).
enum Upload {
    Archive(Vec<u8>),
    Document(Vec<u8>),
}

async fn read_limited<S, E>(mut stream: S, limit: usize, too_large: impl Fn() -> Problem) -> Result<Vec<u8>, Problem>
where
    S: futures::Stream<Item = Result<web::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| Problem::new(ErrorCode::MalformedRequest, format!("the body could not be read: {e}")))?;
        if bytes.len() + chunk.len() > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Reads the upload, never more than `limits.max_upload_bytes`.
async fn upload(req: &HttpRequest, payload: web::Payload, limit: usize) -> Result<Upload, Problem> {
    let too_large = || Problem::new(ErrorCode::PayloadTooLarge, format!("the upload exceeds {limit} bytes"));
    let content_type =
        req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let invalid =
            |message: String| Problem::validation(vec![loci_http::FieldError { field: "file".into(), message }]);
        let mut form = Multipart::new(req.headers(), payload);
        let mut archive = None;
        while let Some(field) = form.next().await {
            let field =
                field.map_err(|e| Problem::new(ErrorCode::MalformedRequest, format!("bad multipart body: {e}")))?;
            let name = field.name().unwrap_or_default().to_owned();
            if name != "file" || archive.is_some() {
                return Err(invalid(format!("the form carries one field, `file`, not `{name}`")));
            }
            archive = Some(read_limited(field, limit, too_large).await?);
        }
        archive.map(Upload::Archive).ok_or_else(|| invalid("upload the backup zip as the form's `file`".into()))
    } else if content_type.starts_with("application/zip") {
        Ok(Upload::Archive(read_limited(payload, limit, too_large).await?))
    } else if content_type.starts_with("application/json") {
        Ok(Upload::Document(read_limited(payload, limit, too_large).await?))
    } else {
        Err(Problem::new(
            ErrorCode::UnsupportedMediaType,
            "send multipart/form-data, application/zip or application/json",
        ))
    }
}

#[utoipa::path(post, path = "/api/v1/backup/import", tag = "backup", params(ImportQuery), request_body(description = "A zip made by /export, as a form file or a raw `application/zip` body, or its `memories.json` document as `application/json`", content((ImportForm = "multipart/form-data"), (Vec<u8> = "application/zip"), (loci_domain::backup::BackupDocument = "application/json"))), responses((status = 200, description = "What was imported", body = ImportReport), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn import(
    state: web::Data<Services>,
    auth: Authenticated,
    req: HttpRequest,
    query: web::Query<ImportQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[BACKUP_WRITE])?;
    let mode = match query.mode.as_deref() {
        None => ImportMode::default(),
        Some(name) => ImportMode::from_name(name)
            .ok_or_else(|| Problem::from(vec![FieldViolation::new("mode", "must be skip or overwrite")]))?,
    };
    let report = match upload(&req, payload, state.settings.limits.max_upload_bytes).await? {
        Upload::Archive(archive) => state.backup.import(p, &archive, mode).await?,
        Upload::Document(json) => {
            let doc = serde_json::from_slice(&json).map_err(|e| {
                Problem::from(vec![FieldViolation::new("body", format!("not a Loci backup document: {e}"))])
            })?;
            state.backup.import_document(p, doc, mode).await?
        }
    };
    Ok(HttpResponse::Ok().json(report))
}
