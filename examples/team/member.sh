#!/bin/sh
# A stand-in team member for examples/team/analytics.yaml.  The dispatcher runs it
# with the task's prompt on stdin and KANBAN_TASK_ID, KANBAN_LEASE_TOKEN,
# KANBAN_AGENT and KANBAN_DB set (and this checkout's bin/ first on PATH).
# A real member hands the prompt to an agent; this one notes it and completes.
set -eu
title=$(sed -n '1s/^## Task [^:]*: //p')
kanban heartbeat "$KANBAN_TASK_ID" --token "$KANBAN_LEASE_TOKEN" >/dev/null
kanban comment "$KANBAN_TASK_ID" --message "$KANBAN_AGENT is on it: $title" >/dev/null
sleep "${MEMBER_DELAY:-1}"
kanban complete "$KANBAN_TASK_ID" --token "$KANBAN_LEASE_TOKEN" --summary "$KANBAN_AGENT finished: $title"
