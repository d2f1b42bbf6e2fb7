"""Safe, strict loading of weight files: one place decides what a checkpoint may contain.

A ``torch.save`` file is a pickle, and unpickling can call any Python function. Every weight file
amongus reads (SpeechBrain ``.ckpt`` state dicts, Asteroid ``pytorch_model.bin`` packages,
classifier weights) goes through :func:`load_weights`, which uses
``torch.load(weights_only=True)``: torch's restricted unpickler builds tensors and plain Python
data only, plus the globals listed in :func:`safe_globals`. Those are what published checkpoints
hold besides tensors, under the names of both numpy 1.x (``numpy.core.multiarray.scalar``) and
numpy 2.x (``numpy._core.multiarray.scalar``): numpy scalars (an Asteroid recipe stores its
metric averages as ``numpy.float64``), numpy dtypes, plain numeric numpy arrays, and
``torch.torch_version.TorchVersion``. Object arrays, other classes and any function call are
refused with :class:`CheckpointError`, which names the file, the offending global and how to
proceed. ``trust_checkpoint=True`` (``--trust-checkpoint`` on the command line) is the caller's
explicit opt-in to ``weights_only=False``.

:func:`load_state_dict_strict` then refuses weights that do not fit the model: a missing key
would leave a layer at its random initialisation, an unexpected key would be silently dropped.

Reference: the PyTorch documentation of ``torch.load`` (``weights_only``,
``torch.serialization.safe_globals``) and ``torch/_weights_only_unpickler.py``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import pickletools
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

TRUST_HINT = (
    "If you trust this file and where it came from, pass trust_checkpoint=True "
    "(command line: --trust-checkpoint): it is then loaded without these checks, and any code it "
    "holds runs."
)
#: How many keys an error message lists before summarising the rest.
MAX_LISTED_KEYS = 8

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# numpy dtypes whose values are plain numbers, booleans or strings. Object and void (structured)
# dtypes are left out: they can carry arbitrary Python objects.
_PLAIN_NUMPY_DTYPES = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "longdouble",
    "complex64",
    "complex128",
    "clongdouble",
    "U1",
    "S1",
)


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded safely, does not fit its model, or is not in the
    expected format. The message names the file or folder, the problem and how to proceed."""


def unsafe_checkpoint_error(source: str | os.PathLike, finding: str) -> CheckpointError:
    """The error for a file refused because loading it could run code: names ``source``,
    what was found in it and the opt-in (see :data:`TRUST_HINT`)."""
    return CheckpointError(f"{source}: refused, {finding.rstrip('.')}. {TRUST_HINT}")


def _numpy_multiarray():
    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    return multiarray


def safe_globals() -> list[Any]:
    """The globals :func:`load_weights` allows beyond torch's defaults.

    Entries are objects or ``(object, "name.in.the.pickle")`` pairs, the form
    ``torch.serialization.safe_globals`` takes: a pickle written under numpy 1.x names
    ``numpy.core.multiarray.scalar``, one written under numpy 2.x ``numpy._core.multiarray.scalar``;
    both names map to the one installed function, whatever the installed numpy.
    """
    import numpy as np
    import torch

    multiarray = _numpy_multiarray()
    entries: list[Any] = [torch.torch_version.TorchVersion]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        entries.append((multiarray.scalar, f"{module}.scalar"))
        entries.append((multiarray._reconstruct, f"{module}._reconstruct"))
    entries.append((np.ndarray, "numpy.ndarray"))
    entries.append((np.dtype, "numpy.dtype"))
    for name in _PLAIN_NUMPY_DTYPES:
        # unpickling a dtype rebuilds an instance of its class (numpy.dtypes.Float64DType...)
        dtype_class = type(np.dtype(name))
        entries.append((dtype_class, f"numpy.dtypes.{dtype_class.__name__}"))
    return entries


def _allowed_global_names(extra_globals: Iterable[Any]) -> set[str]:
    names = set()
    for entry in [*safe_globals(), *extra_globals]:
        if isinstance(entry, tuple):
            names.add(entry[1])
        else:
            names.add(f"{entry.__module__}.{entry.__qualname__}")
    try:  # torch's own defaults (tensors, storages, OrderedDict...); private, so only a hint
        from torch import _weights_only_unpickler

        names.update(_weights_only_unpickler._get_allowed_globals())
    except Exception:  # noqa: BLE001 - the listing below is a courtesy, the unpickler decides
        pass
    return names


def _python3_name(module: str, name: str) -> str:
    # protocol-2 pickles (torch.save's default) name Python 2 modules, e.g. __builtin__.eval;
    # the unpickler maps them as pickle does
    import _compat_pickle

    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def _pickle_globals(stream) -> list[str]:
    """The ``module.name`` globals one pickle in ``stream`` refers to, read without running it."""
    found = []
    recent_strings: list[str] = []
    for opcode, argument, _ in pickletools.genops(stream):
        if opcode.name == "GLOBAL":
            found.append(_python3_name(*str(argument).split(" ", 1)))
        elif opcode.name == "STACK_GLOBAL" and len(recent_strings) >= 2:
            found.append(_python3_name(recent_strings[-2], recent_strings[-1]))
        elif isinstance(argument, str):
            recent_strings.append(argument)
    return found


def _globals_in(path: Path) -> list[str]:
    """Every global named by the pickles of a torch checkpoint (zip or legacy format)."""
    found: list[str] = []
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for name in archive.namelist():
                    if name.endswith(".pkl"):
                        with archive.open(name) as stream:
                            found += _pickle_globals(stream)
        else:
            with open(path, "rb") as stream:
                # legacy format: magic number, protocol, system info, the object, storage keys
                for _ in range(5):
                    found += _pickle_globals(stream)
    except Exception:  # noqa: BLE001 - a damaged pickle: report what was read so far
        pass
    return list(dict.fromkeys(found))


def _refusal_line(error: BaseException) -> str:
    """The line of torch's message that says what was refused, without ANSI codes or torch's
    advice to allow-list the global in code."""
    text = _ANSI.sub("", str(error))
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    patterns = ("GLOBAL", "reduce", "Unsupported operand", "new object", "Unsupported")
    chosen = next((line for line in lines if any(p in line for p in patterns)), None)
    if chosen is None:
        chosen = next(
            (
                line
                for line in lines
                if not line.startswith(("Weights only load failed", "In PyTorch"))
            ),
            lines[0] if lines else type(error).__name__,
        )
    return chosen.split(" Please use `torch.serialization.")[0].strip()


def unsafe_pickle_error(
    source: str | os.PathLike,
    error: BaseException,
    *,
    path: str | os.PathLike | None = None,
    extra_globals: Iterable[Any] = (),
) -> CheckpointError:
    """The :class:`CheckpointError` for a pickle that ``torch.load(weights_only=True)`` refused
    with ``error``: names ``source``, torch's line that says what was refused (without ANSI
    codes), every global of the file at ``path`` (default ``source``) that is not allowed, and the
    opt-in."""
    path = Path(path if path is not None else source)
    refused = []
    if path.is_file():
        allowed = _allowed_global_names(extra_globals)
        refused = [name for name in _globals_in(path) if name not in allowed]
    listed = f" (globals not allowed: {', '.join(refused)})" if refused else ""
    return unsafe_checkpoint_error(
        source,
        f"it holds Python objects beyond tensors and plain data{listed}, and unpickling them "
        f"could run code. torch.load(weights_only=True) stopped at: {_refusal_line(error)}",
    )


def _container(path: Path) -> str | None:
    """``"zip"`` (torch >= 1.6 format), ``"pickle"`` (the legacy format) or ``None``."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head == b"PK\x03\x04":
        return "zip"
    # the legacy format starts with a pickled magic number, protocol 2 or later
    return "pickle" if head[:1] == b"\x80" else None


def load_weights(
    path: str | os.PathLike, *, trust_checkpoint: bool = False, extra_globals: Iterable[Any] = ()
) -> Any:
    """Load a ``torch.save`` file (zip or legacy format) or a ``.safetensors`` file onto the CPU.

    Args:
        path: the weight file.
        trust_checkpoint: load with ``weights_only=False``, which runs any code the pickle holds.
            Only for files whose source you trust.
        extra_globals: more globals to allow, in the form ``torch.serialization.safe_globals``
            takes (objects or ``(object, "pickled.name")`` pairs).

    Returns:
        What was saved (a state dict, an Asteroid package dict...); tensors on the CPU.

    Raises:
        CheckpointError: the file is missing or unreadable, or it holds a global that is not
            allowed (the message names the file, every such global and the opt-in).

    Example:
        >>> state = load_weights("masknet.ckpt")  # doctest: +SKIP
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weight file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as error:
            raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from error
    extra_globals = list(extra_globals)
    container = _container(path)
    if container is None:
        raise CheckpointError(
            f"{path}: not a torch checkpoint (neither the zip format of torch.save nor its legacy "
            "pickle format)"
        )
    # memory-map zip files: a 100 MB state dict is then not read twice before it is copied into
    # the model (the legacy format cannot be mapped)
    options = {"mmap": True} if container == "zip" else {}
    try:
        if trust_checkpoint:
            logger.warning("%s: loading with weights_only=False (trust_checkpoint=True)", path)
            return torch.load(path, map_location="cpu", weights_only=False, **options)
        with torch.serialization.safe_globals([*safe_globals(), *extra_globals]):
            return torch.load(path, map_location="cpu", weights_only=True, **options)
    except pickle.UnpicklingError as error:
        if trust_checkpoint:
            raise CheckpointError(f"{path}: not a readable torch checkpoint ({error})") from error
        raise unsafe_pickle_error(path, error, extra_globals=extra_globals) from error
    except Exception as error:  # truncated, foreign or damaged files
        first = _ANSI.sub("", str(error)).strip().splitlines()
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint ({type(error).__name__}: "
            f"{first[0] if first else ''})"
        ) from error


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED_KEYS])
    if len(keys) > MAX_LISTED_KEYS:
        shown += f", ... and {len(keys) - MAX_LISTED_KEYS} more"
    return shown


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _key_problems(missing: list[str], unexpected: list[str], misshaped: list[str]) -> str | None:
    problems = []
    if missing:
        problems.append(f"{_plural(len(missing), 'missing key')}: {_listed(missing)}")
    if unexpected:
        problems.append(f"{_plural(len(unexpected), 'unexpected key')}: {_listed(unexpected)}")
    if misshaped:
        problems.append(f"{_plural(len(misshaped), 'mis-shaped key')}: {_listed(misshaped)}")
    return "; ".join(problems) or None


def state_dict_mismatch(module, state_dict: Mapping[str, Any]) -> str | None:
    """What keeps ``state_dict`` from loading strictly into ``module``, or ``None`` if it fits.

    Lists missing keys (the model's, absent from the file), unexpected keys (in the file, not in
    the model) and mis-shaped keys (``name (file [shape], model [shape])``).
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    misshaped = [
        f"{key} (file {list(state_dict[key].shape)}, model {list(expected[key].shape)})"
        for key in sorted(set(expected) & set(state_dict))
        if tuple(getattr(state_dict[key], "shape", ())) != tuple(expected[key].shape)
    ]
    return _key_problems(missing, unexpected, misshaped)


def load_state_dict_strict(module, state_dict: Any, *, source: str | os.PathLike) -> None:
    """Load ``state_dict`` into ``module``, refusing any missing, unexpected or mis-shaped key.

    ``torch.nn.Module.load_state_dict(strict=False)`` (what SpeechBrain's pretrainer does) only
    logs such keys, leaving the missing layers at their random initialisation.

    Args:
        module: the ``torch.nn.Module`` to fill.
        state_dict: parameter/buffer name -> tensor, e.g. from :func:`load_weights`.
        source: the file or folder the weights came from, named in the error.

    Raises:
        CheckpointError: not a mapping of tensors, or keys or shapes that do not match; the
            message lists the keys (the first :data:`MAX_LISTED_KEYS` of each kind).
    """
    import torch

    model_name = type(module).__name__
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(
            f"{source}: expected a state dict (parameter name -> tensor) for {model_name}, found "
            f"{type(state_dict).__name__}"
        )
    not_tensors = sorted(str(k) for k, v in state_dict.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise CheckpointError(
            f"{source}: the state dict for {model_name} has entries that are not tensors: "
            f"{_listed(not_tensors)}"
        )
    mismatch = state_dict_mismatch(module, state_dict)
    if mismatch:
        raise CheckpointError(
            f"{source}: the weights do not fit {model_name}: {mismatch}. Refused, because "
            "missing weights would stay random and unexpected ones would be ignored; check that "
            "the weights and the model configuration come from the same checkpoint."
        )
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:  # e.g. a dtype that cannot be copied
        raise CheckpointError(
            f"{source}: the weights do not load into {model_name} ({error})"
        ) from error


# ---------------------------------------------------------------- Hugging Face folders
def hf_pickle_weight_files(folder: str | os.PathLike) -> list[Path]:
    """The pickled weight files ``transformers`` would read from a ``save_pretrained`` folder:
    ``pytorch_model.bin`` or its shards, unless a safetensors file takes precedence (then none).
    """
    import json

    folder = Path(folder)
    if (folder / "model.safetensors").is_file() or (
        folder / "model.safetensors.index.json"
    ).is_file():
        return []
    index = folder / "pytorch_model.bin.index.json"
    if index.is_file():
        try:
            shards = sorted(
                set(json.loads(index.read_text(encoding="utf-8-sig"))["weight_map"].values())
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise CheckpointError(f"{index}: not a readable shard index ({error})") from error
        # base names only: an index must not point outside its folder
        return [folder / Path(str(name)).name for name in shards]
    single = folder / "pytorch_model.bin"
    return [single] if single.is_file() else []


def check_hf_folder_weights(folder: str | os.PathLike, *, trust_checkpoint: bool = False) -> None:
    """Refuse a Hugging Face model folder whose pickled weights are unsafe, before
    ``transformers`` reads them: each file of :func:`hf_pickle_weight_files` goes through
    :func:`load_weights` (no-op with ``trust_checkpoint=True``).

    Raises:
        CheckpointError: names the file, the globals that are not allowed and the opt-in.
    """
    if trust_checkpoint:
        return
    for path in hf_pickle_weight_files(folder):
        load_weights(path)


def check_loading_info(
    info: Mapping[str, Any], *, source: str | os.PathLike, model_name: str
) -> None:
    """Refuse what ``from_pretrained(..., output_loading_info=True)`` reports as missing,
    unexpected or mis-shaped (``transformers`` only logs them and initialises the missing layers
    at random).

    Raises:
        CheckpointError: names ``source`` and lists the keys.
    """
    missing = sorted(map(str, info.get("missing_keys") or ()))
    unexpected = sorted(map(str, info.get("unexpected_keys") or ()))
    misshaped = []
    for entry in sorted(info.get("mismatched_keys") or (), key=str):
        if isinstance(entry, tuple) and len(entry) == 3:
            key, file_shape, model_shape = entry
            misshaped.append(f"{key} (file {list(file_shape)}, model {list(model_shape)})")
        else:
            misshaped.append(str(entry))
    problems = _key_problems(missing, unexpected, misshaped)
    if problems:
        raise CheckpointError(
            f"{source}: the weights do not fit {model_name}: {problems}. Refused, "
            "because missing weights would stay random and unexpected ones would be ignored; "
            "check that config.json and the weights come from the same checkpoint."
        )


@contextlib.contextmanager
def trusted_safetensors_copy(folder: str | os.PathLike) -> Iterator[Path]:
    """A temporary copy of a Hugging Face model folder whose pickled weights (trusted, loaded
    with ``weights_only=False``) are rewritten as one ``model.safetensors``.

    ``transformers`` 5 reads ``pytorch_model.bin`` with ``weights_only=True`` even when asked
    otherwise, so a trusted pickle is converted first; the folder's other files are copied as
    they are and ``transformers`` then loads the copy the usual way (key renames included).

    Raises:
        CheckpointError: the unpickled weights are not all tensors.
    """
    import shutil
    import tempfile

    from safetensors.torch import save_file

    folder = Path(folder)
    pickled = hf_pickle_weight_files(folder)
    state: dict[str, Any] = {}
    for path in pickled:
        loaded = load_weights(path, trust_checkpoint=True)
        if not isinstance(loaded, Mapping):
            raise CheckpointError(f"{path}: expected a state dict, found {type(loaded).__name__}")
        state.update(loaded)
    import torch

    not_tensors = sorted(str(k) for k, v in state.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise CheckpointError(f"{folder}: weights that are not tensors: {_listed(not_tensors)}")
    skip = {path.name for path in pickled} | {"pytorch_model.bin.index.json"}
    with tempfile.TemporaryDirectory(prefix="amongus-trusted-") as scratch:
        copy = Path(scratch)
        for item in folder.iterdir():
            if item.is_file() and item.name not in skip:
                shutil.copy2(item, copy / item.name)
        # safetensors refuses tensors that share memory (tied weights): store each on its own
        save_file(
            {key: value.detach().contiguous().clone() for key, value in state.items()},
            copy / "model.safetensors",
            metadata={"format": "pt"},
        )
        yield copy
