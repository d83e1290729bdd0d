# Checks one after another, each an "ok:" or "FAIL:" line, and a final report
# of the failed ones. Sourced by tests that are lists of checks
# (//deploy:manifests_test, //packaging:deb_test).
# shellcheck shell=bash

failures=()
fail() {
    echo "FAIL: $*" >&2
    failures+=("$*")
}
ok() { echo "ok: $*"; }

# checks_report: the failed checks (exit 1) or "all checks passed".
checks_report() {
    echo
    if [[ ${#failures[@]} -gt 0 ]]; then
        echo "${#failures[@]} check(s) failed:" >&2
        printf '  - %s\n' "${failures[@]}" >&2
        exit 1
    fi
    echo "all checks passed"
}
