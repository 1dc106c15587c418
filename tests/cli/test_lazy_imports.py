"""Start-up cost: a command pays only for the libraries it uses.

Importing scikit-learn costs ~1 s and GX ~2.6 s; a command that needs neither (`runs`, a
subcommand's `--help`, a mistyped command) must not import them.
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("sklearn", "great_expectations", "matplotlib", "mlflow", "scipy")


def _imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return set(out.stdout.split())


def _heavy(modules: set[str]) -> list[str]:
    return sorted(h for h in HEAVY if h in modules)


def test_importing_the_cli_imports_no_heavy_library() -> None:
    assert _heavy(_imported_after("import pipelines.cli")) == []


def test_a_light_command_imports_no_heavy_library() -> None:
    code = (
        "from pipelines.cli.main import main\n"
        "for argv in (['runs', '--help'], ['scroe'], ['labels', '--help']):\n"
        "    main(argv)\n"
    )
    assert _heavy(_imported_after(code)) == []


def test_every_command_still_resolves() -> None:
    from click.testing import CliRunner

    from pipelines.cli.main import COMMANDS, cli

    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    for name in COMMANDS:
        assert f"  {name} " in result.output
        sub = CliRunner().invoke(cli, [name, "--help"])
        assert sub.exit_code == 0, (name, sub.output)
        assert "Usage: " in sub.output
