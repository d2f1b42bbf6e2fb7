"""The Gradio demo: upload checks as functions, then the real app driven in headless Chromium.

The browser tests start ``python -m amongus.app`` as a subprocess on a free port with tiny models
(a random ConvTasNet and a random WavLM classifier in their real formats) and drive it with
Playwright using the system ``chromium`` (Debian package; CI installs it with scripts/setup.sh).
They skip, saying why, only when chromium or Playwright is missing, and are marked slow (about a
minute together, most of it starting the app); the README test command runs them.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from amongus.app import UploadError, check_upload

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # a synthetic microphone (a beep) that needs no permission prompt, for the recording test
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
MAX_UPLOAD_MB = 1.0  # small limit so that the oversize case needs only a small file


# --- upload checks, no browser ------------------------------------------------------------------


def _write_tone(path: Path, seconds: float, *, sample_rate: int = 16000, subtype=None) -> Path:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    sf.write(
        path, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sample_rate, subtype=subtype
    )
    return path


def test_check_upload_accepts_a_short_clip(tmp_path: Path):
    info = check_upload(_write_tone(tmp_path / "clip.flac", 2.0, sample_rate=8000))
    assert info.sample_rate == 8000
    assert info.duration == pytest.approx(2.0)
    assert info.channels == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.txt", b"not audio", "not an audio file type (.txt)"),
        ("noise.wav", b"RIFF....garbage", "not readable as audio"),
        ("empty.flac", b"", "not readable as audio"),
    ],
)
def test_check_upload_refuses_wrong_types(tmp_path: Path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UploadError, match=re.escape(message)):
        check_upload(path)


def test_check_upload_refuses_large_and_long_files(tmp_path: Path):
    big = _write_tone(tmp_path / "big.wav", 20.0, subtype="FLOAT")  # 1.28 MB
    with pytest.raises(UploadError, match=r"file too large \(1\.2 MB\); the limit is 1\.0 MB"):
        check_upload(big, max_bytes=2**20)
    assert check_upload(big, max_bytes=2 * 2**20).duration == pytest.approx(20.0)
    long_clip = _write_tone(tmp_path / "long.flac", 61.0, sample_rate=8000)
    with pytest.raises(UploadError, match=r"clip too long \(61\.0 s\); the limit is 60 s"):
        check_upload(long_clip)


def test_command_line_has_no_share_option():
    from amongus.app import build_parser

    options = {option for action in build_parser()._actions for option in action.option_strings}
    assert "--port" in options
    assert not any("share" in option or "host" in option for option in options)


def test_prepare_examples_mixes_the_demo_set_once(tmp_path: Path):
    from amongus.app import prepare_examples
    from amongus.manifest import read_mixtures

    examples = prepare_examples(tmp_path, n_examples=2, seed=3)
    assert len(examples) == 2
    (manifest,) = tmp_path.rglob("mixtures.jsonl")
    records = {m.mixture_id: m for m in read_mixtures(manifest)}
    for example in examples:
        assert example.path.is_file()
        assert example.label == records[example.mixture_id].label
        assert example.duration == pytest.approx(sf.info(str(example.path)).duration)
    stamps = [example.path.stat().st_mtime_ns for example in examples]
    again = prepare_examples(tmp_path, n_examples=2, seed=3)
    assert again == examples
    assert [example.path.stat().st_mtime_ns for example in again] == stamps  # not mixed again


def test_verdict_names_composition_presence_and_truth():
    from amongus.app import Analysis

    analysis = Analysis(
        sample_rate=16000,
        streams=[np.zeros(10), np.zeros(10)],
        stream_labels=["spoof", "bonafide"],
        stream_spoof_probability=[0.7, 0.2],
        stream_cm_score=[-0.8, 1.4],
        mixture_label="SB",
        spoof_present_score=0.7,
        true_label="BB",
    )
    text = analysis.verdict_markdown()
    assert "### Verdict: SB" in text
    assert "**Spoof present: yes** (score 0.700, threshold 0.5)" in text
    assert "1 of 2 separated speakers look spoofed." in text
    assert "True composition of this bundled example: **BB** (wrong)." in text
    assert analysis.score_rows() == [[1, "spoof", 0.7, -0.8], [2, "bonafide", 0.2, 1.4]]
    analysis.spoof_present_score = 0.3
    assert "**Spoof present: no**" in analysis.verdict_markdown()


# --- the real app in a browser ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium; see scripts/setup.sh)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (test extra)")
    pytest.importorskip("gradio", reason="gradio is not installed (app extra)")
    from amongus.testing.classifiers import build_tiny_classifier
    from amongus.testing.separators import build_tiny_convtasnet

    root = tmp_path_factory.mktemp("app")
    classifier = build_tiny_classifier(root / "classifier")
    separator = build_tiny_convtasnet(root / "convtasnet", sample_rate=16000)
    cache_dir = root / "examples"
    port = _free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    log_path = root / "app.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "amongus.app",
                "--port",
                str(port),
                "--separator",
                str(separator),
                "--classifier",
                str(classifier),
                "--cache-dir",
                str(cache_dir),
                "--n-examples",
                "2",
                "--max-upload-mb",
                str(MAX_UPLOAD_MB),
            ],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"the app exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the app did not answer on {url}:\n{log_path.read_text()}")
            time.sleep(0.5)
        mixtures = sorted(cache_dir.rglob("audio/*.flac"))
        yield {
            "url": url,
            "port": port,
            "mixtures": mixtures,
            "cache_dir": cache_dir,
            "log": log_path,
        }
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser(app_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_server):
    context = browser.new_context(
        viewport={"width": 1280, "height": 1000}, permissions=["microphone"]
    )
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(app_server["url"])
    page.wait_for_selector("#run")
    yield page
    context.close()


def _outward_address() -> str | None:
    """This machine's address on its default route (a UDP connect sends no packet)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("192.0.2.123", 9))
            return sock.getsockname()[0]
    except OSError:
        return None


@pytest.mark.slow
def test_app_listens_on_loopback_only(app_server):
    address = _outward_address()
    if address is None or address.startswith("127."):
        pytest.skip(f"this machine has no non-loopback address ({address})")
    with socket.socket() as sock, pytest.raises(OSError):
        sock.settimeout(3)
        sock.connect((address, app_server["port"]))
    with socket.create_connection(("127.0.0.1", app_server["port"]), timeout=3):
        pass  # while the loopback address answers


def _wait_for_mixture(page) -> None:
    # the audio is loaded when the player (waveform and controls) replaces the drop zone
    page.wait_for_selector("#mixture [data-testid='waveform-controls']", state="attached")


def _upload(page, path: Path) -> None:
    page.locator("#mixture input[type=file]").set_input_files(str(path))
    _wait_for_mixture(page)


@pytest.mark.slow
def test_uploaded_bundled_mixture_gets_a_verdict(page, app_server, tmp_path):
    mixtures = app_server["mixtures"]
    assert len(mixtures) == 2, f"the app made {len(mixtures)} example mixtures, expected 2"
    _upload(page, mixtures[0])
    page.click("#run")
    page.wait_for_function(
        "() => document.querySelector('#verdict').innerText.includes('Verdict:')",
        timeout=180_000,
    )
    verdict = page.inner_text("#verdict")
    match = re.search(r"Verdict: ([SB]{2})\b", verdict)
    assert match, verdict
    composition = match.group(1)
    present = re.search(r"Spoof present: (yes|no) \(score ([0-9.]+)", verdict)
    assert present, verdict
    assert (present.group(1) == "yes") == ("S" in composition)
    # the uploaded file is the bundled example, so the page knows and shows its truth
    assert re.search(r"True composition of this bundled example: [SB]{2}", verdict), verdict

    cells = page.locator("#scores [role=gridcell]")
    page.wait_for_function(
        "() => document.querySelectorAll('#scores [role=gridcell]').length === 8"
    )
    texts = [cells.nth(index).inner_text().strip() for index in range(cells.count())]
    rows = [texts[start : start + 4] for start in range(0, len(texts), 4)]
    assert [row[0] for row in rows] == ["1", "2"], rows
    assert all(row[1] in ("bonafide", "spoof") for row in rows), rows
    assert sum(row[1] == "spoof" for row in rows) == composition.count("S"), (rows, composition)
    probabilities = [float(row[2]) for row in rows]
    assert all(0.0 <= probability <= 1.0 for probability in probabilities)
    assert max(probabilities) == pytest.approx(float(present.group(2)), abs=1e-3)
    # a stream is called spoof exactly when its spoof probability reaches the threshold, and its
    # cm score (higher = bonafide) then is not positive
    for row in rows:
        assert (row[1] == "spoof") == (float(row[2]) >= 0.5), row
        assert (float(row[3]) <= 0) == (row[1] == "spoof"), row

    for index in (1, 2):
        assert page.locator(f"#stream-{index}").is_visible()
    assert not page.locator("#stream-3").is_visible()

    screenshot = tmp_path / "demo.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    shot_dir = os.environ.get("AMONGUS_SCREENSHOT_DIR")
    if shot_dir:  # keep a copy for people (docs/assets/demo.png is made this way)
        shutil.copy(screenshot, Path(shot_dir) / "demo.png")


def _error_text(page, text: str) -> str:
    locator = page.get_by_text(text, exact=False).first
    locator.wait_for(state="visible", timeout=60_000)
    return locator.inner_text()


@pytest.mark.slow
def test_oversized_upload_is_refused(page, tmp_path):
    big = _write_tone(tmp_path / "big.wav", 20.0, subtype="FLOAT")  # 1.28 MB > 1 MB limit
    _upload(page, big)
    page.click("#run")
    message = _error_text(page, "file too large")
    assert "the limit is 1.0 MB" in message
    assert "Verdict:" not in page.inner_text("#verdict")


@pytest.mark.slow
def test_wrong_type_upload_is_refused(page, tmp_path):
    # an audio extension but not audio: passes the browser's file filter, refused by our check
    fake = tmp_path / "notes.wav"
    fake.write_bytes(b"this is a text file pretending to be audio\n" * 100)
    page.locator("#mixture input[type=file]").set_input_files(str(fake))
    page.wait_for_timeout(1500)
    page.click("#run")
    assert "notes.wav" in _error_text(page, "not readable as audio")
    assert "Verdict:" not in page.inner_text("#verdict")


@pytest.mark.slow
def test_non_audio_file_type_is_refused(page, tmp_path):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello\n" * 100)
    page.locator("#mixture input[type=file]").set_input_files(str(text_file))
    _error_text(page, "Invalid file type: notes.txt")  # Gradio's own filter, in the browser
    page.click("#run")
    _error_text(page, "Upload or record a clip, or pick a bundled example, first.")
    assert "Verdict:" not in page.inner_text("#verdict")


@pytest.mark.slow
def test_picked_bundled_example_gets_a_verdict_with_its_truth(page):
    page.click("#example input")
    option = page.locator("[role=option]").first
    option.wait_for(state="visible")
    title = option.inner_text()
    truth = re.search(r"\(true: ([SB]{2}),", title)
    assert truth, title
    option.click()
    _wait_for_mixture(page)
    page.click("#run")
    page.wait_for_function(
        "() => document.querySelector('#verdict').innerText.includes('Verdict:')",
        timeout=180_000,
    )
    verdict = page.inner_text("#verdict")
    assert f"True composition of this bundled example: {truth.group(1)}" in verdict, verdict


@pytest.mark.slow
def test_recorded_clip_gets_a_verdict(page):
    page.click("#mixture button[aria-label='Record audio']")
    page.locator("#mixture button", has_text="Record").first.click()
    page.wait_for_timeout(2500)  # record 2.5 s of the synthetic microphone
    page.locator("#mixture button:visible", has_text="Stop").first.click()
    _wait_for_mixture(page)
    page.click("#run")
    page.wait_for_function(
        "() => document.querySelector('#verdict').innerText.includes('Verdict:')",
        timeout=180_000,
    )
    verdict = page.inner_text("#verdict")
    assert re.search(r"Verdict: [SB]{2}\b", verdict), verdict
    assert "True composition" not in verdict  # a recording is not a bundled example


# --- the long-recording tab ---------------------------------------------------------------------


def _open_long_tab(page) -> None:
    page.get_by_role("tab", name="Long recording").click()
    page.wait_for_selector("#long-run", state="visible")


@pytest.mark.slow
def test_long_recording_tab_shows_speakers_timeline_and_downloads(page, tmp_path):
    from conversation_fixtures import make_call

    manifest, record = make_call(tmp_path, seconds=20.0)
    _open_long_tab(page)
    page.locator("#long-recording input[type=file]").set_input_files(
        str(manifest.parent / record.path)
    )
    page.wait_for_selector("#long-recording [data-testid='waveform-controls']", state="attached")
    page.click("#long-run")
    page.wait_for_function(
        "() => /speakers look spoofed|No spoofed speaker/"
        ".test(document.querySelector('#long-summary').innerText)",
        timeout=300_000,
    )
    summary = page.inner_text("#long-summary")
    assert f"Recording {record.conversation_id}: " in summary, summary
    cells = page.locator("#long-table [role=gridcell]")
    page.wait_for_function(
        "() => document.querySelectorAll('#long-table [role=gridcell]').length >= 7"
    )
    texts = [cells.nth(index).inner_text().strip() for index in range(cells.count())]
    rows = [texts[start : start + 7] for start in range(0, len(texts), 7)]
    assert all(re.fullmatch(r"SPEAKER_\d\d", row[0]) for row in rows), rows
    assert all(row[2] in ("bonafide", "spoof") for row in rows), rows
    threshold = float(re.search(r"threshold ([0-9.]+)", summary).group(1))
    for row in rows:  # the verdict is the score judged at the page's threshold
        assert (row[2] == "spoof") == (float(row[3]) >= threshold - 5e-4), (row, threshold)
    n_spoofed = sum(row[2] == "spoof" for row in rows)
    if n_spoofed:
        assert f"{n_spoofed} of {len(rows)} speakers look spoofed" in summary
    page.wait_for_selector("#long-timeline img", state="visible")
    downloads = page.inner_text("#long-files").replace("\n", "")  # name and extension split
    assert f"{record.conversation_id}.json" in downloads
    assert f"{record.conversation_id}.rttm" in downloads


@pytest.mark.slow
def test_long_recording_tab_needs_a_recording(page):
    _open_long_tab(page)
    page.click("#long-run")
    _error_text(page, "Upload a recording first.")
    assert "No recording analysed yet." in page.inner_text("#long-summary")


@pytest.mark.slow
def test_long_recording_tab_refuses_names_without_clips(page, tmp_path):
    _open_long_tab(page)
    clip = _write_tone(tmp_path / "call.wav", 3.0)
    page.locator("#long-recording input[type=file]").set_input_files(str(clip))
    page.wait_for_selector("#long-recording [data-testid='waveform-controls']", state="attached")
    page.locator("#long-names textarea").fill("alice, bob")
    page.locator("#long-names textarea").press("Tab")  # blur: the value reaches the server
    page.click("#long-run")
    text = _error_text(page, "no clip uploaded")
    assert "enrollment: 2 name(s) given but no clip uploaded" in text
    assert "No recording analysed yet." in page.inner_text("#long-summary")
