#!/usr/bin/env bats
# t0000: the contract every verb shares: one JSON document out, errors as exit 2 with
# one JSON line on stderr, the dispatcher's own options, finding the board.

load test_helper

@test "kanban --exec-path prints the libexec folder as a bare path" {
  run kanban --exec-path
  [ "$status" -eq 0 ]
  [ "$output" = "$KANBAN_ROOT/libexec" ]
  [ -x "$output/kanban-claim" ]
}

@test "kanban --version and kanban commands" {
  run kanban --version
  [ "$status" -eq 0 ]
  [[ "$output" == "kanban "* ]]
  run kanban commands
  [ "$status" -eq 0 ]
  for verb in init create claim lease event dep complete approve reject block unblock cancel \
              reopen show list search comment set batch stats prune doctor backup; do
    [[ "$output" == *"\"name\": \"$verb\""* ]]
  done
}

@test "kanban help VERB prints its page when stdout is not a terminal" {
  run kanban help claim
  [ "$status" -eq 0 ]
  [[ "$output" == *"kanban claim"* ]]
}

@test "an unknown verb is a usage error: exit 2, empty stdout, one JSON line on stderr" {
  kanban no-such-verb >out 2>err && false || [ $? -eq 2 ]
  [ ! -s out ]
  [ "$(wc -l <err)" -eq 1 ]
  [ "$(json_get code <err)" = "usage" ]
  [ "$(json_get retryable <err)" = "false" ]
}

@test "an unknown option is a usage error, not docopt's exit 1" {
  run kanban list --bogus
  [ "$status" -eq 2 ]
  [ "$(kanban list --bogus 2>&1 >/dev/null | json_get code)" = "usage" ]
}

@test "a missing task is not_found and the board is unchanged" {
  kanban create "keep me" >/dev/null
  before="$(kanban list; kanban event list)"
  run kanban show TASK-999
  [ "$status" -eq 2 ]
  [ "$(kanban show TASK-999 2>&1 >/dev/null | json_get code)" = "not_found" ]
  [ "$(kanban list; kanban event list)" = "$before" ]
}

@test "plumbing prints exactly one JSON document" {
  run kanban create "one doc"
  [ "$status" -eq 0 ]
  [ "${#lines[@]}" -eq 1 ]
  [ "$(kanban show TASK-1 | json_get title)" = "one doc" ]
}

@test "the board is found from a subfolder, as git finds .git" {
  unset KANBAN_DB
  mkdir -p sub/deeper
  cd sub/deeper
  kanban create "from below" >/dev/null
  cd "$SCRATCH"
  [ "$(kanban list | json_get tasks.0.title)" = "from below" ]
}

@test "KANBAN_CEILING_DIRECTORIES stops the search; no board is not_found" {
  unset KANBAN_DB
  mkdir -p sub/deeper
  cd sub/deeper
  export KANBAN_CEILING_DIRECTORIES="$SCRATCH/sub"
  run kanban list
  [ "$status" -eq 2 ]
  [ "$(kanban list 2>&1 >/dev/null | json_get code)" = "not_found" ]
}

@test "kanban init is idempotent" {
  unset KANBAN_DB
  [ "$(kanban init | json_get created)" = "false" ]
  mkdir fresh && cd fresh
  [ "$(kanban init | json_get created)" = "true" ]
  [ -f .kanban/board.db ]
}

@test "nothing to claim is {} and exit 0, or exit 1 with --exit-code" {
  run kanban claim --agent w1
  [ "$status" -eq 0 ]
  [ "$output" = "{}" ]
  run kanban claim --agent w1 --exit-code
  [ "$status" -eq 1 ]
}

@test "a shell loop drains the board with --exit-code" {
  for n in 1 2 3; do kanban create "t$n" >/dev/null; done
  n=0
  while task="$(kanban claim --agent w1 --exit-code)"; do
    kanban complete "$(echo "$task" | json_get id)" --token "$(echo "$task" | json_get lease_token)" \
      --agent w1 >/dev/null
    n=$((n + 1))
  done
  [ "$n" -eq 3 ]
  [ "$(kanban stats | json_get counts.done)" -eq 3 ]
}
