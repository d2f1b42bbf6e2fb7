"""The separator recipe draws its learning curve (``--plot-curve``) and refuses what it cannot draw."""

from __future__ import annotations

import json

import pytest

from amongus.plots import plot_learning_curve
from amongus.recipes.train_separator import main, plot_run_curve


def _write_curve(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(row) + "\n" for row in rows)
    (folder / "learning_curve.jsonl").write_text(text, encoding="utf-8")


def _png_size(path):
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def test_curve_of_a_run_folder_is_drawn(tmp_path):
    rows = [
        {"step": 0, "si_sdri": -28.8},
        {"step": 250, "si_sdri": 0.6, "train_loss": -0.4, "elapsed_s": 1200.0},
        {"step": 500, "si_sdri": 1.4, "train_loss": -1.3, "elapsed_s": 2500.0},
    ]
    _write_curve(tmp_path / "run", rows)
    out = tmp_path / "curve.png"
    assert (
        main(["--arch", "convtasnet", "--out", str(tmp_path / "run"), "--plot-curve", str(out)])
        == 0
    )
    width, height = _png_size(out)
    assert width > 200 and height > 100


def test_untrained_row_alone_is_refused_with_the_file_named(tmp_path):
    _write_curve(tmp_path / "run", [{"step": 0, "si_sdri": -28.8}])
    with pytest.raises(ValueError, match="learning_curve.jsonl"):
        plot_run_curve(tmp_path / "run", tmp_path / "curve.png")
    assert not (tmp_path / "curve.png").exists()


def test_missing_curve_and_bad_lines_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="no learning curve"):
        plot_run_curve(tmp_path / "absent", tmp_path / "curve.png")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "learning_curve.jsonl").write_text('{"step": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"learning_curve.jsonl:2: not JSON"):
        plot_run_curve(tmp_path / "run", tmp_path / "curve.png")


def test_non_finite_validation_rows_are_left_out():
    rows = [{"step": 10, "si_sdri": float("nan")}, {"step": 20, "si_sdri": float("inf")}]
    with pytest.raises(ValueError, match="finite"):
        plot_learning_curve(rows, "unused.png")


def test_runs_are_compared_on_one_plot_and_an_empty_one_is_named(tmp_path):
    rows = [
        {"step": 250, "si_sdri": 0.6, "train_loss": -0.4},
        {"step": 500, "si_sdri": 1.4, "train_loss": -1.3},
    ]
    _write_curve(tmp_path / "base", rows)
    _write_curve(tmp_path / "more-speakers", [{**row, "si_sdri": row["si_sdri"] + 1} for row in rows])
    out = tmp_path / "compare.png"
    argv = ["--arch", "sepformer", "--out", str(tmp_path / "base"), "--plot-curve", str(out)]
    assert main([*argv, "--compare", str(tmp_path / "more-speakers")]) == 0
    width, height = _png_size(out)
    assert width > 200 and height > 100
    _write_curve(tmp_path / "untrained", [{"step": 0, "si_sdri": -30.0}])
    with pytest.raises(ValueError, match="untrained: no validation rows"):
        plot_run_curve(tmp_path / "base", tmp_path / "bad.png", [tmp_path / "untrained"])
    assert not (tmp_path / "bad.png").exists()
