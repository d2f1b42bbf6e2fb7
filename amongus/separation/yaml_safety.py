"""Check a SpeechBrain ``hyperparams.yaml`` before HyperPyYAML builds anything from it.

HyperPyYAML turns tags into calls: ``!new:a.b.C`` constructs ``C``, ``!apply:f`` calls ``f``,
``!name:`` makes a partial, ``!module:`` imports, ``!include:`` reads another file and
``!applyref:`` calls a function while references are resolved. It finds the target with
``pydoc.locate``, which walks attributes, so ``!apply:torch.nn.modules.module.torch.os.system``
reaches ``os.system`` through an allowed-looking prefix; a ``%TAG`` directive can hide the tag
itself; the final load uses ruamel's full ``Loader`` (``!!python/object/apply:`` works) and parses
tuple strings ``(a, b)`` with PyYAML's full loader.

So the text is parsed here without constructing anything (ruamel's composer, the parser
HyperPyYAML itself uses), and the file is refused unless:

* it has no directive (``%TAG``, ``%YAML``) and a single document;
* every node's tag is a core YAML tag, ``!ref``, ``!copy``, ``!tuple``, ``!PLACEHOLDER``, or
  ``!new:``/``!name:``/``!apply:`` followed by a dotted name of :data:`ALLOWED_TARGETS` (the
  exact names that published SpeechBrain separation and speaker-embedding inference files
  write; no prefix matching);
* each allowed name, resolved as HyperPyYAML resolves it, is the very object the allowlist
  means (identity, so a shadowed or monkeypatched attribute is refused too);
* every tuple string holds plain YAML data only.

The check runs twice: on the file, then on the text that reference resolution
(``hyperpyyaml.resolve_references``, safe once ``!applyref:`` and ``!include:`` are excluded)
produces, which is exactly what the final load parses; only then is it built.

Reference: HyperPyYAML (``hyperpyyaml/core.py``), the inference ``hyperparams.yaml`` of
``speechbrain/sepformer-wsj02mix``, ``-wham``, ``-whamr``, ``-libri2mix`` and
``speechbrain/resepformer-wsj02mix``, ``speechbrain/spkrec-ecapa-voxceleb`` on the Hugging
Face Hub.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Any

from ..checkpoints import CheckpointError, unsafe_checkpoint_error

#: Dotted names (as written after the tag) -> the module and attribute that define the object.
_MODEL_CLASSES = {
    "speechbrain.lobes.models.dual_path.Encoder": ("speechbrain.lobes.models.dual_path", "Encoder"),
    "speechbrain.lobes.models.dual_path.Decoder": ("speechbrain.lobes.models.dual_path", "Decoder"),
    "speechbrain.lobes.models.dual_path.Dual_Path_Model": (
        "speechbrain.lobes.models.dual_path",
        "Dual_Path_Model",
    ),
    "speechbrain.lobes.models.dual_path.SBTransformerBlock": (
        "speechbrain.lobes.models.dual_path",
        "SBTransformerBlock",
    ),
    "speechbrain.lobes.models.resepformer.ResourceEfficientSeparator": (
        "speechbrain.lobes.models.resepformer",
        "ResourceEfficientSeparator",
    ),
    "speechbrain.lobes.models.resepformer.SBTransformerBlock_wnormandskip": (
        "speechbrain.lobes.models.resepformer",
        "SBTransformerBlock_wnormandskip",
    ),
    "speechbrain.utils.parameter_transfer.Pretrainer": (
        "speechbrain.utils.parameter_transfer",
        "Pretrainer",
    ),
    # the speaker-embedding layout of speechbrain/spkrec-ecapa-voxceleb (amongus.speakers)
    "speechbrain.lobes.features.Fbank": ("speechbrain.lobes.features", "Fbank"),
    "speechbrain.processing.features.InputNormalization": (
        "speechbrain.processing.features",
        "InputNormalization",
    ),
    "speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN": (
        "speechbrain.lobes.models.ECAPA_TDNN",
        "ECAPA_TDNN",
    ),
    "speechbrain.lobes.models.ECAPA_TDNN.Classifier": (
        "speechbrain.lobes.models.ECAPA_TDNN",
        "Classifier",
    ),
    "speechbrain.dataio.encoder.CategoricalEncoder": (
        "speechbrain.dataio.encoder",
        "CategoricalEncoder",
    ),
}
# Training-derived files seed the generators at the top; nothing else is called at load time.
_SEEDING_FUNCTIONS = {
    "torch.manual_seed": ("torch", "manual_seed"),
    "torch.cuda.manual_seed_all": ("torch.cuda", "manual_seed_all"),
    "random.seed": ("random", "seed"),
    "numpy.random.seed": ("numpy.random", "seed"),
    "speechbrain.utils.seed_everything": ("speechbrain.utils", "seed_everything"),
}
#: For each HyperPyYAML tag kind, the dotted names it may name. ``!module:`` names nothing.
ALLOWED_TARGETS: dict[str, dict[str, tuple[str, str]]] = {
    "new": _MODEL_CLASSES,
    "name": _MODEL_CLASSES,
    "apply": _SEEDING_FUNCTIONS,
}
_CORE_TAG = re.compile(
    r"tag:yaml\.org,2002:(str|int|float|bool|null|seq|map|merge|timestamp|binary|set|omap|pairs)"
)
_PLAIN_TAGS = ("!ref", "!copy", "!tuple", "!PLACEHOLDER")
_TARGET_TAG = re.compile(r"!(?P<kind>[A-Za-z_]+):(?P<target>.*)", re.DOTALL)
_TUPLE = re.compile(r"^\(.*\)$")  # HyperPyYAML's implicit tuple resolver


def allowed_tags() -> list[str]:
    """Every ``!kind:target`` tag a checked file may use, for documentation and messages."""
    return [f"!{kind}:{name}" for kind, names in ALLOWED_TARGETS.items() for name in names]


def _where(node) -> str:
    mark = getattr(node, "start_mark", None)
    return f"line {mark.line + 1}" if mark is not None else "somewhere"


def _resolve(target: str) -> Any:
    """The object HyperPyYAML would get for ``target`` (``pydoc.locate``'s walk), or ``None``."""
    import pydoc

    return pydoc.locate(target)


def _check_target(kind: str, target: str, node, source) -> None:
    names = ALLOWED_TARGETS.get(kind, {})
    tag = f"!{kind}:{target}"
    if target not in names:
        if kind not in ALLOWED_TARGETS:
            why = f"the tag !{kind}: is not allowed in an inference file"
        else:
            why = (
                f"{target!r} is not one of the {len(names)} names allowed after !{kind}: "
                f"({', '.join(sorted(names))}); a name is compared whole, so a path that walks "
                "attributes from an allowed module to another object is refused too"
            )
        raise unsafe_checkpoint_error(source, f"{tag} at {_where(node)}: {why}")
    module_name, attribute = names[target]
    expected = getattr(importlib.import_module(module_name), attribute)
    resolved = _resolve(target)
    # the object must be the allowed one and be defined in the allowed library, so a name
    # shadowed by another object (a patched attribute, a planted module) is refused too
    package = module_name.split(".")[0]
    home = str(getattr(resolved, "__module__", None) or "")
    if resolved is not expected or not (home == package or home.startswith(package + ".")):
        raise unsafe_checkpoint_error(
            source,
            f"{tag} at {_where(node)} resolves to {resolved!r} (defined in {home or 'unknown'}), "
            f"not to the {package} object {module_name}.{attribute} that is allowed",
        )


def _check_tuple_text(text: str, node, source) -> None:
    """A tuple string is re-parsed by PyYAML's full loader: only plain data may be inside."""
    import yaml

    inner = "[" + text[1:-1] + "]"
    try:
        content = yaml.compose(inner, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        raise unsafe_checkpoint_error(
            source, f"the tuple string {text!r} at {_where(node)} is not plain YAML ({error})"
        ) from error
    for inner_node in _walk(content):
        if not _CORE_TAG.fullmatch(inner_node.tag or ""):
            raise unsafe_checkpoint_error(
                source, f"the tuple string at {_where(node)} holds the tag {inner_node.tag}"
            )


def _walk(root):
    """Every node under ``root`` (mapping keys included), each once (aliases can repeat)."""
    seen: set[int] = set()
    pending = [root] if root is not None else []
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        value = node.value
        if isinstance(value, list):
            for item in value:
                pending.extend(item if isinstance(item, tuple) else (item,))


def check_hyperparams_text(text: str, *, source: str | os.PathLike) -> None:
    """Refuse a HyperPyYAML text that could build anything beyond :data:`ALLOWED_TARGETS`.

    Nothing is constructed; allowed names are imported to compare them by identity.

    Raises:
        CheckpointError: names ``source``, the offending directive or tag and its line, and the
            opt-in (``trust_checkpoint=True``).
    """
    import ruamel.yaml
    from ruamel.yaml.events import DocumentStartEvent

    parser = ruamel.yaml.YAML(typ="safe", pure=True)
    try:
        documents = 0
        for event in parser.parse(text):
            if isinstance(event, DocumentStartEvent):
                documents += 1
                if event.tags or getattr(event, "version", None):
                    directives = [f"%TAG {h} {p}" for h, p in (event.tags or {}).items()]
                    if getattr(event, "version", None):
                        directives.append("%YAML " + ".".join(map(str, event.version)))
                    listed = ", ".join(repr(directive) for directive in directives)
                    raise unsafe_checkpoint_error(
                        source,
                        f"the YAML directive {listed}: directives can rename tags, and "
                        "published files use none",
                    )
        if documents > 1:
            raise CheckpointError(f"{source}: {documents} YAML documents, expected one")
        root = ruamel.yaml.YAML(typ="safe", pure=True).compose(text)
    except ruamel.yaml.YAMLError as error:
        raise CheckpointError(f"{source}: not valid YAML ({error})") from error
    for node in _walk(root):
        tag = node.tag or ""
        if _CORE_TAG.fullmatch(tag) or tag in _PLAIN_TAGS:
            pass
        else:
            match = _TARGET_TAG.fullmatch(tag)
            if match is None:
                raise unsafe_checkpoint_error(
                    source, f"the tag {tag} at {_where(node)} is not allowed"
                )
            _check_target(match["kind"], match["target"], node, source)
        if isinstance(node.value, str) and (tag == "!tuple" or _TUPLE.match(node.value)):
            _check_tuple_text(node.value, node, source)


def load_hyperparams(path: str | os.PathLike, *, trust_checkpoint: bool = False) -> dict:
    """Check ``hyperparams.yaml`` (unless ``trust_checkpoint``), then load it with HyperPyYAML.

    Returns:
        The loaded hyperparameters (``modules``, ``pretrainer``, ``sample_rate``...).

    Raises:
        CheckpointError: the file is refused (see :func:`check_hyperparams_text`), unreadable,
            or HyperPyYAML fails on it.
    """
    from hyperpyyaml import load_hyperpyyaml, resolve_references

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: cannot read ({error})") from error
    try:
        if trust_checkpoint:
            with open(path, encoding="utf-8-sig") as stream:
                return load_hyperpyyaml(stream)
        check_hyperparams_text(text, source=path)
        resolved = resolve_references(text).getvalue()
        check_hyperparams_text(resolved, source=f"{path} (after resolving !ref)")
        # load_hyperpyyaml resolves once more; the result is the text it parses, so check it too
        again = resolve_references(resolved).getvalue()
        if again != resolved:
            check_hyperparams_text(again, source=f"{path} (after resolving !ref)")
        return load_hyperpyyaml(resolved)
    except CheckpointError:
        raise
    except Exception as error:  # HyperPyYAML's own errors: bad references, wrong arguments...
        raise CheckpointError(f"{path}: HyperPyYAML could not load it ({error})") from error
