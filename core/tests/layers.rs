//! The shape of `core/src`, read from its imports: the folders are the
//! layers (lowest first, in [`LAYERS`]), a file imports only from its own
//! layer and the ones below, and no two files import each other, however
//! indirectly. Every `crate::`, `super::` and `self::` path in the code
//! (not in comments, not in `#[cfg(test)]` modules) is resolved to the file
//! that defines what it names, through the re-exports on the way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first: each is the top-level modules it holds.
/// `lib` (the crate root), `testing`, `fuzzing` and test-only modules sit
/// above all of them and are not checked.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "base",
        &[
            "runtime", "io", "boxed", "message", "error", "state", "observe", "trigger", "watch",
        ],
    ),
    ("web", &["web"]),
    ("policy", &["policy"]),
    ("delivery", &["delivery"]),
    ("topics", &["topics"]),
    ("connection", &["connection"]),
    ("faces", &["events", "loop_fn", "api", "admin"]),
    ("app", &["app"]),
    ("server", &["server"]),
];

const UNCHECKED: &[&str] = &["lib", "testing", "fuzzing", "defaults_table", "guide"];

/// One source file: its module path and its code, comments and test
/// modules removed.
struct Source {
    module: Vec<String>,
    code: String,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn read_all() -> BTreeMap<PathBuf, Source> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src()).unwrap().with_extension("");
            let mut module: Vec<String> = rel
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            out.insert(
                rel,
                Source {
                    module,
                    code: code_of(&text),
                },
            );
        }
    }
    out
}

/// The code: line comments gone, and everything from a `#[cfg(test)]`
/// module on (test modules close the file by convention here).
fn code_of(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        let kept = match line.find("//") {
            // `//` inside a string ("http://") is rare in code: treat a
            // quote before it as a string and keep the line.
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        };
        code.push_str(kept);
        code.push('\n');
    }
    code
}

/// Expands a use tree (`a::{b, c::{d, e as f}}`) into full paths.
fn expand(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim_end_matches("::").trim();
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let base = join(prefix, head);
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..i], &base, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], &base, out);
        return;
    }
    let name = tree.split(" as ").next().unwrap_or("").trim();
    if !name.is_empty() {
        out.push(join(prefix, name));
    }
}

fn join(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_owned(),
        (_, true) => prefix.to_owned(),
        _ => format!("{prefix}::{path}"),
    }
}

/// Every `use` statement of `code`: (its expanded paths, whether it is a
/// re-export).
fn uses(code: &str) -> Vec<(Vec<String>, bool)> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = find_use(rest) {
        let stmt_start = at;
        let Some(end) = rest[stmt_start..].find(';') else {
            break;
        };
        let stmt = &rest[stmt_start..stmt_start + end];
        let public = stmt.trim_start().starts_with("pub");
        let tree = stmt.split_once("use ").map_or("", |(_, t)| t);
        let mut paths = Vec::new();
        expand(tree, "", &mut paths);
        out.push((paths, public));
        rest = &rest[stmt_start + end + 1..];
    }
    out
}

fn find_use(code: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = code[from..].find("use ") {
        let at = from + i;
        let line_start = code[..at].rfind('\n').map_or(0, |n| n + 1);
        let before = code[line_start..at].trim();
        if before.is_empty() || before == "pub" || before.starts_with("pub(") {
            return Some(line_start);
        }
        from = at + 4;
    }
    None
}

/// Inline paths (`crate::a::b`, `super::c`) outside `use` statements.
fn inline_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            let ok_before = code[..at]
                .chars()
                .last()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
            let mut end = at;
            let bytes = code.as_bytes();
            while end < code.len()
                && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_' || bytes[end] == b':')
            {
                end += 1;
            }
            let path = code[at..end].trim_end_matches(':');
            // `super::{a, b}` names its items in the braces (read as a use tree).
            let bare = path
                .split("::")
                .all(|p| matches!(p, "crate" | "super" | "self"));
            if ok_before && !bare {
                out.push(path.to_owned());
            }
            from = end.max(at + 1);
        }
    }
    out
}

/// Where names resolve: module path → file, and each module's re-exports
/// (name → the full path it stands for).
struct Resolver {
    files: BTreeMap<Vec<String>, PathBuf>,
    reexports: BTreeMap<Vec<String>, BTreeMap<String, Vec<String>>>,
}

impl Resolver {
    fn new(sources: &BTreeMap<PathBuf, Source>) -> Self {
        let mut files = BTreeMap::new();
        let mut reexports: BTreeMap<Vec<String>, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for (path, s) in sources {
            files.insert(s.module.clone(), path.clone());
        }
        for s in sources.values() {
            for (paths, public) in uses(&s.code) {
                if !public {
                    continue;
                }
                for p in paths {
                    let full = absolute(&s.module, &p, &files);
                    if let Some(name) = full.last() {
                        reexports
                            .entry(s.module.clone())
                            .or_default()
                            .insert(name.clone(), full.clone());
                    }
                }
            }
        }
        Resolver { files, reexports }
    }

    /// The file that defines what `path` (absolute) names, if it is ours.
    fn file(&self, path: &[String], depth: usize) -> Option<PathBuf> {
        if depth > 8 {
            return None;
        }
        // The deepest prefix that is a module.
        let mut module = Vec::new();
        let mut i = 0;
        while i < path.len() {
            let mut next = module.clone();
            next.push(path[i].clone());
            if self.files.contains_key(&next) {
                module = next;
                i += 1;
            } else {
                break;
            }
        }
        if module.is_empty() && !path.is_empty() {
            // A name at the crate root: a re-export of lib.rs.
            let root: Vec<String> = Vec::new();
            return self.via(&root, path, depth);
        }
        if i < path.len()
            && let Some(found) = self.via(&module, &path[module.len()..], depth)
        {
            return Some(found);
        }
        self.files
            .get(&module)
            .cloned()
            .or_else(|| self.files.get(&vec!["lib".to_owned()]).cloned())
    }

    fn via(&self, module: &[String], rest: &[String], depth: usize) -> Option<PathBuf> {
        let target = self.reexports.get(module)?.get(rest.first()?)?;
        let mut full = target.clone();
        full.extend(rest[1..].iter().cloned());
        if full.len() >= 2 && full[..full.len() - 1] == *module && rest.len() == 1 {
            return None;
        }
        self.file(&full, depth + 1)
    }
}

/// `path` as seen from `module`, made absolute (from the crate root).
fn absolute(module: &[String], path: &str, files: &BTreeMap<Vec<String>, PathBuf>) -> Vec<String> {
    let mut parts: Vec<String> = path
        .split("::")
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    // The module a file's `super` and `self` are relative to: a `mod.rs`
    // (or lib.rs) is its own module.
    let mut base = module.to_vec();
    let is_dir = files
        .get(module)
        .is_some_and(|f| f.file_name().is_some_and(|n| n == "mod.rs"));
    let _ = is_dir;
    match parts.first().map(String::as_str) {
        Some("crate") => {
            parts.remove(0);
            parts
        }
        Some("super") => {
            while parts.first().is_some_and(|p| p == "super") {
                parts.remove(0);
                base.pop();
            }
            base.extend(parts);
            base
        }
        Some("self") => {
            parts.remove(0);
            base.extend(parts);
            base
        }
        _ => {
            // A path relative to the module (`use outbox::Shared` in a
            // mod.rs), when its first segment is a child module.
            let mut child = base.clone();
            child.push(parts.first().cloned().unwrap_or_default());
            if files.contains_key(&child) {
                base.extend(parts);
                base
            } else {
                Vec::new()
            }
        }
    }
}

fn layer_of(module: &[String]) -> Option<usize> {
    let top = module.first().map_or("lib", String::as_str);
    if UNCHECKED.contains(&top) {
        return None;
    }
    LAYERS.iter().position(|(_, tops)| tops.contains(&top))
}

/// file → the files it imports from.
fn graph() -> (
    BTreeMap<PathBuf, BTreeSet<PathBuf>>,
    BTreeMap<PathBuf, Vec<String>>,
) {
    let sources = read_all();
    let resolver = Resolver::new(&sources);
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    let modules: BTreeMap<PathBuf, Vec<String>> = sources
        .iter()
        .map(|(p, s)| (p.clone(), s.module.clone()))
        .collect();
    for (path, s) in &sources {
        let mut paths: Vec<String> = uses(&s.code).into_iter().flat_map(|(p, _)| p).collect();
        paths.extend(inline_paths(&s.code));
        for p in paths {
            let full = absolute(&s.module, &p, &resolver.files);
            if full.is_empty() {
                continue;
            }
            if let Some(file) = resolver.file(&full, 0)
                && file != *path
            {
                if std::env::var("LAYERS_DEBUG").is_ok_and(|d| path.ends_with(&d)) {
                    eprintln!("{} : {p} -> {}", path.display(), file.display());
                }
                edges.entry(path.clone()).or_default().insert(file);
            }
        }
    }
    (edges, modules)
}

#[test]
fn every_file_sits_in_a_layer() {
    let (_, modules) = graph();
    let lost: Vec<_> = modules
        .iter()
        .filter(|(_, m)| {
            let top = m.first().map_or("lib", String::as_str);
            !UNCHECKED.contains(&top) && layer_of(m).is_none()
        })
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(
        lost.is_empty(),
        "files in no layer (add them to LAYERS): {lost:?}"
    );
}

#[test]
fn no_import_points_up_a_layer() {
    let (edges, modules) = graph();
    let mut upward = Vec::new();
    for (from, tos) in &edges {
        let Some(lf) = layer_of(&modules[from]) else {
            continue;
        };
        for to in tos {
            let Some(lt) = layer_of(&modules[to]) else {
                upward.push(format!(
                    "{} -> {} (unchecked)",
                    from.display(),
                    to.display()
                ));
                continue;
            };
            if lt > lf {
                upward.push(format!(
                    "{} ({}) -> {} ({})",
                    from.display(),
                    LAYERS[lf].0,
                    to.display(),
                    LAYERS[lt].0
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "{} upward imports:\n{}",
        upward.len(),
        upward.join("\n")
    );
}

#[test]
fn no_two_files_import_each_other() {
    let (edges, modules) = graph();
    // Tarjan's strongly connected components over the checked files.
    let nodes: Vec<&PathBuf> = modules
        .keys()
        .filter(|p| layer_of(&modules[*p]).is_some())
        .collect();
    let index_of: BTreeMap<&PathBuf, usize> =
        nodes.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    let adj: Vec<Vec<usize>> = nodes
        .iter()
        .map(|p| {
            edges
                .get(*p)
                .into_iter()
                .flatten()
                .filter_map(|t| index_of.get(t).copied())
                .collect()
        })
        .collect();
    let circles = strongly_connected(&adj);
    let shown: Vec<String> = circles
        .iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            // The circle, then the imports that make it.
            let names: Vec<String> = c.iter().map(|&i| nodes[i].display().to_string()).collect();
            let mut inside = Vec::new();
            for &i in c {
                for j in adj[i].iter().filter(|j| c.contains(j)) {
                    inside.push(format!(
                        "  {} -> {}",
                        nodes[i].display(),
                        nodes[*j].display()
                    ));
                }
            }
            format!("{}\n{}", names.join(" <-> "), inside.join("\n"))
        })
        .collect();
    assert!(
        shown.is_empty(),
        "{} circles:\n{}",
        shown.len(),
        shown.join("\n")
    );
}

fn strongly_connected(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct State {
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(v: usize, adj: &[Vec<usize>], s: &mut State) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on[v] = true;
        for &w in &adj[v] {
            match s.index[w] {
                None => {
                    visit(w, adj, s);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut c = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on[w] = false;
                c.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(c);
        }
    }
    let n = adj.len();
    let mut s = State {
        index: vec![None; n],
        low: vec![0; n],
        on: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(v, adj, &mut s);
        }
    }
    s.out
}
