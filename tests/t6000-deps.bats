#!/usr/bin/env bats
# t6000: dependencies, cycles, goals, and why a task waits.

load test_helper

finish() {  # finish ID
  local tok
  tok="$(kanban claim "$1" --agent w | json_get lease_token)"
  kanban complete "$1" --token "$tok" --agent w >/dev/null
}

@test "a task waits for its deps" {
  kanban create "a" >/dev/null
  kanban create "b" --depends-on TASK-1 --priority 9 >/dev/null
  [ "$(kanban show TASK-2 | json_get ready)" = "false" ]
  [ "$(kanban claim --agent w | json_get id)" = "TASK-1" ]
  [ "$(kanban claim --agent w)" = "{}" ]
}

@test "dep add, list and rm" {
  kanban create "a" >/dev/null
  kanban create "b" >/dev/null
  [ "$(kanban dep add TASK-2 TASK-1 | json_get depends_on.0)" = "TASK-1" ]
  [ "$(kanban dep list TASK-1 | json_get dependents.0)" = "TASK-2" ]
  [ "$(kanban dep rm TASK-2 TASK-1 | json_get depends_on)" = "[]" ]
  [ "$(kanban show TASK-2 | json_get ready)" = "true" ]
}

@test "a cycle is refused" {
  kanban create "a" >/dev/null
  kanban create "b" --depends-on TASK-1 >/dev/null
  before="$(kanban list; kanban event list)"
  run kanban dep add TASK-1 TASK-2
  [ "$status" -eq 2 ]
  [ "$(kanban dep add TASK-1 TASK-2 2>&1 | json_get code)" = "cycle" ]
  [ "$(kanban dep add TASK-1 TASK-1 2>&1 | json_get code)" = "cycle" ]
  [ "$(kanban list; kanban event list)" = "$before" ]
}

@test "a task cannot depend on its own goal" {
  kanban create "G" --kind goal >/dev/null
  kanban create "t" --goal TASK-1 >/dev/null
  [ "$(kanban dep add TASK-2 TASK-1 2>&1 | json_get code)" = "cycle" ]
}

@test "show waiting_on names each unmet dep with its status, and the schedule" {
  kanban create "dropped" >/dev/null
  kanban cancel TASK-1 >/dev/null
  kanban create "later" --depends-on TASK-1 --not-before 2099-01-01T00:00:00Z >/dev/null
  shown="$(kanban show TASK-2)"
  [ "$(echo "$shown" | json_get waiting_on.0.task)" = "TASK-1" ]
  [ "$(echo "$shown" | json_get waiting_on.0.status)" = "cancelled" ]
  [[ "$(echo "$shown" | json_get waiting_on.0.note)" == *cancelled* ]]
  [ "$(echo "$shown" | json_get waiting_on.1.until)" = "2099-01-01T00:00:00Z" ]
}

@test "a goal is done when its tasks are done or cancelled, and reopens on a new task" {
  kanban create "G" --kind goal >/dev/null
  kanban create "a" --goal TASK-1 >/dev/null
  kanban create "b" --goal TASK-1 >/dev/null
  finish TASK-2
  [ "$(kanban show TASK-1 | json_get status)" = "todo" ]
  kanban cancel TASK-3 >/dev/null
  [ "$(kanban show TASK-1 | json_get status)" = "done" ]
  kanban create "c" --goal TASK-1 >/dev/null
  [ "$(kanban show TASK-1 | json_get status)" = "todo" ]
}
