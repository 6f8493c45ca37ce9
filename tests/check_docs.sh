#!/bin/sh
# check_docs.sh - the documentation states the defaults the code uses: every
# key of `wharfd -T` on the smallest config (the effective config, every
# default filled in) has a row in docs/config.md's tables, and that row shows
# the same default value.
set -u
src=${WHARF_SRCDIR:-.}
build=${WHARF_BUILDDIR:-.}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '{"listeners": [{"port": 0, "handler": "echo"}]}' >"$tmp/min.json"
"$build/wharfd" -T -c "$tmp/min.json" >"$tmp/effective.json" || {
    echo "FAIL: wharfd -T"; echo "0 passed, 1 failed"; exit 1; }
python3 - "$tmp/effective.json" "$src/docs/config.md" <<'PY'
import json, re, sys
eff = json.load(open(sys.argv[1]))
doc = open(sys.argv[2]).read()
# Table rows: | `key` | ... |
rows = {}
for line in doc.splitlines():
    m = re.match(r"\|\s*`([a-z0-9_]+)`\s*\|(.*)\|\s*$", line)
    if m:
        rows.setdefault(m.group(1), []).append(m.group(2))
computed = {"workers", "name", "port", "handler", "options"}  # required or computed
keys = {}
for k, v in eff.items():
    if k != "listeners":
        keys[k] = v
for k, v in eff["listeners"][0].items():
    if isinstance(v, dict) and k != "options":
        keys.update(v)
    else:
        keys[k] = v
passed = failed = 0
for k, v in keys.items():
    if k in computed:
        continue
    want = json.dumps(v)
    cells = [c.strip().strip("`") for r in rows.get(k, []) for c in r.split("|")]
    if any(c == want or c.startswith(want + " ") for c in cells):
        passed += 1
    else:
        failed += 1
        print(f"FAIL: docs/config.md: `{k}` should show the default {want}; rows: {rows.get(k)}")
print(f"{passed} defaults in docs/config.md match the code")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
