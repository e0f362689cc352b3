"""kanban plan: errors say FILE:LINE:COL: like a compiler (the YAML node's own mark, the
opening quote of one never closed); apply and lint print a summary for people on a
terminal, the JSON document when piped or with --format json."""
import textwrap

import pytest
from conftest import run

CASES = [
    # (plan text, line, column, words in the message)
    ('version: 1\nname: x\ngoals:\n  - key: a\n    title: "never closed\n  - key: b\n    title: ok\n',
     5, 12, "not valid YAML"),
    ("version: 1\nname: x\ngoals: [1, 2\nother: 3\n", 3, 8, "not valid YAML"),
    ("version: 1\nname: x\ngoals:\n  - key: a\n    title: A\n    tasks:\n"
     "      - {key: t1, title: T1, depends_on: [nope]}\n", 7, 43, "no goal or task with key 'nope'"),
    ("version: 1\nname: x\ngoals:\n  - key: a\n    title: A\n    priority: high\n", 6, 15,
     "goals[0].priority: 'high' is not of type 'integer'"),
    ("version: 1\nname: x\ntasks:\n  - key: a\n    title: A\n  - key: a\n    title: B\n", 6, 5,
     "key 'a' at tasks[1] is already used"),
    ("version: 1\nname: x\ntasks:\n  - {key: a, title: A, depends_on: [b]}\n"
     "  - {key: b, title: B, depends_on: [a]}\n", 5, 5, "cycle"),
]


@pytest.mark.parametrize("text,line,column,words", CASES)
def test_lint_names_file_line_and_column(tmp_path, text, line, column, words):
    plan = tmp_path / "sprint.yaml"
    plan.write_text(text)
    res = run("plan", "lint", str(plan))
    assert res.rc == 2 and res.out == "", res
    error = res.error
    assert error["error"].startswith(f"{plan}:{line}:{column}: "), error
    assert words in error["error"]
    assert (error["line"], error["column"]) == (line, column)


def test_every_schema_error_has_its_line(tmp_path):
    plan = tmp_path / "p.yaml"
    plan.write_text("version: 1\nname: x\ngoals:\n  - key: a\n    title: A\n    priority: high\n"
                    "  - key: b\n    title: ''\n    colour: red\n")
    errors = run("plan", "lint", str(plan)).error["errors"]
    assert {(e["line"], e["column"]) for e in errors} >= {(6, 15), (7, 5)}


PLAN = textwrap.dedent("""\
    version: 1
    name: people
    goals:
      - key: g
        title: Ship it
        tasks:
          - {key: a, title: First}
          - {key: b, title: Second, depends_on: [a]}
    """)


def test_apply_prints_a_summary_for_people_and_json_for_scripts(kb, tmp_path):
    plan = tmp_path / "p.yaml"
    plan.write_text(PLAN)
    piped = kb("plan", "apply", str(plan))
    assert piped.rc == 0 and piped.json["created"] == 3  # not a terminal: the document
    again = kb("plan", "apply", str(plan), "--format", "table")
    assert again.out == "plan people: 0 created, 3 already on the board\n"
    other = tmp_path / "q.yaml"
    other.write_text(PLAN.replace("name: people", "name: more"))
    text = kb("plan", "apply", str(other), "--format=table").out
    assert text.splitlines()[0] == "plan more: 3 created, 0 already on the board"
    assert "  + TASK-" in text and "Second" in text and "{" not in text
    assert kb("plan", "lint", str(plan), "--format", "table").out == \
        f"{plan}: ok: plan people, 1 goal(s), 2 task(s)\n"
    assert kb("plan", "lint", str(plan), "--format", "yaml").error["code"] == "invalid"
