"""`make bench`: measure koppelpunt end to end on this machine and write bench/results/<date>.json.

Starts its own Kafka broker (dev/localkafka, free ports), uses SQLite in a temporary directory
(or a fresh database on the PostgreSQL server of KOPPELPUNT_DATABASE_URL), runs the service as a
real `koppelpunt serve` process and drives it with an async aiohttp load generator
(bench/load_client.py). See bench/README.md for what each figure means. BENCH_SCALE (default
1.0) scales the number of requests and records, BENCH_SECONDS (default 20) the duration of the
timed HTTP phases.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench import generate as gen
from bench import harness
from bench.harness import Process, SignaleringConsumer
from bench.load_client import Answer, ClientErrors, LoadClient
from dev.localkafka import LocalBroker

ROOT = harness.ROOT
RESULTS = ROOT / "bench" / "results"
TARGETS = {"ratio": 0.5, "batch_records_per_s": 20_000, "year_seconds": 300, "p99_ms": 50}


def kafka_nodes() -> int:
    """BENCH_KAFKA_NODES: the local Kafka cluster's size (default 1; 3 for RF 3, min ISR 2)."""
    return max(1, int(os.environ.get("BENCH_KAFKA_NODES", "1")))


def replication(nodes: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) of the topics on `nodes` brokers: RF 3 and
    min ISR 2 from three nodes on, as in production (docs/scaling.md)."""
    return min(3, nodes), min(2, nodes)


@contextlib.contextmanager
def local_broker(data_dir: Path, nodes: int = 1) -> Iterator[LocalBroker]:
    """The benchmarks' own broker or cluster (dev/localkafka: SASL/SCRAM-only with ACLs) on
    free ports, stopped afterwards and also when this process is killed (stop_with_parent).

    Its settings go into this process's environment, the admin's too: a service started as a
    child process inherits the service principal's; readers use koppelpunt's `admin_settings`.
    """
    broker = LocalBroker(
        data_dir,
        nodes=nodes,
        ports=[harness.free_port() for _ in range(nodes)],
        controller_ports=[harness.free_port() for _ in range(nodes)],
        stop_with_parent=True,
    )
    broker.start(timeout=240)
    try:
        os.environ.update(broker.client_env(admin=True))
        yield broker
    finally:
        broker.stop()


# --- database ---------------------------------------------------------------------------------


async def make_database(tmp: Path) -> tuple[str, Callable[[], Any] | None]:
    """A migrated empty database: SQLite in tmp, or a new database on the given PostgreSQL."""
    from sqlalchemy import make_url, text
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from koppelpunt.store.db import upgrade

    server = os.environ.get("KOPPELPUNT_DATABASE_URL")
    if not server:
        url = f"sqlite+aiosqlite:///{tmp / 'koppelpunt.db'}"
        await upgrade(url)
        return url, None
    name = f"koppelpunt_bench_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    async with admin.connect() as c:
        await c.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    await upgrade(url)

    async def drop() -> None:
        # FORCE ends our own leftover sessions; an autovacuum worker on the freshly written
        # database (it belongs to no role we may signal) may only end by itself, so a few
        # tries, then a warning: a database left behind must not cost the run its results.
        admin = create_async_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            for attempt in range(10):
                try:
                    async with admin.connect() as c:
                        await c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    return
                except DBAPIError as exc:
                    if attempt == 9:
                        print(f"bench: database {name} left behind: {exc.orig}", flush=True)
                        return
                    await asyncio.sleep(3)
        finally:
            await admin.dispose()

    return url, drop


async def fill_register(url: str, rows: list[tuple[str, str, Any]]) -> None:
    from koppelpunt.store.db import create_engine, session_factory
    from koppelpunt.store.register import upsert_woonregister

    engine = create_engine(url)
    try:
        async with session_factory(engine).begin() as session:
            await upsert_woonregister(session, rows)
    finally:
        await engine.dispose()


# --- memory -----------------------------------------------------------------------------------


class RssSampler:
    """Samples the service's RSS every 0.5 s in a thread (independent of the event loop); with
    several service processes (BENCH_API_PROCESSES) their sum, and the sum of their peaks."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak_kib = 0
        self.t0 = time.monotonic()

    def _run(self) -> None:
        t0 = self.t0
        while not self._stop.wait(0.5):
            both = [harness.rss_kib(pid) for pid in self.pids]
            self.samples.append((time.monotonic() - t0, sum(rss for rss, _ in both)))
            self.peak_kib = max(self.peak_kib, sum(hwm for _, hwm in both))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class CpuMeter:
    """CPU seconds used by the service, the broker and this load generator during a phase:
    figures that say what the phase costs independent of what else runs on the machine."""

    def __init__(
        self, service_pids: list[int], broker_pids: list[int], database_pid: int | None = None
    ) -> None:
        self.service_pids = service_pids
        self.broker_pids = broker_pids  # every node of the cluster
        # PostgreSQL's postmaster when the server runs on this machine (its backends counted)
        self.database_pid = database_pid
        self._start: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        now = {
            "service": sum(harness.cpu_seconds(pid) for pid in self.service_pids),
            "broker": sum(harness.cpu_seconds(pid) for pid in self.broker_pids),
        }
        if self.database_pid is not None:
            now["database"] = harness.server_tree_cpu_seconds(self.database_pid)
        usage = os.times()
        now["loadgen"] = usage.user + usage.system
        return now

    def start(self) -> None:
        self._start = self._now()

    def stop(self, records: int) -> dict[str, float]:
        now = self._now()
        used = {f"cpu_s_{k}": round(now[k] - self._start[k], 2) for k in now}
        if records:
            used["service_cpu_ms_per_record"] = round(1000 * used["cpu_s_service"] / records, 3)
            used["broker_cpu_ms_per_record"] = round(1000 * used["cpu_s_broker"] / records, 3)
        return used


# --- load -------------------------------------------------------------------------------------


class Sent:
    def __init__(self) -> None:
        self.status: dict[int, int] = {}
        self.signaleringen = 0
        self.records = 0
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def add(self, answer: Answer, records: int) -> None:
        self.status[answer.status] = self.status.get(answer.status, 0) + 1
        if answer.status == 202:
            self.signaleringen += answer.signaleringen
            self.records += records


class RoundRobin:
    """Spreads requests over the API processes (BENCH_API_PROCESSES), as a load balancer would."""

    def __init__(self, clients: list[LoadClient]) -> None:
        self.clients = clients
        self._next = 0

    async def post(self, path: str, *, content: bytes, headers: dict[str, str]) -> Answer:
        client = self.clients[self._next % len(self.clients)]
        self._next += 1
        return await client.post(path, content=content, headers=headers)


Client = LoadClient | RoundRobin


async def receive_counters(client: Client) -> dict[str, float]:
    """The services' own view of receipt, summed over the API processes, from /metrics: the
    handler's time from body read to receipt (`koppelpunt_receive_seconds`, aanmeldstatus) and
    the group-commit sizes. Differences of two scrapes split (5)'s latency into the time in
    the handler and the rest (HTTP in and out, waiting for the event loop, the load generator)."""
    totals = dict.fromkeys(("count", "sum", "le_50ms", "groups", "grouped"), 0.0)
    for c in client.clients if isinstance(client, RoundRobin) else [client]:
        for family in text_string_to_metric_families(await c.get_text("/metrics")):
            for sample in family.samples:
                if sample.labels.get("soort", "aanmeldstatus") != "aanmeldstatus":
                    continue
                if sample.name == "koppelpunt_receive_seconds_count":
                    totals["count"] += sample.value
                elif sample.name == "koppelpunt_receive_seconds_sum":
                    totals["sum"] += sample.value
                elif sample.name == "koppelpunt_receive_seconds_bucket" and (
                    float(sample.labels["le"]) == 0.05
                ):
                    totals["le_50ms"] += sample.value
                elif sample.name == "koppelpunt_group_commit_messages_count":
                    totals["groups"] += sample.value
                elif sample.name == "koppelpunt_group_commit_messages_sum":
                    totals["grouped"] += sample.value
    return totals


def handler_summary(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    d = {k: after[k] - before[k] for k in after}
    if not d["count"]:
        return {}
    return {
        "handler_mean_ms": round(1000 * d["sum"] / d["count"], 1),
        "handler_over_50ms_share": round(1 - d["le_50ms"] / d["count"], 4),
        "group_mean_messages": round(d["grouped"] / d["groups"], 2) if d["groups"] else None,
    }


async def post(client: Client, m: gen.Message, sent: Sent) -> None:
    try:
        r = await client.post(m.path, content=m.body, headers=harness.auth_for(m.path))
    except ClientErrors as exc:
        sent.errors.append(f"{type(exc).__name__}: {exc}")
        return
    sent.add(r, m.records)


async def closed_loop(
    client: Client, messages: Iterable[gen.Message], concurrency: int, seconds: float
) -> tuple[Sent, float]:
    """`concurrency` workers send the next message as soon as their previous one is answered,
    until the messages run out or `seconds` pass. Returns (what was sent, elapsed seconds)."""
    sent = Sent()
    it = iter(messages)
    t0 = time.monotonic()
    deadline = t0 + seconds

    async def worker() -> None:
        for m in it:
            if time.monotonic() > deadline:
                return
            await post(client, m, sent)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sent, time.monotonic() - t0


async def open_loop(
    client: Client, messages: Iterable[gen.Message], rate: float, seconds: float
) -> Sent:
    """Send at a fixed rate whatever the answers; latency counted from the *intended* send time
    (no coordinated omission: a stall shows up in every request scheduled during it)."""
    sent = Sent()
    t0 = time.monotonic()
    n = int(rate * seconds)
    tasks = []

    async def one(m: gen.Message, intended: float) -> None:
        await post(client, m, sent)
        sent.latencies.append(time.monotonic() - intended)

    for i, m in zip(range(n), messages, strict=False):
        intended = t0 + i / rate
        delay = intended - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(m, intended)))
    await asyncio.gather(*tasks)
    return sent


def forwarded(people: list[gen.Pupil]) -> list[gen.Pupil]:
    """Pupils whose aanmeldstatus is forwarded (in a gemeente, no startkwalificatie, young
    enough): a one-record message about one gives exactly one signalering."""
    return [
        p
        for p in people
        if p.gemeentecode not in (None, "1999")
        and p.diploma not in ("havo", "vwo", "mbo-2", "mbo-3", "mbo-4")
        and p.geboortedatum.year >= 2006
    ]


def one_record(pupil: gen.Pupil, aanmelding_id: str, bericht_id: str) -> gen.Message:
    """An aanmeldstatus message with one AANGEMELD record about `pupil`."""
    s = gen.Status(aanmelding_id, pupil, "30RT", "25180", 2, "AANGEMELD", date(2027, 3, 1))
    return gen.Message("/v1/aanmeldstatussen", gen.aanmeldstatus_body(bericht_id, [s]), 1)


def single_records(people: list[gen.Pupil], prefix: str) -> Iterable[gen.Message]:
    """One-record aanmeldstatus messages of forwarded pupils, without end."""
    ok = forwarded(people)
    i = 0
    while True:
        yield one_record(ok[i % len(ok)], f"S{i:09d}", f"{prefix}-{i}")
        i += 1


def every_gemeente(people: list[gen.Pupil], prefix: str) -> list[gen.Message]:
    """One one-record message per gemeente that has a forwarded pupil: the warm-up writes to
    every gemeente's topic once, so the broker's first writes to its 342 fresh partitions
    (each a new log segment with memory-mapped index files: ~2 page faults per partition,
    and the append path's JIT compilation) fall before the timed phase, as they would long
    before any hour of a running koppelpunt (thirteenth round)."""
    first: dict[str, gen.Pupil] = {}
    for p in forwarded(people):
        first.setdefault(str(p.gemeentecode), p)
    return [one_record(p, f"W{i:09d}", f"{prefix}-{i}") for i, p in enumerate(first.values())]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the run ----------------------------------------------------------------------------------


async def bare_ceiling(tmp: Path, concurrency: int, seconds: float) -> dict[str, Any]:
    port = harness.free_port()
    proc = Process(
        [],
        {},
        tmp / "bare.log",
        port=port,
    )
    proc.proc = subprocess.Popen(  # noqa: ASYNC220 - starting a server, not waiting on it
        [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=ROOT,
        stdout=(tmp / "bare.log").open("ab"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        await proc.wait_ready()
        body = gen.aanmeldstatus_body("bare", gen.statuses(gen.pupils(10), 1))
        messages = (gen.Message("/v1/aanmeldstatussen", body, 1) for _ in iter(int, 1))
        async with LoadClient(proc.base_url, timeout=30) as client:
            await closed_loop(client, messages, concurrency, 2)  # warm-up
            cpu0 = harness.cpu_seconds(proc.pid)
            sent, elapsed = await closed_loop(client, messages, concurrency, seconds)
            cpu = harness.cpu_seconds(proc.pid) - cpu0
    finally:
        proc.stop()
    n = sent.status.get(202, 0)
    return {
        "requests": n,
        "seconds": round(elapsed, 2),
        "requests_per_s": round(n / elapsed, 1),
        "cpu_s_server": round(cpu, 2),
        "server_cpu_ms_per_request": round(1000 * cpu / n, 3) if n else None,
    }


async def wait_consumed(consumer: SignaleringConsumer, target: int, timeout: float) -> float:  # noqa: ASYNC109
    """Seconds on the monotonic clock when `target` distinct signaleringen had been read."""
    if not await consumer.wait_for(target, timeout):
        raise TimeoutError(f"only {consumer.consumed.unique}/{target} signaleringen consumed")
    return consumer.consumed.last_at


async def run(scale: float, seconds: float, concurrency: int) -> dict[str, Any]:
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "scale": scale,
        "seconds_per_phase": seconds,
        "concurrency": concurrency,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_before": os.getloadavg(),
        },
    }
    # BENCH_KEEP=1 keeps the logs and data (service, broker) for a look afterwards.
    keep = bool(os.environ.get("BENCH_KEEP"))
    workdir = (
        contextlib.nullcontext(tempfile.mkdtemp(prefix="koppelpunt-bench-"))
        if keep
        else tempfile.TemporaryDirectory(prefix="koppelpunt-bench-")
    )
    with workdir as tmpdir:
        tmp = Path(tmpdir)
        print(f"bench: logs and data in {tmp}{' (kept)' if keep else ''}", flush=True)
        nodes = kafka_nodes()
        results["kafka_nodes"] = nodes
        results["replication_factor"], results["min_insync_replicas"] = replication(nodes)
        with local_broker(tmp / "kafka", nodes) as broker:
            drop = None
            try:
                url, drop = await make_database(tmp)
                results["database"] = url.split(":", 1)[0]
                pids = [pid for n in broker.node_ids if (pid := broker.node_pid(n)) is not None]
                results |= await measure(
                    tmp, url, broker.bootstrap, pids, nodes, scale, seconds, concurrency
                )
            finally:
                if drop is not None:
                    await drop()
    results["machine"]["load_average_after"] = os.getloadavg()
    return results


async def local_postmaster(url: str) -> int | None:
    """The PostgreSQL server's postmaster pid when it runs on this machine, else None: its CPU
    and its backends' count in each phase (cpu_s_database), as the broker's do."""
    if not url.startswith("postgresql"):
        return None
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as c:
            backend = int(await c.scalar(text("SELECT pg_backend_pid()")) or 0)
            # while the backend lives: its parent is the postmaster
            return _local_parent(backend, ("postgres", "postmaster"))
    finally:
        await engine.dispose()


def _local_parent(pid: int, names: tuple[str, ...]) -> int | None:
    """The parent of a local process if its name is one of `names`; None when `pid` is not a
    process here (a server on another machine, or in another pid namespace)."""
    fields = harness.proc_stat_fields(pid)
    if fields is None:
        return None
    parent = fields[1]  # ppid, field 4
    try:
        name = Path(f"/proc/{parent}/comm").read_text().strip()
    except OSError:
        return None
    return int(parent) if name in names else None


async def measure(
    tmp: Path,
    url: str,
    bootstrap: str,
    broker_pids: list[int],
    nodes: int,
    scale: float,
    seconds: float,
    concurrency: int,
) -> dict[str, Any]:
    from koppelpunt.config import Settings
    from koppelpunt.kafka.access import admin_settings
    from koppelpunt.kafka.admin import client_kwargs, ensure_topics, topic_for

    out: dict[str, Any] = {}
    n_statuses = int(1_000_000 * scale)
    n_prognoses = int(200_000 * scale)
    n_pupils = max(2_000, int(250_000 * scale))
    print(f"bench: generating {n_pupils} pupils, {n_prognoses} prognoses, "
          f"{n_statuses} aanmeldstatussen", flush=True)  # fmt: skip
    people = gen.pupils(n_pupils)
    await fill_register(url, gen.register_rows(people))

    # The service principal may create and write `vva.signalering.*` only (its ACLs).
    prefix = "vva.signalering"
    rf, min_isr = replication(nodes)
    settings = Settings(
        kafka_bootstrap=bootstrap,
        topic_prefix=prefix,
        topic_partitions=1,
        topic_replication_factor=rf,
        topic_min_insync_replicas=min_isr,
    )
    topics = [topic_for(prefix, "GM" + code) for code in gen.active_gemeenten()]
    await ensure_topics(settings, topics, 1, timeout=120)

    print("bench: (1) bare FastAPI/uvicorn ceiling", flush=True)
    out["bare"] = await bare_ceiling(tmp, concurrency, seconds)
    print(f"  {out['bare']}", flush=True)

    env = harness.service_env(
        database_url=url,
        bootstrap=bootstrap,
        senders_file=harness.write_senders(tmp / "senders.yaml"),
        topic_prefix=prefix,
        extra={
            "KOPPELPUNT_TOPIC_PARTITIONS": "1",
            "KOPPELPUNT_TOPIC_REPLICATION_FACTOR": str(rf),
            "KOPPELPUNT_TOPIC_MIN_INSYNC_REPLICAS": str(min_isr),
            "KOPPELPUNT_LOG_LEVEL": "INFO",
        },
    )
    n_api = api_processes()
    if not relay_process():  # the default: one `koppelpunt serve`, relay in-process
        services = [harness.serve(env, tmp / "service.log")]
        relay: Process | None = None
    else:  # N API processes without relay + one `koppelpunt relay` (docs/scaling.md)
        api_env = {**env, "KOPPELPUNT_RELAY_ENABLED": "false"}
        services = [harness.serve(api_env, tmp / f"service-{i}.log") for i in range(n_api)]
        # no in-process wake-up across processes: the relay polls often instead
        relay = harness.relay({**env, "KOPPELPUNT_RELAY_POLL_SECONDS": "0.05"}, tmp / "relay.log")
    service = services[0]
    service_pids = [s.pid for s in services] + ([relay.pid] if relay else [])
    reader = admin_settings(settings)
    security = {k: v for k, v in client_kwargs(reader).items() if k != "bootstrap_servers"}
    consumer = SignaleringConsumer(bootstrap, topics, security=security)
    profiler: subprocess.Popen[bytes] | None = None
    try:
        for s in services:
            await s.wait_ready()
        await consumer.start()
        profile_to = os.environ.get("BENCH_PROFILE")
        if profile_to:
            # py-spy: sampling profiler, collapsed stacks (flamegraph.pl / speedscope input)
            profiler = subprocess.Popen(  # noqa: ASYNC220 - a background sampler
                [str(harness.BIN / "py-spy"), "record", "--pid", str(service.pid), "--rate",
                 "50", "--format", "raw", "--nonblocking", "--output", profile_to],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        with RssSampler(service_pids) as rss:
            async with contextlib.AsyncExitStack() as stack:
                clients = [
                    await stack.enter_async_context(LoadClient(s.base_url, timeout=120))
                    for s in services
                ]
                client: Client = clients[0] if n_api == 1 else RoundRobin(clients)
                cpu = CpuMeter(service_pids, broker_pids, await local_postmaster(url))
                out |= await phases(client, consumer, people, n_statuses, n_prognoses,
                                    scale, seconds, concurrency, rss, out["bare"], cpu)  # fmt: skip
        out["memory"] = memory_summary(rss, out.get("year_window", (0.0, 0.0)))
        out.pop("year_window", None)
        out["consumer_duplicates"] = sum(1 for c in consumer.consumed.counts.values() if c > 1)
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                profiler.wait(30)
        await consumer.stop()
        for s in services:
            s.stop()
        if relay is not None:
            relay.stop()
    out["api_processes"] = n_api
    out["relay_process"] = relay is not None
    out["year_senders"] = year_senders()
    return out


async def phases(
    client: Client,
    consumer: SignaleringConsumer,
    people: list[gen.Pupil],
    n_statuses: int,
    n_prognoses: int,
    scale: float,
    seconds: float,
    concurrency: int,
    rss: RssSampler,
    bare: dict[str, Any],
    cpu: CpuMeter,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    bare_rps = bare["requests_per_s"]
    singles = single_records(people, "single")

    print("bench: (2) single-record POSTs end to end", flush=True)
    read_before = consumer.consumed.unique
    warm_ups: list[tuple[Iterable[gen.Message], float]] = [(singles, 2)]
    if os.environ.get("BENCH_WARM_TOPICS", "1") != "0":
        warm_ups.insert(0, (every_gemeente(people, "warm"), 120))
    warm = 0
    for messages, most in warm_ups:
        sent_warm, _ = await closed_loop(client, messages, concurrency, most)
        warm += sent_warm.signaleringen
    # Every warm-up signalering read before the clock starts (none counted for the phase).
    await wait_consumed(consumer, read_before + warm, 60)
    base = consumer.consumed.unique
    t0 = time.monotonic()
    cpu.start()
    sent, elapsed = await closed_loop(client, singles, concurrency, seconds)
    done = await wait_consumed(consumer, base + sent.signaleringen, 300)
    used = cpu.stop(sent.records)
    e2e = done - t0
    accepted = sent.status.get(202, 0)
    out["single"] = {
        "requests": accepted,
        "status": sent.status,
        "receipts_per_s": round(accepted / elapsed, 1),
        "end_to_end_seconds": round(e2e, 2),
        "requests_per_s": round(accepted / e2e, 1),
        "ratio_to_bare": round(accepted / e2e / bare_rps, 3),
        **used,
    }
    # The same ratio in CPU per request (server side): what it would be on a quiet machine.
    bare_cpu = bare.get("server_cpu_ms_per_request")
    if bare_cpu and accepted:
        out["single"]["cpu_ratio_to_bare"] = round(bare_cpu / used["service_cpu_ms_per_record"], 3)
    print(f"  {out['single']}", flush=True)

    rate, rate_fixed = latency_rate(out["single"]["requests_per_s"])
    print(f"bench: (5) receipt latency at {rate:.0f} req/s", flush=True)
    before = await receive_counters(client)
    sent = await open_loop(client, singles, rate, seconds)
    in_service = handler_summary(before, await receive_counters(client))
    lat = [x * 1000 for x in sent.latencies]
    out["latency"] = {
        "rate_per_s": round(rate, 1),
        "rate_fixed": rate_fixed,
        "requests": len(lat),
        "status": sent.status,
        "p50_ms": round(percentile(lat, 0.50), 1),
        "p95_ms": round(percentile(lat, 0.95), 1),
        "p99_ms": round(percentile(lat, 0.99), 1),
        "max_ms": round(max(lat), 1) if lat else None,
        "mean_ms": round(statistics.fmean(lat), 1) if lat else None,
        **in_service,
    }
    print(f"  {out['latency']}", flush=True)
    await wait_consumed(consumer, consumer.consumed.unique + 0, 60)

    print("bench: (3) batches of 1,000 records", flush=True)
    n_batches = max(10, int(100 * min(scale, 1.0)))
    batch_statuses = gen.statuses(people, n_batches * 1000, seed=6, id_prefix="B")
    cpu.start()
    out["batch"] = await batches(client, batch_statuses, consumer, concurrency)
    out["batch"] |= cpu.stop(out["batch"]["records"])
    print(f"  {out['batch']}", flush=True)

    print("bench: (4) synthetic national year", flush=True)
    statuses = gen.statuses(people, n_statuses)
    prognose_people = people[:n_prognoses] if n_prognoses <= len(people) else people
    # generated before the clock starts (≈0.5 GB of XML at full scale), so the load generator
    # spends its CPU on sending, not on formatting
    messages = list(gen.messages(prognose_people, statuses, batch=2000, prefix="year"))
    del statuses
    base = consumer.consumed.unique
    y0 = time.monotonic()
    cpu.start()
    # two senders (the Koppelpunt VO and MBO), at least one request in flight per API process
    sent, elapsed = await closed_loop(client, messages, year_senders(), 1e9)
    done = await wait_consumed(consumer, base + sent.signaleringen, 3600)
    used = cpu.stop(sent.records)
    # records of the distinct messages (an identical resend is not new work for the sender)
    records = sum(m.records for m in messages if not m.resend)
    out["year"] = {
        "messages": len(messages),
        "resends": sum(1 for m in messages if m.resend),
        "invalid": sum(1 for m in messages if m.invalid),
        "records": records,
        "status": sent.status,
        "signaleringen": sent.signaleringen,
        "receipts_seconds": round(elapsed, 1),
        "seconds_to_last_signalering": round(done - y0, 1),
        "records_per_s": round(records / (done - y0), 1),
        "errors": dict(Counter(sent.errors)),
        **used,
    }
    out["year_window"] = (y0 - rss.t0, done - rss.t0)
    print(f"  {out['year']}", flush=True)
    return out


async def batches(
    client: Client,
    statuses: list[gen.Status],
    consumer: SignaleringConsumer,
    concurrency: int,
) -> dict[str, Any]:
    messages = [
        gen.Message(
            "/v1/aanmeldstatussen",
            gen.aanmeldstatus_body(f"batch-{i}", statuses[i : i + 1000]),
            len(statuses[i : i + 1000]),
        )
        for i in range(0, len(statuses), 1000)
    ]  # fmt: skip
    base = consumer.consumed.unique
    t0 = time.monotonic()
    sent, elapsed = await closed_loop(client, messages, min(concurrency, 4), 1e9)
    done = await wait_consumed(consumer, base + sent.signaleringen, 1800)
    return {
        "messages": len(messages),
        "records": sent.records,
        "status": sent.status,
        "signaleringen": sent.signaleringen,
        "receipts_records_per_s": round(sent.records / elapsed, 1),
        "records_per_s": round(sent.records / (done - t0), 1),
    }


def memory_summary(rss: RssSampler, window: tuple[float, float]) -> dict[str, Any]:
    """Peak RSS, and whether RSS stays flat over the national-year run: the median of its last
    quarter against the median of its second quarter (after warm-up); growth < 15% is flat."""
    start, end = window
    during = [kib for t, kib in rss.samples if start <= t <= end]
    summary: dict[str, Any] = {"peak_rss_mib": round(rss.peak_kib / 1024, 1)}
    if len(during) >= 8:
        q = len(during) // 4
        early = statistics.median(during[q : 2 * q])
        late = statistics.median(during[3 * q :])
        summary |= {
            "year_rss_q2_mib": round(early / 1024, 1),
            "year_rss_q4_mib": round(late / 1024, 1),
            "year_growth": round(late / early - 1, 3),
            "flat": late / early - 1 < 0.15,
        }
    return summary


def api_processes() -> int:
    """BENCH_API_PROCESSES: API processes behind a round-robin (default 1, relay in-process)."""
    return max(1, int(os.environ.get("BENCH_API_PROCESSES", "1")))


def year_senders() -> int:
    """BENCH_YEAR_SENDERS: messages in flight in the year phase (default 2, the Koppelpunt VO
    and MBO, and at least one per API process)."""
    default = max(2, api_processes())
    return max(1, int(os.environ.get("BENCH_YEAR_SENDERS", str(default))))


def latency_rate(single_per_s: float) -> tuple[float, bool]:
    """(5)'s open-loop rate and whether it is fixed: half of (2), or BENCH_LATENCY_RATE to
    compare runs at one rate (half of (2) moves with the hour, and p99 moves with the rate)."""
    fixed = os.environ.get("BENCH_LATENCY_RATE")
    return (float(fixed), True) if fixed else (max(1.0, single_per_s / 2), False)


def relay_process() -> bool:
    """BENCH_RELAY_PROCESS=1: the relay in a `koppelpunt relay` process of its own, also with
    one API process (always so with several)."""
    return api_processes() > 1 or os.environ.get("BENCH_RELAY_PROCESS", "") == "1"


def table(r: dict[str, Any]) -> str:
    def ok(passed: bool) -> str:
        return "met" if passed else "NOT met"

    s, b, y, lat, m = r["single"], r["batch"], r["year"], r["latency"], r["memory"]
    rows = [
        ("(1) bare FastAPI/uvicorn 202", f"{r['bare']['requests_per_s']:,.0f} req/s", "", ""),
        ("(2) single-record POST, end to end", f"{s['requests_per_s']:,.0f} req/s",
         f"ratio {s['ratio_to_bare']:.2f} ≥ 0.5", ok(s["ratio_to_bare"] >= TARGETS["ratio"])),
        ("    same, in server CPU per request",
         f"{s['service_cpu_ms_per_record']} ms, bare "
         f"{r['bare'].get('server_cpu_ms_per_request')} ms",
         f"ratio {s.get('cpu_ratio_to_bare', float('nan')):.2f} ≥ 0.5",
         ok(s.get("cpu_ratio_to_bare", 0) >= TARGETS["ratio"])),
        ("(3) batches of 1,000, end to end", f"{b['records_per_s']:,.0f} records/s",
         "≥ 20,000/s", ok(b["records_per_s"] >= TARGETS["batch_records_per_s"])),
        ("    same, service CPU per record", f"{b['service_cpu_ms_per_record']} ms",
         f"= {1000 / b['service_cpu_ms_per_record']:,.0f} records/s per core", ""),
        ("    same, broker CPU per record (all nodes)",
         f"{b.get('broker_cpu_ms_per_record', 'n/a')} ms", "", ""),
        (f"(4) national year ×{r['scale']:g} ({y['records']:,} records)",
         f"{y['seconds_to_last_signalering']:,.1f} s", "< 300 s",
         ok(y["seconds_to_last_signalering"] < TARGETS["year_seconds"])
         if r["scale"] == 1 else "n/a: scaled run"),
        # CPU, not wall time: not the target, so no verdict (a "met" here misled)
        ("    same, service CPU for 1.2M records",
         f"{1.2e6 * y['service_cpu_ms_per_record'] / 1000:,.0f} CPU-s", "", ""),
        ("    same, CPU-s service / broker / load generator / PostgreSQL",
         f"{y['cpu_s_service']} / {y['cpu_s_broker']} / {y['cpu_s_loadgen']} / "
         f"{y.get('cpu_s_database', 'n/a')}",
         f"in {y['seconds_to_last_signalering']:,.0f} s on {r['machine']['cpus']} cores", ""),
        ("    same, broker CPU per record (all nodes)",
         f"{y.get('broker_cpu_ms_per_record', 'n/a')} ms", "", ""),
        (f"(5) receipt latency at {lat['rate_per_s']:.0f} req/s",
         f"p50 {lat['p50_ms']} / p95 {lat['p95_ms']} / p99 {lat['p99_ms']} ms", "p99 < 50 ms",
         # the target is at half of (2): a fixed rate gives a comparison, not a verdict
         "n/a: fixed rate" if lat.get("rate_fixed") else ok(lat["p99_ms"] < TARGETS["p99_ms"])),
        ("    same, inside the handler (/metrics)",
         f"mean {lat.get('handler_mean_ms', 'n/a')} ms, "
         f"{100 * lat.get('handler_over_50ms_share', float('nan')):.1f}% over 50 ms",
         f"{lat.get('group_mean_messages', 'n/a')} messages per group", ""),
        ("(6) peak RSS of the service", f"{m['peak_rss_mib']} MiB",
         f"flat: {m.get('flat', 'n/a')} ({m.get('year_growth', 'n/a')})", ""),
    ]  # fmt: skip
    width = [max(len(str(row[i])) for row in rows) for i in range(4)]
    lines = [
        f"koppelpunt bench {r['date']}  db={r['database']}  scale={r['scale']:g}  "
        f"api processes={r.get('api_processes', 1)}  "
        f"kafka nodes={r.get('kafka_nodes', 1)} (RF {r.get('replication_factor', 1)}, "
        f"min ISR {r.get('min_insync_replicas', 1)})  "
        f"relay {'process' if r.get('relay_process') else 'in-process'}  "
        f"load avg before={r['machine']['load_average_before'][0]:.2f}"
    ]
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, width, strict=True)))
    return "\n".join(lines)


def main() -> int:
    scale = float(os.environ.get("BENCH_SCALE", "1.0"))
    seconds = float(os.environ.get("BENCH_SECONDS", "20"))
    concurrency = int(os.environ.get("BENCH_CONCURRENCY", "32"))
    results = asyncio.run(run(scale, seconds, concurrency))
    print()
    print(table(results))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    path = RESULTS / f"{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwritten {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
