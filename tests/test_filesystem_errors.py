"""Issue 12 cases 15 and 17: a full disk or read-only output gives one line naming the path and
the cause, early where it can, and leaves no partial file; written files get the umask's mode.

The full disk is real where the tests may mount a small tmpfs (root on Linux), and simulated by
an ``OSError(ENOSPC)`` from the file system calls everywhere else.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from test_mix_helpers import write_utterances

from amongus import fsutil
from amongus.fsutil import OutputError, atomic_write_text, check_writable, write_errors
from amongus.manifest import write_jsonl

ENOSPC = os.strerror(errno.ENOSPC)
EROFS = os.strerror(errno.EROFS)


def _raise(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


@pytest.fixture
def small_disk(tmp_path):
    """``make(kib)``: a folder on a tmpfs of that size (skipped where mounting is not allowed);
    ``resize(folder, kib)`` grows it, ``read_only(folder)`` remounts it read-only."""
    mounted: list[Path] = []
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root on Linux")

    def run(*args: str) -> None:
        done = subprocess.run(args, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")

    class Disk:
        @staticmethod
        def make(kib: int) -> Path:
            folder = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
            folder.mkdir()
            run("mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(folder))
            mounted.append(folder)
            return folder

        @staticmethod
        def resize(folder: Path, kib: int) -> None:
            run("mount", "-o", f"remount,size={kib}k", str(folder))

        @staticmethod
        def read_only(folder: Path) -> None:
            run("mount", "-o", "remount,ro", str(folder))

        @staticmethod
        def fill(folder: Path) -> None:
            fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError:
                pass
            finally:
                os.close(fd)

    yield Disk
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


# ------------------------------------------------------------------------------ fsutil itself
def test_failed_atomic_write_names_the_file_and_leaves_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    target.write_text("old")
    monkeypatch.setattr(os, "fsync", _raise(errno.ENOSPC))
    with pytest.raises(OutputError) as caught:
        atomic_write_text(target, "new")
    assert str(caught.value) == f"cannot write {target}: {ENOSPC}"
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value, OSError)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_check_writable_refuses_a_read_only_folder(tmp_path, monkeypatch):
    folder = tmp_path / "out"
    folder.mkdir()
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):  # what a read-only mount answers
        if str(path).startswith(str(folder)) and flags & os.O_CREAT:
            raise OSError(errno.EROFS, EROFS, str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(OutputError) as caught:
        check_writable(folder)
    assert str(folder) in str(caught.value) and EROFS in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores modes")
def test_check_writable_refuses_a_folder_without_write_permission(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError, match=os.strerror(errno.EACCES)):
            check_writable(folder)
    finally:
        folder.chmod(0o755)


def test_torch_serialization_error_becomes_the_disk_cause(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fsync", _raise(errno.ENOSPC))  # the probe meets the full disk too
    with pytest.raises(OutputError) as caught:
        with write_errors(tmp_path / "checkpoint"):
            raise RuntimeError(
                "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"
            )
    assert str(caught.value) == f"cannot write {tmp_path / 'checkpoint'}: {ENOSPC}"


def test_unrelated_errors_pass_through_write_errors(tmp_path):
    with pytest.raises(KeyError):
        with write_errors(tmp_path):
            raise KeyError("not a file system problem")
    with pytest.raises(RuntimeError, match="CUDA"):
        with write_errors(tmp_path):
            raise RuntimeError("CUDA out of memory")


def test_output_error_survives_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(OutputError("/x/y.flac", ENOSPC, errno.ENOSPC)))
    assert str(error) == f"cannot write /x/y.flac: {ENOSPC}" and error.errno == errno.ENOSPC


def test_too_long_final_name_is_refused_before_writing(tmp_path):
    with pytest.raises(OutputError, match=r"file name too long \(300 bytes, limit \d+\)"):
        atomic_write_text(tmp_path / ("x" * 300), "data")
    assert not list(tmp_path.iterdir())


def test_temporary_names_are_short(tmp_path):
    # issue 12 case 13: ".<final name>.XXXXXXXX.part" made a legal 250-byte name illegal
    name = "n" * (fsutil.name_max(tmp_path) - 5) + ".flac"
    atomic_write_text(tmp_path / name, "data")
    assert (tmp_path / name).read_text() == "data"


# ------------------------------------------------------------------------------ amongus.mix
def _mix(manifest: Path, out: Path, n: int = 6) -> list[str]:
    return ["--input", str(manifest), "--out", str(out), "--n-mixtures", str(n), "--seed", "0",
            "--workers", "1", "--no-progress"]  # fmt: skip


def _one_line_error(capsys, prefix: str) -> str:
    """The one error line on stderr (progress bars aside), with no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if "%|" not in line]
    lines = [line for line in lines if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(prefix), err
    return lines[0]


def test_mix_on_a_full_disk_stops_before_mixing_in_one_line(tmp_path, monkeypatch, capsys):
    from amongus.mix.__main__ import main

    manifest = write_jsonl(tmp_path / "utts.jsonl", write_utterances(tmp_path / "u", 6))
    out = tmp_path / "out"
    monkeypatch.setattr(os, "fsync", _raise(errno.ENOSPC))
    assert main(_mix(manifest, out)) == 1
    err = _one_line_error(capsys, "amongus.mix: cannot write ")
    assert str(out / "audio") in err and ENOSPC in err
    assert not list((out / "audio").iterdir())


def test_mix_disk_full_mid_run_names_the_file_and_resumes(tmp_path, small_disk, capsys):
    from amongus.mix.__main__ import main

    manifest = write_jsonl(tmp_path / "utts.jsonl", write_utterances(tmp_path / "u", 8))
    disk = small_disk.make(256)
    out = disk / "out"
    assert main(_mix(manifest, out, 60)) == 1
    err = _one_line_error(capsys, "amongus.mix: cannot write ")
    assert ENOSPC in err and str(out) in err
    assert not list(out.rglob("*.part"))
    journal = [json.loads(line) for line in (out / ".mix_journal.jsonl").read_text().splitlines()
               if line.endswith("}")]  # fmt: skip
    made = {entry["record"]["path"]: entry["record"]["extra"] for entry in journal}
    assert 0 < len(made) < 60
    for path in (out / "audio").iterdir():  # every file present is complete
        extra = made[f"audio/{path.name}"]
        assert hashlib.sha1(path.read_bytes()).hexdigest() == extra["file_sha1"]

    small_disk.resize(disk, 16384)  # space freed: the same command finishes the job
    assert main(_mix(manifest, out, 60)) == 0
    assert "resumed" in capsys.readouterr().out
    assert len(list((out / "audio").iterdir())) == 60


def test_mix_into_a_read_only_folder_is_one_line(tmp_path, small_disk, capsys):
    from amongus.mix.__main__ import main

    manifest = write_jsonl(tmp_path / "utts.jsonl", write_utterances(tmp_path / "u", 6))
    disk = small_disk.make(1024)
    small_disk.read_only(disk)
    assert main(_mix(manifest, disk / "out")) == 1
    err = _one_line_error(capsys, "amongus.mix: ")
    assert str(disk / "out") in err and EROFS in err


# ------------------------------------------------------------------------------ evaluate, plots
def test_evaluate_checks_its_output_folder_before_scoring(tmp_path, monkeypatch, capsys):
    import amongus.pipeline
    from amongus.evaluate import main

    def never(*args, **kwargs):
        raise AssertionError("a model was loaded before the output folder was checked")

    monkeypatch.setattr(amongus.pipeline, "load_classifier", never)
    monkeypatch.setattr(amongus.pipeline, "Pipeline", never)
    monkeypatch.setattr(os, "fsync", _raise(errno.ENOSPC))
    out = tmp_path / "eval"
    code = main(["--single", str(tmp_path), "--classifier", "whatever", "--out", str(out)])
    assert code == 2
    err = _one_line_error(capsys, "error: cannot write ")
    assert str(out) in err and ENOSPC in err
    assert not out.exists()  # nothing was written: the folder is not left behind


def test_plot_on_a_full_disk_leaves_no_empty_png(tmp_path, small_disk):
    from amongus.plots import plot_roc

    disk = small_disk.make(64)
    small_disk.fill(disk)
    rng = np.random.default_rng(0)
    with pytest.raises(OutputError) as caught:
        plot_roc(rng.normal(1, 1, 50), rng.normal(-1, 1, 50), disk / "roc.png")
    assert str(disk / "roc.png") in str(caught.value) and ENOSPC in str(caught.value)
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_report_save_on_a_full_disk_leaves_no_partial_file(tmp_path, monkeypatch):
    from amongus.results import EvaluationReport

    rows = [
        {"mixture_id": None, "utt_id": f"U{k}", "true_label": label, "predicted_label": label,
         "spoof_probability": 0.9 if label == "spoof" else 0.1,
         "cm_score": -1.0 - k if label == "spoof" else 1.0 + k, "system": "-"}
        for k, label in enumerate(["bonafide", "spoof", "bonafide", "spoof"])
    ]  # fmt: skip
    report = EvaluationReport("utterances", [], rows, [], classifier="c")
    out = tmp_path / "eval"
    out.mkdir()
    monkeypatch.setattr(os, "fsync", _raise(errno.ENOSPC))
    with pytest.raises(OutputError, match=ENOSPC):
        report.save(out)
    assert not list(out.iterdir())
    monkeypatch.undo()
    written = report.save(out)  # space again: every file, complete
    assert {"report.json", "report.txt", "roc_streams.png"} <= set(written)
    assert all(path.stat().st_size > 0 for path in written.values())


# ------------------------------------------------------------------------------ amongus.train
def _train_args(tmp_path: Path, output: Path) -> list[str]:
    from amongus.testing.classifiers import build_tiny_classifier
    from amongus.training.toy import make_toy_mixtures

    manifest = make_toy_mixtures(tmp_path / "data", n_mixtures=4, max_source_seconds=1.0)
    classifier = build_tiny_classifier(tmp_path / "clf", hidden_size=16)
    options = {
        "train_mixtures": manifest, "classifier": classifier, "separator": "oracle",
        "cache_dir": tmp_path / "cache", "epochs": 1, "batch_size": 1, "max_seconds": 0.5,
        "val_fraction": 0.25, "freeze": "none", "checkpoint_every_steps": 1, "log_with": "none",
    }  # fmt: skip
    args = ["--output-dir", str(output)]
    for key, value in options.items():
        args += ["--" + key.replace("_", "-"), str(value)]
    return args


@pytest.mark.slow
def test_train_checkpoint_on_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys):
    import torch

    from amongus.train import main

    output = tmp_path / "run"
    args = _train_args(tmp_path, output)
    real_save = torch.save

    def save_on_a_full_disk(obj, f, *rest, **kwargs):
        # from now on the disk is full: torch reports it without errno or path, as it does
        monkeypatch.setattr(os, "fsync", _raise(errno.ENOSPC))
        if isinstance(f, str | os.PathLike) and "checkpoints" in str(f):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
        return real_save(obj, f, *rest, **kwargs)

    monkeypatch.setattr(torch, "save", save_on_a_full_disk)
    assert main(args) == 2
    err = _one_line_error(capsys, "error: cannot write ")
    assert str(output / "checkpoints") in err and ENOSPC in err
    assert not list((output / "checkpoints").glob(".tmp-*"))


@pytest.mark.slow
def test_train_on_a_really_full_disk_is_one_line(tmp_path, small_disk, capsys):
    # before the fix: torch's "RuntimeError: ... unexpected pos 129536 vs 129428" traceback
    # and a partial .tmp-step-000000001 folder left on the disk
    from amongus.train import main

    disk = small_disk.make(200)  # room for the run's config, not for a checkpoint
    output = disk / "run"
    assert main(_train_args(tmp_path, output)) == 2
    err = _one_line_error(capsys, "error: cannot write ")
    assert str(output / "checkpoints") in err and ENOSPC in err
    assert not list((output / "checkpoints").iterdir())


def test_train_on_a_full_disk_stops_before_loading_anything(tmp_path, monkeypatch, capsys):
    import amongus.training
    from amongus.train import main

    monkeypatch.setattr(amongus.training, "Trainer", _raise(errno.EIO))  # never reached
    monkeypatch.setattr(os, "fsync", _raise(errno.ENOSPC))
    output = tmp_path / "run"
    args = ["--output-dir", str(output), "--train-mixtures", str(tmp_path / "m.jsonl"),
            "--classifier", "x", "--separator", "oracle"]  # fmt: skip
    assert main(args) == 2
    err = _one_line_error(capsys, "error: cannot write ")
    assert str(output) in err and ENOSPC in err


# ------------------------------------------------------------------------------ case 17: modes
@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_atomic_writes_get_the_umask_mode_like_open(tmp_path, umask):
    from amongus.audio import save_audio
    from amongus.metrics import write_asvspoof_scores
    from amongus.training.stream_cache import atomic_write_text as cache_write_text

    plain = tmp_path / "config.json"
    plain.write_text("{}")  # what open() gives: 0o666 less the umask
    expected = 0o666 & ~umask
    assert _mode(plain) == expected
    written = [
        atomic_write_text(tmp_path / "a.txt", "x"),
        save_audio(tmp_path / "a.flac", np.zeros(1600, dtype=np.float32) + 0.1, 16000),
        write_jsonl(tmp_path / "u.jsonl", []),
        write_asvspoof_scores(tmp_path / "scores.txt", ["u1"], ["-"], ["bonafide"], [0.5]),
        cache_write_text(tmp_path / "cache.json", "{}"),
    ]
    assert {path.name: _mode(path) for path in written} == {p.name: expected for p in written}


def test_mixer_outputs_get_the_umask_mode(tmp_path, umask):
    from amongus.mix import Mixer, MixerConfig

    utterances = write_utterances(tmp_path / "u", 6)
    out = tmp_path / "out"
    Mixer(MixerConfig.from_preset("thesis")).run(
        utterances, out, n_mixtures=3, seed=0, workers=1, progress=False
    )
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) >= 3 + 4
    assert {p.name: _mode(p) for p in files} == {p.name: 0o666 & ~umask for p in files}
