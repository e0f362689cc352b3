"""Tables and text for people (--format table, and the board).  tabulate is
imported here only, so machine paths never pay for it."""
import json


def _tabulate(rows, headers):
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def _short(text, width=48):
    text = "" if text is None else str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _when(stamp):
    return "" if not stamp else stamp.replace("T", " ").rstrip("Z")[:16]


def tasks(tasks_):
    rows = [[t["id"], t["status"], t["priority"], _short(t["title"]), t["project"] or "",
             t["claimed_by"] or t["assignee"] or "", _when(t["lease_until"]),
             ",".join(t["depends_on"]), "yes" if t["ready"] else ""] for t in tasks_]
    return _tabulate(rows, ["id", "status", "pri", "title", "project", "who", "lease until", "deps", "ready"])


def table(kind, document):
    if kind == "tasks":
        return tasks(document["tasks"])
    if kind == "events":
        rows = [[e["id"], _when(e["at"]), e["task"] or "", e["kind"], e["actor"] or "",
                 _short(json.dumps(e["data"], ensure_ascii=False), 60)] for e in document["events"]]
        return _tabulate(rows, ["id", "at", "task", "kind", "actor", "data"]) + f"\ncursor: {document['cursor']}"
    if kind == "deps":
        return _tabulate([[document["task"], ",".join(document["depends_on"]) or "-",
                           ",".join(document["dependents"]) or "-"]], ["task", "depends on", "dependents"])
    if kind == "show":
        fields = [(k, v) for k, v in document.items()
                  if k not in ("comments", "runs", "events", "waiting_on", "claimable_by")]
        text = _tabulate([[k, _short(json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v, 90)]
                          for k, v in fields], ["field", "value"])
        waiting = document["waiting_on"]
        if waiting:
            text += "\n\nwaiting on:\n" + "\n".join("  " + ", ".join(f"{k}={v}" for k, v in w.items())
                                                    for w in waiting)
        if document["comments"]:
            text += "\n\ncomments:\n" + "\n".join(f"  {_when(c['at'])} {c['actor']}: {c['body']}"
                                                  for c in document["comments"])
        if document["events"]:
            text += "\n\nevents:\n" + "\n".join(f"  {_when(e['at'])} {e['kind']:<22} {e['actor'] or ''}"
                                                for e in document["events"])
        return text
    if kind == "stats":
        rows = [[status, count] for status, count in document["counts"].items()]
        text = _tabulate(rows, ["status", "tasks"])
        text += f"\n\nready: {document['ready']}   expired leases: {document['expired_leases']}"
        text += "\ndone in the last " + ", ".join(f"{k}: {v}" for k, v in document["done_in"].items())
        ct = document["cycle_time_s"]
        text += f"\ncycle time (s): p50 {ct['p50']}  p90 {ct['p90']}  p99 {ct['p99']}"
        return text
    if kind == "doctor":
        lines = [f"ok: {document['ok']}", f"integrity: {', '.join(document['integrity'])}",
                 f"sqlite: {document['sqlite_version']} ({document['driver']})",
                 f"schema: {document['schema_version']}", f"journal: {document['journal_mode']}",
                 f"wal: {document['wal']['bytes']} bytes"]
        lines += [f"{f['level']}: {f['message']}" for f in document["findings"]]
        return "\n".join(lines)
    return json.dumps(document, indent=2, ensure_ascii=False)


# -- the verbs, for `kanban --help` and `kanban commands --format table` -------------------

COMMAND_GROUPS = (("plumbing", "Plumbing: one JSON document on stdout, one transaction"),
                  ("porcelain", "Porcelain: for people and loops"))


def command_overview(usage_line, commands, aliases):
    """git's `git help`: the verbs grouped, each with its summary."""
    width = max([len(c["name"]) for c in commands] + [len(a) for a in aliases] + [8]) + 3
    out = [usage_line.rstrip(), ""]
    for kind, heading in COMMAND_GROUPS:
        out.append(heading)
        out += [f"   {c['name']:<{width}}{c['summary']}" for c in commands if c["kind"] == kind]
        out.append("")
    out.append("Aliases")
    out += [f"   {name:<{width}}{target}" for name, target in sorted(aliases.items())]
    out += ["", "'kanban help VERB' opens a verb's manual, 'kanban help workflow' the guide to a sprint;",
            "'kanban commands' lists the verbs as JSON.", ""]
    return "\n".join(out)


def command_table(commands):
    rows = [[c["name"], c["kind"], c["summary"], ", ".join(c["aliases"])] for c in commands]
    return _tabulate(rows, ["verb", "kind", "summary", "aliases"])
