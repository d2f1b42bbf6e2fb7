"""Interactive demo: ``python -m amongus.app`` serves a Gradio page on 127.0.0.1.

Upload or record a multi-party clip, or pick a bundled example mixture (made from the bundled demo
set with the library's own :class:`~amongus.mix.Mixer` when the app starts); choose a separator and
a spoof classifier; listen to the separated streams, read each stream's spoof scores and the
mixture verdict (composition label such as ``SB``, and whether a spoof is present).

The "Long recording" tab takes a long multi-party recording (optionally the number of speakers
and enrollment clips of known participants), runs :meth:`amongus.Pipeline.analyze` and shows
the speakers found with their spoof scores and verdicts, the timeline plot, and the JSON and RTTM
outputs for download (helpers in :mod:`amongus.app_conversation`).

Uploads are checked before anything runs: the extension must be an audio type, the file at most
``--max-upload-mb`` megabytes, readable by soundfile, and at most ``--max-seconds`` long (long
recordings: ``--max-long-upload-mb`` and ``--max-long-seconds``). A bad upload is answered with a
:class:`gradio.Error` naming the problem.

The app only listens on 127.0.0.1 and never opens a public share link. Gradio is imported when the
app is built, so the helpers here (upload checks, example mixtures, verdicts) work without it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au")
DEFAULT_MAX_UPLOAD_MB = 20.0
DEFAULT_MAX_SECONDS = 60.0
MAX_STREAMS_SHOWN = 4
SPOOF_THRESHOLD = 0.5  # the Pipeline's default; results carry the threshold actually used
_CACHED_PIPELINES = 2


class UploadError(ValueError):
    """An uploaded file that the demo refuses (wrong type, too large, too long, unreadable)."""


@dataclass(frozen=True)
class UploadInfo:
    """What the upload check learnt about an accepted file."""

    path: Path
    size_bytes: int
    sample_rate: int
    channels: int
    duration: float


def check_upload(
    path: str | os.PathLike,
    *,
    max_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 1024 * 1024),
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> UploadInfo:
    """Accept an uploaded audio file or raise :class:`UploadError` saying why not.

    Checks, in order: the file exists, its extension is one of :data:`AUDIO_EXTENSIONS`, it is at
    most ``max_bytes`` bytes, soundfile can read it, it holds at least one sample, and it lasts at
    most ``max_seconds``.
    """
    import soundfile as sf

    path = Path(path)
    name = path.name
    if not path.is_file():
        raise UploadError(f"{name}: no such file")
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        raise UploadError(
            f"{name}: not an audio file type ({path.suffix or 'no extension'}); "
            f"upload one of {', '.join(AUDIO_EXTENSIONS)}"
        )
    size = path.stat().st_size
    if size > max_bytes:
        raise UploadError(
            f"{name}: file too large ({size / 2**20:.1f} MB); the limit is "
            f"{max_bytes / 2**20:.1f} MB"
        )
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as error:
        raise UploadError(f"{name}: not readable as audio ({error})") from error
    if info.frames <= 0 or info.samplerate <= 0:
        raise UploadError(f"{name}: the file holds no audio samples")
    duration = info.frames / info.samplerate
    if duration > max_seconds:
        raise UploadError(
            f"{name}: clip too long ({duration:.1f} s); the limit is {max_seconds:.0f} s"
        )
    return UploadInfo(path, size, int(info.samplerate), int(info.channels), duration)


@dataclass(frozen=True)
class Example:
    """A bundled example mixture and its true composition."""

    mixture_id: str
    path: Path
    label: str
    duration: float

    @property
    def title(self) -> str:
        return f"{self.mixture_id} (true: {self.label}, {self.duration:.1f} s)"


def prepare_examples(
    cache_dir: str | os.PathLike,
    *,
    n_examples: int = 4,
    seed: int = 0,
    split: str = "eval",
) -> list[Example]:
    """Mix ``n_examples`` example mixtures from the bundled demo set into ``cache_dir``.

    The mixtures are made once with :class:`amongus.mix.Mixer` (default config) and reused on
    later starts when the cached manifest was made with the same ``n_examples``, ``seed`` and
    ``split`` and all its audio files exist.
    """
    from .manifest import read_mixtures

    cache_dir = Path(cache_dir) / f"{split}-n{n_examples}-seed{seed}"
    manifest = cache_dir / "mixtures.jsonl"
    mixtures = read_mixtures(manifest) if manifest.is_file() else []
    if len(mixtures) < n_examples or not all(
        _mixture_audio(manifest, m.path).is_file() for m in mixtures
    ):
        from .corpora.demo import demo_utterances
        from .mix import Mixer, MixerConfig

        logger.info("mixing %d example mixtures into %s", n_examples, cache_dir)
        Mixer(MixerConfig()).run(
            demo_utterances(split),
            cache_dir,
            n_mixtures=n_examples,
            seed=seed,
            split=split,
            workers=1,
            progress=False,
        )
        mixtures = read_mixtures(manifest)
    examples = []
    for mixture in mixtures[:n_examples]:
        audio_path = _mixture_audio(manifest, mixture.path)
        n_samples = mixture.num_samples
        if n_samples is None:
            import soundfile as sf

            n_samples = sf.info(str(audio_path)).frames
        duration = n_samples / mixture.sample_rate
        examples.append(Example(mixture.mixture_id, audio_path, mixture.label, duration))
    return examples


def _mixture_audio(manifest: Path, path: str) -> Path:
    audio_path = Path(path)
    return audio_path if audio_path.is_absolute() else manifest.parent / audio_path


@dataclass(frozen=True)
class ComponentChoice:
    """One entry of the separator or classifier menu: what the user sees and what is loaded."""

    title: str
    spec: str


def component_choices(
    *,
    extra_separators: Sequence[str] = (),
    extra_classifiers: Sequence[str] = (),
) -> tuple[list[ComponentChoice], list[ComponentChoice]]:
    """The separator and classifier menus: components given on the command line first, then
    every installed preset's components from :mod:`amongus.defaults`.

    The oracle separator is left out: it needs the reference sources, which an uploaded clip does
    not have.
    """
    from . import defaults

    separators = [ComponentChoice(f"{short_name(s)} (command line)", s) for s in extra_separators]
    classifiers = [ComponentChoice(f"{short_name(c)} (command line)", c) for c in extra_classifiers]
    for preset in defaults.available_presets():
        try:
            components = defaults.default_components(preset)
        except FileNotFoundError as error:
            logger.info("preset %s is not installed: %s", preset, error)
            continue
        separator, classifier = str(components["separator"]), str(components["classifier"])
        if separator != "oracle" and separator not in {c.spec for c in separators}:
            separators.append(ComponentChoice(_component_title(separator, preset), separator))
        if classifier not in {c.spec for c in classifiers}:
            classifiers.append(ComponentChoice(_component_title(classifier, preset), classifier))
    return separators, classifiers


def short_name(spec: str) -> str:
    """A readable name for a component: the last two parts of a local path, else the spec."""
    path = Path(spec)
    if path.exists():
        return "/".join(path.resolve().parts[-2:])
    return spec


def _component_title(spec: str, preset: str) -> str:
    return f"{short_name(spec)} (preset {preset})"


@dataclass
class Analysis:
    """What the page shows for one clip: streams, per-stream scores and the verdict."""

    sample_rate: int
    streams: list[np.ndarray]
    stream_labels: list[str]
    stream_spoof_probability: list[float]
    stream_cm_score: list[float]
    mixture_label: str
    spoof_present_score: float
    spoof_threshold: float = SPOOF_THRESHOLD
    true_label: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def spoof_present(self) -> bool:
        return self.spoof_present_score >= self.spoof_threshold

    def score_rows(self) -> list[list[Any]]:
        """One row per stream: index, predicted label, spoof probability, cm score."""
        return [
            [index + 1, label, round(float(probability), 4), round(float(cm_score), 4)]
            for index, (label, probability, cm_score) in enumerate(
                zip(
                    self.stream_labels,
                    self.stream_spoof_probability,
                    self.stream_cm_score,
                    strict=True,
                )
            )
        ]

    def verdict_markdown(self) -> str:
        present = "yes" if self.spoof_present else "no"
        n_spoofed = self.mixture_label.count("S")
        lines = [
            f"### Verdict: {self.mixture_label}",
            f"**Spoof present: {present}** (score {self.spoof_present_score:.3f}, "
            f"threshold {self.spoof_threshold:g})",
            "",
            f"{n_spoofed} of {len(self.streams)} separated speakers look spoofed.",
        ]
        if self.true_label is not None:
            agreement = "correct" if self.true_label == self.mixture_label else "wrong"
            lines += [
                "",
                f"True composition of this bundled example: **{self.true_label}** ({agreement}).",
            ]
        lines += ["", *self.notes]
        return "\n".join(lines).rstrip()


def analyse(pipeline, path: str | os.PathLike, *, true_label: str | None = None) -> Analysis:
    """Run ``pipeline`` on the audio file at ``path`` and collect what the page shows."""
    from .audio import load_audio, to_mono

    audio, sample_rate = load_audio(path)
    audio = to_mono(np.asarray(audio))
    result = pipeline(audio, sample_rate=sample_rate)
    streams = np.asarray(result.streams, dtype=np.float32)
    return Analysis(
        sample_rate=int(result.stream_sample_rate),
        streams=list(streams),
        stream_labels=list(result.predicted_labels),
        stream_spoof_probability=np.asarray(result.spoof_probability, dtype=float).tolist(),
        stream_cm_score=np.asarray(result.cm_score, dtype=float).tolist(),
        mixture_label=str(result.mixture_label),
        spoof_present_score=float(result.spoof_present_score),
        spoof_threshold=float(result.spoof_threshold),
        true_label=true_label,
    )


def _listenable(stream: np.ndarray) -> np.ndarray:
    """Peak-normalise a stream to 0.9 and convert to 16-bit PCM for the browser player."""
    peak = float(np.max(np.abs(stream))) if stream.size else 0.0
    scaled = stream * (0.9 / peak) if peak > 0 else stream
    return np.clip(np.round(scaled * 32767.0), -32768, 32767).astype(np.int16)


class PipelineCache:
    """Builds pipelines on first use and keeps the most recently used ones loaded."""

    def __init__(self, *, capacity: int = _CACHED_PIPELINES):
        self._capacity = capacity
        self._pipelines: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, separator: str, classifier: str):
        key = (separator, classifier)
        with self._lock:
            if key in self._pipelines:
                self._pipelines.move_to_end(key)
                return self._pipelines[key]
            from .pipeline import Pipeline

            logger.info("loading pipeline: separator %s, classifier %s", separator, classifier)
            # no reference sources for an uploaded clip: mixture-level outputs, no assignment
            pipeline = Pipeline(separator=separator, classifier=classifier, assignment=None)
            self._pipelines[key] = pipeline
            while len(self._pipelines) > self._capacity:
                self._pipelines.popitem(last=False)
            return pipeline


@dataclass
class AppConfig:
    """Everything ``build_app`` needs; the command-line options map onto it one to one."""

    cache_dir: Path = field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "amongus-app-examples"
    )
    n_examples: int = 4
    seed: int = 0
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    max_seconds: float = DEFAULT_MAX_SECONDS
    separators: list[str] = field(default_factory=list)
    classifiers: list[str] = field(default_factory=list)
    max_long_upload_mb: float = 200.0  # amongus.app_conversation.DEFAULT_MAX_LONG_UPLOAD_MB
    max_long_seconds: float = 1800.0  # amongus.app_conversation.DEFAULT_MAX_LONG_SECONDS
    embedder: str | None = None  # speaker embedder of the long-recording tab (None: ecapa-tiny)


def build_app(config: AppConfig | None = None):
    """Build the Gradio Blocks page. Returns ``(blocks, examples)``."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    config = config or AppConfig()
    separators, classifiers = component_choices(
        extra_separators=config.separators, extra_classifiers=config.classifiers
    )
    if not separators or not classifiers:
        raise SystemExit(
            "no separator or classifier available: the shipped models are not installed. "
            "Pass --separator and --classifier (a local folder or hub id)."
        )
    examples = prepare_examples(config.cache_dir, n_examples=config.n_examples, seed=config.seed)
    example_by_title = {example.title: example for example in examples}
    cache = PipelineCache()
    max_bytes = int(config.max_upload_mb * 1024 * 1024)

    def load_example(title: str | None):
        if not title:
            return None
        return str(example_by_title[title].path)

    def run(audio_path, separator_spec, classifier_spec, example_title):
        if not audio_path:
            raise gr.Error("Upload or record a clip, or pick a bundled example, first.")
        try:
            upload = check_upload(audio_path, max_bytes=max_bytes, max_seconds=config.max_seconds)
        except UploadError as error:
            raise gr.Error(str(error)) from error
        # Gradio hands over a copy of the file, so a bundled example is recognised by content.
        chosen = example_by_title.get(example_title or "")
        candidates = [chosen, *examples] if chosen is not None else examples
        true_label = next((e.label for e in candidates if _same_audio(upload.path, e)), None)
        try:
            pipeline = cache.get(separator_spec, classifier_spec)
            analysis = analyse(pipeline, upload.path, true_label=true_label)
        except Exception as error:  # noqa: BLE001 - the page shows any failure as a message
            logger.exception("analysis failed")
            raise gr.Error(f"analysis failed: {type(error).__name__}: {error}") from error
        analysis.notes.append(
            f"Separator `{short_name(separator_spec)}`, classifier `{short_name(classifier_spec)}`; "
            f"streams at {analysis.sample_rate} Hz."
        )
        if len(analysis.streams) > MAX_STREAMS_SHOWN:
            analysis.notes.append(
                f"The table lists all {len(analysis.streams)} streams; the first "
                f"{MAX_STREAMS_SHOWN} have players."
            )
        outputs: list[Any] = [analysis.verdict_markdown(), analysis.score_rows()]
        for index in range(MAX_STREAMS_SHOWN):
            if index < len(analysis.streams):
                label = (
                    f"Stream {index + 1}: {analysis.stream_labels[index]} "
                    f"(spoof probability {analysis.stream_spoof_probability[index]:.3f})"
                )
                outputs.append(
                    gr.Audio(
                        value=(analysis.sample_rate, _listenable(analysis.streams[index])),
                        label=label,
                        visible=True,
                    )
                )
            else:
                outputs.append(gr.Audio(value=None, visible=False))
        return outputs

    with gr.Blocks(title="amongus: spoofed voices in multi-party audio") as blocks:
        gr.Markdown(
            "# amongus: who in this conversation is a deepfake?\n"
            "Upload or record a clip with two or more people talking over each other, or pick a "
            "bundled example. The separator splits it into one stream per speaker; the spoof "
            "classifier scores each stream. Limits: "
            f"{config.max_upload_mb:g} MB, {config.max_seconds:g} s, "
            f"{', '.join(AUDIO_EXTENSIONS)}. The **Long recording** tab takes a whole call "
            f"(up to {config.max_long_seconds / 60:g} minutes) and says which speaker is a "
            "deepfake, and when."
        )
        with gr.Tab("Short clip", id="short"):
            with gr.Row():
                with gr.Column():
                    audio_in = gr.Audio(
                        sources=["upload", "microphone"],
                        type="filepath",
                        label="Mixture (upload or record)",
                        elem_id="mixture",
                        buttons=["download"],
                    )
                    example_menu = gr.Dropdown(
                        choices=[example.title for example in examples],
                        value=None,
                        label="Or pick a bundled example",
                        elem_id="example",
                    )
                    separator_menu, classifier_menu = _model_menus(gr, separators, classifiers)
                    run_button = gr.Button("Separate and score", variant="primary", elem_id="run")
                with gr.Column():
                    verdict = gr.Markdown("No clip analysed yet.", elem_id="verdict")
                    scores = gr.Dataframe(
                        headers=[
                            "stream",
                            "label",
                            "spoof probability",
                            "cm score (higher=bonafide)",
                        ],
                        label="Per-stream scores",
                        interactive=False,
                        elem_id="scores",
                    )
                    stream_players = [
                        gr.Audio(
                            label=f"Stream {index + 1}",
                            interactive=False,
                            visible=False,
                            buttons=["download"],
                            elem_id=f"stream-{index + 1}",
                        )
                        for index in range(MAX_STREAMS_SHOWN)
                    ]
            example_menu.change(load_example, inputs=example_menu, outputs=audio_in)
            run_button.click(
                run,
                inputs=[audio_in, separator_menu, classifier_menu, example_menu],
                outputs=[verdict, scores, *stream_players],
            )
        with gr.Tab("Long recording", id="long"):
            _long_recording_tab(gr, config, cache, separators, classifiers)
    return blocks, examples


def _long_recording_tab(gr, config: AppConfig, cache: PipelineCache, separators, classifiers):
    """The "Long recording" tab: inputs, outputs and its click handler (inside a gr.Tab)."""
    # the helpers' UploadError: under ``python -m amongus.app`` this module is __main__, and its
    # own UploadError is a different class from the one amongus.app_conversation raises
    from .app_conversation import UploadError as LongUploadError
    from .app_conversation import (
        analyse_long,
        check_long_upload,
        enrollment_clips,
        parse_n_speakers,
    )
    from .validation import InvalidAudioError

    long_max_bytes = int(config.max_long_upload_mb * 1024 * 1024)
    clip_max_bytes = int(config.max_upload_mb * 1024 * 1024)
    embedders: dict[str, Any] = {}
    embedder_lock = threading.Lock()
    out_root = Path(config.cache_dir) / "long-recordings"

    def get_embedder(device: str):
        with embedder_lock:
            if device not in embedders:
                from .speakers import load_speaker_embedder

                logger.info("loading speaker embedder %s", config.embedder or "ecapa-tiny")
                embedders[device] = load_speaker_embedder(config.embedder, device=device)
            return embedders[device]

    def run_long(
        audio_path,
        n_speakers_value,
        enroll_files,
        enroll_names,
        separator_spec,
        classifier_spec,
        progress=gr.Progress(track_tqdm=True),  # noqa: B008 - Gradio's way to ask for progress
    ):
        if not audio_path:
            raise gr.Error("Upload a recording first.")
        try:
            upload = check_long_upload(
                audio_path, max_bytes=long_max_bytes, max_seconds=config.max_long_seconds
            )
            n_speakers = parse_n_speakers(n_speakers_value)
            paths = [getattr(f, "name", f) for f in (enroll_files or [])]
            enrollment = enrollment_clips(
                paths, enroll_names, max_bytes=clip_max_bytes, max_seconds=config.max_seconds
            )
        except LongUploadError as error:
            raise gr.Error(str(error)) from error
        progress(0.0, desc="loading models")
        out_dir = Path(tempfile.mkdtemp(prefix="analysis-", dir=_made(out_root)))
        try:
            pipeline = cache.get(separator_spec, classifier_spec)
            analysis = analyse_long(
                pipeline,
                upload.path,
                out_dir,
                n_speakers=n_speakers,
                enrollment=enrollment,
                embedder=get_embedder(pipeline.device),
            )
        except (InvalidAudioError, ValueError) as error:  # a refused recording or clip
            raise gr.Error(f"{type(error).__name__}: {error}") from error
        except Exception as error:  # noqa: BLE001 - the page shows any failure as a message
            logger.exception("long-recording analysis failed")
            raise gr.Error(f"analysis failed: {type(error).__name__}: {error}") from error
        summary = analysis.summary_markdown() + (
            f"\n\nSeparator `{short_name(separator_spec)}`, classifier "
            f"`{short_name(classifier_spec)}`, speaker embedder "
            f"`{config.embedder or 'ecapa-tiny'}`."
        )
        files = [str(analysis.files[kind]) for kind in ("json", "rttm") if kind in analysis.files]
        return summary, analysis.speaker_rows(), str(analysis.files["png"]), files

    with gr.Row():
        with gr.Column(scale=1):
            audio_in = gr.Audio(
                sources=["upload"],
                type="filepath",
                label="Long recording (upload)",
                elem_id="long-recording",
            )
            n_speakers_in = gr.Number(
                value=0,
                precision=0,
                minimum=0,
                label="Number of speakers (0 = find out)",
                elem_id="long-speakers",
            )
            enroll_in = gr.File(
                file_count="multiple",
                file_types=list(AUDIO_EXTENSIONS),
                label="Optional: short clean clips of known participants",
                elem_id="long-enroll",
            )
            names_in = gr.Textbox(
                label="Participant names, one per clip in upload order (blank: file names)",
                placeholder="alice, bob, carol",
                elem_id="long-names",
            )
            separator_menu, classifier_menu = _model_menus(
                gr, separators, classifiers, id_prefix="long-"
            )
            run_button = gr.Button("Find the deepfake", variant="primary", elem_id="long-run")
        with gr.Column(scale=2):
            summary = gr.Markdown("No recording analysed yet.", elem_id="long-summary")
            table = gr.Dataframe(
                headers=[
                    "speaker",
                    "participant",
                    "verdict",
                    "spoof score (higher=spoof)",
                    "max segment score",
                    "speech (s)",
                    "segments",
                ],
                label="Speakers found",
                interactive=False,
                elem_id="long-table",
            )
            timeline = gr.Image(
                type="filepath", label="Timeline", interactive=False, elem_id="long-timeline"
            )
            downloads = gr.File(
                label="Outputs (JSON, RTTM)", interactive=False, elem_id="long-files"
            )
    run_button.click(
        run_long,
        inputs=[audio_in, n_speakers_in, enroll_in, names_in, separator_menu, classifier_menu],
        outputs=[summary, table, timeline, downloads],
    )


def _model_menus(gr, separators, classifiers, *, id_prefix: str = ""):
    """The separator and spoof-classifier dropdowns of a tab (the first choice preselected);
    ``id_prefix`` keeps their element ids unique across tabs (the browser tests find them by
    id)."""
    separator_menu = gr.Dropdown(
        choices=[(c.title, c.spec) for c in separators],
        value=separators[0].spec,
        label="Separator",
        elem_id=f"{id_prefix}separator",
    )
    classifier_menu = gr.Dropdown(
        choices=[(c.title, c.spec) for c in classifiers],
        value=classifiers[0].spec,
        label="Spoof classifier",
        elem_id=f"{id_prefix}classifier",
    )
    return separator_menu, classifier_menu


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def offline_theme():
    """Gradio's default theme with system fonts only, so the page loads no web fonts."""
    import gradio as gr

    font = ["ui-sans-serif", "system-ui", "sans-serif"]
    return gr.themes.Default(font=font, font_mono=["ui-monospace", "monospace"])


def _same_audio(path: Path, example: Example) -> bool:
    """Whether an uploaded copy is the chosen example (Gradio copies files into its cache)."""
    try:
        return path.stat().st_size == example.path.stat().st_size and (
            path.read_bytes() == example.path.read_bytes()
        )
    except OSError:
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m amongus.app",
        description=(
            "Interactive demo on http://127.0.0.1:PORT: upload, record or pick a multi-party "
            "clip, separate it, score each stream for spoofing and show the mixture verdict. "
            "Listens on 127.0.0.1 only; no public share link."
        ),
    )
    parser.add_argument("--port", type=int, default=7860, help="port on 127.0.0.1 (default 7860)")
    parser.add_argument(
        "--separator",
        action="append",
        default=[],
        metavar="NAME_OR_PATH",
        help="extra separator for the menu (registered name, local folder or hub id); "
        "repeatable; the first one is preselected",
    )
    parser.add_argument(
        "--classifier",
        action="append",
        default=[],
        metavar="PATH_OR_HUB_ID",
        help="extra spoof classifier for the menu (Hugging Face folder or hub id); repeatable; "
        "the first one is preselected",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=AppConfig().cache_dir,
        help="where the bundled example mixtures are mixed at startup (reused when present)",
    )
    parser.add_argument(
        "--n-examples", type=int, default=4, help="number of bundled example mixtures"
    )
    parser.add_argument("--seed", type=int, default=0, help="mixer seed for the examples")
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        default=DEFAULT_MAX_UPLOAD_MB,
        help=f"largest accepted upload in MB (default {DEFAULT_MAX_UPLOAD_MB:g})",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=DEFAULT_MAX_SECONDS,
        help=f"longest accepted clip in seconds (default {DEFAULT_MAX_SECONDS:g})",
    )
    parser.add_argument(
        "--max-long-upload-mb",
        type=float,
        default=AppConfig.max_long_upload_mb,
        help="largest accepted long recording in MB (default %(default)g)",
    )
    parser.add_argument(
        "--max-long-seconds",
        type=float,
        default=AppConfig.max_long_seconds,
        help="longest accepted long recording in seconds (default %(default)g)",
    )
    parser.add_argument(
        "--embedder",
        default=None,
        metavar="NAME_OR_PATH",
        help="speaker embedder of the long-recording tab: a folder in SpeechBrain's "
        "spkrec-ecapa-voxceleb layout or a hub id (default: the shipped ecapa-tiny)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from .cli_options import configure_logging

    args = build_parser().parse_args(argv)
    configure_logging(verbose=True)
    config = AppConfig(
        cache_dir=args.cache_dir,
        n_examples=args.n_examples,
        seed=args.seed,
        max_upload_mb=args.max_upload_mb,
        max_seconds=args.max_seconds,
        separators=args.separator,
        classifiers=args.classifier,
        max_long_upload_mb=args.max_long_upload_mb,
        max_long_seconds=args.max_long_seconds,
        embedder=args.embedder,
    )
    blocks, examples = build_app(config)
    print(f"amongus demo: {len(examples)} bundled examples in {config.cache_dir}")
    print(f"open http://{HOST}:{args.port}", flush=True)
    blocks.queue(default_concurrency_limit=1)
    blocks.launch(
        server_name=HOST,
        server_port=args.port,
        share=False,
        ssr_mode=False,
        # Gradio's own hard cap, above ours, so that our check gives the clearer message.
        max_file_size=int(2 * max(config.max_upload_mb, config.max_long_upload_mb) * 2**20) + 1024,
        allowed_paths=[str(config.cache_dir)],
        theme=offline_theme(),  # Gradio 6 takes the theme in launch()
        footer_links=[],
        quiet=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
