"""A broker started with `stop_with_parent=True` does not outlive the process that started it.

Why: the broker runs in a session of its own (a Ctrl-C in the terminal of `make kafka` must not
stop it), so a pytest or benchmark killed with SIGKILL (out of memory, a CI time limit) ran no
teardown and left its broker running, holding memory and CPU for every later run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kafka_fixtures import broker_module, free_port

pytestmark = pytest.mark.kafka

REPO_ROOT = Path(__file__).resolve().parents[2]

# The parent: starts a broker (or cluster) with the watchdogs, says the pids of its nodes and
# of their watchdogs, then waits to be killed.
PARENT = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from dev.localkafka import LocalBroker
nodes = int(sys.argv[3])
ports = [int(p) for p in sys.argv[4].split(",")]
broker = LocalBroker(
    Path(sys.argv[2]), nodes=nodes, ports=ports[:nodes], controller_ports=ports[nodes:],
    stop_with_parent=True,
)
broker.start(timeout=150)
pids = [broker.node_pid(i) for i in broker.node_ids]
print(*pids, *(broker.watchdog_pid(i) for i in broker.node_ids), flush=True)
time.sleep(600)
"""


def gone(pid: int) -> bool:
    return not broker_module._pid_alive(pid)


def wait_until_gone(pids: list[int], timeout: float) -> list[int]:
    """The pids still alive after `timeout` seconds (empty when all ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(gone(p) for p in pids):
        time.sleep(0.2)
    return [p for p in pids if not gone(p)]


@contextlib.contextmanager
def killed_afterwards(pids: list[int]) -> Iterator[None]:
    """Whatever the test found, leave no process of it behind."""
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("nodes", [1, 2], ids=["single", "cluster"])
def test_broker_stops_when_its_parent_is_killed(
    kafka_broker: Any, tmp_path: Path, nodes: int
) -> None:
    """SIGKILL to the process that started the broker: every node and its watchdog end by
    themselves (a cluster: each node has its own watchdog)."""
    if kafka_broker is None:
        pytest.skip("KOPPELPUNT_KAFKA_BOOTSTRAP points at an external broker (jars maybe absent)")
    ports = ",".join(str(free_port()) for _ in range(2 * nodes))
    argv = [str(REPO_ROOT), str(tmp_path / "kafka"), str(nodes), ports]
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    pids: list[int] = []
    with killed_afterwards(pids):
        try:
            assert parent.stdout is not None
            line = parent.stdout.readline().decode()
            assert line, f"the parent did not start a broker: {parent.communicate()[1]!r}"
            pids += [int(p) for p in line.split()]
            broker_pids = pids[:nodes]
            assert len(pids) == 2 * nodes
            assert all(broker_module._is_kafka_process(p) for p in broker_pids)
        finally:
            parent.kill()
            parent.communicate()

        assert wait_until_gone(pids, timeout=60) == []
        for node_id, broker_pid in enumerate(broker_pids, start=1):
            node_dir = tmp_path / "kafka" if nodes == 1 else tmp_path / "kafka" / f"node-{node_id}"
            log = (node_dir / "broker.log").read_text()
            assert f"the process that started broker {broker_pid} ended" in log
            # SIGTERM, not SIGKILL: the node shut down cleanly (its data stays usable).
            assert "shut down completed" in log.lower() or "Shutdown completed" in log


class TestWatchdogWithoutJvm:
    """The watchdog's two ways to end, on a stand-in process whose command line names
    kafka.Kafka (the watchdog signals nothing else: pid reuse)."""

    @pytest.fixture
    def stand_in(self) -> Iterator[subprocess.Popen[bytes]]:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(120)", "kafka.Kafka"],
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            proc.kill()
            proc.wait()

    def test_closed_lifeline_stops_the_broker(
        self, stand_in: subprocess.Popen[bytes], tmp_path: Path
    ) -> None:
        watchdog = broker_module._Watchdog.start(stand_in.pid, tmp_path / "watch.log")
        with killed_afterwards([watchdog.pid]):
            time.sleep(0.5)
            assert stand_in.poll() is None  # the lifeline is open: nothing happens
            watchdog.end()  # closes the lifeline, as the kernel does when we die
            assert stand_in.wait(timeout=15) == -signal.SIGTERM
            assert watchdog._proc.returncode == 0

    def test_ends_by_itself_when_the_broker_is_stopped_otherwise(
        self, stand_in: subprocess.Popen[bytes], tmp_path: Path
    ) -> None:
        watchdog = broker_module._Watchdog.start(stand_in.pid, tmp_path / "watch.log")
        with killed_afterwards([watchdog.pid]):
            stand_in.terminate()
            stand_in.wait()
            assert watchdog._proc.wait(timeout=15) == 0
            assert "stopping the broker" not in (tmp_path / "watch.log").read_text()

    def test_stop_then_closed_lifeline_is_not_reported_as_our_death(
        self, stand_in: subprocess.Popen[bytes], tmp_path: Path
    ) -> None:
        """LocalBroker.stop() ends the broker, then closes the lifeline at once (within the
        watchdog's poll): a normal stop, not "the process that started it ended"."""
        watchdog = broker_module._Watchdog.start(stand_in.pid, tmp_path / "watch.log")
        with killed_afterwards([watchdog.pid]):
            time.sleep(0.5)  # the watchdog waits in select() on the lifeline
            stand_in.terminate()
            stand_in.wait()
            watchdog.end()
            assert watchdog._proc.returncode == 0
            assert "stopping the broker" not in (tmp_path / "watch.log").read_text()
