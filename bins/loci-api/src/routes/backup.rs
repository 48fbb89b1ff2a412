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

/// Reads the uploaded zip: a multipart form's first file part, or a raw
/// `application/zip` body; never more than `limits.max_upload_bytes`.
async fn upload(req: &HttpRequest, payload: web::Payload, limit: usize) -> Result<Vec<u8>, Problem> {
    let too_large = || Problem::new(ErrorCode::PayloadTooLarge, format!("the upload exceeds {limit} bytes"));
    let content_type =
        req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let mut bytes = Vec::new();
    if content_type.starts_with("multipart/form-data") {
        let mut form = Multipart::new(req.headers(), payload);
        let Some(field) = form.next().await else {
            return Err(Problem::validation(vec![loci_http::FieldError {
                field: "file".into(),
                message: "upload the backup zip as a form file".into(),
            }]));
        };
        let mut field =
            field.map_err(|e| Problem::new(ErrorCode::MalformedRequest, format!("bad multipart body: {e}")))?;
        while let Some(chunk) = field.next().await {
            let chunk =
                chunk.map_err(|e| Problem::new(ErrorCode::MalformedRequest, format!("bad multipart body: {e}")))?;
            if bytes.len() + chunk.len() > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
    } else if content_type.starts_with("application/zip") {
        let mut payload = payload;
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| Problem::new(ErrorCode::MalformedRequest, "the body could not be read"))?;
            if bytes.len() + chunk.len() > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
    } else {
        return Err(Problem::new(ErrorCode::UnsupportedMediaType, "send multipart/form-data or application/zip"));
    }
    Ok(bytes)
}

#[utoipa::path(post, path = "/api/v1/backup/import", tag = "backup", params(ImportQuery), request_body(content = ImportForm, content_type = "multipart/form-data", description = "A form whose file is a zip made by /export (a raw `application/zip` body is accepted too)"), responses((status = 200, description = "What was imported", body = ImportReport), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn import(
    state: web::Data<Services>,
    auth: Authenticated,
    req: HttpRequest,
    query: web::Query<ImportQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[BACKUP_WRITE])?;
    let mode = match query.mode.as_deref() {
        None | Some("skip") => ImportMode::Skip,
        Some("overwrite") => ImportMode::Overwrite,
        Some(_) => return Err(vec![FieldViolation::new("mode", "must be skip or overwrite")].into()),
    };
    let archive = upload(&req, payload, state.settings.limits.max_upload_bytes).await?;
    let report = state.backup.import(p, &archive, mode).await?;
    Ok(HttpResponse::Ok().json(report))
}
