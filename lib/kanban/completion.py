"""`kanban completion bash`: the bash completion script, kept beside this module as
kanban.bash (`make install` installs what this command prints).

The script asks kanban itself what to offer, when it is first needed, and caches
it for the shell session: verbs and aliases from `kanban commands`, each verb's
options and sub-commands from its usage text (`kanban VERB --help`), task ids from
`kanban list`.  So it never goes stale when a verb or option is added.
"""
import sys

from . import paths


def script(shell="bash"):
    with open(paths.completion_script(shell), encoding="utf-8") as handle:
        return handle.read()


def completion(args):
    """porcelain/kanban-completion"""
    sys.stdout.write(script("bash"))
    return 0
