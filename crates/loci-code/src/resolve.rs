//! Which definition a call site calls, where the source says so: the same
//! file, an imported name, a method of a known type. Nothing is guessed
//! silently: a call matched only because one definition in the repository
//! has that name is marked [`Resolution::UniqueName`], and a call that
//! matches nothing stays [`Resolution::Unresolved`], with the module it was
//! imported from when it came through an import (what links repositories).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::{CallSite, Import, Language, ParsedFile, Symbol, SymbolKind};

/// How a call was tied to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// A function of the same file.
    SameFile,
    /// A name the file imports, found in the module it names.
    Import,
    /// A method of the enclosing type (`self.f()`) or of a named type
    /// (`Type::f()`).
    Method,
    /// The one function or method of the repository with that name: likely,
    /// not certain.
    UniqueName,
    /// No definition in the repository.
    Unresolved,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SameFile => "same_file",
            Self::Import => "import",
            Self::Method => "method",
            Self::UniqueName => "unique_name",
            Self::Unresolved => "unresolved",
        }
    }

    pub fn parse_name(name: &str) -> Option<Self> {
        [Self::SameFile, Self::Import, Self::Method, Self::UniqueName, Self::Unresolved]
            .into_iter()
            .find(|r| r.as_str() == name)
    }
}

/// A call site's target: `(file, symbol)` indexes into the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedCall {
    pub target: Option<(usize, usize)>,
    pub resolution: Resolution,
    /// The module the callee was imported from, when the call went through
    /// an import (`serde_json`, `./util`, `github.com/x/y`).
    pub module: Option<String>,
}

/// A file of the repository being resolved.
#[derive(Debug, Clone, Copy)]
pub struct RepoFile<'a> {
    pub path: &'a str,
    pub language: Language,
    pub parsed: &'a ParsedFile,
}

/// Resolves every call of every file; the result is aligned with each
/// file's `calls`.
pub fn resolve_calls(files: &[RepoFile<'_>]) -> Vec<Vec<ResolvedCall>> {
    let index = SymbolIndex::new(files);
    files
        .iter()
        .enumerate()
        .map(|(f, file)| {
            let imports: HashMap<&str, &Import> =
                file.parsed.imports.iter().filter_map(|i| i.local_name().map(|n| (n, i))).collect();
            file.parsed.calls.iter().map(|call| index.resolve(f, file, call, &imports)).collect()
        })
        .collect()
}

struct SymbolIndex<'a> {
    files: &'a [RepoFile<'a>],
    /// Callables by name, across languages of one family.
    by_name: HashMap<&'a str, Vec<(usize, usize)>>,
    /// Methods by (owner type, name).
    methods: HashMap<(&'a str, &'a str), Vec<(usize, usize)>>,
    /// Names of the repository's types.
    types: HashMap<&'a str, usize>,
}

impl<'a> SymbolIndex<'a> {
    fn new(files: &'a [RepoFile<'a>]) -> Self {
        let mut by_name: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
        let mut methods: HashMap<(&str, &str), Vec<(usize, usize)>> = HashMap::new();
        let mut types: HashMap<&str, usize> = HashMap::new();
        for (f, file) in files.iter().enumerate() {
            for (s, sym) in file.parsed.symbols.iter().enumerate() {
                if sym.kind.is_callable() {
                    by_name.entry(sym.name.as_str()).or_default().push((f, s));
                    if let Some(owner) = &sym.owner_type {
                        methods.entry((owner.as_str(), sym.name.as_str())).or_default().push((f, s));
                    }
                } else if sym.kind.is_type() {
                    *types.entry(sym.name.as_str()).or_default() += 1;
                }
            }
        }
        Self { files, by_name, methods, types }
    }

    fn symbol(&self, (f, s): (usize, usize)) -> Option<&'a Symbol> {
        self.files.get(f).and_then(|file| file.parsed.symbols.get(s))
    }

    fn same_family(&self, a: usize, b: usize) -> bool {
        match (self.files.get(a), self.files.get(b)) {
            (Some(x), Some(y)) => x.language.family() == y.language.family() || both_js(x.language, y.language),
            _ => false,
        }
    }

    /// Of `candidates`, those in `from`'s language family, preferring
    /// `from` itself.
    fn pick(&self, from: usize, candidates: &[(usize, usize)]) -> Option<(usize, usize)> {
        candidates.iter().copied().filter(|&(f, _)| self.same_family(from, f)).min_by_key(|&(f, _)| (f != from, f))
    }

    fn resolve(
        &self,
        f: usize,
        file: &RepoFile<'_>,
        call: &CallSite,
        imports: &HashMap<&str, &Import>,
    ) -> ResolvedCall {
        let found = |target, resolution| ResolvedCall { target: Some(target), resolution, module: None };
        let unresolved =
            |module: Option<String>| ResolvedCall { target: None, resolution: Resolution::Unresolved, module };
        let callee = call.callee.as_str();
        let enclosing_type = call.caller.and_then(|c| file.parsed.symbols.get(c)).and_then(|s| s.owner_type.as_deref());
        match call.qualifier.as_deref() {
            Some("self" | "this" | "Self" | "cls" | "super") => {
                if let Some(owner) = enclosing_type
                    && let Some(t) = self.methods.get(&(owner, callee)).and_then(|c| self.pick(f, c))
                {
                    return found(t, Resolution::Method);
                }
                self.unique(f, callee, true).map_or_else(|| unresolved(None), |t| found(t, Resolution::UniqueName))
            }
            Some(qualifier) => {
                let head = first_segment(qualifier);
                let tail = last_segment(qualifier);
                if let Some(import) = imports.get(head).or_else(|| imports.get(tail)) {
                    let module = imported_module(import);
                    return match self.in_module(f, &module, callee) {
                        Some(t) => found(t, Resolution::Import),
                        None => unresolved(Some(module)),
                    };
                }
                if self.types.contains_key(tail)
                    && let Some(t) = self.methods.get(&(tail, callee)).and_then(|c| self.pick(f, c))
                {
                    return found(t, Resolution::Method);
                }
                // A path into the repository's own modules: `crate::a::f`,
                // `super::f`, `pkg.mod.f` (Python, relative to the root).
                if is_path(qualifier)
                    && let Some(t) = self.in_module(f, qualifier, callee)
                {
                    return found(t, Resolution::Import);
                }
                if call.static_path {
                    // `serde_json::to_string`: a path out of the repository.
                    return unresolved(Some(qualifier.to_owned()));
                }
                self.unique(f, callee, true).map_or_else(|| unresolved(None), |t| found(t, Resolution::UniqueName))
            }
            None => {
                if file.language == Language::Java
                    && let Some(owner) = enclosing_type
                    && let Some(t) = self.methods.get(&(owner, callee)).and_then(|c| self.pick(f, c))
                {
                    return found(t, Resolution::Method);
                }
                let local = file.parsed.symbols.iter().position(|s| {
                    s.name == callee
                        && s.kind.is_callable()
                        && (s.kind == SymbolKind::Function || s.owner_type.is_none())
                });
                if let Some(s) = local {
                    return found((f, s), Resolution::SameFile);
                }
                if let Some(import) = imports.get(callee) {
                    let name = import.name.as_deref().filter(|n| *n != "default").unwrap_or(callee);
                    return match self.in_module(f, &import.module, name) {
                        Some(t) => found(t, Resolution::Import),
                        None => unresolved(Some(import.module.clone())),
                    };
                }
                self.unique(f, callee, false).map_or_else(|| unresolved(None), |t| found(t, Resolution::UniqueName))
            }
        }
    }

    /// The only callable named `name` in `f`'s family (methods only when
    /// `methods`, free functions otherwise).
    fn unique(&self, f: usize, name: &str, methods: bool) -> Option<(usize, usize)> {
        let candidates: Vec<(usize, usize)> = self
            .by_name
            .get(name)?
            .iter()
            .copied()
            .filter(|&(g, _)| self.same_family(f, g))
            .filter(|&t| self.symbol(t).is_some_and(|s| (s.kind == SymbolKind::Method) == methods))
            .collect();
        match candidates.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// A callable named `name` in a file the module path designates (the
    /// best match of the path's trailing segments).
    fn in_module(&self, f: usize, module: &str, name: &str) -> Option<(usize, usize)> {
        let wanted = module_segments(module);
        let candidates = self.by_name.get(name)?;
        candidates
            .iter()
            .copied()
            .filter(|&(g, _)| self.same_family(f, g))
            .filter_map(|(g, s)| {
                let score = self.files.get(g).map(|file| path_match(file.path, &wanted)).unwrap_or(0);
                (score > 0 || (wanted.is_empty() && g == f)).then_some(((g, s), score))
            })
            .max_by_key(|&((g, _), score)| (score, g == f))
            .map(|(t, _)| t)
    }
}

/// Whether an import of `module` designates the file at `path` (its
/// trailing segments match the file's stem or directory).
pub fn module_designates(module: &str, path: &str) -> bool {
    path_match(path, &module_segments(module)) > 0
}

fn both_js(a: Language, b: Language) -> bool {
    let js = |l: Language| matches!(l, Language::JavaScript | Language::TypeScript | Language::Tsx);
    js(a) && js(b)
}

/// The module an import designates, with the imported name when that is a
/// module itself (`from pkg import mod` then `mod.f()`).
fn imported_module(import: &Import) -> String {
    match import.name.as_deref() {
        Some(name) if name != "default" && !import.module.is_empty() => {
            let sep = if import.module.contains("::") {
                "::"
            } else if import.module.contains('/') {
                "/"
            } else {
                "."
            };
            format!("{}{sep}{name}", import.module)
        }
        Some(name) if name != "default" => name.to_owned(),
        _ => import.module.clone(),
    }
}

fn is_path(qualifier: &str) -> bool {
    qualifier.contains("::")
        || (qualifier.contains('.') && qualifier.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '_'))
}

fn first_segment(q: &str) -> &str {
    q.split(['.', ':']).find(|s| !s.is_empty()).unwrap_or(q)
}

fn last_segment(q: &str) -> &str {
    q.rsplit(['.', ':']).find(|s| !s.is_empty()).unwrap_or(q)
}

/// A module path's meaningful segments: `crate::a::b` -> `a, b`;
/// `../util/x.js` -> `util, x`; `github.com/o/r/pkg` -> `...pkg`.
fn module_segments(module: &str) -> Vec<&str> {
    module
        .split(['/', '.', ':'])
        .filter(|s| !s.is_empty() && !matches!(*s, "crate" | "self" | "super" | "@" | "js" | "ts" | "py"))
        .collect()
}

/// How many trailing segments of `wanted` the file's path ends with (its
/// stem, or its directory: a Go package, a Rust `mod.rs`, a Python
/// `__init__.py`, an `index.ts`).
fn path_match(path: &str, wanted: &[&str]) -> usize {
    let without_ext = path.rsplit_once('.').map_or(path, |(p, _)| p);
    let mut segments: Vec<&str> = without_ext.split('/').filter(|s| !s.is_empty()).collect();
    if segments.last().is_some_and(|s| matches!(*s, "mod" | "__init__" | "index" | "lib" | "main")) {
        segments.pop();
    }
    let as_dir: Vec<&str> = segments.iter().take(segments.len().saturating_sub(1)).copied().collect();
    suffix_overlap(&segments, wanted).max(suffix_overlap(&as_dir, wanted))
}

/// The longest `k` such that the last `k` segments of `path` equal some
/// `k` consecutive segments of `wanted` ending at its end, or ending one
/// before it (`module::Type` where the file defines `Type`).
fn suffix_overlap(path: &[&str], wanted: &[&str]) -> usize {
    let ends = [wanted.len(), wanted.len().saturating_sub(1)];
    ends.into_iter()
        .map(|end| {
            let w = &wanted[..end];
            let mut k = 0;
            while k < w.len() && k < path.len() && path[path.len() - 1 - k] == w[w.len() - 1 - k] {
                k += 1;
            }
            k
        })
        .max()
        .unwrap_or(0)
}
