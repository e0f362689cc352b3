#!/usr/bin/env bats
# t1000: kanban create, idempotency keys, create --stdin batches.

load test_helper

@test "create prints the task with created: true" {
  run kanban create "write docs" --priority 3 --project web --body "all of them"
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | json_get id)" = "TASK-1" ]
  [ "$(echo "$output" | json_get status)" = "todo" ]
  [ "$(echo "$output" | json_get priority)" = "3" ]
  [ "$(echo "$output" | json_get ready)" = "true" ]
  [ "$(echo "$output" | json_get created)" = "true" ]
  [ "$(echo "$output" | json_get depends_on)" = "[]" ]
  [ "$(echo "$output" | json_get assignee)" = "null" ]
}

@test "the same --key returns the first task unchanged, created: false" {
  kanban create "first" --key deploy-7 --priority 1 >/dev/null
  before="$(kanban event list)"
  run kanban create "second" --key deploy-7 --priority 9
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | json_get created)" = "false" ]
  [ "$(echo "$output" | json_get title)" = "first" ]
  [ "$(echo "$output" | json_get priority)" = "1" ]
  [ "$(kanban event list)" = "$before" ]
  [ "$(kanban stats | json_get tasks)" -eq 1 ]
}

@test "dispatch is an alias of create" {
  run kanban dispatch "via alias"
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | json_get title)" = "via alias" ]
}

@test "create --stdin: JSON Lines in, a JSON array out, references by key" {
  run kanban create --stdin <<'JSONL'
{"title": "Launch", "kind": "goal", "key": "launch"}
{"title": "build", "key": "build", "goal": "launch"}
{"title": "ship", "goal": "launch", "depends_on": ["build"]}
JSONL
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | json_get 2.depends_on.0)" = "TASK-2" ]
  [ "$(echo "$output" | json_get 1.goal)" = "TASK-1" ]
  [ "$(echo "$output" | json_get 2.ready)" = "false" ]
}

@test "create --stdin with a cycle fails the whole batch" {
  kanban create "already here" >/dev/null
  before="$(kanban list; kanban event list)"
  run kanban create --stdin <<'JSONL'
{"title": "a", "key": "a", "depends_on": ["b"]}
{"title": "b", "key": "b", "depends_on": ["a"]}
JSONL
  [ "$status" -eq 2 ]
  [ -z "$(printf '%s\n' '{"title":"a","key":"a","depends_on":["a"]}' | kanban create --stdin 2>/dev/null)" ]
  [ "$(printf '%s\n' '{"title":"a","key":"a","depends_on":["a"]}' | kanban create --stdin 2>&1 | json_get code)" = "cycle" ]
  [ "$(kanban list; kanban event list)" = "$before" ]
}

@test "bad values are invalid and change nothing" {
  before="$(kanban list; kanban event list)"
  for args in "--priority high" "--max-attempts 0" "--not-before someday" "--kind epic"; do
    run kanban create "x" $args
    [ "$status" -eq 2 ]
    [ "$(kanban create x $args 2>&1 | json_get code)" = "invalid" ]
  done
  [ "$(kanban create '' 2>&1 | json_get code)" = "invalid" ]
  [ "$(kanban create x --depends-on TASK-404 2>&1 | json_get code)" = "not_found" ]
  [ "$(kanban list; kanban event list)" = "$before" ]
}

@test "a title full of shell syntax is stored as text" {
  title='$(touch pwned) `touch pwned`; touch pwned | cat'
  run kanban create "$title"
  [ "$status" -eq 0 ]
  [ "$(kanban show TASK-1 | json_get title)" = "$title" ]
  [ ! -e pwned ]
}

@test "-- ends the options: a title may start with a dash" {
  run kanban create -- -1 is a title
  [ "$status" -eq 2 ]
  run kanban create -- "-1 is a title"
  [ "$status" -eq 0 ]
  [ "$(printf '%s' "$output" | json_get title)" = "-1 is a title" ]
}
