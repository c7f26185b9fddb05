//! Checks on the generated CRDs:
//! - the committed YAML (`config/crd/`, `charts/switchyard/crds/`) and `docs/crd-reference.md`
//!   are what `crdgen` produces now;
//! - every schema is structural in the Kubernetes sense and uses nothing an API server as old as
//!   1.20 rejects (checked statically by [`structural_violations`]);
//! - names, printer columns, defaults and closed sets are what the product promises.

// A test crate: helpers outside `#[test]` functions may panic too (clippy.toml only covers
// the test functions themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use switchyard_crds::crdgen;

const REGENERATE: &str = "run `cargo run -p switchyard-crds --bin crdgen` from the repository root and commit the result";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every CRD as JSON, keyed by kind, in `crdgen::all()` order.
fn crds() -> Vec<(String, Value)> {
    crdgen::all()
        .into_iter()
        .map(|crd| {
            let kind = crd.spec.names.kind.clone();
            (kind, serde_json::to_value(&crd).unwrap())
        })
        .collect()
}

fn crd(kind: &str) -> Value {
    crds()
        .into_iter()
        .find(|(k, _)| k == kind)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no CRD for kind {kind}"))
}

/// The only version of a CRD.
fn version(crd: &Value) -> &Value {
    let versions = crd["spec"]["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "expected exactly one version");
    &versions[0]
}

fn open_api_schema(crd: &Value) -> &Value {
    &version(crd)["schema"]["openAPIV3Schema"]
}

/// The schema of a field given as a dotted path from the root, `[]` after a name for its items:
/// `spec.tasks[].transition.branches[].operator`.
fn schema_at<'a>(root: &'a Value, path: &str) -> &'a Value {
    let mut node = root;
    for segment in path.split('.') {
        let (name, items) = match segment.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (segment, false),
        };
        node = node
            .get("properties")
            .and_then(|p| p.get(name))
            .unwrap_or_else(|| panic!("no field {name:?} on the way to {path}"));
        if items {
            node = node
                .get("items")
                .unwrap_or_else(|| panic!("{name:?} has no items on the way to {path}"));
        }
    }
    node
}

/// First line where two texts differ, for a readable staleness message.
fn first_difference(committed: &str, generated: &str) -> String {
    for (n, (a, b)) in committed.lines().zip(generated.lines()).enumerate() {
        if a != b {
            return format!("line {}: committed {a:?}, generated {b:?}", n + 1);
        }
    }
    format!(
        "committed has {} lines, generated {}",
        committed.lines().count(),
        generated.lines().count()
    )
}

// ---------------------------------------------------------------------------------------------
// Staleness

#[test]
fn committed_crd_yaml_matches_crdgen() {
    let root = repo_root();
    let files = crdgen::files().unwrap();
    assert_eq!(files.len(), 7, "expected seven CRD files");
    let names: BTreeSet<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    let mut problems = Vec::new();
    for dir in crdgen::OUTPUT_DIRS {
        for (name, text) in &files {
            let path = root.join(dir).join(name);
            match std::fs::read_to_string(&path) {
                Ok(committed) if committed == *text => {}
                Ok(committed) => problems.push(format!(
                    "{dir}/{name} is stale ({})",
                    first_difference(&committed, text)
                )),
                Err(err) => problems.push(format!("{dir}/{name} is missing ({err})")),
            }
        }
        let entries = match std::fs::read_dir(root.join(dir)) {
            Ok(entries) => entries,
            Err(err) => {
                problems.push(format!("cannot list {dir}: {err}"));
                continue;
            }
        };
        for entry in entries {
            let file_name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let is_yaml = file_name.ends_with(".yaml") || file_name.ends_with(".yml");
            if dir == crdgen::KUSTOMIZE_DIR && file_name == "kustomization.yaml" {
                continue;
            }
            if is_yaml && !names.contains(file_name.as_str()) {
                problems.push(format!(
                    "{dir}/{file_name} is not produced by crdgen (delete it, or add its kind to crdgen::all())"
                ));
            }
        }
    }
    let kustomization = root.join(crdgen::KUSTOMIZE_DIR).join("kustomization.yaml");
    match std::fs::read_to_string(&kustomization) {
        Ok(text) if text == crdgen::kustomization() => {}
        Ok(_) => problems.push(format!("{} is stale", kustomization.display())),
        Err(err) => problems.push(format!("{} is missing ({err})", kustomization.display())),
    }
    assert!(problems.is_empty(), "{}\n{REGENERATE}", problems.join("\n"));
}

#[test]
fn committed_crd_reference_matches_crdgen() {
    let path = repo_root().join(crdgen::REFERENCE_PATH);
    let generated = crdgen::reference_markdown();
    match std::fs::read_to_string(&path) {
        Ok(committed) => assert!(
            committed == generated,
            "{} is stale ({})\n{REGENERATE}",
            crdgen::REFERENCE_PATH,
            first_difference(&committed, &generated)
        ),
        Err(err) => panic!(
            "{} is missing ({err})\n{REGENERATE}",
            crdgen::REFERENCE_PATH
        ),
    }
}

#[test]
fn generation_is_deterministic() {
    assert_eq!(crdgen::files().unwrap(), crdgen::files().unwrap());
    assert_eq!(crdgen::reference_markdown(), crdgen::reference_markdown());
}

#[test]
fn reference_covers_every_kind_and_field() {
    let reference = crdgen::reference_markdown();
    for (kind, crd) in crds() {
        assert!(
            reference.contains(&format!("\n## {kind}\n")),
            "{kind} missing"
        );
        let mut paths = Vec::new();
        for section in ["spec", "status"] {
            collect_field_paths(
                &open_api_schema(&crd)["properties"][section],
                section,
                &mut paths,
            );
        }
        for path in paths {
            assert!(
                reference.contains(&format!("| `{path}` |")),
                "{kind}: field {path} has no row in the reference"
            );
        }
    }
}

/// Paths of every named field (object properties, through lists and maps).
fn collect_field_paths(schema: &Value, path: &str, out: &mut Vec<String>) {
    out.push(path.to_owned());
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            collect_field_paths(child, &format!("{path}.{name}"), out);
        }
    }
    for (key, suffix) in [("items", "[]"), ("additionalProperties", ".*")] {
        if let Some(child) = schema.get(key).filter(|c| c.is_object())
            && let Some(properties) = child.get("properties").and_then(Value::as_object)
        {
            for (name, grandchild) in properties {
                collect_field_paths(grandchild, &format!("{path}{suffix}.{name}"), out);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Structural schema checker
//
// The rules of
// https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema
// that can be checked without an API server, plus the restrictions of CRD v1 validation that an
// API server as old as 1.20 enforces (no `$ref`, no `uniqueItems: true`, …).

/// Keywords CRD v1 schemas may not use anywhere.
const FORBIDDEN_KEYWORDS: [&str; 8] = [
    "$ref",
    "$schema",
    "id",
    "definitions",
    "$defs",
    "additionalItems",
    "patternProperties",
    "dependencies",
];

/// Keywords a value validation (inside allOf/anyOf/oneOf/not) may not set.
const NOT_IN_JUNCTORS: [&str; 5] = [
    "type",
    "description",
    "default",
    "nullable",
    "additionalProperties",
];

const TYPES: [&str; 6] = ["object", "array", "string", "integer", "number", "boolean"];

/// Every structural-schema violation in `schema` (an `openAPIV3Schema`), each as
/// `<JSON path>: <problem>`, paths starting at `openAPIV3Schema`.
fn structural_violations(schema: &Value) -> Vec<String> {
    let mut checker = Checker::default();
    checker.node(schema, "openAPIV3Schema", false);
    checker.root(schema, "openAPIV3Schema");
    checker.problems
}

#[derive(Default)]
struct Checker {
    problems: Vec<String>,
}

impl Checker {
    fn report(&mut self, path: &str, problem: impl std::fmt::Display) {
        self.problems.push(format!("{path}: {problem}"));
    }

    /// Rules that only apply at the root.
    fn root(&mut self, schema: &Value, path: &str) {
        if schema.get("type").and_then(Value::as_str) != Some("object") {
            self.report(path, "the root must have type object");
        }
        if schema.get("default").is_some() {
            self.report(path, "the root must not have a default");
        }
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
            return;
        };
        for field in ["apiVersion", "kind"] {
            if let Some(node) = properties.get(field)
                && node.get("type").and_then(Value::as_str) != Some("string")
            {
                self.report(
                    &format!("{path}.properties.{field}"),
                    "must have type string",
                );
            }
        }
        let Some(metadata) = properties.get("metadata") else {
            return;
        };
        let metadata_path = format!("{path}.properties.metadata");
        if let Some(object) = metadata.as_object() {
            for key in object.keys() {
                if key != "type" && key != "properties" {
                    self.report(
                        &format!("{metadata_path}.{key}"),
                        "metadata may only restrict name and generateName",
                    );
                }
            }
            if object.get("type").and_then(Value::as_str) != Some("object") {
                self.report(&metadata_path, "metadata must have type object");
            }
            for name in object
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|p| p.keys())
            {
                if name != "name" && name != "generateName" {
                    self.report(
                        &format!("{metadata_path}.properties.{name}"),
                        "metadata may only restrict name and generateName",
                    );
                }
            }
        }
    }

    /// Checks a schema node and everything below it. `in_junctor`: the node is (inside) an
    /// allOf/anyOf/oneOf/not, where the structure comes from outside and only value
    /// validations are allowed.
    fn node(&mut self, node: &Value, path: &str, in_junctor: bool) {
        let Some(object) = node.as_object() else {
            self.report(path, "a schema must be an object");
            return;
        };
        for key in FORBIDDEN_KEYWORDS {
            if object.contains_key(key) {
                self.report(&format!("{path}.{key}"), "not allowed in a CRD schema");
            }
        }
        if object.get("uniqueItems") == Some(&Value::Bool(true)) {
            self.report(&format!("{path}.uniqueItems"), "uniqueItems cannot be true");
        }
        let int_or_string = flag(object, "x-kubernetes-int-or-string");
        let preserve_unknown = flag(object, "x-kubernetes-preserve-unknown-fields");
        let ty = object.get("type");
        let ty_str = ty.and_then(Value::as_str);

        if in_junctor {
            for key in NOT_IN_JUNCTORS {
                if object.contains_key(key) {
                    self.report(
                        &format!("{path}.{key}"),
                        format!("{key} is not allowed inside allOf/anyOf/oneOf/not"),
                    );
                }
            }
            for key in object.keys().filter(|k| k.starts_with("x-kubernetes-")) {
                self.report(
                    &format!("{path}.{key}"),
                    "x-kubernetes-* extensions are not allowed inside allOf/anyOf/oneOf/not",
                );
            }
        } else {
            match (ty, int_or_string, preserve_unknown) {
                (Some(Value::String(t)), false, _) if TYPES.contains(&t.as_str()) => {}
                (Some(Value::String(t)), false, _) if !t.is_empty() => {
                    self.report(&format!("{path}.type"), format!("unknown type {t:?}"))
                }
                (Some(_), true, _) => self.report(
                    &format!("{path}.type"),
                    "must be empty with x-kubernetes-int-or-string",
                ),
                (None, true, _) | (None, false, true) => {}
                _ => self.report(path, "missing a non-empty type"),
            }
        }

        // Structure.
        let properties = object.get("properties");
        let additional = object.get("additionalProperties");
        if properties.is_some()
            && additional.is_some_and(|a| a.is_object() || *a == Value::Bool(false))
        {
            self.report(
                path,
                "properties and additionalProperties are mutually exclusive",
            );
        }
        if let Some(properties) = properties {
            if !in_junctor && ty_str.is_some() && ty_str != Some("object") {
                self.report(&format!("{path}.properties"), "properties on a non-object");
            }
            match properties.as_object() {
                Some(properties) => {
                    for (name, child) in properties {
                        self.node(child, &format!("{path}.properties.{name}"), in_junctor);
                    }
                }
                None => self.report(&format!("{path}.properties"), "must be a map of schemas"),
            }
        }
        if let Some(required) = object.get("required") {
            let known = properties.and_then(Value::as_object);
            for name in required.as_array().into_iter().flatten() {
                let known_name = name
                    .as_str()
                    .is_some_and(|n| known.is_some_and(|k| k.contains_key(n)));
                if !known_name && !in_junctor && !preserve_unknown {
                    self.report(
                        &format!("{path}.required"),
                        format!("required field {name} is not a property"),
                    );
                }
            }
        }
        match additional {
            Some(child @ Value::Object(_)) => {
                if !in_junctor && ty_str != Some("object") {
                    self.report(
                        &format!("{path}.additionalProperties"),
                        "additionalProperties on a non-object",
                    );
                }
                self.node(child, &format!("{path}.additionalProperties"), in_junctor);
            }
            Some(Value::Bool(_)) | None => {}
            Some(_) => self.report(
                &format!("{path}.additionalProperties"),
                "must be a schema or a boolean",
            ),
        }
        match object.get("items") {
            Some(Value::Array(_)) => self.report(
                &format!("{path}.items"),
                "items must be a single schema, not a list",
            ),
            Some(child) => {
                if !in_junctor && ty_str != Some("array") {
                    self.report(&format!("{path}.items"), "items on a non-array");
                }
                self.node(child, &format!("{path}.items"), in_junctor);
            }
            None if !in_junctor && ty_str == Some("array") => {
                self.report(path, "an array must specify items");
            }
            None => {}
        }

        // Junctors.
        for key in ["allOf", "anyOf", "oneOf"] {
            let Some(children) = object.get(key) else {
                continue;
            };
            let Some(children) = children.as_array() else {
                self.report(&format!("{path}.{key}"), "must be a list of schemas");
                continue;
            };
            let int_or_string_pattern = int_or_string && key == "anyOf" && {
                let expected = [json!({"type": "integer"}), json!({"type": "string"})];
                children.as_slice() == expected.as_slice()
            };
            for (i, child) in children.iter().enumerate() {
                let child_path = format!("{path}.{key}[{i}]");
                if int_or_string_pattern {
                    continue;
                }
                if int_or_string
                    && key == "allOf"
                    && child.get("anyOf") == Some(&json!([{"type": "integer"}, {"type": "string"}]))
                {
                    continue;
                }
                self.junctor_fields_specified_outside(object, child, &child_path);
                self.node(child, &child_path, true);
            }
        }
        if let Some(child) = object.get("not") {
            let child_path = format!("{path}.not");
            self.junctor_fields_specified_outside(object, child, &child_path);
            self.node(child, &child_path, true);
        }

        // Extensions.
        if let Some(list_type) = object.get("x-kubernetes-list-type") {
            self.list_type(object, list_type, path, ty_str);
        } else if object.contains_key("x-kubernetes-list-map-keys") {
            self.report(
                &format!("{path}.x-kubernetes-list-map-keys"),
                "only allowed with x-kubernetes-list-type: map",
            );
        }
        if let Some(map_type) = object.get("x-kubernetes-map-type") {
            if !matches!(map_type.as_str(), Some("granular" | "atomic")) {
                self.report(
                    &format!("{path}.x-kubernetes-map-type"),
                    "must be granular or atomic",
                );
            }
            if ty_str != Some("object") {
                self.report(&format!("{path}.x-kubernetes-map-type"), "only on objects");
            }
        }

        // Formats.
        if let Some(format) = object.get("format") {
            match (ty_str, format.as_str()) {
                (Some("integer"), Some("int32" | "int64")) => {}
                (Some("integer"), _) => self.report(
                    &format!("{path}.format"),
                    format!("integer format {format} is not int32 or int64"),
                ),
                (Some("number"), Some("float" | "double")) => {}
                (Some("number"), _) => self.report(
                    &format!("{path}.format"),
                    format!("number format {format} is not float or double"),
                ),
                (_, None) => self.report(&format!("{path}.format"), "must be a string"),
                _ => {}
            }
        }

        // Enum and default values.
        if let Some(values) = object.get("enum") {
            match values.as_array() {
                Some(values) if !values.is_empty() => {
                    for (i, value) in values.iter().enumerate() {
                        if !value_has_node_type(value, object) {
                            self.report(
                                &format!("{path}.enum[{i}]"),
                                format!("enum value {value} does not match the type"),
                            );
                        }
                    }
                }
                _ => self.report(&format!("{path}.enum"), "must be a non-empty list"),
            }
        }
        if !in_junctor && let Some(default) = object.get("default") {
            let mut problems = Vec::new();
            validate_value(default, node, &format!("{path}.default"), &mut problems);
            self.problems.extend(problems);
        }
    }

    /// "For each field in an allOf, anyOf, oneOf or not, the schema also specifies the field
    /// outside of the logical junctors."
    fn junctor_fields_specified_outside(
        &mut self,
        outside: &Map<String, Value>,
        junctor: &Value,
        path: &str,
    ) {
        let outer = outside.get("properties").and_then(Value::as_object);
        for name in junctor
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|p| p.keys())
        {
            if !outer.is_some_and(|o| o.contains_key(name)) {
                self.report(
                    &format!("{path}.properties.{name}"),
                    "field not specified outside the junctor",
                );
            }
        }
        if junctor.get("items").is_some() && !outside.contains_key("items") {
            self.report(
                &format!("{path}.items"),
                "items not specified outside the junctor",
            );
        }
        if junctor.get("additionalProperties").is_some()
            && !outside.contains_key("additionalProperties")
        {
            self.report(
                &format!("{path}.additionalProperties"),
                "additionalProperties not specified outside the junctor",
            );
        }
    }

    fn list_type(
        &mut self,
        object: &Map<String, Value>,
        list_type: &Value,
        path: &str,
        ty: Option<&str>,
    ) {
        let at = format!("{path}.x-kubernetes-list-type");
        if ty != Some("array") {
            self.report(&at, "only on arrays");
        }
        match list_type.as_str() {
            Some("atomic" | "set") => {
                if object.contains_key("x-kubernetes-list-map-keys") {
                    self.report(
                        &format!("{path}.x-kubernetes-list-map-keys"),
                        "only allowed with x-kubernetes-list-type: map",
                    );
                }
            }
            Some("map") => {
                let keys_path = format!("{path}.x-kubernetes-list-map-keys");
                let keys: Vec<&str> = object
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|keys| keys.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if keys.is_empty() {
                    self.report(&keys_path, "x-kubernetes-list-type map needs list-map-keys");
                }
                let items = object.get("items");
                if items.and_then(|i| i.get("type")).and_then(Value::as_str) != Some("object") {
                    self.report(&format!("{path}.items"), "list-map items must be objects");
                }
                let properties = items
                    .and_then(|i| i.get("properties"))
                    .and_then(Value::as_object);
                let required: Vec<&str> = items
                    .and_then(|i| i.get("required"))
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                for key in keys {
                    match properties.and_then(|p| p.get(key)) {
                        None => self.report(
                            &keys_path,
                            format!("map key {key:?} is not a property of the items"),
                        ),
                        Some(field) => {
                            if !required.contains(&key) {
                                self.report(
                                    &keys_path,
                                    format!("map key {key:?} is not required in the items"),
                                );
                            }
                            let scalar = matches!(
                                field.get("type").and_then(Value::as_str),
                                Some("string" | "integer" | "number" | "boolean")
                            );
                            if !scalar {
                                self.report(
                                    &keys_path,
                                    format!("map key {key:?} must be a scalar field"),
                                );
                            }
                        }
                    }
                }
            }
            _ => self.report(&at, "must be atomic, set or map"),
        }
    }
}

fn flag(object: &Map<String, Value>, key: &str) -> bool {
    object.get(key) == Some(&Value::Bool(true))
}

/// Whether `value` has the JSON type the schema node declares (int-or-string: either).
fn value_has_node_type(value: &Value, node: &Map<String, Value>) -> bool {
    if flag(node, "x-kubernetes-int-or-string") {
        return is_integer(value) || value.is_string();
    }
    match node.get("type").and_then(Value::as_str) {
        Some(ty) => value_has_type(value, ty),
        None => true,
    }
}

fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn value_has_type(value: &Value, ty: &str) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => is_integer(value),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => false,
    }
}

/// Validates a value (a default) against a schema node the way the API server would, as far
/// as this test can without a regex engine: type, enum, bounds, lengths, nested fields
/// (unknown fields would be pruned, so they are reported) and required fields that no nested
/// default fills.
fn validate_value(value: &Value, schema: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(node) = schema.as_object() else {
        return;
    };
    if value.is_null() {
        if !flag(node, "nullable") {
            problems.push(format!("{path}: null but the field is not nullable"));
        }
        return;
    }
    if !value_has_node_type(value, node) {
        problems.push(format!(
            "{path}: {value} does not have type {}",
            node.get("type").unwrap_or(&Value::Null)
        ));
        return;
    }
    if let Some(values) = node.get("enum").and_then(Value::as_array)
        && !values.contains(value)
    {
        problems.push(format!("{path}: {value} is not one of the enum values"));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = node.get("minimum").and_then(Value::as_f64) {
            let exclusive = flag(node, "exclusiveMinimum");
            if n < min || (exclusive && n == min) {
                problems.push(format!("{path}: {value} is below the minimum {min}"));
            }
        }
        if let Some(max) = node.get("maximum").and_then(Value::as_f64) {
            let exclusive = flag(node, "exclusiveMaximum");
            if n > max || (exclusive && n == max) {
                problems.push(format!("{path}: {value} is above the maximum {max}"));
            }
        }
    }
    let bound = |key: &str| node.get(key).and_then(Value::as_u64);
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if bound("minLength").is_some_and(|min| len < min)
            || bound("maxLength").is_some_and(|max| len > max)
        {
            problems.push(format!("{path}: length of {value} is out of bounds"));
        }
    }
    if let Some(items) = value.as_array() {
        let len = items.len() as u64;
        if bound("minItems").is_some_and(|min| len < min)
            || bound("maxItems").is_some_and(|max| len > max)
        {
            problems.push(format!("{path}: number of items is out of bounds"));
        }
        if let Some(item_schema) = node.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate_value(item, item_schema, &format!("{path}[{i}]"), problems);
            }
        }
    }
    if let Some(fields) = value.as_object() {
        let len = fields.len() as u64;
        if bound("minProperties").is_some_and(|min| len < min)
            || bound("maxProperties").is_some_and(|max| len > max)
        {
            problems.push(format!("{path}: number of entries is out of bounds"));
        }
        let properties = node.get("properties").and_then(Value::as_object);
        let additional = node.get("additionalProperties").filter(|a| a.is_object());
        for (name, field) in fields {
            let field_path = format!("{path}.{name}");
            match (properties.and_then(|p| p.get(name)), additional) {
                (Some(field_schema), _) | (None, Some(field_schema)) => {
                    validate_value(field, field_schema, &field_path, problems)
                }
                (None, None) if !flag(node, "x-kubernetes-preserve-unknown-fields") => {
                    problems.push(format!("{field_path}: unknown field (would be pruned)"))
                }
                (None, None) => {}
            }
        }
        for name in node
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let defaulted = properties
                .and_then(|p| p.get(name))
                .is_some_and(|f| f.get("default").is_some());
            if !fields.contains_key(name) && !defaulted {
                problems.push(format!("{path}: required field {name:?} is missing"));
            }
        }
    }
}

#[test]
fn every_crd_schema_is_structural_and_accepted_by_old_api_servers() {
    let mut report = String::new();
    for (kind, crd) in crds() {
        let schema = open_api_schema(&crd);
        assert!(schema.is_object(), "{kind} has no openAPIV3Schema");
        for problem in structural_violations(schema) {
            let _ = writeln!(report, "{kind}: {problem}");
        }
    }
    assert!(report.is_empty(), "non-structural CRD schemas:\n{report}");
}

/// A small valid schema using every construct the checker knows, as the base of the negative
/// tests (each breaks one rule).
fn valid_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "metadata": {
                "type": "object",
                "properties": { "name": { "type": "string", "maxLength": 63 } }
            },
            "spec": {
                "type": "object",
                "required": ["mode"],
                "properties": {
                    "mode": { "type": "string", "enum": ["a", "b"], "default": "a" },
                    "count": { "type": "integer", "format": "int64", "minimum": 0, "default": 3 },
                    "ratio": { "type": "number", "format": "double" },
                    "port": {
                        "x-kubernetes-int-or-string": true,
                        "anyOf": [{ "type": "integer" }, { "type": "string" }]
                    },
                    "raw": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
                    "tags": { "type": "object", "additionalProperties": { "type": "string" } },
                    "nested": {
                        "type": "object",
                        "default": {},
                        "properties": { "on": { "type": "boolean", "default": true } },
                        "anyOf": [{ "required": ["on"] }, { "properties": { "on": { "enum": [true] } } }]
                    },
                    "items": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": { "name": { "type": "string" } }
                        }
                    }
                }
            }
        }
    })
}

#[test]
fn checker_accepts_a_valid_schema() {
    assert_eq!(structural_violations(&valid_schema()), Vec::<String>::new());
}

#[test]
fn checker_reports_a_missing_type_with_its_path() {
    let mut schema = valid_schema();
    schema["properties"]["spec"]["properties"]["ratio"] = json!({ "description": "no type" });
    let problems = structural_violations(&schema);
    assert_eq!(
        problems,
        vec!["openAPIV3Schema.properties.spec.properties.ratio: missing a non-empty type"]
    );
}

#[test]
fn checker_reports_each_rule_with_the_path_of_the_offending_node() {
    // (what is broken, JSON pointer to replace, replacement, expected path, expected words)
    let cases: Vec<(&str, &str, Value, &str, &str)> = vec![
        (
            "$ref",
            "/properties/spec/properties/ratio",
            json!({ "$ref": "#/definitions/Ratio" }),
            "openAPIV3Schema.properties.spec.properties.ratio.$ref",
            "not allowed",
        ),
        (
            "definitions",
            "/properties/spec/properties/raw",
            json!({ "type": "object", "definitions": { "X": { "type": "string" } } }),
            "openAPIV3Schema.properties.spec.properties.raw.definitions",
            "not allowed",
        ),
        (
            "properties and additionalProperties",
            "/properties/spec/properties/tags/properties",
            json!({ "a": { "type": "string" } }),
            "openAPIV3Schema.properties.spec.properties.tags",
            "mutually exclusive",
        ),
        (
            "items as a list",
            "/properties/spec/properties/items/items",
            json!([{ "type": "string" }]),
            "openAPIV3Schema.properties.spec.properties.items.items",
            "single schema",
        ),
        (
            "type inside anyOf",
            "/properties/spec/properties/nested/anyOf/1",
            json!({ "type": "object" }),
            "openAPIV3Schema.properties.spec.properties.nested.anyOf[1].type",
            "not allowed inside",
        ),
        (
            "description inside a property of oneOf",
            "/properties/spec/properties/nested/oneOf",
            json!([{ "properties": { "on": { "description": "x" } } }]),
            "openAPIV3Schema.properties.spec.properties.nested.oneOf[0].properties.on.description",
            "not allowed inside",
        ),
        (
            "extension inside not",
            "/properties/spec/properties/nested/not",
            json!({ "x-kubernetes-preserve-unknown-fields": true }),
            "openAPIV3Schema.properties.spec.properties.nested.not.x-kubernetes-preserve-unknown-fields",
            "not allowed inside",
        ),
        (
            "junctor field not specified outside",
            "/properties/spec/properties/nested/allOf",
            json!([{ "properties": { "off": { "enum": [true] } } }]),
            "openAPIV3Schema.properties.spec.properties.nested.allOf[0].properties.off",
            "not specified outside",
        ),
        (
            "default of the wrong type",
            "/properties/spec/properties/count/default",
            json!("three"),
            "openAPIV3Schema.properties.spec.properties.count.default",
            "does not have type",
        ),
        (
            "default outside the enum",
            "/properties/spec/properties/mode/default",
            json!("c"),
            "openAPIV3Schema.properties.spec.properties.mode.default",
            "not one of the enum values",
        ),
        (
            "default below the minimum",
            "/properties/spec/properties/count/default",
            json!(-1),
            "openAPIV3Schema.properties.spec.properties.count.default",
            "below the minimum",
        ),
        (
            "nested default of the wrong type",
            "/properties/spec/properties/nested/default",
            json!({ "on": "yes" }),
            "openAPIV3Schema.properties.spec.properties.nested.default.on",
            "does not have type",
        ),
        (
            "default with a field that would be pruned",
            "/properties/spec/properties/nested/default",
            json!({ "off": true }),
            "openAPIV3Schema.properties.spec.properties.nested.default.off",
            "unknown field",
        ),
        (
            "metadata restricting labels",
            "/properties/metadata/properties/labels",
            json!({ "type": "object", "additionalProperties": { "type": "string" } }),
            "openAPIV3Schema.properties.metadata.properties.labels",
            "only restrict name and generateName",
        ),
        (
            "metadata with a default",
            "/properties/metadata/default",
            json!({}),
            "openAPIV3Schema.properties.metadata.default",
            "only restrict name and generateName",
        ),
        (
            "list-map key not required",
            "/properties/spec/properties/items/items/required",
            json!([]),
            "openAPIV3Schema.properties.spec.properties.items.x-kubernetes-list-map-keys",
            "not required",
        ),
        (
            "list-map key not a property",
            "/properties/spec/properties/items/x-kubernetes-list-map-keys",
            json!(["id"]),
            "openAPIV3Schema.properties.spec.properties.items.x-kubernetes-list-map-keys",
            "not a property",
        ),
        (
            "list-map without keys",
            "/properties/spec/properties/items/x-kubernetes-list-map-keys",
            json!([]),
            "openAPIV3Schema.properties.spec.properties.items.x-kubernetes-list-map-keys",
            "needs list-map-keys",
        ),
        (
            "unsigned integer format",
            "/properties/spec/properties/count/format",
            json!("uint32"),
            "openAPIV3Schema.properties.spec.properties.count.format",
            "not int32 or int64",
        ),
        (
            "enum value of the wrong type",
            "/properties/spec/properties/mode/enum/1",
            json!(2),
            "openAPIV3Schema.properties.spec.properties.mode.enum[1]",
            "does not match the type",
        ),
        (
            "type on an int-or-string",
            "/properties/spec/properties/port/type",
            json!("string"),
            "openAPIV3Schema.properties.spec.properties.port.type",
            "must be empty",
        ),
        (
            "array without items",
            "/properties/spec/properties/list",
            json!({ "type": "array" }),
            "openAPIV3Schema.properties.spec.properties.list",
            "must specify items",
        ),
        (
            "uniqueItems",
            "/properties/spec/properties/items/uniqueItems",
            json!(true),
            "openAPIV3Schema.properties.spec.properties.items.uniqueItems",
            "cannot be true",
        ),
        (
            "required field that does not exist",
            "/properties/spec/required/0",
            json!("moed"),
            "openAPIV3Schema.properties.spec.required",
            "not a property",
        ),
        (
            "root without type object",
            "/type",
            json!("string"),
            "openAPIV3Schema",
            "root must have type object",
        ),
    ];
    for (what, pointer, replacement, path, words) in cases {
        let mut schema = valid_schema();
        set_pointer(&mut schema, pointer, replacement);
        let problems = structural_violations(&schema);
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with(&format!("{path}: ")) && p.contains(words)),
            "{what}: expected a problem at {path} mentioning {words:?}, got {problems:#?}"
        );
    }
}

/// Sets (inserting if needed) the value at a JSON pointer whose parent exists.
fn set_pointer(root: &mut Value, pointer: &str, value: Value) {
    let (parent, last) = pointer.rsplit_once('/').unwrap();
    let parent = root
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no parent for {pointer}"));
    match parent {
        Value::Object(map) => {
            map.insert(last.to_owned(), value);
        }
        Value::Array(list) => list[last.parse::<usize>().unwrap()] = value,
        _ => panic!("parent of {pointer} is a scalar"),
    }
}

// ---------------------------------------------------------------------------------------------
// Names, versions, columns

#[test]
fn every_crd_is_a_namespaced_switchyard_v1alpha1_kind_with_status() {
    let crds = crds();
    let kinds: Vec<&str> = crds.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Provider",
            "Backend",
            "AffinityGroup",
            "Workspace",
            "MuxRule",
            "RouterPolicy",
            "TaskChain"
        ]
    );
    let mut short_names = BTreeSet::new();
    for (kind, crd) in &crds {
        let spec = &crd["spec"];
        assert_eq!(spec["group"], "switchyard.dev", "{kind}");
        assert_eq!(spec["scope"], "Namespaced", "{kind}");
        let version = version(crd);
        assert_eq!(version["name"], "v1alpha1", "{kind}");
        assert_eq!(version["served"], true, "{kind}: v1alpha1 not served");
        assert_eq!(
            version["storage"], true,
            "{kind}: v1alpha1 not the storage version"
        );
        assert_eq!(
            version["subresources"]["status"],
            json!({}),
            "{kind}: no status subresource"
        );
        let names = &spec["names"];
        let categories = names["categories"].as_array().cloned().unwrap_or_default();
        assert!(
            categories.contains(&json!("switchyard")),
            "{kind}: not in category switchyard: {categories:?}"
        );
        let shorts = names["shortNames"].as_array().cloned().unwrap_or_default();
        assert!(!shorts.is_empty(), "{kind}: no short name");
        for short in shorts {
            let short = short.as_str().unwrap().to_owned();
            assert!(
                short_names.insert(short.clone()),
                "{kind}: short name {short} reused"
            );
        }
        assert_eq!(
            crd["metadata"]["name"],
            format!("{}.switchyard.dev", names["plural"].as_str().unwrap()),
            "{kind}"
        );
    }
}

/// (name, jsonPath) of every printer column of a kind.
fn printer_columns(crd: &Value) -> Vec<(String, String)> {
    version(crd)["additionalPrinterColumns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_owned(),
                c["jsonPath"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_crd_has_ready_and_age_printer_columns() {
    for (kind, crd) in crds() {
        let columns = printer_columns(&crd);
        assert!(
            columns.contains(&(
                "Ready".into(),
                r#".status.conditions[?(@.type=="Ready")].status"#.into()
            )),
            "{kind}: no Ready column on the Ready condition: {columns:?}"
        );
        assert!(
            columns.contains(&("Age".into(), ".metadata.creationTimestamp".into())),
            "{kind}: no Age column: {columns:?}"
        );
    }
}

#[test]
fn product_owner_printer_columns_are_present_in_order() {
    let required: [(&str, &[&str]); 3] = [
        ("Provider", &["Type", "Endpoint", "Ready", "Age"]),
        (
            "RouterPolicy",
            &["Priority", "Route", "State", "Matches", "Age"],
        ),
        ("MuxRule", &["Workspace", "Priority", "Matcher", "Target"]),
    ];
    for (kind, wanted) in required {
        let names: Vec<String> = printer_columns(&crd(kind))
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let mut rest = names.iter();
        for column in wanted {
            assert!(
                rest.any(|n| n == column),
                "{kind}: column {column} missing or out of order; columns are {names:?}, want {wanted:?} in this order"
            );
        }
    }
}

#[test]
fn printer_columns_point_at_fields_of_a_matching_type() {
    for (kind, crd) in crds() {
        let root = open_api_schema(&crd);
        for column in version(&crd)["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let json_path = column["jsonPath"].as_str().unwrap();
            let column_type = column["type"].as_str().unwrap();
            // Only plain paths are resolved here; `metadata` is the API server's.
            let Some(path) = json_path.strip_prefix('.') else {
                panic!("{kind}: jsonPath {json_path} does not start with a dot");
            };
            if path.starts_with("metadata.") || path.contains('[') {
                continue;
            }
            let field = schema_at(root, path);
            let field_type = field["type"].as_str().unwrap_or("int-or-string");
            let compatible = match column_type {
                "integer" => field_type == "integer",
                "number" => matches!(field_type, "integer" | "number"),
                "boolean" => field_type == "boolean",
                "date" => field_type == "string" && field["format"] == "date-time",
                "string" => field_type == "string",
                _ => false,
            };
            assert!(
                compatible,
                "{kind}: column {} ({column_type}) shows {json_path} of type {field_type}",
                column["name"]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Defaults, enums, list maps, priorities

#[test]
fn router_policy_circuit_breaker_has_the_seed_defaults() {
    let crd = crd("RouterPolicy");
    let breaker = schema_at(open_api_schema(&crd), "spec.circuitBreaker");
    assert_eq!(
        breaker["default"],
        json!({}),
        "circuitBreaker must default to {{}} so the API server fills every field"
    );
    let expected = [
        ("errorThresholdPercent", json!(50)),
        ("latencyThresholdMs", json!(5000)),
        ("consecutiveFailures", json!(5)),
        ("evaluationWindowSeconds", json!(60)),
        ("minRequestsThreshold", json!(10)),
        ("cooldownSeconds", json!(30)),
        ("halfOpenRequests", json!(3)),
        ("autoDisable", json!(true)),
        ("notifyOnOpen", json!(true)),
    ];
    let properties = breaker["properties"].as_object().unwrap();
    assert_eq!(
        properties
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        expected.iter().map(|(k, _)| *k).collect::<BTreeSet<_>>(),
        "circuitBreaker fields"
    );
    for (field, default) in expected {
        assert_eq!(
            properties[field]["default"], default,
            "circuitBreaker.{field}"
        );
    }
    let percent = &properties["errorThresholdPercent"];
    assert_eq!(
        percent["minimum"].as_f64(),
        Some(0.0),
        "errorThresholdPercent minimum"
    );
    assert_eq!(
        percent["maximum"].as_f64(),
        Some(100.0),
        "errorThresholdPercent maximum"
    );
}

#[test]
fn closed_sets_are_enums() {
    let cases: [(&str, &str, &[&str]); 7] = [
        (
            "Provider",
            "spec.type",
            &[
                "openai",
                "anthropic",
                "vllm",
                "ollama",
                "lm_studio",
                "llamacpp",
                "openrouter",
            ],
        ),
        (
            "Provider",
            "spec.auth.type",
            &["none", "passthrough", "api_key"],
        ),
        (
            "MuxRule",
            "spec.matcher.type",
            &[
                "catch_all",
                "filename_match",
                "fim_filename",
                "chat_filename",
                "model",
            ],
        ),
        (
            "AffinityGroup",
            "spec.loadBalancing.strategy",
            &[
                "round_robin",
                "least_outstanding",
                "weighted",
                "session_affinity",
            ],
        ),
        (
            "RouterPolicy",
            "spec.match.endpointType",
            &["chat", "completions", "embeddings"],
        ),
        (
            "TaskChain",
            "spec.tasks[].handler",
            &[
                "condition_key",
                "parse_number",
                "parse_score",
                "parse_range",
                "raw_string",
                "embedding",
                "raise_error",
                "model_execution",
                "execute_tool_calls",
                "parse_transition",
                "parse_key_value",
                "convert_to_openai_chat_response",
                "noop",
                "hook",
            ],
        ),
        (
            "TaskChain",
            "spec.tasks[].transition.branches[].operator",
            &[
                "equals",
                "contains",
                "starts_with",
                "ends_with",
                ">",
                "gt",
                "<",
                "lt",
                "in_range",
                "default",
            ],
        ),
    ];
    for (kind, path, values) in cases {
        let crd = crd(kind);
        let field = schema_at(open_api_schema(&crd), path);
        assert_eq!(field["type"], "string", "{kind} {path}");
        let actual: BTreeSet<&str> = field["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{kind} {path} is not an enum"))
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let expected: BTreeSet<&str> = values.iter().copied().collect();
        assert_eq!(actual, expected, "{kind} {path}");
        assert_eq!(
            actual.len(),
            values.len(),
            "{kind} {path}: duplicate values"
        );
    }
}

#[test]
fn guardrail_actions_are_the_words_or_false() {
    // Unquoted `off` reaches the API server as `false` from a YAML 1.1 parser (kubectl's): the
    // node cannot be typed "string or boolean" in a structural schema, so it is untyped and
    // closed by its `anyOf` enums.
    let crd = crd("Workspace");
    for path in ["spec.guardrails.secrets", "spec.guardrails.pii"] {
        let field = schema_at(open_api_schema(&crd), path);
        assert!(field.get("type").is_none(), "{path}: {field}");
        assert_eq!(
            field["x-kubernetes-preserve-unknown-fields"], true,
            "{path}"
        );
        assert_eq!(
            field["anyOf"],
            serde_json::json!([{"enum": ["off", "alert", "redact", "block"]}, {"enum": [false]}]),
            "{path}"
        );
        assert_eq!(field["default"], "off", "{path}");
    }
}

#[test]
fn status_conditions_are_list_maps_keyed_by_type() {
    for (kind, crd) in crds() {
        let conditions = schema_at(open_api_schema(&crd), "status.conditions");
        assert_eq!(conditions["type"], "array", "{kind}");
        assert_eq!(conditions["x-kubernetes-list-type"], "map", "{kind}");
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            json!(["type"]),
            "{kind}"
        );
        let required = conditions["items"]["required"].as_array().unwrap();
        assert!(
            required.contains(&json!("type")),
            "{kind}: condition type not required"
        );
        assert!(
            schema_at(open_api_schema(&crd), "status.observedGeneration").is_object(),
            "{kind}: no status.observedGeneration"
        );
    }
}

/// Paths of every property named `name` in a schema.
fn fields_named<'a>(schema: &'a Value, name: &str, path: &str, out: &mut Vec<(String, &'a Value)>) {
    let Some(object) = schema.as_object() else {
        return;
    };
    if let Some(properties) = object.get("properties").and_then(Value::as_object) {
        for (field, child) in properties {
            let child_path = format!("{path}.{field}");
            if field == name {
                out.push((child_path.clone(), child));
            }
            fields_named(child, name, &child_path, out);
        }
    }
    if let Some(items) = object.get("items") {
        fields_named(items, name, &format!("{path}[]"), out);
    }
    if let Some(value) = object.get("additionalProperties") {
        fields_named(value, name, &format!("{path}.*"), out);
    }
}

#[test]
fn every_priority_field_has_minimum_zero() {
    let mut found = 0;
    for (kind, crd) in crds() {
        let mut fields = Vec::new();
        fields_named(open_api_schema(&crd), "priority", "", &mut fields);
        for (path, field) in fields {
            found += 1;
            assert_eq!(field["type"], "integer", "{kind}{path}");
            assert_eq!(
                field["minimum"].as_f64(),
                Some(0.0),
                "{kind}{path}: priority must have minimum 0"
            );
        }
    }
    // MuxRule.spec, RouterPolicy.spec and Workspace.status.muxRules[].
    assert!(found >= 3, "only {found} priority fields found");
}
