#include "rp_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "rp_time.h"

static const char *rp_log_component = "runpool";
static rp_log_level_t rp_log_min = RP_LOG_INFO;
static const char *const rp_log_names[] = {"debug", "info", "warn", "error"};
/* Cloud Logging's LogSeverity names: GKE's agent reads "severity" from a
 * JSON line, and without it shows every stderr line as an ERROR. */
static const char *const rp_log_severity[] = {"DEBUG", "INFO", "WARNING",
                                              "ERROR"};

void rp_log_init(const char *component, rp_log_level_t min_level)
{
    const char *env = getenv("RUNPOOL_LOG_LEVEL");

    rp_log_component = component;
    rp_log_min = min_level;
    if (!env)
        return;
    for (int i = 0; i <= RP_LOG_ERROR; i++)
        if (!strcasecmp(env, rp_log_names[i]))
            rp_log_min = (rp_log_level_t)i;
}

size_t rp_log_json_escape(char *out, size_t out_size, const char *s)
{
    size_t o = 0;

    if (out_size == 0)
        return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        size_t n;

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else if (c == '\n') {
            memcpy(esc, "\\n", 2);
            n = 2;
        } else if (c < 0x20) {
            n = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
        } else {
            esc[0] = (char)c;
            n = 1;
        }
        if (o + n >= out_size)
            break;
        memcpy(out + o, esc, n);
        o += n;
    }
    out[o] = '\0';
    return o;
}

/* Append `"key":"escaped value",` to line at *off. */
static void rp_log_field(char *line, size_t size, size_t *off, const char *key,
                         const char *val)
{
    int n;

    if (*off >= size)
        return;
    n = snprintf(line + *off, size - *off, "\"%s\":\"", key);
    if (n < 0 || (size_t)n + 2 >= size - *off)
        return;
    *off += (size_t)n;
    /* Keep two bytes for the closing quote and comma. */
    if (size - *off > 2)
        *off += rp_log_json_escape(line + *off, size - *off - 2, val);
    line[(*off)++] = '"';
    line[(*off)++] = ',';
}

void rp_log(rp_log_level_t level, const char *event, const char *execution_id,
            const char *session_id, const char *fmt, ...)
{
    /* Reserve room for the closing `}\n` so a cut line stays valid JSON. */
    char line[RP_LOG_LINE_MAX], msg[RP_LOG_LINE_MAX], ts[RP_TIME_RFC3339_MAX];
    size_t off = 1, size = sizeof(line) - 2;
    va_list ap;

    if (level < rp_log_min)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rp_time_rfc3339(rp_time_wall_ms(), ts, sizeof(ts));
    line[0] = '{';
    rp_log_field(line, size, &off, "ts", ts);
    rp_log_field(line, size, &off, "severity", rp_log_severity[level]);
    rp_log_field(line, size, &off, "level", rp_log_names[level]);
    rp_log_field(line, size, &off, "component", rp_log_component);
    rp_log_field(line, size, &off, "event", event ? event : "log");
    if (execution_id && *execution_id)
        rp_log_field(line, size, &off, "execution_id", execution_id);
    if (session_id && *session_id)
        rp_log_field(line, size, &off, "session_id", session_id);
    rp_log_field(line, size, &off, "msg", msg);
    if (off > size)
        off = size;
    if (line[off - 1] == ',')
        off--;
    line[off++] = '}';
    line[off++] = '\n';
    if (write(STDERR_FILENO, line, off) < 0) {
        /* Nowhere left to report a failing stderr. */
    }
}
