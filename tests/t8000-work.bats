#!/usr/bin/env bats
# t8000: the porcelain loops and views from a shell, as a user runs them.

load test_helper

@test "kanban work drains the board and passes the task to CMD" {
  kanban create "first" >/dev/null
  kanban create "second" >/dev/null
  run kanban work --agent w1 -- sh -c 'cat >/dev/null; echo "did $KANBAN_TASK_ID"'
  [ "$status" -eq 0 ]
  [ "$(kanban list --status done | json_get tasks.1.id)" = "TASK-2" ]
  [ "$(kanban event list --kind completed | json_get events.0.data.summary)" = "did TASK-1" ]
}

@test "kanban work blocks a failing task with its stderr, and exits 1 with --exit-code when idle" {
  kanban create "breaks" >/dev/null
  kanban work --agent w1 --once -- sh -c 'echo "disk full" >&2; exit 4' 2>/dev/null
  [ "$(kanban show TASK-1 | json_get status)" = "blocked" ]
  [ "$(kanban show TASK-1 | json_get reason)" = "sh exited 4: disk full" ]
  run kanban work --agent w1 --once --exit-code -- true
  [ "$status" -eq 1 ]
}

@test "kanban review approves what CMD accepts" {
  kanban create "check me" --review >/dev/null
  kanban work --agent w1 -- true 2>/dev/null
  [ "$(kanban show TASK-1 | json_get status)" = "in_review" ]
  kanban review --agent r1 -- sh -c 'echo fine' >/dev/null 2>&1
  [ "$(kanban show TASK-1 | json_get status)" = "done" ]
}

@test "kanban board shows each status and the holder" {
  kanban create "held" >/dev/null
  kanban claim --agent amy >/dev/null
  run kanban board
  [ "$status" -eq 0 ]
  [[ "$output" == *"IN PROGRESS (1)"* ]]
  [[ "$output" == *"TASK-1"*"amy"*"until"* ]]
  [[ "$output" != *"CANCELLED"* ]]   # an empty section is not shown
  [[ "$output" != *$'\e['* ]]          # piped: no colour
}

@test "kanban skill prints the protocol; kanban init --harness writes it" {
  run kanban skill --harness claude
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = "---" ]
  [[ "$output" == *"kanban complete ID --token T"* ]]
  kanban init --harness claude >/dev/null
  [ -f .claude/skills/kanban/SKILL.md ]   # where Claude Code reads project skills
  run kanban skill --harness nope
  [ "$status" -eq 2 ]
}

@test "kanban completion bash completes verbs" {
  source <(kanban completion bash)
  COMP_WORDS=(kanban revi); COMP_CWORD=1
  _kanban
  [ "${COMPREPLY[*]}" = "review" ]
}
