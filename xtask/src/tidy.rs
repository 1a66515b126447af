//! Tidy checks on the sources themselves (part of `cargo xtask ci` and
//! `cargo xtask tidy`), after rust-analyzer's `tidy.rs`: rules about the
//! shape of the code that a compiler can't see.
//!
//! - every module starts with a `//!` doc saying what it is for;
//! - `docs/ARCHITECTURE.md` names every crate of the workspace;
//! - `.expect(` and `unreachable!` outside tests only where listed, with a
//!   reason, in `xtask/tidy/panics-allowed.txt`;
//! - the HTTP front-end crate (`crates/auth-http`) never names `diesel` or
//!   `storage::`: it calls `accounts` operations;
//! - the server's top-level modules (`apps/auth-server/src`) import each
//!   other without cycles.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Runs every source check; lists all problems, then fails if any.
pub fn check_sources(root: &Path) -> Result<()> {
    let mut problems = Vec::new();
    let sources = rust_sources(root)?;
    module_docs(root, &sources, &mut problems)?;
    architecture_names_every_crate(root, &mut problems)?;
    panics_only_where_allowed(root, &sources, &mut problems)?;
    front_end_uses_no_storage(root, &mut problems)?;
    server_modules_without_cycles(root, &mut problems)?;
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("tidy: {problem}");
        }
        bail!("{} tidy violation(s)", problems.len());
    }
    println!(
        "tidy: {} source files: module docs, crate map, panics, front-end layering and server module cycles ok",
        sources.len()
    );
    Ok(())
}

/// The non-test Rust sources: `src/` of every crate, app, example and xtask.
fn rust_sources(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for parent in ["crates", "apps", "examples"] {
        for member in read_dir_sorted(&root.join(parent))? {
            collect_rs(&member.join("src"), &mut files)?;
        }
    }
    collect_rs(&root.join("xtask/src"), &mut files)?;
    Ok(files)
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading {}", dir.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    entries.sort();
    Ok(entries)
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for path in read_dir_sorted(dir)? {
        if path.is_dir() {
            collect_rs(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn module_docs(root: &Path, sources: &[PathBuf], problems: &mut Vec<String>) -> Result<()> {
    for path in sources {
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if !first.starts_with("//!") {
            problems.push(format!(
                "{} has no module doc: start it with `//!` lines saying what the module is for",
                relative(root, path)
            ));
        }
    }
    Ok(())
}

fn architecture_names_every_crate(root: &Path, problems: &mut Vec<String>) -> Result<()> {
    let map = fs::read_to_string(root.join("docs/ARCHITECTURE.md"))
        .context("reading docs/ARCHITECTURE.md")?;
    for parent in ["crates", "apps", "examples"] {
        for member in read_dir_sorted(&root.join(parent))? {
            if !member.join("Cargo.toml").exists() {
                continue;
            }
            let name = member.file_name().unwrap_or_default().to_string_lossy();
            if !map.contains(name.as_ref()) {
                problems.push(format!(
                    "docs/ARCHITECTURE.md does not name `{name}` ({parent}/{name}): the map must show every crate"
                ));
            }
        }
    }
    Ok(())
}

/// `path count reason` per line; `#` starts a comment.
fn allowed_panics(root: &Path) -> Result<BTreeMap<String, usize>> {
    let file = root.join("xtask/tidy/panics-allowed.txt");
    let text = fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let mut allowed = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(path), Some(count), Some(_reason)) = (words.next(), words.next(), words.next())
        else {
            bail!(
                "{}:{}: expected `path count reason`",
                file.display(),
                number + 1
            );
        };
        let count: usize = count
            .parse()
            .with_context(|| format!("{}:{}: count", file.display(), number + 1))?;
        allowed.insert(path.to_owned(), count);
    }
    Ok(allowed)
}

/// Counts `.expect(` and `unreachable!` in code before the file's
/// `#[cfg(test)]` module (tests may panic).
fn panics_in(text: &str) -> usize {
    text.lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .filter(|line| !line.trim_start().starts_with("//"))
        .map(|line| line.matches(".expect(").count() + line.matches("unreachable!").count())
        .sum()
}

fn panics_only_where_allowed(
    root: &Path,
    sources: &[PathBuf],
    problems: &mut Vec<String>,
) -> Result<()> {
    let allowed = allowed_panics(root)?;
    let mut seen = BTreeSet::new();
    for path in sources {
        let name = relative(root, path);
        if name.starts_with("xtask/")
            || name.contains("/test_support")
            || name.contains("test_smtp")
        {
            continue;
        }
        let text = fs::read_to_string(path)?;
        let found = panics_in(&text);
        let permitted = allowed.get(&name).copied().unwrap_or(0);
        if found > permitted {
            problems.push(format!(
                "{name} has {found} `.expect(`/`unreachable!` outside tests, {permitted} allowed: return an error, \
                 make the state unrepresentable, or list it with a reason in xtask/tidy/panics-allowed.txt"
            ));
        }
        if found > 0 {
            seen.insert(name);
        }
    }
    for (name, _) in allowed.iter().filter(|(name, _)| !seen.contains(*name)) {
        problems.push(format!(
            "xtask/tidy/panics-allowed.txt lists {name}, which has no panics (left over): remove the line"
        ));
    }
    Ok(())
}

fn front_end_uses_no_storage(root: &Path, problems: &mut Vec<String>) -> Result<()> {
    let crate_dir = root.join("crates/auth-http");
    if !crate_dir.exists() {
        return Ok(());
    }
    let manifest = fs::read_to_string(crate_dir.join("Cargo.toml"))?;
    for dependency in ["diesel", "storage"] {
        if manifest.lines().any(|l| {
            l.trim_start().starts_with(&format!("{dependency} "))
                || l.trim_start().starts_with(&format!("{dependency}."))
        }) {
            problems.push(format!(
                "crates/auth-http depends on `{dependency}`: front-ends call accounts operations only"
            ));
        }
    }
    let mut files = Vec::new();
    collect_rs(&crate_dir.join("src"), &mut files)?;
    for path in files {
        let text = fs::read_to_string(&path)?;
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("storage::") || code.contains("diesel::") {
                problems.push(format!(
                    "{}:{}: the front-end names `storage::`/`diesel::`; call an accounts operation instead",
                    relative(root, &path),
                    number + 1
                ));
            }
        }
    }
    Ok(())
}

/// The server's top-level modules and which of them each one uses.
fn server_module_graph(root: &Path) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let src = root.join("apps/auth-server/src");
    let mut modules = BTreeMap::<String, Vec<PathBuf>>::new();
    for path in read_dir_sorted(&src)? {
        let name = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if matches!(name.as_str(), "main" | "lib") {
            continue;
        }
        let mut files = Vec::new();
        if path.is_dir() {
            collect_rs(&path, &mut files)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path.clone());
        }
        modules.entry(name).or_default().extend(files);
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    let mut graph = BTreeMap::new();
    for (module, files) in &modules {
        let mut uses = BTreeSet::new();
        for file in files {
            let text = fs::read_to_string(file)?;
            for other in &names {
                if other != module
                    && (text.contains(&format!("crate::{other}::"))
                        || text.contains(&format!("crate::{other};"))
                        || text.contains(&format!("crate::{{{other}")))
                {
                    uses.insert(other.clone());
                }
            }
        }
        graph.insert(module.clone(), uses);
    }
    Ok(graph)
}

fn server_modules_without_cycles(root: &Path, problems: &mut Vec<String>) -> Result<()> {
    let graph = server_module_graph(root)?;
    // Depth-first search; a grey node reached again closes a cycle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
        cycles: &mut Vec<Vec<String>>,
    ) {
        state.insert(node.to_owned(), 1);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                0 => visit(next, graph, state, path, cycles),
                1 => {
                    let start = path.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    cycles.push(cycle);
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(node.to_owned(), 2);
    }
    let mut state = BTreeMap::new();
    let mut cycles = Vec::new();
    for node in graph.keys() {
        if state.get(node).copied().unwrap_or(0) == 0 {
            visit(node, &graph, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    for cycle in cycles {
        problems.push(format!(
            "apps/auth-server/src modules import each other in a cycle: {}",
            cycle.join(" -> ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_are_counted_outside_tests_only() {
        let text = "fn a() { x.expect(\"y\"); }\n// z.expect(\"no\")\nfn b() { unreachable!() }\n#[cfg(test)]\nmod tests { fn c() { d.expect(\"e\"); } }\n";
        assert_eq!(panics_in(text), 2);
    }
}
