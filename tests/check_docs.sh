#!/bin/sh
# check_docs.sh - the documentation states the config schema the code uses.
# tests/config_schema_tsv prints the schema table (framework/config/
# config_schema.c: key path, type, min, max, default, choices), and:
#   - docs/config.md has a table row for every key, in the section of its
#     object (top level, listeners, timeouts, buffers, tls), showing the same
#     range (min..max, or the choices) and default, and no row for a key
#     the table lacks;
#   - docs/wharf.json.5 has an entry for every key, in its section, with
#     the same range and default, and none for a key the table lacks;
#   - `wharfd -T` on the smallest config prints every defaulted key with
#     the table's default (the dump and the loader use the table too), but
#     for "tls", which that config has not (tests/check_tls.sh dumps one).
set -u
src=${WHARF_SRCDIR:-.}
build=${WHARF_BUILDDIR:-.}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$build/tests/config_schema_tsv" >"$tmp/schema.tsv" || {
    echo "FAIL: tests/config_schema_tsv"; echo "0 passed, 1 failed"; exit 1; }
printf '{"listeners": [{"port": 0, "handler": "echo"}]}' >"$tmp/min.json"
"$build/wharfd" -T -c "$tmp/min.json" >"$tmp/effective.json" || {
    echo "FAIL: wharfd -T"; echo "0 passed, 1 failed"; exit 1; }
# wharf.json(5) is made from docs/wharf.json.5.in in the build directory (the
# configured paths filled in); its entries are the .in file's.
man5=$build/docs/wharf.json.5
[ -f "$man5" ] || man5=$src/docs/wharf.json.5.in
python3 - "$tmp/schema.tsv" "$src/docs/config.md" "$man5" \
    "$tmp/effective.json" <<'PY'
import json, re, sys

schema = {}
for line in open(sys.argv[1]):
    path, typ, lo, hi, default, choices = line.rstrip("\n").split("\t")
    schema[path] = dict(type=typ, range=(int(lo), int(hi)) if lo else None, default=default,
                        choices=choices.split(",") if choices else None)

passed = failed = 0
def check(ok, msg):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL: " + msg)

decoder = json.JSONDecoder()
def first_json(text):
    """The JSON value text starts with, or None."""
    try:
        return decoder.raw_decode(text.strip())[0]
    except ValueError:
        return None

def check_entry(where, path, default_text, range_text):
    """Compares one documented key with the schema.  default_text is what the
    docs give as the default, range_text where they give the range."""
    k = schema[path]
    d = k["default"]
    if d == "required":
        check("required" in default_text, f"{where}: {path}: should say required, says {default_text!r}")
    elif d not in ("computed", "-"):
        check(first_json(default_text) == json.loads(d),
              f"{where}: {path}: default should be {d}, says {default_text!r}")
    if k["range"]:
        m = re.search(r"(-?\d+)\.\.(-?\d+)", range_text)
        got = (int(m.group(1)), int(m.group(2))) if m else None
        check(got == k["range"], f"{where}: {path}: range should be "
              f"{k['range'][0]}..{k['range'][1]}, says {range_text!r}")
    if k["choices"]:
        got = re.findall(r'"([^"]*)"', range_text)
        check(got == k["choices"], f"{where}: {path}: choices should be {k['choices']}, "
              f"says {range_text!r}")

# docs/config.md: tables under "## Top level", "## Listeners", "### timeouts",
# "### buffers"; columns by their header (key, range, default).
sections = {"Top level": "", "Listeners": "listeners[].", "timeouts": "listeners[].timeouts.",
            "buffers": "listeners[].buffers.", "admin": "admin.", "tls": "listeners[].tls."}
seen = set()
prefix = header = None
for line in open(sys.argv[2]):
    line = line.rstrip("\n")
    m = re.match(r"#{2,3} (.*)", line)
    if m:
        prefix, header = sections.get(m.group(1)), None
        continue
    if prefix is None or not line.startswith("|"):
        header = None if not line.startswith("|") else header
        continue
    cells = [c.strip() for c in line.strip("|").split("|")]
    if header is None:
        header = cells
        continue
    if set(cells[0]) <= set("-: "):
        continue
    row = dict(zip(header, cells))
    key = row.get("key", "").strip("`")
    path = prefix + key
    if path not in schema:
        check(False, f"docs/config.md: row for {path}, which the schema does not have")
        continue
    seen.add(path)
    check_entry("docs/config.md", path, row.get("default", "").replace("`", ""),
                row.get("range", "").replace("`", ""))
for path in schema:
    check(path in seen, f"docs/config.md: no row for {path}")

# docs/wharf.json.5: ".TP" then ".BR key [", " key] " (range; default X)"" under
# .SH TOP-LEVEL KEYS and .SH LISTENER KEYS; timeouts and buffers are
# ".B timeouts" followed by an .RS ... .RE block of their keys.
seen = set()
prefix, stack, last, after_tp = None, [], None, False
for line in open(sys.argv[3]):
    line = line.rstrip("\n").replace("\\(dq", '"').replace("\\-", "-")
    if line.startswith(".SH"):
        prefix = {".SH TOP-LEVEL KEYS": "", ".SH LISTENER KEYS": "listeners[]."}.get(line)
        stack = []
        continue
    if prefix is None:
        continue
    if line == ".RS" and last:
        stack.append(prefix)
        # A list's entries are its elements' keys ("sni[].cert").
        list_key = schema.get(prefix + last, {}).get("type") == "list"
        prefix = prefix + last + ("[]." if list_key else ".")
        continue
    if line == ".RE" and stack:
        prefix = stack.pop()
        continue
    m = re.match(r'\.BR? (.*)$', line) if after_tp else None
    after_tp = line == ".TP"
    if not m:
        continue
    text = m.group(1)
    desc = ""
    if ' " (' in text:
        text, desc = text.split(' " (', 1)
    keys = re.findall(r"[a-z][a-z0-9_]*", re.sub(r'"[^"]*"', " ", text))
    last = keys[-1] if keys else None
    for key in keys:
        path = prefix + key
        if path not in schema:
            check(False, f"docs/wharf.json.5: entry for {path}, which the schema does not have")
            continue
        seen.add(path)
        before, _, after = desc.partition("default")
        check_entry("docs/wharf.json.5", path, after or before, before)
for path in schema:
    check(path in seen, f"docs/wharf.json.5: no entry for {path}")

# wharfd -T on the smallest config: every defaulted key has the default.
eff = json.load(open(sys.argv[4]))
def value(obj, path):
    for part in path.split("."):
        if part.endswith("[]"):
            obj = obj[part[:-2]][0]
        else:
            obj = obj[part]
    return obj
for path, k in schema.items():
    # "tls" is absent from the smallest config (plain TCP), and so from -T.
    if path.startswith("listeners[].tls."):
        continue
    if k["default"] not in ("required", "computed", "-"):
        v = value(eff, path)
        check(v == json.loads(k["default"]),
              f"wharfd -T: {path} is {json.dumps(v)}, the schema's default is {k['default']}")

print(f"{len(schema)} keys in the schema; docs/config.md, docs/wharf.json.5 and wharfd -T agree"
      if not failed else f"{len(schema)} keys in the schema")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
