#!/usr/bin/python3
"""Stand-in for systemd's notification socket (sd_notify(3), NOTIFY_SOCKET).

    notify_listen.py SOCKET LOG [NODE...]

Binds a unix datagram socket at SOCKET (as systemd does for a Type=notify service), and for
every datagram appends one line to LOG, flushed at once:

    <monotonic seconds> pid=<sender pid> nodes=<NODEs that are character devices now> <fields>

The sender's pid comes from SCM_CREDENTIALS (SO_PASSCRED), which is what systemd checks for
NotifyAccess=main. nodes= is evaluated when the datagram is received, so a READY=1 line with
the node missing means READY came before the node existed. Fields (KEY=VALUE, one per line
in the datagram) are joined with " | ". Runs until killed; creates SOCKET.ready once bound.
"""
import os
import socket
import stat
import struct
import sys
import time


def is_chr(path):
    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False


def main():
    path, log, nodes = sys.argv[1], sys.argv[2], sys.argv[3:]
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    open(path + ".ready", "w").close()
    ucred = struct.calcsize("3i")
    with open(log, "a") as out:
        while True:
            data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(ucred))
            present = ",".join(n for n in nodes if is_chr(n)) or "-"
            pid = 0
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", cdata[:ucred])[0]
            fields = " | ".join(l for l in data.decode("utf-8", "replace").split("\n") if l)
            out.write("%.3f pid=%d nodes=%s %s\n" % (time.monotonic(), pid, present, fields))
            out.flush()


if __name__ == "__main__":
    main()
