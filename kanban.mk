# kanban.mk: sprint targets for any Makefile.
#
#   include /path/to/kanban.mk          # or: include $(shell kanban --exec-path)/../kanban.mk
#   KANBAN_PLAN = sprint.yaml
#   KANBAN_WORK_CMD = ./scripts/do-task      # required (or: make sprint CMD=./scripts/do-task)
#   KANBAN_REVIEW_CMD = ./scripts/check-task # without one, no reviewer runs
#
#   make sprint          the board (created when there is none), the plan, then workers and a
#                        reviewer until the board is drained; exits non-zero, with a summary on
#                        stderr, if anything is left in todo, in progress, in review or blocked
#   make sprint-plan     apply the plan (idempotent: applying twice creates nothing new)
#   make sprint-run      KANBAN_WORKERS work loops and one review loop, until drained
#   make sprint-board    the board for people;  make sprint-stats  counts and cycle times
#   make standup         what changed since yesterday, from the event log, by agent
#
# Under make -j the order holds: each target's steps are recipe lines, and goals named
# together (make -j4 sprint-plan sprint-run) run lint, plan, run, then the reports.
#
# Every target composes the kanban commands; nothing here talks to the database.
# No command does the work by default: a sprint without KANBAN_WORK_CMD refuses to start.

# included above a Makefile's own targets, none of these becomes its default goal (below)
_KANBAN_INCLUDER_GOAL := $(.DEFAULT_GOAL)

KANBAN ?= kanban
KANBAN_PLAN ?= sprint.yaml
KANBAN_WORKERS ?= 3
KANBAN_WORKER_PREFIX ?= worker
KANBAN_REVIEWER ?= reviewer
KANBAN_WORK_CMD ?= $(CMD)
KANBAN_REVIEW_CMD ?=
KANBAN_WAIT ?= 5s
KANBAN_LEASE ?= 15m
KANBAN_STANDUP_SINCE ?= 24h

.PHONY: sprint sprint-check sprint-init sprint-plan sprint-lint sprint-run sprint-board sprint-stats standup

_KANBAN_SPRINT = $(KANBAN) sprint --workers $(KANBAN_WORKERS) --prefix $(KANBAN_WORKER_PREFIX) \
  --reviewer $(KANBAN_REVIEWER) --wait $(KANBAN_WAIT) --lease $(KANBAN_LEASE)

# The commands reach `kanban sprint` through the environment: no quoting to get wrong.
sprint sprint-run: export KANBAN_WORK_CMD := $(KANBAN_WORK_CMD)
sprint sprint-run: export KANBAN_REVIEW_CMD := $(KANBAN_REVIEW_CMD)

# Each target's steps are lines of its own recipe, not prerequisites, so `make -j` cannot
# run them side by side: the check before anything is created, the board before the plan,
# the plan before the workers.
_KANBAN_CHECK = @if [ -z "$(strip $(KANBAN_WORK_CMD))" ]; then \
	  echo "kanban.mk: no work command, so no sprint: set the command that does a task," >&2; \
	  echo "  make sprint KANBAN_WORK_CMD=./do-task   (or CMD=./do-task, or KANBAN_WORK_CMD = ... in your Makefile);" >&2; \
	  echo "  it gets the task JSON on stdin; exit 0 completes the task, anything else blocks it." >&2; \
	  exit 2; fi
_KANBAN_INIT = @$(KANBAN) stats >/dev/null 2>&1 || $(KANBAN) init >/dev/null
_KANBAN_APPLY = @if [ -f "$(KANBAN_PLAN)" ]; then $(KANBAN) plan apply $(KANBAN_PLAN) >/dev/null; \
	else echo "kanban.mk: no plan $(KANBAN_PLAN): the sprint works the board as it is" >&2; fi

# Goals given together keep a sprint's order under -j too (make runs goals in parallel):
# lint, then plan, then the run (sprint or sprint-run), then what reports on the board.
sprint-plan: | $(filter sprint-lint,$(MAKECMDGOALS))
sprint sprint-run: | $(filter sprint-lint sprint-plan,$(MAKECMDGOALS))
sprint-board sprint-stats standup: | $(filter sprint sprint-lint sprint-plan sprint-run,$(MAKECMDGOALS))

sprint:
	$(_KANBAN_CHECK)
	$(_KANBAN_INIT)
	$(_KANBAN_APPLY)
	@$(_KANBAN_SPRINT); status=$$?; $(KANBAN) board --no-pager; exit $$status

sprint-check:
	$(_KANBAN_CHECK)

sprint-init:
	$(_KANBAN_INIT)

sprint-lint:
	$(KANBAN) plan lint $(KANBAN_PLAN)

sprint-plan:
	$(_KANBAN_INIT)
	$(_KANBAN_APPLY)

sprint-run:
	$(_KANBAN_CHECK)
	$(_KANBAN_INIT)
	$(_KANBAN_SPRINT)

sprint-board:
	@$(KANBAN) board

sprint-stats:
	@$(KANBAN) stats --format table

standup:
	@$(KANBAN) standup --since $(KANBAN_STANDUP_SINCE)

# A bare `make` builds the includer's first target, not one of these; kanban.mk read
# alone (make -f kanban.mk) builds `sprint`.
ifeq ($(firstword $(MAKEFILE_LIST)),$(lastword $(MAKEFILE_LIST)))
.DEFAULT_GOAL := sprint
else
.DEFAULT_GOAL := $(_KANBAN_INCLUDER_GOAL)
endif
