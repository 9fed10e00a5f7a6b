#!/usr/bin/python3
"""Run a command under the seccomp part of a systemd unit's sandbox, without systemd.

    sandbox.py UNIT_FILE [--print] [--also NAME,...] -- COMMAND [ARG...]

Reads from UNIT_FILE ([Service] section) and applies with libseccomp (ctypes, libseccomp.so.2)
before exec'ing COMMAND, the way systemd does (systemd.exec(5)):
  SystemCallFilter=        allow list (first line without ~) minus every ~ line; groups
                           (@system-service, ...) expanded as `systemd-analyze syscall-filter` lists them
  SystemCallErrorNumber=   what a filtered call returns (default: the process is killed)
  RestrictAddressFamilies= socket() only with the listed families (others: EAFNOSUPPORT)
  MemoryDenyWriteExecute=  no mmap() with PROT_WRITE|PROT_EXEC, no mprotect() to PROT_EXEC
Capabilities and no_new_privs are left to the caller (setpriv); file system, device and
/proc options are not emulated here (tests/service/strace_check.py reads an strace log for
those). --print lists the allowed system calls and exits. --also adds system calls to the
allow list: the e2e scenario runs strace between this filter and the daemon, and strace
needs ptrace and friends (strace_check.py still holds the daemon's own calls to the unit's
list).

Used by the e2e scenario `service` (tests/e2e/scenarios/service.sh) to run espstmd under the
filters of systemd/espstmd.service inside the test VM, which has no systemd.
"""
import ctypes
import errno
import os
import subprocess
import sys

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ = 4
SCMP_CMP_MASKED_EQ = 7
PROT_WRITE, PROT_EXEC = 0x2, 0x4
FAMILIES = {"AF_UNIX": 1, "AF_LOCAL": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16, "AF_PACKET": 17}


def act_errno(e):
    return 0x00050000 | (e & 0xFFFF)


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def service_settings(path):
    """Return {key: [values in file order]} of the [Service] section."""
    out, section = {}, None
    for raw in open(path):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]" and "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


_groups = None


def expand(name):
    """A system call name or @group -> set of names (groups as this systemd defines them:
    `systemd-analyze syscall-filter`, read once, nested groups expanded)."""
    global _groups
    if not name.startswith("@"):
        return {name}
    if _groups is None:
        text = subprocess.run(["systemd-analyze", "syscall-filter"], check=True,
                              capture_output=True, text=True).stdout
        _groups, cur = {}, None
        for line in text.splitlines():
            if line.startswith("@"):
                cur = _groups.setdefault(line.split()[0], [])
            elif line.startswith((" ", "\t")) and cur is not None:
                tok = line.strip()
                if tok and not tok.startswith("#"):
                    cur.append(tok)
            else:
                cur = None
    if name not in _groups:
        raise SystemExit("sandbox.py: unknown system call group %s" % name)
    out = set()
    for tok in _groups[name]:
        out |= expand(tok)
    return out


def allowed_syscalls(settings):
    """The effective allow list of SystemCallFilter= (None: no filter)."""
    allow = None
    for value in settings.get("SystemCallFilter", []):
        deny = value.startswith("~")
        names = set()
        for tok in value.lstrip("~").split():
            names |= expand(tok)
        if deny:
            if allow is None:
                raise SystemExit("sandbox.py: deny-list filters without an allow list are not supported")
            allow -= names
        elif allow is None:
            allow = names
        else:
            allow |= names
    return allow


def main():
    if "--" not in sys.argv[2:]:
        raise SystemExit(__doc__)
    sep = sys.argv.index("--")
    unit, opts, cmd = sys.argv[1], sys.argv[2:sep], sys.argv[sep + 1:]
    s = service_settings(unit)
    allow = allowed_syscalls(s)
    if allow is None:
        raise SystemExit("sandbox.py: %s has no SystemCallFilter=" % unit)
    for i, o in enumerate(opts):
        if o == "--also" and i + 1 < len(opts):
            allow |= set(opts[i + 1].split(","))
    if "--print" in opts:
        print("\n".join(sorted(allow)))
        return
    families = None
    if "RestrictAddressFamilies" in s:
        families = {FAMILIES[f] for v in s["RestrictAddressFamilies"] for f in v.split()}
    mdwe = s.get("MemoryDenyWriteExecute", ["no"])[-1] in ("yes", "true", "1", "on")
    en = s.get("SystemCallErrorNumber", [None])[-1]
    default = act_errno(getattr(errno, en)) if en else SCMP_ACT_KILL_PROCESS

    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise SystemExit("sandbox.py: seccomp_init failed")

    def rule(action, name, *cmps):
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:
            return  # not a system call of this architecture
        arr = (ArgCmp * max(1, len(cmps)))(*cmps)
        r = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr)
        if r < 0:
            raise SystemExit("sandbox.py: rule for %s: %s" % (name, os.strerror(-r)))

    special = set()
    if families is not None:
        special.add("socket")
        for fam in sorted(families):
            rule(SCMP_ACT_ALLOW, "socket", ArgCmp(0, SCMP_CMP_EQ, fam, 0))
        # systemd answers other families with EAFNOSUPPORT (so that libraries fall back)
        for fam in range(0, 46):
            if fam not in families:
                rule(act_errno(errno.EAFNOSUPPORT), "socket", ArgCmp(0, SCMP_CMP_EQ, fam, 0))
    if mdwe:
        special |= {"mmap", "mprotect", "pkey_mprotect"}
        wx = PROT_WRITE | PROT_EXEC
        for ok in (0, PROT_WRITE, PROT_EXEC):
            rule(SCMP_ACT_ALLOW, "mmap", ArgCmp(2, SCMP_CMP_MASKED_EQ, wx, ok))
        for name in ("mprotect", "pkey_mprotect"):
            rule(SCMP_ACT_ALLOW, name, ArgCmp(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))
    for name in sorted(allow - special):
        rule(SCMP_ACT_ALLOW, name)
    r = lib.seccomp_load(ctx)
    if r < 0:
        raise SystemExit("sandbox.py: seccomp_load: %s" % os.strerror(-r))
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
