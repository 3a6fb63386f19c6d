/* rp_contract — the wire contract's version and size limits.
 *
 * Every limit here is also stated in schemas/ (maxLength, maxItems, ...)
 * or in schemas/README.md; the contract's parsers enforce them. Thread-
 * safety: constants only.
 */
#ifndef RP_CONTRACT_H
#define RP_CONTRACT_H



#define RP_CONTRACT_VERSION 1
#define RP_ID_MAX 128                    /* execution_id, session_id */
#define RP_COMMAND_MAX (256 * 1024)      /* request.command, bytes */
#define RP_TIMEOUT_MIN_S 1
#define RP_TIMEOUT_MAX_S 86400
#define RP_TIMEOUT_DEFAULT_S 120
#define RP_ENV_MAX_VARS 1000             /* per request / per session */
#define RP_ENV_NAME_MAX 1024             /* bytes of one variable name */
#define RP_ENV_VALUE_MAX (32 * 1024)     /* bytes of one value */
#define RP_CWD_MAX 4096                  /* bytes of a working directory */
#define RP_REQUEST_MAX (1024 * 1024)     /* a whole request message */
#define RP_OUTPUT_MAX_DEFAULT (1024 * 1024) /* stdout/stderr cap each */
#define RP_OUTPUT_MAX_LIMIT (8 * 1024 * 1024) /* highest configurable cap */
/* A whole result document: two capped outputs, base64 growth, env, slack. */
#define RP_RESULT_MAX (3 * RP_OUTPUT_MAX_LIMIT + 4 * 1024 * 1024)
#define RP_STATE_DOC_MAX (4 * 1024 * 1024) /* a session state document */
#define RP_ERRMSG_MAX 1024               /* result error.message */
#define RP_WORKER_NAME_MAX 256
#define RP_STATE_KEY_MAX 512             /* a state-store key (rp_layout.h) */
#define RP_STATE_URL_MAX 2048            /* file:///dir or gs://bucket/prefix */

#endif
