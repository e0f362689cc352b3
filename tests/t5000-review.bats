#!/usr/bin/env bats
# t5000: the review gate.

load test_helper
bats_require_minimum_version 1.5.0

submit() {  # submit TITLE WORKER: create, claim and complete --review
  kanban create "$1" >/dev/null
  local task
  task="$(kanban claim --agent "$2")"
  kanban complete "$(echo "$task" | json_get id)" --token "$(echo "$task" | json_get lease_token)" \
    --review --agent "$2" >/dev/null
}

@test "complete --review moves the task to in_review with no holder" {
  submit "t" w1
  [ "$(kanban show TASK-1 | json_get status)" = "in_review" ]
  [ "$(kanban show TASK-1 | json_get claimed_by)" = "null" ]
}

@test "another agent approves: done" {
  submit "t" w1
  run kanban approve TASK-1 --agent r1 --comment "ok"
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | json_get status)" = "done" ]
}

@test "another agent rejects: todo again, with the reason" {
  submit "t" w1
  [ "$(kanban reject TASK-1 --reason "no tests" --agent r1 | json_get status)" = "todo" ]
  [ "$(kanban show TASK-1 | json_get reason)" = "no tests" ]
}

@test "self-review is forbidden and changes nothing" {
  submit "t" w1
  before="$(kanban list; kanban event list)"
  run --separate-stderr kanban approve TASK-1 --agent w1
  [ "$status" -eq 2 ]
  [ -z "$output" ]
  [ "$(echo "$stderr" | json_get code)" = "forbidden" ]
  [ "$(kanban reject TASK-1 --reason x --agent w1 2>&1 | json_get code)" = "forbidden" ]
  [ "$(kanban list; kanban event list)" = "$before" ]
}

@test "self-review stays forbidden after prune" {
  submit "t" w1
  KANBAN_NOW=2000000000 kanban prune --before 1s >/dev/null
  [ "$(kanban approve TASK-1 --agent w1 2>&1 | json_get code)" = "forbidden" ]
}

@test "claim --for-review gives a lease; approve then needs its token" {
  submit "t" w1
  [ "$(kanban claim --for-review --agent w1)" = "{}" ]
  review="$(kanban claim --for-review --agent r1)"
  tok="$(echo "$review" | json_get lease_token)"
  [ "$(echo "$review" | json_get claimed_by)" = "r1" ]
  [ "$(kanban approve TASK-1 --agent r1 2>&1 | json_get code)" = "lease_lost" ]
  [ "$(kanban approve TASK-1 --agent r1 --token "$tok" | json_get status)" = "done" ]
}

@test "approve of a todo task is a conflict" {
  kanban create "t" >/dev/null
  [ "$(kanban approve TASK-1 --agent r1 2>&1 | json_get code)" = "conflict" ]
}
