#!/usr/bin/env bash
# The GitHub Action's run step: runs `hookfwd send` or `hookfwd wait` from the action's inputs and
# exposes the last delivery's guid and the handler's status as step outputs.
#
# Inputs arrive as INPUT_* environment variables (never interpolated into this script, so an input
# cannot inject shell). hookfwd's exit code is the step's: the outputs are written first, so a
# rejected delivery still reports which one it was and what the handler answered.
# HOOKFWD names the binary to run; by default the hookfwd the install step put on PATH.
set -euo pipefail

die() {
  echo "hookfwd action: $*" >&2
  exit 2
}

command="${INPUT_COMMAND:-}"
args=()
# add FLAG VALUE: passes the flag only when the input is set.
add() {
  [ -z "$2" ] || args+=("$1" "$2")
}

case "$command" in
  send)
    add --event "${INPUT_EVENT:-}"
    add --fixture "${INPUT_FIXTURE:-}"
    add --payload "${INPUT_PAYLOAD:-}"
    add --expect-status "${INPUT_EXPECT_STATUS:-}"
    add --repeat "${INPUT_REPEAT:-}"
    ;;
  wait)
    add --event "${INPUT_EVENT:-}"
    add --repo "${INPUT_REPO:-}"
    add --org "${INPUT_ORG:-}"
    add --hook-url "${INPUT_HOOK_URL:-}"
    add --give-up-after "${INPUT_TIMEOUT:-}"
    add --since "${INPUT_SINCE:-}"
    ;;
  *) die "input 'command' is '$command'; use send or wait (or leave it empty to only install hookfwd)." ;;
esac
add --action "${INPUT_ACTION:-}"
add --to "${INPUT_TO:-}"
# Extra flags, one per line, for whatever the inputs above do not name.
if [ -n "${INPUT_ARGS:-}" ]; then
  while IFS= read -r line; do
    [ -z "$line" ] || args+=("$line")
  done <<<"$INPUT_ARGS"
fi

# Secrets go through the environment, never the command line; an empty input keeps what the job set.
[ -z "${INPUT_SECRET:-}" ] || export HOOKFWD_SECRET="$INPUT_SECRET"
[ -z "${INPUT_TOKEN:-}" ] || export GITHUB_TOKEN="$INPUT_TOKEN"

# Git Bash on Windows: RUNNER_TEMP is a C:\… path; mktemp wants its /c/… form.
if command -v cygpath >/dev/null && [ -n "${RUNNER_TEMP:-}" ]; then
  RUNNER_TEMP=$(cygpath -u "$RUNNER_TEMP")
fi
out=$(mktemp "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/hookfwd-run.XXXXXX")
trap 'rm -f "$out"' EXIT
status=0
"${HOOKFWD:-hookfwd}" "$command" --json ${args[@]+"${args[@]}"} >"$out" || status=$?
cat "$out"

# The last delivery sent (send) or matched (wait); --repeat and a fixture directory send several.
# hookfwd writes compact JSON, one object per line, so sed reads it without needing jq on the runner.
last=$(grep -E '^\{.*"type":"(sent|matched)"' "$out" | tail -n 1 || true)
guid=$(sed -nE 's/.*"guid":"([^"]*)".*/\1/p' <<<"$last")
handler_status=$(sed -nE 's/.*"status":([0-9]+).*/\1/p' <<<"$last")
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  {
    echo "guid=$guid"
    echo "status=$handler_status"
    echo "exit-code=$status"
  } >>"$GITHUB_OUTPUT"
fi
exit "$status"
