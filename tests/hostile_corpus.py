"""A corpus of hostile checkpoints, written from code so no executable pickle is committed.

Each :class:`HostileCase` writes a model folder or file in a published layout (SpeechBrain
SepFormer, Asteroid package, Hugging Face classifier) with one hostile change. Loading it with
``trust_checkpoint=True`` would create ``marker`` (the cases marked ``runs_if_trusted`` do, which
``tests/test_checkpoint_safety.py`` checks, so the corpus is known to be live); loading it with
the default ``trust_checkpoint=False`` must raise ``CheckpointError`` naming the file and the
offending tag or global, with ``marker`` never created.

The YAML cases include the bypasses reported in issue 11 (attribute walks from an allowed prefix,
a ``%TAG`` directive) and the other ways HyperPyYAML builds objects. The pickle cases place each
payload (``os.system``, ``eval``, ``exec``, an ``__import__``/``getattr`` chain, ``subprocess``,
a protocol-4 pickle, a numpy object array) in a SepFormer ``.ckpt``, an Asteroid package and an
HF folder's ``pytorch_model.bin``, in the zip and the legacy torch formats.

``python tests/hostile_corpus.py OUT`` writes the whole corpus into ``OUT`` to try by hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SEPARATOR = "separator"
CLASSIFIER = "classifier"


# ---------------------------------------------------------------- pickle payloads
class SystemPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class EvalPayload(SystemPayload):
    def __reduce__(self):
        return (eval, (f"open({self.marker!r}, 'w').close()",))


class ExecPayload(SystemPayload):
    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


class SubprocessPayload(SystemPayload):
    def __reduce__(self):
        return (subprocess.call, (["touch", self.marker],))


class _ImportOs:
    def __reduce__(self):
        return (__import__, ("os",))


class _SystemOfOs:
    """Pickles as ``getattr(__import__("os"), "system")``: only builtins are named."""

    def __call__(self, *args):  # pragma: no cover - pickle only needs it callable
        raise AssertionError

    def __reduce__(self):
        return (getattr, (_ImportOs(), "system"))


class ImportChainPayload(SystemPayload):
    def __reduce__(self):
        return (_SystemOfOs(), (f"touch '{self.marker}'",))


class Protocol4Payload(SystemPayload):
    """Saved with pickle protocol 4 (``STACK_GLOBAL`` instead of ``GLOBAL``)."""


def _system_global() -> str:
    return f"{os.system.__module__}.system"  # posix.system on Linux and macOS


# payload name -> (class, the global the error must name)
PAYLOADS: dict[str, tuple[type, Callable[[], str]]] = {
    "os_system": (SystemPayload, _system_global),
    "eval": (EvalPayload, lambda: "builtins.eval"),
    "exec": (ExecPayload, lambda: "builtins.exec"),
    "import_chain": (ImportChainPayload, lambda: "builtins.getattr"),
    "subprocess": (SubprocessPayload, lambda: "subprocess.call"),
    "protocol4": (Protocol4Payload, _system_global),
}


def _save(obj, path: Path, *, legacy: bool = False, protocol: int = 2) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy, pickle_protocol=protocol)
    return path


# ---------------------------------------------------------------- clean bases, built once
class Bases:
    """Tiny models in published layouts, built once under ``cache`` and copied per case."""

    def __init__(self, cache: Path):
        self.cache = Path(cache)

    def sepformer(self, directory: Path) -> Path:
        from amongus.testing.separators import build_tiny_sepformer

        source = self.cache / "sepformer"
        if not source.is_dir():
            build_tiny_sepformer(source)
        shutil.copytree(source, directory)
        return directory

    def asteroid_package(self) -> dict:
        from amongus.testing.separators import build_convtasnet_model

        return build_convtasnet_model(sample_rate=16000).serialize()

    def classifier(self, directory: Path) -> Path:
        from amongus.testing.classifiers import build_tiny_classifier

        source = self.cache / "classifier"
        if not source.is_dir():
            build_tiny_classifier(source)
        shutil.copytree(source, directory)
        return directory


@dataclass(frozen=True)
class HostileCase:
    """One hostile file. ``build(directory, marker, bases)`` writes it and returns what to load;
    the error must contain every string of ``names(marker)`` (the tag or global) and the path."""

    name: str
    loader: str
    build: Callable[[Path, Path, Bases], Path]
    names: Callable[[], tuple[str, ...]]
    runs_if_trusted: bool = True


# ---------------------------------------------------------------- pickle cases
def _pickle_in_sepformer(payload: str, *, legacy: bool):
    def build(directory: Path, marker: Path, bases: Bases) -> Path:
        import torch

        folder = bases.sepformer(directory / "sepformer")
        name = "decoder.ckpt" if legacy else "masknet.ckpt"
        state = torch.load(folder / name, weights_only=True)
        state["payload"] = PAYLOADS[payload][0](marker)
        (folder / name).unlink()
        _save(state, folder / name, legacy=legacy, protocol=4 if payload == "protocol4" else 2)
        return folder

    return build


def _pickle_in_asteroid(payload: str, *, legacy: bool):
    def build(directory: Path, marker: Path, bases: Bases) -> Path:
        package = bases.asteroid_package()
        package["infos"]["payload"] = PAYLOADS[payload][0](marker)
        protocol = 4 if payload == "protocol4" else 2
        if legacy:  # a bare .pth file in the legacy format
            return _save(package, directory / "convtasnet.pth", legacy=True, protocol=protocol)
        _save(package, directory / "asteroid" / "pytorch_model.bin", protocol=protocol)
        return directory / "asteroid"

    return build


def _pickle_in_classifier(payload: str, *, legacy: bool):
    def build(directory: Path, marker: Path, bases: Bases) -> Path:
        from safetensors.torch import load_file

        folder = bases.classifier(directory / "classifier")
        state = load_file(folder / "model.safetensors")
        state["payload"] = PAYLOADS[payload][0](marker)
        (folder / "model.safetensors").unlink()
        protocol = 4 if payload == "protocol4" else 2
        _save(state, folder / "pytorch_model.bin", legacy=legacy, protocol=protocol)
        return folder

    return build


def _object_array_in_asteroid(directory: Path, marker: Path, bases: Bases) -> Path:
    import numpy as np

    package = bases.asteroid_package()
    array = np.empty(1, dtype=object)
    array[0] = EvalPayload(marker)
    package["infos"]["final_metrics"] = {"si_sdr": array}
    return _save(package, directory / "object_array" / "pytorch_model.bin").parent


def _pickle_cases() -> list[HostileCase]:
    cases = []
    containers = {
        "sepformer_ckpt": (SEPARATOR, _pickle_in_sepformer),
        "asteroid_package": (SEPARATOR, _pickle_in_asteroid),
        "hf_pytorch_model_bin": (CLASSIFIER, _pickle_in_classifier),
    }
    for container, (loader, builder) in containers.items():
        for payload, (_, global_name) in PAYLOADS.items():
            cases.append(
                HostileCase(
                    f"{container}-{payload}",
                    loader,
                    builder(payload, legacy=False),
                    lambda global_name=global_name: (global_name(),),
                )
            )
        cases.append(
            HostileCase(
                f"{container}-os_system-legacy_format",
                loader,
                builder("os_system", legacy=True),
                lambda: (_system_global(),),
            )
        )
    cases.append(
        HostileCase(
            "asteroid_package-numpy_object_array",
            SEPARATOR,
            _object_array_in_asteroid,
            lambda: ("ObjectDType",),
        )
    )
    return cases


# ---------------------------------------------------------------- YAML cases
def _yaml_case(
    name: str,
    line: str,
    names: tuple[str, ...],
    *,
    header: str = "",
    runs=True,
    extra_files: dict[str, str] | None = None,
) -> HostileCase:
    def build(directory: Path, marker: Path, bases: Bases) -> Path:
        folder = bases.sepformer(directory / "sepformer")
        yaml = folder / "hyperparams.yaml"
        text = yaml.read_text(encoding="utf-8")
        yaml.write_text(header + text + "\n" + line.format(marker=marker) + "\n", encoding="utf-8")
        for file_name, content in (extra_files or {}).items():
            (folder / file_name).write_text(content.format(marker=marker), encoding="utf-8")
        return folder

    return HostileCase(f"yaml-{name}", SEPARATOR, build, lambda: names, runs)


def _yaml_cases() -> list[HostileCase]:
    walk_torch = "torch.nn.modules.module.torch.os.system"
    walk_speechbrain = "speechbrain.lobes.models.dual_path.torch.os.system"
    return [
        # the three bypasses of issue 11
        _yaml_case(
            "walk_from_torch_nn",
            f'boom: !apply:{walk_torch} ["touch {{marker}}"]',
            (f"!apply:{walk_torch}",),
        ),
        _yaml_case(
            "walk_from_speechbrain",
            f'boom: !apply:{walk_speechbrain} ["touch {{marker}}"]',
            (f"!apply:{walk_speechbrain}",),
        ),
        _yaml_case(
            "tag_directive",
            'boom: !x!os.system ["touch {marker}"]',
            ("%TAG !x! !apply:",),
            header="%TAG !x! !apply:\n---\n",
        ),
        # every HyperPyYAML tag to a target outside the allowlist
        _yaml_case(
            "apply_os_system", 'boom: !apply:os.system ["touch {marker}"]', ("!apply:os.system",)
        ),
        _yaml_case(
            "apply_eval", "boom: !apply:eval [\"open('{marker}', 'w').close()\"]", ("!apply:eval",)
        ),
        _yaml_case(
            "apply_builtins_exec",
            "boom: !apply:builtins.exec [\"open('{marker}', 'w').close()\"]",
            ("!apply:builtins.exec",),
        ),
        _yaml_case(
            "apply_pathlib_touch",
            "boom: !apply:pathlib.Path.touch [!new:pathlib.Path ['{marker}']]",
            ("!apply:pathlib.Path.touch",),
        ),
        _yaml_case(
            "new_zipfile", "boom: !new:zipfile.ZipFile ['{marker}', 'w']", ("!new:zipfile.ZipFile",)
        ),
        _yaml_case("name_os_system", "boom: !name:os.system", ("!name:os.system",), runs=False),
        _yaml_case("module_os", "boom: !module:os", ("!module:os",), runs=False),
        _yaml_case(
            "applyref_os_system",
            'boom: !applyref:os.system ["touch {marker}"]',
            ("!applyref:os.system",),
        ),
        _yaml_case(
            "include_other_file",
            "boom: !include:payload.yaml",
            ("!include:payload.yaml",),
            extra_files={"payload.yaml": 'x: !apply:os.system ["touch {marker}"]\n'},
        ),
        _yaml_case(
            "uri_escaped_target",
            'boom: !apply:os%2Esystem ["touch {marker}"]',
            ("!apply:os.system",),
        ),
        # the final load uses ruamel's full Loader, tuple strings PyYAML's full loader
        _yaml_case(
            "python_object_apply",
            'boom: !!python/object/apply:os.system ["touch {marker}"]',
            ("python/object/apply:os.system",),
        ),
        _yaml_case(
            "tuple_string",
            'boom: (!!python/object/apply:os.system ["touch {marker}"], 1)',
            ("python/object/apply:os.system",),
        ),
        _yaml_case(
            "quoted_tuple_string",
            "boom: '(!!python/object/apply:os.system [\"touch {marker}\"], 1)'",
            ("python/object/apply:os.system",),
            runs=False,
        ),
        # an allowed class whose arguments hide a call
        _yaml_case(
            "allowed_class_hiding_a_call",
            "boom: !new:speechbrain.utils.parameter_transfer.Pretrainer\n"
            '    custom_hooks: {{masknet: !apply:os.system ["touch {marker}"]}}',
            ("!apply:os.system",),
        ),
        # a tag on a mapping key
        _yaml_case(
            "tag_on_a_key",
            '? !apply:os.system ["touch {marker}"]\n: 1',
            ("!apply:os.system",),
            runs=False,
        ),
    ]


CASES: list[HostileCase] = _yaml_cases() + _pickle_cases()


def write_corpus(out: Path) -> list[tuple[HostileCase, Path, Path]]:
    """Write every case under ``out``; returns ``(case, what to load, marker)`` triples."""
    out = Path(out)
    bases = Bases(out / "_bases")
    written = []
    for case in CASES:
        directory = out / case.name
        directory.mkdir(parents=True, exist_ok=False)
        marker = directory / "MARKER"
        written.append((case, case.build(directory, marker, bases), marker))
    return written


if __name__ == "__main__":  # pragma: no cover - a by-hand helper
    for case, path, marker in write_corpus(Path(sys.argv[1])):
        print(f"{case.loader:10} {path}  (marker {marker})")
