#!/bin/bash
# Check user/runtime/python/linetable.c against CPython's own line numbers: for the newest pyenv CPython of
# each minor 3.8-3.13 and for Debian's /usr/bin/python3, dump the raw line tables of every
# code object in a few stdlib modules and a synthetic module built to hit the corner cases
# (multi-line expressions, big line jumps both ways, long lines, a huge co_firstlineno),
# with CPython's line for every code unit offset, and decode them all in C: exact agreement.
#
# usage: tests/check_linetable.sh      (CC and PYENV_ROOT are honoured)
set -euo pipefail
cd "$(dirname "$0")/.."

CC=${CC:-cc}
root=${PYENV_ROOT:-$(pyenv root)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Sanitizers too: the decoder must not read past a table even when the dump is fine.
"$CC" -std=gnu11 -Wall -Wextra -Werror -O1 -g -fsanitize=address,undefined \
	-fno-sanitize-recover=all -o "$tmp/linetable_check" tests/linetable_check.c user/runtime/python/linetable.c

# The expected line is PyCode_Addr2Line()'s, called through ctypes, at every 2-byte offset
# and two past the end. It is cross-checked against the Python-level views, which are built
# differently: co_lines() (3.10+), co_positions() (3.11+), and co_lnotab read by
# dis.findlinestarts() (3.8/3.9).
cat >"$tmp/dump.py" <<'EOF'
import ctypes, dis, importlib, sys

minor = sys.version_info[1]
addr2line = ctypes.pythonapi.PyCode_Addr2Line
addr2line.argtypes = [ctypes.py_object, ctypes.c_int]
addr2line.restype = ctypes.c_int
CodeType = type((lambda: 0).__code__)

SYNTHETIC = '''
import os

def multiline(a, b):
    x = (a +
         b *
         a)
    y = os.path.join(
        "a",
        str(x),
        "b" if a else
        "c",
    )
    return [
        v * 2
        for v in range(x)
        if v % 3
    ], {
        "k": y,
        "j": (lambda q:
              q + 1)(a),
    }

def jumps(n):
    total = 0
''' + "\n" * 300 + '''
    for i in range(n):
        total += i
''' + "\n" * 70000 + '''
    while total > 0:
        total -= 7
        if total % 5:
            continue
    return total

def long_line(a):
    return ''' + " + ".join("a[%d] * (a[%d] - %d)" % (i, i + 1, i) for i in range(150)) + '''

def handlers(path):
    try:
        with open(path) as f:
            data = f.read()
    except (OSError, ValueError) as e:
        data = str(e)
    finally:
        path = None
    assert data, (
        "empty")
    return data

def gen(n):
    for i in range(n):
        yield i
        yield from range(
            i)

async def coro(q):
    async with q as r:
        await r
    async for v in q:
        await v

def closure(a):
    def inner(b):
        return a + b
    return inner

class Klass:
    attr = [1,
            2]

    @staticmethod
    def method(
            x,
            y=3):
        return x * y
'''

MATCH = '''
def matcher(p):
    match p:
        case {"x": x,
              "y": y}:
            return x + y
        case [a, *rest] if a:
            return a
        case _:
            return None
'''


def codes(co):
    yield co
    for c in co.co_consts:
        if isinstance(c, CodeType):
            yield from codes(c)


def python_lines(co):
    # offset -> line by the Python-level API, for offsets inside co_code.
    n = len(co.co_code)
    lines = {}
    if minor >= 10:
        for start, end, line in co.co_lines():
            for off in range(start, end, 2):
                lines[off] = -1 if line is None else line
        if minor >= 11:
            for i, pos in enumerate(co.co_positions()):
                line = -1 if pos[0] is None else pos[0]
                if lines.get(2 * i, -1) != line:
                    sys.exit("dump: %s offset %d: co_lines %s, co_positions %s"
                             % (co.co_qualname, 2 * i, lines.get(2 * i), line))
    else:
        starts = list(dis.findlinestarts(co))
        for off in range(0, n, 2):
            lines[off] = [line for start, line in starts if start <= off][-1]
    return lines


def dump(out, co, label):
    table = co.co_lnotab if minor < 10 else co.co_linetable
    out.write("C %d x%s %s\n" % (co.co_firstlineno, table.hex(), label))
    seen = python_lines(co)
    n = len(co.co_code)
    for off in range(0, n + 4, 2):
        line = addr2line(co, off)
        if off < n and seen.get(off, -1) != line:
            sys.exit("dump: %s offset %d: PyCode_Addr2Line %d, Python API %s"
                     % (label, off, line, seen.get(off)))
        out.write("O %d %d\n" % (off, line))


sources = []
for name in ("json.decoder", "asyncio.base_events"):
    path = importlib.import_module(name).__file__
    with open(path) as f:
        sources.append((f.read(), path))
sources.append(("\n" * 99999 + SYNTHETIC, "<synthetic>"))
if minor >= 10:
    sources.append((MATCH, "<match>"))

with open(sys.argv[1], "w") as out:
    out.write("V %d\n" % minor)
    for source, filename in sources:
        for co in codes(compile(source, filename, "exec")):
            dump(out, co, "%s:%s" % (filename, getattr(co, "co_qualname", co.co_name)))
EOF

# In CI (CI=true, set by .ci/run) a missing interpreter fails the check instead of skipping it.
missing=0
pythons=()
for minor in 8 9 10 11 12 13; do
	newest=$(ls -d "$root/versions/3.$minor".* 2>/dev/null | grep -E "/3\.$minor\.[0-9]+$" |
		sort -V | tail -n1 || true)
	if [ -z "$newest" ]; then
		echo "SKIP CPython 3.$minor: not installed under $root/versions (pyenv install 3.$minor)"
		missing=1
		continue
	fi
	pythons+=("$newest/bin/python3.$minor")
done
if [ -x /usr/bin/python3 ]; then
	pythons+=(/usr/bin/python3)
else
	echo "SKIP /usr/bin/python3: not installed"
	missing=1
fi
if [ ${#pythons[@]} -eq 0 ]; then
	echo "check_linetable: no interpreter to check against" >&2
	exit 1
fi

failed=0
if [ "$missing" = 1 ] && [ "${CI:-}" = true ]; then
	echo "check_linetable: CI=true and an interpreter is missing" >&2
	failed=1
fi
for py in "${pythons[@]}"; do
	echo "== $py ($("$py" -c 'import platform; print(platform.python_version())'))"
	if ! "$py" "$tmp/dump.py" "$tmp/dump" || ! "$tmp/linetable_check" "$tmp/dump"; then
		failed=1
	fi
done
exit $failed
