"""A ghz-equivalent load generator for ImageTrust Check, in Python asyncio.

ghz cannot be installed on the CI machines, so this drives the same scenarios: the same
binary request data (deploy/loadtest/make_data.py) and the same config files
(deploy/loadtest/*.json|toml: concurrency, connections, rps, duration, timeout,
skipFirst, load-schedule const|step), and prints a ghz-like summary (count, RPS,
latency distribution, status code distribution).

    python -m bench.bench_loadgen                    # local suite, c = 1, 4, 16 side by side
    python -m bench.bench_loadgen --quick            # the same, 3 s per level
    python -m bench.bench_loadgen --ghz-config deploy/loadtest/check-const-c16.json --target host:50051

Requests go out pre-serialised and responses are not decoded (as raw bytes), so the
client spends its CPU on gRPC, not protobuf: on a shared 2-core machine the load
generator competes with the servers it measures, and that competition is kept small.
Without --target a local suite is started (`imagetrust up`-style: three processes).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import pathlib
import re
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator

from grpc import aio

from imagetrust.channel import MAX_MESSAGE_BYTES
from imagetrust.suite import Ports, running_suite
from imagetrust.v1 import gateway_pb2

REPO = pathlib.Path(__file__).resolve().parent.parent
LOADTEST = REPO / "deploy" / "loadtest"
CHECK_METHOD = "/imagetrust.v1.ImageTrust/Check"
DEFAULT_LEVELS = (1, 4, 16)  # concurrency levels compared side by side
DEFAULT_DURATION_S = 10.0  # seconds per level
QUICK_DURATION_S = 3.0  # seconds per level with --quick
QUICK_LEVELS = (1, 8)  # concurrency levels with --quick (calls in flight)
DEFAULT_TIMEOUT_S = 10.0  # seconds per call, as ghz's default 20 s is too lax for a 3 s budget
PERCENTILES = (10, 25, 50, 75, 90, 95, 99)  # percent, the latency distribution ghz prints


@dataclasses.dataclass(frozen=True)
class LoadSpec:
    """One load level, with ghz's meaning for each field."""

    concurrency: int = 16  # workers, each with one call in flight (ghz -c)
    duration_s: float = DEFAULT_DURATION_S  # ghz -z
    rps: float = 0.0  # total rate limit, calls per second; 0: as fast as possible (ghz --rps)
    connections: int = 1  # gRPC channels the workers share (ghz --connections)
    timeout_s: float = DEFAULT_TIMEOUT_S  # per-call deadline (ghz -t)
    skip_first: int = 0  # calls left out of the statistics, warm-up (ghz --skipFirst)


@dataclasses.dataclass
class Result:
    spec: LoadSpec
    latencies_s: list[float]
    codes: collections.Counter
    elapsed_s: float

    @property
    def count(self) -> int:
        return sum(self.codes.values())

    @property
    def rps(self) -> float:
        return self.count / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def ok(self) -> int:
        return self.codes.get("OK", 0)

    def percentile_ms(self, p: float) -> float:
        if not self.latencies_s:
            return float("nan")
        ordered = sorted(self.latencies_s)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index] * 1000

    def summary(self, title: str = "") -> str:
        lat = self.latencies_s or [float("nan")]
        lines = [
            f"Summary{f' ({title})' if title else ''}:",
            f"  Count:\t{self.count}",
            f"  Total:\t{self.elapsed_s:.2f} s",
            f"  Slowest:\t{max(lat) * 1000:.2f} ms",
            f"  Fastest:\t{min(lat) * 1000:.2f} ms",
            f"  Average:\t{statistics.fmean(lat) * 1000:.2f} ms",
            f"  Requests/sec:\t{self.rps:.2f}",
            "",
            "Latency distribution:",
            *(f"  {p} % in {self.percentile_ms(p):.2f} ms" for p in PERCENTILES),
            "",
            "Status code distribution:",
            *(f"  [{code}]\t{n} responses" for code, n in self.codes.most_common()),
        ]
        return "\n".join(lines)


class _Pacer:
    """A shared rate limit (ghz's --rps): hands out send times 1/rps apart."""

    def __init__(self, rps: float) -> None:
        self.interval_s = 1.0 / rps if rps > 0 else 0.0
        self.next_s = time.perf_counter()

    async def wait(self, deadline_s: float) -> bool:
        """Sleeps until this caller's send time; False when that is past the deadline
        (then nothing is sent: idle workers must not stretch the measured duration)."""
        now = time.perf_counter()
        if not self.interval_s:
            return now < deadline_s
        slot = max(self.next_s, now)
        if slot >= deadline_s:
            return False
        self.next_s = slot + self.interval_s
        if slot > now:
            await asyncio.sleep(slot - now)
        return True


def _channel_options() -> list[tuple[str, object]]:
    return [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        # Separate channels must be separate connections (ghz --connections), not shared
        # subchannels.
        ("grpc.use_local_subchannel_pool", 1),
    ]


async def run_load(target: str, payloads: list[bytes], spec: LoadSpec) -> Result:
    """Drives Check at `target` with the serialised CheckRequests in `payloads` (cycled)."""
    if not payloads:
        raise ValueError("no request payloads")
    channels = [aio.insecure_channel(target, options=_channel_options()) for _ in range(max(1, spec.connections))]
    calls = [ch.unary_unary(CHECK_METHOD, request_serializer=None, response_deserializer=None) for ch in channels]
    latencies: list[float] = []
    codes: collections.Counter = collections.Counter()
    pacer = _Pacer(spec.rps)
    sent = 0
    try:
        for ch in channels:
            try:
                await asyncio.wait_for(ch.channel_ready(), timeout=spec.timeout_s)
            except TimeoutError:  # bare, it said nothing about what was not reached
                raise ConnectionError(f"{target} not reachable within {spec.timeout_s:g} s") from None
        start = time.perf_counter()
        deadline = start + spec.duration_s

        async def worker(index: int) -> None:
            nonlocal sent
            call = calls[index % len(calls)]
            while await pacer.wait(deadline):
                n = sent
                sent += 1
                t0 = time.perf_counter()
                try:
                    await call(payloads[n % len(payloads)], timeout=spec.timeout_s)
                    code = "OK"
                except aio.AioRpcError as exc:
                    code = exc.code().name
                if n >= spec.skip_first:
                    latencies.append(time.perf_counter() - t0)
                    codes[code] += 1

        await asyncio.gather(*(worker(i) for i in range(spec.concurrency)))
        elapsed = time.perf_counter() - start
    finally:
        for ch in channels:
            await ch.close()
    return Result(spec, latencies, codes, elapsed)


# ----- request data -------------------------------------------------------------------


def load_payloads(paths: list[pathlib.Path], *, skip_metadata: bool = False) -> list[bytes]:
    """Serialised CheckRequests from ghz .bin files (single or count-prefixed) or images."""
    sys.path.insert(0, str(LOADTEST))
    import make_data  # type: ignore[import-not-found]  # deploy/loadtest/make_data.py, put on sys.path above

    requests: list[gateway_pb2.CheckRequest] = []
    for path in paths:
        if path.suffix == ".bin":
            data = path.read_bytes()
            try:
                requests.extend(make_data.read_delimited(data))
            except Exception:  # noqa: BLE001 - not count-prefixed: one message
                requests.append(gateway_pb2.CheckRequest.FromString(data))
        else:
            requests.append(make_data.check_request(path, len(requests)))
    for request in requests:
        request.options.skip_metadata = skip_metadata
    return [r.SerializeToString() for r in requests]


def default_payloads(**kwargs) -> list[bytes]:
    sys.path.insert(0, str(LOADTEST))
    import make_data

    return load_payloads(make_data.find_images([]), **kwargs)


# ----- ghz configs ----------------------------------------------------------------------


def parse_duration_s(value: str | int | float) -> float:
    """ghz/Go durations as used in the configs: 500ms, 15s, 2m, 1h."""
    if isinstance(value, (int, float)):
        return float(value)
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    total, pos = 0.0, 0
    for match in re.finditer(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * units[match.group(2)]
        pos = match.end()
    if pos != len(value) or not value:
        raise ValueError(f"unsupported duration {value!r}")
    return total


def read_ghz_config(path: pathlib.Path) -> dict:
    text = path.read_text()
    return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)


def specs_from_ghz(config: dict) -> list[LoadSpec]:
    """The load levels a ghz config describes: one (const) or one per step (step)."""
    base = LoadSpec(
        concurrency=int(config.get("concurrency", 50)),
        duration_s=parse_duration_s(config.get("duration", "10s")),
        rps=float(config.get("rps", 0)),
        connections=int(config.get("connections", 1)),
        timeout_s=parse_duration_s(config.get("timeout", "20s")),
        skip_first=int(config.get("skipFirst", 0)),
    )
    schedule = config.get("load-schedule", "const")
    if schedule == "const":
        return [base]
    if schedule == "step":
        step_s = parse_duration_s(config["load-step-duration"])
        start, end, step = int(config["load-start"]), int(config["load-end"]), int(config["load-step"])
        rates = range(start, end + (1 if step > 0 else -1), step)
        return [dataclasses.replace(base, rps=float(r), duration_s=step_s, skip_first=0) for r in rates]
    raise ValueError(f"load-schedule {schedule!r} is not supported here (const, step)")


# ----- local services ----------------------------------------------------------------


@contextlib.contextmanager
def local_suite() -> Iterator[str]:
    """metadata, synthesis and gateway as three processes on free ports; yields the target."""
    with tempfile.TemporaryDirectory(prefix="imagetrust-bench-") as tmp:
        env = {"IMAGETRUST_REGISTRY_PATH": os.path.join(tmp, "registry.sqlite3"), "IMAGETRUST_LOG_LEVEL": "WARNING"}
        with running_suite(Ports.free(), log_dir=tmp, extra_env=env) as ports:
            yield f"127.0.0.1:{ports.gateway}"


def print_comparison(rows: list[tuple[str, Result]], baseline: Result) -> None:
    print(f"\n{'level':<22}{'RPS':>9}{'x base':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for label, r in rows:
        ratio = r.rps / baseline.rps if baseline.rps else float("nan")
        errors = r.count - r.ok
        print(
            f"{label:<22}{r.rps:>9.1f}{ratio:>8.2f}{r.percentile_ms(50):>9.1f}"
            f"{r.percentile_ms(90):>9.1f}{r.percentile_ms(99):>9.1f}{errors:>8}"
        )


async def _run_levels(
    target: str, payloads: list[bytes], levels: list[tuple[str, LoadSpec]]
) -> list[tuple[str, Result]]:
    rows = []
    for label, spec in levels:
        result = await run_load(target, payloads, spec)
        print(result.summary(label), flush=True)
        print(flush=True)
        rows.append((label, result))
    return rows


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", help="gateway host:port (default: start a local suite)")
    parser.add_argument("--ghz-config", type=pathlib.Path, help="run a deploy/loadtest ghz config")
    parser.add_argument(
        "--data", type=pathlib.Path, nargs="*", help=".bin request files or images (default: imagetrust/samples)"
    )
    parser.add_argument("--concurrency", type=int, nargs="*", help=f"levels to compare (default {DEFAULT_LEVELS})")
    parser.add_argument("--rps", type=float, help="rate limit per level (default 0: none)")
    parser.add_argument(
        "--duration",
        type=float,
        help=f"seconds per level (default {DEFAULT_DURATION_S}; with --ghz-config, overrides its duration)",
    )
    parser.add_argument("--connections", type=int, help="channels to the target (default 1)")
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_DURATION_S:.0f} s per level, levels {QUICK_LEVELS}"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if args.ghz_config is not None:
        # As with ghz, flags override the config file: --duration and --data. The load shape
        # (concurrency, rate, connections) is what the config is for; taking it from flags
        # too would silently drop one of the two, so that is refused.
        shape = [
            flag
            for flag, value in (
                ("--concurrency", args.concurrency),
                ("--rps", args.rps),
                ("--connections", args.connections),
            )
            if value is not None
        ]
        if shape:
            parser.error(f"{', '.join(shape)}: the load shape comes from --ghz-config; edit the config instead")
        config = read_ghz_config(args.ghz_config)
        specs = specs_from_ghz(config)
        if args.duration is not None:
            specs = [dataclasses.replace(s, duration_s=args.duration) for s in specs]
        elif args.quick:
            specs = [dataclasses.replace(s, duration_s=min(s.duration_s, QUICK_DURATION_S)) for s in specs]
        if args.quick:
            specs = specs[:3]
        data = [REPO / config["binary-file"]] if "binary-file" in config else None
        if args.data:
            data = args.data
        elif data and not data[0].exists():
            # run.sh generates it first; run alone (as docs/sre.md shows), use the requests
            # make_data.py writes by default, the bundled samples, instead of failing.
            print(
                f"{config['binary-file']} not generated (deploy/loadtest/make_data.py): using the bundled samples",
                flush=True,
            )
            data = None
        levels = [
            (f"{args.ghz_config.stem} rps={s.rps:g}" if s.rps else f"{args.ghz_config.stem} c={s.concurrency}", s)
            for s in specs
        ]
    else:
        duration = args.duration or (QUICK_DURATION_S if args.quick else DEFAULT_DURATION_S)
        concurrency = args.concurrency or (QUICK_LEVELS if args.quick else DEFAULT_LEVELS)
        levels = [
            (f"c={c}", LoadSpec(c, duration, args.rps or 0.0, args.connections or 1, skip_first=c)) for c in concurrency
        ]
        data = args.data
    payloads = load_payloads(data) if data else default_payloads()
    print(
        f"load generator: {len(payloads)} request(s), {sum(map(len, payloads)) // len(payloads)} bytes on average",
        flush=True,
    )
    with contextlib.ExitStack() as stack:
        target = args.target or stack.enter_context(local_suite())
        print(f"target: {target}\n", flush=True)
        try:
            rows = asyncio.run(_run_levels(target, payloads, levels))
        except ConnectionError as exc:
            raise SystemExit(f"bench_loadgen: {exc}") from None
    print_comparison(rows, rows[0][1])
    return 0 if all(r.ok for _, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
