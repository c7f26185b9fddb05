"""The Helm chart (charts/switchyard), rendered by Helm's own template engine.

helm-python-sdk binds Helm's Go SDK (a native library in the wheel), so `render` is what
`helm template` does: Go templates, Sprig, include/tpl/required/fail, values coalescing. The
checks:

- with default values, release "switchyard" in "switchyard-system", the chart renders the same
  objects as `kubectl kustomize config/default` (field for field, less Helm's own labels, the
  Namespace and the CRDs, which Helm takes from crds/ and which must equal config/crd);
- networkPolicy.enabled renders config/networkpolicy;
- each value does what values.yaml says, names stay consistent under another release name, and
  settings that cannot work are refused;
- every flag the templates pass exists in the binary's flag parser (operator/src/config.rs,
  dataplane/src/config.rs), for every value combination rendered here;
- a broken template fails the render (so this test would notice one).

Not rendered here: anything that needs a cluster (`lookup`, real Capabilities: the renderer's
default Kubernetes version stands in, so the PDB version switch is checked through its
explicit override and the default), and applying the output (the e2e suite applies the
kustomize tree to a real API server; this test ties the chart to that tree).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path

import helm_python as helm
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "switchyard"
NS = "switchyard-system"
HELM_LABELS = {"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/version"}


def kustomize(rel: str) -> list[dict]:
    kubectl = os.environ.get("SWITCHYARD_KUBECTL", "kubectl")
    out = subprocess.run(
        [kubectl, "kustomize", str(REPO / rel)], check=True, capture_output=True, text=True
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def render(values: dict | None = None, name: str = "switchyard", namespace: str = NS) -> list[dict]:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=name, namespace=namespace, is_install=True)
    docs = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def key(o: dict) -> tuple[str, str, str]:
    return (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])


def index(docs: list[dict]) -> dict[tuple[str, str, str], dict]:
    out = {}
    for d in docs:
        assert key(d) not in out, f"duplicate {key(d)}"
        out[key(d)] = d
    return out


def without_helm_metadata(o: dict) -> dict:
    """The object less what only Helm adds: its labels and the keep policy of the store claim."""
    o = copy.deepcopy(o)
    md = o["metadata"]
    labels = {k: v for k, v in md.get("labels", {}).items() if k not in HELM_LABELS}
    if labels:
        md["labels"] = labels
    else:
        md.pop("labels", None)
    ann = md.get("annotations", {})
    if o["kind"] == "PersistentVolumeClaim":
        assert ann.pop("helm.sh/resource-policy", None) == "keep"
    if not ann:
        md.pop("annotations", None)
    return o


def find(docs: list[dict], kind: str, name: str) -> dict:
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(hits) == 1, f"{kind} {name}: {len(hits)} found"
    return hits[0]


def container(docs: list[dict], deployment: str) -> dict:
    return find(docs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]


def flags_of(config_rs: Path) -> set[str]:
    """The long flags a clap `Config` declares: its field names, kebab-cased."""
    text = config_rs.read_text()
    body = text[text.index("pub struct Config") :]
    body = body[: body.index("\n}\n")]
    return {m.replace("_", "-") for m in re.findall(r"^\s*pub (\w+):", body, re.M)}


OPERATOR_FLAGS = flags_of(REPO / "operator" / "src" / "config.rs")
DATAPLANE_FLAGS = flags_of(REPO / "dataplane" / "src" / "config.rs")


def check_flags(docs: list[dict]) -> None:
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            known = OPERATOR_FLAGS if c["name"] == "operator" else DATAPLANE_FLAGS
            for a in c.get("args", []):
                flag = a.split("=", 1)[0].removeprefix("--")
                assert flag in known, f"{d['metadata']['name']}: unknown flag {a}"


def test_flag_lists_are_read():
    assert {"store", "lease-name", "ca-configmap", "dataplane-service-accounts"} <= OPERATOR_FLAGS
    assert {"listen", "operator", "operator-ca-file", "drain-timeout-ms"} <= DATAPLANE_FLAGS


def test_default_values_render_config_default():
    chart = render({"gateway": {"podDisruptionBudget": {"apiVersion": "policy/v1beta1"}}})
    check_flags(chart)
    kust = [
        o
        for o in kustomize("config/default")
        if o["kind"] not in ("Namespace", "CustomResourceDefinition")
    ]
    got = index(without_helm_metadata(o) for o in chart)
    want = index(kust)
    assert sorted(got) == sorted(want)
    for k, o in want.items():
        assert got[k] == o, f"{k} differs from config/default"
    # Helm's labels are there, on every object.
    for o in chart:
        assert o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_crds_are_config_crd():
    with helm.Chart.load(CHART) as chart:
        crds = [d for c in chart.crds for d in yaml.safe_load_all(c["data"]) if d]
    assert len(crds) == 7
    assert index(crds) == index(kustomize("config/crd"))


def test_pdb_version_follows_kubernetes():
    default = find(render(), "PodDisruptionBudget", "switchyard-gateway")
    kust = find(kustomize("config/default"), "PodDisruptionBudget", "switchyard-gateway")
    # The renderer's default Kubernetes is newer than 1.21: policy/v1, the same spec.
    assert default["apiVersion"] == "policy/v1"
    assert default["spec"] == kust["spec"]
    off = render({"gateway": {"podDisruptionBudget": {"enabled": False}}})
    assert not [o for o in off if o["kind"] == "PodDisruptionBudget"]


def test_lint_for_kubernetes_1_20():
    report = helm.lint(str(CHART), kube_version="v1.20.0", strict=True)
    assert report["errors"] == []
    # Only the informational "icon is recommended".
    assert all(m["severity"] <= 1 for m in report["messages"]), report["messages"]


def test_network_policies_render_config_networkpolicy():
    chart = render({"networkPolicy": {"enabled": True}})
    got = index(without_helm_metadata(o) for o in chart if o["kind"] == "NetworkPolicy")
    assert got == index(kustomize("config/networkpolicy"))
    peers = [{"namespaceSelector": {"matchLabels": {"team": "platform"}}}]
    chart = render(
        {
            "networkPolicy": {
                "enabled": True,
                "facadeFrom": peers,
                "metricsFrom": peers,
                "gatewayFrom": peers,
            }
        }
    )
    op = find(chart, "NetworkPolicy", "switchyard-operator")["spec"]["ingress"]
    by_port = {r["ports"][0]["port"]: r for r in op}
    assert by_port[8444]["from"] == peers and by_port[8080]["from"] == peers
    assert by_port[8443]["from"][0]["podSelector"]["matchLabels"] == {
        "switchyard.dev/dataplane": "true"
    }
    gw = find(chart, "NetworkPolicy", "switchyard-gateway")["spec"]["ingress"]
    assert gw[0]["from"] == peers


def test_images_replicas_and_resources():
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    cargo = (REPO / "Cargo.toml").read_text()
    assert f'version = "{app_version}"' in cargo, "Chart appVersion is the workspace version"
    docs = render(
        {
            "operator": {
                "image": {"repository": "registry.example/op", "tag": "1.2.3"},
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
            },
            "gateway": {
                "image": {"repository": "registry.example/dp", "pullPolicy": "Always"},
                "replicas": 5,
            },
            "imagePullSecrets": [{"name": "regcred"}],
        }
    )
    op = container(docs, "switchyard-operator")
    assert op["image"] == "registry.example/op:1.2.3"
    # Maps merge with the defaults (Helm's coalescing): the memory limit stays.
    assert op["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "512Mi"}}
    gw = container(docs, "switchyard-gateway")
    assert gw["image"] == f"registry.example/dp:{app_version}"
    assert gw["imagePullPolicy"] == "Always"
    assert find(docs, "Deployment", "switchyard-gateway")["spec"]["replicas"] == 5
    for d in ("switchyard-operator", "switchyard-gateway"):
        spec = find(docs, "Deployment", d)["spec"]["template"]["spec"]
        assert spec["imagePullSecrets"] == [{"name": "regcred"}]


def test_postgres_store_from_a_secret():
    docs = render(
        {
            "store": {"type": "postgres", "postgres": {"secretName": "pg", "secretKey": "dsn"}},
            "operator": {"replicas": 3},
        }
    )
    check_flags(docs)
    d = find(docs, "Deployment", "switchyard-operator")
    assert d["spec"]["replicas"] == 3
    assert d["spec"]["strategy"]["type"] == "RollingUpdate"
    c = d["spec"]["template"]["spec"]["containers"][0]
    assert not [a for a in c["args"] if a.startswith("--store")], "the URL never goes in args"
    env = {e["name"]: e for e in c["env"]}
    assert env["SWITCHYARD_STORE"]["valueFrom"]["secretKeyRef"] == {"name": "pg", "key": "dsn"}
    assert not [o for o in docs if o["kind"] == "PersistentVolumeClaim"]
    vols = {v["name"] for v in d["spec"]["template"]["spec"]["volumes"]}
    assert "data" not in vols


def test_sqlite_persistence_options():
    docs = render({"store": {"sqlite": {"persistence": {"existingClaim": "mine"}}}})
    assert not [o for o in docs if o["kind"] == "PersistentVolumeClaim"]
    vols = find(docs, "Deployment", "switchyard-operator")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "mine"}} in vols
    docs = render({"store": {"sqlite": {"persistence": {"enabled": False}}}})
    vols = find(docs, "Deployment", "switchyard-operator")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "data", "emptyDir": {}} in vols
    docs = render(
        {
            "store": {
                "sqlite": {
                    "persistence": {
                        "size": "20Gi",
                        "storageClassName": "fast",
                        "keepOnUninstall": False,
                    }
                }
            }
        }
    )
    pvc = find(docs, "PersistentVolumeClaim", "switchyard-operator-data")
    assert pvc["spec"]["storageClassName"] == "fast"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert "annotations" not in pvc["metadata"]


@pytest.mark.parametrize(
    "values, message",
    [
        ({"operator": {"replicas": 2}}, "needs store.type=postgres"),
        ({"store": {"type": "postgres"}}, "store.postgres.secretName"),
        ({"store": {"type": "mysql"}}, "sqlite or postgres"),
        ({"gateway": {"drainTimeoutMs": 40000}}, "terminationGracePeriodSeconds"),
    ],
)
def test_settings_that_cannot_work_are_refused(values, message):
    with pytest.raises(helm.HelmError, match=message):
        render(values)


def test_tls_from_a_secret():
    docs = render({"tls": {"secretName": "sy-tls", "extraNames": ["gw.example.com"]}})
    check_flags(docs)
    op = find(docs, "Deployment", "switchyard-operator")["spec"]["template"]["spec"]
    args = op["containers"][0]["args"]
    assert "--tls-cert-file=/etc/switchyard/tls/tls.crt" in args
    assert "--tls-key-file=/etc/switchyard/tls/tls.key" in args
    assert any(a.startswith("--tls-names=") and a.endswith(",gw.example.com") for a in args)
    assert {"name": "tls", "mountPath": "/etc/switchyard/tls", "readOnly": True} in op[
        "containers"
    ][0]["volumeMounts"]
    tls = next(v for v in op["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] == "sy-tls"
    # The gateway trusts the Secret's CA, and never mounts its key.
    gw = find(docs, "Deployment", "switchyard-gateway")["spec"]["template"]["spec"]
    ca = next(v for v in gw["volumes"] if v["name"] == "operator-ca")
    assert ca == {
        "name": "operator-ca",
        "secret": {"secretName": "sy-tls", "items": [{"key": "ca.crt", "path": "ca.crt"}]},
    }
    docs = render({"tls": {"secretName": "sy-tls", "caConfigMap": "trust-bundle"}})
    gw = find(docs, "Deployment", "switchyard-gateway")["spec"]["template"]["spec"]
    ca = next(v for v in gw["volumes"] if v["name"] == "operator-ca")
    assert ca["configMap"]["name"] == "trust-bundle"


def test_service_monitor():
    assert not [o for o in render() if o["kind"] == "ServiceMonitor"]
    docs = render({"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}})
    sm = find(docs, "ServiceMonitor", "switchyard")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "prom"
    sel = sm["spec"]["selector"]["matchLabels"]
    services = [o for o in docs if o["kind"] == "Service"]
    assert len(services) == 2
    for svc in services:
        assert sel.items() <= svc["metadata"]["labels"].items()
        assert "http" in [p["name"] for p in svc["spec"]["ports"]]
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    # The gateway's /metrics is on its own port, not on the API's ("http" there).
    gw = find(docs, "Service", "switchyard-gateway")
    assert "metrics" in [p["name"] for p in gw["spec"]["ports"]]
    assert [e["port"] for e in sm["spec"]["endpoints"]] == ["http", "metrics"]
    keep = sm["spec"]["endpoints"][0]["relabelings"][0]
    assert keep["action"] == "keep" and keep["regex"] == "operator"


def test_watch_one_namespace():
    docs = render({"operator": {"watchNamespace": "team-a"}})
    check_flags(docs)
    args = container(docs, "switchyard-operator")["args"]
    assert "--namespace=team-a" in args
    cluster = find(docs, "ClusterRole", "switchyard-operator")
    assert {r["resources"][0] for r in cluster["rules"]} == {"tokenreviews", "subjectaccessreviews"}
    role = find(docs, "Role", "switchyard-operator-watch")
    assert role["metadata"]["namespace"] == "team-a"
    default_rules = find(render(), "ClusterRole", "switchyard-operator")["rules"]
    assert role["rules"] + cluster["rules"] == default_rules
    rb = find(docs, "RoleBinding", "switchyard-operator-watch")
    assert rb["metadata"]["namespace"] == "team-a"
    assert rb["subjects"] == [
        {"kind": "ServiceAccount", "name": "switchyard-operator", "namespace": NS}
    ]


def test_other_release_names_stay_consistent():
    docs = render(
        {
            "operator": {
                "dataplaneServiceAccounts": ["apps/web"],
                "dataplaneNamespaces": ["apps", "jobs"],
            }
        },
        name="edge",
        namespace="gw",
    )
    check_flags(docs)
    names = {o["metadata"]["name"] for o in docs}
    assert all(n.startswith("edge-switchyard") for n in names), names
    op = container(docs, "edge-switchyard-operator")
    args = dict(a.split("=", 1) for a in op["args"])
    assert args["--lease-name"] == "edge-switchyard-operator"
    assert args["--ca-configmap"] == "edge-switchyard-ca"
    assert args["--dataplane-service-accounts"] == "$(POD_NAMESPACE)/edge-switchyard-dataplane,apps/web"
    assert args["--dataplane-namespaces"] == "apps,jobs"
    role = find(docs, "Role", "edge-switchyard-operator")
    named = {r["resources"][0]: r.get("resourceNames") for r in role["rules"] if "resourceNames" in r}
    assert named == {"leases": ["edge-switchyard-operator"], "configmaps": ["edge-switchyard-ca"]}
    gw = find(docs, "Deployment", "edge-switchyard-gateway")["spec"]["template"]["spec"]
    assert gw["serviceAccountName"] == "edge-switchyard-dataplane"
    gw_args = dict(a.split("=", 1) for a in gw["containers"][0]["args"])
    host = gw_args["--operator"].removeprefix("https://").split(":")[0]
    assert host == "edge-switchyard-operator.$(POD_NAMESPACE).svc"
    assert host in args["--tls-names"].split(",")
    ca = next(v for v in gw["volumes"] if v["name"] == "operator-ca")
    assert ca["configMap"]["name"] == "edge-switchyard-ca"
    svc = find(docs, "Service", "edge-switchyard-operator")
    assert svc["metadata"]["namespace"] == "gw"
    crb = find(docs, "ClusterRoleBinding", "edge-switchyard-operator")
    assert crb["subjects"][0]["namespace"] == "gw"
    assert find(docs, "ClusterRole", "edge-switchyard-viewer")


def test_gateway_can_be_left_out():
    docs = render({"gateway": {"enabled": False}, "networkPolicy": {"enabled": True}})
    kinds = {(o["kind"], o["metadata"]["name"]) for o in docs}
    assert ("Deployment", "switchyard-operator") in kinds
    assert not [k for k in kinds if "gateway" in k[1]], kinds


def test_gateway_drain_and_extra_settings():
    docs = render(
        {
            "gateway": {
                "drainTimeoutMs": 60000,
                "terminationGracePeriodSeconds": 75,
                "extraArgs": ["--require-client-key", "--egress-deny-cidr=10.0.0.0/8"],
                "extraEnv": [{"name": "RUST_LOG", "value": "debug"}],
                "service": {"type": "LoadBalancer", "port": 8080},
                "nodeSelector": {"pool": "edge"},
            },
            "operator": {"extraArgs": ["--discovery-interval-s=60"], "logFormat": "plain"},
        }
    )
    check_flags(docs)
    d = find(docs, "Deployment", "switchyard-gateway")["spec"]["template"]["spec"]
    assert d["terminationGracePeriodSeconds"] == 75
    assert d["nodeSelector"] == {"pool": "edge"}
    c = d["containers"][0]
    assert "--drain-timeout-ms=60000" in c["args"]
    assert c["args"][-2:] == ["--require-client-key", "--egress-deny-cidr=10.0.0.0/8"]
    assert {"name": "RUST_LOG", "value": "debug"} in c["env"]
    svc = find(docs, "Service", "switchyard-gateway")
    assert svc["spec"]["type"] == "LoadBalancer" and svc["spec"]["ports"][0]["port"] == 8080
    op = container(docs, "switchyard-operator")
    assert "--log-format=plain" in op["args"] and op["args"][-1] == "--discovery-interval-s=60"


def test_a_broken_template_fails_the_render(tmp_path):
    broken = tmp_path / "switchyard"
    shutil.copytree(CHART, broken)
    t = broken / "templates" / "gateway-service.yaml"
    t.write_text(t.read_text().replace(".Values.gateway.service.port", ".Values.gateway.nope.port"))
    with helm.Chart.load(broken) as chart, pytest.raises(helm.HelmError, match="nil pointer"):
        chart.render(None, name="switchyard", namespace=NS)
