"""`python -m kanban VERB [ARGS...]`: the dispatcher, for an interpreter whose scripts
folder is not on PATH (an agent's sandbox that can only `pip install`)."""
from .dispatch import console

console()
