"""The command line as a newcomer meets it: -h, --version, plain help, one-line errors, --checkpoint."""

from __future__ import annotations

import pickle
import re
import warnings

import pytest
from typer.testing import CliRunner

from mri_harmonic import __version__
from mri_harmonic.cli import app
from mri_harmonic.errors import UserInputError

COMMANDS = [["phantom"], ["preprocess"], ["train"], ["evaluate"], ["translate"], ["reader-study", "score"]]


def test_version_flag_and_short_help():
    runner = CliRunner()
    for flag in ("--version", "-V"):
        res = runner.invoke(app, [flag])
        assert res.exit_code == 0 and res.output.strip() == __version__
    res = runner.invoke(app, ["-h"])
    assert res.exit_code == 0 and "Usage: mri-harmonic" in res.output and "--version" in res.output


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_has_short_help_without_type_noise(command):
    res = CliRunner().invoke(app, [*command, "-h"], terminal_width=120)
    assert res.exit_code == 0, res.output
    assert "<bool>" not in res.output and "Usage:" in res.output
    usage = res.output.split("Usage:")[1].splitlines()[0]
    assert not re.search(r"\{[a-z_]+\}", usage), usage  # arguments in capitals, like OPTIONS


def test_pickled_checkpoint_gives_one_error_line_and_no_torch_warning(tmp_path):
    import os

    from mri_harmonic.checkpoint import read_checkpoint

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "checkpoints" / "latest.pt"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps(Evil(), protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(UserInputError, match="`checkpoint` step_N") as exc:
            read_checkpoint(path)
    assert not caught and "\n" not in str(exc.value)


def test_data_folder_passed_to_train_suggests_a_store_beside_it(tmp_path):
    from mri_harmonic.data.store import SliceStore

    data = tmp_path / "BraTS2019"  # nested as the 2019 release: HGG/<case>/<file>
    (data / "HGG" / "BraTS19_X_1").mkdir(parents=True)
    (data / "HGG" / "BraTS19_X_1" / "BraTS19_X_1_flair.nii.gz").write_bytes(b"")
    with pytest.raises(UserInputError) as exc:
        SliceStore(data)
    msg = str(exc.value)
    assert f"mri-harmonic preprocess {data} " in msg and f"{data}/" not in msg.split("preprocess")[1]


# ---- library errors name parameters, the CLI names flags -------------------------------------------------------------
def test_library_error_names_the_parameter_and_the_cli_the_flag(tmp_path, capsys):
    from mri_harmonic.cli import main
    from mri_harmonic.data.phantom import generate_phantom

    with pytest.raises(UserInputError) as exc:
        generate_phantom(tmp_path / "p", subjects=0, shape=(48, 56, 40), progress=False)
    assert str(exc.value).startswith("`subjects` must be an integer >= 1") and "--subjects" not in str(exc.value)
    capsys.readouterr()
    assert main(["phantom", str(tmp_path / "q"), "--subjects", "0", "--shape", "48,56,40", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --subjects must be an integer >= 1") and "`" not in err
    # a switch is named as the flag that turns it on; names outside the table and double backticks are kept
    from mri_harmonic.cli import cli_message

    assert cli_message("add `resume=True`, drop `resume`, pass `out_dir`") == "add --resume, drop --resume, pass --out"
    assert cli_message("`split_fractions` and ``out_dir``") == "`split_fractions` and ``out_dir``"


def test_every_flag_of_the_table_is_an_option_of_the_cli():
    import typer.main

    from mri_harmonic.cli import FLAGS

    options: set[str] = set()
    stack = [typer.main.get_command(app)]
    while stack:
        cmd = stack.pop()
        stack.extend(getattr(cmd, "commands", {}).values())
        options.update(o for p in cmd.params if p.param_type_name == "option" for o in p.opts)
    assert set(FLAGS.values()) <= options, set(FLAGS.values()) - options


def test_library_errors_do_not_name_cli_flags():
    """UserInputError messages outside mri_harmonic/cli/ name parameters (`out_dir`), not flags (--out)."""
    import ast
    from pathlib import Path

    import mri_harmonic

    root = Path(mri_harmonic.__file__).parent
    flag = re.compile(r"(?<![\w-])--(?!nproc_per_node)[a-z][a-z-]*")
    found = []
    for path in root.rglob("*.py"):
        if "cli" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "UserInputError":
                texts = [n.value for a in node.args for n in ast.walk(a) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
                found += [f"{path.relative_to(root)}:{node.lineno}: {t}" for t in texts if flag.search(t)]
    assert not found, found
