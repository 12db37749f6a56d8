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
        with pytest.raises(UserInputError, match="--checkpoint step_N") as exc:
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
