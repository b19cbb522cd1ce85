"""The servers' entry point: `imagetrust-server gateway|metadata|synthesis [flags]`.

The same as `python -m services.<name> [flags]` (the container entry point) and what
`imagetrust serve <name>` runs. Flags and IMAGETRUST_* variables come from the service's
config class (services/<name>/config.py); `--help` lists them with their defaults.

Exit codes: 0 after a graceful stop (SIGTERM, Ctrl-C), 1 when the service could not start
(the reason is one ERROR line in the configured log format), 2 for a setting that does not
parse or validate.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from services.common import config as config_mod
from services.common import logging as logging_mod
from services.common.server import ServerRuntime, StartupError, log_startup_failure
from services.service_specs import SERVICES, build

DEFAULT_PROG = "imagetrust-server"
EXIT_USAGE = 2  # exit code for bad settings, as argparse uses for bad flags


def _add_service_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    config_mod.add_arguments(parser, SERVICES[name].config_class)
    parser.set_defaults(service=name, prog_name=parser.prog)


def get_parser(prog: str = DEFAULT_PROG, service: str | None = None) -> argparse.ArgumentParser:
    """The parser of every service (`prog SERVICE --flags`), or of one (`prog --flags`)."""
    if service is not None:
        parser = argparse.ArgumentParser(prog=prog, description=f"Run the ImageTrust {service} service.")
        _add_service_arguments(parser, service)
        return parser
    parser = argparse.ArgumentParser(prog=prog, description="Run one ImageTrust service.")
    sub = parser.add_subparsers(dest="service", required=True)
    for name in SERVICES:
        _add_service_arguments(sub.add_parser(name, help=f"run the {name} service"), name)
    return parser


def serve(name: str, args: argparse.Namespace, prog: str) -> int:
    """Loads the settings, builds the service, serves until SIGTERM; the exit code."""
    try:
        config = config_mod.from_args(SERVICES[name].config_class, args)
    except ValueError as exc:  # a flag or IMAGETRUST_* value that does not parse or validate
        print(f"{prog}: invalid setting: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging_mod.configure(name, config.log_level, config.log_format)
    try:
        service = build(name, config)
    except Exception as exc:  # noqa: BLE001 - e.g. the gateway's policy or API-keys file: a failed start
        log_startup_failure(name, exc)
        return 1
    try:
        asyncio.run(ServerRuntime(service, config).serve_until_signal())
    except StartupError:
        return 1  # the reason is logged, in the configured format
    return 0


def main(argv: list[str] | None = None, *, prog: str = DEFAULT_PROG, service: str | None = None) -> int:
    """argv: the flags (after the service's name unless `service` is given). A leading
    `--prog NAME` sets the name the help and errors show (`imagetrust serve` passes its own)."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["--prog"] and len(args_in) > 1:
        prog, args_in = args_in[1], args_in[2:]
    args = get_parser(prog, service).parse_args(args_in)
    return serve(args.service, args, args.prog_name)


if __name__ == "__main__":
    sys.exit(main())
