# fish completion for kanban.  Install:
#   kanban completion fish > ~/.config/fish/completions/kanban.fish
# What to offer, with descriptions, comes from kanban itself (`kanban completion --complete`).

function __kanban_complete
    set -l tokens (commandline -opc)
    set -l cur (commandline -ct)
    set -l out ($tokens[1] completion --complete -- $tokens[2..-1] $cur 2>/dev/null)
    switch "$out[1]"
        case :files
            __fish_complete_path $cur
        case :commands
            __fish_complete_command
        case '*'
            printf '%s\n' $out
    end
end

complete -c kanban -f -a '(__kanban_complete)'
