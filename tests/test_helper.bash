# Loaded by every tNNNN-*.bats file: a scratch folder and board per test, the real
# `kanban` from this checkout's bin/ on PATH.
KANBAN_ROOT="$(cd "$(dirname "${BATS_TEST_FILENAME}")/.." && pwd)"
export PATH="$KANBAN_ROOT/bin:$PATH"

setup() {
  unset $(env | awk -F= '/^KANBAN_/ {print $1}') 2>/dev/null || true
  SCRATCH="$(mktemp -d "${BATS_TMPDIR:-/tmp}/kanban-bats.XXXXXX")"
  cd "$SCRATCH" || return 1
  kanban init >/dev/null
  export KANBAN_DB="$SCRATCH/.kanban/board.db"
}

teardown() {
  cd / && rm -rf "$SCRATCH"
}

# jq is not assumed: read a key from JSON on stdin with the project's Python
json_get() {
  "$KANBAN_ROOT/.venv/bin/python" -c 'import json,sys
doc = json.load(sys.stdin)
for part in sys.argv[1].split("."):
    doc = doc[int(part)] if isinstance(doc, list) else doc[part]
print(json.dumps(doc) if isinstance(doc, (dict, list)) else ("null" if doc is None else str(doc).lower() if isinstance(doc, bool) else doc))' "$1"
}
