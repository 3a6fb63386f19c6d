/* runpool-dump-env: write the environment NUL-separated to stdout.
 *
 * The executor's EXIT trap runs this after every command to capture the
 * session's environment. It is a separate program, linked against libc
 * only, because it runs once per execution: runpool-executor itself links
 * libcurl and OpenSSL for gs:// state, and loading those ~30 shared
 * libraries costs several ms of CPU, twice per execution if the executor
 * were its own dumper (measured in bench/README.md). Same interface as
 * `runpool-executor --dump-env`, which remains the fallback. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs("usage: runpool-dump-env --dump-env\n"
              "Writes the environment NUL-separated to stdout (the "
              "executor's EXIT trap\nruns it after every command).\n\n"
              "  --dump-env   do it\n"
              "  -h, --help   show this help\n"
              "  --version    print the version\n",
              stdout);
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "--version")) {
        fputs("runpool-dump-env " RP_VERSION "\n", stdout);
        return 0;
    }
    if (argc != 2 || strcmp(argv[1], "--dump-env") != 0) {
        fprintf(stderr, "runpool-dump-env: %s%s%sexpected --dump-env (see "
                "--help)\n", argc > 1 ? "unknown argument '" : "",
                argc > 1 ? argv[1] : "", argc > 1 ? "'; " : "");
        return 2;
    }
    for (char **e = environ; e && *e; e++) {
        const char *p = *e;
        size_t left = strlen(p) + 1; /* with its terminating NUL */

        while (left > 0) {
            ssize_t n = write(STDOUT_FILENO, p, left);

            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return 1;
            p += n;
            left -= (size_t)n;
        }
    }
    return 0;
}
