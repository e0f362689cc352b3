"""kanban.mk: a Makefile sprint (plan, workers and a reviewer, board) drains a board."""
import os
import subprocess
import textwrap

from conftest import KANBAN, ROOT, run

PLAN = textwrap.dedent("""\
    version: 1
    name: mk-sprint
    goals:
      - key: release
        title: Cut the release
        tasks:
          - {key: notes, title: Write the notes, review: true}
          - {key: tag, title: Tag the commit, depends_on: [notes]}
          - {key: announce, title: Announce it, depends_on: [tag]}
    """)


def test_make_sprint_drains_the_board(tmp_path):
    plan = tmp_path / "sprint.yaml"
    plan.write_text(PLAN)
    db = tmp_path / ".kanban" / "board.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update(KANBAN_DB=str(db), MAKEFLAGS="")
    assert run("init", env={"KANBAN_DB": db}).rc == 0
    proc = subprocess.run(
        ["make", "--no-print-directory", "-f", str(ROOT / "kanban.mk"), "sprint",
         f"KANBAN={KANBAN}", f"KANBAN_PLAN={plan}", "KANBAN_WORKERS=2", "KANBAN_WAIT=4s"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    tasks = run("list", env={"KANBAN_DB": db}).json["tasks"]
    assert len(tasks) == 4
    assert {t["status"] for t in tasks} == {"done"}, [(t["title"], t["status"]) for t in tasks]
    assert "Cut the release" in proc.stdout  # the board is printed at the end
    # applying the plan again creates nothing new
    again = subprocess.run(["make", "--no-print-directory", "-f", str(ROOT / "kanban.mk"), "sprint-plan",
                            f"KANBAN={KANBAN}", f"KANBAN_PLAN={plan}"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert len(run("list", env={"KANBAN_DB": db}).json["tasks"]) == 4
