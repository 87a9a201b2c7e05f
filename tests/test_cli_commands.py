"""`sipas` imports a command's module only when that command runs (workers.cli.COMMAND_MODULES),
so the long-running processes do not carry what they never use (issue 9: every process under
250 MB)."""

from __future__ import annotations

import importlib
import subprocess
import sys

from click.testing import CliRunner

from workers.cli import COMMAND_MODULES, cli


def test_every_command_is_found_in_the_module_the_table_names() -> None:
    modules = sorted(set(COMMAND_MODULES.values()))
    declared = {
        command.name: module
        for module in modules
        for command in importlib.import_module(f"workers.cli.{module}").COMMANDS
    }
    assert declared == COMMAND_MODULES
    listed = CliRunner().invoke(cli, ["--help"])
    assert listed.exit_code == 0, listed.output
    assert all(name in listed.output for name in COMMAND_MODULES)


def test_the_worker_command_leaves_the_export_and_migration_stacks_unloaded() -> None:
    probe = (
        "import sys\n"
        "from workers.cli import cli\n"
        "from workers.cli.processes import worker\n"
        "assert cli.get_command(None, 'worker') is worker\n"
        "import workers.inbound, workers.sending, workers.timers\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert not {"openpyxl", "numpy", "alembic", "mako", "PIL", "jinja2"} & set(loaded)
