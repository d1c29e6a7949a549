# bash completion for egnyte-receiver                     -*- shell-script -*-
# Generated from egnyte-receiver's --help texts by tests/packaging.rs: do not edit.
# Regenerate: UPDATE_GENERATED=1 cargo test --test packaging

# Completes into COMPREPLY: files (-f), directories (-d) or words (-W 'a b').
_egnyte_receiver_values() {
    if [[ $1 == -[fd] ]]; then
        compopt -o filenames 2>/dev/null
        local IFS=$'\n'
    fi
    COMPREPLY=($(compgen "$@" -- "$cur"))
}

_egnyte_receiver() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    COMPREPLY=()
    if ((COMP_CWORD == 1)); then
        _egnyte_receiver_values -W 'serve check journal replay simulate webhook help -h --help -V --version'
        return
    fi
    if [[ ${COMP_WORDS[1]} == journal ]] && ((COMP_CWORD == 2)); then
        _egnyte_receiver_values -W 'stats verify dump -h --help'
        return
    fi
    case ${COMP_WORDS[1]} in
    serve)
        case $prev in
        --listen|--metrics-listen|--path|--auth-token|--auth-header|--max-body|--max-headers|--max-header-bytes|--read-timeout|--max-connections|--io-threads|--dedup-capacity|--max-journal-bytes|--journal-segment-bytes|--journal-retention|--workers|--sink|--sink-start|--jsonl-max-bytes|--exec-timeout|--http-batch|--http-timeout|--delivery-attempts|--shutdown-timeout|--webhook-id|--webhook-check-interval|--domain|--api-url|--api-token)
            :
            return
            ;;
        --auth-token-file|--http-sign-secret-file|--api-token-file)
            _egnyte_receiver_values -f
            return
            ;;
        --data-dir)
            _egnyte_receiver_values -d
            return
            ;;
        --durability)
            _egnyte_receiver_values -W 'fsync none'
            return
            ;;
        --log-format)
            _egnyte_receiver_values -W 'text json'
            return
            ;;
        esac
        _egnyte_receiver_values -W '--listen --metrics-listen --path --auth-token --auth-token-file --auth-header --data-dir --max-body --max-headers --max-header-bytes --read-timeout --max-connections --io-threads --dedup-capacity --durability --max-journal-bytes --journal-segment-bytes --journal-retention --workers --sink --sink-start --jsonl-max-bytes --exec-timeout --http-batch --http-timeout --http-sign-secret-file --delivery-attempts --shutdown-timeout --log-format --webhook-id --webhook-check-interval --domain --api-url --api-token --api-token-file --check -h --help'
        ;;
    check)
        if [[ $cur == -* ]]; then
            _egnyte_receiver_values -W '-h --help'
        else
            _egnyte_receiver_values -f
        fi
        ;;
    journal)
        case $prev in
        --data-dir)
            _egnyte_receiver_values -d
            return
            ;;
        --since|--from|--type|--domain)
            :
            return
            ;;
        esac
        _egnyte_receiver_values -W '--data-dir --since --from --type --domain --quarantined -h --help'
        ;;
    replay)
        case $prev in
        --sink|--since|--from|--type|--domain|--exec-timeout)
            :
            return
            ;;
        --data-dir)
            _egnyte_receiver_values -d
            return
            ;;
        --http-sign-secret-file)
            _egnyte_receiver_values -f
            return
            ;;
        esac
        _egnyte_receiver_values -W '--sink --dead-letter --data-dir --since --from --type --domain --exec-timeout --http-sign-secret-file -h --help'
        ;;
    simulate)
        case $prev in
        --url|--connections|--batch-size|--rate|--duration|--requests|--duplicates|--unknown-types|--auth-token|--auth-header|--domain|--seed|--timeout|--retry-for|--verify-timeout|--progress)
            :
            return
            ;;
        --auth-token-file|--verify-jsonl)
            _egnyte_receiver_values -f
            return
            ;;
        esac
        _egnyte_receiver_values -W '--url --connections --batch-size --rate --duration --requests --duplicates --unknown-types --auth-token --auth-token-file --auth-header --domain --seed --timeout --retry-for --verify-jsonl --verify-timeout --progress -h --help'
        ;;
    webhook)
        case $prev in
        --domain|--api-token|--api-url|--url|--event-type|--path|--auth-header)
            :
            return
            ;;
        --api-token-file|--auth-token-file)
            _egnyte_receiver_values -f
            return
            ;;
        esac
        _egnyte_receiver_values -W '--domain --api-token-file --api-token --api-url --json -h --help --url --event-type --path --auth-header --auth-token-file'
        ;;
    esac
}

complete -F _egnyte_receiver egnyte-receiver
