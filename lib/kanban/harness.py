"""Members that are real agent CLIs: `harness: claude | codex | gemini | pi` in a team
manifest.  The dispatcher starts the agent's documented non-interactive mode with the
member's prompt, and with kanban's MCP server configured for it: a configuration file
per member, written here into the team's folder, that starts `kanban mcp --agent
MEMBER` on the member's board.

  claude  claude -p --mcp-config FILE --strict-mcp-config --allowedTools mcp__kanban
          (the prompt on stdin; FILE is {"mcpServers": {"kanban": {...}}})
  codex   codex exec -c mcp_servers.kanban.command=... -c mcp_servers.kanban.args=[...]
          -c mcp_servers.kanban.env={...} PROMPT  (codex takes servers as -c overrides of
          config.toml; FILE, a TOML copy of them, is written for people to read)
  gemini  gemini --allowed-mcp-server-names kanban -p PROMPT, with
          GEMINI_CLI_SYSTEM_SETTINGS_PATH naming FILE, a settings.json with mcpServers
  pi      pi -p PROMPT  (it works the board with the kanban command, whose environment
          the dispatcher sets: older pi has no MCP client, and current pi's reads its
          servers only from ~/.pi/agent/mcp.json and a trusted project's .pi/mcp.json,
          with no flag naming another file; FILE, in that format, is written for people
          and MCP extensions)

The sources of these flags are cited in kanban-team(1).
"""
import json
import os

from . import paths

HARNESSES = ("claude", "codex", "gemini", "pi")
SERVER = "kanban"


def server_entry(member, env):
    """The MCP server a member's agent starts: `kanban mcp --agent MEMBER` on its board."""
    keep = {k: env[k] for k in ("KANBAN_DB", "KANBAN_AGENT", "KANBAN_TASK_ID", "KANBAN_LEASE_TOKEN",
                                "KANBAN_RUN_ID", "KANBAN_TEAM") if k in env}
    return {"command": paths.command(), "args": ["mcp", "--agent", member], "env": keep}


def _toml_string(text):
    """A TOML basic string.  Not json.dumps: JSON writes a character past U+FFFF as a
    surrogate pair (an emoji in a folder's name), which TOML refuses."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch < " " or ch == "\x7f":  # the control characters TOML wants escaped
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_inline(entry):
    env = ", ".join(f"{k} = {_toml_string(v)}" for k, v in entry["env"].items())
    return {"command": _toml_string(entry["command"]),
            "args": "[" + ", ".join(_toml_string(a) for a in entry["args"]) + "]",
            "env": "{" + env + "}"}


def config_file(harness, member, folder):
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in member) or "_"
    suffix = {"claude": "mcp.json", "codex": "codex.toml", "gemini": "gemini-settings.json", "pi": "mcp.json"}
    return os.path.join(folder, f"{name}.{suffix[harness]}")


def launch(harness, member, prompt, folder, env):
    """(argv, extra environment) to start `member`'s agent on `prompt`; writes its config."""
    entry = server_entry(member, env)
    path = config_file(harness, member, folder)
    extra = {"KANBAN_MCP_CONFIG": path}
    if harness == "codex":
        fields = _toml_inline(entry)
        _write(path, f"[mcp_servers.{SERVER}]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items()))
        overrides = []
        for key, value in fields.items():
            overrides += ["-c", f"mcp_servers.{SERVER}.{key}={value}"]
        return ["codex", "exec", *overrides, prompt], extra
    document = {"mcpServers": {SERVER: entry}}
    _write(path, json.dumps(document, indent=2) + "\n")
    if harness == "claude":
        return ["claude", "-p", "--mcp-config", path, "--strict-mcp-config", "--allowedTools", f"mcp__{SERVER}"], extra
    if harness == "gemini":
        extra["GEMINI_CLI_SYSTEM_SETTINGS_PATH"] = path
        return ["gemini", "--allowed-mcp-server-names", SERVER, "-p", prompt], extra
    return ["pi", "-p", prompt], extra


def _write(path, text):
    """Write a member's config readable by its owner only (it names the board and its lease)."""
    paths.replace_file(path, text, mode=0o600)
