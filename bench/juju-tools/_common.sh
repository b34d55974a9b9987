# Sourced by every fake hook tool (no process of its own).
# $BENCH_JUJU: the unit's fake agent state (answers/, pending/, calls.log).
J="$BENCH_JUJU"
TOOL="${0##*/}"
ARGS="$*"
# Log the call: one line per call, the tool name then its arguments.
log() { printf '%s %s\n' "$TOOL" "$ARGS" >> "$J/calls.log"; }
# A call the fake has no answer for fails the hook, loudly.
fail() {
  printf 'UNANSWERED %s %s\n' "$TOOL" "$ARGS" >> "$J/calls.log"
  echo "bench fake $TOOL: no answer for: $ARGS" >&2
  exit 3
}
# Print the answer file, or fail.
answer() { [ -f "$1" ] || fail; exec cat "$1"; }
