#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for the e2e suite: etcd and kube-apiserver (see
# build-apiserver.sh), a self-signed serving certificate, static tokens for an admin, the
# operator and a data plane, and kubeconfigs. No kubelet, scheduler or controller-manager: the
# suite runs the operator and data plane as local processes against the API server.
#
#   e2e/cluster.sh start DIR   starts it; writes DIR/env (source it) and DIR/*.kubeconfig
#   e2e/cluster.sh stop DIR    stops it
#
# Identities (static tokens; RBAC applies to the operator and data-plane users exactly as to
# ServiceAccounts of those names):
#   admin     system:masters
#   operator  system:serviceaccount:switchyard-system:switchyard-operator
#   dataplane system:serviceaccount:switchyard-system:switchyard-dataplane
set -euo pipefail

cmd="${1:?usage: cluster.sh start|stop DIR}"
dir="${2:?usage: cluster.sh start|stop DIR}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

stop() {
  for p in apiserver etcd; do
    if [[ -f "$dir/$p.pid" ]]; then
      kill "$(cat "$dir/$p.pid")" 2>/dev/null || true
      rm -f "$dir/$p.pid"
    fi
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

if [[ "$cmd" == stop ]]; then
  stop
  exit 0
fi
[[ "$cmd" == start ]] || { echo "unknown command $cmd" >&2; exit 2; }

apiserver="${SWITCHYARD_E2E_APISERVER:-$(bash "$(dirname "$0")/build-apiserver.sh")}"
command -v etcd >/dev/null || { echo "etcd is not installed (Debian package etcd-server)" >&2; exit 1; }

# Certificates: a CA, the API server's serving certificate for 127.0.0.1, and the key that
# signs ServiceAccount tokens.
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=switchyard-e2e-ca" \
  -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
  -keyout apiserver.key -out apiserver.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' >san.ext
openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
  -extfile san.ext -out apiserver.crt 2>/dev/null
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null

token() { head -c 24 /dev/urandom | base64 | tr -d '/+=' ; }
admin_token="$(token)"
operator_token="$(token)"
dataplane_token="$(token)"
cat >tokens.csv <<CSV
$admin_token,admin,admin,"system:masters"
$operator_token,system:serviceaccount:switchyard-system:switchyard-operator,op,"system:serviceaccounts,system:serviceaccounts:switchyard-system"
$dataplane_token,system:serviceaccount:switchyard-system:switchyard-dataplane,dp,"system:serviceaccounts,system:serviceaccounts:switchyard-system"
CSV
printf '%s\n' "$dataplane_token" >dataplane.token

etcd_port="$(free_port)"
peer_port="$(free_port)"
api_port="$(free_port)"
rm -rf etcd-data
etcd --data-dir "$dir/etcd-data" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" \
  --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "default=http://127.0.0.1:$peer_port" \
  >etcd.log 2>&1 &
echo $! >etcd.pid

"$apiserver" \
  --etcd-servers "http://127.0.0.1:$etcd_port" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
  --tls-cert-file "$dir/apiserver.crt" --tls-private-key-file "$dir/apiserver.key" \
  --client-ca-file "$dir/ca.crt" \
  --token-auth-file "$dir/tokens.csv" \
  --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc \
  --service-account-key-file "$dir/sa.pub" \
  --service-account-signing-key-file "$dir/sa.key" \
  --service-cluster-ip-range 10.96.0.0/16 \
  --endpoint-reconciler-type none \
  --enable-priority-and-fairness=false \
  --allow-privileged=false \
  >apiserver.log 2>&1 &
echo $! >apiserver.pid

kubeconfig() {
  cat >"$1.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $dir/ca.crt
users:
- name: $1
  user:
    token: $2
contexts:
- name: e2e
  context: {cluster: e2e, user: $1}
current-context: e2e
KC
}
kubeconfig admin "$admin_token"
kubeconfig operator "$operator_token"

for _ in $(seq 1 120); do
  if kubectl --kubeconfig admin.kubeconfig get --raw /readyz >/dev/null 2>&1; then
    cat >env <<ENV
export SWITCHYARD_E2E_KUBECONFIG=$dir/admin.kubeconfig
export SWITCHYARD_E2E_OPERATOR_KUBECONFIG=$dir/operator.kubeconfig
export SWITCHYARD_E2E_DATAPLANE_TOKEN_FILE=$dir/dataplane.token
ENV
    echo "control plane ready: https://127.0.0.1:$api_port (kubeconfig $dir/admin.kubeconfig)"
    exit 0
  fi
  if ! kill -0 "$(cat apiserver.pid)" 2>/dev/null; then
    echo "kube-apiserver exited; last lines of its log:" >&2
    tail -20 apiserver.log >&2
    stop
    exit 1
  fi
  sleep 0.5
done
echo "kube-apiserver not ready within 60 s; last lines of its log:" >&2
tail -20 apiserver.log >&2
stop
exit 1
