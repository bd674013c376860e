"""The README is the contract with new users: its quickstart must match what CI runs, and
its test-kit example must pass as printed."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def quickstart_commands() -> list[str]:
    section = readme_section("Quickstart")
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_quickstart_has_exactly_two_commands_and_ci_runs_the_test_one() -> None:
    commands = quickstart_commands()
    assert len(commands) == 2
    main, tests = commands
    assert "trellis dev" in main
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert tests in ci.splitlines()


def test_the_testing_example_passes_as_printed(pytester: pytest.Pytester) -> None:
    """Each python block of "Testing your service" opens with ``# <file name>``: written to
    those files, they make a project whose one test passes on a real deployment."""
    blocks = re.findall(r"```python\n(.*?)```", readme_section("Testing your service"), re.S)
    files = {block.splitlines()[0].removeprefix("# "): block for block in blocks}
    assert sorted(files) == ["conftest.py", "test_inventory.py"]
    for name, source in files.items():
        pytester.path.joinpath(name).write_text(source, encoding="utf-8")
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
