"""A real multi-node Ray cluster on one machine, on loopback: a head and worker nodes, each a ``ray start --block``.

For tests and for trying a cluster layout before buying it. Every node runs in its own process session, so one node
can be killed (all of its processes, like a machine losing power) and the whole cluster stopped by the pids this
module started — never ``ray stop``, which stops every Ray process of the user, other people's clusters included.

Token authentication is on: one random token, and ``RAY_AUTH_MODE=token`` set identically for the head, the workers
and (through :meth:`LocalCluster.driver_env`) the driver.

Example
-------
>>> with LocalCluster(workers=[WorkerSpec(resources={"bwc_speech": 1})]) as cluster:   # doctest: +SKIP
...     subprocess.run(["bwc", "run", "...", "--address", cluster.address], env=cluster.driver_env())
>>> python -m cluster.local --workers 2       # a cluster to try by hand; Ctrl-C stops it   # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Ray turns 127.0.0.1 into the host's network address; other loopback addresses it keeps. Each node gets its own,
# so nodes are told apart by address as on a real network, and no traffic leaves the loopback interface.
HEAD_ADDRESS = "127.0.0.2"
GIB = 1024**3
START_TIMEOUT_S = 120.0  # a node that has not joined by then failed to start


@dataclass(frozen=True)
class WorkerSpec:
    """One worker node."""

    cpus: float = 1  # logical CPUs the node offers
    gpus: int = 0  # GPUs the node offers
    resources: dict[str, float] = field(default_factory=dict)  # custom Ray resources, e.g. {"bwc_speech": 1}
    memory_bytes: int = 2 * GIB  # memory the node offers to tasks and actors (two nodes must not each claim all)
    object_store_bytes: int = 256 * 1024**2  # shared-memory object store


@dataclass
class Node:
    """A started node: its ``ray start --block`` process leads a session holding all of the node's processes."""

    name: str  # "head", "worker-1", ...
    process: subprocess.Popen[bytes]  # the `ray start --block` process
    log_path: Path  # its stdout and stderr

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL every process of the node at once (raylet, object store, workers): a machine lost."""
        _kill_session(self.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


class LocalCluster:
    """Start a head and worker nodes on loopback; stop exactly them on exit.

    Parameters
    ----------
    workers
        One :class:`WorkerSpec` per worker node.
    head_cpus
        Logical CPUs of the head (the driver's node: ingest and scoring can run there).
    head_resources
        Custom resources of the head.
    token
        The cluster's auth token; random when not given.
    """

    def __init__(
        self,
        workers: Sequence[WorkerSpec] = (WorkerSpec(), WorkerSpec()),
        head_cpus: float = 1,
        head_resources: dict[str, float] | None = None,
        token: str | None = None,
    ) -> None:
        self.worker_specs = list(workers)
        self.head_spec = WorkerSpec(cpus=head_cpus, resources=head_resources or {})
        self.token = token or secrets.token_hex(16)
        # Short: Ray's Unix sockets live under it, and socket paths are limited to about 100 characters.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="bwcray-", dir="/tmp"))
        self.port = _free_port()
        self.nodes: list[Node] = []

    @property
    def address(self) -> str:
        return f"{HEAD_ADDRESS}:{self.port}"

    @property
    def head(self) -> Node:
        return self.nodes[0]

    @property
    def workers(self) -> list[Node]:
        return self.nodes[1:]

    def node_env(self) -> dict[str, str]:
        """Environment of every node and of the driver: the same auth mode and token everywhere."""
        env = dict(os.environ)
        env.update(
            {
                "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN": self.token,
                "RAY_USAGE_STATS_ENABLED": "0",
                "HF_HUB_OFFLINE": "1",
                "PYANNOTE_METRICS_ENABLED": "0",
            }
        )
        return env

    def driver_env(self) -> dict[str, str]:
        """Environment for a driver (``bwc run --address``) joining this cluster."""
        return self.node_env()

    def start(self) -> LocalCluster:
        try:
            self.nodes.append(self._start_node("head", self.head_spec, head=True))
            self.wait_for_nodes(1)  # workers that join a head still starting time out on a busy machine
            for index, spec in enumerate(self.worker_specs, start=1):
                self.nodes.append(self._start_node(f"worker-{index}", spec, head=False))
            self.wait_for_nodes(len(self.nodes))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every node this cluster started (workers first), by pid, and remove its temporary directory."""
        for node in reversed(self.nodes):
            if node.alive():
                _kill_session(node.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            _kill_session(node.pid, signal.SIGKILL)  # anything left of the node's session
        self.nodes.clear()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def alive_nodes(self) -> int:
        """Nodes the cluster itself counts as alive (asked through ``ray status``-like state, with the token)."""
        script = (
            f"import ray, json; ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False);"
            "print(json.dumps(sum(1 for n in ray.nodes() if n['Alive'])))"
        )
        completed = subprocess.run(
            [sys.executable, "-c", script], env=self.driver_env(), capture_output=True, text=True, timeout=120
        )
        if completed.returncode != 0:
            raise RuntimeError(f"cannot query the cluster at {self.address}: {completed.stderr[-1500:]}")
        return int(completed.stdout.strip().splitlines()[-1])

    def wait_for_nodes(self, count: int, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            for node in self.nodes:
                if not node.alive():
                    raise RuntimeError(f"{node.name} exited while starting:\n{node.log_path.read_text()[-3000:]}")
            try:
                if self.alive_nodes() >= count:
                    return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} nodes did not join within {timeout_s:.0f} s")
            time.sleep(1.0)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _start_node(self, name: str, spec: WorkerSpec, head: bool) -> Node:
        ip = f"127.0.0.{2 + len(self.nodes)}"  # the head is 127.0.0.2, workers .3, .4, ...
        command = [
            _ray_executable(),
            "start",
            "--block",
            "--disable-usage-stats",
            f"--node-ip-address={ip}",
            f"--num-cpus={spec.cpus:g}",
            f"--num-gpus={spec.gpus}",
            f"--object-store-memory={spec.object_store_bytes}",
            f"--memory={spec.memory_bytes}",
            f"--resources={json.dumps(spec.resources)}",
            # Fixed default ports would collide between nodes of one host: every node gets free ones.
            f"--dashboard-agent-listen-port={_free_port()}",
            f"--dashboard-agent-grpc-port={_free_port()}",
            f"--runtime-env-agent-port={_free_port()}",
            f"--metrics-export-port={_free_port()}",
            # A directory per node: nodes sharing one would race for the same socket names.
            f"--temp-dir={self.temp_dir / name}",
        ]
        if head:
            command += ["--head", f"--port={self.port}", "--include-dashboard=false",
                        f"--ray-client-server-port={_free_port()}"]  # fmt: skip
        else:
            command += [f"--address={self.address}"]
        log_path = self.temp_dir / f"{name}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self.node_env(), start_new_session=True
            )
        node = Node(name=name, process=process, log_path=log_path)
        if head:
            _wait_for_port(HEAD_ADDRESS, self.port, node)
        return node


def _ray_executable() -> str:
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.exists() else (shutil.which("ray") or "ray")


def _kill_session(session_id: int, sig: signal.Signals) -> None:
    """Signal every process whose session is ``session_id`` (the node's ``ray start`` leads it)."""
    for pid in _session_members(session_id):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _session_members(session_id: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command (which may hold spaces) start after its closing parenthesis; session is the 4th.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == session_id:
            members.append(int(entry.name))
    return members


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(host: str, port: int, node: Node, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not node.alive():
            raise RuntimeError(f"{node.name} exited while starting:\n{node.log_path.read_text()[-3000:]}")
        with socket.socket() as probe:
            if probe.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{node.name} did not open {host}:{port} within {timeout_s:.0f} s")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local multi-node Ray cluster on loopback, until Ctrl-C.")
    parser.add_argument("--workers", type=int, default=2, help="worker nodes")
    parser.add_argument("--cpus", type=float, default=1, help="CPUs per worker node")
    parser.add_argument("--resources", default='{"bwc_speech": 1}', help="custom resources per worker (JSON)")
    args = parser.parse_args(argv)
    specs = [WorkerSpec(cpus=args.cpus, resources=json.loads(args.resources)) for _ in range(args.workers)]
    with LocalCluster(workers=specs) as cluster:
        print(f"cluster up at {cluster.address}; for the driver:\n"
              f"  export RAY_AUTH_MODE=token RAY_AUTH_TOKEN={cluster.token}\n"
              f"  bwc run INTAKE --store STORE --address {cluster.address}", flush=True)  # fmt: skip
        try:
            while all(node.alive() for node in cluster.nodes):
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
