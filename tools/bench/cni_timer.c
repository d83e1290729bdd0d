/* cni_timer: times a CNI plugin as the runtime runs it (//tools/bench --mode
 * runtime). Placed in the CNI bin dir under the plugin's name, it is what the
 * runtime execs; it runs the real plugin, CNI_TIMER_EXEC, with its own
 * environment, arguments and standard input, output and error (inherited:
 * the runtime talks to the plugin itself), waits for it, and appends one line
 *
 *     CNI_COMMAND CNI_CONTAINERID ELAPSED_NS STATUS START_NS STDIN_NS
 *
 * to the file CNI_TIMER_LOG: nanoseconds (CLOCK_MONOTONIC) from just before
 * posix_spawn (vfork + exec, as a runtime's own exec) to the plugin's reaped
 * exit, its exit status (128 + signal when killed), and when it started
 * (CLOCK_REALTIME, ns since the epoch: the bench sets it beside the
 * loader's log, whose lines carry the time they were written), and when its
 * standard input (the netconf, which the runtime writes into a pipe once the
 * plugin started) was first readable or closed, in ns after the spawn (-1:
 * not seen; poll(2) does not take the data from the plugin). It exits as the
 * plugin did. One write(2) per line with O_APPEND: lines of plugins run at
 * once do not mix. Both variables come from the runtime's environment, which
 * libcni passes to every plugin. Linked statically: its own exec, which the
 * figure leaves out, stays short. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(int argc, char **argv) {
    const char *exe = getenv("CNI_TIMER_EXEC"), *logpath = getenv("CNI_TIMER_LOG");
    const char *cmd = getenv("CNI_COMMAND"), *cid = getenv("CNI_CONTAINERID");
    struct timespec t0, t1, tin, start;
    struct pollfd in = {.fd = 0, .events = POLLIN};
    long long stdin_ns = -1;
    pid_t pid;
    int status, rc, fd, n;
    char line[512];

    (void)argc;
    if (!exe || !*exe || !logpath || !*logpath)
        return fail("CNI_TIMER_EXEC and CNI_TIMER_LOG must be set in the runtime's environment", "unset");
    argv[0] = (char *)exe;
    clock_gettime(CLOCK_REALTIME, &start);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = posix_spawn(&pid, exe, NULL, NULL, argv, environ);
    if (rc != 0)
        return fail("cannot run CNI_TIMER_EXEC", strerror(rc));
    if (poll(&in, 1, 10000) == 1) {
        clock_gettime(CLOCK_MONOTONIC, &tin);
        stdin_ns = (long long)(tin.tv_sec - t0.tv_sec) * 1000000000LL + (tin.tv_nsec - t0.tv_nsec);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return fail("waitpid", strerror(errno));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    n = snprintf(line, sizeof line, "%s %s %lld %d %lld %lld\n", cmd && *cmd ? cmd : "-", cid && *cid ? cid : "-",
                 (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec), rc,
                 (long long)start.tv_sec * 1000000000LL + start.tv_nsec, stdin_ns);
    fd = open(logpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || n <= 0 || n >= (int)sizeof line || write(fd, line, (size_t)n) != n) {
        fprintf(stderr, "cni_timer: cannot append to %s: %s\n", logpath, strerror(errno));
        return rc ? rc : 1;
    }
    close(fd);
    return rc;
}
