/* cni_timer: times a CNI plugin as its caller runs it (//tools/bench --mode
 * runtime). Placed in the CNI bin dir under a plugin's name (a hard link per
 * plugin timed), it is what the runtime (or a plugin that delegates, as
 * bridge execs host-local) execs; it runs the real plugin of the same name,
 * CNI_TIMER_DIR/basename(argv[0]), with its own environment, arguments and
 * standard input, output and error (inherited: the caller talks to the
 * plugin itself), waits for it, and appends one line
 *
 *     PLUGIN CNI_COMMAND CNI_CONTAINERID ELAPSED_NS STATUS START_NS STDIN_NS SNAPSHOT
 *
 * to the file CNI_TIMER_LOG: the plugin's name, nanoseconds
 * (CLOCK_MONOTONIC) from just before posix_spawn (vfork + exec, as a
 * runtime's own exec) to the plugin's reaped exit, its exit status (128 +
 * signal when killed), when it started (CLOCK_REALTIME, ns since the epoch:
 * the bench sets it beside the loader's log, whose lines carry the time they
 * were written), and when its standard input (the netconf, which the caller
 * writes into a pipe once the plugin started) was first readable or closed,
 * in ns after the spawn (-1: not seen; poll(2) does not take the data from
 * the plugin).
 *
 * SNAPSHOT is "-" unless the input was still not readable CNI_TIMER_SNAP_MS
 * ms (default 3) after the spawn; then, at that moment, the caller (the
 * parent process: the one whose goroutine is to write the netconf) as
 * "THREADS:RUNNING:WAITER:MACHINE": how many threads it has, how many of
 * them are running or runnable (state R in /proc/PPID/task/TID/stat), 1 when
 * one of its threads is blocked in waitid(P_PID, cni_timer's pid) or
 * wait4(cni_timer's pid) (from /proc/PPID/task/TID/syscall; 0 when none), and the machine's
 * procs_running (/proc/stat: tasks running or runnable on all CPUs, this one
 * included). Reading these costs well under a millisecond and happens only
 * on a slow input.
 *
 * One write(2) per line with O_APPEND: lines of plugins run at once do not
 * mix. The variables come from the runtime's environment, which libcni
 * passes to every plugin (and bridge to host-local). Linked statically: its
 * own exec, which the figure leaves out, stays short. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* A CNI error result on stdout (what the runtime reads) and on stderr. */
static int fail(const char *msg, const char *what) {
    printf("{\"cniVersion\":\"1.0.0\",\"code\":999,\"msg\":\"cni_timer: %s\",\"details\":\"%s\"}\n", msg, what);
    fprintf(stderr, "cni_timer: %s: %s\n", msg, what);
    return 1;
}

static long long since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)(t.tv_sec - t0->tv_sec) * 1000000000LL + (t.tv_nsec - t0->tv_nsec);
}

/* A /proc file (its first size - 1 bytes) into buf; their length, or -1. */
static int read_small(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC), n;
    if (fd < 0)
        return -1;
    n = (int)read(fd, buf, size - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = 0;
    return n;
}

/* The caller's threads at this moment, as SNAPSHOT above, into out. */
static void snapshot(char *out, size_t size) {
    char path[320], buf[512], *p;
    int threads = 0, running = 0, waiter = 0, machine = -1;
    pid_t ppid = getppid(), self = getpid();
    struct dirent *d;
    DIR *dir;

    snprintf(path, sizeof path, "/proc/%d/task", (int)ppid);
    if ((dir = opendir(path)) != NULL) {
        while ((d = readdir(dir)) != NULL) {
            if (d->d_name[0] < '0' || d->d_name[0] > '9')
                continue;
            threads++;
            snprintf(path, sizeof path, "/proc/%d/task/%s/stat", (int)ppid, d->d_name);
            /* "tid (comm) S ...": the state follows the last ')'. */
            if (read_small(path, buf, sizeof buf) > 0 && (p = strrchr(buf, ')')) != NULL && p[1] == ' ' && p[2] == 'R')
                running++;
            snprintf(path, sizeof path, "/proc/%d/task/%s/syscall", (int)ppid, d->d_name);
            if (read_small(path, buf, sizeof buf) > 0) {
                long nr = strtol(buf, &p, 10);
                unsigned long a0 = strtoul(p, &p, 16), a1 = strtoul(p, &p, 16);
                if ((nr == SYS_waitid && a0 == 1 /* P_PID */ && (pid_t)a1 == self) || (nr == SYS_wait4 && (pid_t)a0 == self))
                    waiter = 1;
            }
        }
        closedir(dir);
    }
    {
        static char stat[16384];
        if (read_small("/proc/stat", stat, sizeof stat) > 0 && (p = strstr(stat, "\nprocs_running ")) != NULL)
            machine = atoi(p + 15);
    }
    snprintf(out, size, "%d:%d:%d:%d", threads, running, waiter, machine);
}

int main(int argc, char **argv) {
    const char *dir = getenv("CNI_TIMER_DIR"), *logpath = getenv("CNI_TIMER_LOG"), *snap_env = getenv("CNI_TIMER_SNAP_MS");
    const char *cmd = getenv("CNI_COMMAND"), *cid = getenv("CNI_CONTAINERID");
    const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    struct timespec t0, start;
    struct pollfd in = {.fd = 0, .events = POLLIN};
    long long stdin_ns = -1, elapsed, snap_ns = (long long)((snap_env && *snap_env ? atof(snap_env) : 3.0) * 1e6);
    char exe[4096], snap[64] = "-", line[640];
    pid_t pid;
    int status, rc, fd, n;

    (void)argc;
    if (!dir || !*dir || !logpath || !*logpath)
        return fail("CNI_TIMER_DIR and CNI_TIMER_LOG must be set in the runtime's environment", "unset");
    if (!*name || snprintf(exe, sizeof exe, "%s/%s", dir, name) >= (int)sizeof exe)
        return fail("cannot name the plugin to run from argv[0]", argv[0]);
    argv[0] = exe;
    clock_gettime(CLOCK_REALTIME, &start);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = posix_spawn(&pid, exe, NULL, NULL, argv, environ);
    if (rc != 0)
        return fail("cannot run the real plugin in CNI_TIMER_DIR", exe);
    /* Until the snapshot's moment, then (if the input is not there yet)
     * the snapshot, then the rest of 10 s. */
    n = poll(&in, 1, (int)(snap_ns / 1000000));
    if (n == 0) {
        snapshot(snap, sizeof snap);
        n = poll(&in, 1, 10000);
    }
    if (n == 1)
        stdin_ns = since(&t0);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return fail("waitpid", strerror(errno));
    }
    elapsed = since(&t0);
    rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    n = snprintf(line, sizeof line, "%s %s %s %lld %d %lld %lld %s\n", name, cmd && *cmd ? cmd : "-", cid && *cid ? cid : "-",
                 elapsed, rc, (long long)start.tv_sec * 1000000000LL + start.tv_nsec, stdin_ns, snap);
    fd = open(logpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || n <= 0 || n >= (int)sizeof line || write(fd, line, (size_t)n) != n) {
        fprintf(stderr, "cni_timer: cannot append to %s: %s\n", logpath, strerror(errno));
        return rc ? rc : 1;
    }
    close(fd);
    return rc;
}
