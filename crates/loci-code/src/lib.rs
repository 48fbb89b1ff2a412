//! Code intelligence without storage: what a source file defines, imports
//! and calls, read with tree-sitter; how a repository's call sites resolve
//! to its definitions; what its package manifests publish and depend on;
//! the tokens code search indexes.
//!
//! Everything here is a pure function of file contents: the domain
//! (`loci_domain::code`) walks repositories, stores the results and answers
//! queries. Parsing never panics on bad input: tree-sitter recovers from
//! syntax errors and what it could read is kept.

mod extract;
pub mod manifest;
pub mod resolve;
pub mod tokens;

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use extract::parse;
pub use manifest::{Manifest, read_manifest};
pub use resolve::{Resolution, ResolvedCall, resolve_calls};

/// What can go wrong while parsing.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error("the {0} grammar could not be loaded: {1}")]
    Grammar(&'static str, String),
    #[error("the parser gave up on this file")]
    ParseFailed,
    #[error("manifest {path}: {detail}")]
    Manifest { path: String, detail: String },
}

/// A language Loci indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    Rust,
    Python,
    TypeScript,
    Tsx,
    JavaScript,
    Go,
    Java,
}

impl Language {
    pub const ALL: [Language; 7] = [
        Language::Rust,
        Language::Python,
        Language::TypeScript,
        Language::Tsx,
        Language::JavaScript,
        Language::Go,
        Language::Java,
    ];

    /// The language of a file, from its extension.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?;
        Some(match ext {
            "rs" => Self::Rust,
            "py" | "pyi" => Self::Python,
            "ts" | "mts" | "cts" => Self::TypeScript,
            "tsx" => Self::Tsx,
            "js" | "mjs" | "cjs" | "jsx" => Self::JavaScript,
            "go" => Self::Go,
            "java" => Self::Java,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Python => "python",
            Self::TypeScript => "typescript",
            Self::Tsx => "tsx",
            Self::JavaScript => "javascript",
            Self::Go => "go",
            Self::Java => "java",
        }
    }

    pub fn parse_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == name)
    }

    /// The separator of qualified names (`Type::method`, `Class.method`).
    pub fn separator(self) -> &'static str {
        match self {
            Self::Rust => "::",
            _ => ".",
        }
    }

    /// TypeScript and TSX are one language to a user.
    pub fn family(self) -> &'static str {
        match self {
            Self::Tsx => "typescript",
            other => other.as_str(),
        }
    }
}

/// What a definition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymbolKind {
    Function,
    Method,
    Struct,
    Class,
    Enum,
    Interface,
    Trait,
    TypeAlias,
    Module,
    Constant,
    Macro,
}

impl SymbolKind {
    pub const ALL: [SymbolKind; 11] = [
        Self::Function,
        Self::Method,
        Self::Struct,
        Self::Class,
        Self::Enum,
        Self::Interface,
        Self::Trait,
        Self::TypeAlias,
        Self::Module,
        Self::Constant,
        Self::Macro,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Function => "function",
            Self::Method => "method",
            Self::Struct => "struct",
            Self::Class => "class",
            Self::Enum => "enum",
            Self::Interface => "interface",
            Self::Trait => "trait",
            Self::TypeAlias => "type_alias",
            Self::Module => "module",
            Self::Constant => "constant",
            Self::Macro => "macro",
        }
    }

    pub fn parse_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Functions and methods: what calls come from and go to.
    pub fn is_callable(self) -> bool {
        matches!(self, Self::Function | Self::Method)
    }

    /// Types: what methods belong to.
    pub fn is_type(self) -> bool {
        matches!(self, Self::Struct | Self::Class | Self::Enum | Self::Interface | Self::Trait | Self::TypeAlias)
    }
}

/// A definition in a file. Lines are 1-based and inclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Symbol {
    pub name: String,
    /// The name with its enclosing types and modules (`Parser::parse`,
    /// `pkg.Client.send`).
    pub qualified_name: String,
    pub kind: SymbolKind,
    pub start_line: u32,
    pub end_line: u32,
    /// The declaration up to its body, on one line, at most
    /// [`MAX_SIGNATURE`] characters.
    pub signature: String,
    /// The doc comment or docstring, markers removed.
    pub doc: Option<String>,
    /// The enclosing symbol (an index into [`ParsedFile::symbols`]).
    pub parent: Option<usize>,
    /// The enclosing type's name, for methods (also of Rust `impl` blocks,
    /// which define no symbol of their own).
    pub owner_type: Option<String>,
    /// The start of the definition's text, at most [`MAX_EXCERPT`]
    /// characters: what code search reads.
    pub excerpt: String,
}

/// An import: `module` and, when the import names one, the imported `name`
/// and its local `alias`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Import {
    pub module: String,
    pub name: Option<String>,
    pub alias: Option<String>,
    pub line: u32,
}

impl Import {
    /// The name this import binds in the file, if any (the extractor sets
    /// `alias` whenever the bound name is not `name`: Go's package name,
    /// Python's `import a.b` binding `a`).
    pub fn local_name(&self) -> Option<&str> {
        self.alias.as_deref().or(self.name.as_deref())
    }

    /// The last segment of the module path (`fmt`, `os.path` -> `path`).
    pub fn module_tail(&self) -> &str {
        let trimmed = self.module.trim_end_matches(['/', '.', ':']);
        trimmed.rsplit(['/', '.', ':']).next().unwrap_or(trimmed)
    }
}

/// A call site: `qualifier.callee(...)` or `qualifier::callee(...)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSite {
    pub callee: String,
    /// What the callee was reached through, as written (`self`, `Foo`,
    /// `fmt`, `a::b`, `client`); `None` for a bare name.
    pub qualifier: Option<String>,
    /// The qualifier is a path of modules or types (`a::b::f()`), never a
    /// value.
    pub static_path: bool,
    pub line: u32,
    /// The innermost enclosing function or method (an index into
    /// [`ParsedFile::symbols`]); `None` at file level.
    pub caller: Option<usize>,
}

/// What a file defines, imports and calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedFile {
    pub symbols: Vec<Symbol>,
    pub imports: Vec<Import>,
    pub calls: Vec<CallSite>,
    /// Lines of the file.
    pub lines: u32,
    /// The package or namespace the file declares (Go, Java), if any.
    pub package: Option<String>,
    /// Whether tree-sitter had to recover from syntax errors.
    pub has_errors: bool,
}

/// Longest signature kept.
pub const MAX_SIGNATURE: usize = 300;
/// Longest excerpt of a definition kept for search.
pub const MAX_EXCERPT: usize = 2_000;

/// The content hash incremental indexing compares (SHA-256, hex).
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests;
