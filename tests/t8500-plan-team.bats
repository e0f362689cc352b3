#!/usr/bin/env bats
# t8500: plan, team and mcp from a shell, as a manager and a team run them.

load test_helper

EXAMPLES="$KANBAN_ROOT/examples"

write_team() {
  cat > team.yaml <<'YAML'
name: crew
dispatch_mode: coordinator
coordinator: lead
members:
  - personality: lead
    role: coordinator
  - personality: dev
    command: [sh, -c, 'cat >"$KANBAN_TASK_ID.prompt"; kanban complete "$KANBAN_TASK_ID" --token "$KANBAN_LEASE_TOKEN" --summary ok >/dev/null']
kanban:
  poll_ms: 50
YAML
}

@test "kanban plan lint checks a plan" {
  run kanban plan lint "$EXAMPLES/plan.yaml"
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | json_get ok)" = "true" ]
  [ "$(echo "$output" | json_get order.0)" = "roadmap" ]
}

@test "kanban plan apply twice creates nothing new" {
  [ "$(kanban plan apply "$EXAMPLES/plan.yaml" | json_get created)" = "5" ]
  [ "$(kanban plan apply "$EXAMPLES/plan.yaml" | json_get created)" = "0" ]
  [ "$(kanban plan apply "$EXAMPLES/plan.yaml" | json_get existing)" = "5" ]
  [ "$(kanban show TASK-4 | json_get depends_on.1)" = "TASK-3" ]
}

@test "kanban plan refuses a cycle with the cycle code and creates nothing" {
  printf 'name: loop\ntasks:\n  - {key: a, title: A, depends_on: [b]}\n  - {key: b, title: B, depends_on: [a]}\n' > loop.yaml
  run kanban plan apply loop.yaml
  [ "$status" -eq 2 ]
  [ "$output" = '{"error": "loop.yaml:4:5: the plan has a cycle: a -> b -> a", "code": "cycle", "retryable": false, "keys": ["a", "b", "a"], "path": "tasks[1]", "file": "loop.yaml", "line": 4, "column": 5}' ]
  [ "$(kanban list | json_get tasks)" = "[]" ]
}

@test "kanban team refuses a coordinator team without its coordinator, with the seed's message" {
  printf 'name: t\ndispatch_mode: coordinator\ncoordinator: lead\nmembers:\n  - personality: lead\n  - personality: dev\n' > bad.yaml
  run kanban team start bad.yaml
  [ "$status" -eq 2 ]
  [ "$(echo "$output" | json_get error)" = "bad.yaml is invalid — dispatch_mode=coordinator requires exactly one member with role=coordinator" ]
  printf 'name: t\ncoordinator: boss\nmembers:\n  - {personality: lead, role: coordinator}\n' > mismatch.yaml
  run kanban team validate mismatch.yaml
  [ "$status" -eq 2 ]
  [ "$(echo "$output" | json_get error)" = "member with role=coordinator (lead) does not match top-level coordinator (boss)" ]
  [ "$(echo "$output" | json_get code)" = "invalid" ]
}

@test "kanban team tick delivers a prompt and the member completes its task" {
  write_team
  kanban team tick team.yaml >/dev/null
  KANBAN_AGENT=lead kanban create "Ship it" --body "Carefully." --assignee dev >/dev/null
  [ "$(kanban team tick team.yaml | json_get dispatched.0.agent)" = "dev" ]
  for _ in $(seq 100); do [ "$(kanban show TASK-1 | json_get status)" = "done" ] && break; sleep 0.1; done
  [ "$(kanban show TASK-1 | json_get status)" = "done" ]
  [ "$(head -n 1 TASK-1.prompt)" = "## Task TASK-1: Ship it" ]
  [ "$(kanban show TASK-1 | json_get runs.0.outcome)" = "completed" ]
  [ -f .kanban/team/crew/dev.log ]
}

@test "the team's role gate holds for members on the command line" {
  write_team
  kanban team tick team.yaml >/dev/null
  run env KANBAN_AGENT=dev kanban create "not mine to create"
  [ "$status" -eq 2 ]
  [ "$(echo "$output" | json_get code)" = "forbidden" ]
  KANBAN_AGENT=lead kanban create "Task" --assignee lead >/dev/null
  [ "$(KANBAN_AGENT=dev kanban comment TASK-1 --message hi | json_get actor)" = "dev" ]
  run env KANBAN_AGENT=dev kanban block TASK-1 --reason "not mine"
  [ "$status" -eq 2 ]
}

@test "kanban team start --until-idle runs the team and status shows it" {
  write_team
  kanban team tick team.yaml >/dev/null
  KANBAN_AGENT=lead kanban create "One" --assignee dev >/dev/null
  KANBAN_AGENT=lead kanban create "Two" --assignee dev --depends-on TASK-1 >/dev/null
  run kanban team start team.yaml --until-idle
  [ "$status" -eq 0 ]
  [[ "$output" == *"TASK-2 -> dev"* ]]
  [[ "$output" == *"stopped (idle)"* ]]
  run kanban team status team.yaml --format table
  [ "$status" -eq 0 ]
  [[ "$output" == *"dev "*"idle"* ]]
}

@test "kanban mcp answers initialize and tools/call over stdio" {
  output=$(printf '%s\n' \
    '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bats","version":"1"}}}' \
    '{"jsonrpc":"2.0","method":"notifications/initialized"}' \
    '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"kanban_create_goal","arguments":{"title":"G"}}}' \
    | KANBAN_AGENT=lead kanban mcp)
  [ "$(echo "$output" | head -n 1 | json_get result.serverInfo.name)" = "kanban" ]
  [ "$(echo "$output" | sed -n 2p | json_get result.isError)" = "false" ]
  [ "$(kanban show TASK-1 | json_get kind)" = "goal" ]
}
