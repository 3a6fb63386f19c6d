/* Replays inputs through one harness without libFuzzer: every file named
 * on the command line, or every file in a directory named there. The
 * CTest tests fuzz.regress.NAME run it over the committed crash inputs
 * (tests/fuzz/regressions/NAME/) and the seed corpus, in every build. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>

#include "fuzz_common.h"

#define FUZZ_INPUT_MAX (4u << 20)

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    size_t n;

    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!(buf = malloc(FUZZ_INPUT_MAX)))
        abort();
    n = fread(buf, 1, FUZZ_INPUT_MAX, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 1;
}

int main(int argc, char **argv)
{
    long ran = 0;

    for (int i = 1; i < argc; i++) {
        struct stat st;
        DIR *d;
        struct dirent *e;

        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]) < 0)
                return 1;
            ran++;
            continue;
        }
        if (!(d = opendir(argv[i])))
            return 1;
        while ((e = readdir(d))) {
            char path[PATH_MAX];

            if (e->d_name[0] == '.')
                continue;
            if (snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name) >=
                (int)sizeof(path))
                return 1;
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                if (run_file(path) < 0)
                    return 1;
                ran++;
            }
        }
        closedir(d);
    }
    printf("%ld inputs replayed\n", ran);
    return ran > 0 ? 0 : 1; /* nothing to replay is a broken test, not a pass */
}
