"""Trivial-feature check: can duration, level, bandwidth or flatness tell the classes apart?

A logistic regression (standardised features) on four trivial features per utterance is
trained on one split and scored on another. An EER near 0.5 means these features carry no
class information; the minispoof recipe requires EER >= 0.30 on eval. Works on any ASVspoof
2019 LA layout root::

    python -m amongus.recipes.minispoof.shortcut_check ROOT [--min-eer 0.3]
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ...audio import load_audio
from ...corpora.asvspoof import read_asvspoof
from ...manifest import Utterance

FEATURE_NAMES = ("duration_s", "rms_db", "energy_above_3k5", "spectral_flatness")
REQUIRED_EER = 0.30


def trivial_features(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``[duration (s), RMS level (dB), share of energy above 3.5 kHz, mean spectral flatness]``.

    Shape: ``[T] -> [4]``.
    """
    import librosa

    audio = np.asarray(audio, dtype=np.float64)
    duration = len(audio) / sample_rate
    rms_db = 20 * np.log10(np.sqrt(np.mean(audio**2)) + 1e-12)
    power = np.abs(np.fft.rfft(audio)) ** 2
    frequencies = np.fft.rfftfreq(len(audio), 1 / sample_rate)
    high_share = float(power[frequencies > 3500].sum() / max(power.sum(), 1e-20))
    flatness = float(np.mean(librosa.feature.spectral_flatness(y=audio, n_fft=512)))
    return np.array([duration, rms_db, high_share, flatness])


def feature_matrix(utterances: list[Utterance], *, progress: bool = True) -> np.ndarray:
    """Shape: ``[N, 4]``, one row of :func:`trivial_features` per utterance."""
    rows = []
    for utterance in tqdm(utterances, desc="trivial features", disable=not progress, leave=False):
        audio, rate = load_audio(utterance.path)
        rows.append(trivial_features(audio, rate))
    return np.stack(rows) if rows else np.zeros((0, len(FEATURE_NAMES)))


@dataclass
class ShortcutReport:
    eer: float  # logistic regression trained on train_split, scored on test_split
    per_feature_eer: dict[str, float] = field(default_factory=dict)  # min(EER, 1 - EER), test
    n_train: int = 0
    n_test: int = 0
    train_split: str = "train"
    test_split: str = "eval"
    required: float = REQUIRED_EER

    @property
    def passed(self) -> bool:
        return self.eer >= self.required

    def summary(self) -> str:
        lines = [
            f"trivial-feature check ({', '.join(FEATURE_NAMES)}; logistic regression trained on "
            f"{self.train_split} [{self.n_train}], scored on {self.test_split} [{self.n_test}]):",
            f"  EER = {self.eer:.3f} (required >= {self.required:.2f}: "
            f"{'PASS' if self.passed else 'FAIL'})",
            "  single features on "
            + self.test_split
            + ", best orientation: "
            + ", ".join(f"{name} {value:.3f}" for name, value in self.per_feature_eer.items()),
        ]
        return "\n".join(lines)


def _split_scores(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return scores[labels == 0], scores[labels == 1]


def shortcut_check(
    root: str | os.PathLike,
    *,
    train_split: str = "train",
    test_split: str = "eval",
    required: float = REQUIRED_EER,
    progress: bool = True,
) -> ShortcutReport:
    """Train the trivial-feature logistic regression on ``train_split`` and return the EER on
    ``test_split`` (higher score = bonafide, :func:`amongus.metrics.eer`).

    Raises:
        ValueError: a split lacks one of the classes or has unusable files.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ...metrics import eer

    data = {}
    for split in (train_split, test_split):
        listing = read_asvspoof(root, split)
        if listing.problems:
            raise ValueError(f"{root} {split}: unusable files\n{listing.summary()}")
        labels = np.array([u.label == "bonafide" for u in listing.utterances], dtype=int)
        if labels.min(initial=1) == labels.max(initial=0):
            raise ValueError(f"{root} {split}: needs both bonafide and spoof utterances")
        data[split] = (feature_matrix(listing.utterances, progress=progress), labels)
    train_x, train_y = data[train_split]
    test_x, test_y = data[test_split]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(train_x, train_y)
    bonafide_column = list(model.classes_).index(1)
    scores = model.predict_proba(test_x)[:, bonafide_column]
    # near-chance scores are what a corpus without shortcuts should give: no orientation warning
    value, _ = eer(scores[test_y == 1], scores[test_y == 0], warn_inverted=False)
    per_feature = {}
    for index, name in enumerate(FEATURE_NAMES):
        # a raw feature has no orientation (min(EER, 1 - EER) below)
        single, _ = eer(test_x[test_y == 1, index], test_x[test_y == 0, index], warn_inverted=False)
        per_feature[name] = round(min(single, 1.0 - single), 4)
    return ShortcutReport(
        eer=float(value),
        per_feature_eer=per_feature,
        n_train=len(train_y),
        n_test=len(test_y),
        train_split=train_split,
        test_split=test_split,
        required=required,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m amongus.recipes.minispoof.shortcut_check",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("root", type=Path, help="ASVspoof 2019 LA layout root")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--test-split", default="eval")
    parser.add_argument("--min-eer", type=float, default=REQUIRED_EER)
    args = parser.parse_args(argv)
    report = shortcut_check(
        args.root, train_split=args.train_split, test_split=args.test_split, required=args.min_eer
    )
    print(report.summary())
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
