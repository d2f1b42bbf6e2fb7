"""``python -m amongus.mix --shard i/n`` and ``--merge``: shard folders merged into one are
byte-identical to one unsharded run (audio files and manifest), also when an input turns out
bad while rendering in one shard only and when mixtures need presence redraws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_mix_helpers import write_utterances

from amongus.manifest import Utterance, write_jsonl
from amongus.mix.__main__ import main

N_MIXTURES = 12


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shard_inputs")
    utterances = write_utterances(root / "u", 14, seconds=(1.0, 1.6))
    # silent: its header is fine, so only the shard that decodes it finds it bad (and replans)
    silent = root / "u" / "silent.flac"
    sf.write(silent, np.zeros(24000, dtype=np.float32), 16000)
    utterances.append(
        Utterance(utt_id="silent", path=str(silent), label="spoof", speaker="spk9", system="A02")
    )
    # mostly silence: placements with the required overlap often fail -> presence redraws
    quiet = write_utterances(root / "q", 4, seed=5, seconds=(1.5, 1.8), active=0.3)
    for index, utterance in enumerate(quiet):
        utterance.utt_id = f"quiet{index}"
    return write_jsonl(root / "utts.jsonl", utterances + quiet)


def _mix(inputs: Path, out: Path, *extra: str) -> int:
    return main(
        ["--input", str(inputs), "--out", str(out), "--n-mixtures", str(N_MIXTURES),
         "--seed", "3", "--workers", "1", "--no-progress", "--min-overlap", "0.5", *extra]
    )  # fmt: skip


def _files(folder: Path) -> dict[str, bytes]:
    paths = [folder / "mixtures.jsonl", *sorted((folder / "audio").iterdir())]
    return {str(path.relative_to(folder)): path.read_bytes() for path in paths}


def test_merged_shards_equal_the_unsharded_run(inputs, tmp_path, capsys):
    assert _mix(inputs, tmp_path / "whole") == 0
    whole = _files(tmp_path / "whole")
    summary = (tmp_path / "whole" / "summary.json").read_text()
    assert '"silent.flac"' in summary or "silent.flac" in summary  # found bad while rendering
    shards = []
    for index in range(3):
        shards.append(tmp_path / f"part{index}")
        assert _mix(inputs, shards[-1], "--shard", f"{index}/3") == 0
        lines = (shards[-1] / "mixtures.jsonl").read_text().splitlines()
        assert len(lines) == 4  # its block only
    shard_lines = [
        line for shard in shards for line in (shard / "mixtures.jsonl").read_text().splitlines()
    ]
    assert _mix(inputs, tmp_path / "merged", "--merge", *map(str, shards)) == 0
    merged = _files(tmp_path / "merged")
    assert merged.keys() == whole.keys()
    for name in whole:
        assert merged[name] == whole[name], name
    # most of the work came from the shards (the merge run only fills what they could not know)
    assert len(set(shard_lines) & set(whole["mixtures.jsonl"].decode().splitlines())) >= 6


def test_a_shard_of_another_run_is_refused(inputs, tmp_path, capsys):
    assert _mix(inputs, tmp_path / "part0", "--shard", "0/2") == 0
    code = main(
        ["--input", str(inputs), "--out", str(tmp_path / "merged"), "--n-mixtures",
         str(N_MIXTURES), "--seed", "4", "--workers", "1", "--no-progress", "--merge",
         str(tmp_path / "part0")]
    )  # fmt: skip
    assert code == 1
    assert "seed" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--shard", "3/3"], ["--shard", "x"]])
def test_bad_shard_option_is_refused(inputs, tmp_path, bad):
    with pytest.raises(SystemExit) as exit_info:
        _mix(inputs, tmp_path / "out", *bad)
    assert exit_info.value.code == 2


def test_merge_of_a_folder_without_a_run_is_refused(inputs, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert _mix(inputs, tmp_path / "merged", "--merge", str(tmp_path / "empty")) == 1
    assert "no Mixer run" in capsys.readouterr().err
