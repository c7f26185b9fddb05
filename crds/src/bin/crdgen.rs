//! Writes the CRD manifests generated from the Rust types into `config/crd/` and
//! `charts/switchyard/crds/`, and the field reference into `docs/crd-reference.md`. Run from the
//! repository root, or pass the root as the argument.

// Printing where it wrote is the point of this tool.
#![allow(clippy::print_stderr)]

use std::path::PathBuf;

use switchyard_crds::crdgen;

fn main() -> anyhow::Result<()> {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let files = crdgen::files()?;
    for dir in crdgen::OUTPUT_DIRS {
        let dir = root.join(dir);
        std::fs::create_dir_all(&dir)?;
        for (name, text) in &files {
            std::fs::write(dir.join(name), text)?;
        }
        eprintln!("wrote {}", dir.display());
    }
    let kustomization = root.join(crdgen::KUSTOMIZE_DIR).join("kustomization.yaml");
    std::fs::write(&kustomization, crdgen::kustomization())?;
    eprintln!("wrote {}", kustomization.display());
    let reference = root.join(crdgen::REFERENCE_PATH);
    if let Some(dir) = reference.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&reference, crdgen::reference_markdown())?;
    eprintln!("wrote {}", reference.display());
    Ok(())
}
