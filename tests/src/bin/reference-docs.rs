//! Writes the flags and metrics references generated from the code, `docs/reference/flags.md`
//! and `docs/reference/metrics.md` (see `switchyard_tests::reference`). Run from the repository
//! root, or pass the root as the argument.

// Printing where it wrote is the point of this tool.
#![allow(clippy::print_stderr)]

use std::path::PathBuf;

use switchyard_tests::reference;

fn main() -> anyhow::Result<()> {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    for (path, text) in reference::files() {
        let path = root.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, text)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
