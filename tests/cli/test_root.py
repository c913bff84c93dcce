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
