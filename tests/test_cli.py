from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from examples.inventory.contract import inventory
from typer.testing import CliRunner

from trellis.auth import SessionKey
from trellis.cli import app

runner = CliRunner()


def test_keys_new_writes_a_0600_seed_and_prints_only_the_public_key(tmp_path: Path) -> None:
    target = tmp_path / "svc.seed"
    result = runner.invoke(app, ["keys", "new", "--out", str(target), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    key = SessionKey.load(target)
    assert data["publicKey"] == key.public_key
    assert key.seed not in result.output
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    again = runner.invoke(app, ["keys", "new", "--out", str(target)])
    assert again.exit_code == 2 and "refusing to overwrite" in again.output
    shown = runner.invoke(app, ["keys", "show", str(target)])
    assert shown.stdout.strip() == key.public_key


def test_contract_build_digest_and_check(tmp_path: Path) -> None:
    target = tmp_path / "inventory.json"
    built = runner.invoke(
        app, ["contract", "build", "examples.inventory.contract:inventory", "-o", str(target)]
    )
    assert built.exit_code == 0, built.output
    assert json.loads(target.read_text()) == inventory.manifest
    for source in (str(target), "examples.inventory.contract:inventory"):
        digest = runner.invoke(app, ["contract", "digest", source])
        assert digest.stdout.strip() == inventory.digest
        checked = runner.invoke(app, ["contract", "check", source, "--json"])
        assert checked.exit_code == 0
        assert json.loads(checked.stdout) == {
            "ok": True,
            "digest": inventory.digest,
            "problems": [],
        }


def test_contract_check_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    bad = dict(inventory.manifest)
    bad["id"] = "Inventory"
    bad["rpc"] = {
        "Items.Get": {**inventory.manifest["rpc"]["Items.Get"], "input": {"schema": "Itm"}}
    }
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    result = runner.invoke(app, ["contract", "check", str(path), "--json"])
    assert result.exit_code == 1
    problems = json.loads(result.stdout)["problems"]
    assert {"path": "rpc.Items.Get.input", "message": "unknown schema 'Itm'"} in problems
    assert any(p["path"] == "id" for p in problems)
    human = runner.invoke(app, ["contract", "check", str(path)])
    assert human.exit_code == 1 and "unknown schema 'Itm'" in human.output


def test_clear_errors_for_bad_sources(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["contract", "digest", "no_such_module:x"])
    assert missing.exit_code == 2 and "cannot import module" in missing.output
    notjson = tmp_path / "x.json"
    notjson.write_text("{nope")
    result = runner.invoke(app, ["contract", "check", str(notjson)])
    assert result.exit_code == 2 and "not valid JSON" in result.output
    wrong = runner.invoke(app, ["contract", "build", "examples.inventory.contract:ItemNotFound"])
    assert wrong.exit_code == 2 and "not a trellis Contract" in wrong.output
