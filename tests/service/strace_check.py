#!/usr/bin/python3
"""Check an strace log of a daemon against a systemd unit's sandbox.

    strace_check.py STRACE_LOG UNIT_FILE PROGRAM

STRACE_LOG is `strace -f -qq -s 512 -o STRACE_LOG ...` output of a run that exec'd PROGRAM
(possibly through wrappers: only what follows PROGRAM's successful execve counts, in that
process and the threads/processes it started). Checks, as systemd would enforce them
(systemd.exec(5)):
  SystemCallFilter=         every system call made is in the allow list (sandbox.py's
                            expansion); calls that failed with EPERM are named
  RestrictAddressFamilies=  socket() only with the listed families
  DevicePolicy=closed       only the DeviceAllow= nodes and the pseudo devices are opened
  ProtectSystem=strict      nothing written (open for writing, create, remove, rename,
                            chmod, bind of a unix socket) outside /run/<RuntimeDirectory=>
                            (and /tmp, /var/tmp with PrivateTmp=yes)
  ProtectHome=yes           nothing under /home, /root, /run/user opened
  ProcSubset=pid            nothing in /proc but /proc/self, /proc/thread-self, /proc/PID
Prints what it saw (system calls, devices, sockets, writes) and one "VIOLATION ..." line per
problem; exits 1 if there is any.
"""
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sandbox import allowed_syscalls, service_settings  # noqa: E402

PSEUDO = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
          "/dev/ptmx"}
LINE = re.compile(r"^(\d+)\s+(?:<\.\.\. (\w+) resumed>(.*)|(\w+)\((.*))$")
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")
# calls that change the paths they name (every quoted path argument; for symlink only the
# link, not its target)
PATH_CALLS = {"mkdir", "mkdirat", "unlink", "unlinkat", "rmdir", "rename", "renameat",
              "renameat2", "symlink", "symlinkat", "link", "linkat", "chmod", "fchmodat",
              "chown", "lchown", "fchownat", "truncate", "mknod", "mknodat", "utimensat"}


def strings(args):
    return re.findall(r'"((?:[^"\\]|\\.)*)"', args)


def main():
    log, unit, program = sys.argv[1:4]
    s = service_settings(unit)
    allow = allowed_syscalls(s) or set()
    families = {f for v in s.get("RestrictAddressFamilies", []) for f in v.split()}
    devices = set(PSEUDO)
    for v in s.get("DeviceAllow", []):
        if v:
            devices.add(v.split()[0])
        else:  # an empty assignment resets the list (systemd.resource-control(5))
            devices = set(PSEUDO)
    rw_dirs = ["/run/" + d for v in s.get("RuntimeDirectory", []) for d in v.split()]
    if s.get("PrivateTmp", ["no"])[-1] in ("yes", "true", "1", "on"):
        rw_dirs += ["/tmp", "/var/tmp"]  # private, but writable

    lines = open(log, errors="replace").read().splitlines()
    start = None
    for i, l in enumerate(lines):
        m = LINE.match(l)
        if m and m.group(4) == "execve" and '"%s"' % program in l and l.rstrip().endswith("= 0"):
            start = i
    if start is None:
        print("VIOLATION no successful execve of %s in %s" % (program, log))
        return 1

    used, eperm, socks, devs, writes, bad = set(), [], set(), set(), set(), []
    for l in lines[start + 1:]:
        m = LINE.match(l)
        if not m:
            continue
        name = m.group(4) or m.group(2)
        args = m.group(5) if m.group(4) else m.group(3)
        used.add(name)
        if re.search(r"= -1 EPERM", l):
            eperm.append(l.strip())
        if name == "socket" and m.group(4):
            fam = args.split(",")[0].strip()
            socks.add(fam)
        if name in ("open", "openat", "openat2", "creat") and m.group(4):
            st = strings(args)
            if not st:
                continue
            path = st[0]
            flags = args.split('",', 1)[1] if '",' in args else ""
            writing = name == "creat" or any(f in flags for f in WRITE_FLAGS)
            if path.startswith("/dev/"):
                devs.add(path)
                if path not in devices and not path.startswith("/dev/pts/"):
                    bad.append("DevicePolicy=closed: opened %s (%s)" % (path, l.strip()[:160]))
                continue
            if writing:
                writes.add(path)
            check_path(path, writing, rw_dirs, bad, l)
        elif name in PATH_CALLS and m.group(4):
            st = strings(args)
            if name in ("symlink", "symlinkat"):
                st = st[1:]
            for path in st:
                writes.add(path)
                check_path(path, True, rw_dirs, bad, l)
        elif name == "bind" and m.group(4) and "AF_UNIX" in args:
            st = strings(args)
            if st and st[0] and not st[0].startswith("@"):
                writes.add(st[0])
                check_path(st[0], True, rw_dirs, bad, l)

    not_allowed = sorted(used - allow - {"exit", "exit_group", "rt_sigreturn", "execve"})
    for n in not_allowed:
        bad.append("SystemCallFilter=: %s is not in the allow list" % n)
    for f in sorted(socks):
        if f not in families:
            bad.append("RestrictAddressFamilies=: socket(%s)" % f)
    print("system calls (%d): %s" % (len(used), " ".join(sorted(used))))
    print("failed with EPERM: %s" % (len(eperm) or "none"))
    for l in eperm[:10]:
        print("  " + l[:200])
    print("socket families: %s" % (" ".join(sorted(socks)) or "none"))
    print("devices opened: %s" % (" ".join(sorted(devs)) or "none"))
    print("paths written: %s" % (" ".join(sorted(writes)) or "none"))
    for b in bad:
        print("VIOLATION " + b)
    return 1 if bad else 0


def check_path(path, writing, rw_dirs, bad, line):
    if not path.startswith("/"):
        if writing:
            bad.append("relative path written: %s (%s)" % (path, line.strip()[:160]))
        return
    norm = os.path.normpath(path)
    if norm.startswith(("/home/", "/root/", "/run/user/")) or norm in ("/home", "/root"):
        bad.append("ProtectHome=yes: %s (%s)" % (path, line.strip()[:160]))
    if norm.startswith("/proc/") and not re.match(r"^/proc/(self|thread-self|\d+)(/|$)", norm):
        bad.append("ProcSubset=pid: %s (%s)" % (path, line.strip()[:160]))
    if writing and not any(norm == d or norm.startswith(d + "/") for d in rw_dirs):
        bad.append("ProtectSystem=strict: writes %s (%s)" % (path, line.strip()[:160]))


if __name__ == "__main__":
    sys.exit(main())
