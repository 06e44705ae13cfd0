"""The `facelm` command: every sub-command has help, errors are one line with status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from facelm.cli import COMMANDS, main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facelm", *args], capture_output=True, text=True)


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"facelm {command}" in capsys.readouterr().out


def test_unknown_command_is_one_line():
    result = run_cli("fly")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "unknown command 'fly'" in result.stderr


def test_user_error_is_one_line_naming_the_file(tmp_path):
    result = run_cli("validate-config", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "absent.yaml" in result.stderr and "Traceback" not in result.stderr
