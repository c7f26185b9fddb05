//! The deployment manifests (`config/`), rendered with `kubectl kustomize` and checked against
//! the code they deploy:
//! - every kustomization renders, and only with API versions Kubernetes 1.20 serves;
//! - the RBAC is exactly what the operator uses (verb for verb), the data plane has none;
//! - the containers' arguments parse with the binaries' own flag parsers, and what they name
//!   lines up: ports with probes and Services, the operator URL with its Service and TLS names,
//!   the allowed ServiceAccount with the gateway's, files with mounted volumes, the drain
//!   timeout with the termination grace period, the Lease and CA ConfigMap with the Role;
//! - pods run non-root with a read-only root filesystem, no privilege escalation, no
//!   capabilities and resource requests.
//!
//! `kubectl` comes from `PATH` (or `SWITCHYARD_KUBECTL`); any version renders these, including
//! 1.20's embedded kustomize.

// Test helpers fail loudly: unwrap is the assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use serde_json::Value;

const NS: &str = "switchyard-system";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `kubectl kustomize DIR`, parsed.
fn kustomize(dir: &str) -> Vec<Value> {
    let kubectl = std::env::var("SWITCHYARD_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let out = Command::new(&kubectl)
        .arg("kustomize")
        .arg(repo().join(dir))
        .output()
        .unwrap_or_else(|e| {
            panic!("running {kubectl} (install kubectl, or set SWITCHYARD_KUBECTL): {e}")
        });
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{ptr} is not a string in {v}"))
}

fn arr<'a>(v: &'a Value, ptr: &str) -> &'a Vec<Value> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{ptr} is not a list in {v}"))
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| s(o, "/kind") == kind && s(o, "/metadata/name") == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn by_name<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("nothing named {name} in {list:?}"))
}

/// The container's args with `$(VAR)` expanded the way the kubelet does, from the container's
/// env (`metadata.namespace` field references resolve to `ns`).
fn expanded_args(container: &Value, ns: &str) -> Vec<String> {
    let mut vars = BTreeMap::new();
    for e in container["env"].as_array().into_iter().flatten() {
        let value = match e
            .pointer("/valueFrom/fieldRef/fieldPath")
            .and_then(Value::as_str)
        {
            Some("metadata.namespace") => ns.to_owned(),
            Some("metadata.name") => "pod-0".to_owned(),
            Some(other) => panic!("unexpected field reference {other}"),
            None => e["value"].as_str().unwrap_or_default().to_owned(),
        };
        vars.insert(format!("$({})", s(e, "/name")), value);
    }
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let mut a = a.as_str().unwrap().to_owned();
            for (k, v) in &vars {
                a = a.replace(k, v);
            }
            assert!(!a.contains("$("), "unexpanded variable in {a}");
            a
        })
        .collect()
}

/// The port number of the container port called `name`.
fn container_port(container: &Value, name: &str) -> u16 {
    by_name(arr(container, "/ports"), name)["containerPort"]
        .as_u64()
        .unwrap() as u16
}

/// The volume mounted at a directory containing `file`, with its mount.
fn volume_of<'a>(pod: &'a Value, container: &'a Value, file: &Path) -> (&'a Value, &'a Value) {
    let mount = arr(container, "/volumeMounts")
        .iter()
        .filter(|m| file.starts_with(s(m, "/mountPath")))
        .max_by_key(|m| s(m, "/mountPath").len())
        .unwrap_or_else(|| panic!("{} is on no mounted volume", file.display()));
    (by_name(arr(pod, "/volumes"), s(mount, "/name")), mount)
}

fn is_read_only(mount: &Value) -> bool {
    mount["readOnly"].as_bool().unwrap_or(false)
}

/// Non-root, read-only root filesystem, no privilege escalation, no capabilities, requests.
fn check_hardened(what: &str, pod: &Value) {
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
        "{what}"
    );
    let uid = pod["securityContext"]["runAsUser"].as_u64().unwrap();
    assert!(uid > 0, "{what}: runAsUser {uid}");
    for c in arr(pod, "/containers") {
        let sc = &c["securityContext"];
        let name = s(c, "/name");
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}/{name}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}/{name}");
        assert_eq!(sc["runAsNonRoot"], true, "{what}/{name}");
        assert_eq!(
            sc["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{what}/{name}"
        );
        assert!(
            sc["capabilities"]["add"].is_null(),
            "{what}/{name} adds capabilities"
        );
        for r in ["cpu", "memory"] {
            assert!(
                c["resources"]["requests"][r].is_string(),
                "{what}/{name}: no {r} request"
            );
        }
        assert!(
            c["resources"]["limits"]["memory"].is_string() || name == "app",
            "{what}/{name}: no memory limit"
        );
    }
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    let sel = selector.as_object().unwrap();
    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Only API versions a Kubernetes 1.20 API server serves (policy/v1 PodDisruptionBudget, for
/// one, exists from 1.21), and every namespaced object in `ns`.
fn check_versions(objs: &[Value], ns: Option<&str>) {
    let allowed: BTreeMap<&str, &str> = [
        ("Namespace", "v1"),
        ("ServiceAccount", "v1"),
        ("Service", "v1"),
        ("PersistentVolumeClaim", "v1"),
        ("ConfigMap", "v1"),
        ("Secret", "v1"),
        ("Deployment", "apps/v1"),
        ("PodDisruptionBudget", "policy/v1beta1"),
        ("NetworkPolicy", "networking.k8s.io/v1"),
        ("ClusterRole", "rbac.authorization.k8s.io/v1"),
        ("ClusterRoleBinding", "rbac.authorization.k8s.io/v1"),
        ("Role", "rbac.authorization.k8s.io/v1"),
        ("RoleBinding", "rbac.authorization.k8s.io/v1"),
        ("CustomResourceDefinition", "apiextensions.k8s.io/v1"),
    ]
    .into();
    for o in objs {
        let kind = s(o, "/kind");
        let api = s(o, "/apiVersion");
        if api == "switchyard.dev/v1alpha1" {
            continue;
        }
        assert_eq!(
            allowed.get(kind).copied(),
            Some(api),
            "{kind} {}: {api} is not what Kubernetes 1.20 serves",
            s(o, "/metadata/name")
        );
        let cluster_scoped = matches!(
            kind,
            "Namespace" | "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition"
        );
        match (cluster_scoped, ns) {
            (true, _) => assert!(o["metadata"]["namespace"].is_null(), "{o}"),
            (false, Some(ns)) => assert_eq!(s(o, "/metadata/namespace"), ns, "{kind}"),
            (false, None) => {}
        }
    }
}

/// Rules as a set of (group, resource, verb, resourceNames) for comparison.
fn rules(role: &Value) -> BTreeSet<(String, String, String, String)> {
    let mut out = BTreeSet::new();
    for r in arr(role, "/rules") {
        let names: Vec<&str> = r["resourceNames"]
            .as_array()
            .map(|n| n.iter().map(|x| x.as_str().unwrap()).collect())
            .unwrap_or_default();
        for g in arr(r, "/apiGroups") {
            for res in arr(r, "/resources") {
                for v in arr(r, "/verbs") {
                    out.insert((
                        g.as_str().unwrap().to_owned(),
                        res.as_str().unwrap().to_owned(),
                        v.as_str().unwrap().to_owned(),
                        names.join(","),
                    ));
                }
            }
        }
    }
    out
}

fn rule(g: &str, res: &str, v: &str, names: &str) -> (String, String, String, String) {
    (g.into(), res.into(), v.into(), names.into())
}

#[test]
fn default_renders_the_expected_objects() {
    let objs = kustomize("config/default");
    check_versions(&objs, Some(NS));
    let mut got: Vec<String> = objs
        .iter()
        .filter(|o| o["kind"] != "CustomResourceDefinition")
        .map(|o| format!("{} {}", s(o, "/kind"), s(o, "/metadata/name")))
        .collect();
    got.sort();
    let want = [
        "ClusterRole switchyard-operator",
        "ClusterRole switchyard-viewer",
        "ClusterRoleBinding switchyard-operator",
        "Deployment switchyard-gateway",
        "Deployment switchyard-operator",
        "Namespace switchyard-system",
        "PersistentVolumeClaim switchyard-operator-data",
        "PodDisruptionBudget switchyard-gateway",
        "Role switchyard-operator",
        "RoleBinding switchyard-operator",
        "Service switchyard-gateway",
        "Service switchyard-operator",
        "ServiceAccount switchyard-dataplane",
        "ServiceAccount switchyard-operator",
    ];
    assert_eq!(got, want);
    // The CRDs are those of config/crd, untouched.
    let crds: Vec<&Value> = objs
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .collect();
    assert_eq!(crds.len(), 7);
    let plain = kustomize("config/crd");
    for c in crds {
        assert!(
            plain.contains(c),
            "{} changed by config/default",
            c["metadata"]["name"]
        );
    }
}

#[test]
fn rbac_is_exactly_what_the_operator_uses() {
    let objs = kustomize("config/default");
    // Every kind, from the CRDs themselves: list/watch, and patch on status (server-side apply
    // of status_writer.rs) where the CRD has a status subresource.
    let mut want = BTreeSet::new();
    for crd in objs
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
    {
        assert_eq!(s(crd, "/spec/group"), "switchyard.dev");
        let plural = s(crd, "/spec/names/plural");
        for v in ["list", "watch"] {
            want.insert(rule("switchyard.dev", plural, v, ""));
        }
        let has_status = arr(crd, "/spec/versions")
            .iter()
            .any(|v| !v["subresources"]["status"].is_null());
        assert!(has_status, "{plural} has no status subresource");
        want.insert(rule(
            "switchyard.dev",
            &format!("{plural}/status"),
            "patch",
            "",
        ));
    }
    for res in ["secrets", "services"] {
        for v in ["list", "watch"] {
            want.insert(rule("", res, v, ""));
        }
    }
    for v in ["create", "patch"] {
        want.insert(rule("events.k8s.io", "events", v, ""));
    }
    want.insert(rule("authentication.k8s.io", "tokenreviews", "create", ""));
    want.insert(rule(
        "authorization.k8s.io",
        "subjectaccessreviews",
        "create",
        "",
    ));
    assert_eq!(
        rules(find(&objs, "ClusterRole", "switchyard-operator")),
        want
    );

    // In its namespace: the Lease and the CA ConfigMap the flags name, and nothing else.
    let op = find(&objs, "Deployment", "switchyard-operator");
    let c = &arr(op, "/spec/template/spec/containers")[0];
    let cfg = switchyard_operator::config::Config::try_parse_from(
        std::iter::once("switchyard-operator".to_owned()).chain(expanded_args(c, NS)),
    )
    .unwrap();
    let role = find(&objs, "Role", "switchyard-operator");
    assert_eq!(s(role, "/metadata/namespace"), NS);
    let want: BTreeSet<_> = [
        rule("coordination.k8s.io", "leases", "create", ""),
        rule("coordination.k8s.io", "leases", "get", &cfg.lease_name),
        rule("coordination.k8s.io", "leases", "patch", &cfg.lease_name),
        rule("", "configmaps", "create", ""),
        rule("", "configmaps", "patch", &cfg.ca_configmap),
    ]
    .into();
    assert_eq!(rules(role), want);

    // Bound to the operator's ServiceAccount, the one its pods run as; nothing else is bound.
    let sa = s(op, "/spec/template/spec/serviceAccountName");
    for (kind, role_kind) in [
        ("ClusterRoleBinding", "ClusterRole"),
        ("RoleBinding", "Role"),
    ] {
        let b = find(&objs, kind, "switchyard-operator");
        assert_eq!(s(b, "/roleRef/kind"), role_kind);
        assert_eq!(s(b, "/roleRef/name"), "switchyard-operator");
        assert_eq!(
            b["subjects"],
            serde_json::json!([{"kind": "ServiceAccount", "name": sa, "namespace": NS}])
        );
    }
    assert_eq!(
        objs.iter()
            .filter(|o| s(o, "/kind").ends_with("Binding"))
            .count(),
        2
    );
    // The viewer role only reads.
    for (_, _, verb, _) in rules(find(&objs, "ClusterRole", "switchyard-viewer")) {
        assert!(["get", "list", "watch"].contains(&verb.as_str()), "{verb}");
    }
}

#[test]
fn operator_deployment_matches_its_flags() {
    let objs = kustomize("config/default");
    let op = find(&objs, "Deployment", "switchyard-operator");
    let pod = &op["spec"]["template"]["spec"];
    check_hardened("operator", pod);
    assert!(labels_match(
        &op["spec"]["selector"]["matchLabels"],
        &op["spec"]["template"]["metadata"]["labels"]
    ));
    let c = &arr(pod, "/containers")[0];
    assert!(s(c, "/image").starts_with("ghcr.io/switchyard-dev/switchyard-operator:"));
    let cfg = switchyard_operator::config::Config::try_parse_from(
        std::iter::once("switchyard-operator".to_owned()).chain(expanded_args(c, NS)),
    )
    .unwrap();
    assert!(cfg.manifests.is_none(), "cluster mode");
    assert!(cfg.namespace.is_none(), "watches every namespace");

    // The SQLite store is on the persistent volume, writable; one replica, never two at once.
    let db = cfg.store.strip_prefix("sqlite://").unwrap();
    let (vol, mount) = volume_of(pod, c, Path::new(db));
    assert!(!is_read_only(mount));
    let claim = s(vol, "/persistentVolumeClaim/claimName");
    find(&objs, "PersistentVolumeClaim", claim);
    assert_eq!(op["spec"]["replicas"], 1);
    assert_eq!(op["spec"]["strategy"]["type"], "Recreate");

    // Ports, probes and the Service.
    assert_eq!(container_port(c, "http"), cfg.http_listen.port());
    assert_eq!(container_port(c, "channel"), cfg.channel_listen.port());
    assert_eq!(container_port(c, "facade"), cfg.facade_listen.port());
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http");
    let svc = find(&objs, "Service", "switchyard-operator");
    assert!(labels_match(
        &svc["spec"]["selector"],
        &op["spec"]["template"]["metadata"]["labels"]
    ));
    for name in ["http", "channel", "facade"] {
        let p = by_name(arr(svc, "/spec/ports"), name);
        assert_eq!(p["targetPort"], name);
    }

    // The Lease and CA ConfigMap live in the pod's namespace (POD_NAMESPACE, the variable of
    // --pod-namespace), and the pod names its Events.
    let env = arr(c, "/env");
    assert_eq!(
        by_name(env, "POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(
        by_name(env, "POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    // The operator needs the API: its token is mounted (the default).
    assert!(pod["automountServiceAccountToken"] != false);
}

#[test]
fn gateway_follows_the_operator() {
    let objs = kustomize("config/default");
    let op = find(&objs, "Deployment", "switchyard-operator");
    let op_c = &arr(op, "/spec/template/spec/containers")[0];
    let op_cfg = switchyard_operator::config::Config::try_parse_from(
        std::iter::once("switchyard-operator".to_owned()).chain(expanded_args(op_c, NS)),
    )
    .unwrap();

    let gw = find(&objs, "Deployment", "switchyard-gateway");
    let labels = &gw["spec"]["template"]["metadata"]["labels"];
    let pod = &gw["spec"]["template"]["spec"];
    check_hardened("gateway", pod);
    assert!(labels_match(&gw["spec"]["selector"]["matchLabels"], labels));
    let c = &arr(pod, "/containers")[0];
    assert!(s(c, "/image").starts_with("ghcr.io/switchyard-dev/switchyard-dataplane:"));
    let cfg = switchyard_dataplane::config::Config::try_parse_from(
        std::iter::once("switchyard-dataplane".to_owned()).chain(expanded_args(c, NS)),
    )
    .unwrap();

    // The operator URL is its Service's channel port, under a name its certificate carries.
    let url = cfg.operator.as_deref().unwrap();
    let host_port = url.strip_prefix("https://").unwrap();
    let (host, port) = host_port.split_once(':').unwrap();
    let svc = find(&objs, "Service", "switchyard-operator");
    assert_eq!(host, format!("{}.{NS}.svc", s(svc, "/metadata/name")));
    let channel = by_name(arr(svc, "/spec/ports"), "channel");
    assert_eq!(channel["port"].as_u64().unwrap().to_string(), port);
    assert!(op_cfg.tls_names.iter().any(|n| n == host), "{host}");

    // Its ServiceAccount is the one the operator admits, with no RBAC, and no automounted
    // API credentials: only a projected token, which is the file it presents.
    let sa = s(pod, "/serviceAccountName");
    assert!(
        op_cfg
            .dataplane_service_accounts
            .contains(&format!("{NS}/{sa}")),
        "{:?}",
        op_cfg.dataplane_service_accounts
    );
    let sa_obj = find(&objs, "ServiceAccount", sa);
    assert_eq!(sa_obj["automountServiceAccountToken"], false);
    assert_eq!(pod["automountServiceAccountToken"], false);
    for b in objs.iter().filter(|o| s(o, "/kind").ends_with("Binding")) {
        assert!(!b["subjects"].to_string().contains(sa), "{b}");
    }
    let (vol, mount) = volume_of(pod, c, &cfg.operator_token_file);
    assert!(is_read_only(mount));
    let sources = arr(vol, "/projected/sources");
    assert_eq!(sources.len(), 1);
    assert_eq!(
        cfg.operator_token_file,
        Path::new(s(mount, "/mountPath")).join(s(&sources[0], "/serviceAccountToken/path"))
    );

    // The CA is the ConfigMap the operator publishes, key ca.crt.
    let ca = cfg.operator_ca_file.as_deref().unwrap();
    let (vol, mount) = volume_of(pod, c, ca);
    assert!(is_read_only(mount));
    assert_eq!(s(vol, "/configMap/name"), op_cfg.ca_configmap);
    assert_eq!(
        vol["configMap"]["items"],
        serde_json::json!([{"key": "ca.crt", "path": ca.file_name().unwrap().to_str().unwrap()}])
    );

    // A writable spool on an emptyDir (the root filesystem is read-only).
    let (vol, mount) = volume_of(pod, c, cfg.spool_dir.as_deref().unwrap());
    assert!(!is_read_only(mount));
    assert!(vol["emptyDir"].is_object());

    // Draining fits in the grace period.
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace * 1000 > cfg.drain_timeout_ms,
        "terminationGracePeriodSeconds {grace} must exceed --drain-timeout-ms {}",
        cfg.drain_timeout_ms
    );

    // Ports, probes, Service and PodDisruptionBudget.
    assert_eq!(container_port(c, "http"), cfg.listen.port());
    assert!(cfg.listen.ip().is_unspecified());
    // Health and metrics on their own port (`--admin-listen`).
    assert_eq!(container_port(c, "admin"), cfg.admin_listen.port());
    assert!(cfg.admin_listen.ip().is_unspecified());
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "admin");
    let svc = find(&objs, "Service", "switchyard-gateway");
    assert!(labels_match(&svc["spec"]["selector"], labels));
    assert_eq!(
        by_name(arr(svc, "/spec/ports"), "http")["targetPort"],
        "http"
    );
    assert_eq!(
        by_name(arr(svc, "/spec/ports"), "metrics")["targetPort"],
        "admin"
    );
    let pdb = find(&objs, "PodDisruptionBudget", "switchyard-gateway");
    assert!(labels_match(
        &pdb["spec"]["selector"]["matchLabels"],
        labels
    ));
    let replicas = gw["spec"]["replicas"].as_u64().unwrap();
    assert!(pdb["spec"]["minAvailable"].as_u64().unwrap() < replicas);
    assert_eq!(gw["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
}

#[test]
fn sidecar_example_calls_the_data_plane_on_localhost() {
    let objs = kustomize("config/dataplane/sidecar");
    check_versions(&objs, Some("demo-app"));
    let d = find(&objs, "Deployment", "demo-app");
    let pod = &d["spec"]["template"]["spec"];
    check_hardened("sidecar example", pod);
    assert_eq!(pod["automountServiceAccountToken"], false);
    let sa = find(&objs, "ServiceAccount", s(pod, "/serviceAccountName"));
    assert_eq!(sa["automountServiceAccountToken"], false);
    let containers = arr(pod, "/containers");
    let dp = by_name(containers, "switchyard");
    let cfg = switchyard_dataplane::config::Config::try_parse_from(
        std::iter::once("switchyard-dataplane".to_owned()).chain(expanded_args(dp, "demo-app")),
    )
    .unwrap();
    assert!(cfg.listen.ip().is_loopback(), "reachable from the Pod only");
    assert!(cfg.admin_listen.ip().is_loopback(), "metrics too");
    // The app calls that address.
    let app = by_name(containers, "app");
    let base = s(by_name(arr(app, "/env"), "OPENAI_BASE_URL"), "/value");
    assert_eq!(base, format!("http://{}/v1", cfg.listen));
    assert!(app["args"].to_string().contains(&cfg.listen.to_string()));
    // The operator in its own namespace, under a name of its certificate.
    let op = kustomize("config/default");
    let op_c = &arr(
        find(&op, "Deployment", "switchyard-operator"),
        "/spec/template/spec/containers",
    )[0];
    let op_cfg = switchyard_operator::config::Config::try_parse_from(
        std::iter::once("switchyard-operator".to_owned()).chain(expanded_args(op_c, NS)),
    )
    .unwrap();
    let host = cfg.operator.as_deref().unwrap();
    let host = host
        .strip_prefix("https://")
        .unwrap()
        .split(':')
        .next()
        .unwrap();
    assert_eq!(host, format!("switchyard-operator.{NS}.svc"));
    assert!(op_cfg.tls_names.iter().any(|n| n == host));
    // Only the data-plane container gets the token, the CA and a writable spool.
    let (vol, _) = volume_of(pod, dp, &cfg.operator_token_file);
    assert!(vol["projected"]["sources"][0]["serviceAccountToken"].is_object());
    assert!(app["volumeMounts"].is_null());
    let (vol, mount) = volume_of(pod, dp, cfg.spool_dir.as_deref().unwrap());
    assert!(vol["emptyDir"].is_object() && !is_read_only(mount));
    let (vol, _) = volume_of(pod, dp, cfg.operator_ca_file.as_deref().unwrap());
    assert_eq!(s(vol, "/configMap/name"), op_cfg.ca_configmap);
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace * 1000 > cfg.drain_timeout_ms);
}

#[test]
fn network_policies_select_the_pods() {
    let objs = kustomize("config/networkpolicy");
    check_versions(&objs, Some(NS));
    let default = kustomize("config/default");
    let sidecar = kustomize("config/dataplane/sidecar");
    let pod_labels = |objs: &[Value], name: &str| {
        find(objs, "Deployment", name)["spec"]["template"]["metadata"]["labels"].clone()
    };
    let op = find(&objs, "NetworkPolicy", "switchyard-operator");
    assert!(labels_match(
        &op["spec"]["podSelector"]["matchLabels"],
        &pod_labels(&default, "switchyard-operator")
    ));
    let gw = find(&objs, "NetworkPolicy", "switchyard-gateway");
    assert!(labels_match(
        &gw["spec"]["podSelector"]["matchLabels"],
        &pod_labels(&default, "switchyard-gateway")
    ));
    // The gateway's health and metrics port (its `--admin-listen`) is admitted too.
    let gw_admin = container_port(
        by_name(
            arr(
                &find(&default, "Deployment", "switchyard-gateway")["spec"]["template"]["spec"],
                "/containers",
            ),
            "dataplane",
        ),
        "admin",
    );
    assert!(
        arr(gw, "/spec/ingress")
            .iter()
            .any(|r| r["ports"][0]["port"] == u64::from(gw_admin))
    );
    // Every data plane may reach the channel.
    let channel = arr(op, "/spec/ingress")
        .iter()
        .find(|r| r["ports"][0]["port"] == 8443)
        .unwrap();
    let peer = &channel["from"][0]["podSelector"]["matchLabels"];
    assert!(labels_match(
        peer,
        &pod_labels(&default, "switchyard-gateway")
    ));
    assert!(labels_match(peer, &pod_labels(&sidecar, "demo-app")));
    assert!(channel["from"][0]["namespaceSelector"].is_object());
}

#[test]
fn crds_and_samples_render() {
    let crds = kustomize("config/crd");
    assert_eq!(crds.len(), 7);
    check_versions(&crds, None);
    for dir in ["config/samples/quickstart", "config/samples/advanced"] {
        let objs = kustomize(dir);
        assert!(!objs.is_empty());
        check_versions(&objs, None);
        // The operator only sees Secrets with its label.
        for sec in objs.iter().filter(|o| o["kind"] == "Secret") {
            assert_eq!(
                sec["metadata"]["labels"]["switchyard.dev/secret"], "true",
                "{dir}: {sec}"
            );
        }
    }
}
