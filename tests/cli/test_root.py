import json
import subprocess
import sys

from click.testing import CliRunner

import cnnkit
from cnnkit.cli._app import cli


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"cnnkit, version {cnnkit.__version__}"


def test_every_command_has_help():
    runner = CliRunner()
    names = cli.list_commands(None)
    assert "face" in names
    for name in names:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage:" in result.output


def test_import_cnnkit_loads_no_torch():
    code = "import sys, cnnkit, cnnkit.core, cnnkit.cli; print(json.dumps(['torch' in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", "import json;" + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [False]


def test_help_loads_every_command_but_no_library_code():
    """The root group imports every command module: they must import only click and cnnkit.core."""
    code = ("import json, sys\nfrom click.testing import CliRunner\nfrom cnnkit.cli._app import cli\n"
            "r = CliRunner().invoke(cli, ['--help'])\n"
            "print(json.dumps([r.exit_code, sorted(m for m in sys.modules if m == 'torch' or m.startswith('cnnkit.')"
            " and m.split('.')[1] not in ('cli', 'core'))]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [0, []]
