#!/usr/bin/env bats
# t3000: kanban claim: order, gates, --wait, and a race between shell loops.

load test_helper

@test "claim takes the highest priority, then the oldest" {
  kanban create "low" --priority 1 >/dev/null
  kanban create "high" --priority 5 >/dev/null
  kanban create "high too" --priority 5 >/dev/null
  [ "$(kanban claim --agent w1 | json_get title)" = "high" ]
  [ "$(kanban claim --agent w1 | json_get title)" = "high too" ]
  [ "$(kanban claim --agent w1 | json_get title)" = "low" ]
}

@test "claim answers with a lease token and needs an agent" {
  kanban create "t" >/dev/null
  run kanban claim
  [ "$status" -eq 2 ]
  [ "$(kanban claim 2>&1 | json_get code)" = "usage" ]
  task="$(KANBAN_AGENT=w1 kanban claim)"
  [ "$(echo "$task" | json_get claimed_by)" = "w1" ]
  [[ "$(echo "$task" | json_get lease_token)" =~ ^[0-9]+$ ]]
}

@test "claim-next is an alias of claim" {
  kanban create "t" >/dev/null
  [ "$(kanban claim-next --agent w1 | json_get status)" = "in_progress" ]
}

@test "role and assignee gate who may claim" {
  kanban create "qa only" --role qa >/dev/null
  kanban create "for bob" --assignee bob >/dev/null
  [ "$(kanban claim --agent alice)" = "{}" ]
  [ "$(kanban claim TASK-2 --agent alice 2>&1 | json_get code)" = "forbidden" ]
  [ "$(kanban claim TASK-1 --agent alice 2>&1 | json_get code)" = "forbidden" ]
  [ "$(kanban claim --agent alice --role qa | json_get id)" = "TASK-1" ]
  [ "$(kanban claim --agent bob | json_get id)" = "TASK-2" ]
}

@test "claim of a task in progress or not ready is a conflict" {
  kanban create "a" >/dev/null
  kanban create "b" --depends-on TASK-1 >/dev/null
  kanban claim TASK-1 --agent w1 >/dev/null
  [ "$(kanban claim TASK-1 --agent w2 2>&1 | json_get code)" = "conflict" ]
  [ "$(kanban claim TASK-2 --agent w2 2>&1 | json_get code)" = "conflict" ]
}

@test "--project limits the claim" {
  kanban create "web" --project web --priority 9 >/dev/null
  kanban create "api" --project api >/dev/null
  [ "$(kanban claim --agent w1 --project api | json_get title)" = "api" ]
}

@test "--wait gives up with {} after D" {
  start=$SECONDS
  run kanban claim --agent w1 --wait 1s
  [ "$status" -eq 0 ]
  [ "$output" = "{}" ]
  [ $((SECONDS - start)) -lt 5 ]
}

@test "--wait picks up a task created while waiting" {
  kanban claim --agent waiter --wait 20s >claimed &
  waiter=$!
  sleep 0.5
  kanban create "late arrival" >/dev/null
  wait "$waiter"
  [ "$(json_get title <claimed)" = "late arrival" ]
}

@test "twelve shell loops claim sixty tasks, each exactly once" {
  for n in $(seq 1 60); do echo "{\"title\": \"t$n\"}"; done | kanban create --stdin >/dev/null
  for w in $(seq 1 12); do
    ( while out="$(kanban claim --agent "w$w" --exit-code 2>>errors)"; do echo "$out" | json_get id; done >"ids.$w" ) &
  done
  wait
  [ ! -s errors ]
  [ "$(cat ids.* | wc -l)" -eq 60 ]
  [ "$(cat ids.* | sort -u | wc -l)" -eq 60 ]
  [ "$(kanban event list --kind claimed --limit 1000 | json_get events | grep -o '"kind": "claimed"' | wc -l)" -eq 60 ]
}
