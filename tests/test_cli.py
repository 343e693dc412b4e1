"""The `jaxpoison` command and the package import surface."""

import json
import subprocess
import sys

import pytest

from jaxpoison import cli
from jaxpoison.experiments import DEMOS, RECIPES, Report, Table, demo, load_all, recipe


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "reproduce", "list", "bench"):
        assert command in out


def test_list_prints_every_registered_recipe(capsys):
    load_all()
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in RECIPES:
        assert name in out


def test_unknown_recipe_is_an_error_naming_the_choices(capsys):
    assert cli.main(["reproduce", "no-such-recipe", "--no-progress"]) == 2
    assert "unknown recipe 'no-such-recipe'" in capsys.readouterr().err


def test_reproduce_writes_markdown_and_json(tmp_path, capsys):
    @recipe("_test-recipe", "a recipe used by the CLI test", part="test")
    def _run(ctx):
        total = sum(ctx.progress(range(3), "summing"))
        return Report("_test-recipe", "Test", tables=[
            Table("sums", ["quick", "seed", "total"], [[ctx.quick, ctx.seed, total]])])

    try:
        code = cli.main(["reproduce", "_test-recipe", "--quick", "--seed", "7",
                         "--out", str(tmp_path), "--no-progress"])
    finally:
        RECIPES.pop("_test-recipe")
    assert code == 0
    out = capsys.readouterr().out
    assert "backend" in out.splitlines()[0]
    data = json.loads((tmp_path / "_test-recipe.json").read_text())
    assert data["tables"][0]["rows"] == [[True, 7, 3]]
    assert data["meta"]["seed"] == 7 and data["meta"]["quick"] is True
    md = (tmp_path / "_test-recipe.md").read_text()
    assert "| True | 7 | 3 |" in md and "reproduce _test-recipe --quick --seed 7" in md


def test_demo_runs_sections_in_order_and_writes_one_report(tmp_path, monkeypatch):
    calls = []
    saved = dict(DEMOS)
    DEMOS.clear()
    monkeypatch.setattr("jaxpoison.experiments.load_all", lambda: None)

    @demo("second", order=2)
    def _b(ctx):
        calls.append("second")
        return Report("second", "B", notes=["hello"])

    @demo("first", order=1)
    def _a(ctx):
        calls.append("first")
        return Report("first", "A", tables=[Table("t", ["x"], [[1.5]])])

    try:
        assert cli.main(["demo", "--out", str(tmp_path), "--no-progress"]) == 0
    finally:
        DEMOS.clear()
        DEMOS.update(saved)
    assert calls == ["first", "second"]
    md = (tmp_path / "demo.md").read_text()
    assert "| 1.5 |" in md and "[second] hello" in md
    assert set(json.loads((tmp_path / "demo.json").read_text())["data"]["seconds"]) == {
        "first", "second"}


def test_import_raises_no_warning():
    code = ("import warnings; warnings.simplefilter('error'); import jaxpoison; "
            "import jaxpoison.attacks, jaxpoison.defenses, jaxpoison.solvers, "
            "jaxpoison.models, jaxpoison.datasets, jaxpoison.theory, jaxpoison.cli; "
            "import sys; assert 'jaxopt' not in sys.modules, 'jaxopt imported'")
    result = subprocess.run([sys.executable, "-W", "error", "-c", code],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
