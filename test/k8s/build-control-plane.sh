#!/usr/bin/env bash
# Builds the real Kubernetes control plane the k8s tests run against: etcd, kube-apiserver,
# kube-controller-manager (from the Go module proxy, k8s.io/kubernetes used as a module) and helm.
# The binaries go to a cache directory outside the repository; a second run finds them and
# returns at once. Prints the bin directory on its last line.
#
#   HERD_K8S_CACHE   cache root (default ~/.cache/herd/k8s)
#   --bin-dir        only print where the binaries are (or would be), build nothing
set -euo pipefail

KUBERNETES_VERSION=v1.36.3 # k8s.io/kubernetes; its staging modules are v0.36.3
STAGING_VERSION=v0.36.3
HELM_VERSION=v3.22.0
# Bump when the way of building changes, so a cache built the old way is not reused.
RECIPE=3

cache_root="${HERD_K8S_CACHE:-$HOME/.cache/herd/k8s}"
bin_dir="$cache_root/kubernetes-$KUBERNETES_VERSION-helm-$HELM_VERSION-r$RECIPE/bin"
binaries=(etcd kube-apiserver kube-controller-manager helm)

if [[ "${1:-}" == "--bin-dir" ]]; then
  echo "$bin_dir"
  exit 0
fi

all_present() {
  for b in "${binaries[@]}"; do [[ -x "$bin_dir/$b" ]] || return 1; done
}

if all_present; then
  echo "control plane cached in $bin_dir"
  echo "$bin_dir"
  exit 0
fi

command -v go >/dev/null || { echo "go is needed to build the control plane" >&2; exit 1; }
started=$(date +%s)
mkdir -p "$bin_dir"
work="$(mktemp -d "${TMPDIR:-/tmp}/herd-k8s-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export GOFLAGS="-mod=mod -buildvcs=false"
# Kubernetes' own build stamps the version in with -X; without it the API server says v0.0.0 and
# helm refuses a chart whose kubeVersion asks for more.
minor="${KUBERNETES_VERSION#v1.}"
minor="${minor%%.*}"
version_flags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_flags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  version_flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
build=(nice -n 19 go build -trimpath "-ldflags=-s -w$version_flags")

# A throwaway module that requires k8s.io/kubernetes. Its own go.mod points the staging modules
# at ./staging; a dependent module must pin them to the published v0.x.y instead.
cd "$work"
go mod init herd.local/control-plane >/dev/null 2>&1
go mod edit -require="k8s.io/kubernetes@$KUBERNETES_VERSION"
kubernetes_gomod="$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
  sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$kubernetes_gomod" | awk '{print $1}' |
  while read -r module; do
    go mod edit -replace="$module=$module@$STAGING_VERSION"
  done
go mod edit -go="$(sed -n 's/^go //p' "$kubernetes_gomod")"

echo "building kube-apiserver $KUBERNETES_VERSION (slow the first time)" >&2
"${build[@]}" -o "$bin_dir/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
echo "building kube-controller-manager $KUBERNETES_VERSION" >&2
"${build[@]}" -o "$bin_dir/kube-controller-manager.tmp" k8s.io/kubernetes/cmd/kube-controller-manager
# etcd at the version Kubernetes itself was released with (its go.mod requires it).
echo "building etcd" >&2
"${build[@]}" -o "$bin_dir/etcd.tmp" go.etcd.io/etcd/server/v3
echo "building helm $HELM_VERSION" >&2
# As helm's Makefile does: its version, and the Kubernetes version `helm template` and `helm lint`
# assume (that of its client-go, v0.N → 1.N); without them helm assumes Kubernetes 1.20.
helm_gomod="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
helm_kube_minor="$(sed -n 's/^\s*k8s\.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$helm_gomod")"
helm_flags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_flags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$helm_kube_minor"
done
GOFLAGS=-buildvcs=false GOBIN="$work/gobin" nice -n 19 go install -trimpath "-ldflags=$helm_flags" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
mv "$work/gobin/helm" "$bin_dir/helm"
for b in kube-apiserver kube-controller-manager etcd; do mv "$bin_dir/$b.tmp" "$bin_dir/$b"; done

echo "control plane built in $(( $(date +%s) - started ))s into $bin_dir" >&2
echo "$bin_dir"
