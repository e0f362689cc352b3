# bash completion for kanban                                  -*- shell-script -*-
# Install: kanban completion bash > ~/.local/share/bash-completion/completions/kanban
# (or source it from ~/.bashrc).  Verbs, options and sub-commands come from kanban
# itself ('kanban commands', 'kanban VERB --help'), cached for the session.

declare -gA _kanban_help_cache 2>/dev/null || true

_kanban_call() {
  "${_kanban_bin:-kanban}" "$@" 2>/dev/null
}

_kanban_verbs() {
  if [[ -z ${_kanban_verb_cache-} ]]; then
    _kanban_verb_cache="help commands $(_kanban_call commands |
      grep -o '"name": "[^"]*"\|"aliases": \[[^]]*\]' | grep -o '"[^"]*"' | tr -d '"' |
      grep -v -x 'name\|aliases' | tr '\n' ' ')"
  fi
  printf '%s\n' "$_kanban_verb_cache"
}

_kanban_resolve() {  # an alias -> its verb (the dispatcher's table)
  case $1 in
    dispatch) echo create ;;
    claim-next) echo claim ;;
    heartbeat|extend-lease) echo lease ;;
    log-progress) echo event ;;
    *) echo "$1" ;;
  esac
}

_kanban_help() {  # the verb's help text, cached
  local verb=$1
  if [[ -z ${_kanban_help_cache[$verb]+set} ]]; then
    _kanban_help_cache[$verb]=$(_kanban_call "$verb" --help)
  fi
  printf '%s\n' "${_kanban_help_cache[$verb]}"
}

_kanban_options() {
  _kanban_help "$1" | grep -oE -- '--[a-z][a-z-]*=?' | sort -u
}

_kanban_subcommands() {
  _kanban_help "$1" | sed -nE "s/^[[:space:]]*(usage:)?[[:space:]]*kanban $1 [[(]?([a-z][a-z|-]*)[])]?( .*)?\$/\\2/p" |
    tr '|' '\n' | sort -u
}

_kanban_ids() {
  _kanban_call list --limit 500 | grep -o '"id": "TASK-[0-9]*"' | cut -d'"' -f4
}

_kanban_values() {  # what an option's value may be
  case $1 in
    --status) echo todo in_progress in_review blocked done failed cancelled ;;
    --format) echo json table ;;
    --kind) echo task goal ;;
    --harness) _kanban_call skill --list ;;
    --goal|--depends-on|--task) _kanban_ids ;;
  esac
}

_kanban() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
  local i verb= at=0 word
  _kanban_bin=${COMP_WORDS[0]}
  COMPREPLY=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      -*) ;;
      *) verb=${COMP_WORDS[i]}; at=$i; break ;;
    esac
  done
  if [[ -z $verb ]]; then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W '--version --exec-path --man-path --help' -- "$cur"))
    else
      COMPREPLY=($(compgen -W "$(_kanban_verbs)" -- "$cur"))
    fi
    return
  fi
  verb=$(_kanban_resolve "$verb")
  case $verb in
    help) ((COMP_CWORD == at + 1)) && COMPREPLY=($(compgen -W "$(_kanban_verbs)" -- "$cur")); return ;;
    commands) return ;;
  esac
  # after `--` (work, review): a command, then its arguments
  for ((i = at + 1; i < COMP_CWORD; i++)); do
    if [[ ${COMP_WORDS[i]} == -- ]]; then
      if ((COMP_CWORD == i + 1)); then
        COMPREPLY=($(compgen -c -- "$cur"))
      else
        COMPREPLY=($(compgen -f -- "$cur"))
      fi
      return
    fi
  done
  # an option's value: --opt=VALUE (bash splits at '=') or --opt VALUE
  local opt=
  if [[ $cur == = ]]; then
    opt=$prev; cur=
  elif [[ $prev == = ]]; then
    opt=${COMP_WORDS[COMP_CWORD-2]}
  elif [[ $prev == --* ]] && _kanban_options "$verb" | grep -qx -- "$prev="; then
    opt=$prev
  fi
  if [[ -n $opt ]]; then
    COMPREPLY=($(compgen -W "$(_kanban_values "$opt")" -- "$cur"))
    return
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(_kanban_options "$verb" | sed 's/=$//')" -- "$cur"))
    return
  fi
  # the words so far after the verb that are not options: a sub-command, then operands
  local operands=0
  for ((i = at + 1; i < COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    [[ $word == -* || $word == = ]] && continue
    [[ ${COMP_WORDS[i-1]} == = ]] && continue
    ((operands++))
  done
  local subs
  subs=$(_kanban_subcommands "$verb")
  if [[ -n $subs && $operands -eq 0 ]]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    return
  fi
  local usage
  usage=$(_kanban_help "$verb")
  if grep -qE 'FILE|MANIFEST' <<<"$usage"; then
    COMPREPLY=($(compgen -f -- "$cur"))
  elif grep -qE '[[ ](ID|DEP|PAIR)' <<<"$usage"; then
    COMPREPLY=($(compgen -W "$(_kanban_ids)" -- "$cur"))
  fi
}

complete -F _kanban kanban
