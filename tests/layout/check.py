#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Layout rules of the tree (docs/ARCHITECTURE.md "Rules of the tree"), checked on every
`make check`. Run from the top of the checkout: `make layout`. Exit 0 when all hold.

1. No product .c file over 1,200 lines.
2. No function over 120 lines unless the comment just above it says why ("over 120 lines").
3. Binaries contain only what they use: espstmd has no HTTP API, AN3155 master, flash job or
   bridge session symbols; the espstm tool has no bridge session symbols.
4. No source refers to anything outside the repository or to issue numbers.
5. Include paths are enforced: a core file including a libuv, libfuse or socket header, and a
   daemon file including a bridge header, fail to compile with their folder's flags (the
   flags come from the Makefile through the environment).
"""
import os, re, subprocess, sys, tempfile

PRODUCT_DIRS = ["firmware/core", "firmware/crypto", "firmware/posix", "firmware/esp-idf/main", "daemon", "cli",
                "common", "stm32sim"]
SOURCE_DIRS = PRODUCT_DIRS + ["tests", "mk", "scripts", "systemd", "conf", "man", "docs"]
FILE_MAX, FUNC_MAX = 1200, 120
failures = []


def fail(msg):
    failures.append(msg)
    print("layout: FAIL " + msg)


def tracked(dirs, exts=None):
    out = subprocess.run(["git", "ls-files", "--"] + dirs, capture_output=True, text=True,
                         check=True).stdout.split()
    return [f for f in out if os.path.isfile(f) and (exts is None or f.endswith(exts))]


def functions(path):
    """(name, first line, body lines, comment above) for each function definition, in the
    tree's clang-format style (Linux braces: the body opens with '{' alone at column 0)."""
    lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
    i = 0
    while i < len(lines):
        if lines[i] == "{" and i > 0:
            j = i - 1  # the signature: back to the line that starts at column 0
            while j > 0 and (lines[j].startswith((" ", "\t")) or lines[j] == ""):
                j -= 1
            m = re.search(r"(\w+)\s*\(", lines[j])
            k = i + 1
            while k < len(lines) and lines[k] != "}":
                k += 1
            c = j - 1  # the comment block directly above the signature
            comment = []
            while c >= 0 and (lines[c].startswith(("/*", " *", "//")) or lines[c].endswith("*/")):
                comment.insert(0, lines[c])
                c -= 1
            if m:
                yield m.group(1), j + 1, k - i - 1, "\n".join(comment)
            i = k
        i += 1


def check_sizes():
    for f in tracked(PRODUCT_DIRS, (".c",)):
        n = sum(1 for _ in open(f, encoding="utf-8", errors="replace"))
        if n > FILE_MAX:
            fail(f"{f}: {n} lines (at most {FILE_MAX})")
        for name, line, body, comment in functions(f):
            if body > FUNC_MAX and "over 120 lines" not in comment:
                fail(f"{f}:{line}: {name}() is {body} lines (at most {FUNC_MAX} unless its "
                     "comment says why it is over 120 lines)")


def check_symbols(build):
    rules = [("espstmd", r"^(http_api_|stm32_isp_|flash_job_|bridge_)"),
             ("espstm", r"^bridge_")]
    for binary, pattern in rules:
        path = os.path.join(build, binary)
        if not os.path.exists(path):
            fail(f"{path} is not built (make all first)")
            continue
        syms = subprocess.run(["nm", "--defined-only", path], capture_output=True, text=True,
                              check=True).stdout.split("\n")
        bad = sorted({s.split()[-1] for s in syms if len(s.split()) == 3
                      and re.search(pattern, s.split()[-1])})
        if bad:
            fail(f"{binary} contains {len(bad)} symbols it must not use: {' '.join(bad[:8])}")


def check_references():
    pat = re.compile(r"shared/|[Ii]ssue [0-9]")
    for f in tracked(SOURCE_DIRS + ["Makefile", "README.md", "CONTRIBUTING.md"]):
        if f == "tests/layout/check.py":
            continue
        for n, text in enumerate(open(f, encoding="utf-8", errors="replace"), 1):
            if pat.search(text):
                fail(f"{f}:{n}: refers outside the repository or to an issue: {text.strip()[:90]}")


def compiles(flags, source):
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "probe.c")
        open(src, "w").write(source)
        r = subprocess.run([os.environ.get("CC", "cc"), "-std=c11", "-D_GNU_SOURCE", "-fsyntax-only"]
                           + flags.split() + [src], capture_output=True, text=True)
        return r.returncode == 0


def check_includes():
    core = os.environ.get("CORE_CPPFLAGS")
    daemon = os.environ.get("DAEMON_CPPFLAGS")
    if not core or not daemon:
        fail("CORE_CPPFLAGS / DAEMON_CPPFLAGS not set (run through `make layout`)")
        return
    if not compiles(core, '#include "rfc2217.h"\n#include <string.h>\nint x;\n'):
        fail("the probe of firmware/core's flags does not compile a plain core file")
    for h in ["uv.h", "fuse_lowlevel.h", "fuse3/fuse_lowlevel.h", "cuse_lowlevel.h",
              "sys/socket.h", "netinet/in.h", "unistd.h"]:
        if compiles(core, f"#include <{h}>\nint x;\n"):
            fail(f"a firmware/core file that includes <{h}> compiles")
    if not compiles(daemon, '#include "tty.h"\nint x;\n'):
        fail("the probe of daemon's flags does not compile a plain daemon file")
    for h in ["http_posix.h", "stm32sim.h", "cli_flash.h"]:
        if compiles(daemon, f'#include "{h}"\nint x;\n'):
            fail(f'a daemon file that includes "{h}" compiles')


def main():
    build = os.environ.get("ESPSTM_BUILD", "build")
    check_sizes()
    check_symbols(build)
    check_references()
    check_includes()
    if failures:
        print(f"layout: {len(failures)} rule(s) broken")
        return 1
    print("layout: files <= 1200 lines, functions <= 120 lines, binaries' symbols, "
          "no outside references, include paths enforced: all hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
