#!/bin/sh
# check_api_doc.sh - the handler API reference matches the headers.
#
# docs/api.md has one entry, a "### `NAME`" heading, for every function,
# type (typedef, struct), enumeration and macro that wharf.h declares, and no
# entry for anything it does not declare (a `wharf_*` function of another
# header, a removed call).  Each function's entry shows the header's
# prototype (whitespace aside, attributes left out), and each enumerator
# appears on the page.  docs/testkit.md, the test kit's reference, has a row
# for every function of wharf_test.h and names no wharf_test_* function the
# header lacks.
#
# The headers are found under $WHARF_SRCDIR in framework/include/ (or
# framework/, where they were before that folder).  Skips (77) without
# python3.
set -u
src=${WHARF_SRCDIR:-.}
command -v python3 >/dev/null || { echo "SKIP: python3 is needed"; exit 77; }
if [ -e "$src/framework/include/wharf.h" ]; then
    inc=$src/framework/include
else
    inc=$src/framework
fi
python3 - "$inc/wharf.h" "$inc/wharf_test.h" "$src/docs/api.md" "$src/docs/testkit.md" <<'PY'
import re, sys

header, test_header, api_doc, kit_doc = sys.argv[1:5]
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}")


def norm(text):
    """One line, single spaces, no space inside parentheses or before , ;"""
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\(\s+", "(", text)
    text = re.sub(r"\s+([),;])", r"\1", text)
    return text


def uncommented(path):
    return re.sub(r"/\*.*?\*/|//[^\n]*", " ", open(path).read(), flags=re.S)


def code_of(path):
    """The header without comments and without its C++-only parts."""
    return re.sub(r"#\s*ifdef\s+__cplusplus\b.*?#\s*endif", " ", uncommented(path),
                  flags=re.S)


def functions(code):
    """name -> normalised prototype of every function declared at file scope."""
    body = re.sub(r"^\s*#.*?(?<!\\)$", "", code, flags=re.M | re.S)
    # Drop struct/enum bodies: their members (function pointers) are not
    # declarations of functions.
    while True:
        stripped = re.sub(r"\{[^{}]*\}", "{}", body)
        if stripped == body:
            break
        body = stripped
    out = {}
    for decl in body.split(";"):
        decl = re.sub(r"__attribute__\s*\(\((?:[^()]|\([^()]*\))*\)\)", "", decl)
        m = re.search(r"\b(wharf_\w+)\s*\(", decl)
        if m and not re.search(r"\btypedef\b|\{", decl):
            out[m.group(1)] = norm(decl) + ";"
    return out


code = code_of(header)
funcs = functions(code)
declared = set(funcs)
declared |= set(re.findall(r"typedef\s+struct\s+\w+\s+(\w+)\s*;", code))
declared |= {"struct " + n for n in re.findall(r"\bstruct\s+(wharf_\w+)\s*\{", code)}
enums = re.findall(r"\benum\s+(wharf_\w+)\s*\{([^}]*)\}", code)
declared |= {"enum " + n for n, _ in enums}
raw = uncommented(header)
guard = re.search(r"#ifndef\s+(\w+)", raw).group(1)
declared |= {n for n in re.findall(r"^\s*#\s*define\s+(\w+)", raw, flags=re.M) if n != guard}
enumerators = [e for _, body in enums for e in re.findall(r"\b(WHARF_\w+)", body)]

check(len(funcs) >= 50, f"{header}: only {len(funcs)} functions found; the parser lost them")

doc = open(api_doc).read()
entries = re.findall(r"^### `([^`]+)`\s*$", doc, flags=re.M)
seen = set()
for e in entries:
    check(e not in seen, f"docs/api.md: two entries for `{e}`")
    seen.add(e)
for name in sorted(declared - seen):
    check(False, f"docs/api.md: no entry for `{name}`, which wharf.h declares")
for name in sorted(seen - declared):
    check(False, f"docs/api.md: an entry for `{name}`, which wharf.h does not declare")
passed += len(declared & seen)

# Each function entry shows the header's prototype.
sections = re.split(r"^### ", doc, flags=re.M)
section_of = {}
for sec in sections[1:]:
    m = re.match(r"`([^`]+)`", sec)
    if m:
        section_of[m.group(1)] = sec
for name, proto in sorted(funcs.items()):
    sec = section_of.get(name)
    if sec is None:
        continue
    blocks = re.findall(r"```c\n(.*?)```", sec, flags=re.S)
    shown = [norm(b) for b in blocks]
    check(proto in shown, f"docs/api.md: `{name}` shows another prototype than wharf.h's: {proto}")

for e in enumerators:
    check(re.search(r"\b" + e + r"\b", doc) is not None,
          f"docs/api.md: the enumerator {e} is never named")

# Functions named anywhere on the page exist (a renamed call left in the text).
named = set(re.findall(r"\b(wharf_[a-z0-9_]+)\(", doc))
other = set(functions(code_of(test_header)))
unknown = {n for n in named if n not in funcs and n not in other and not n.startswith("wharf_server_")}
check(not unknown, f"docs/api.md: calls no header declares: {sorted(unknown)}")

# The test kit's reference.
kit_funcs = set(functions(code_of(test_header)))
check(len(kit_funcs) >= 10, f"{test_header}: only {len(kit_funcs)} functions found")
kit = open(kit_doc).read()
rows = set(re.findall(r"^\|\s*`(wharf_test_\w+)\(", kit, flags=re.M))
for name in sorted(kit_funcs - rows):
    check(False, f"docs/testkit.md: no row for `{name}`, which wharf_test.h declares")
mentioned = set(re.findall(r"\b(wharf_test_\w+)\(", kit))
for name in sorted(mentioned - kit_funcs):
    check(False, f"docs/testkit.md: names `{name}`, which wharf_test.h does not declare")
passed += len(kit_funcs & rows)

print(f"{len(entries)} entries in docs/api.md for {len(declared)} declarations of wharf.h "
      f"({len(funcs)} functions); {len(rows)} rows in docs/testkit.md for {len(kit_funcs)} "
      f"functions of wharf_test.h")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
