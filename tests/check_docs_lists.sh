#!/bin/sh
# check_docs_lists.sh - the docs name what the build ships and installs.
#
# From Makefile.am: the shipped handlers (handlers/NAME.la in
# pkglib_LTLIBRARIES) and every installed file (programs, library, headers,
# wharf.pc, modules, configs, systemd units, manual pages, docs).  Then:
#   - README.md's "Shipped handlers" table lists exactly those handlers, and
#     docs/embedding.md and every manual page name each of them;
#   - README.md's "Installed files", docs/embedding.md and wharfd(8) name
#     every installed file;
#   - every docs/*.md is installed, and every link between the installed
#     pages (README.md, docs/*.md) reaches an installed page and, with a
#     #fragment, one of its headings;
#   - the manual pages made from .in files (wharfd.8, wharf.json.5) hard-code
#     no /usr/local, and the built ones have every @dir@ replaced by the
#     configured path (the one config/wharfd.service names too).
# Skips (77) without python3.
set -u
src=${WHARF_SRCDIR:-.}
build=${WHARF_BUILDDIR:-.}
command -v python3 >/dev/null || { echo "SKIP: python3 is needed"; exit 77; }
python3 - "$src" "$build" <<'PY'
import os, re, sys

src, build = sys.argv[1], sys.argv[2]
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}")


def read(path):
    with open(os.path.join(src, path)) as f:
        return f.read()


# ---- Makefile.am: variables (with += and continuation lines) -------------
make = {}
text = read("Makefile.am").replace("\\\n", " ")
for line in text.split("\n"):
    m = re.match(r"^([A-Za-z0-9_]+)\s*(\+?=)\s*(.*)$", line)
    if m and not line.startswith("\t"):
        name, op, value = m.groups()
        words = [w for w in value.split() if not w.startswith("$(") and not w.startswith("#")]
        make[name] = (make.get(name, []) if op == "+=" else []) + words


def var(name):
    return make.get(name, [])


handlers = sorted(os.path.basename(w)[:-3] for w in var("pkglib_LTLIBRARIES")
                  if w.startswith("handlers/") and w.endswith(".la"))
check(len(handlers) >= 9, f"Makefile.am: only {handlers} found as shipped handlers")

installed = set()
installed |= {os.path.basename(w) for w in var("bin_PROGRAMS")}
installed |= {os.path.basename(w)[:-3] + ".so" for w in var("lib_LTLIBRARIES")}
installed |= {os.path.basename(w)[:-3] + ".so" for w in var("pkglib_LTLIBRARIES")}
for v in ("include_HEADERS", "pkgconfig_DATA", "dist_wharfconf_DATA", "systemdunit_DATA",
          "man_MANS", "nobase_dist_doc_DATA", "dist_doc_DATA"):
    installed |= {os.path.basename(w) for w in var(v)}
for v in make:
    if re.fullmatch(r"(dist_|nodist_)?man[0-9]?_MANS", v):
        installed |= {os.path.basename(w) for w in var(v)}
docs_installed = var("nobase_dist_doc_DATA") + var("dist_doc_DATA")
check(len(installed) >= 40, f"Makefile.am: only {len(installed)} installed files found")


def prose(text, roff):
    """Text as a reader sees it: roff escapes and fonts removed."""
    if roff:
        text = re.sub(r"\\f[BIRP]", "", text).replace("\\-", "-")
        text = re.sub(r"^\.[A-Z]+ ?", "", text, flags=re.M)
    return text


def names(text, name):
    """Whether `name` appears as a word (echo is not udp_echo, wharf.json is
    not wharf.json.5)."""
    return re.search(r"(?<![\w.-])" + re.escape(name) + r"(?![\w-]|\.\w)", text) is not None


def section(text, title):
    m = re.search(r"^## " + re.escape(title) + r"\s*$(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    return m.group(1) if m else ""


# ---- the shipped handlers --------------------------------------------------
readme = read("README.md")
table = section(readme, "Shipped handlers")
listed = sorted(re.findall(r"^\|\s*`([a-z0-9_]+)`\s*\|", table, flags=re.M))
check(listed == handlers,
      f"README.md, Shipped handlers: lists {listed}; Makefile.am installs {handlers}")
pages = {"docs/embedding.md": False}
for f in sorted(os.listdir(os.path.join(src, "docs"))):
    if re.search(r"\.[1-8](\.in)?$", f) and not os.path.exists(os.path.join(src, "docs", f + ".in")):
        pages["docs/" + f] = True
for page, roff in sorted(pages.items()):
    text = prose(read(page), roff)
    missing = [h for h in handlers if not names(text, h) and not names(text, h + ".so")]
    check(not missing, f"{page}: does not name the shipped handlers {missing}")

# ---- the installed files ---------------------------------------------------
for page, text in (("README.md, Installed files", section(readme, "Installed files")),
                   ("docs/embedding.md", read("docs/embedding.md")),
                   ("docs/wharfd.8.in", prose(read("docs/wharfd.8.in"), True))):
    missing = sorted(f for f in installed if not names(text, f))
    check(not missing, f"{page}: does not name the installed files {missing}")

# ---- the installed docs and their links -------------------------------------
on_disk = sorted("docs/" + f for f in os.listdir(os.path.join(src, "docs")) if f.endswith(".md"))
for f in on_disk + ["README.md"]:
    check(f in docs_installed, f"{f} is not in Makefile.am's nobase_dist_doc_DATA")


def slugs(text):
    """The anchors of a page's headings, as GitHub makes them."""
    out, seen, fence = set(), {}, False
    for line in text.split("\n"):
        if line.startswith("```"):
            fence = not fence
        m = None if fence else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            s = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
            n = seen.get(s, 0)
            seen[s] = n + 1
            out.add(s if n == 0 else f"{s}-{n}")
    return out


texts = {f: read(f) for f in docs_installed if os.path.exists(os.path.join(src, f))}
links = 0
for f, text in sorted(texts.items()):
    body = re.sub(r"```.*?```", "", text, flags=re.S)
    for m in re.finditer(r"\]\(([^)\s]+)\)", body):
        target = m.group(1)
        if re.match(r"[a-z]+:", target):
            continue
        links += 1
        path, _, frag = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(f), path)) if path else f
        if dest not in texts:
            check(False, f"{f}: links to {target}, which is not installed ({dest})")
        elif frag:
            check(frag in slugs(texts[dest]), f"{f}: links to {target}: {dest} has no such heading")
        else:
            passed += 1
check(links > 100, f"only {links} links found in the installed pages")

# ---- the manual pages made at build time ------------------------------------
unit = os.path.join(build, "config/wharfd.service")
config = None
if os.path.exists(unit):
    m = re.search(r"^ExecStart=\S+ -c (\S+)$", open(unit).read(), flags=re.M)
    config = m.group(1) if m else None
check(config is not None, f"{unit}: no ExecStart with -c CONFIG")
for page in ("docs/wharfd.8", "docs/wharf.json.5"):
    check("/usr/local" not in read(page + ".in"), f"{page}.in hard-codes /usr/local")
    built = os.path.join(build, page)
    if not os.path.exists(built):
        check(False, f"{built} was not built")
        continue
    text = open(built).read()
    left = sorted(set(re.findall(r"@[A-Za-z_]+@", text)))
    check(not left, f"{built}: {left} not replaced")
    check(config is None or config in text, f"{built}: does not name the configured {config}")

print(f"{len(handlers)} shipped handlers, {len(installed)} installed files, "
      f"{len(texts)} installed pages with {links} links")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
