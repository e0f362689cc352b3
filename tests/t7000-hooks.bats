#!/usr/bin/env bats
# t7000: hooks in .kanban/hooks.d: after the commit, on stdin and in the environment,
# never on stdout.

load test_helper
bats_require_minimum_version 1.5.0

hook() {  # hook NAME BODY: an executable sh hook
  mkdir -p .kanban/hooks.d
  printf '#!/bin/sh\n%s\n' "$2" >".kanban/hooks.d/$1"
  chmod +x ".kanban/hooks.d/$1"
}

@test "post-claim gets the event on stdin and KANBAN_* in its environment" {
  hook post-claim 'cat >"$KANBAN_DB.event"; echo "$KANBAN_EVENT $KANBAN_TASK_ID $KANBAN_AGENT" >"$KANBAN_DB.env"'
  kanban create "t" >/dev/null
  kanban claim --agent w1 >/dev/null
  [ "$(cat "$KANBAN_DB.env")" = "claimed TASK-1 w1" ]
  [ "$(json_get kind <"$KANBAN_DB.event")" = "claimed" ]
  [ "$(json_get actor <"$KANBAN_DB.event")" = "w1" ]
}

@test "hook output goes to stderr: stdout stays one JSON document" {
  hook post-create 'echo "hook says hi"; echo "hook complains" >&2'
  run --separate-stderr kanban create "t"
  [ "$status" -eq 0 ]
  [ "${#lines[@]}" -eq 1 ]
  [ "$(echo "$output" | json_get title)" = "t" ]
  [[ "$stderr" == *"hook says hi"* ]]
  [[ "$stderr" == *"hook complains"* ]]
}

@test "a failing hook leaves hook_failed and the command still succeeds" {
  hook post-create 'exit 7'
  run --separate-stderr kanban create "t"
  [ "$status" -eq 0 ]
  [ "$(kanban show TASK-1 | json_get status)" = "todo" ]
  [ "$(kanban event list --kind hook_failed | json_get events.0.task)" = "TASK-1" ]
}

@test "a hanging hook is killed after KANBAN_HOOK_TIMEOUT" {
  hook post-create 'sleep 60'
  start=$SECONDS
  KANBAN_HOOK_TIMEOUT=1s run --separate-stderr kanban create "t"
  [ "$status" -eq 0 ]
  [ $((SECONDS - start)) -lt 8 ]
  [[ "$(kanban event list --kind hook_failed | json_get events.0.data.reason)" == *"timed out"* ]]
}

@test "pre-complete can refuse: hook_rejected with its stderr, task still in progress" {
  hook pre-complete 'echo "lint failed: 3 errors" >&2; exit 1'
  kanban create "t" >/dev/null
  tok="$(kanban claim --agent w1 | json_get lease_token)"
  run --separate-stderr kanban complete TASK-1 --token "$tok" --agent w1
  [ "$status" -eq 2 ]
  [ -z "$output" ]
  [ "$(echo "$stderr" | grep '^{' | json_get code)" = "hook_rejected" ]
  [[ "$(echo "$stderr" | grep '^{' | json_get detail)" == *"lint failed: 3 errors"* ]]
  [ "$(kanban show TASK-1 | json_get status)" = "in_progress" ]
  [ "$(kanban complete TASK-1 --token "$tok" --agent w1 --no-verify | json_get status)" = "done" ]
}

@test "a title with shell syntax reaches the hook as data, never as a command" {
  hook post-create 'cat >/dev/null'
  kanban create '$(touch pwned) `touch pwned`' >/dev/null
  [ ! -e pwned ]
  [ ! -e .kanban/hooks.d/pwned ]
}

@test "hooks in post-VERB.d run too" {
  mkdir -p .kanban/hooks.d/post-create.d
  printf '#!/bin/sh\necho one >>"$KANBAN_DB.ran"\n' >.kanban/hooks.d/post-create.d/10-one
  printf '#!/bin/sh\necho two >>"$KANBAN_DB.ran"\n' >.kanban/hooks.d/post-create.d/20-two
  chmod +x .kanban/hooks.d/post-create.d/*
  kanban create "t" >/dev/null
  [ "$(cat "$KANBAN_DB.ran" | tr '\n' ' ')" = "one two " ]
}
