"""Every notebook runs end to end, the way a user runs it, and produces its key outputs.

Each notebook is executed with nbclient in a fresh ``python3`` kernel (ipykernel's kernelspec,
which runs the interpreter running the tests, so the venv), with a temporary working directory
and the Hugging Face libraries offline. After execution the test checks that no cell errored and
that the files and printed results the notebook promises exist.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"

# notebook -> (files that must exist under the working directory, texts the outputs must contain)
EXPECTED: dict[str, tuple[list[str], list[str]]] = {
    "01_quickstart.ipynb": ([], ["mixture label:", "spoof present:", "<audio"]),
    "02_make_dataset_and_evaluate.ipynb": (
        [
            "runs/mix/mixtures.jsonl",
            "runs/report/*.json",
            "runs/report/*roc*.png",
            "runs/report/*det*.png",
            "runs/report/*confusion*.png",
        ],
        ["mixtures written:", "multiclass accuracy:", "spoof-present EER:"],
    ),
    "03_fine_tune.ipynb": (
        ["runs/finetune/**/config.json"],
        ["training loss", "before fine-tuning:", "after fine-tuning:"],
    ),
    "04_real_checkpoints_and_asvspoof.ipynb": (
        ["runs/asvspoof-mix/mixtures.jsonl"],
        [
            "speechbrain/sepformer-wsj02mix",
            "abhishtagatya/wavlm-base-960h-asv19-deepfake",
            "ASVspoof2019.LA.cm.eval.trl.txt",
            "per-stream EER:",
        ],
    ),
    "05_spoof_cues.ipynb": (
        ["runs/cues/cues.csv", "runs/cues/summary.json", "runs/cues/shift*.png"],
        ["streams analysed:", "median shift by class", "minus_si_sdr", "shifts_by_class.png"],
    ),
    "06_conversations.ipynb": (
        [
            "runs/calls/conversations.jsonl",
            "runs/analysis/*.json",
            "runs/analysis/*.rttm",
            "runs/analysis/*.png",
            "runs/analysis-enrolled/*.png",
            "runs/metrics.json",
        ],
        ["call written:", "enrollment clips:", "DER ", "spoof time error", "real-time factor"],
    ),
}


def _outputs_text(notebook) -> str:
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                texts.append(output["text"])
            for value in output.get("data", {}).values():
                texts.append(value if isinstance(value, str) else json.dumps(value))
    return "\n".join(texts)


def test_every_notebook_has_expectations():
    assert sorted(path.name for path in NOTEBOOKS.glob("*.ipynb")) == sorted(EXPECTED)


def test_committed_notebooks_are_small_and_stripped():
    for path in NOTEBOOKS.glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        assert path.stat().st_size < 100_000, f"{path.name} is {path.stat().st_size} bytes"
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs, f"{path.name}: committed with outputs (strip them)"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_end_to_end(name: str, tmp_path: Path, monkeypatch):
    for variable, value in {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MPLBACKEND": "Agg",
        "TOKENIZERS_PARALLELISM": "false",
    }.items():
        monkeypatch.setenv(variable, value)
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError naming the cell on any error
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
    files, texts = EXPECTED[name]
    for pattern in files:
        assert list(tmp_path.glob(pattern)), f"{name}: nothing matches {pattern} in {tmp_path}"
    outputs = _outputs_text(notebook)
    for text in texts:
        assert text in outputs, f"{name}: output lacks {text!r}"
