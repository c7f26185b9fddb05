//! Writes the flags and metrics references generated from the code, `docs/reference/flags.md`
//! and `docs/reference/metrics.md` (see `switchyard_tests::reference`), into this checkout
//! whatever the working directory.

// Printing where it wrote is the point of this tool.
#![allow(clippy::print_stderr)]

use std::path::Path;

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (path, text) in switchyard_tests::reference::files() {
        let target = root.join(path);
        std::fs::create_dir_all(target.parent().unwrap_or(&root))?;
        std::fs::write(&target, text)?;
        eprintln!("wrote {path}");
    }
    Ok(())
}
