"""The `imagetrust` command: serve, up, check, demo, version."""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import os
import pathlib
import sys
import tempfile
import time

import imagetrust

SAMPLES_DIR = pathlib.Path(__file__).parent / "samples"
STOLEN_PREFIX = "stolen_"  # bundled samples checked as a second seller by `imagetrust demo`
DEMO_SELLER, DEMO_OTHER_SELLER = "demo-seller", "demo-other-seller"
DEFAULT_CHECK_WORKERS = 4  # concurrent Check calls for many files
SERVER_MODULE = "services.main"  # the servers' entry point, run by `imagetrust serve`
EXIT_INTERRUPTED = 130  # exit code after Ctrl-C: 128 + SIGINT, as shells report it
EXIT_BROKEN_PIPE = 141  # exit code when stdout closes early: 128 + SIGPIPE, like other Unix tools


def serve(argv: list[str]) -> int:
    """`imagetrust serve SERVICE [flags]`: runs the server entry point (services/main.py) in
    this process's place, so signals and the exit code are the server's own. The client
    package imports nothing of the servers; their flags are theirs (`imagetrust serve
    SERVICE --help`)."""
    command = [sys.executable, "-m", SERVER_MODULE, "--prog", "imagetrust serve", *argv]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)
    return 1  # not reached: execv replaces the process or raises OSError


def _check_one(client, path: str, args: argparse.Namespace):
    import grpc

    try:
        response = client.check(
            path,
            seller_id=args.seller_id,
            listing_id=args.listing_id,
            conversation_id=args.conversation_id,
            platform=args.platform,
            register=args.register,
            want_heatmap=args.heatmap,
            timeout=args.timeout,
        )
        return path, response, None
    except grpc.RpcError as exc:
        return path, None, f"{exc.code().name}: {exc.details()}"
    except OSError as exc:
        return path, None, f"cannot read file: {exc.strerror or exc}"


def _run_checks(target: str, files: list[str], args: argparse.Namespace) -> list:
    """Checks files through the gateway (JSON lines printed as they come with --json)."""
    from tqdm import tqdm

    from imagetrust import report
    from imagetrust.client import Client

    rows = []
    # Only for a person watching: a log file or a CI job's captured stderr would collect
    # one line per redraw.
    show_progress = len(files) > 1 and not args.no_progress and sys.stderr.isatty()
    with Client(target, timeout=args.timeout) as client:
        pool = concurrent.futures.ThreadPoolExecutor(args.workers)
        try:
            futures = [pool.submit(_check_one, client, path, args) for path in files]
            with tqdm(futures, total=len(files), disable=not show_progress, unit="img", file=sys.stderr) as bar:
                for future in bar:
                    row = future.result()
                    rows.append(row)
                    if args.json:
                        print(report.to_json_line(*row), flush=True)
        finally:
            # On Ctrl-C or a closed stdout the files not started yet are dropped here, and
            # closing the channel (leaving `with Client`) cancels the calls in flight; the
            # executor's own `with` would first check every remaining file.
            pool.shutdown(wait=False, cancel_futures=True)
    return rows


def _finish(rows: list, args: argparse.Namespace) -> int:
    """Prints the table (unless --json); 1 if any call failed."""
    from imagetrust import report

    if not args.json:
        print(report.table(rows))
    return 1 if any(error for _, _, error in rows) else 0


def check_files(target: str, files: list[str], args: argparse.Namespace) -> int:
    """Checks files through the gateway; prints a table or JSON lines; 1 if any call failed."""
    return _finish(_run_checks(target, files, args), args)


def _cmd_check(args: argparse.Namespace) -> int:
    return check_files(args.addr, args.files, args)


def _cmd_up(args: argparse.Namespace) -> int:
    import signal

    from imagetrust.suite import Ports, ServiceExited, running_suite

    ports = Ports()
    stop = {"flag": False}

    def _stop(*_):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        with running_suite(ports, log_dir=args.log_dir):
            print(
                f"ImageTrust is up: gateway 127.0.0.1:{ports.gateway} (metrics :{ports.gateway_metrics}), "
                f"metadata :{ports.metadata} (:{ports.metadata_metrics}), synthesis :{ports.synthesis} "
                f"(:{ports.synthesis_metrics}). Try: imagetrust check PHOTO.jpg   Ctrl-C stops.",
                flush=True,
            )
            while not stop["flag"]:
                time.sleep(0.2)
    except (ServiceExited, TimeoutError) as exc:
        if stop["flag"]:
            return 0  # Ctrl-C while starting: the services got it too and stopped, as asked
        return _suite_failed("up", exc, args.log_dir)
    return 0


def _suite_failed(command: str, exc: Exception, log_dir: str | None) -> int:
    """One line for a service that did not come up (a port in use, a bad setting): its own
    error is in its log, or above on the terminal."""
    where = f"its log in {log_dir}" if log_dir else "its error above"
    print(f"imagetrust {command}: {exc} before it was ready (see {where})", file=sys.stderr)
    return 1


def _cmd_demo(args: argparse.Namespace) -> int:
    from imagetrust.suite import Ports, ServiceExited, running_suite

    files = args.files or sorted(str(p) for p in SAMPLES_DIR.glob("*.jp*g"))
    ports = Ports.free()
    log_dir = args.log_dir or tempfile.mkdtemp(prefix="imagetrust-demo-")
    with tempfile.TemporaryDirectory() as registry_dir:
        env = {"IMAGETRUST_REGISTRY_PATH": f"{registry_dir}/registry.sqlite3"}
        print(f"starting gateway, metadata and synthesis (logs in {log_dir}) ...", file=sys.stderr, flush=True)
        try:
            with running_suite(ports, log_dir=log_dir, extra_env=env):
                args.register = True
                target = f"127.0.0.1:{ports.gateway}"
                if args.files:
                    return check_files(target, files, args)
                # The bundled story: one seller lists the three photos, then another seller
                # lists a stolen copy of one of them (resized, re-encoded, metadata gone).
                originals = [f for f in files if not pathlib.Path(f).name.startswith(STOLEN_PREFIX)]
                copies = [f for f in files if pathlib.Path(f).name.startswith(STOLEN_PREFIX)]
                rows = _run_checks(target, originals, argparse.Namespace(**{**vars(args), "seller_id": DEMO_SELLER}))
                rows += _run_checks(
                    target, copies, argparse.Namespace(**{**vars(args), "seller_id": DEMO_OTHER_SELLER})
                )
                return _finish(rows, args)
        except (ServiceExited, TimeoutError) as exc:
            return _suite_failed("demo", exc, log_dir)


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"imagetrust {imagetrust.__version__} (api imagetrust.v1)")
    return 0


def _positive(kind: type):
    """An argparse type: a finite number above zero (0 workers crashed the pool; a 0 s or
    infinite deadline failed every call with DEADLINE_EXCEEDED)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not 0 < value < math.inf:
            raise argparse.ArgumentTypeError(f"expected a finite number above 0, got {text!r}")
        return value

    return parse


def _add_check_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seller-id", default="")
    p.add_argument("--listing-id", default="")
    p.add_argument("--conversation-id", default="")
    p.add_argument("--platform", default="")
    p.add_argument("--register", action="store_true", help="record the sighting in the reuse registry")
    p.add_argument(
        "--heatmap", action="store_true", help="ask for the synthesis heatmap (patch outlier scores or tile scores)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    p.add_argument("--timeout", type=_positive(float), default=30.0, help="seconds per call")
    p.add_argument("--workers", type=_positive(int), default=DEFAULT_CHECK_WORKERS, help="concurrent calls")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar on stderr (it is shown only when stderr is a terminal)",
    )


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imagetrust", description=imagetrust.__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    # Only listed here: main() hands `serve ...` to the server entry point before parsing.
    sub.add_parser("serve", help="run one service: serve gateway|metadata|synthesis [flags] (serve SERVICE --help)")

    up = sub.add_parser("up", help="run all three services on localhost (embedded registry, CPU)")
    up.add_argument("--log-dir", default=None, help="write each service's log here instead of the terminal")
    up.set_defaults(func=_cmd_up)

    check = sub.add_parser("check", help="check image files through the gateway")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--addr", default="localhost:50051", help="gateway address")
    _add_check_options(check)
    check.set_defaults(func=_cmd_check)

    demo = sub.add_parser("demo", help="bring the suite up on free ports, check sample images, stop")
    demo.add_argument("files", nargs="*", metavar="FILE", help="images to check (default: the bundled samples)")
    demo.add_argument("--log-dir", default=None)
    _add_check_options(demo)
    demo.set_defaults(func=_cmd_demo)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=_cmd_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        return serve(argv[1:])
    args = get_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("imagetrust: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout was closed early (`imagetrust check --json ... | head -1`): stop quietly, and
        # point stdout at /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
