#include "rp_kafka.h"

#include "rp_log.h"
#include "rp_secfile.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const struct rp_kafka_prop {
    const char *name;
    char scope;
} rp_kafka_props_table[] = {
#include "rp_kafka_props.inc"
};

#define RP_KAFKA_NTABLE \
    (sizeof(rp_kafka_props_table) / sizeof(rp_kafka_props_table[0]))

char rp_kafka_prop_scope(const char *name)
{
    for (size_t i = 0; i < RP_KAFKA_NTABLE; i++)
        if (!strcmp(rp_kafka_props_table[i].name, name))
            return rp_kafka_props_table[i].scope;
    return 0;
}

int rp_kafka_prop_is_secret(const char *name)
{
    return strstr(name, "password") || strstr(name, "secret") ||
           strstr(name, "key");
}

/* A secret a config file must not show to group or others. */
static int rp_kafka_prop_is_password(const char *name)
{
    return strstr(name, "password") || strstr(name, "secret");
}

rp_err_t rp_kafka_set(rd_kafka_conf_t *conf, const char *name,
                      const char *value, char *errstr, size_t errstr_size)
{
    char kerr[512];

    if (rd_kafka_conf_set(conf, name, value, kerr, sizeof(kerr)) !=
        RD_KAFKA_CONF_OK)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "kafka setting %s=%s: %s", name,
                       rp_kafka_prop_is_secret(name) ? "(redacted)" : value,
                       kerr);
    return RP_OK;
}

/* Split "key=value" into name (of size RP_KAFKA_NAME_MAX) and value. */
#define RP_KAFKA_NAME_MAX 256
static rp_err_t rp_kafka_split(const char *kv, char *name, const char **value,
                               char *errstr, size_t errstr_size)
{
    const char *eq = strchr(kv, '=');
    size_t nlen;

    if (!eq || eq == kv)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "kafka setting '%.*s': expected key=value",
                       (int)(eq ? (size_t)(eq - kv) : strlen(kv)), kv);
    nlen = (size_t)(eq - kv);
    if (nlen >= RP_KAFKA_NAME_MAX)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "kafka setting name too long");
    memcpy(name, kv, nlen);
    name[nlen] = '\0';
    *value = eq + 1;
    return RP_OK;
}

rp_err_t rp_kafka_set_props_for(rd_kafka_conf_t *conf, rp_kafka_role_t role,
                                const char *const *props, size_t n,
                                char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < n; i++) {
        char name[RP_KAFKA_NAME_MAX];
        const char *value;
        char scope;
        rp_err_t err;

        if ((err = rp_kafka_split(props[i], name, &value, errstr,
                                  errstr_size)))
            return err;
        scope = rp_kafka_prop_scope(name);
        if (scope && scope != '*' && scope != (char)role)
            continue; /* the other kind of client's setting */
        if ((err = rp_kafka_set(conf, name, value, errstr, errstr_size)))
            return err;
    }
    return RP_OK;
}

rp_err_t rp_kafka_set_props(rd_kafka_conf_t *conf, const char *const *props,
                            size_t n, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < n; i++) {
        char name[256];
        const char *eq = strchr(props[i], '=');
        size_t nlen;
        rp_err_t err;

        if (!eq || eq == props[i])
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "kafka setting '%s': expected key=value", props[i]);
        nlen = (size_t)(eq - props[i]);
        if (nlen >= sizeof(name))
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "kafka setting name too long");
        memcpy(name, props[i], nlen);
        name[nlen] = '\0';
        if ((err = rp_kafka_set(conf, name, eq + 1, errstr, errstr_size)))
            return err;
    }
    return RP_OK;
}

rp_err_t rp_kafka_producer_defaults(rd_kafka_conf_t *conf, char *errstr,
                                    size_t errstr_size)
{
    static const char *const props[] = {
        "enable.idempotence=true",
        "acks=all",
        "partitioner=murmur2_random",
        "linger.ms=1",
    };

    return rp_kafka_set_props(conf, props, sizeof(props) / sizeof(props[0]),
                              errstr, errstr_size);
}

rp_err_t rp_kafka_unique_client_id(rd_kafka_conf_t *conf, const char *prefix,
                                   char *errstr, size_t errstr_size)
{
    char host[128] = "host", id[256];
    struct timespec ts;

    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(id, sizeof(id), "%s-%s-%ld-%lx", prefix, host, (long)getpid(),
             (unsigned long)(ts.tv_nsec ^ (ts.tv_sec << 20)));
    return rp_kafka_set(conf, "client.id", id, errstr, errstr_size);
}

rp_err_t rp_kafka_reader_new(const char *brokers, const char *prefix,
                             const char *auto_reset, const char *const *props,
                             size_t n_props, rd_kafka_t **out, char *errstr,
                             size_t errstr_size)
{
    static const char *const fixed[] = {
        "isolation.level=read_committed", "enable.auto.commit=false",
        "enable.auto.offset.store=false", "enable.partition.eof=true",
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rp_err_t err;
    struct timespec ts;
    char group[160];

    *out = NULL;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(group, sizeof(group), "%s-%ld-%lld", prefix, (long)getpid(),
             (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    rp_kafka_log_via_rp(conf);
    /* The user's settings first, then ours: a worker's RUNPOOL_KAFKA_GROUP_ID
     * or ENABLE_AUTO_COMMIT in the environment (kubectl exec into a pod)
     * must not make a tool commit into the workers' group, nor
     * enable.partition.eof=false make --exit-at-end wait for ever. */
    if ((err = rp_kafka_set(conf, "bootstrap.servers", brokers, errstr,
                            errstr_size)) ||
        (err = rp_kafka_unique_client_id(conf, prefix, errstr,
                                         errstr_size)) ||
        (err = rp_kafka_set_props_for(conf, RP_KAFKA_CONSUMER, props, n_props,
                                      errstr, errstr_size)) ||
        (err = rp_kafka_set(conf, "group.id", group, errstr, errstr_size)) ||
        (err = rp_kafka_set_props(conf, fixed,
                                  sizeof(fixed) / sizeof(fixed[0]), errstr,
                                  errstr_size)) ||
        (auto_reset &&
         (err = rp_kafka_set(conf, "auto.offset.reset", auto_reset, errstr,
                             errstr_size))))
        goto out;
    if (!(*out = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size)))
        err = RP_ERR_KAFKA;
out:
    if (!*out)
        rd_kafka_conf_destroy(conf); /* rd_kafka_new took it on success */
    return err;
}

/* Called on librdkafka's threads; rp_log is thread-safe. Syslog levels:
 * 0-3 error, 4 warning, 5-6 info, 7 debug. */
static void rp_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac,
                            const char *buf)
{
    rp_log_level_t lvl = level <= 3   ? RP_LOG_ERROR
                         : level == 4 ? RP_LOG_WARN
                         : level <= 6 ? RP_LOG_INFO
                                      : RP_LOG_DEBUG;

    rp_log(lvl, "kafka_log", NULL, NULL, "%s %s: %s", rd_kafka_name(rk), fac,
           buf);
}

void rp_kafka_log_via_rp(rd_kafka_conf_t *conf)
{
    rd_kafka_conf_set_log_cb(conf, rp_kafka_log_cb);
}

/* ------------------------------------------------------------------ */
/* Settings from a file, the environment and -X                        */

static void rp_kafka_trim(char **s, char **end)
{
    while (*s < *end && isspace((unsigned char)**s))
        (*s)++;
    while (*end > *s && isspace((unsigned char)(*end)[-1]))
        (*end)--;
}

static rp_err_t rp_kafka_props_add(rp_kafka_props_t *p, const char *name,
                                   size_t nlen, const char *value,
                                   size_t vlen, char *errstr, size_t es)
{
    char *kv;

    if (p->n >= RP_KAFKA_PROPS_MAX)
        return rp_errf(errstr, es, RP_ERR_INVALID,
                       "at most %d kafka settings in all", RP_KAFKA_PROPS_MAX);
    if (!(kv = malloc(nlen + vlen + 2)))
        return rp_errf(errstr, es, RP_ERR_NOMEM, "out of memory");
    memcpy(kv, name, nlen);
    kv[nlen] = '=';
    memcpy(kv + nlen + 1, value, vlen);
    kv[nlen + 1 + vlen] = '\0';
    p->kv[p->n++] = kv;
    return RP_OK;
}

static rp_err_t rp_kafka_props_file(rp_kafka_props_t *p, const char *path,
                                    char *errstr, size_t es)
{
    char line[RP_KAFKA_CONF_LINE_MAX];
    struct stat st;
    rp_err_t err = RP_OK;
    bool secret = false;
    size_t first = p->n;
    FILE *f;
    int fd, lineno = 0;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return rp_errf(errstr, es, RP_ERR_INVALID, "kafka config %s: %s",
                       path, strerror(errno));
    if (fstat(fd, &st) < 0 || !(f = fdopen(fd, "r"))) {
        err = rp_errf(errstr, es, RP_ERR_INVALID, "kafka config %s: %s",
                      path, strerror(errno));
        close(fd);
        return err;
    }
    while (fgets(line, sizeof(line), f)) {
        char *s = line, *end = line + strlen(line), *eq;
        char *k, *kend;

        lineno++;
        if (end > line && end[-1] != '\n' && !feof(f)) {
            err = rp_errf(errstr, es, RP_ERR_INVALID,
                          "kafka config %s:%d: line longer than %d bytes",
                          path, lineno, RP_KAFKA_CONF_LINE_MAX - 1);
            goto out;
        }
        rp_kafka_trim(&s, &end);
        if (s == end || *s == '#')
            continue;
        if (!(eq = memchr(s, '=', (size_t)(end - s))) || eq == s) {
            err = rp_errf(errstr, es, RP_ERR_INVALID,
                          "kafka config %s:%d: expected key=value", path,
                          lineno);
            goto out;
        }
        k = s;
        kend = eq;
        rp_kafka_trim(&k, &kend);
        s = eq + 1;
        rp_kafka_trim(&s, &end);
        *kend = '\0';
        if (rp_kafka_prop_is_password(k))
            secret = true;
        if ((err = rp_kafka_props_add(p, k, (size_t)(kend - k), s,
                                      (size_t)(end - s), errstr, es)))
            goto out;
    }
    if (ferror(f)) {
        err = rp_errf(errstr, es, RP_ERR_INVALID, "kafka config %s: read error",
                      path);
        goto out;
    }
    /* A password readable by others is a leak waiting to happen. */
    if (secret &&
        (err = rp_secfile_check("kafka config", path, &st, geteuid(), errstr,
                                es)))
        goto out;
out:
    fclose(f);
    if (err) {
        while (p->n > first)
            free(p->kv[--p->n]);
    }
    return err;
}

/* RUNPOOL_KAFKA_SASL_PASSWORD -> "sasl.password" via the table. */
static const char *rp_kafka_env_name(const char *suffix, size_t len)
{
    for (size_t i = 0; i < RP_KAFKA_NTABLE; i++) {
        const char *n = rp_kafka_props_table[i].name;
        size_t j;

        for (j = 0; j < len && n[j]; j++) {
            char c = n[j] == '.' ? '_' : (char)toupper((unsigned char)n[j]);

            if (c != suffix[j])
                break;
        }
        if (j == len && !n[j])
            return n;
    }
    return NULL;
}

static rp_err_t rp_kafka_props_env(rp_kafka_props_t *p, char *const *envp,
                                   char *errstr, size_t es)
{
    const size_t plen = sizeof(RP_KAFKA_ENV_PREFIX) - 1;

    for (; envp && *envp; envp++) {
        const char *e = *envp, *eq = strchr(e, '='), *name;
        rp_err_t err;

        if (!eq || strncmp(e, RP_KAFKA_ENV_PREFIX, plen) ||
            !strncmp(e, RP_KAFKA_CONFIG_ENV "=", sizeof(RP_KAFKA_CONFIG_ENV)))
            continue;
        if (!(name = rp_kafka_env_name(e + plen, (size_t)(eq - e) - plen)))
            return rp_errf(errstr, es, RP_ERR_INVALID,
                           "%.*s: no librdkafka setting by that name (the "
                           "name after " RP_KAFKA_ENV_PREFIX " is the "
                           "setting's, upper-cased, '.' as '_')",
                           (int)(eq - e), e);
        if ((err = rp_kafka_props_add(p, name, strlen(name), eq + 1,
                                      strlen(eq + 1), errstr, es)))
            return err;
    }
    return RP_OK;
}

/* One log line: every setting, where it came from, secrets redacted. */
static void rp_kafka_props_log(const rp_kafka_props_t *p, size_t n_file,
                               size_t n_env, const char *file)
{
    char buf[RP_LOG_LINE_MAX / 2];
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < p->n && off < sizeof(buf); i++) {
        const char *kv = p->kv[i], *eq = strchr(kv, '=');
        int nlen = (int)(eq - kv), w;
        char name[RP_KAFKA_NAME_MAX];

        snprintf(name, sizeof(name), "%.*s", nlen, kv);
        w = snprintf(buf + off, sizeof(buf) - off, "%s%s=%s (%s)",
                     i ? ", " : "", name,
                     rp_kafka_prop_is_secret(name) ? "(redacted)" : eq + 1,
                     i < n_file               ? "file"
                     : i < n_file + n_env ? "env"
                                          : "-X");
        if (w < 0)
            break;
        off += (size_t)w;
    }
    if (p->n)
        rp_log(RP_LOG_INFO, "kafka_config", NULL, NULL,
               "%zu kafka setting(s)%s%s: %s", p->n, file ? " from " : "",
               file ? file : "", buf);
}

rp_err_t rp_kafka_props_load(rp_kafka_props_t *p, const char *file,
                             const char *const *cli, size_t n_cli,
                             char *const *envp, char *errstr, size_t es)
{
    size_t n_file, n_env;
    rp_err_t err = RP_OK;

    memset(p, 0, sizeof(*p));
    if (!envp)
        envp = environ;
    if (!file) {
        const size_t cl = sizeof(RP_KAFKA_CONFIG_ENV);

        for (char *const *e = envp; *e; e++)
            if (!strncmp(*e, RP_KAFKA_CONFIG_ENV "=", cl) && (*e)[cl])
                file = *e + cl;
    }
    if (file && *file && (err = rp_kafka_props_file(p, file, errstr, es)))
        goto out;
    n_file = p->n;
    if ((err = rp_kafka_props_env(p, envp, errstr, es)))
        goto out;
    n_env = p->n - n_file;
    for (size_t i = 0; i < n_cli; i++) {
        char name[RP_KAFKA_NAME_MAX];
        const char *value;

        if ((err = rp_kafka_split(cli[i], name, &value, errstr, es)) ||
            (err = rp_kafka_props_add(p, name, strlen(name), value,
                                      strlen(value), errstr, es)))
            goto out;
    }
    rp_kafka_props_log(p, n_file, n_env, file && *file ? file : NULL);
out:
    if (err)
        rp_kafka_props_clear(p);
    return err;
}

void rp_kafka_props_clear(rp_kafka_props_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->kv[i]);
    p->n = 0;
}
