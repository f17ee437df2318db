//! The broker's modules depend on each other in one direction: no import cycles, route
//! modules depend on the state and helpers but never on each other, and nothing outside
//! `routes/` imports a route module.
//!
//! The graph is read from the source: every `crate::` path (a root re-export resolves to the
//! module it comes from, through `lib.rs`), every `super::` in a route module, and
//! `routes/mod.rs` depending on each route module it merges.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a test: a panic is a failed test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

fn src() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))
}

/// Identifiers, `::` and single punctuation characters as tokens; comments, strings and
/// whitespace dropped.
fn tokens(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in source.lines() {
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut chars = code.chars().peekable();
        let mut in_string = false;
        while let Some(c) = chars.next() {
            if in_string {
                if c == '\\' {
                    chars.next();
                } else if c == '"' {
                    in_string = false;
                }
                continue;
            }
            match c {
                '"' => in_string = true,
                ':' if chars.peek() == Some(&':') => {
                    chars.next();
                    out.push("::".to_owned());
                }
                '{' | '}' | ',' => out.push(c.to_string()),
                c if c.is_alphanumeric() || c == '_' => {
                    let mut ident = c.to_string();
                    while let Some(&n) = chars.peek() {
                        if n.is_alphanumeric() || n == '_' {
                            ident.push(n);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    out.push(ident);
                }
                c if c.is_whitespace() => {}
                _ => out.push(c.to_string()),
            }
        }
    }
    out
}

/// The module a path below the crate root names: `routes::token::X` is `routes::token`,
/// `broker::Broker` is `broker`, a root re-export is the module `lib.rs` takes it from.
fn module_of(path: &[String], root: &BTreeMap<String, String>) -> Option<String> {
    let first = path.first()?;
    if first.chars().next()?.is_uppercase() || first.chars().all(|c| c.is_uppercase() || c == '_') {
        return root.get(first).cloned();
    }
    if first == "routes" && path.len() > 1 && path[1].chars().next()?.is_lowercase() {
        return Some(format!("routes::{}", path[1]));
    }
    Some(first.clone())
}

/// The paths a `use` tree starting at `tokens[i]` names, nested groups followed; returns the
/// index after the tree.
fn paths(
    tokens: &[String],
    mut i: usize,
    prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    let mut path = prefix;
    while i < tokens.len() {
        let t = &tokens[i];
        if t == "{" {
            i += 1;
            loop {
                if tokens.get(i).map(String::as_str) == Some("}") {
                    return i + 1;
                }
                i = paths(tokens, i, path.clone(), out);
                match tokens.get(i).map(String::as_str) {
                    Some(",") => i += 1,
                    Some("}") => return i + 1,
                    _ => return i,
                }
            }
        } else if t == "::" {
            i += 1;
        } else if t.chars().all(|c| c.is_alphanumeric() || c == '_') && t != "," && t != "}" {
            path.push(t.clone());
            i += 1;
            if tokens.get(i).map(String::as_str) != Some("::") {
                break;
            }
        } else {
            break;
        }
    }
    if !path.is_empty() {
        out.push(path);
    }
    i
}

fn root_reexports() -> BTreeMap<String, String> {
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    let toks = tokens(&lib);
    let mut root = BTreeMap::new();
    for (i, t) in toks.iter().enumerate() {
        if t == "use" && i > 0 && toks[i - 1] == "pub" {
            let mut found = Vec::new();
            paths(&toks, i + 1, Vec::new(), &mut found);
            for path in found {
                let name = path.last().unwrap().clone();
                if let Some(module) = module_of(&path[..path.len() - 1], &BTreeMap::new()) {
                    root.insert(name, module);
                }
            }
        }
    }
    root
}

fn graph() -> Graph {
    let root = root_reexports();
    let mut files = Vec::new();
    for entry in fs::read_dir(src()).unwrap() {
        files.push(entry.unwrap().path());
    }
    for entry in fs::read_dir(src().join("routes")).unwrap() {
        files.push(entry.unwrap().path());
    }
    let mut graph = Graph::new();
    for file in files {
        if file.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let stem = file.file_stem().unwrap().to_str().unwrap().to_owned();
        let in_routes = file.parent().unwrap().ends_with("routes");
        let module = match (in_routes, stem.as_str()) {
            (false, "lib") => continue,
            (true, "mod") => "routes".to_owned(),
            (true, _) => format!("routes::{stem}"),
            (false, _) => stem,
        };
        let toks = tokens(&fs::read_to_string(&file).unwrap());
        let edges = graph.entry(module.clone()).or_default();
        for i in 0..toks.len() {
            let found = if toks[i] == "crate" && toks.get(i + 1).map(String::as_str) == Some("::") {
                let mut found = Vec::new();
                paths(&toks, i + 2, Vec::new(), &mut found);
                found
            } else if toks[i] == "super"
                && toks.get(i + 1).map(String::as_str) == Some("::")
                && in_routes
                && module != "routes"
            {
                vec![vec!["routes".to_owned()]]
            } else if toks[i] == "mod" && module == "routes" {
                toks.get(i + 1)
                    .map(|m| vec![vec!["routes".to_owned(), m.clone()]])
                    .unwrap_or_default()
            } else {
                continue;
            };
            for path in found {
                if let Some(target) = module_of(&path, &root)
                    && target != module
                {
                    edges.insert(target);
                }
            }
        }
    }
    graph
}

fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_graph_is_read_from_the_source() {
    let graph = graph();
    // Spot checks that the reader sees real edges, so the assertions below cannot pass on an
    // empty graph.
    assert!(graph["broker"].contains("keys"), "{graph:#?}");
    assert!(graph["routes::token"].contains("broker"), "{graph:#?}");
    assert!(graph["routes"].contains("routes::console"), "{graph:#?}");
    assert!(graph.len() > 20, "{graph:#?}");
}

#[test]
fn the_broker_modules_have_no_import_cycle() {
    let graph = graph();
    assert_eq!(find_cycle(&graph), None, "{graph:#?}");
}

#[test]
fn route_modules_depend_on_the_state_never_on_each_other_or_back() {
    let graph = graph();
    for (module, edges) in &graph {
        let routes: Vec<&String> = edges.iter().filter(|e| e.starts_with("routes")).collect();
        if module == "routes" {
            continue;
        }
        assert!(
            routes.is_empty(),
            "{module} imports {routes:?}: only routes/mod.rs may name a route module"
        );
    }
}

#[test]
fn a_cycle_is_found_when_there_is_one() {
    let mut graph = Graph::new();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("c".into());
    graph.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    graph.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&graph), None);
}
