#!/usr/bin/env bash
# //deploy:manifests_test: deploy/*.yaml against the Kubernetes schemas, and
# against meshwire itself.
#
#   manifests_test.sh LOADER CNI CARGO_TOML DEFAULT_CONFIG CHECKER MANIFEST...
#
# 1. kubernetes-validate --strict (unknown fields are errors) against the
#    oldest and the newest Kubernetes versions below: every document must pass,
#    with no warning (an unknown kind or apiVersion is only a warning there).
#    kubernetes-validate carries the schemas and runs offline; tools/setup.sh
#    installs it into a venv ($HOME/.cache/meshwire/venv).
# 2. The validator is alive: broken copies of the DaemonSet (an unknown field,
#    a wrong type, a missing required field), made here in a temporary
#    directory, must each fail.
# 3. check_manifests.py: what schemas cannot tell (references between the
#    objects, host paths, config keys, image tag, the loader's real CLI).
# 4. The DaemonSet's postStart and preStop hooks, run as written (with the
#    ConfigMap's config.toml, which the loader validates) but with the node's
#    /opt/cni/bin and /etc/cni/net.d replaced by temporary directories:
#    install chains meshwire-cni into a bridge network and copies the plugin,
#    uninstall restores the original file byte for byte and removes it.
set -uo pipefail

KUBERNETES_VERSIONS=(1.28.0 1.37.0)

[[ $# -ge 6 ]] || {
    echo "usage: manifests_test.sh LOADER CNI CARGO_TOML DEFAULT_CONFIG CHECKER MANIFEST..." >&2
    exit 2
}
loader=$(readlink -f "$1") cni=$(readlink -f "$2") cargo_toml=$3 default_config=$4 checker=$5
shift 5
manifests=("$@")

# shellcheck source=test/checks_lib.sh
. "$(dirname "$(readlink -f "$0")")/../test/checks_lib.sh" || exit 1

: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
venv=${MESHWIRE_VENV:-$HOME/.cache/meshwire/venv}
validate=$venv/bin/kubernetes-validate
python=$venv/bin/python
if [[ ! -x $validate || ! -x $python ]]; then
    echo "FAIL: $validate not found: tools/setup.sh (run by ./bazelw) installs kubernetes-validate into $venv" >&2
    exit 1
fi

tmp=$(mktemp -d "${TEST_TMPDIR:-/tmp}/meshwire-manifests.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

documents=$("$python" -c '
import sys, yaml
print(sum(1 for p in sys.argv[1:] for d in yaml.safe_load_all(open(p)) if d))' "${manifests[@]}") || {
    echo "FAIL: the manifests are not YAML" >&2
    exit 1
}
echo "$documents documents in ${#manifests[@]} files"

# --- 1. The schemas -------------------------------------------------------------
for v in "${KUBERNETES_VERSIONS[@]}"; do
    "$validate" --strict -k "$v" "${manifests[@]}" >"$tmp/out" 2>&1
    rc=$?
    sed 's/^/  /' "$tmp/out"
    passed=$(grep -c '^INFO .* passed for resource ' "$tmp/out")
    if [[ $rc -eq 0 && $passed -eq $documents ]] && ! grep -qE '^(WARN|ERROR)' "$tmp/out"; then
        ok "Kubernetes $v: all $documents documents valid (strict)"
    else
        fail "Kubernetes $v: kubernetes-validate exited $rc, $passed of $documents documents passed"
    fi
done

# --- 2. The validator rejects broken manifests ---------------------------------
daemonset=$(grep -l '^kind: DaemonSet' "${manifests[@]}" | head -n 1)
broken() { # broken NAME PYTHON_EXPRESSION_ON_d
    "$python" -c '
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
exec(sys.argv[2])
yaml.safe_dump(d, open(sys.argv[3], "w"))' "$daemonset" "$2" "$tmp/broken-$1.yaml" || {
        fail "could not make the broken copy $1"
        return
    }
    if "$validate" --strict -k "${KUBERNETES_VERSIONS[-1]}" "$tmp/broken-$1.yaml" >"$tmp/out" 2>&1; then
        fail "kubernetes-validate accepted a DaemonSet with $1"
        sed 's/^/  /' "$tmp/out" >&2
    else
        ok "kubernetes-validate rejects a DaemonSet with $1: $(grep -m1 ERROR "$tmp/out" | sed 's/.*: //')"
    fi
}
broken "an unknown field" 'd["spec"]["template"]["spec"]["containers"][0]["privilegd"] = True'
broken "a wrong type" 'd["spec"]["template"]["spec"]["hostNetwork"] = "yes"'
broken "no selector" 'del d["spec"]["selector"]'

# --- 3. meshwire's own checks ---------------------------------------------------
if "$python" "$checker" "$loader" "$cargo_toml" "$default_config" "${manifests[@]}" >"$tmp/out" 2>&1; then
    sed 's/^/  /' "$tmp/out"
    ok "check_manifests.py"
else
    sed 's/^/  /' "$tmp/out" >&2
    fail "check_manifests.py: $(grep -c '^FAIL' "$tmp/out") check(s) failed"
fi

# --- 4. The hooks, on temporary CNI directories ---------------------------------
# Each hook's command, one argument per line, with the node's directories and
# the image's binaries mapped to this test's.
hook() {
    "$python" -c '
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
c = [c for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == "loader"][0]
for a in c["lifecycle"][sys.argv[2]]["exec"]["command"]:
    print(a)' "$daemonset" "$1" |
        sed -e "s|^/usr/bin/meshwire-loader\$|$loader|" -e "s|^/opt/cni/bin/meshwire-cni\$|$cni|" \
            -e "s|^/host/opt/cni/bin\$|$tmp/node/opt/cni/bin|" -e "s|^/host/etc/cni/net.d\$|$tmp/node/etc/cni/net.d|" \
            -e "s|^/etc/meshwire/config.toml\$|$tmp/config.toml|"
}
# The ConfigMap's config.toml, which the hooks are given (--config): the real
# loader parses and validates it before doing anything.
"$python" -c '
import sys, yaml
for p in sys.argv[1:]:
    for d in yaml.safe_load_all(open(p)):
        if d and d["kind"] == "ConfigMap" and "config.toml" in d.get("data", {}):
            sys.stdout.write(d["data"]["config.toml"])' "${manifests[@]}" >"$tmp/config.toml"
mkdir -p "$tmp/node/opt/cni/bin" "$tmp/node/etc/cni/net.d"
conf=$tmp/node/etc/cni/net.d/10-bridge.conflist
cat >"$conf" <<'EOF'
{
  "cniVersion": "1.0.0",
  "name": "pods",
  "plugins": [
    { "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
      "ipam": { "type": "host-local", "subnet": "10.244.0.0/24" } },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
cp "$conf" "$tmp/original.conflist"
mapfile -t post_start < <(hook postStart)
mapfile -t pre_stop < <(hook preStop)
if [[ ${#post_start[@]} -eq 0 || ${#pre_stop[@]} -eq 0 ]]; then
    fail "no postStart/preStop exec command in $daemonset"
else
    if "${post_start[@]}" >"$tmp/out" 2>&1; then
        ok "postStart hook: $(tail -n 1 "$tmp/out")"
        if "$python" -c '
import json, sys
plugins = json.load(open(sys.argv[1]))["plugins"]
last = plugins[-1]
assert [p["type"] for p in plugins] == ["bridge", "portmap", "meshwire-cni"], plugins
assert set(last["namespaces"]["exclude"]) >= {"kube-system", "meshwire-system"}, last' "$conf" 2>"$tmp/err"; then
            ok "postStart chained meshwire-cni last, excluding kube-system and meshwire-system"
        else
            fail "postStart did not chain meshwire-cni as expected: $(tail -n 1 "$tmp/err")"
        fi
        if cmp -s "$cni" "$tmp/node/opt/cni/bin/meshwire-cni" && [[ -x $tmp/node/opt/cni/bin/meshwire-cni ]]; then
            ok "postStart installed the plugin binary"
        else
            fail "postStart did not install the plugin binary"
        fi
        if "${post_start[@]}" >"$tmp/out" 2>&1 && [[ $(grep -c meshwire-cni "$conf") -eq 1 ]]; then
            ok "postStart again (a container restart) changes nothing"
        else
            fail "postStart is not idempotent: $(tail -n 1 "$tmp/out")"
        fi
    else
        fail "postStart hook failed: $(tail -n 3 "$tmp/out")"
    fi
    if "${pre_stop[@]}" >"$tmp/out" 2>&1; then
        ok "preStop hook: $(tail -n 1 "$tmp/out")"
        if cmp -s "$conf" "$tmp/original.conflist"; then ok "preStop restored the network configuration byte for byte"; else
            fail "preStop left the network configuration changed"
        fi
        if [[ ! -e $tmp/node/opt/cni/bin/meshwire-cni ]]; then ok "preStop removed the plugin binary"; else
            fail "preStop left the plugin binary"
        fi
    else
        fail "preStop hook failed: $(tail -n 3 "$tmp/out")"
    fi
fi

checks_report
