#!/usr/bin/env bats
# t4000: leases and fencing tokens, with the clock held still by KANBAN_NOW.

load test_helper

claim_at() {  # claim_at EPOCH AGENT [ARGS...]
  local now=$1 agent=$2
  shift 2
  KANBAN_NOW=$now kanban claim --agent "$agent" "$@"
}

@test "an expired lease is reclaimed by the next claim, attempts + 1" {
  KANBAN_NOW=1900000000 kanban create "t" >/dev/null
  first="$(claim_at 1900000000 w1 --lease 10m)"
  [ "$(echo "$first" | json_get lease_until)" = "2030-03-17T17:56:40Z" ]
  [ "$(claim_at 1900000599 w2)" = "{}" ]
  second="$(claim_at 1900000601 w2)"
  [ "$(echo "$second" | json_get claimed_by)" = "w2" ]
  [ "$(echo "$second" | json_get attempts)" = "1" ]
  [ "$(echo "$second" | json_get lease_token)" -gt "$(echo "$first" | json_get lease_token)" ]
}

@test "the old holder's token is lease_lost for every write" {
  KANBAN_NOW=1900000000 kanban create "t" >/dev/null
  old="$(claim_at 1900000000 w1 --lease 1m | json_get lease_token)"
  claim_at 1900000100 w2 >/dev/null
  export KANBAN_NOW=1900000100 KANBAN_AGENT=w1
  before="$(kanban list; kanban event list)"
  [ "$(kanban complete TASK-1 --token "$old" 2>&1 | json_get code)" = "lease_lost" ]
  [ "$(kanban lease renew TASK-1 --token "$old" 2>&1 | json_get code)" = "lease_lost" ]
  [ "$(kanban lease release TASK-1 --token "$old" 2>&1 | json_get code)" = "lease_lost" ]
  [ "$(kanban block TASK-1 --reason r --token "$old" 2>&1 | json_get code)" = "lease_lost" ]
  [ "$(kanban event log TASK-1 --message m --token "$old" 2>&1 | json_get code)" = "lease_lost" ]
  [ "$(kanban list; kanban event list)" = "$before" ]
}

@test "renew never shortens the lease; heartbeat and extend-lease are aliases" {
  KANBAN_NOW=1900000000 kanban create "t" >/dev/null
  tok="$(claim_at 1900000000 w1 --lease 1h | json_get lease_token)"
  export KANBAN_NOW=1900000060 KANBAN_AGENT=w1
  [ "$(kanban lease renew TASK-1 --token "$tok" --lease 10m | json_get lease_until)" = "2030-03-17T18:46:40Z" ]
  [ "$(kanban heartbeat TASK-1 --token "$tok" --lease 2h | json_get lease_until)" = "2030-03-17T19:47:40Z" ]
  [ "$(kanban extend-lease TASK-1 --token "$tok" --lease 1m | json_get lease_until)" = "2030-03-17T19:47:40Z" ]
}

@test "release returns the task with its attempts unchanged" {
  KANBAN_NOW=1900000000 kanban create "t" >/dev/null
  claim_at 1900000000 w1 --lease 1m >/dev/null
  tok="$(claim_at 1900000100 w1 | json_get lease_token)"
  run env KANBAN_NOW=1900000101 kanban lease release TASK-1 --token "$tok" --agent w1
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | json_get status)" = "todo" ]
  [ "$(echo "$output" | json_get attempts)" = "1" ]
  [ "$(echo "$output" | json_get claimed_by)" = "null" ]
}

@test "max_attempts: the last expiry fails the task with a reason" {
  KANBAN_NOW=1900000000 kanban create "flaky" --max-attempts 1 >/dev/null
  claim_at 1900000000 w1 --lease 1m >/dev/null
  expired="$(KANBAN_NOW=1900000100 kanban lease reap)"
  [ "$(echo "$expired" | json_get expired.0.status)" = "failed" ]
  [ "$(KANBAN_NOW=1900000100 kanban show TASK-1 | json_get reason)" != "null" ]
  [ "$(kanban event list --kind failed | json_get events.0.task)" = "TASK-1" ]
}

@test "complete of a todo task is a conflict; a bad token is invalid" {
  kanban create "t" >/dev/null
  [ "$(kanban complete TASK-1 --token 1 --agent w1 2>&1 | json_get code)" = "conflict" ]
  [ "$(kanban complete TASK-1 --token one --agent w1 2>&1 | json_get code)" = "invalid" ]
  [ "$(kanban claim --agent w1 --lease -5m 2>&1 | json_get code)" = "invalid" ]
}

@test "a progress note with a token renews the lease" {
  KANBAN_NOW=1900000000 kanban create "t" >/dev/null
  tok="$(claim_at 1900000000 w1 --lease 10m | json_get lease_token)"
  KANBAN_NOW=1900000300 kanban log-progress TASK-1 --message "half way" --token "$tok" --agent w1 >/dev/null
  [ "$(KANBAN_NOW=1900000300 kanban show TASK-1 | json_get lease_until)" = "2030-03-17T18:01:40Z" ]
}
