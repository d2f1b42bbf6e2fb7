"""Shipped model cards, configs, logs and docs name no folder of the machine they were built on.

Paths inside the repository are written relative to it; other folders (the training corpus)
are ``path/to/<name>`` placeholders. The generator (``amongus.recipes.model_cards``) keeps it so
for the next model it writes.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from amongus.recipes import model_cards
from amongus.recipes.model_cards import (
    portable_command,
    portable_data,
    portable_path,
    separator_card,
    set_evaluation_section,
    write_card,
)

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "amongus" / "data" / "models"
TEXT_SUFFIXES = {".md", ".json", ".yaml", ".yml", ".txt", ".csv", ".py", ".ipynb", ".cfg", ".toml"}
# Folders that exist on build machines but never on a user's: a path under one of them in a
# shipped text names the machine it was made on.
MACHINE_ROOTS = ("work", "tmp", "root", "home", "Users", "mnt", "scratch", "private", "srv")
MACHINE_PATH = re.compile(
    r"(?<![\w.~/-])(/(?:" + "|".join(MACHINE_ROOTS) + r")/[^\s`'\")\]]*|[A-Za-z]:\\Users\\\S*)"
)


def _shipped_texts() -> list[Path]:
    roots = [MODELS, REPO / "docs", REPO / "amongus", REPO / "notebooks", REPO / "datasets"]
    files = [REPO / "README.md"]
    for root in roots:
        if root.is_dir():
            files += [
                path
                for path in root.rglob("*")
                if path.is_file()
                and path.suffix in TEXT_SUFFIXES
                and "__pycache__" not in path.parts
                and ".ipynb_checkpoints" not in path.parts
            ]
    return sorted(set(files))


def machine_paths(text: str) -> list[str]:
    """Absolute paths of build-machine folders in ``text`` (the fixed roots above, and this
    checkout's own folder and its parent wherever the repository lives)."""
    found = [match[0] for match in MACHINE_PATH.finditer(text)]
    for base in (REPO, REPO.parent):
        if base != Path(base.anchor) and base != Path.home():
            found += re.findall(
                r"(?<![\w.~/-])" + re.escape(base.as_posix()) + r"/[^\s`'\")\]]*", text
            )
    return list(dict.fromkeys(found))  # unique, in order


def test_the_scanner_catches_machine_paths():
    assert machine_paths("trained on `/work/corpus/minispoof` (see /tmp/x.log)") == [
        "/work/corpus/minispoof",
        "/tmp/x.log",
    ]
    assert machine_paths(f"--out {REPO.as_posix()}/runs/a") != []
    for clean in (
        "path/to/minispoof",
        "amongus/data/models/convtasnet-16k",
        "https://github.com/work/x",
        "../shared/data/real",
        "8/16 kHz",
        "/usr/share/festival/voices",
    ):
        assert machine_paths(clean) == [], clean


def test_shipped_cards_configs_and_docs_name_no_machine_folder():
    files = _shipped_texts()
    assert any(path.name == "MODEL_CARD.md" for path in files) or not MODELS.is_dir()
    offenders = {}
    for path in files:
        found = machine_paths(path.read_text(encoding="utf-8", errors="replace"))
        if found:
            offenders[str(path.relative_to(REPO))] = sorted(set(found))[:5]
    assert not offenders, f"absolute paths of a build machine in shipped files: {offenders}"


# ---------------------------------------------------------------------------- the generator
def test_portable_path_and_command(tmp_path):
    corpus = tmp_path / "corpora" / "minispoof"
    assert portable_path(corpus) == "path/to/minispoof"
    assert portable_path(REPO / "amongus" / "data" / "models" / "x") == "amongus/data/models/x"
    assert portable_path("runs/mix") == "runs/mix"
    command = shlex.join(
        ["python", "-m", "amongus.mix", "--input", str(corpus), f"--out={tmp_path}/mix", "-v"]
    )
    assert portable_command(command) == (
        "python -m amongus.mix --input path/to/minispoof --out=path/to/mix -v"
    )
    log = {"config": {"train_sources": [str(corpus)], "seed": 0}, "command": command}
    cleaned = portable_data(log)
    assert machine_paths(json.dumps(cleaned)) == [] and str(tmp_path) not in json.dumps(cleaned)
    assert cleaned["config"]["seed"] == 0


@pytest.mark.skipif(
    not (MODELS / "convtasnet-16k" / "training_log.json").is_file(), reason="no shipped models"
)
def test_generated_cards_name_no_machine_folder(tmp_path):
    # a run whose corpus (with an ATTRIBUTION.md) and output live in absolute folders
    corpus = tmp_path / "corpora" / "minispoof"
    corpus.mkdir(parents=True)
    (corpus / "ATTRIBUTION.md").write_text("# Sources\n\nSpeech from somewhere.\n")
    out_dir = tmp_path / "models" / "convtasnet-16k"
    out_dir.mkdir(parents=True)
    (out_dir / "pytorch_model.bin").write_bytes(b"0" * 100)
    log = json.loads((MODELS / "convtasnet-16k" / "training_log.json").read_text())
    log["config"]["train_sources"] = [str(corpus)]
    log["config"]["val_sources"] = [str(corpus)]
    command = (
        f"python -m amongus.recipes.train_separator --train {corpus} --val {corpus} "
        f"--out {out_dir} --seed 0"
    )
    write_card(out_dir, separator_card(out_dir, log, command))
    set_evaluation_section(
        out_dir,
        f"From `python -m amongus.recipes.results_table --corpus {corpus} --out runs/t`: "
        f"table in {model_cards.repository_root().as_posix()}/docs/results.md.",
    )
    card = (out_dir / "MODEL_CARD.md").read_text()
    assert str(tmp_path) not in card, [line for line in card.splitlines() if str(tmp_path) in line]
    assert machine_paths(card) == []
    assert "--train path/to/minispoof --val path/to/minispoof" in card
    assert "From `path/to/minispoof/ATTRIBUTION.md`:" in card
    assert "Speech from somewhere." in card
    assert "table in docs/results.md" in card
