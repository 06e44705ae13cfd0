"""The ``facelm`` command: one sub-command per pipeline step.

Each sub-command lives in the module that does its work; that module exposes
``add_arguments(parser)`` and ``main(args) -> int | None``. Modules are imported only
when their command runs, so ``facelm --help`` stays fast and a command never pays for
torch unless it needs it. Expected failures (:class:`FacelmError`, bad arguments, and an
``OSError`` on a path the user gave) print one line and exit with status 2; Ctrl-C, SIGTERM and SIGHUP
print one line and exit with 128 + the signal (:mod:`facelm.signals`).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from facelm.errors import FacelmError
from facelm.signals import Terminated, ignore_signals_until_exit, signals_end_like_ctrl_c
from facelm.verbs import COMMANDS  # the command list: each verb's module, help line and the config it reads

#: commands that train: each process holds one GPU slot when FACELM_GPU_SLOTS is set (facelm.training.gpu_slot)
GPU_COMMANDS = {"train", "tune", "distill", "ablation"}


def _top_level_help() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: facelm COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {verb.help}" for name, verb in COMMANDS.items()]
    lines += ["", "Run `facelm COMMAND --help` for a command's options."]
    return "\n".join(lines)


class _OneLineParser(argparse.ArgumentParser):
    """Bad arguments are one line, like every other facelm error (argparse prints the usage too)."""

    def error(self, message: str):
        raise FacelmError(f"{message} (see `{self.prog} --help`)")


def build_parser(command: str) -> argparse.ArgumentParser:
    """The argument parser of one command (imports the command's module)."""
    verb = COMMANDS[command]
    parser = _OneLineParser(prog=f"facelm {command}", description=verb.help)
    importlib.import_module(verb.module).add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv_given, argv = argv, list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_top_level_help())
        return 0 if argv else 2
    if argv[0] == "--version":
        from facelm import __version__

        print(__version__)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"facelm: error: unknown command {command!r} (see `facelm --help`)", file=sys.stderr)
        return 2
    try:
        with signals_end_like_ctrl_c():
            status = _run(command, rest)
        if argv_given is None:
            ignore_signals_until_exit()
    except Terminated as err:
        print(f"facelm {command}: terminated by {err.name}", file=sys.stderr)
        return err.exit_status
    except FacelmError as err:
        print(f"facelm {command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a path the user gave that cannot be read or written (a file, no permission, disk full)
        where = f"{err.filename}: " if err.filename else ""
        print(f"facelm {command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"facelm {command}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


def _run(command: str, rest: list[str]) -> int | None:
    module = importlib.import_module(COMMANDS[command].module)
    args = build_parser(command).parse_args(rest)
    if command in GPU_COMMANDS:
        from facelm.training.gpu_slot import claim_gpu_slot

        claim_gpu_slot()
    return module.main(args)


if __name__ == "__main__":
    sys.exit(main())
