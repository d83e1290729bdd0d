# Process and namespace helpers shared by the e2e suites and demo.sh (sourced).
#
# The sourcing script keeps its background processes in the array BG_PIDS;
# start_bg sets LAST_PID. Only processes started by the script are signalled,
# always by PID.
# shellcheck shell=bash disable=SC2034 # LAST_PID, BG_PIDS are the caller's

# show FILE [LINES]: a file's lines (or its last N lines), indented for a report.
show() {
    [ -s "$1" ] || return 0
    if [ -n "${2:-}" ]; then tail -n "$2" "$1"; else cat "$1"; fi | sed 's/^/    | /'
}

# alive PID: true while PID runs (a zombie child does not count).
alive() {
    local s
    s=$(ps -o stat= -p "$1" 2>/dev/null) && [ -n "$s" ] && [ "${s:0:1}" != Z ]
}

# stop_pid PID [GRACE_SECONDS]: SIGTERM, then SIGKILL after the grace period; reaps it.
stop_pid() {
    local pid=$1 grace=${2:-3} i
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < grace * 10; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    # Reap it, unless it is gone already (reaped while a trap ran).
    [ -e "/proc/$pid" ] && wait "$pid" 2>/dev/null
    return 0
}

# start_bg LOG CMD...: starts CMD in the background; its PID is in $LAST_PID.
# LOG is emptied before it returns, so a caller polling LOG never reads what
# an earlier process wrote there (a redirection in the background child would
# truncate only later).
start_bg() {
    local out=$1
    shift
    : >"$out"
    "$@" >>"$out" 2>&1 &
    LAST_PID=$!
    BG_PIDS+=("$LAST_PID")
}

forget_pid() {
    local p keep=()
    for p in "${BG_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    BG_PIDS=("${keep[@]}")
}

# wait_listen NS ADDR:PORT PID LOG: polls ss until ADDR:PORT listens in NS.
wait_listen() {
    local ns=$1 addr=$2 pid=$3 out=$4 i
    for ((i = 0; i < 100; i++)); do
        if ip netns exec "$ns" ss -Hltn | awk -v a="$addr" '$4 == a { f = 1 } END { exit !f }'; then
            return 0
        fi
        if ! alive "$pid"; then
            echo "  process $pid for $addr in $ns exited:"
            show "$out" 10
            return 1
        fi
        sleep 0.1
    done
    echo "  nothing listens on $addr in $ns after 10 s"
    show "$out" 10
    return 1
}

# cgroup2_mount: where the cgroup v2 hierarchy is mounted (empty if nowhere).
cgroup2_mount() {
    awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' \
        /proc/self/mountinfo | head -n 1
}

# in_cgroup_cmd CGROUP: sets IN_CG to a command prefix: "${IN_CG[@]}" NS CMD...
# moves itself into CGROUP, then execs CMD in netns NS. A command, not a
# function, so that timeout can run it and $! is the final process: the PID
# stays the same through both execs.
in_cgroup_cmd() {
    # shellcheck disable=SC2016 # expanded by the inner sh
    IN_CG=(sh -c 'cg=$1; shift; echo $$ >"$cg/cgroup.procs" || exit 125; exec ip netns exec "$@"'
        in-cgroup "$1")
}

# empty_cgroup CG: SIGKILLs whatever is still in CG, for up to 5 s. Only for a
# cgroup the script made: all of it descends from processes started there.
empty_cgroup() {
    local i pid
    [ -n "$1" ] && [ -d "$1" ] || return 0
    for ((i = 0; i < 50; i++)); do
        [ -s "$1/cgroup.procs" ] || break
        while read -r pid; do kill -KILL "$pid" 2>/dev/null; done <"$1/cgroup.procs"
        sleep 0.1
    done
}

# remove_cgroup CG: rmdir, retried for up to 5 s while its last processes exit.
remove_cgroup() {
    local i
    [ -n "$1" ] && [ -d "$1" ] || return 0
    for ((i = 0; i < 50; i++)); do
        rmdir "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
