#!/bin/sh
# The "container" of the conformance test's jobs: records what Cloud Run
# (the fake) gave it, then behaves as its environment asks.
#
#   OUT_DIR    where to write; files are EXECUTION.TASK_INDEX.ATTEMPT.{env,pid,cwd,term}
#   SLEEP_S    sleep this long first (in the background + wait, so a trapped
#              SIGTERM is handled at once)
#   ON_TERM    record: write .term and exit 143 on SIGTERM
#              ignore: ignore SIGTERM (only SIGKILL stops it)
#   EXIT_CODE  exit status (default 0)
set -u
b="${OUT_DIR:?OUT_DIR not set}/${CLOUD_RUN_EXECUTION:-none}.${CLOUD_RUN_TASK_INDEX:-0}.${CLOUD_RUN_TASK_ATTEMPT:-0}"
# The environment exactly as execve() delivered it (the shell adds nothing here).
cat "/proc/$$/environ" >"$b.env"
echo "$$" >"$b.pid"
pwd >"$b.cwd"
case "${ON_TERM:-}" in
  record) trap 'echo term >"$b.term"; exit 143' TERM ;;
  ignore) trap '' TERM ;;
esac
if [ -n "${SLEEP_S:-}" ]; then
  sleep "$SLEEP_S" &
  wait $!
fi
exit "${EXIT_CODE:-0}"
