"""pipelines/_common.train_in_parallel: finished runs get DONE; a drain file lets the running runs finish and starts
no new one, so a pipeline can be stopped cleanly before its machine is taken away."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines"))
import _common  # noqa: E402


def fake_train(monkeypatch):
    """start_cli that 'trains' by writing a finished summary.json into the run folder (its first argument)."""
    started = []

    def start_cli(args, *, threads, log_file):
        started.append((Path(args[0]).name, threads))
        code = f"import json, pathlib; pathlib.Path({str(args[0])!r}, 'summary.json').write_text(json.dumps({{'finished': True}}))"
        return subprocess.Popen([sys.executable, "-c", code])

    monkeypatch.setattr(_common, "start_cli", start_cli)
    return started


def commands(tmp_path, names):
    out = {}
    for n in names:
        (tmp_path / n).mkdir()
        out[n] = (tmp_path / n, [tmp_path / n])
    return out


def test_runs_finish_in_order_and_get_done(tmp_path, monkeypatch):
    started = fake_train(monkeypatch)
    (tmp_path / "DRAIN").write_text("")  # left from an earlier invocation: removed, not obeyed
    seconds = _common.train_in_parallel(commands(tmp_path, "abc"), jobs=2, log_dir=tmp_path / "logs")
    assert sorted(seconds) == ["a", "b", "c"] and [n for n, _ in started] == ["a", "b", "c"]
    assert all((tmp_path / n / "DONE").is_file() for n in "abc") and not (tmp_path / "DRAIN").exists()
    assert {t for _, t in started} == {max(1, _common.usable_cores() // 2)}


def test_drain_file_stops_new_runs_and_exits_not_finished(tmp_path, monkeypatch):
    started = fake_train(monkeypatch)
    done = []

    def on_done(name, seconds):
        done.append(name)
        (tmp_path / "DRAIN").write_text("")  # someone drains the pipeline while `a` runs

    with pytest.raises(SystemExit) as exc:
        _common.train_in_parallel(commands(tmp_path, "abc"), jobs=1, log_dir=tmp_path / "logs", on_done=on_done)
    assert exc.value.code == _common.NOT_FINISHED == 3
    assert done == ["a"] and [n for n, _ in started] == ["a"]
    assert (tmp_path / "a" / "DONE").is_file() and not (tmp_path / "b" / "DONE").exists()
    assert not (tmp_path / "DRAIN").exists()  # consumed: the next invocation continues with b and c
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["finished"]
