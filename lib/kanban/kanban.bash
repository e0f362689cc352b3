# bash completion for kanban                                  -*- shell-script -*-
# Install: kanban completion bash > ~/.local/share/bash-completion/completions/kanban
# (or source it from ~/.bashrc).  What to offer comes from kanban itself
# (`kanban completion --complete -- WORDS...`): verbs, options, option values, and
# task ids filtered by what the verb takes.

_kanban() {
  local i word words=() cur
  # rejoin what bash split at '=' (COMP_WORDBREAKS): --status=in is one word to kanban
  for ((i = 1; i <= COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    if ((${#words[@]})) && [[ $word == = || ${words[-1]} == *= ]] && [[ ${COMP_WORDS[i-1]} != -- ]]; then
      words[-1]+=$word
    else
      words+=("$word")
    fi
  done
  cur=${words[-1]}
  local out line
  out=$("${COMP_WORDS[0]}" completion --complete -- "${words[@]}" 2>/dev/null) || return
  COMPREPLY=()
  case $out in
    :files*) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")); return ;;
    :commands*) COMPREPLY=($(compgen -c -- "$cur")); return ;;
  esac
  local prefix=
  [[ $cur == --*=* && ${COMP_WORDS[COMP_CWORD]} != "$cur" ]] && prefix=${cur%%=*}=
  while IFS= read -r line; do
    [[ -n $line ]] || continue
    line=${line%%$'\t'*}
    COMPREPLY+=("${line#"$prefix"}")
  done <<<"$out"
}

complete -F _kanban kanban
