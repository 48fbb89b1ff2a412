use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::resolve::RepoFile;
use crate::tokens::{expansion, split_identifier};
use crate::{Language, ParsedFile, Resolution, SymbolKind, manifest, parse, resolve_calls};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/code")
}

fn parse_fixture(rel: &str) -> ParsedFile {
    let path = fixtures().join(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    parse(Language::from_path(&path).unwrap(), &text).unwrap()
}

fn defs(parsed: &ParsedFile) -> BTreeSet<(String, String, u32)> {
    parsed.symbols.iter().map(|s| (s.kind.as_str().to_owned(), s.qualified_name.clone(), s.start_line)).collect()
}

fn set(items: &[(&str, &str, u32)]) -> BTreeSet<(String, String, u32)> {
    items.iter().map(|(k, n, l)| ((*k).to_owned(), (*n).to_owned(), *l)).collect()
}

#[test]
fn rust_definitions_docs_and_signatures() {
    let parsed = parse_fixture("rust/src/order.rs");
    assert_eq!(
        defs(&parsed),
        set(&[
            ("struct", "Order", 3),
            ("trait", "Priced", 8),
            ("method", "Priced::price", 9),
            ("method", "Order::new", 14),
            ("method", "Order::total", 18),
            ("method", "Order::validate", 22),
            ("method", "Order::price", 28),
            ("function", "parse_line", 33),
            ("type_alias", "Orders", 38),
            ("macro", "order", 40),
        ])
    );
    let new = parsed.symbols.iter().find(|s| s.qualified_name == "Order::new").unwrap();
    assert_eq!(new.signature, "pub fn new(sku: &str, quantity: u32) -> Self");
    assert_eq!(new.doc.as_deref(), Some("Builds an order."));
    assert_eq!(new.owner_type.as_deref(), Some("Order"));
    let order = parsed.symbols.iter().find(|s| s.name == "Order").unwrap();
    assert_eq!(order.doc.as_deref(), Some("One order line."), "the attribute between doc and item is skipped");
    let lib = parse_fixture("rust/src/lib.rs");
    assert!(defs(&lib).contains(&("constant".into(), "MAX_LINES".into(), 8)));
    assert!(defs(&lib).contains(&("module".into(), "order".into(), 3)));
    assert_eq!(lib.imports.len(), 1);
    assert_eq!((lib.imports[0].module.as_str(), lib.imports[0].name.as_deref()), ("crate::order", Some("Order")));
}

#[test]
fn python_definitions_constants_and_docstrings() {
    let parsed = parse_fixture("python/shop/pricing.py");
    assert_eq!(
        defs(&parsed),
        set(&[
            ("constant", "TAX_RATE", 3),
            ("function", "apply_discount", 6),
            ("function", "with_tax", 11),
            ("class", "PriceBook", 15),
            ("method", "PriceBook.__init__", 18),
            ("method", "PriceBook.set_price", 21),
            ("method", "PriceBook.total", 24),
            ("method", "PriceBook.lookup", 28),
        ])
    );
    let f = parsed.symbols.iter().find(|s| s.name == "apply_discount").unwrap();
    assert_eq!(f.doc.as_deref(), Some("Returns the price after a discount of `percent`."));
    assert_eq!(f.signature, "def apply_discount(price, percent)");
    let cart = parse_fixture("python/shop/cart.py");
    let imports: Vec<(String, Option<String>, Option<String>)> =
        cart.imports.iter().map(|i| (i.module.clone(), i.name.clone(), i.alias.clone())).collect();
    assert_eq!(
        imports,
        vec![
            ("shop.pricing".into(), Some("PriceBook".into()), None),
            ("shop.pricing".into(), Some("apply_discount".into()), None),
            (".".into(), Some("pricing".into()), None),
            ("json".into(), None, Some("json".into())),
        ]
    );
}

#[test]
fn typescript_go_and_java_definitions() {
    assert_eq!(
        defs(&parse_fixture("ts/src/format.ts")),
        set(&[
            ("function", "formatMoney", 2),
            ("constant", "MAX_ITEMS", 6),
            ("interface", "Item", 8),
            ("type_alias", "Basket", 13),
            ("function", "sumCents", 15),
        ])
    );
    let basket = parse_fixture("ts/src/basket.ts");
    assert_eq!(
        defs(&basket),
        set(&[
            ("class", "BasketView", 4),
            ("method", "BasketView.add", 7),
            ("method", "BasketView.render", 12),
            ("enum", "Currency", 17),
        ])
    );
    assert_eq!(basket.symbols[0].doc.as_deref(), Some("A shopping basket."), "doc above an export");
    let go = parse_fixture("go/inventory/stock.go");
    assert_eq!(
        defs(&go),
        set(&[
            ("constant", "MaxStock", 4),
            ("struct", "Stock", 7),
            ("interface", "Store", 12),
            ("method", "Store.Reserve", 13),
            ("function", "NewStock", 17),
            ("method", "Stock.Reserve", 22),
            ("method", "Stock.has", 30),
            ("function", "errShort", 34),
        ])
    );
    assert_eq!(go.package.as_deref(), Some("inventory"));
    assert_eq!(
        go.symbols.iter().find(|s| s.name == "Stock").unwrap().doc.as_deref(),
        Some("Stock counts items per SKU.")
    );
    let java = parse_fixture("java/src/main/java/com/acme/store/Ledger.java");
    assert_eq!(
        defs(&java),
        set(&[
            ("class", "Ledger", 7),
            ("constant", "Ledger.MAX_ENTRIES", 8),
            ("method", "Ledger.record", 13),
            ("method", "Ledger.audit", 20),
            ("method", "Ledger.total", 23),
        ])
    );
    assert_eq!(java.package.as_deref(), Some("com.acme.store"));
    assert_eq!(java.symbols.iter().find(|s| s.name == "record").unwrap().doc.as_deref(), Some("Records one sale."));
}

/// Every fixture file, parsed, as the resolver takes them.
fn fixture_repo(dir: &str) -> Vec<(String, Language, ParsedFile)> {
    let root = fixtures().join(dir);
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(language) = Language::from_path(&path) {
                let rel = path.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
                let parsed = parse(language, &std::fs::read_to_string(&path).unwrap()).unwrap();
                out.push((rel, language, parsed));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `(caller, callee, how)` of every resolved call; callees outside the
/// repository as `?name` with their module.
fn call_graph(dir: &str) -> BTreeSet<(String, String, &'static str)> {
    let repo = fixture_repo(dir);
    let files: Vec<RepoFile<'_>> =
        repo.iter().map(|(p, l, parsed)| RepoFile { path: p, language: *l, parsed }).collect();
    let resolved = resolve_calls(&files);
    let mut out = BTreeSet::new();
    for (f, file) in files.iter().enumerate() {
        for (call, r) in file.parsed.calls.iter().zip(&resolved[f]) {
            let caller = call.caller.map_or("<file>".to_owned(), |c| file.parsed.symbols[c].qualified_name.clone());
            let callee = match r.target {
                Some((g, s)) => files[g].parsed.symbols[s].qualified_name.clone(),
                None => format!("?{}@{}", call.callee, r.module.clone().unwrap_or_default()),
            };
            out.insert((caller, callee, r.resolution.as_str()));
        }
    }
    out
}

fn has(graph: &BTreeSet<(String, String, &'static str)>, caller: &str, callee: &str, how: Resolution) -> bool {
    graph.contains(&(caller.to_owned(), callee.to_owned(), how.as_str()))
}

#[test]
fn calls_resolve_through_files_imports_and_methods() {
    let py = call_graph("python");
    assert!(has(&py, "Cart.checkout", "apply_discount", Resolution::Import), "{py:#?}");
    assert!(has(&py, "Cart.checkout", "with_tax", Resolution::Import), "`from . import pricing` then pricing.with_tax");
    assert!(has(&py, "PriceBook.total", "with_tax", Resolution::SameFile));
    assert!(has(&py, "PriceBook.total", "PriceBook.lookup", Resolution::Method));
    assert!(has(&py, "Cart.checkout", "?dumps@json", Resolution::Unresolved), "an external module is kept");
    assert!(has(&py, "quick_checkout", "Cart.checkout", Resolution::UniqueName), "labelled as a guess");

    let rs = call_graph("rust");
    assert!(has(&rs, "count_orders", "parse_orders", Resolution::SameFile), "{rs:#?}");
    assert!(has(&rs, "count_orders", "Order::total", Resolution::Import));
    assert!(has(&rs, "parse_line", "Order::new", Resolution::Method));
    assert!(has(&rs, "Order::price", "Order::validate", Resolution::Method));
    assert!(has(&rs, "count_orders", "?to_string@serde_json", Resolution::Unresolved));

    let app = call_graph("rust-app");
    assert!(has(&app, "main", "summarize", Resolution::SameFile), "a call inside println!: {app:#?}");
    assert!(has(&app, "summarize", "?count_orders@acme_parse", Resolution::Unresolved), "a path into a dependency");
    assert!(has(&app, "main", "?new@acme_parse::order::Order", Resolution::Unresolved));

    let ts = call_graph("ts");
    assert!(has(&ts, "BasketView.render", "formatMoney", Resolution::Import), "{ts:#?}");
    assert!(has(&ts, "BasketView.render", "sumCents", Resolution::Import));
    assert!(has(&ts, "BasketView.add", "BasketView.render", Resolution::Method));

    let go = call_graph("go");
    assert!(has(&go, "main", "NewStock", Resolution::Import), "{go:#?}");
    assert!(has(&go, "Stock.Reserve", "Stock.has", Resolution::Method), "a call through the receiver");
    assert!(has(&go, "Stock.Reserve", "errShort", Resolution::SameFile));
    assert!(has(&go, "main", "?Println@fmt", Resolution::Unresolved));

    let java = call_graph("java");
    assert!(has(&java, "Ledger.record", "Ledger.audit", Resolution::Method), "{java:#?}");
    assert!(has(&java, "Register.sell", "Ledger.record", Resolution::UniqueName));
    assert!(
        has(&java, "Register.sell", "?describe@com.acme.store.Ledger", Resolution::Unresolved),
        "no such method: never guessed"
    );
}

#[test]
fn identifiers_split_into_words() {
    assert_eq!(split_identifier("parseHttpBody"), ["parse", "http", "body"]);
    assert_eq!(split_identifier("HTTPServer_v2"), ["http", "server", "v", "2"]);
    assert_eq!(split_identifier("apply_discount"), ["apply", "discount"]);
    assert_eq!(split_identifier("MAX_ITEMS"), ["max", "items"]);
    assert_eq!(split_identifier("x"), ["x"]);
    assert_eq!(expansion("fn parse_line(line: &str) -> Order"), "parse_line parse line");
}

#[test]
fn manifests_name_packages_and_dependencies() {
    let read = |dir: &str, name: &str| {
        let text = std::fs::read_to_string(fixtures().join(dir).join(name)).unwrap();
        manifest::read_manifest(name, &text).unwrap().unwrap()
    };
    let cargo = read("rust", "Cargo.toml");
    assert_eq!(
        (cargo.package.as_deref(), cargo.dependencies.clone()),
        (Some("acme_parse"), vec!["serde".into(), "serde_json".into()])
    );
    let py = read("python", "pyproject.toml");
    assert_eq!(
        (py.package.as_deref(), py.dependencies.clone()),
        (Some("acme_shop"), vec!["acme_pricing".into(), "requests".into()])
    );
    let npm = read("ts", "package.json");
    assert_eq!(
        (npm.package.as_deref(), npm.dependencies.clone()),
        (Some("@acme/web"), vec!["acme_shop".into(), "left_pad".into()])
    );
    let go = read("go", "go.mod");
    assert_eq!(
        (go.package.as_deref(), go.dependencies.clone()),
        (Some("github_com/acme/inventory"), vec!["github_com/acme/pricing".into()])
    );
    let pom = read("java", "pom.xml");
    assert_eq!((pom.package.as_deref(), pom.dependencies.clone()), (Some("acme_store"), vec!["acme_shop".into()]));
    assert!(manifest::read_manifest("Cargo.toml", "[package\nname=").is_err(), "a broken manifest is an error");
    assert!(manifest::read_manifest("README.md", "# hi").unwrap().is_none());
}

#[test]
fn hostile_input_is_read_without_panicking() {
    let deep = format!("fn f() {{ {}1{} }}", "(".repeat(50_000), ")".repeat(50_000));
    let parsed = parse(Language::Rust, &deep).unwrap();
    assert_eq!(parsed.symbols.len(), 1);
    for language in Language::ALL {
        for text in ["", "\u{0}\u{1}\u{fffd}", "}}}{{{ def class fn func (((", "\"unterminated"] {
            let parsed = parse(language, text).unwrap();
            assert!(parsed.symbols.is_empty(), "{language:?} {text:?}: {:?}", parsed.symbols);
        }
    }
    // Half a file still gives what it could read.
    let broken = parse(Language::Python, "def ok():\n    pass\n\ndef broken(:\n").unwrap();
    assert!(broken.has_errors);
    assert!(broken.symbols.iter().any(|s| s.name == "ok" && s.kind == SymbolKind::Function));
}

/// The definitions of every fixture file against universal-ctags (the
/// ground truth; `scripts/test.sh` installs it): each tag of a kind Loci
/// extracts is found at its line, and Loci finds nothing ctags does not,
/// except where ctags is known to miss (a Rust `const` of a library crate's
/// root, an arrow function held by a `const` it calls a constant).
#[test]
fn definitions_match_universal_ctags_on_the_fixtures() {
    let root = fixtures();
    let out = std::process::Command::new("ctags")
        .args(["-R", "--output-format=json", "--fields=+nKl", "-f", "-", "."])
        .current_dir(&root)
        .output()
        .expect("universal-ctags is required (scripts/test.sh installs it)");
    assert!(out.status.success());
    let comparable: &[(&str, &[&str])] = &[
        ("Rust", &["macro", "method", "function", "enum", "interface", "module", "struct", "typedef", "variable"]),
        ("Python", &["class", "function", "member"]),
        ("TypeScript", &["function", "class", "interface", "enum", "method", "namespace", "alias"]),
        ("Go", &["func", "struct", "interface", "type", "methodSpec", "const"]),
        ("Java", &["class", "interface", "enum", "method"]),
    ];
    let mut theirs = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let tag: serde_json::Value = serde_json::from_str(line).unwrap();
        let (language, kind) = (tag["language"].as_str().unwrap_or(""), tag["kind"].as_str().unwrap_or(""));
        if comparable.iter().any(|(l, kinds)| *l == language && kinds.contains(&kind)) {
            let path = tag["path"].as_str().unwrap().trim_start_matches("./").to_owned();
            theirs.insert((path, tag["line"].as_u64().unwrap() as u32, tag["name"].as_str().unwrap().to_owned()));
        }
    }
    let mut ours = BTreeSet::new();
    for (path, language, parsed) in fixture_repo("") {
        for s in &parsed.symbols {
            let excluded = s.kind == SymbolKind::Constant && !matches!(language, Language::Rust | Language::Go);
            if !excluded {
                // ctags names the line of the name; Loci's span starts at
                // the declaration, which is the same line in these files.
                ours.insert((path.clone(), s.start_line, s.name.clone()));
            }
        }
    }
    let missed: Vec<_> = theirs.difference(&ours).collect();
    assert!(missed.is_empty(), "ctags definitions Loci missed: {missed:?}");
    let extra: Vec<_> = ours.difference(&theirs).collect();
    assert_eq!(
        extra,
        vec![
            &("rust/src/lib.rs".to_owned(), 8, "MAX_LINES".to_owned()),
            &("ts/src/format.ts".to_owned(), 15, "sumCents".to_owned())
        ],
        "definitions ctags does not have"
    );
    assert!(theirs.len() > 50, "{}", theirs.len());
}
