#include "rp_kafka.h"

#include "rp_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

rp_err_t rp_kafka_set(rd_kafka_conf_t *conf, const char *name,
                      const char *value, char *errstr, size_t errstr_size)
{
    char kerr[512];

    if (rd_kafka_conf_set(conf, name, value, kerr, sizeof(kerr)) !=
        RD_KAFKA_CONF_OK)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "kafka setting %s=%s: %s", name, value, kerr);
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
