"""A UTF-8 byte-order mark is stripped by every text reader (issue 12, case 7).

Windows editors save UTF-8 with a BOM; read as plain ``utf-8`` it becomes part of the first
field (an ASVspoof speaker id ``\\ufeffspkA``, a CSV column ``\\ufeffpath``) or breaks
``json.loads``. The readers are tested on such files, and a scan of the package makes sure no
text read forgets ``utf-8-sig``.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import amongus
from amongus.manifest import Mixture, MixtureSource, Utterance, read_mixtures, read_utterances
from amongus.mix.thesis import read_thesis_metadata

BOM = "\ufeff"


def _bom_file(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    return path


def test_jsonl_manifests_with_a_byte_order_mark(tmp_path):
    utterance = Utterance(utt_id="U1", path="a.wav", label="spoof", speaker="spkA")
    path = _bom_file(tmp_path / "utts.jsonl", json.dumps(utterance.to_dict()) + "\n")
    assert read_utterances(path) == [utterance]  # was: "bad manifest line" at line 1
    mixture = Mixture(
        "m1", "m1.flac", 16000, [MixtureSource("u1", "u1.flac", "spoof", speaker="spkA")]
    )
    path = _bom_file(tmp_path / "mixtures.jsonl", json.dumps(mixture.to_dict()) + "\n")
    assert read_mixtures(path)[0].mixture_id == "m1"


def test_corpus_manifest_with_a_byte_order_mark(tmp_path):
    from amongus.corpora import load_utterances

    sf.write(tmp_path / "a.wav", 0.1 * np.ones(1600), 16000)
    record = {"utt_id": "U1", "path": "a.wav", "label": "bonafide", "speaker": "spkA"}
    manifest = _bom_file(tmp_path / "utts.jsonl", json.dumps(record) + "\n")
    listing = load_utterances(manifest)
    assert [(u.utt_id, u.speaker) for u in listing] == [("U1", "spkA")]


def test_csv_manifest_with_a_byte_order_mark(tmp_path):
    from amongus.recipes.training_data import read_csv_manifest

    manifest = _bom_file(
        tmp_path / "manifest.csv", "path,label,speaker\nbonafide/x/a.flac,bonafide,S1\n"
    )
    utterances = read_csv_manifest(manifest)  # was: "lacks column(s) ['path']"
    assert [(u.utt_id, u.speaker) for u in utterances] == [("bonafide/x/a", "S1")]


def test_thesis_metadata_with_a_byte_order_mark(tmp_path):
    path = _bom_file(tmp_path / "metadata.txt", "m1 u1 spoof u2 bonafide SB\n")
    assert read_thesis_metadata(path)[0]["mixture"] == "m1"


def test_mix_config_with_a_byte_order_mark(tmp_path, capsys):
    from amongus.mix.__main__ import main

    config = _bom_file(tmp_path / "config.json", json.dumps({"n_sources": 0}))
    argv = ["--config", str(config), "--out", str(tmp_path / "out"), "--input", "x"]
    # the JSON is read (a BOM made json.loads raise first), so its value is what is refused
    with pytest.raises(SystemExit):
        main([*argv, "--n-mixtures", "1"])
    assert "n_sources must be >= 2, got 0" in capsys.readouterr().err


# ------------------------------------------------------------------ the whole package
_MODE = re.compile(r"^[rwxabt+U]+$")


def _mode(call: ast.Call) -> str | None:
    for keyword in call.keywords:
        if keyword.arg == "mode":
            return keyword.value.value if isinstance(keyword.value, ast.Constant) else None
    for arg in call.args[:2]:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and _MODE.match(arg.value):
            return arg.value
    return "r"


def _encoding(call: ast.Call, position: int | None) -> str | None:
    for keyword in call.keywords:
        if keyword.arg == "encoding":
            return keyword.value.value if isinstance(keyword.value, ast.Constant) else "<expr>"
    if position is not None and len(call.args) > position:
        arg = call.args[position]
        return arg.value if isinstance(arg, ast.Constant) else "<expr>"
    return None


def _text_reads_without_bom_handling(root: Path) -> list[str]:
    """``file:line`` of every ``open(..., "r")`` / ``Path.read_text`` in text mode whose
    encoding is not ``utf-8-sig`` (binary opens, writes and ``os.open`` are not reads)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8-sig"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name == "read_text":
                encoding = _encoding(node, 0)
            elif name == "open":
                if isinstance(func, ast.Attribute):
                    owner = func.value.id if isinstance(func.value, ast.Name) else None
                    explicit = any(k.arg in ("mode", "encoding") for k in node.keywords) or any(
                        isinstance(a, ast.Constant) and isinstance(a.value, str)
                        for a in node.args[:2]
                    )
                    if owner == "os" or not explicit:
                        continue  # a file descriptor, or an archive member (bytes)
                mode = _mode(node)
                if mode is None or "b" in mode or set(mode) & set("wax"):
                    continue
                encoding = _encoding(node, None)
            else:
                continue
            if encoding not in ("utf-8-sig", "<expr>"):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno} ({encoding!r})")
    return found


def test_every_text_read_in_the_package_strips_a_byte_order_mark():
    offenders = _text_reads_without_bom_handling(Path(amongus.__file__).parent)
    assert not offenders, (
        "read text with encoding='utf-8-sig' (a BOM would become part of the first field): "
        + ", ".join(offenders)
    )


def test_the_scan_finds_a_plain_utf8_read(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "m.py").write_text(
        "import json, os\n"
        "from pathlib import Path\n"
        "a = open('p', encoding='utf-8')\n"
        "b = Path('p').read_text()\n"
        "c = open('p', 'rb')\n"
        "d = open('p', 'w', encoding='utf-8')\n"
        "e = os.open('p', os.O_RDONLY)\n"
        "f = open('p', encoding='utf-8-sig')\n"
        "g = Path('p').read_text('utf-8')\n"
    )
    found = _text_reads_without_bom_handling(package)
    assert [item.split(" ")[0] for item in found] == ["pkg/m.py:3", "pkg/m.py:4", "pkg/m.py:9"]
