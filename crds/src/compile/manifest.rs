//! Reading Kubernetes manifests (multi-document YAML) into an [`Inventory`]: the seven kinds
//! and core/v1 Secrets (and Services). Used by local mode, `crdgen`-side tooling and tests.
//! Pure: the caller reads the files.

use k8s_openapi::api::core::v1::{Secret, Service};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{DEFAULT_NAMESPACE, Inventory, ServiceInfo};
use crate::snapshot::SecretValue;

/// Why a manifest could not be read. Names the source and the document; never includes
/// Secret data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: document {document}: {message}")]
pub struct ManifestError {
    /// File name or other label of the text.
    pub source_name: String,
    /// 1-based document index in the file.
    pub document: usize,
    /// What is wrong.
    pub message: String,
}

/// What [`add_yaml`] did with a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Objects added, as `Kind namespace/name`.
    pub added: Vec<String>,
    /// Documents skipped because they are of other kinds (e.g. a kustomization).
    pub skipped: Vec<String>,
}

/// Most YAML documents in one manifest file (serde-saphyr's default of 1,024 refuses a plain
/// GitOps file of a few thousand CRs).
pub const MAX_DOCUMENTS: usize = 100_000;

/// The YAML parser's budget: the library's protections (depth, aliases, anchors, scalar bytes)
/// unchanged, with the document, node and event counts sized for [`MAX_DOCUMENTS`] CRs.
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_documents = MAX_DOCUMENTS;
    budget.max_nodes = 20_000_000;
    budget.max_events = 50_000_000;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// Parses `text` (one or more YAML documents, or `kind: List`) and adds every object to
/// `inventory`. Objects without a namespace get [`DEFAULT_NAMESPACE`]. Kinds outside
/// `switchyard.dev` other than Secret and Service are skipped and reported; an unknown kind
/// in `switchyard.dev` or a malformed object is an error, and then nothing of the file is added.
pub fn add_yaml(
    inventory: &mut Inventory,
    source_name: &str,
    text: &str,
) -> Result<LoadReport, ManifestError> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, yaml_options()).map_err(|e| {
            ManifestError {
                source_name: source_name.to_owned(),
                document: 1,
                message: format!("not valid YAML: {e}"),
            }
        })?;
    let mut staged = Inventory::default();
    let mut report = LoadReport::default();
    for (i, doc) in docs.into_iter().enumerate() {
        let err = |message: String| ManifestError {
            source_name: source_name.to_owned(),
            document: i + 1,
            message,
        };
        if doc.is_null() {
            continue;
        }
        let items = if doc.get("kind").and_then(Value::as_str) == Some("List") {
            doc.get("items")
                .and_then(Value::as_array)
                .cloned()
                .ok_or_else(|| err("List without items".into()))?
        } else {
            vec![doc]
        };
        for item in items {
            add_object(&mut staged, &mut report, item).map_err(&err)?;
        }
    }
    merge(inventory, staged);
    Ok(report)
}

fn add_object(inv: &mut Inventory, report: &mut LoadReport, mut doc: Value) -> Result<(), String> {
    let api_version = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if kind.is_empty() || api_version.is_empty() {
        return Err("apiVersion and kind are required".into());
    }
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if name.is_empty() {
        return Err(format!("{kind} without metadata.name"));
    }
    if doc
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .is_none()
        && let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.insert("namespace".into(), Value::String(DEFAULT_NAMESPACE.into()));
    }
    let namespace = doc
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_owned();
    let label = format!("{kind} {namespace}/{name}");
    let group = api_version.split('/').next().unwrap_or_default();
    if group == crate::GROUP {
        if api_version != format!("{}/{}", crate::GROUP, crate::VERSION) {
            return Err(format!(
                "{label}: unsupported apiVersion {api_version} (expected {}/{})",
                crate::GROUP,
                crate::VERSION
            ));
        }
        match kind.as_str() {
            "Provider" => inv.providers.push(typed(doc, &label)?),
            "Backend" => inv.backends.push(typed(doc, &label)?),
            "AffinityGroup" => inv.affinity_groups.push(typed(doc, &label)?),
            "Workspace" => inv.workspaces.push(typed(doc, &label)?),
            "MuxRule" => inv.mux_rules.push(typed(doc, &label)?),
            "RouterPolicy" => inv.router_policies.push(typed(doc, &label)?),
            "TaskChain" => inv.task_chains.push(typed(doc, &label)?),
            other => return Err(format!("unknown kind {other} in {}", crate::GROUP)),
        }
    } else if api_version == "v1" && kind == "Secret" {
        let secret: Secret = typed_secret(doc, &label)?;
        let mut values = std::collections::BTreeMap::new();
        for (k, v) in secret.data.unwrap_or_default() {
            let text = String::from_utf8(v.0)
                .map_err(|_| format!("{label}: key \"{k}\" is not UTF-8 text"))?;
            values.insert(k, SecretValue::new(text));
        }
        for (k, v) in secret.string_data.unwrap_or_default() {
            values.insert(k, SecretValue::new(v));
        }
        inv.secrets.insert(format!("{namespace}/{name}"), values);
    } else if api_version == "v1" && kind == "Service" {
        let service: Service = typed(doc, &label)?;
        let ports = service
            .spec
            .and_then(|s| s.ports)
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.name, p.port))
            .collect();
        inv.services
            .get_or_insert_with(Default::default)
            .insert(format!("{namespace}/{name}"), ServiceInfo { ports });
    } else {
        report.skipped.push(label);
        return Ok(());
    }
    report.added.push(label);
    Ok(())
}

/// Deserializes with the field path of the first error. Spec values are echoed (they help fix
/// a typo in an enum); use [`typed_secret`] where the values are credentials.
fn typed<T: DeserializeOwned>(doc: Value, label: &str) -> Result<T, String> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        format!("{label}: field {path}: {}", e.into_inner())
    })
}

/// Like [`typed`], but every quoted literal in the message is replaced, so no part of a
/// Secret's data can reach an error, a log line or an Event.
fn typed_secret<T: DeserializeOwned>(doc: Value, label: &str) -> Result<T, String> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        format!(
            "{label}: field {path}: {}",
            redact_quoted(&e.into_inner().to_string())
        )
    })
}

/// Replaces every `quoted` literal of a serde error message with `…`.
fn redact_quoted(msg: &str) -> String {
    msg.split('`')
        .enumerate()
        .map(|(i, part)| if i % 2 == 1 { "…" } else { part })
        .collect::<Vec<_>>()
        .join("`")
}

fn merge(into: &mut Inventory, from: Inventory) {
    into.providers.extend(from.providers);
    into.backends.extend(from.backends);
    into.affinity_groups.extend(from.affinity_groups);
    into.workspaces.extend(from.workspaces);
    into.mux_rules.extend(from.mux_rules);
    into.router_policies.extend(from.router_policies);
    into.task_chains.extend(from.task_chains);
    into.secrets.extend(from.secrets);
    if let Some(services) = from.services {
        into.services
            .get_or_insert_with(Default::default)
            .extend(services);
    }
}

/// Every `*.yaml`/`*.yml` file at or below `path`, sorted: the path itself when it is a file;
/// in folders, recursively, skipping dot-entries (such as a ConfigMap mount's `..data`
/// folders, whose files are reached through the top-level links) and `kustomization.yaml`.
/// This and [`load`] are the only functions of this crate that touch the file system.
pub fn files(path: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if name.starts_with('.') {
                continue;
            }
            // Metadata through links, so ConfigMap symlink swaps are followed.
            if std::fs::metadata(&path)?.is_dir() {
                walk(&path, out)?;
            } else if (name.ends_with(".yaml") || name.ends_with(".yml"))
                && !name.starts_with("kustomization.")
            {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    if std::fs::metadata(path)?.is_file() {
        out.push(path.to_owned());
    } else {
        walk(path, &mut out)?;
    }
    out.sort();
    Ok(out)
}

/// Reads every manifest file at or below `path` (see [`files`]) into a new inventory. The
/// first unreadable or invalid file is the error, naming it; nothing partial is returned.
pub fn load(path: &std::path::Path) -> Result<(Inventory, Vec<std::path::PathBuf>), String> {
    let mut inventory = Inventory::default();
    let list = files(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for f in &list {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        add_yaml(&mut inventory, &f.display().to_string(), &text).map_err(|e| e.to_string())?;
    }
    Ok((inventory, list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_several_thousand_crs_is_read() {
        // More than serde-saphyr's default budget of 1,024 documents.
        let text: String = (0..3000)
            .map(|i| {
                format!(
                    "apiVersion: switchyard.dev/v1alpha1\nkind: Provider\nmetadata: {{name: p{i}}}\nspec: {{type: openai, auth: {{type: none}}, models: [{{name: m{i}}}]}}\n---\n"
                )
            })
            .collect();
        let mut inv = Inventory::default();
        add_yaml(&mut inv, "many.yaml", &text).unwrap();
        assert_eq!(inv.providers.len(), 3000);
    }

    #[test]
    fn reads_kinds_secrets_and_skips_others() {
        let text = r#"
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {name: openai}
spec: {type: openai, auth: {type: api_key, secretRef: {name: keys, key: openai}}}
---
apiVersion: v1
kind: Secret
metadata: {name: keys, namespace: default}
data: {openai: c2stdGVzdA==}
stringData: {other: plain}
---
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
metadata: {name: k}
"#;
        let mut inv = Inventory::default();
        let report = add_yaml(&mut inv, "a.yaml", text).unwrap();
        assert_eq!(
            report.added,
            ["Provider default/openai", "Secret default/keys"]
        );
        assert_eq!(report.skipped, ["Kustomization default/k"]);
        let keys = &inv.secrets["default/keys"];
        assert_eq!(keys["openai"].expose(), "sk-test");
        assert_eq!(keys["other"].expose(), "plain");
        assert_eq!(
            inv.providers[0].metadata.namespace.as_deref(),
            Some("default")
        );
    }

    #[test]
    fn errors_name_file_document_and_field() {
        let text = "apiVersion: switchyard.dev/v1alpha1\nkind: Provider\nmetadata: {name: p}\nspec: {type: openai}\n---\napiVersion: switchyard.dev/v1alpha1\nkind: Provider\nmetadata: {name: q}\nspec: {type: gemini}\n";
        let mut inv = Inventory::default();
        let err = add_yaml(&mut inv, "p.yaml", text).unwrap_err();
        assert_eq!(err.document, 2);
        assert!(
            err.to_string()
                .starts_with("p.yaml: document 2: Provider default/q: field spec.type"),
            "{err}"
        );
        assert!(inv.providers.is_empty(), "a bad file adds nothing");
    }

    #[test]
    fn unknown_switchyard_kind_is_an_error() {
        let text = "apiVersion: switchyard.dev/v1alpha1\nkind: Gadget\nmetadata: {name: g}\n";
        let err = add_yaml(&mut Inventory::default(), "g.yaml", text).unwrap_err();
        assert!(err.message.contains("unknown kind Gadget"), "{err}");
    }

    #[test]
    fn secret_values_do_not_reach_errors() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: 12345}\n";
        let err = add_yaml(&mut Inventory::default(), "s.yaml", text).unwrap_err();
        assert!(!err.to_string().contains("12345"), "{err}");
    }
}
