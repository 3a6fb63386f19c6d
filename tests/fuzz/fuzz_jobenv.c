/* The job environment the executor decodes (EXECUTION_ID, COMMAND,
 * COMMAND_ENV, TIMEOUT, RUNPOOL_*...): input lines NAME=VALUE are the
 * environment; rp_jobenv_parse must refuse or accept, never crash. */
#include "fuzz_common.h"
#include "rp_jobenv.h"

#define FUZZ_VARS_MAX 64

typedef struct vars {
    const char *name[FUZZ_VARS_MAX], *value[FUZZ_VARS_MAX];
    int n;
} vars_t;

static const char *lookup(const char *name, void *opaque)
{
    const vars_t *v = opaque;

    for (int i = v->n - 1; i >= 0; i--)
        if (!strcmp(v->name[i], name))
            return v->value[i];
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size), *line, *save = NULL;
    vars_t v = {0};
    rp_jobspec_t spec = {0};
    char err[256];

    for (line = strtok_r(text, "\n", &save); line && v.n < FUZZ_VARS_MAX;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');

        if (!eq)
            continue;
        *eq = '\0';
        v.name[v.n] = line;
        v.value[v.n++] = eq + 1;
    }
    if (rp_jobenv_parse(lookup, &v, &spec, err, sizeof(err)) != RP_OK)
        FUZZ_CHECK(err[0] != '\0');
    rp_jobspec_clear(&spec);
    free(text);
    return 0;
}
