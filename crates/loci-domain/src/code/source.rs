//! Where a repository is read from, and the walk over its files: the path
//! allowlist, symlinks, size limits, git checkouts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{CodeConfig, CodeService, MAX_SOURCE, RepoInput};
use crate::{DomainError, FieldViolation};

/// A checked source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Source {
    /// A canonical directory inside an allowed root.
    Path(PathBuf),
    Git(String),
}

impl Source {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Self::Path(_) => "path",
            Self::Git(_) => "git",
        }
    }

    pub(super) fn text(&self) -> String {
        match self {
            Self::Path(p) => p.to_string_lossy().into_owned(),
            Self::Git(url) => url.clone(),
        }
    }

    /// The last segment of the path or URL, without `.git`.
    pub(super) fn default_name(&self) -> String {
        let text = self.text();
        let last = text.trim_end_matches(['/', '\\']).rsplit(['/', '\\', ':']).next().unwrap_or("").to_owned();
        last.strip_suffix(".git").unwrap_or(&last).to_owned()
    }

    pub(super) fn from_stored(kind: &str, text: &str) -> Self {
        match kind {
            "git" => Self::Git(text.to_owned()),
            _ => Self::Path(PathBuf::from(text)),
        }
    }
}

fn invalid(field: &str, detail: impl Into<String>) -> DomainError {
    DomainError::Validation(vec![FieldViolation::new(field, detail.into())])
}

/// `path` when it is a directory inside one of the allowed roots once
/// every symlink is resolved.
pub(super) fn allowed_path(config: &CodeConfig, raw: &str) -> Result<PathBuf, DomainError> {
    if !config.local_paths {
        return Err(invalid("path", "local paths are accepted in the embedded profile only; give `git_url`"));
    }
    if config.allowed_roots.is_empty() {
        return Err(invalid("path", "no local path is allowed: set code.allowed_roots"));
    }
    let path = Path::new(raw);
    if !path.is_absolute() {
        return Err(invalid("path", "must be an absolute path"));
    }
    let canonical = std::fs::canonicalize(path).map_err(|e| invalid("path", format!("cannot be read: {e}")))?;
    if !canonical.is_dir() {
        return Err(invalid("path", "must be a directory"));
    }
    let inside = config
        .allowed_roots
        .iter()
        .filter_map(|root| std::fs::canonicalize(root).ok())
        .any(|root| canonical.starts_with(&root));
    if !inside {
        return Err(invalid("path", "is outside code.allowed_roots (symlinks resolved)"));
    }
    Ok(canonical)
}

fn allowed_git_url(config: &CodeConfig, url: &str) -> Result<(), DomainError> {
    let scheme = if let Some((scheme, _)) = url.split_once("://") {
        scheme.to_ascii_lowercase()
    } else if url.contains('@') && url.contains(':') {
        // scp-like `git@host:owner/repo.git`
        "ssh".to_owned()
    } else {
        return Err(invalid("git_url", "must be a URL (https://, ssh://, git://, or git@host:path)"));
    };
    if !config.allowed_git_schemes.iter().any(|s| s.eq_ignore_ascii_case(&scheme)) {
        return Err(invalid("git_url", format!("the scheme `{scheme}` is not in code.allowed_git_schemes")));
    }
    if url.starts_with('-') || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid("git_url", "must not start with `-` or contain spaces or control characters"));
    }
    if scheme == "file" {
        // A file URL is a local path: the same allowlist.
        let path = url.split_once("://").map(|(_, p)| p).unwrap_or("");
        allowed_path(config, path)
            .map_err(|_| invalid("git_url", "a file:// URL must point inside code.allowed_roots"))?;
    }
    Ok(())
}

impl CodeService {
    pub(super) fn checked_source(&self, input: &RepoInput) -> Result<Source, DomainError> {
        match (input.path.as_deref(), input.git_url.as_deref()) {
            (Some(_), Some(_)) | (None, None) => Err(invalid("path", "give exactly one of `path` and `git_url`")),
            (Some(path), None) => {
                if path.is_empty() || path.len() > MAX_SOURCE {
                    return Err(invalid("path", format!("1 to {MAX_SOURCE} bytes")));
                }
                allowed_path(&self.config, path).map(Source::Path)
            }
            (None, Some(url)) => {
                if url.is_empty() || url.len() > MAX_SOURCE {
                    return Err(invalid("git_url", format!("1 to {MAX_SOURCE} bytes")));
                }
                allowed_git_url(&self.config, url)?;
                Ok(Source::Git(url.to_owned()))
            }
        }
    }

    /// The directory to read: the checked path again (the allowlist may
    /// have changed since registration), or a fresh checkout of the URL.
    pub(super) async fn materialise(
        &self,
        org: &loci_core::OrgId,
        repo: uuid::Uuid,
        source: &Source,
    ) -> Result<PathBuf, DomainError> {
        match source {
            Source::Path(p) => allowed_path(&self.config, &p.to_string_lossy()),
            Source::Git(url) => {
                allowed_git_url(&self.config, url)?;
                let dir = self.checkout_dir(org, repo);
                checkout(url, &dir, self.config.git_timeout).await?;
                Ok(dir)
            }
        }
    }
}

/// Clones `url` into `dir` (shallow), or fetches and resets an existing
/// clone.
async fn checkout(url: &str, dir: &Path, timeout: Duration) -> Result<(), DomainError> {
    let failed =
        |what: &str, detail: String| DomainError::Conflict(format!("git {what} of the repository failed: {detail}"));
    let run = |args: Vec<String>| async move {
        let mut cmd = tokio::process::Command::new("git");
        cmd.args(&args).env("GIT_TERMINAL_PROMPT", "0").kill_on_drop(true);
        match tokio::time::timeout(timeout, cmd.output()).await {
            Err(_) => Err(format!("timed out after {} s", timeout.as_secs())),
            Ok(Err(e)) => Err(format!("git could not run: {e}")),
            Ok(Ok(out)) if out.status.success() => Ok(()),
            Ok(Ok(out)) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                Err(stderr.lines().last().unwrap_or("").chars().take(300).collect())
            }
        }
    };
    let d = dir.to_string_lossy().into_owned();
    if dir.join(".git").is_dir() {
        run(vec!["-C".into(), d.clone(), "fetch".into(), "--depth".into(), "1".into(), "origin".into()])
            .await
            .map_err(|e| failed("fetch", e))?;
        run(vec!["-C".into(), d, "reset".into(), "--hard".into(), "FETCH_HEAD".into()])
            .await
            .map_err(|e| failed("reset", e))?;
    } else {
        if let Some(parent) = dir.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| DomainError::Internal(format!("checkout directory: {e}")))?;
        }
        let _ = tokio::fs::remove_dir_all(dir).await;
        run(vec!["clone".into(), "--depth".into(), "1".into(), "--".into(), url.to_owned(), d])
            .await
            .map_err(|e| failed("clone", e))?;
    }
    Ok(())
}

/// A file the walk found.
#[derive(Debug, Clone)]
pub(super) struct Found {
    /// Relative, `/`-separated.
    pub rel: String,
    pub abs: PathBuf,
    pub size: u64,
}

/// A file the walk would not read, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(super) struct Refused {
    pub path: String,
    pub reason: String,
}

/// Directories never read: build output, dependencies, VCS data.
const SKIPPED_DIRS: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    "target",
    "node_modules",
    "__pycache__",
    ".venv",
    "venv",
    ".tox",
    "dist",
    "build",
    ".mypy_cache",
    ".pytest_cache",
    ".idea",
    ".vscode",
];

/// The walk: source files and manifests under `root`, in path order.
/// Symlinks are never followed (one pointing outside `root` is refused
/// with a reason); files over `max_bytes` are refused unread; after
/// `max_files` the rest are counted as skipped.
pub(super) fn walk(root: &Path, max_bytes: u64, max_files: u64) -> (Vec<Found>, Vec<Refused>, u64) {
    let mut found = Vec::new();
    let mut refused = Vec::new();
    let mut skipped = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            refused.push(Refused { path: rel(root, &dir), reason: "directory cannot be read".into() });
            continue;
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            if meta.file_type().is_symlink() {
                let escapes = std::fs::canonicalize(&path).map(|t| !t.starts_with(root)).unwrap_or(true);
                if escapes {
                    refused.push(Refused {
                        path: rel(root, &path),
                        reason: "symlink pointing outside the repository; not followed".into(),
                    });
                }
                continue;
            }
            if meta.is_dir() {
                if !SKIPPED_DIRS.contains(&name.as_str()) {
                    stack.push(path);
                }
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            let wanted = loci_code::Language::from_path(&path).is_some() || loci_code::manifest::is_manifest(&name);
            if !wanted {
                continue;
            }
            if meta.len() > max_bytes {
                refused.push(Refused {
                    path: rel(root, &path),
                    reason: format!("{} bytes: larger than code.max_file_bytes ({max_bytes}); not read", meta.len()),
                });
                continue;
            }
            if found.len() as u64 >= max_files {
                skipped += 1;
                continue;
            }
            found.push(Found { rel: rel(root, &path), abs: path, size: meta.len() });
        }
    }
    found.sort_by(|a, b| a.rel.cmp(&b.rel));
    (found, refused, skipped)
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).to_string_lossy().replace('\\', "/")
}
