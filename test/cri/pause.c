/* pause: the sandbox ("infra") container of the CRI test pods. It holds the
 * pod's namespaces open, reaps the zombies it inherits as PID 1 of the pod,
 * and exits on SIGINT or SIGTERM, as Kubernetes' pause does. Linked
 * statically: the pause image holds this file only. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) {
    (void)sig;
    _exit(0);
}

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction q = {.sa_handler = quit}, r = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
    if (getpid() != 1)
        fprintf(stderr, "pause: warning: not PID 1\n");
    if (sigaction(SIGINT, &q, NULL) < 0 || sigaction(SIGTERM, &q, NULL) < 0 || sigaction(SIGCHLD, &r, NULL) < 0)
        return 1;
    for (;;)
        pause();
}
