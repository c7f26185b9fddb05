#!/usr/bin/env bash
# Builds kube-apiserver (Kubernetes 1.20, Debian's `kubernetes` source package) for the e2e
# harness and prints its path. The binary is cached (SWITCHYARD_E2E_CACHE, default
# ~/.cache/switchyard-e2e); a cached one is reused without rebuilding.
#
# Needs root for apt (as on CI). Steps: Debian's golang-go, rsync, jq, dpkg-dev, etcd-server,
# kubernetes-client (kubectl, unless one is installed) and golang-github-modern-go-reflect2-dev; `apt-get source
# kubernetes` through a deb-src list kept in the cache folder (the system lists are not touched);
# the vendored github.com/modern-go/reflect2 v1.0.1 is replaced by Debian's 1.0.2 (v1.0.1 makes
# an apiserver built with Go >= 1.18 crash in map iteration on its first CRD request); then
# `make WHAT=cmd/kube-apiserver`.
set -euo pipefail

cache="${SWITCHYARD_E2E_CACHE:-$HOME/.cache/switchyard-e2e}"
bin="$cache/kube-apiserver"
if [[ -x "$bin" ]]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$cache"
log="$cache/build.log"
exec 3>&1 1>>"$log" 2>&1
echo "== $(date -u +%FT%TZ) building kube-apiserver"

packages=(golang-go rsync jq dpkg-dev etcd-server golang-github-modern-go-reflect2-dev)
# Any kubectl will do (the machine image may carry a newer one from another repository).
command -v kubectl >/dev/null || packages+=(kubernetes-client)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

src_list="$cache/deb-src.sources"
cat >"$src_list" <<'LIST'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
LIST
apt_opts=(-o "Dir::Etc::sourcelist=$src_list" -o "Dir::Etc::sourceparts=-"
  -o "Dir::State::Lists=$cache/apt-lists")
mkdir -p "$cache/apt-lists/partial" "$cache/src"
apt-get "${apt_opts[@]}" update -qq
cd "$cache/src"
if ! compgen -G "kubernetes-1.20*/Makefile" >/dev/null; then
  apt-get "${apt_opts[@]}" source -qq kubernetes
fi
tree="$(dirname "$(compgen -G "kubernetes-1.20*/Makefile" | head -1)")"
cd "$tree"

reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
rm -rf vendor/github.com/modern-go/reflect2
cp -r "$reflect2" vendor/github.com/modern-go/reflect2

export GOFLAGS=-mod=vendor GO111MODULE=on GOPATH="$cache/gopath" GOCACHE="$cache/gocache"
export KUBE_BUILD_PLATFORMS=linux/amd64
make WHAT=cmd/kube-apiserver
out="$(find _output -type f -name kube-apiserver -perm -u+x | head -1)"
cp "$out" "$bin.tmp"
mv "$bin.tmp" "$bin"
echo "== built $bin"
echo "$bin" >&3
