#!/bin/sh
# long_functions.sh - lists the C functions longer than N lines (default 80) in the given
# folders (default: framework handlers tools), longest first, as "LINES file:line name".
# A function starts at a line that begins with a lower-case letter and holds a '(' (its
# declarator, possibly continued on the next lines) and whose body opens with '{' alone at
# the start of a later line; it ends at the next '}' at the start of a line. LINES counts
# from the declarator to the closing brace. Always exits 0: it reports, it does not judge.
#
#   scripts/long_functions.sh [-n N] [FOLDER...]
max=80
if [ "$1" = "-n" ]; then
    max=$2
    shift 2
fi
[ $# -gt 0 ] || set -- framework handlers tools
find "$@" -name '*.c' -type f 2>/dev/null | sort | while read -r f; do
    awk -v max="$max" -v file="$f" '
        /\);[ \t]*$/ && !open { start = 0; next }
        /^[a-z].*\(/ { start = FNR; sig = $0; next }
        /^\{/ && start { open = start; name = sig; start = 0; next }
        /^\}/ && open {
            n = FNR - open + 1
            if (n > max) {
                sub(/\(.*/, "", name)
                k = split(name, w, /[ *]+/)
                printf "%d %s:%d %s\n", n, file, open, w[k]
            }
            open = 0
            next
        }
    ' "$f"
done | sort -rn
exit 0
