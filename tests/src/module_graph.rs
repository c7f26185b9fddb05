//! Import-cycle check between the modules of each workspace crate.
//!
//! How the check works (`cargo test -p switchyard-tests --lib module_graph`):
//!
//! 1. **Which code.** The workspace members are read from the root `Cargo.toml` (`members = [..]`),
//!    and every `.rs` file under each member's `src/` is read. Every crate root there
//!    (`lib.rs`, `main.rs`, `bin/*.rs`, `bin/*/main.rs`) is a separate module tree.
//! 2. **Comments and literals out.** Line and block comments (nested), string, byte-string and
//!    raw-string literals and char literals are blanked (newlines kept, so line numbers hold),
//!    then the text is split into identifiers, `::` and single punctuation characters.
//! 3. **Module tree.** From each root, `mod name;` declarations are followed to `name.rs` or
//!    `name/mod.rs` (beside a `mod.rs`/crate root; under `foo/` for a `foo.rs`), including
//!    declarations inside inline `mod x { .. }` blocks. Inline modules (`mod tests { .. }`) are
//!    tracked so that `super::` inside them resolves correctly, but they belong to their file.
//!    A declared module without a file, a `#[path]` attribute, or a `.rs` file that no root
//!    reaches makes the check fail (so no code escapes it unseen).
//! 4. **References.** In each file: every `use` tree (nested braces, `self`, `*`, `as`) and
//!    every inline path in code that starts with `crate::`, `super::` or `self::` (not
//!    `$crate`), plus paths starting with a name a `use` of this file bound to a crate path
//!    (`use crate::proxy; proxy::stream::f()`) or a child module a glob import brought in
//!    (`use super::*; stream::f()`), plus string literals that are just such a path
//!    (`#[serde(default = "crate::common::f")]`). Each is made absolute and mapped to the
//!    module file it names: the longest prefix of the path that is a module of the tree.
//! 5. **Edges.** A reference from file module A to module B counts as an edge between the two
//!    *siblings* under their lowest common ancestor: A's and B's ancestors (or themselves) that
//!    are children of it. `chain/serve.rs` using `crate::proxy::forward` is the edge
//!    `chain → proxy` under the crate root. A reference where one end is an ancestor of the
//!    other (a parent using its child, a child using its parent's items) is not an edge: that is
//!    ordinary Rust layout. Test code (`#[cfg(test)]` modules) counts like any other code.
//! 6. **Cycles.** Per parent module, the strongly connected components of the sibling graph are
//!    computed; every component of more than one module is a cycle, reported with the files
//!    involved and, for each edge inside it, the lines that create it. Any cycle fails the test.
//!
//! Limits: it is a lexical check, not name resolution. Paths reached only through a re-export
//! of another module (`pub use`) are attributed to the module named in the path, and macros
//! are read as tokens (a `crate::` path inside a `macro_rules!` body counts where it is
//! written).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

/// The `.rs` files of one crate's `src/`, keyed by path relative to `src/` with `/` separators.
pub type Sources = BTreeMap<String, String>;

/// A module path below its crate root (`["proxy", "stream"]`; empty for the root).
type ModPath = Vec<String>;

/// One line that creates an edge.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Evidence {
    /// File holding the reference (relative to `src/`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The path as written, made absolute (`crate::proxy::forward`).
    pub path: String,
}

/// A cycle: sibling modules under one parent that reach each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// The crate root file of the tree (`lib.rs`, `main.rs`, `bin/x.rs`).
    pub root: String,
    /// The parent module's file.
    pub parent: String,
    /// The files of the modules in the cycle.
    pub members: Vec<String>,
    /// Every edge between members: (from file, to file, the lines creating it).
    pub edges: Vec<(String, String, Vec<Evidence>)>,
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cycle under {} (crate root {}): {}",
            self.parent,
            self.root,
            self.members.join(" <-> ")
        )?;
        for (from, to, evidence) in &self.edges {
            writeln!(f, "  {from} -> {to}:")?;
            let mut lines: BTreeMap<(&str, usize), Vec<&str>> = BTreeMap::new();
            for e in evidence {
                lines.entry((&e.file, e.line)).or_default().push(&e.path);
            }
            for ((file, line), paths) in lines {
                writeln!(f, "    {file}:{line}: {}", paths.join(", "))?;
            }
        }
        Ok(())
    }
}

/// What one crate's check found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Findings {
    /// Import cycles.
    pub cycles: Vec<Cycle>,
    /// Problems that keep the check from seeing all code (missing module files, `#[path]`,
    /// files no root reaches).
    pub problems: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Lexing

/// Blanks comments, string/byte-string/raw-string literals and char literals (keeping
/// newlines), leaving code and lifetimes.
pub fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let is_ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let prev_ident = i > 0 && is_ident(c[i - 1]);
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if !prev_ident && let Some(end) = raw_string_end(&c, i) {
            for &ch in &c[i..end] {
                blank(&mut out, ch);
            }
            i = end;
        } else if c[i] == '"' {
            // A plain string (a `b`/`c` prefix is left as an identifier character, harmless).
            let start = i;
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(c.len());
            let content: String = c[start + 1..i.saturating_sub(1).max(start + 1)]
                .iter()
                .collect();
            if is_crate_path(&content) {
                // `#[serde(default = "crate::common::f")]`: a path in a string, kept.
                out.push(' ');
                out.push_str(&content);
                out.push(' ');
            } else {
                for &ch in &c[start..i] {
                    blank(&mut out, ch);
                }
            }
        } else if c[i] == '\'' {
            // A char literal (`'x'`, `'\n'`, `'\u{..}'`) or a lifetime / label (`'a`).
            let end = if c.get(i + 1) == Some(&'\\') {
                (i + 2..c.len()).find(|&j| c[j] == '\'').map(|j| j + 1)
            } else if c.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    for &ch in &c[i..end] {
                        blank(&mut out, ch);
                    }
                    i = end;
                }
                None => {
                    out.push(c[i]);
                    i += 1;
                }
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Whether a string literal's content is just a path into the crate (`crate::common::f`), as
/// serde and schemars attributes name functions.
fn is_crate_path(s: &str) -> bool {
    let mut segs = s.split("::");
    matches!(segs.next(), Some("crate" | "super" | "self"))
        && s.contains("::")
        && segs.all(|seg| {
            seg.chars()
                .next()
                .is_some_and(|ch| ch.is_alphabetic() || ch == '_')
                && seg.chars().all(|ch| ch.is_alphanumeric() || ch == '_')
        })
}

/// If a raw string (`r"…"`, `r#"…"#`, `br"…"`, `cr"…"`) starts at `i`, the index after it.
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if c.get(j) == Some(&'b') || c.get(j) == Some(&'c') {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = c[j..].iter().take_while(|&&ch| ch == '#').count();
    j += hashes;
    if c.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < c.len() {
        if c[j] == '"'
            && c[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&ch| ch == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(c.len())
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Tok {
    text: String,
    line: usize,
}

impl Tok {
    fn is(&self, s: &str) -> bool {
        self.text == s
    }
    fn is_ident(&self) -> bool {
        self.text
            .chars()
            .next()
            .is_some_and(|ch| ch.is_alphabetic() || ch == '_')
    }
}

/// Identifiers (`r#x` as `x`), numbers, `::` and single punctuation characters of stripped code.
fn tokenize(code: &str) -> Vec<Tok> {
    let c: Vec<char> = code.chars().collect();
    let mut toks = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let mut text: String = c[start..i].iter().collect();
            if text == "r"
                && c.get(i) == Some(&'#')
                && c.get(i + 1)
                    .is_some_and(|ch| ch.is_alphabetic() || *ch == '_')
            {
                let start = i + 1;
                i = start;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                text = c[start..i].iter().collect();
            }
            toks.push(Tok { text, line });
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            toks.push(Tok {
                text: "::".to_owned(),
                line,
            });
            i += 2;
        } else {
            toks.push(Tok {
                text: ch.to_string(),
                line,
            });
            i += 1;
        }
    }
    toks
}

// ---------------------------------------------------------------------------------------------
// Per-file parsing

/// A module declaration `mod name;` found in a file, under the inline modules it sits in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ModDecl {
    inline: Vec<String>,
    name: String,
}

/// A path reference in a file, relative to the (inline) module it sits in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawRef {
    inline: Vec<String>,
    segs: Vec<String>,
    line: usize,
    /// From a `use` leaf: the name it binds (`None` for a glob).
    binds: Option<String>,
    glob: bool,
    from_use: bool,
}

#[derive(Debug, Default)]
struct Parsed {
    mods: Vec<ModDecl>,
    refs: Vec<RawRef>,
    path_attr_lines: Vec<usize>,
}

/// One leaf of a use tree.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UseLeaf {
    segs: Vec<String>,
    binds: Option<String>,
    glob: bool,
    line: usize,
}

/// Parses a use tree starting at `toks[*i]` under `prefix`, pushing its leaves.
fn use_tree(toks: &[Tok], i: &mut usize, prefix: Vec<String>, out: &mut Vec<UseLeaf>) {
    let mut path = prefix;
    if toks.get(*i).is_some_and(|t| t.is("::")) {
        *i += 1;
        if path.is_empty() {
            path.push("::".to_owned());
        }
    }
    while let Some(t) = toks.get(*i) {
        *i += 1;
        if t.is("*") {
            out.push(UseLeaf {
                segs: path,
                binds: None,
                glob: true,
                line: t.line,
            });
            return;
        } else if t.is("{") {
            loop {
                match toks.get(*i) {
                    None => return,
                    Some(t) if t.is("}") => {
                        *i += 1;
                        return;
                    }
                    Some(t) if t.is(",") => *i += 1,
                    Some(_) => {
                        let before = *i;
                        use_tree(toks, i, path.clone(), out);
                        if *i == before {
                            *i += 1;
                        }
                    }
                }
            }
        } else if t.is_ident() {
            let mut binds = if t.is("self") {
                path.last().cloned()
            } else {
                Some(t.text.clone())
            };
            path.push(t.text.clone());
            if toks.get(*i).is_some_and(|t| t.is("::")) {
                *i += 1;
                continue;
            }
            if toks.get(*i).is_some_and(|t| t.is("as")) {
                binds = toks.get(*i + 1).map(|t| t.text.clone());
                *i += 2;
            }
            out.push(UseLeaf {
                segs: path,
                binds,
                glob: false,
                line: t.line,
            });
            return;
        } else {
            *i -= 1;
            return;
        }
    }
}

/// The leaves of one `use` declaration's tree (`src` is what follows the `use` keyword).
#[cfg(test)]
fn use_leaves(src: &str) -> Vec<Vec<String>> {
    let toks = tokenize(&strip(src));
    let mut out = Vec::new();
    use_tree(&toks, &mut 0, Vec::new(), &mut out);
    out.into_iter().map(|l| l.segs).collect()
}

fn parse_file(src: &str) -> Parsed {
    let toks = tokenize(&strip(src));
    let mut parsed = Parsed::default();
    // Inline modules we are in: (name, brace depth outside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let names = |inline: &[(String, usize)]| inline.iter().map(|(n, _)| n.clone()).collect();
    while i < toks.len() {
        let t = &toks[i];
        let prev = i.checked_sub(1).map(|p| &toks[p]);
        let prev_joins = prev.is_some_and(|p| p.is("::") || p.is("$") || p.is("."));
        if t.is("{") {
            depth += 1;
            i += 1;
        } else if t.is("}") {
            depth = depth.saturating_sub(1);
            if inline.last().is_some_and(|(_, d)| *d == depth) {
                inline.pop();
            }
            i += 1;
        } else if t.is("#")
            && toks.get(i + 1).is_some_and(|t| t.is("["))
            && toks.get(i + 2).is_some_and(|t| t.is("path"))
            && toks.get(i + 3).is_some_and(|t| t.is("="))
        {
            parsed.path_attr_lines.push(t.line);
            i += 4;
        } else if t.is("mod") && !prev_joins && toks.get(i + 1).is_some_and(Tok::is_ident) {
            let name = toks[i + 1].text.clone();
            match toks.get(i + 2) {
                Some(n) if n.is(";") => {
                    parsed.mods.push(ModDecl {
                        inline: names(&inline),
                        name,
                    });
                    i += 3;
                }
                Some(n) if n.is("{") => {
                    inline.push((name, depth));
                    depth += 1;
                    i += 3;
                }
                _ => i += 1,
            }
        } else if t.is("use") && !prev_joins {
            i += 1;
            let mut leaves = Vec::new();
            use_tree(&toks, &mut i, Vec::new(), &mut leaves);
            while i < toks.len() && !toks[i].is(";") {
                i += 1;
            }
            for leaf in leaves {
                parsed.refs.push(RawRef {
                    inline: names(&inline),
                    segs: leaf.segs,
                    line: leaf.line,
                    binds: leaf.binds,
                    glob: leaf.glob,
                    from_use: true,
                });
            }
        } else if t.is_ident() && !prev_joins && toks.get(i + 1).is_some_and(|n| n.is("::")) {
            // A path in code: `a::b::c`, stopping before generics, braces or anything else.
            let line = t.line;
            let mut segs = vec![t.text.clone()];
            i += 1;
            while toks.get(i).is_some_and(|t| t.is("::"))
                && toks.get(i + 1).is_some_and(Tok::is_ident)
            {
                segs.push(toks[i + 1].text.clone());
                i += 2;
            }
            parsed.refs.push(RawRef {
                inline: names(&inline),
                segs,
                line,
                binds: None,
                glob: false,
                from_use: false,
            });
        } else {
            i += 1;
        }
    }
    parsed
}

// ---------------------------------------------------------------------------------------------
// Module tree and graph

/// One file module of a tree.
#[derive(Debug)]
struct Module {
    file: String,
    parsed: Parsed,
}

/// The file that holds child modules' files of `file` (for children declared inside the inline
/// modules `inline`).
fn child_dir(file: &str, is_root: bool, inline: &[String]) -> String {
    let (dir, name) = match file.rsplit_once('/') {
        Some((dir, name)) => (format!("{dir}/"), name),
        None => (String::new(), file),
    };
    let mut dir = if is_root || name == "mod.rs" {
        dir
    } else {
        format!("{dir}{}/", name.trim_end_matches(".rs"))
    };
    for m in inline {
        dir.push_str(m);
        dir.push('/');
    }
    dir
}

/// Builds the tree of file modules from a crate root by following `mod name;` declarations.
fn build_tree(
    sources: &Sources,
    root: &str,
    problems: &mut Vec<String>,
) -> BTreeMap<ModPath, Module> {
    let mut tree = BTreeMap::new();
    let mut todo = vec![(ModPath::new(), root.to_owned())];
    while let Some((path, file)) = todo.pop() {
        let Some(src) = sources.get(&file) else {
            continue;
        };
        let parsed = parse_file(src);
        for line in &parsed.path_attr_lines {
            problems.push(format!(
                "{file}:{line}: #[path] is not supported by the check"
            ));
        }
        for decl in &parsed.mods {
            let dir = child_dir(&file, path.is_empty(), &decl.inline);
            let candidates = [
                format!("{dir}{}.rs", decl.name),
                format!("{dir}{}/mod.rs", decl.name),
            ];
            let mut child = path.clone();
            child.extend(decl.inline.iter().cloned());
            child.push(decl.name.clone());
            match candidates.iter().find(|c| sources.contains_key(*c)) {
                Some(found) => todo.push((child, found.clone())),
                None => problems.push(format!(
                    "{file}: `mod {};` has no file ({} or {})",
                    decl.name, candidates[0], candidates[1]
                )),
            }
        }
        tree.insert(path, Module { file, parsed });
    }
    tree
}

/// Makes `segs` absolute from the module `cur`; `None` for a path outside the crate.
fn absolute(segs: &[String], cur: &[String], bound: &BTreeMap<String, ModPath>) -> Option<ModPath> {
    let first = segs.first()?;
    let mut base: ModPath = match first.as_str() {
        "crate" => Vec::new(),
        "self" | "super" => cur.to_vec(),
        name => bound.get(name)?.clone(),
    };
    let mut rest = &segs[1..];
    if first == "super" {
        base.pop()?;
    }
    while let Some(s) = rest.first().filter(|s| *s == "super" || *s == "self") {
        if s == "super" {
            base.pop()?;
        }
        rest = &rest[1..];
    }
    base.extend(rest.iter().filter(|s| *s != "self").cloned());
    Some(base)
}

/// The longest prefix of `path` that is a module of the tree.
fn owner<'a>(tree: &BTreeMap<ModPath, Module>, path: &'a [String]) -> &'a [String] {
    (0..=path.len())
        .rev()
        .map(|n| &path[..n])
        .find(|p| tree.contains_key(*p))
        .unwrap_or(&[])
}

/// Sibling edges: (parent, from child, to child) → evidence.
type Edges = BTreeMap<(ModPath, ModPath, ModPath), BTreeSet<Evidence>>;

fn edges(tree: &BTreeMap<ModPath, Module>) -> Edges {
    let mut edges = Edges::new();
    for (from, module) in tree {
        // Names this file binds to crate paths: `use` leaves, and child modules of glob-imported
        // modules (a name a `use` binds to anything else shadows a glob's).
        let mut bound = BTreeMap::new();
        let mut globbed = BTreeMap::new();
        let mut shadowed = BTreeSet::new();
        for r in module.parsed.refs.iter().filter(|r| r.from_use) {
            let cur: ModPath = from.iter().chain(&r.inline).cloned().collect();
            let abs = absolute(&r.segs, &cur, &BTreeMap::new());
            match (&r.binds, abs) {
                (Some(name), Some(abs)) => {
                    bound.insert(name.clone(), abs);
                }
                (Some(name), None) => {
                    shadowed.insert(name.clone());
                }
                (None, Some(abs)) if r.glob => {
                    for child in tree.keys() {
                        if child.len() == abs.len() + 1 && child.starts_with(&abs) {
                            globbed.insert(child[abs.len()].clone(), child.clone());
                        }
                    }
                }
                (None, _) => {}
            }
        }
        let mut from_glob: BTreeMap<String, bool> =
            bound.keys().map(|n| (n.clone(), false)).collect();
        for (name, path) in globbed {
            if !shadowed.contains(&name) && !bound.contains_key(&name) {
                bound.insert(name.clone(), path);
                from_glob.insert(name, true);
            }
        }
        for r in &module.parsed.refs {
            let cur: ModPath = from.iter().chain(&r.inline).cloned().collect();
            let Some(abs) = absolute(&r.segs, &cur, &bound) else {
                continue;
            };
            let to = owner(tree, &abs);
            let via_use = bound
                .get(&r.segs[0])
                .filter(|_| !r.from_use && !from_glob[&r.segs[0]]);
            if via_use.is_some_and(|b| owner(tree, b) == to) {
                // `Name::x` after `use crate::m::Name`: the `use` already names that module.
                continue;
            }
            let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
            if common == from.len() || common == to.len() {
                continue;
            }
            let written = if matches!(r.segs[0].as_str(), "crate" | "self" | "super") {
                r.segs.join("::")
            } else {
                format!("{} (= crate::{})", r.segs.join("::"), abs.join("::"))
            };
            edges
                .entry((
                    from[..common].to_vec(),
                    from[..=common].to_vec(),
                    to[..=common].to_vec(),
                ))
                .or_default()
                .insert(Evidence {
                    file: module.file.clone(),
                    line: r.line,
                    path: written,
                });
        }
    }
    edges
}

/// Strongly connected components (Tarjan) of a graph given as adjacency sets.
fn components(graph: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    struct State<'g> {
        graph: &'g BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<&'g ModPath, usize>,
        low: BTreeMap<&'g ModPath, usize>,
        stack: Vec<&'g ModPath>,
        on_stack: BTreeSet<&'g ModPath>,
        out: Vec<Vec<ModPath>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g ModPath) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.entry(v).or_default();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.entry(v).or_default();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            comp.sort();
            s.out.push(comp);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// The crate roots among `sources`: `lib.rs`, `main.rs`, `bin/*.rs`, `bin/*/main.rs`.
fn roots(sources: &Sources) -> Vec<String> {
    sources
        .keys()
        .filter(|f| {
            let parts: Vec<&str> = f.split('/').collect();
            matches!(
                parts.as_slice(),
                ["lib.rs"] | ["main.rs"] | ["bin", _] | ["bin", _, "main.rs"]
            )
        })
        .cloned()
        .collect()
}

/// Checks one crate's `src/` files: module cycles, and anything that keeps code unseen.
pub fn check(sources: &Sources) -> Findings {
    let mut findings = Findings::default();
    let mut reached = BTreeSet::new();
    for root in roots(sources) {
        let tree = build_tree(sources, &root, &mut findings.problems);
        reached.extend(tree.values().map(|m| m.file.clone()));
        let edges = edges(&tree);
        let mut graphs: BTreeMap<ModPath, BTreeMap<ModPath, BTreeSet<ModPath>>> = BTreeMap::new();
        for (parent, from, to) in edges.keys() {
            let graph = graphs.entry(parent.clone()).or_default();
            graph.entry(from.clone()).or_default().insert(to.clone());
            graph.entry(to.clone()).or_default();
        }
        let file = |p: &ModPath| tree.get(p).map(|m| m.file.clone()).unwrap_or_default();
        for (parent, graph) in &graphs {
            for comp in components(graph).into_iter().filter(|c| c.len() > 1) {
                let members: BTreeSet<&ModPath> = comp.iter().collect();
                let cycle_edges = edges
                    .iter()
                    .filter(|((p, a, b), _)| {
                        p == parent && members.contains(a) && members.contains(b)
                    })
                    .map(|((_, a, b), ev)| (file(a), file(b), ev.iter().cloned().collect()))
                    .collect();
                findings.cycles.push(Cycle {
                    root: root.clone(),
                    parent: file(parent),
                    members: comp.iter().map(file).collect(),
                    edges: cycle_edges,
                });
            }
        }
    }
    for file in sources.keys().filter(|f| !reached.contains(*f)) {
        findings
            .problems
            .push(format!("{file}: no crate root declares it as a module"));
    }
    findings
}

/// Reads every `.rs` file under `dir` into [`Sources`] (paths relative to `dir`).
pub fn read_sources(dir: &Path) -> std::io::Result<Sources> {
    fn walk(base: &Path, dir: &Path, out: &mut Sources) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(base, &path, out)?;
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(base).unwrap_or(&path);
                let key = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.insert(key, std::fs::read_to_string(&path)?);
            }
        }
        Ok(())
    }
    let mut out = Sources::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

/// The `members` of a workspace `Cargo.toml`.
pub fn workspace_members(cargo_toml: &str) -> Vec<String> {
    let Some(start) = cargo_toml
        .lines()
        .position(|l| l.trim_start().starts_with("members"))
    else {
        return Vec::new();
    };
    let text: String = cargo_toml
        .lines()
        .skip(start)
        .collect::<Vec<_>>()
        .join("\n");
    let list = text
        .split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .unwrap_or_default();
    list.split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(files: &[(&str, &str)]) -> Sources {
        files
            .iter()
            .map(|(f, s)| ((*f).to_owned(), (*s).to_owned()))
            .collect()
    }

    fn segs(s: &str) -> Vec<String> {
        s.split("::").map(str::to_owned).collect()
    }

    /// The workspace: no crate has an import cycle between its modules.
    #[test]
    fn no_module_cycles_in_the_workspace() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cargo = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let members = workspace_members(&cargo);
        for known in ["crds", "routing", "operator", "dataplane", "tests", "bench"] {
            assert!(
                members.iter().any(|m| m == known),
                "{known} not in {members:?}"
            );
        }
        let mut report = String::new();
        for member in &members {
            let sources = read_sources(&root.join(member).join("src")).unwrap();
            assert!(!sources.is_empty(), "{member}/src has no .rs file");
            let findings = check(&sources);
            for p in &findings.problems {
                report.push_str(&format!("{member}/src/{p}\n"));
            }
            for c in &findings.cycles {
                let text = c.to_string();
                let text = text.replace("    ", &format!("    {member}/src/"));
                report.push_str(&format!("{member}: {text}"));
            }
        }
        assert!(report.is_empty(), "module import cycles:\n{report}");
    }

    #[test]
    fn finds_a_cycle_between_siblings_with_the_lines() {
        let found = check(&sources(&[
            ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
            ("a.rs", "use crate::b::thing;\n"),
            (
                "b.rs",
                "// crate::c::nothing\nfn f() {\n    crate::a::g();\n}\n",
            ),
            ("c.rs", "use crate::a;\n"),
        ]));
        assert!(found.problems.is_empty(), "{:?}", found.problems);
        assert_eq!(found.cycles.len(), 1, "{:?}", found.cycles);
        let cycle = &found.cycles[0];
        assert_eq!(cycle.parent, "lib.rs");
        assert_eq!(cycle.members, ["a.rs", "b.rs"]);
        let lines: Vec<(String, String, usize, String)> = cycle
            .edges
            .iter()
            .flat_map(|(a, b, ev)| {
                ev.iter()
                    .map(|e| (a.clone(), b.clone(), e.line, e.path.clone()))
            })
            .collect();
        assert_eq!(
            lines,
            [
                ("a.rs".into(), "b.rs".into(), 1, "crate::b::thing".into()),
                ("b.rs".into(), "a.rs".into(), 3, "crate::a::g".into()),
            ]
        );
    }

    #[test]
    fn parent_and_child_are_not_a_cycle() {
        let found = check(&sources(&[
            ("lib.rs", "mod p;\nuse p::q::Item;\nfn f() { p::q::g(); }\n"),
            ("p/mod.rs", "mod q;\nuse self::q::Item;\npub use q::g;\n"),
            (
                "p/q.rs",
                "use super::Shared;\nuse crate::p::Other;\nuse crate::Top;\n",
            ),
        ]));
        assert_eq!(found, Findings::default());
    }

    #[test]
    fn edges_count_between_the_siblings_under_the_common_ancestor() {
        // x/deep.rs -> y, and y -> x (via x's item): a cycle x <-> y under the root.
        let found = check(&sources(&[
            ("lib.rs", "mod x;\nmod y;\n"),
            ("x.rs", "mod deep;\n"),
            ("x/deep.rs", "fn f() { super::super::y::g() }\n"),
            ("y.rs", "use crate::x::{deep::{self, Thing}, Other};\n"),
        ]));
        assert_eq!(found.cycles.len(), 1, "{:?}", found.cycles);
        assert_eq!(found.cycles[0].members, ["x.rs", "y.rs"]);
        assert_eq!(found.cycles[0].edges[0].0, "x.rs");
        assert_eq!(found.cycles[0].edges[0].2[0].file, "x/deep.rs");
        assert_eq!(found.cycles[0].edges[0].2[0].path, "super::super::y::g");
    }

    #[test]
    fn cycles_deeper_in_the_tree_name_their_parent() {
        let found = check(&sources(&[
            ("main.rs", "mod proxy;\n"),
            ("proxy/mod.rs", "mod attempt;\nmod stream;\n"),
            (
                "proxy/attempt.rs",
                "use super::*;\nfn f() { stream::go() }\n",
            ),
            (
                "proxy/stream.rs",
                "use super::attempt as a;\nfn f() { a::go() }\n",
            ),
        ]));
        assert_eq!(found.cycles.len(), 1, "{:?}", found.cycles);
        assert_eq!(found.cycles[0].root, "main.rs");
        assert_eq!(found.cycles[0].parent, "proxy/mod.rs");
        assert_eq!(
            found.cycles[0].members,
            ["proxy/attempt.rs", "proxy/stream.rs"]
        );
    }

    #[test]
    fn super_inside_an_inline_test_module_is_its_file() {
        let found = check(&sources(&[
            ("lib.rs", "mod a;\nmod b;\n"),
            (
                "a.rs",
                "use crate::b::B;\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
            ),
            (
                "b.rs",
                "pub struct B;\nmod tests {\n    use super::B;\n    fn f() { super::B; }\n}\n",
            ),
        ]));
        assert_eq!(found, Findings::default());
    }

    #[test]
    fn comments_strings_and_macro_crate_are_not_references() {
        let found = check(&sources(&[
            ("lib.rs", "mod a;\nmod b;\n"),
            ("a.rs", "use crate::b::B;\n"),
            (
                "b.rs",
                concat!(
                    "/* use crate::a; /* nested */ crate::a::x */\n",
                    "const S: &str = \"see crate::a::x\";\n",
                    "const R: &str = r#\"crate::a::\"x\"#;\n",
                    "const C: char = '\"'; fn f<'a>(x: &'a str) {}\n",
                    "macro_rules! m { () => { $crate::a::x } }\n",
                    "/// [`crate::a::x`]\nfn g() {}\n",
                ),
            ),
        ]));
        assert_eq!(found, Findings::default());
    }

    #[test]
    fn paths_in_attribute_strings_and_globbed_modules_count() {
        let found = check(&sources(&[
            ("lib.rs", "mod common;\nmod kind;\nmod p;\n"),
            ("common.rs", "use crate::kind::Kind;\n"),
            (
                "kind.rs",
                "#[serde(default = \"crate::common::yes\")]\nstruct Kind;\n",
            ),
            ("p/mod.rs", "mod a;\nmod b;\nmod c;\n"),
            // `b` comes from the glob, `c` is shadowed by an external import.
            (
                "p/a.rs",
                "use super::*;\nuse other::c;\nfn f() { b::g(); c::h(); }\n",
            ),
            ("p/b.rs", "use super::a::A;\n"),
            ("p/c.rs", "use super::a::A;\n"),
        ]));
        let members: Vec<_> = found.cycles.iter().map(|c| c.members.clone()).collect();
        assert_eq!(
            members,
            [vec!["common.rs", "kind.rs"], vec!["p/a.rs", "p/b.rs"]]
        );
    }

    #[test]
    fn nested_use_trees_are_expanded() {
        assert_eq!(
            use_leaves("crate::{a::{b, c::{self, D as E}}, d, e::*};"),
            [
                segs("crate::a::b"),
                segs("crate::a::c::self"),
                segs("crate::a::c::D"),
                segs("crate::d"),
                segs("crate::e"),
            ]
        );
        assert_eq!(
            use_leaves("super::super::x::{\n    y,\n    z,\n};"),
            [segs("super::super::x::y"), segs("super::super::x::z")]
        );
        assert_eq!(use_leaves("::std::io;"), [["::", "std", "io"]]);
    }

    #[test]
    fn module_files_in_both_layouts_are_found() {
        let found = check(&sources(&[
            ("lib.rs", "pub mod a;\npub mod b;\nmod inline { mod c; }\n"),
            ("a.rs", "mod x;\n"),
            ("a/x.rs", ""),
            ("b/mod.rs", "mod y;\n"),
            ("b/y.rs", ""),
            ("inline/c.rs", ""),
            ("stray.rs", ""),
            ("bin/tool.rs", "mod missing;\n"),
        ]));
        assert!(found.cycles.is_empty());
        assert_eq!(
            found.problems,
            [
                "bin/tool.rs: `mod missing;` has no file (bin/missing.rs or bin/missing/mod.rs)",
                "stray.rs: no crate root declares it as a module",
            ]
        );
    }

    #[test]
    fn workspace_members_are_read() {
        assert_eq!(
            workspace_members("[workspace]\nmembers = [\n  \"a\",\n  \"b/c\",\n]\nx = [\"d\"]\n"),
            ["a", "b/c"]
        );
    }
}
