#compdef kanban
# zsh completion for kanban.  Install: kanban completion zsh > "${fpath[1]}/_kanban"
# (then compinit), or in ~/.zshrc: source <(kanban completion zsh).  What to offer,
# with descriptions, comes from kanban itself (`kanban completion --complete`).

_kanban() {
  local out line
  local -a found
  out=$(${words[1]} completion --complete -- "${(@)words[2,CURRENT]}" 2>/dev/null) || return 1
  case $out in
    :files*) _files; return ;;
    :commands*) _command_names -e; return ;;
  esac
  for line in "${(@f)out}"; do
    [[ -n $line ]] || continue
    if [[ $line == *$'\t'* ]]; then
      found+=("${${line%%$'\t'*}//:/\\:}:${line#*$'\t'}")
    else
      found+=("${line//:/\\:}")
    fi
  done
  (( ${#found} )) && _describe -t kanban 'kanban' found
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _kanban "$@"
else
  compdef _kanban kanban
fi
