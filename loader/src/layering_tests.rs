//! The crate's dependency picture (docs/contributing.md): the top-level
//! folders (and files) of loader/src use one another along arrows that point
//! one way. Read from the `crate::` paths of the sources, tests left out
//! (they may reach across: a layout test loads objects).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Is this file (path under src/) test code only?
fn is_test_file(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name == "tests.rs" || name.ends_with("_tests.rs") || name == "testutil.rs" || rel.split('/').any(|c| c.ends_with("_tests"))
}

/// The lines of `src` outside `#[cfg(test)]` items.
fn non_test_lines(src: &str) -> Vec<&str> {
    let lines: Vec<&str> = src.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != "#[cfg(test)]" {
            out.push(lines[i]);
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < lines.len() && lines[j].trim().starts_with("#[") {
            j += 1;
        }
        let Some(item) = lines.get(j) else { break };
        if item.trim_end().ends_with('{') {
            // Skip to the brace that closes it, at the item's indentation.
            let indent = item.len() - item.trim_start().len();
            let mut k = j + 1;
            while k < lines.len() && !(lines[k].len() - lines[k].trim_start().len() == indent && lines[k].trim_start().starts_with('}')) {
                k += 1;
            }
            i = k + 1;
        } else {
            i = j + 1;
        }
    }
    out
}

/// Which top-level module each top-level module's code names.
fn graph_of(src_dir: &Path) -> Graph {
    let mut graph = Graph::new();
    let mut dirs = vec![src_dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()) {
            if entry.is_dir() {
                dirs.push(entry);
                continue;
            }
            let rel = entry.strip_prefix(src_dir).unwrap().to_string_lossy().into_owned();
            if !rel.ends_with(".rs") || is_test_file(&rel) {
                continue;
            }
            let top = rel.split('/').next().unwrap().trim_end_matches(".rs").to_string();
            let text = std::fs::read_to_string(&entry).unwrap();
            let used = graph.entry(top.clone()).or_default();
            for line in non_test_lines(&text).into_iter().filter(|l| !l.trim_start().starts_with("//")) {
                for (at, _) in line.match_indices("crate::") {
                    let name: String = line[at + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                    if !name.is_empty() && name != top {
                        used.insert(name);
                    }
                }
            }
        }
    }
    graph
}

/// A cycle of `graph`, if it has one, as the modules along it.
fn a_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(n: &str, graph: &Graph, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut cycle = path[at..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for next in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_top_level_modules_depend_on_each_other_without_a_cycle() {
    let graph = graph_of(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    // The reading sees the arrows the pod service is built on.
    for (from, to) in [("service", "interception"), ("interception", "datapath"), ("datapath", "libbpf"), ("daemon", "service")] {
        assert!(graph.get(from).is_some_and(|t| t.contains(to)), "{from} -> {to} not seen in {graph:?}");
    }
    if let Some(cycle) = a_cycle(&graph) {
        panic!("the modules of loader/src use each other in a cycle: {} (docs/contributing.md, \"Dependencies\")", cycle.join(" -> "));
    }
}

#[test]
fn a_cycle_is_found_and_test_code_is_left_out() {
    let g = |edges: &[(&str, &str)]| -> Graph {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
        }
        g
    };
    assert_eq!(a_cycle(&g(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
    assert_eq!(a_cycle(&g(&[("a", "b"), ("b", "c"), ("c", "a")])), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    let src = "use crate::x;\n#[cfg(test)]\nmod tests {\n    use crate::y;\n}\n#[cfg(test)]\nmod testutil;\nfn f() { crate::z::g() }\n";
    assert_eq!(non_test_lines(src), vec!["use crate::x;", "fn f() { crate::z::g() }"]);
    assert!(is_test_file("datapath/tc_tests/veth.rs") && is_test_file("libbpf/tests.rs") && !is_test_file("datapath/tc.rs"));
}
