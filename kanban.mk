# kanban.mk: sprint targets for any Makefile.
#
#   include /path/to/kanban.mk          # or: include $(shell kanban --exec-path)/../kanban.mk
#   KANBAN_PLAN = sprint.yaml
#   KANBAN_WORK_CMD = ./scripts/do-task
#
#   make sprint          plan, then workers and a reviewer until the board is drained, then the board
#   make sprint-plan     apply the plan (idempotent: applying twice creates nothing new)
#   make sprint-run      KANBAN_WORKERS work loops and one review loop, side by side
#   make sprint-board    the board for people;  make sprint-stats  counts and cycle times
#
# Every target composes the kanban commands; nothing here talks to the database.

KANBAN ?= kanban
KANBAN_PLAN ?= sprint.yaml
KANBAN_WORKERS ?= 3
KANBAN_WORKER_PREFIX ?= worker
KANBAN_REVIEWER ?= reviewer
KANBAN_WORK_CMD ?= true
KANBAN_REVIEW_CMD ?= true
KANBAN_WAIT ?= 5s
KANBAN_LEASE ?= 15m

.PHONY: sprint sprint-plan sprint-lint sprint-run sprint-board sprint-stats

sprint: sprint-plan sprint-run sprint-board

sprint-lint:
	$(KANBAN) plan lint $(KANBAN_PLAN)

sprint-plan:
	$(KANBAN) plan apply $(KANBAN_PLAN) >/dev/null

# Workers and the reviewer run together; each stops after KANBAN_WAIT without work.
sprint-run:
	@set -e; pids=; \
	for i in $$(seq 1 $(KANBAN_WORKERS)); do \
	  $(KANBAN) work --agent $(KANBAN_WORKER_PREFIX)-$$i --wait $(KANBAN_WAIT) --lease $(KANBAN_LEASE) \
	    -- $(KANBAN_WORK_CMD) >/dev/null & pids="$$pids $$!"; \
	done; \
	$(KANBAN) review --agent $(KANBAN_REVIEWER) --wait $(KANBAN_WAIT) --lease $(KANBAN_LEASE) \
	  -- $(KANBAN_REVIEW_CMD) >/dev/null & pids="$$pids $$!"; \
	status=0; for pid in $$pids; do wait $$pid || status=$$?; done; exit $$status

sprint-board:
	@$(KANBAN) board

sprint-stats:
	@$(KANBAN) stats --format table
