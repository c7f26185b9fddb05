//! Writes the CRD manifests generated from the Rust types into `config/crd/` and
//! `charts/switchyard/crds/`. Run from the repository root, or pass the root as the argument.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    for dir in switchyard_crds::crdgen::OUTPUT_DIRS {
        let dir = root.join(dir);
        std::fs::create_dir_all(&dir)?;
        for (name, text) in switchyard_crds::crdgen::files()? {
            std::fs::write(dir.join(&name), text)?;
        }
        eprintln!("wrote {}", dir.display());
    }
    Ok(())
}
