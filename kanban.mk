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
# Every target composes the kanban commands; nothing here talks to the database.
# No command does the work by default: a sprint without KANBAN_WORK_CMD refuses to start.

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

sprint: sprint-check sprint-plan
	@$(_KANBAN_SPRINT); status=$$?; $(KANBAN) board --no-pager; exit $$status

sprint-check:
	@if [ -z "$(strip $(KANBAN_WORK_CMD))" ]; then \
	  echo "kanban.mk: no work command, so no sprint: set the command that does a task," >&2; \
	  echo "  make sprint KANBAN_WORK_CMD=./do-task   (or CMD=./do-task, or KANBAN_WORK_CMD = ... in your Makefile);" >&2; \
	  echo "  it gets the task JSON on stdin; exit 0 completes the task, anything else blocks it." >&2; \
	  exit 2; fi

sprint-init:
	@$(KANBAN) stats >/dev/null 2>&1 || $(KANBAN) init >/dev/null

sprint-lint:
	$(KANBAN) plan lint $(KANBAN_PLAN)

sprint-plan: sprint-init
	@if [ -f "$(KANBAN_PLAN)" ]; then $(KANBAN) plan apply $(KANBAN_PLAN) >/dev/null; \
	else echo "kanban.mk: no plan $(KANBAN_PLAN): the sprint works the board as it is" >&2; fi

sprint-run: sprint-check sprint-init
	$(_KANBAN_SPRINT)

sprint-board:
	@$(KANBAN) board

sprint-stats:
	@$(KANBAN) stats --format table

standup:
	@$(KANBAN) standup --since $(KANBAN_STANDUP_SINCE)
