//! Package manifests: the package a repository publishes and those it
//! depends on, which link registered repositories (DEPENDS_ON) so impact
//! analysis crosses their borders.

use serde::{Deserialize, Serialize};

use crate::CodeError;

/// What one manifest says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// `cargo`, `npm`, `python`, `go`, `maven`.
    pub ecosystem: String,
    /// The package it publishes, normalised ([`normalise`]).
    pub package: Option<String>,
    /// The packages it depends on, normalised, sorted, without duplicates.
    pub dependencies: Vec<String>,
}

/// The manifest file names this module reads.
pub const MANIFEST_NAMES: [&str; 6] =
    ["Cargo.toml", "package.json", "pyproject.toml", "requirements.txt", "go.mod", "pom.xml"];

/// Whether `file_name` is a manifest this module reads.
pub fn is_manifest(file_name: &str) -> bool {
    MANIFEST_NAMES.contains(&file_name)
}

/// A package name as compared across ecosystems' spellings: lower case,
/// `-` and `.` as `_` (`serde-json`, `serde_json`; `Flask`, `flask`).
pub fn normalise(name: &str) -> String {
    name.trim().to_lowercase().replace(['-', '.'], "_")
}

/// Reads the manifest `file_name` with `content`; `None` for a file that is
/// not a manifest.
pub fn read_manifest(file_name: &str, content: &str) -> Result<Option<Manifest>, CodeError> {
    let bad = |detail: String| CodeError::Manifest { path: file_name.to_owned(), detail };
    let (ecosystem, package, mut dependencies) = match file_name {
        "Cargo.toml" => {
            let doc: toml::Table = content.parse().map_err(|e: toml::de::Error| bad(e.message().to_owned()))?;
            let package = doc.get("package").and_then(|p| p.get("name")).and_then(|n| n.as_str()).map(normalise);
            let mut deps = Vec::new();
            let tables = [
                doc.get("dependencies"),
                doc.get("dev-dependencies"),
                doc.get("build-dependencies"),
                doc.get("workspace").and_then(|w| w.get("dependencies")),
            ];
            for table in tables.into_iter().flatten().filter_map(|t| t.as_table()) {
                for (key, spec) in table {
                    // `alias = { package = "real-name" }`
                    let real = spec.get("package").and_then(|p| p.as_str()).unwrap_or(key);
                    deps.push(normalise(real));
                }
            }
            ("cargo", package, deps)
        }
        "package.json" => {
            let doc: serde_json::Value = serde_json::from_str(content).map_err(|e| bad(e.to_string()))?;
            let package = doc.get("name").and_then(|n| n.as_str()).map(normalise);
            let mut deps = Vec::new();
            for key in ["dependencies", "devDependencies", "peerDependencies", "optionalDependencies"] {
                if let Some(map) = doc.get(key).and_then(|d| d.as_object()) {
                    deps.extend(map.keys().map(|k| normalise(k)));
                }
            }
            ("npm", package, deps)
        }
        "pyproject.toml" => {
            let doc: toml::Table = content.parse().map_err(|e: toml::de::Error| bad(e.message().to_owned()))?;
            let project = doc.get("project");
            let poetry = doc.get("tool").and_then(|t| t.get("poetry"));
            let package = project.or(poetry).and_then(|p| p.get("name")).and_then(|n| n.as_str()).map(normalise);
            let mut deps: Vec<String> = project
                .and_then(|p| p.get("dependencies"))
                .and_then(|d| d.as_array())
                .map(|a| a.iter().filter_map(|v| v.as_str()).filter_map(requirement_name).collect())
                .unwrap_or_default();
            if let Some(map) = poetry.and_then(|p| p.get("dependencies")).and_then(|d| d.as_table()) {
                deps.extend(map.keys().filter(|k| k.as_str() != "python").map(|k| normalise(k)));
            }
            ("python", package, deps)
        }
        "requirements.txt" => {
            let deps = content
                .lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter(|l| !l.is_empty() && !l.starts_with('-'))
                .filter_map(requirement_name)
                .collect();
            ("python", None, deps)
        }
        "go.mod" => {
            let mut package = None;
            let mut deps = Vec::new();
            let mut in_require = false;
            for line in content.lines().map(|l| l.split("//").next().unwrap_or("").trim()) {
                if let Some(module) = line.strip_prefix("module ") {
                    package = Some(normalise(module.trim()));
                } else if line.starts_with("require (") || line == "require(" {
                    in_require = true;
                } else if in_require && line == ")" {
                    in_require = false;
                } else if let Some(req) = line.strip_prefix("require ") {
                    deps.extend(req.split_whitespace().next().map(normalise));
                } else if in_require && !line.is_empty() {
                    deps.extend(line.split_whitespace().next().map(normalise));
                }
            }
            ("go", package, deps)
        }
        "pom.xml" => {
            let without_parent = remove_blocks(content, "parent");
            let dependency_blocks = blocks(&without_parent, "dependency");
            let deps = dependency_blocks.iter().filter_map(|b| element(b, "artifactId")).map(normalise).collect();
            let own = remove_blocks(&remove_blocks(&without_parent, "dependencies"), "build");
            let own = remove_blocks(&own, "dependencyManagement");
            let package = element(&own, "artifactId").map(normalise);
            ("maven", package, deps)
        }
        _ => return Ok(None),
    };
    dependencies.sort();
    dependencies.dedup();
    Ok(Some(Manifest { ecosystem: ecosystem.to_owned(), package, dependencies }))
}

/// The distribution name of a PEP 508 requirement (`requests>=2; python_version>"3"`).
fn requirement_name(req: &str) -> Option<String> {
    let name: String = req.trim().chars().take_while(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    (!name.is_empty()).then(|| normalise(&name))
}

/// The contents of every `<tag>…</tag>` of `xml`.
fn blocks<'x>(xml: &'x str, tag: &str) -> Vec<&'x str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else {
            break;
        };
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

/// `xml` without its `<tag>…</tag>` blocks.
fn remove_blocks(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        out.push_str(&rest[..start]);
        match rest[start..].find(&close) {
            Some(end) => rest = &rest[start + end + close.len()..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The text of the first `<tag>` of `xml`.
fn element<'x>(xml: &'x str, tag: &str) -> Option<&'x str> {
    blocks(xml, tag).into_iter().next().map(str::trim).filter(|t| !t.is_empty())
}
