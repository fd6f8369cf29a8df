"""A guard loaded into every Python process of a test run (driver, Ray's own processes, Ray workers) through
PYTHONPATH: outbound network connections and writes to the intake fail, and each attempt is recorded.

It uses Python's audit hooks (PEP 578), which see every ``socket.connect``, ``socket.getaddrinfo`` and ``open`` made
from Python, whichever library makes it. Loopback and this host's own addresses stay allowed: Ray's processes talk
to each other through them. Set ``BWC_GUARD_LOG`` (where attempts are written, one JSON object per line) and
``BWC_GUARD_INTAKE`` (the folder of originals) to arm it; each armed process adds its command line to
``BWC_GUARD_LOG.armed``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
from typing import Any

LOG = os.environ.get("BWC_GUARD_LOG")
INTAKE = os.path.abspath(os.environ.get("BWC_GUARD_INTAKE", "/nonexistent")) + os.sep
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_local_cache: dict[str, bool] = {}


def _is_local(host: Any) -> bool:
    """Loopback, this host's names, or an address of one of this host's interfaces (one it can bind)."""
    host = host.decode() if isinstance(host, bytes) else host
    if host in (None, "", "localhost", "0.0.0.0", "::") or host in (socket.gethostname(), socket.getfqdn()):
        return True
    if host not in _local_cache:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            _local_cache[host] = False  # any other name would need a DNS look-up
        else:
            family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind((host, 0))
                    _local_cache[host] = True
                except OSError:
                    _local_cache[host] = address.is_loopback
    return _local_cache[host]


def _record(kind: str, what: str) -> None:
    with open(LOG, "a", encoding="utf-8") as log:  # type: ignore[arg-type]
        log.write(json.dumps({"pid": os.getpid(), "kind": kind, "what": what, "argv": sys.argv[:2]}) + "\n")


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect":
        sock, address = args
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            _record("connect", repr(address))
            raise OSError(101, "Network is unreachable (bwc test guard)")
    elif event == "socket.getaddrinfo":
        if not _is_local(args[0]):
            _record("getaddrinfo", repr(args[:2]))
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (bwc test guard)")
    elif event == "open" and isinstance(args[0], str | bytes | os.PathLike):
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & WRITE_FLAGS
        )
        if writing and os.path.abspath(os.fsdecode(path)).startswith(INTAKE):
            _record("write", os.fsdecode(path))
            raise PermissionError(13, "an original opened for writing (bwc test guard)", os.fsdecode(path))


if LOG:
    sys.addaudithook(_hook)
    with open(f"{LOG}.armed", "a", encoding="utf-8") as armed, open("/proc/self/cmdline", "rb") as cmdline:
        armed.write(cmdline.read().replace(b"\0", b" ").decode("utf-8", "replace").strip() + "\n")
