use std::path::PathBuf;

/// Errors of verification and of backup archives.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The archive cannot be read as one: not a zip file, a damaged entry
    /// (its CRC does not match), a missing or unreadable manifest.
    #[error("{path}: the archive is damaged: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    /// The archive was written by a format this build does not read.
    #[error("{path}: unsupported backup format `{format}` (this build reads {expected})")]
    Format { path: PathBuf, format: String, expected: &'static str },
    /// A table the caller asked for is not in the archive.
    #[error("the archive holds no table `{0}`")]
    NoSuchTable(String),
    /// A row could not be turned into JSON or back.
    #[error("table {table}, row {row}: {detail}")]
    Row { table: String, row: u64, detail: String },
    /// The callback that consumed rows failed; its message is kept.
    #[error("{0}")]
    Sink(String),
}

impl VerifierError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
