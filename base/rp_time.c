#include "rp_time.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t rp_time_mono_ms(void)
{
    return rp_time_mono_us() / 1000;
}

int64_t rp_time_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t rp_time_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rp_time_rfc3339(int64_t wall_ms, char *out, size_t out_size)
{
    /* Floor division: before 1970 the milliseconds stay 0..999. */
    int64_t ms = ((wall_ms % 1000) + 1000) % 1000;
    time_t secs = (time_t)((wall_ms - ms) / 1000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    snprintf(out, out_size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)ms);
}

static int rp_time_digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int rp_time_parse_rfc3339(const char *s, int64_t *wall_ms)
{
    struct tm tm;
    int y, mo, d, h, mi, sec, off = 0;
    int64_t ms = 0;
    const char *p = s;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (rp_time_digits(&p, 4, &y) || *p++ != '-' ||
        rp_time_digits(&p, 2, &mo) || *p++ != '-' ||
        rp_time_digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
        return -1;
    p++;
    if (rp_time_digits(&p, 2, &h) || *p++ != ':' ||
        rp_time_digits(&p, 2, &mi) || *p++ != ':' ||
        rp_time_digits(&p, 2, &sec))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 ||
        mi > 59 || sec > 60)
        return -1;
    if (*p == '.') {
        int scale = 100, nd = 0;

        p++;
        while (isdigit((unsigned char)*p)) {
            ms += (*p - '0') * scale;
            scale /= 10;
            p++;
            nd++;
        }
        if (nd == 0)
            return -1;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om;

        p++;
        if (rp_time_digits(&p, 2, &oh) || *p++ != ':' ||
            rp_time_digits(&p, 2, &om) || oh > 23 || om > 59)
            return -1;
        off = sign * (oh * 60 + om);
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    ms += ((int64_t)timegm(&tm) - (int64_t)off * 60) * 1000;
    /* An offset can carry 0000-01-01 or 9999-12-31 out of the four-digit
     * years, which rp_time_rfc3339 could not write back. */
    if (ms < RP_TIME_MIN_MS || ms > RP_TIME_MAX_MS)
        return -1;
    *wall_ms = ms;
    return 0;
}
