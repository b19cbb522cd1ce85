"""`python -m bench [--full] [NAME ...]`: runs the benchmarks one after another.

Each benchmark prints ratios measured side by side in one run; this runner only sequences
them (never in parallel: they would measure each other). Quick mode by default, so
`make bench` finishes in a few minutes; --full runs the sizes the README's figures come from.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

BENCHMARKS = (
    "bench_metadata",  # metadata analysis vs one full decode, header path vs exiftool
    "bench_registry_robustness",  # perceptual-hash recall vs false matches
    "bench_registry_scale",  # Redis memory, exact/near-dup latency vs linear scan
    "bench_registry_cluster",  # sharded registry on a 3-node Redis Cluster vs one slot
    "bench_reuse_accuracy",  # two-stage near copies vs whole-frame pHash: recall, false accusations
    "bench_reuse_pdq",  # PDQ vs pHash as the retrieval hash on thieves' edits
    "bench_forward",  # model forward alone: batch size and precision (what batching can buy)
    "bench_onnx",  # ONNX Runtime vs torch eager, same network and inputs
    "bench_synthesis",  # dynamic batching vs one at a time
    "bench_synthesis_cost",  # the consistency model per photo vs one full decode
    "bench_gateway",  # gateway vs slowest backend, fan-out vs sequential, kill/restart
    "bench_tracing",  # OpenTelemetry tracing off vs on through the real services
    "bench_loadgen",  # ghz-style load through the gateway
    "bench_replicas",  # throughput vs synthesis replica count
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full sizes (tens of minutes; 1M fingerprints)")
    parser.add_argument("names", nargs="*", metavar="NAME", help="any of: " + ", ".join(BENCHMARKS))
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    failed = []
    for name in args.names or BENCHMARKS:
        command = [sys.executable, "-m", f"bench.{name}"]
        if not args.full:
            command.append("--quick")
        elif name in ("bench_registry_scale", "bench_registry_cluster"):
            command += ["--n", "1000000"]
        print(f"\n=== {name} ({' '.join(command[2:])})", flush=True)
        started = time.monotonic()
        if subprocess.run(command).returncode != 0:
            failed.append(name)
        print(f"=== {name}: {time.monotonic() - started:.0f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
