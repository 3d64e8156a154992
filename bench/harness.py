"""Real processes for the benchmark and the resilience tests: the service, a relay, a consumer.

The service runs as `koppelpunt serve` (uvicorn) in its own process, exactly as in production;
the load generator and the consumer run in the caller's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

SENDER_KEYS = {"bench-vo": ("vo", "bench-vo-key"), "bench-mbo": ("mbo", "bench-mbo-key")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_senders(path: Path) -> Path:
    lines = ["senders:"]
    for name, (role, key) in SENDER_KEYS.items():
        digest = hashlib.sha256(key.encode()).hexdigest()
        lines.append(f"  - {{name: {name}, role: {role}, key_sha256: {digest}}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def receive_only_settings(database_url: str, tmp: Path) -> Any:
    """Settings for an in-process run of the receive path alone (the micro-benchmarks): no
    broker (the bootstrap address has nobody listening) and the relay off."""
    from koppelpunt.config import Settings

    return Settings(
        database_url=database_url,
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        senders_file=write_senders(tmp / "senders.yaml"),
        relay_enabled=False,
    )


def auth_for(path: str) -> dict[str, str]:
    sender = "bench-vo" if path.endswith("prognoses") else "bench-mbo"
    return {
        "Authorization": f"Bearer {SENDER_KEYS[sender][1]}",
        "Content-Type": "application/xml",
    }


def rss_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process in KiB, from /proc (Linux)."""
    values = {"VmRSS": 0, "VmHWM": 0}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in values:
                values[key] = int(line.split()[1])
    return values["VmRSS"], values["VmHWM"]


def proc_stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (so field 3, the state, is [0];
    proc(5)), or None when the process is gone or not on this machine."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time a process used so far (Linux /proc), 0.0 when it is gone."""
    fields = None if pid is None else proc_stat_fields(pid)
    if fields is None:
        return 0.0
    # utime is field 14 and stime 15 (1-based, proc(5))
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_tree_cpu_seconds(pid: int | None) -> float:
    """CPU of a forking server (PostgreSQL's postmaster): its own, that of its children still
    running, and that of the children it has reaped (cutime/cstime), so a backend that ended
    during a phase still counts."""
    fields = None if pid is None else proc_stat_fields(pid)
    if fields is None:
        return 0.0
    # after the command name: ppid is field 4, utime 14, stime 15, cutime 16, cstime 17 (proc(5))
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        child = proc_stat_fields(int(entry))
        if child is not None and child[1] == str(pid):
            ticks += int(child[11]) + int(child[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Process:
    """A koppelpunt command (`serve` or `relay`) run as a child process, logs to a file."""

    args: list[str]
    env: dict[str, str]
    log_file: Path
    port: int | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        log = self.log_file.open("ab")
        self.proc = subprocess.Popen(
            [str(BIN / "koppelpunt"), *self.args],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        log.close()

    async def wait_ready(self, timeout: float = 60, path: str = "/readyz") -> None:  # noqa: ASYNC109
        """Until /readyz answers 200 (database and Kafka reachable), or `path` (/livez for a
        service run without a broker)."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as client:
            while True:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    tail = self.log_file.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{self.args} exited; end of {self.log_file}:\n{tail}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(path)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.args} not ready: see {self.log_file}")
                await asyncio.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush: the crash the outbox must survive."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def service_env(
    *,
    database_url: str,
    bootstrap: str,
    senders_file: Path,
    topic_prefix: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    env = {
        "KOPPELPUNT_DATABASE_URL": database_url,
        "KOPPELPUNT_KAFKA_BOOTSTRAP": bootstrap,
        "KOPPELPUNT_SENDERS_FILE": str(senders_file),
        "KOPPELPUNT_TOPIC_PREFIX": topic_prefix,
        "KOPPELPUNT_LOG_JSON": "true",
        # The benchmarks and resilience tests run on the public development log key.
        "KOPPELPUNT_DEVELOPMENT_MODE": "true",
    }
    env.update(extra or {})
    return env


def serve(env: Mapping[str, str], log_file: Path, port: int | None = None) -> Process:
    port = port or free_port()
    p = Process(["serve", "--port", str(port)], dict(env), log_file, port=port)
    p.start()
    return p


def relay(env: Mapping[str, str], log_file: Path) -> Process:
    p = Process(["relay"], dict(env), log_file)
    p.start()
    return p


@dataclass
class Consumed:
    """Every signalering read so far: ce_id → count, per topic the (bsn, ce_id) sequence."""

    counts: dict[str, int] = field(default_factory=dict)
    order: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    last_at: float = 0.0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def unique(self) -> int:
        return len(self.counts)


class SignaleringConsumer:
    """Reads every partition of the given topics from the start, without a consumer group."""

    def __init__(
        self,
        bootstrap: str,
        topics: list[str],
        *,
        keep_order: bool = False,
        security: Mapping[str, Any] | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        # aiokafka security arguments (the broker is SASL/SCRAM only; the reader needs READ)
        self._security = dict(security or {})
        self._topics = topics
        self._keep_order = keep_order
        self.consumed = Consumed()
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # One reader over all 342 topics: let the broker collect 64 KiB (or 100 ms) per
            # fetch instead of answering every few records; that costs the broker less CPU
            # and adds at most 0.1 s to the time until the last signalering is read.
            fetch_max_wait_ms=100,
            fetch_min_bytes=64 * 1024,
            **self._security,
        )
        await consumer.start()
        cluster = await consumer._client.fetch_all_metadata()
        tps = [
            TopicPartition(t, p)
            for t in self._topics
            for p in sorted(cluster.partitions_for_topic(t) or ())
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._consumer is not None
        c = self.consumed
        while True:
            batch = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            if not batch:
                continue
            for tp, records in batch.items():
                for r in records:
                    ce_id = ""
                    for k, v in r.headers:
                        if k == "ce_id":
                            ce_id = v.decode()
                            break
                    c.counts[ce_id] = c.counts.get(ce_id, 0) + 1
                    if self._keep_order:
                        key = r.key.decode() if r.key else ""
                        c.order.setdefault(tp.topic, []).append((key, ce_id))
            c.last_at = time.monotonic()
            c.changed.set()

    async def wait_for(self, unique: int, timeout: float) -> bool:  # noqa: ASYNC109
        """Until at least `unique` distinct ce_ids were read; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.consumed.unique < unique:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.consumed.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.consumed.changed.wait(), timeout=min(left, 1.0))
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
