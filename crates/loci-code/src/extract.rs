//! One walk over a file's syntax tree collecting definitions, imports and
//! call sites. The walk is iterative (a deeply nested file cannot overflow
//! the stack) and keeps a stack of enclosing scopes: the symbol a method
//! belongs to, the function a call is made from.

use tree_sitter::{Node, Parser};

use crate::{CallSite, CodeError, Import, Language, MAX_EXCERPT, MAX_SIGNATURE, ParsedFile, Symbol, SymbolKind};

/// Longest doc comment kept, in characters.
const MAX_DOC: usize = 1_000;
/// Longest qualifier kept, in characters.
const MAX_QUALIFIER: usize = 80;

fn grammar(language: Language) -> tree_sitter::Language {
    match language {
        Language::Rust => tree_sitter_rust::LANGUAGE.into(),
        Language::Python => tree_sitter_python::LANGUAGE.into(),
        Language::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
        Language::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
        Language::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
        Language::Go => tree_sitter_go::LANGUAGE.into(),
        Language::Java => tree_sitter_java::LANGUAGE.into(),
    }
}

/// Reads `source` as `language`: its definitions, imports and calls.
pub fn parse(language: Language, source: &str) -> Result<ParsedFile, CodeError> {
    let mut parser = Parser::new();
    parser.set_language(&grammar(language)).map_err(|e| CodeError::Grammar(language.as_str(), e.to_string()))?;
    let tree = parser.parse(source, None).ok_or(CodeError::ParseFailed)?;
    let root = tree.root_node();
    let mut extractor = Extractor { language, src: source, out: ParsedFile::default(), scopes: Vec::new() };
    extractor.walk(root);
    extractor.out.lines = u32::try_from(source.lines().count()).unwrap_or(u32::MAX);
    extractor.out.has_errors = root.has_error();
    Ok(extractor.out)
}

/// An enclosing definition (or a Rust `impl` block, which has no symbol).
struct Scope {
    symbol: Option<usize>,
    kind: Option<SymbolKind>,
    /// The type methods defined inside belong to.
    type_name: Option<String>,
    /// A Go method's receiver name: a call through it is a call on `self`.
    receiver: Option<String>,
}

struct Extractor<'a> {
    language: Language,
    src: &'a str,
    out: ParsedFile,
    scopes: Vec<Scope>,
}

enum Step<'t> {
    Enter(Node<'t>),
    Exit,
}

struct Definition<'t> {
    kind: SymbolKind,
    name: String,
    node: Node<'t>,
    /// Where the comments documenting it are found (an export or
    /// declaration wrapping it, or the node itself).
    doc_anchor: Node<'t>,
    owner_type: Option<String>,
    receiver: Option<String>,
}

impl<'a> Extractor<'a> {
    fn walk(&mut self, root: Node<'_>) {
        let mut stack = vec![Step::Enter(root)];
        while let Some(step) = stack.pop() {
            match step {
                Step::Exit => {
                    self.scopes.pop();
                }
                Step::Enter(node) => {
                    if self.enter(node) {
                        stack.push(Step::Exit);
                    }
                    let mut cursor = node.walk();
                    let children: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
                    stack.extend(children.into_iter().rev().map(Step::Enter));
                }
            }
        }
    }

    /// Handles `node`; `true` when it opened a scope (closed after its
    /// children).
    fn enter(&mut self, node: Node<'_>) -> bool {
        if let Some(def) = self.definition(node) {
            self.define(def);
            return true;
        }
        if self.language == Language::Rust && node.kind() == "impl_item" {
            let type_name = node.child_by_field_name("type").map(|t| type_name(self.text(t)));
            self.scopes.push(Scope { symbol: None, kind: None, type_name, receiver: None });
            return true;
        }
        self.import(node);
        self.call(node);
        self.package(node);
        false
    }

    fn text(&self, node: Node<'_>) -> &'a str {
        self.src.get(node.byte_range()).unwrap_or("")
    }

    fn field_text(&self, node: Node<'_>, field: &str) -> Option<String> {
        node.child_by_field_name(field).map(|n| self.text(n).to_owned()).filter(|s| !s.is_empty())
    }

    /// The innermost scope's type, for methods.
    fn enclosing_type(&self) -> Option<String> {
        self.scopes.last().and_then(|s| s.type_name.clone())
    }

    /// Whether the innermost scope is a type (a class body, an impl or
    /// trait block): what makes a function a method.
    fn in_type(&self) -> bool {
        self.scopes.last().is_some_and(|s| s.type_name.is_some() && s.kind.is_none_or(SymbolKind::is_type))
    }

    fn definition<'t>(&self, node: Node<'t>) -> Option<Definition<'t>> {
        let kind = node.kind();
        let named = |k: SymbolKind| self.field_text(node, "name").map(|name| (k, name));
        let (sym_kind, name) = match self.language {
            Language::Rust => match kind {
                "function_item" | "function_signature_item" => {
                    named(if self.in_type() { SymbolKind::Method } else { SymbolKind::Function })?
                }
                "struct_item" | "union_item" => named(SymbolKind::Struct)?,
                "enum_item" => named(SymbolKind::Enum)?,
                "trait_item" => named(SymbolKind::Trait)?,
                "type_item" => named(SymbolKind::TypeAlias)?,
                "mod_item" => named(SymbolKind::Module)?,
                "const_item" | "static_item" => named(SymbolKind::Constant)?,
                "macro_definition" => named(SymbolKind::Macro)?,
                _ => return None,
            },
            Language::Python => match kind {
                "function_definition" => named(if self.in_type() { SymbolKind::Method } else { SymbolKind::Function })?,
                "class_definition" => named(SymbolKind::Class)?,
                "expression_statement" if node.parent().is_some_and(|p| p.kind() == "module") => {
                    let assignment = node.named_child(0).filter(|c| c.kind() == "assignment")?;
                    let left = assignment.child_by_field_name("left").filter(|l| l.kind() == "identifier")?;
                    let name = self.text(left);
                    if !is_constant_name(name) {
                        return None;
                    }
                    (SymbolKind::Constant, name.to_owned())
                }
                _ => return None,
            },
            Language::JavaScript | Language::TypeScript | Language::Tsx => match kind {
                "function_declaration" | "generator_function_declaration" | "function_signature" => {
                    named(SymbolKind::Function)?
                }
                "class_declaration" | "abstract_class_declaration" => named(SymbolKind::Class)?,
                "method_definition" | "method_signature" | "abstract_method_signature" => named(SymbolKind::Method)?,
                "interface_declaration" => named(SymbolKind::Interface)?,
                "type_alias_declaration" => named(SymbolKind::TypeAlias)?,
                "enum_declaration" => named(SymbolKind::Enum)?,
                "internal_module" | "module" => named(SymbolKind::Module)?,
                "variable_declarator" => {
                    let name = node.child_by_field_name("name").filter(|n| n.kind() == "identifier")?;
                    let name = self.text(name).to_owned();
                    let value = node.child_by_field_name("value").map(|v| v.kind());
                    if matches!(
                        value,
                        Some("arrow_function" | "function_expression" | "function" | "generator_function")
                    ) {
                        (SymbolKind::Function, name)
                    } else if self.scopes.iter().all(|s| s.kind.is_none_or(|k| !k.is_callable()))
                        && node
                            .parent()
                            .is_some_and(|p| p.kind() == "lexical_declaration" && self.text(p).starts_with("const"))
                        && is_constant_name(&name)
                    {
                        (SymbolKind::Constant, name)
                    } else {
                        return None;
                    }
                }
                _ => return None,
            },
            Language::Go => match kind {
                "function_declaration" => named(SymbolKind::Function)?,
                "method_declaration" => named(SymbolKind::Method)?,
                "method_elem" | "method_spec" => named(SymbolKind::Method)?,
                "type_spec" => {
                    let k = match node.child_by_field_name("type").map(|t| t.kind()) {
                        Some("struct_type") => SymbolKind::Struct,
                        Some("interface_type") => SymbolKind::Interface,
                        _ => SymbolKind::TypeAlias,
                    };
                    named(k)?
                }
                "type_alias" => named(SymbolKind::TypeAlias)?,
                "const_spec" => named(SymbolKind::Constant)?,
                _ => return None,
            },
            Language::Java => match kind {
                "class_declaration" | "record_declaration" => named(SymbolKind::Class)?,
                "interface_declaration" | "annotation_type_declaration" => named(SymbolKind::Interface)?,
                "enum_declaration" => named(SymbolKind::Enum)?,
                "method_declaration" | "constructor_declaration" => named(SymbolKind::Method)?,
                "variable_declarator" => {
                    let field = node.parent().filter(|p| p.kind() == "field_declaration")?;
                    let modifiers = field.named_child(0).filter(|m| m.kind() == "modifiers").map(|m| self.text(m))?;
                    if !(modifiers.contains("static") && modifiers.contains("final")) {
                        return None;
                    }
                    named(SymbolKind::Constant)?
                }
                _ => return None,
            },
        };
        // Go names the receiver's type, not the enclosing scope.
        let owner_type = match (self.language, kind) {
            (Language::Go, "method_declaration") => node
                .child_by_field_name("receiver")
                .and_then(|r| r.named_child(0))
                .and_then(|p| p.child_by_field_name("type"))
                .map(|t| type_name(self.text(t))),
            _ if sym_kind == SymbolKind::Method => self.enclosing_type(),
            _ => None,
        };
        let receiver = match (self.language, kind) {
            (Language::Go, "method_declaration") => node
                .child_by_field_name("receiver")
                .and_then(|r| r.named_child(0))
                .and_then(|p| self.field_text(p, "name")),
            _ => None,
        };
        let doc_anchor = match node.parent() {
            Some(p) if matches!(p.kind(), "export_statement" | "decorated_definition") => p,
            Some(p) if matches!(p.kind(), "type_declaration" | "const_declaration") && p.named_child_count() == 1 => p,
            Some(p) if p.kind() == "lexical_declaration" => match p.parent() {
                Some(e) if e.kind() == "export_statement" => e,
                _ => p,
            },
            Some(p) if p.kind() == "field_declaration" => p,
            _ => node,
        };
        Some(Definition { kind: sym_kind, name, node, doc_anchor, owner_type, receiver })
    }

    fn define(&mut self, def: Definition<'_>) {
        let parent = self.scopes.iter().rev().find_map(|s| s.symbol);
        let sep = self.language.separator();
        let qualified_name = match (&def.owner_type, parent.and_then(|i| self.out.symbols.get(i))) {
            (Some(owner), _) if def.kind == SymbolKind::Method => {
                // A method's owner is the nearest type; modules above it
                // come from the parent chain.
                let outer = self
                    .scopes
                    .iter()
                    .rev()
                    .filter_map(|s| s.symbol)
                    .filter_map(|i| self.out.symbols.get(i))
                    .find(|s| s.kind == SymbolKind::Module)
                    .map(|m| format!("{}{sep}", m.qualified_name))
                    .unwrap_or_default();
                format!("{outer}{owner}{sep}{}", def.name)
            }
            (_, Some(p)) => format!("{}{sep}{}", p.qualified_name, def.name),
            (_, None) => def.name.clone(),
        };
        let symbol = Symbol {
            name: def.name.clone(),
            qualified_name,
            kind: def.kind,
            start_line: line_of(def.node.start_position().row),
            end_line: line_of(def.node.end_position().row),
            signature: self.signature(def.node),
            doc: self.doc(def.node, def.doc_anchor),
            parent,
            owner_type: def.owner_type.clone(),
            excerpt: truncate(self.text(def.node), MAX_EXCERPT).to_owned(),
        };
        self.out.symbols.push(symbol);
        let index = self.out.symbols.len() - 1;
        let type_name = def.kind.is_type().then(|| def.name.clone());
        self.scopes.push(Scope { symbol: Some(index), kind: Some(def.kind), type_name, receiver: def.receiver });
    }

    /// The declaration up to its body, whitespace collapsed.
    fn signature(&self, node: Node<'_>) -> String {
        let start = node.start_byte();
        let end = node.child_by_field_name("body").map(|b| b.start_byte()).unwrap_or_else(|| node.end_byte());
        let head = self.src.get(start..end).unwrap_or("");
        let head = match self.language {
            Language::Python => head.trim_end().trim_end_matches(':'),
            _ => head,
        };
        let one_line = head.split_whitespace().collect::<Vec<_>>().join(" ");
        truncate(&one_line, MAX_SIGNATURE).to_owned()
    }

    fn doc(&self, node: Node<'_>, anchor: Node<'_>) -> Option<String> {
        let raw = match self.language {
            Language::Python => {
                let body = node.child_by_field_name("body")?;
                let first = body.named_child(0).filter(|c| c.kind() == "expression_statement")?;
                let string = first.named_child(0).filter(|c| c.kind() == "string")?;
                let text = self.text(string).trim_start_matches(['r', 'R', 'u', 'U', 'b', 'B']);
                let quote = ["\"\"\"", "'''", "\"", "'"].into_iter().find(|q| text.starts_with(q))?;
                text.strip_prefix(quote).and_then(|t| t.strip_suffix(quote)).unwrap_or(text).to_owned()
            }
            _ => self.comments_before(anchor)?,
        };
        let cleaned = clean_doc(&raw);
        (!cleaned.is_empty()).then(|| truncate(&cleaned, MAX_DOC).to_owned())
    }

    /// The doc comments directly above `anchor` (attributes in between
    /// are skipped), in source order.
    fn comments_before(&self, anchor: Node<'_>) -> Option<String> {
        let mut lines: Vec<&str> = Vec::new();
        let mut next_row = anchor.start_position().row;
        let mut sibling = anchor.prev_named_sibling();
        while let Some(s) = sibling {
            let kind = s.kind();
            if kind == "attribute_item" {
                next_row = s.start_position().row;
                sibling = s.prev_named_sibling();
                continue;
            }
            if !kind.contains("comment") || s.end_position().row + 1 < next_row {
                break;
            }
            let text = self.text(s);
            let is_doc = match self.language {
                Language::Rust => text.starts_with("///") || text.starts_with("/**"),
                Language::Go => text.starts_with("//"),
                _ => text.starts_with("/**"),
            };
            if !is_doc {
                break;
            }
            lines.push(text);
            next_row = s.start_position().row;
            sibling = s.prev_named_sibling();
            // A block comment documents alone.
            if text.starts_with("/*") {
                break;
            }
        }
        if lines.is_empty() {
            return None;
        }
        lines.reverse();
        Some(lines.join("\n"))
    }

    fn push_import(&mut self, module: String, name: Option<String>, alias: Option<String>, node: Node<'_>) {
        let module = module.trim().to_owned();
        if module.is_empty() && name.is_none() {
            return;
        }
        let line = line_of(node.start_position().row);
        self.out.imports.push(Import { module, name, alias, line });
    }

    fn import(&mut self, node: Node<'_>) {
        match (self.language, node.kind()) {
            (Language::Rust, "use_declaration") => {
                if let Some(argument) = node.child_by_field_name("argument") {
                    self.rust_use(argument, String::new(), node);
                }
            }
            (Language::Python, "import_statement") => {
                let mut cursor = node.walk();
                for child in node.named_children(&mut cursor) {
                    match child.kind() {
                        "dotted_name" => {
                            let module = self.text(child).to_owned();
                            let binds = module.split('.').next().map(str::to_owned);
                            self.push_import(module, None, binds, node);
                        }
                        "aliased_import" => {
                            let module = self.field_text(child, "name").unwrap_or_default();
                            let alias = self.field_text(child, "alias");
                            self.push_import(module, None, alias, node);
                        }
                        _ => {}
                    }
                }
            }
            (Language::Python, "import_from_statement") => {
                let module = self.field_text(node, "module_name").unwrap_or_default();
                let mut cursor = node.walk();
                let names: Vec<Node<'_>> = node.children_by_field_name("name", &mut cursor).collect();
                if names.is_empty() {
                    self.push_import(module.clone(), None, None, node);
                }
                for n in names {
                    match n.kind() {
                        "aliased_import" => {
                            let name = self.field_text(n, "name");
                            let alias = self.field_text(n, "alias");
                            self.push_import(module.clone(), name, alias, node);
                        }
                        _ => {
                            let name = Some(self.text(n).to_owned());
                            self.push_import(module.clone(), name, None, node);
                        }
                    }
                }
            }
            (Language::JavaScript | Language::TypeScript | Language::Tsx, "import_statement") => {
                let Some(source) = node.child_by_field_name("source") else {
                    return;
                };
                let module = unquote(self.text(source)).to_owned();
                let mut bound = false;
                let mut cursor = node.walk();
                let clauses: Vec<Node<'_>> =
                    node.named_children(&mut cursor).filter(|c| c.kind() == "import_clause").collect();
                for clause in clauses {
                    let mut c2 = clause.walk();
                    for part in clause.named_children(&mut c2) {
                        match part.kind() {
                            "identifier" => {
                                let alias = Some(self.text(part).to_owned());
                                self.push_import(module.clone(), Some("default".to_owned()), alias, node);
                                bound = true;
                            }
                            "namespace_import" => {
                                let alias = part.named_child(0).map(|i| self.text(i).to_owned());
                                self.push_import(module.clone(), None, alias, node);
                                bound = true;
                            }
                            "named_imports" => {
                                let mut c3 = part.walk();
                                for spec in part.named_children(&mut c3).filter(|s| s.kind() == "import_specifier") {
                                    let name = self.field_text(spec, "name");
                                    let alias = self.field_text(spec, "alias");
                                    self.push_import(module.clone(), name, alias, node);
                                    bound = true;
                                }
                            }
                            _ => {}
                        }
                    }
                }
                if !bound {
                    self.push_import(module, None, None, node);
                }
            }
            (Language::Go, "import_spec") => {
                let Some(path) = node.child_by_field_name("path") else {
                    return;
                };
                let module = unquote(self.text(path)).to_owned();
                let alias = self.field_text(node, "name").or_else(|| module.rsplit('/').next().map(str::to_owned));
                self.push_import(module, None, alias, node);
            }
            (Language::Java, "import_declaration") => {
                let text = self.text(node);
                let wildcard = text.trim_end_matches(';').trim_end().ends_with('*');
                let mut cursor = node.walk();
                let path = node
                    .named_children(&mut cursor)
                    .find(|c| matches!(c.kind(), "scoped_identifier" | "identifier"))
                    .map(|c| self.text(c).to_owned());
                let Some(path) = path else {
                    return;
                };
                if wildcard {
                    self.push_import(path, None, None, node);
                } else {
                    let (module, name) = path.rsplit_once('.').unwrap_or(("", path.as_str()));
                    self.push_import(module.to_owned(), Some(name.to_owned()), None, node);
                }
            }
            _ => {}
        }
    }

    /// Flattens a Rust `use` tree into one import per name.
    fn rust_use(&mut self, node: Node<'_>, prefix: String, statement: Node<'_>) {
        let join = |prefix: &str, path: &str| {
            if prefix.is_empty() { path.to_owned() } else { format!("{prefix}::{path}") }
        };
        match node.kind() {
            "identifier" | "crate" | "self" | "super" | "metavariable" => {
                let name = self.text(node).to_owned();
                if name == "self" {
                    // `use a::{self}` binds `a`.
                    let alias = prefix.rsplit("::").next().map(str::to_owned);
                    self.push_import(prefix.clone(), None, alias, statement);
                } else {
                    self.push_import(prefix, Some(name), None, statement);
                }
            }
            "scoped_identifier" => {
                let path = node.child_by_field_name("path").map(|p| self.text(p)).unwrap_or("");
                let name = self.field_text(node, "name");
                self.push_import(join(&prefix, path), name, None, statement);
            }
            "use_as_clause" => {
                let full = node.child_by_field_name("path").map(|p| self.text(p)).unwrap_or("");
                let (module, name) = full.rsplit_once("::").unwrap_or(("", full));
                let alias = self.field_text(node, "alias");
                self.push_import(join(&prefix, module), Some(name.to_owned()), alias, statement);
            }
            "use_list" => {
                let mut cursor = node.walk();
                let items: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
                for item in items {
                    self.rust_use(item, prefix.clone(), statement);
                }
            }
            "scoped_use_list" => {
                let path = node.child_by_field_name("path").map(|p| self.text(p)).unwrap_or("");
                let next = join(&prefix, path);
                if let Some(list) = node.child_by_field_name("list") {
                    self.rust_use(list, next, statement);
                }
            }
            "use_wildcard" => {
                let path = self.text(node).trim_end_matches('*').trim_end_matches("::");
                self.push_import(join(&prefix, path), None, None, statement);
            }
            _ => {}
        }
    }

    fn call(&mut self, node: Node<'_>) {
        let mut static_path = false;
        let (callee, qualifier) = match (self.language, node.kind()) {
            (Language::Rust, "call_expression")
            | (Language::JavaScript | Language::TypeScript | Language::Tsx, "call_expression")
            | (Language::Go, "call_expression")
            | (Language::Python, "call") => {
                let Some(mut function) = node.child_by_field_name("function") else {
                    return;
                };
                // `parse::<T>(x)`: the function inside the turbofish.
                if function.kind() == "generic_function"
                    && let Some(inner) = function.child_by_field_name("function")
                {
                    function = inner;
                }
                match function.kind() {
                    "identifier" => (self.text(function).to_owned(), None),
                    "scoped_identifier" => {
                        static_path = true;
                        (self.field_text(function, "name").unwrap_or_default(), self.field_text(function, "path"))
                    }
                    "field_expression" => {
                        (self.field_text(function, "field").unwrap_or_default(), self.field_text(function, "value"))
                    }
                    "attribute" => (
                        self.field_text(function, "attribute").unwrap_or_default(),
                        self.field_text(function, "object"),
                    ),
                    "member_expression" => {
                        (self.field_text(function, "property").unwrap_or_default(), self.field_text(function, "object"))
                    }
                    "selector_expression" => {
                        (self.field_text(function, "field").unwrap_or_default(), self.field_text(function, "operand"))
                    }
                    _ => return,
                }
            }
            (Language::Java, "method_invocation") => {
                (self.field_text(node, "name").unwrap_or_default(), self.field_text(node, "object"))
            }
            (Language::Rust, "token_tree") => {
                self.macro_calls(node);
                return;
            }
            _ => return,
        };
        self.push_call(node, callee, qualifier, static_path);
    }

    /// Calls inside a Rust macro's arguments (`println!("{}", f(x))`),
    /// which the grammar keeps as tokens: an identifier directly followed
    /// by a parenthesised group, with `a::` or `a.` before it as its
    /// qualifier.
    fn macro_calls(&mut self, tree: Node<'_>) {
        let mut cursor = tree.walk();
        let tokens: Vec<Node<'_>> = tree.children(&mut cursor).collect();
        for (i, token) in tokens.iter().enumerate() {
            let called = token.kind() == "identifier"
                && tokens.get(i + 1).is_some_and(|n| n.kind() == "token_tree" && self.text(*n).starts_with('('));
            if !called {
                continue;
            }
            let callee = self.text(*token).to_owned();
            let (qualifier, static_path) =
                match (i.checked_sub(2).and_then(|j| tokens.get(j)), i.checked_sub(1).and_then(|j| tokens.get(j))) {
                    (Some(q), Some(sep))
                        if matches!(q.kind(), "identifier" | "self") && matches!(self.text(*sep), "::" | ".") =>
                    {
                        (Some(self.text(*q).to_owned()), self.text(*sep) == "::")
                    }
                    _ => (None, false),
                };
            self.push_call(*token, callee, qualifier, static_path);
        }
    }

    fn push_call(&mut self, node: Node<'_>, callee: String, qualifier: Option<String>, static_path: bool) {
        if callee.is_empty() || !callee.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            return;
        }
        let qualifier = qualifier.map(|q| {
            let q = q.split_whitespace().collect::<Vec<_>>().join(" ");
            truncate(&q, MAX_QUALIFIER).to_owned()
        });
        let enclosing = self.scopes.iter().rev().find(|s| s.kind.is_some_and(SymbolKind::is_callable));
        let caller = enclosing.and_then(|s| s.symbol);
        let qualifier = match (qualifier, enclosing.and_then(|s| s.receiver.as_deref())) {
            (Some(q), Some(receiver)) if q == receiver => Some("self".to_owned()),
            (q, _) => q,
        };
        let line = line_of(node.start_position().row);
        self.out.calls.push(CallSite { callee, qualifier, static_path, line, caller });
    }

    fn package(&mut self, node: Node<'_>) {
        let package = match (self.language, node.kind()) {
            (Language::Go, "package_clause") => node.named_child(0).map(|n| self.text(n).to_owned()),
            (Language::Java, "package_declaration") => node.named_child(0).map(|n| self.text(n).to_owned()),
            _ => None,
        };
        if package.is_some() && self.out.package.is_none() {
            self.out.package = package;
        }
    }
}

fn line_of(row: usize) -> u32 {
    u32::try_from(row).unwrap_or(u32::MAX - 1).saturating_add(1)
}

/// `Foo<T>`, `&mut a::Foo`, `*Foo[T]` -> `Foo`.
fn type_name(text: &str) -> String {
    let t = text.trim().trim_start_matches(['&', '*']).trim_start_matches("mut ").trim_start_matches("dyn ");
    let t = t.split(['<', '[', '(']).next().unwrap_or(t).trim();
    t.rsplit("::").next().unwrap_or(t).rsplit('.').next().unwrap_or(t).trim().to_owned()
}

/// `UPPER_CASE` names, the convention for constants where the language has
/// no keyword for them.
fn is_constant_name(name: &str) -> bool {
    name.chars().any(|c| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn unquote(text: &str) -> &str {
    text.trim_matches(['"', '\'', '`'])
}

/// The first `max` characters of `text` (on a character boundary).
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// A doc comment's text without its markers.
fn clean_doc(raw: &str) -> String {
    let lines: Vec<&str> = raw
        .lines()
        .map(|l| {
            let l = l.trim();
            let l = l.trim_start_matches("/**").trim_start_matches("/*").trim_end_matches("*/");
            let l = l.trim_start_matches("///").trim_start_matches("//");
            let l = l.trim_start();
            let l = l.strip_prefix('*').unwrap_or(l);
            l.trim()
        })
        .collect();
    let text = lines.join("\n");
    text.trim().to_owned()
}
