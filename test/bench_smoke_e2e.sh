#!/bin/bash
# The benchmark still runs: every mode of //tools/bench once, at its smallest
# sizes, against the loader, mwtest and meshwire-cni of this build:
#
#   bench_smoke_e2e.sh BENCH MESHWIRE_LOADER MWTEST MESHWIRE_CNI CNI_TIMER PAUSE_IMAGE CONTAINERD_NODE CRI_PY
#
# Not a measurement (no figure is read); what it proves is that each mode
# gets through its own checks: every run intercepted as its mode says (the
# sidecars' session counts against the load tool's and the BPF counters or
# REDIRECT hits), every pod adopted after kill -9, every connection answered
# with its original destination, no request failed while pods churned, and
# the bench's clean-up finds nothing of its own left. Two modes broke
# without a sound once (a parse of the loader's log, a name shadowed in the
# bench): this keeps them runnable.
#
# 1. compare, --quick: direct, floor, iptables, ebpf, ebpf+accel on every
#    topology (same node, two nodes, the IPv4 and IPv6 mwtest pairs).
# 2. scale: 1 and 20 pods meshed through meshwire-cni, tcx and clsact.
# 3. conns: 200 live connections in eBPF mode, with and without acceleration.
# 4. churn: pods created and deleted for 5 s while traffic runs.
# 5. dns: DNS capture against iptables mode.
# 6. runtime: containerd (on a node of the bench's own) drives the chain,
#    1 and 5 pods meshed, 2 pods per turn.
# 7. hooks: each BPF program's own cost, 1 round of few runs, the working
#    tree's bpf/ alone (no --baseline: a test's runfiles are no checkout),
#    connect4, sockops, sk_msg and the veth included: every part's rows and
#    every floor program's, each datapath connection steered by tc, every
#    sk_msg row's messages redirected (none through the sockets' TCP), the
#    learned row's connections both accelerated and left out.
#
# Runs as root. The bench makes and removes its own namespaces, cgroups,
# bpffs and work dir (all named mwb<PID>-; --mode hooks' namespaces and
# bpffs mounts are its process's own); this suite checks after each mode
# that nothing of that PID's is left (and after hooks that no bpffs mount
# appeared on /sys/fs/bpf), and keeps the reports in its own work
# dir (prefix mwbs<PID>-). Programs attach only to the bench's cgroups,
# traffic stays inside its namespaces, and only processes started here are
# signalled, by PID.

# Functions run from cases or the EXIT trap:
# shellcheck disable=SC2317
P="mwbs$$"

# shellcheck source=test/suite_lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/suite_lib.sh" || exit 1

# bench_left PID: what a bench process left (its prefix is mwb<PID>-).
bench_left() {
    local p="mwb$1-"
    ip netns list 2>/dev/null | awk -v p="$p" 'index($1, p) == 1 { print "netns " $1 }'
    ip -o link show 2>/dev/null | awk -v p="$p" 'index($0, p) { print "link " $2 }'
    # cgroup2's and, for --mode runtime's pods (runc's cgroupfs driver), v1's.
    find "$CG2" /sys/fs/cgroup -maxdepth 2 -type d -name "$p*" 2>/dev/null | sort -u | sed 's/^/cgroup /'
    # Processes run from its work dir (--mode runtime's containerd, shims;
    # "[-]": the pattern does not match grep's own command line).
    grep -lsE "/tmp/mwb$1[-]" /proc/[0-9]*/cmdline | sed 's|^/proc/\([0-9]*\)/cmdline|process \1|'
    grep -F "/$p" /proc/mounts | awk '{ print "mount " $2 }'
    compgen -G "/tmp/$p*" | sed 's/^/work dir /'
}

# bench MODE_NAME ARG...: one run of the bench with ARGs, its report at
# $WORK/MODE_NAME.md; true when it exits 0, says its clean-up found nothing,
# and left nothing this suite can see either.
bench() {
    local name=$1 pid rc left
    shift
    "$BENCH" --loader "$LOADER" --mwtest "$MWTEST" --cni "$CNI" --cni-timer "$CNI_TIMER" --pause-image "$PAUSE_IMAGE" \
        --containerd-node "$CONTAINERD_NODE" --cri-py "$CRI_PY" --out "$WORK/$name.md" "$@" \
        >"$WORK/$name.log" 2>&1 &
    pid=$!
    BG_PIDS+=("$pid")
    wait "$pid"
    rc=$?
    forget_pid "$pid"
    left=$(bench_left "$pid")
    if [ "$rc" -ne 0 ] || ! grep -q '^clean-up: nothing left' "$WORK/$name.log" || [ -n "$left" ]; then
        log "bench $* exited $rc; its log's end:"
        show "$WORK/$name.log" 30
        [ -z "$left" ] || { log "left behind:"; echo "$left" | indent; }
        return 1
    fi
    [ -s "$WORK/$name.md" ] || { log "no report at $WORK/$name.md"; return 1; }
}

# report_has NAME TEXT: the report of run NAME contains TEXT.
report_has() {
    grep -qF -- "$2" "$WORK/$1.md" || { log "$1.md lacks: $2"; show "$WORK/$1.md" 40; return 1; }
}

case_compare() {
    bench compare --quick --no-profile --seconds 0.5 || return 1
    report_has compare "every run passed its interception check"
}

case_scale() {
    bench scale --mode scale --sizes 1,20 --samples 5 --restarts 1 --tc-attach tcx,clsact || return 1
    report_has scale "| clsact | 20 |" && report_has scale "| tcx | 20 |"
}

case_conns() {
    bench conns --mode conns --levels 200 --live-modes ebpf,ebpf+accel || return 1
    [ "$(grep -c 'kept, proved' "$WORK/conns.md")" -eq 2 ] || { log "not every level kept and proved:"; show "$WORK/conns.md" 30; return 1; }
}

case_churn() {
    bench churn --mode churn --churn-seconds 5 --churn-rate 10 --churn-workers 2 --tc-attach clsact || return 1
    report_has churn "none failed, nothing left"
}

case_runtime() {
    bench runtime --mode runtime --sizes 1,5 --samples 2 || return 1
    report_has runtime "| 5 | RunPodSandbox |" && report_has runtime "SO_ORIGINAL_DST answered"
}

case_dns() {
    bench dns --mode dns --reps 1 --seconds 1 || return 1
    report_has dns "| ok |" || return 1
    ! grep -F "FAILED" "$WORK/dns.md" || { log "a DNS run failed its proof"; return 1; }
}

# bpffs_on_sys: the bpffs mounts on /sys/fs/bpf this suite sees (--mode hooks
# mounts its own there, in a mount namespace of its own: none may show here).
bpffs_on_sys() {
    awk '$2 == "/sys/fs/bpf"' /proc/self/mounts
}

case_hooks() {
    local mounts row prog progs=0 counts
    mounts=$(bpffs_on_sys)
    # --calls 200: 10 connections per connect4 and sockops row and round
    # (the learned row's: 4 reported short, the rest left out), and the GSO
    # rows' long connections 4 round trips against the short ones' 1 (at 80
    # both make 1: no GSO table, no connection left out).
    bench hooks --mode hooks --rounds 1 --calls 200 || return 1
    [ "$(bpffs_on_sys)" = "$mounts" ] || {
        log "bpffs mounts on /sys/fs/bpf before the run:"; echo "$mounts" | indent
        log "after:"; bpffs_on_sys | indent
        return 1
    }
    report_has hooks "new: the working tree, alone" || return 1
    # a row of each part: test runs, the veth, sk_msg, connect4 and sockops
    # with acceleration off and on, the learned path; and the report's tables
    for row in '| `mw_tc_ingress` | flow packet in |' '| `mw_tc_egress` | flow packet out |' \
        '| `mw_tc_ingress` | IPv6 flow packet in |' \
        '| `mw_tc_ingress` | real packets in: a connection over a veth' '| `mw_tc_egress` | real packets out: ' \
        '| `mw_skmsg_redirect` | 64-byte message |' '| `mw_sock4_connect` | a meshed pod'"'"'s connect() |' \
        '| `mw_sockops` | its callbacks (both ends) |' '| `mw_sockops` | its callbacks, acceleration on (both ends' \
        '| `mw_skmsg_redirect` | the first message each way of a new meshed connection' \
        '| `mw_skmsg_redirect` | 64-byte message of a connection sockops accelerated' \
        '| `mw_sockops` | its callbacks, acceleration on, short connections learned' \
        '## The floor: one helper alone' "## The original destination's store" '## GSO packets'; do
        report_has hooks "$row" || return 1
    done
    for prog in mw_tc_ingress mw_tc_egress mw_skmsg_redirect mw_sock4_connect mw_sockops; do
        report_has hooks "- \`$prog\`: new " || return 1
    done
    # every program hooks_floor.c defines has a figure in the floor's table
    for prog in $(sed -n 's/^int \(floor_[a-z0-9_]*\)(.*/\1/p' "$(dirname "$BENCH")/hooks_floor.c"); do
        progs=$((progs + 1))
        grep -qE "^\| \`$prog\` \| .* \| [0-9]+ \([0-9]+-[0-9]+\) \| -?[0-9]+ \|\$" "$WORK/hooks.md" ||
            { log "the floor's table has no figure for $prog"; show "$WORK/hooks.md" 40; return 1; }
    done
    [ "$progs" -gt 0 ] || { log "no floor program found in $(dirname "$BENCH")/hooks_floor.c"; return 1; }
    # the sk_msg rows' redirect proof ran (hooks.py stops on a message through TCP)
    grep -qE "^Every sk_msg row's messages were redirected .*: [1-9][0-9,]* messages each way, [0-9,]+ bytes, 0 of them through TCP;" \
        "$WORK/hooks.md" || {
        log "the report does not say every sk_msg row's messages were redirected:"
        grep -F "Every sk_msg row" "$WORK/hooks.md" | indent
        return 1
    }
    # the learned row: sockops accelerated the first connections, then left the destination's out
    counts=$(sed -n 's/.*new: \([0-9,]*\) connections, \([0-9,]*\) accelerated (accel_sock_added [0-9,]*, both ends), \([0-9,]*\) left out.*/\1 \2 \3/p' \
        "$WORK/hooks.md" | tr -d ,)
    # shellcheck disable=SC2086 # three numbers
    set -- $counts
    [ $# -eq 3 ] && [ "$2" -ge 1 ] && [ "$3" -ge 1 ] || {
        log "the learned row's connections (connections, accelerated, left out): ${counts:-none reported}; expected some of each"
        grep -F "Short connections learned" "$WORK/hooks.md" | indent
        return 1
    }
}

suite_traps
suite_args BENCH LOADER MWTEST CNI CNI_TIMER PAUSE_IMAGE CONTAINERD_NODE CRI_PY -- "$@"
preflight python3 haproxy wrk iperf3 dnsperf containerd ctr runc nsenter || exit 1
# --mode runtime's CRI client runs in tools/setup.sh's venv, under $HOME.
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
export HOME
suite_workdir run || exit 1
export PYTHONDONTWRITEBYTECODE=1

run_case "1 compare --quick: every mode on every topology, each run intercepted as its mode says" case_compare
run_case "2 scale: 1 and 20 pods through meshwire-cni, tcx and clsact, adopted after kill -9" case_scale
run_case "3 conns: 200 live connections, eBPF with and without acceleration, each answered" case_conns
run_case "4 churn: pods created and deleted for 5 s, no request failed, nothing left" case_churn
run_case "5 dns: DNS capture, iptables mode against eBPF" case_dns
run_case "6 runtime: containerd drives the chain, 1 and 5 pods meshed, every pod meshed and removed, nothing left" case_runtime
run_case "7 hooks: every program's rows and the floor's, tc steering, sk_msg redirects, the learned row, nothing left" case_hooks
suite_end
