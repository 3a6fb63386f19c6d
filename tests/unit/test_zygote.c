/* The fork server (rp_zygote.h) against a real server process: its
 * children are ours (waitpid works, the exit status arrives), they get
 * exactly the environment, stdin and limits sent, and a request that does
 * not fit or does not parse is refused without harm to the server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rp_zygote.h"

typedef struct fixture {
    int sock;   /* our end */
    pid_t server;
    char out[64]; /* where the children write what they saw */
} fixture_t;

static char g_out[64];

/* The "executor" each child runs: writes its environment, stdin and
 * RLIMIT_NOFILE to g_out.EXECUTION_ID and exits with $EXIT. */
static int child_main(int argc, char **argv)
{
    extern char **environ;
    const char *id = getenv("EXECUTION_ID"), *code = getenv("EXIT");
    char path[128], buf[256];
    struct rlimit rl;
    FILE *f;
    ssize_t n;

    if (argc != 1 || strcmp(argv[0], "argv0") || !id)
        return 99;
    snprintf(path, sizeof(path), "%s.%s", g_out, id);
    if (!(f = fopen(path, "w")))
        return 98;
    for (char **e = environ; *e; e++)
        fprintf(f, "env %s\n", *e);
    while ((n = read(STDIN_FILENO, buf, sizeof(buf))) > 0)
        fprintf(f, "stdin %.*s\n", (int)n, buf);
    getrlimit(RLIMIT_NOFILE, &rl);
    fprintf(f, "nofile %llu %llu\n", (unsigned long long)rl.rlim_cur,
            (unsigned long long)rl.rlim_max);
    fprintf(f, "sid %d\n", getsid(0) == getpid());
    /* What /proc shows of our environment (rp_zygote.h): its strings,
     * NULs as '|', up to the padding. */
    {
        FILE *pe = fopen("/proc/self/environ", "r");
        int ch, prev = 1;

        fputs("procenv ", f);
        while (pe && (ch = fgetc(pe)) != EOF && !(ch == 0 && prev == 0)) {
            fputc(ch ? ch : '|', f);
            prev = ch;
        }
        fputc('\n', f);
        if (pe)
            fclose(pe);
    }
    fclose(f);
    return code ? atoi(code) : 0;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    int sv[2];
    pid_t hello;
    char es[256];

    assert_non_null(f);
    snprintf(g_out, sizeof(g_out), "/tmp/rp-zygote-%d", (int)getpid());
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv),
                     0);
    f->server = fork();
    assert_true(f->server >= 0);
    if (f->server == 0) {
        close(sv[0]);
        _exit(rp_zygote_serve(sv[1], "argv0", child_main));
    }
    close(sv[1]);
    f->sock = sv[0];
    assert_int_equal(rp_zygote_hello(f->sock, 5000, &hello, es, sizeof(es)),
                     RP_OK);
    assert_int_equal(hello, f->server);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    int status;

    close(f->sock); /* the server exits 0 at end of file */
    assert_int_equal(waitpid(f->server, &status, 0), f->server);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    free(f);
    return 0;
}

static char *slurp(const char *id)
{
    char path[128], *buf = calloc(1, 8192);
    FILE *fp;

    snprintf(path, sizeof(path), "%s.%s", g_out, id);
    assert_non_null(buf);
    assert_non_null(fp = fopen(path, "r"));
    assert_true(fread(buf, 1, 8191, fp) > 0);
    fclose(fp);
    unlink(path);
    return buf;
}

static int memfd_with(const char *text)
{
    int fd = memfd_create("req", MFD_CLOEXEC);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

/* Start one child that must succeed and exit 0, and reap it. */
static void spawn_and_reap(fixture_t *f, char **env, const char *id)
{
    char es[256];
    int status;
    pid_t pid;

    assert_int_equal(rp_zygote_spawn(f->sock, env, -1, NULL, 0, 2000, &pid,
                                     es, sizeof(es)),
                     RP_OK);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    free(slurp(id));
}

/* The child is ours: waitpid sees it and its exit status, and it saw
 * only what was sent. */
static void test_spawn_env_stdin_limits(void **state)
{
    fixture_t *f = *state;
    char *env[] = {"EXECUTION_ID=e1", "EXIT=7", "A=b c", NULL};
    rp_zygote_limit_t lim = {RLIMIT_NOFILE, {.rlim_cur = 77, .rlim_max = 77}};
    char es[256], *out;
    int fd = memfd_with("{\"command\":\"true\"}"), status;
    pid_t pid;

    setenv("LEAK", "from the test", 1); /* must not reach the child */
    assert_int_equal(rp_zygote_spawn(f->sock, env, fd, &lim, 1, 2000, &pid,
                                     es, sizeof(es)),
                     RP_OK);
    close(fd);
    assert_true(pid > 0 && pid != f->server);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 7);
    out = slurp("e1");
    assert_non_null(strstr(out, "env EXECUTION_ID=e1\nenv EXIT=7\nenv A=b c\n"
                                "stdin {\"command\":\"true\"}\n"
                                "nofile 77 77\nsid 1\n"
                                "procenv EXECUTION_ID=e1|EXIT=7|A=b c|\n"));
    assert_null(strstr(out, "LEAK"));
    free(out);
}

/* Without a request fd the child's stdin is /dev/null; many in a row. */
static void test_spawn_many_no_stdin(void **state)
{
    fixture_t *f = *state;
    char es[256], id[32], idvar[48], *out;
    pid_t pids[20];

    for (int i = 0; i < 20; i++) {
        char *env[] = {idvar, NULL};

        snprintf(idvar, sizeof(idvar), "EXECUTION_ID=m%d", i);
        assert_int_equal(rp_zygote_spawn(f->sock, env, -1, NULL, 0, 2000,
                                         &pids[i], es, sizeof(es)),
                         RP_OK);
    }
    for (int i = 0; i < 20; i++) {
        int status;

        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        snprintf(id, sizeof(id), "m%d", i);
        out = slurp(id);
        assert_null(strstr(out, "stdin"));
        free(out);
    }
}

/* Too large for one request: refused on our side, the server goes on. */
static void test_too_large_then_fine(void **state)
{
    fixture_t *f = *state;
    size_t big = RP_ZYGOTE_MSG_MAX + 10;
    char *var = malloc(big + 3), es[256];
    char *env1[] = {var, NULL}, *env2[] = {"EXECUTION_ID=ok", NULL};
    pid_t pid;

    assert_non_null(var);
    memcpy(var, "X=", 2);
    memset(var + 2, 'x', big);
    var[big + 2] = '\0';
    assert_int_equal(rp_zygote_spawn(f->sock, env1, -1, NULL, 0, 2000, &pid,
                                     es, sizeof(es)),
                     RP_ERR_TOO_LARGE);
    assert_non_null(strstr(es, "over one fork-server request"));
    free(var);
    spawn_and_reap(f, env2, "ok");
}

/* A datagram that is not a request gets an error answer, not a child,
 * and the server still serves. */
static void test_garbage_refused(void **state)
{
    fixture_t *f = *state;
    char *env[] = {"EXECUTION_ID=after", NULL};
    struct {
        uint32_t magic;
        int32_t pid, err;
        uint32_t pad;
    } a;

    assert_int_equal(send(f->sock, "hello", 5, 0), 5);
    assert_int_equal(recv(f->sock, &a, sizeof(a), 0), (ssize_t)sizeof(a));
    assert_true(a.pid < 0);
    assert_int_equal(a.err, EPROTO);
    spawn_and_reap(f, env, "after");
}

/* Something that is not a fork server (it exits, or says nothing) fails
 * the greeting with a clear error instead of hanging. */
static void test_hello_from_non_server(void **state)
{
    int sv[2];
    pid_t pid, hello;
    char es[256];

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    pid = fork();
    if (pid == 0) {
        close(sv[0]);
        _exit(0); /* an "executor" that does not know --serve */
    }
    close(sv[1]);
    assert_int_equal(rp_zygote_hello(sv[0], 5000, &hello, es, sizeof(es)),
                     RP_ERR_PROTOCOL);
    assert_non_null(strstr(es, "exited"));
    waitpid(pid, NULL, 0);
    close(sv[0]);

    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    assert_int_equal(rp_zygote_hello(sv[0], 100, &hello, es, sizeof(es)),
                     RP_ERR_TIMEOUT);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_spawn_env_stdin_limits, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_spawn_many_no_stdin, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_too_large_then_fine, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_garbage_refused, setup, teardown),
        cmocka_unit_test(test_hello_from_non_server),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
