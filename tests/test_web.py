"""The web page in a real headless Chromium (Debian's), driven by Playwright against a real
``malsori serve`` process, with real speech (espeak-ng, and Korean clips from evaldata).

Each test drives the page as a user would (clicks, keys, the file chooser) and checks what a
user sees: the status line, the progress bar and timing line, the alert, the transcript lines,
the clipboard and the downloaded files. A failing test leaves a screenshot in tests/artifacts/;
the Korean test always leaves one (tests/artifacts/web-korean.png)."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pysubs2
import pytest
from playwright.sync_api import Page

from conftest import EVALDATA, ROOT, SENTENCES, espeak, wer
from server_util import Server, running_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
API_KEY = "web-test-key-7f3a"
HANGUL = re.compile(r"[\uac00-\ud7a3]")
KO_CLIP = "ko/emotiontts_pfa00010.wav"  # 7.8 s, one long sentence
KO_TRANSLATE_CLIP = "ko/emotiontts_pfa00015.wav"  # "... 부족한 돈은 제가 채워 넣어야 해서 ..."


# --- servers and audio --------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server("--model", "tiny.en") as srv:
        yield srv


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[Server]:
    """MALSORI_API_KEY set, 4 MB uploads, one job at a time and no queue (busy -> 429)."""
    with running_server(
        "--model",
        "tiny.en",
        "--max-upload-mb",
        "4",
        "--max-concurrent",
        "1",
        "--max-queue",
        "0",
        env={"MALSORI_API_KEY": API_KEY},
    ) as srv:
        yield srv


def _silence(path: Path, seconds: float) -> Path:
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-t", str(seconds), "-i",
         "anullsrc=r=16000:cl=mono", str(path)],
        check=True,
    )  # fmt: skip
    return path


def _concat(parts: list[Path], out: Path, *codec: str) -> Path:
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
         "-ar", "16000", "-ac", "1", *codec, str(out)],
        check=True,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """three.wav: the three sentences, 1 s apart, then 3 s of silence (so the last segment ends
    before the audio does); long.ogg: that, 40 times (about 11 minutes, several decoding
    batches); hour.flac: 62 minutes of silence, then a sentence (stamps need the hour)."""
    d = tmp_path_factory.mktemp("web-audio")
    gap, tail = _silence(d / "gap.wav", 1.0), _silence(d / "tail.wav", 3.0)
    spoken = [espeak(text, d / f"{name}.wav") for name, text in SENTENCES.items()]
    three = _concat([spoken[0], gap, spoken[1], gap, spoken[2], tail], d / "three.wav")
    long = _concat([three] * 40, d / "long.ogg", "-c:a", "libopus", "-b:a", "24k")
    lead = _silence(d / "lead.wav", 3720.0)
    hour = _concat([lead, spoken[0], tail], d / "hour.flac", "-c:a", "flac")
    lead.unlink()
    return {"three": three, "long": long, "hour": hour, "window": spoken[0]}


def evaldata(rel: str) -> tuple[Path, str]:
    with open(EVALDATA / "manifest.tsv", encoding="utf-8") as fh:
        rows = {r["path"]: r for r in csv.DictReader(fh, delimiter="\t")}
    return EVALDATA / rel, rows[rel]["reference"]


def cer(reference: str, hypothesis: str) -> float:
    import jiwer

    def chars(s: str) -> str:
        return " ".join(re.sub(r"[^\w]", "", s))

    return float(jiwer.wer(chars(reference), chars(hypothesis)))


def metric(srv: Server, name: str) -> float:
    text = httpx.get(
        srv.url + "/metrics", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
    ).text
    match = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


# --- the browser ------------------------------------------------------------------------


@pytest.fixture
def page(request: pytest.FixtureRequest) -> Iterator[Page]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: run scripts/setup.sh dev")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        context = browser.new_context(
            viewport={"width": 390, "height": 844},  # a phone
            accept_downloads=True,
            # the tests' own wait_for_function predicates are evaluated strings, which the
            # page's CSP forbids; test_the_page_works_under_its_own_csp runs without this
            bypass_csp=True,
        )
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        fetched: list[str] = []
        pg.on("request", lambda req: fetched.append(req.url))
        yield pg
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        context.close()
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"
        # Offline: the page fetches nothing but its own server (and its own blob: URLs).
        foreign = [u for u in fetched if not re.match(r"(http://127\.0\.0\.1:\d+/|blob:|data:)", u)]
        assert not foreign, f"the page fetched from elsewhere: {foreign}"


def open_page(page: Page, srv: Server, model: str = "tiny.en") -> None:
    page.goto(srv.url + "/")
    page.wait_for_selector(f"#model option[value='{model}']", state="attached")  # /v1/models
    page.get_by_label("Model").select_option(model)


def wait_finished(page: Page, timeout: float = 240_000) -> str:
    page.wait_for_function(
        "/^(Done|Failed|Cancelled)/.test(document.getElementById('status').textContent)",
        timeout=timeout,
    )
    return str(page.inner_text("#status"))


def assert_done(page: Page, timeout: float = 240_000) -> str:
    status = wait_finished(page, timeout)
    error = page.locator("#error")
    assert status.startswith("Done"), (status, error.inner_text() if error.is_visible() else "")
    return status


RECORD = """() => {
  const seen = window.__seen = { status: [], timing: [], progress: [] };
  const texts = (key) => (ms) => {
    for (const m of ms) for (const n of m.addedNodes) seen[key].push(n.textContent);
  };
  const watch = (id, observer, options) => observer.observe(document.getElementById(id), options);
  watch('status', new MutationObserver(texts('status')), { childList: true });
  watch('timing', new MutationObserver(texts('timing')), { childList: true });
  const old = (ms) => { for (const m of ms) seen.progress.push(m.oldValue); };
  watch('progress', new MutationObserver(old), { attributes: true, attributeOldValue: true,
    attributeFilter: ['value'] });
}"""


def transcript_text(page: Page) -> str:
    return " ".join(page.locator("#segments .text").all_inner_texts())


# --- tests --------------------------------------------------------------------------------


def test_downloaded_subtitles_are_cut_over_the_whole_transcript(
    server: Server, page: Page, tmp_path: Path
) -> None:
    """141 s of real speech, several decoder batches: the page's srt download is the CLI's
    cue cut over the whole transcript (the done event's cues), so it keeps every subtitle
    rule (the linter finds nothing) and says what the server's own srt says."""
    from malsori.subtitles.lint import lint_file, lint_text

    path, _ = evaldata("long/ljspeech_LJ001-0001_to_0020_concat.wav")
    open_page(page, server)
    page.set_input_files("#file", str(path))
    page.get_by_role("button", name="Transcribe").click()
    assert_done(page)
    page.get_by_label("Download as").select_option("srt")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download").click()
    info.value.save_as(tmp_path / "page.srt")
    assert lint_file(tmp_path / "page.srt", language="en") == []
    shown = page.locator("#segments .text").all_inner_texts()
    subs = pysubs2.load(str(tmp_path / "page.srt"))
    assert len(subs) == len(shown) >= 20  # a listed line per cue
    with open(path, "rb") as fh:
        served = httpx.post(
            server.url + "/v1/audio/transcriptions",
            files={"file": (path.name, fh)},
            data={"model": "tiny.en", "response_format": "srt"},
            timeout=300,
        ).text
    assert lint_text(served, "srt", language="en") == []
    page_text = " ".join(e.plaintext.replace("\n", " ") for e in subs)
    served_text = " ".join(
        e.plaintext.replace("\n", " ") for e in pysubs2.SSAFile.from_string(served)
    )
    assert wer(served_text, page_text) <= 0.02, (served_text, page_text)


def test_progress_edit_copy_seek_and_download(
    server: Server, page: Page, audio: dict[str, Path], tmp_path: Path
) -> None:
    open_page(page, server)
    page.set_input_files("#file", str(audio["three"]))
    assert "three.wav" in page.inner_text("#filename")
    page.evaluate(RECORD)
    page.get_by_role("button", name="Transcribe").click()
    status = assert_done(page)
    reference = " ".join(SENTENCES.values())
    assert wer(reference, transcript_text(page)) <= 0.25, transcript_text(page)
    assert re.match(r"Done: \d+ lines?, language en, 00:1\d of audio in \d\d:\d\d", status), status

    # What the user saw on the way: upload %, then the server's progress with elapsed and ETA.
    seen = page.evaluate("window.__seen")
    assert any(s.startswith("Uploading three.wav") for s in seen["status"]), seen
    assert any(re.match(r"Uploading \d+% · [\d.]+ of [\d.]+ MB", t) for t in seen["timing"]), seen
    assert any(s.startswith("Transcribing") for s in seen["status"]), seen
    assert any(
        re.match(r"00:\d\d of 00:1\d \(\d+%\) · Elapsed \d\d:\d\d · about \d\d:\d\d left", t)
        for t in seen["timing"]
    ), seen
    values = [float(v) for v in seen["progress"] if v not in (None, "")]
    assert any(0 < v < 1 for v in values), seen  # determinate, from the segments' end times
    assert page.locator("#progress").is_hidden() and page.locator("#timing").is_hidden()
    assert page.get_by_role("button", name="Cancel").is_hidden()

    lines = page.locator("#segments li")
    assert lines.count() >= 2, page.inner_text("#segments")
    stamps = page.locator("#segments .stamp").all_inner_texts()
    assert all(re.fullmatch(r"00:\d\d", s) for s in stamps), stamps

    # Seek: the second line's time stamp is a button; Enter plays from there (highlighted).
    second = page.locator("#segments .stamp").nth(1)
    start = float(second.get_attribute("data-start") or 0)
    assert start > 1
    second.focus()
    page.keyboard.press("Enter")
    page.wait_for_function(
        "document.querySelectorAll('#segments li')[1].classList.contains('current')"
    )
    assert page.evaluate("document.getElementById('player').currentTime") >= start - 0.05

    # Edit in place: replace the first line's words; Enter moves to the next line, no newline.
    first = page.get_by_role("textbox", name="Line 1 text")
    first.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("Hello from the editor")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Line 2 text"
    assert first.inner_text() == "Hello from the editor"

    # Copy: the clipboard holds the edited transcript.
    page.get_by_role("button", name="Copy text").click()
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Copied')")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("Hello from the editor"), copied
    shown = page.locator("#segments .text").all_inner_texts()
    assert copied == "\n".join(shown) + "\n", (copied, shown)

    # Download: SRT (the suggested name follows the upload) and plain text, both edited.
    page.get_by_label("Download as").select_option("srt")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download").click()
    assert info.value.suggested_filename == "three.srt"
    info.value.save_as(tmp_path / "out.srt")
    subs = pysubs2.load(str(tmp_path / "out.srt"))
    assert len(subs) == lines.count()
    assert subs[0].plaintext == "Hello from the editor"
    assert subs[1].start >= 1000 * start - 50
    page.get_by_label("Download as").select_option("txt")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download").click()
    info.value.save_as(tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == copied
    page.get_by_label("Download as").select_option("json")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download").click()
    info.value.save_as(tmp_path / "out.json")
    body = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert body["language"] == "en" and body["text"].startswith("Hello from the editor")
    head = body["segments"][0]
    assert (head["cues"] or [head])[0]["text"].strip() == "Hello from the editor", head


def test_keyboard_only(server: Server, page: Page, audio: dict[str, Path]) -> None:
    open_page(page, server)
    page.locator("body").focus()
    order = []
    for _ in range(9):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id"))
    expected = ["file", "model", "task", "language", "format", "diarize", "apikey", "go", "record"]
    assert order == expected, order
    # Every control has a visible label (what a screen reader says).
    labels = (
        "Audio or video file", "Model", "Task", "Spoken language", "Download as",
        "Label speakers", "API key",
    )  # fmt: skip
    for name in labels:
        assert page.get_by_label(name).count() == 1, name
    # The file control is the browser's own <input type=file> (Space/Enter open its chooser;
    # Playwright's file-chooser event is not reliable enough to wait on here).
    assert page.locator("#file").evaluate("el => el.tagName + ':' + el.type") == "INPUT:file"
    page.set_input_files("#file", str(audio["long"]))
    page.locator("#file").focus()
    page.keyboard.press("Tab")  # -> Model
    for _ in range(6):  # task, language, format, speakers, API key, Transcribe
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "go"
    page.keyboard.press("Enter")
    page.wait_for_function(
        "document.getElementById('status').textContent.startsWith('Transcribing')"
    )
    page.keyboard.press("Escape")  # cancels from anywhere on the page
    assert page.inner_text("#status").startswith("Cancelled")
    assert page.evaluate("document.activeElement.id") == "go"

    page.set_input_files("#file", str(audio["window"]))  # (the chooser was tested above)
    page.locator("#go").focus()
    page.keyboard.press("Enter")
    assert_done(page)
    assert wer(SENTENCES["window"], transcript_text(page)) <= 0.25
    # The Cancel button that had focus is gone: focus moves to the next thing to do.
    assert page.evaluate("document.activeElement.id") == "copy"
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Copied')")


def test_cancel_stops_the_server_job(server: Server, page: Page, audio: dict[str, Path]) -> None:
    open_page(page, server)
    page.set_input_files("#file", str(audio["long"]))
    page.get_by_role("button", name="Transcribe").click()
    cancel = page.get_by_role("button", name="Cancel")
    assert cancel.is_visible()
    assert page.evaluate("document.activeElement.id") == "cancel"
    page.wait_for_function(
        "document.getElementById('status').textContent.startsWith('Transcribing')"
    )
    # The server has the job (decoding ~11 minutes of audio) when the user cancels.
    deadline = time.monotonic() + 60
    while metric(server, "malsori_jobs_running") < 1:
        assert time.monotonic() < deadline, "the server never started the job"
        time.sleep(0.2)
    cancel.click()
    assert page.inner_text("#status").startswith("Cancelled")
    assert page.locator("#progress").is_hidden()
    assert cancel.is_hidden()
    go = page.get_by_role("button", name="Transcribe")
    assert go.is_enabled()
    assert page.evaluate("document.activeElement.id") == "go"
    assert page.locator("#error").is_hidden()
    if page.locator("#segments li").count() == 0:  # nothing came back: no empty player
        assert page.locator("#result").is_hidden()

    # The server stops decoding: its slot frees, and then its CPU goes quiet.
    deadline = time.monotonic() + 120
    while metric(server, "malsori_jobs_running") > 0:
        assert time.monotonic() < deadline, "the cancelled job still holds its slot"
        time.sleep(0.5)
    before = cpu_seconds(server.process.pid)
    time.sleep(2.0)
    busy = cpu_seconds(server.process.pid) - before
    assert busy < 0.5, f"the server used {busy:.1f} CPU-s in 2 s after the job was cancelled"

    # And the page works again right away.
    page.set_input_files("#file", str(audio["window"]))
    go.click()
    assert_done(page)
    assert wer(SENTENCES["window"], transcript_text(page)) <= 0.25


def test_korean_renders_with_the_full_language_list(server: Server, page: Page) -> None:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    clip, reference = evaldata(KO_CLIP)
    open_page(page, server, model="base")
    offered = page.locator("#language option").evaluate_all("os => os.map(o => o.value)")
    assert offered[0] == "" and sorted(offered[1:]) == sorted(_LANGUAGE_CODES)
    page.get_by_label("Spoken language").select_option(label="Korean (한국어)")
    page.set_input_files("#file", str(clip))
    page.get_by_role("button", name="Transcribe").click()
    status = assert_done(page)
    assert "language ko" in status, status
    text = transcript_text(page)
    assert HANGUL.search(text) and cer(reference, text) <= 0.35, text

    # Hangul is drawn with real glyphs, not boxes: distinct syllables give distinct pixels,
    # and none looks like a character no font has (U+E000, private use).
    distinct = page.evaluate(
        """() => {
      const el = document.querySelector('#segments .text');
      const font = getComputedStyle(el).fontFamily;
      const ink = (ch) => {
        const c = document.createElement('canvas'); c.width = c.height = 48;
        const g = c.getContext('2d'); g.font = `32px ${font}`; g.fillText(ch, 4, 38);
        return Array.from(g.getImageData(0, 0, 48, 48).data).join(',');
      };
      const glyphs = [...new Set([...el.textContent].filter((ch) => /[\\uac00-\\ud7a3]/.test(ch)))]
        .slice(0, 6).map(ink);
      const box = ink('\\ue000');
      return { count: glyphs.length, unique: new Set(glyphs).size,
               boxes: glyphs.filter((g) => g === box).length };
    }"""
    )
    assert distinct["count"] >= 4 and distinct["unique"] == distinct["count"], distinct
    assert distinct["boxes"] == 0, distinct
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-korean.png"), full_page=True)


def test_translate_korean_to_english(server: Server, page: Page) -> None:
    clip, _ = evaldata(KO_TRANSLATE_CLIP)
    open_page(page, server, model="base")
    page.get_by_label("Task").select_option("translate")
    assert page.get_by_label("Spoken language").is_disabled()
    page.set_input_files("#file", str(clip))
    with page.expect_request(lambda r: r.method == "POST" and "/v1/audio/" in r.url) as req:
        page.get_by_role("button", name="Translate").click()
    assert req.value.url.endswith("/v1/audio/translations")
    assert_done(page)
    text = transcript_text(page)
    assert not HANGUL.search(text), text
    # base's English for this clip is poor and varies between runs: every decode fails the
    # log-probability check, so the fallback samples and the best of random samples is kept
    # ("... enough money ...", "In a poor condition, I have to fill in the water ..."). What
    # the page must do is send it to /translations and show English, checked above and here.
    assert len(re.findall(r"[A-Za-z]+", text)) >= 5, text


def test_hour_long_recording_stamps_show_the_hour(
    server: Server, page: Page, audio: dict[str, Path], tmp_path: Path
) -> None:
    open_page(page, server)
    page.set_input_files("#file", str(audio["hour"]))
    page.get_by_role("button", name="Transcribe").click()
    status = assert_done(page)
    assert re.search(r"1:02:0\d of audio", status), status
    stamps = page.locator("#segments .stamp")
    assert stamps.count() >= 1
    first = stamps.first.inner_text()
    assert re.fullmatch(r"1:0[12]:\d\d", first), first  # speech starts at 3720 s = 1:02:00
    assert stamps.first.get_attribute("aria-label") == f"Play from {first}"
    assert wer(SENTENCES["window"], transcript_text(page)) <= 0.25
    page.get_by_label("Download as").select_option("vtt")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download").click()
    info.value.save_as(tmp_path / "out.vtt")
    vtt = (tmp_path / "out.vtt").read_text(encoding="utf-8")
    assert re.search(r"^01:0[12]:\d\d\.\d{3} --> 01:0[12]:\d\d\.\d{3}$", vtt, re.M), vtt


def test_failed_upload_leaves_no_progress_or_player(
    server: Server, page: Page, tmp_path: Path
) -> None:
    bogus = tmp_path / "notes.wav"
    bogus.write_text("this is not audio\n" * 50)
    open_page(page, server)
    page.set_input_files("#file", str(bogus))
    page.get_by_role("button", name="Transcribe").click()
    alert = page.get_by_role("alert")
    alert.wait_for(state="visible", timeout=60_000)
    assert "not a decodable audio file" in alert.inner_text()
    assert page.inner_text("#status") == "Failed."
    assert page.locator("#progress").is_hidden()
    assert page.locator("#timing").is_hidden()
    assert page.locator("#result").is_hidden()
    assert page.locator("#player").get_attribute("src") is None
    assert page.get_by_role("button", name="Transcribe").is_enabled()
    # Submitting without a file is refused on the page itself.
    page.goto(server.url + "/")
    page.get_by_role("button", name="Transcribe").click()
    assert "Choose an audio or video file" in page.get_by_role("alert").inner_text()


class _Proxy(BaseHTTPRequestHandler):
    """A reverse proxy that forwards to the server (with the server's own Host header) and
    leaves the browser's Origin as it is: its address is not one the server allows."""

    upstream = ""

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        drop = {"host", "content-length", "connection", "accept-encoding"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in drop}
        res = httpx.request(
            self.command, self.upstream + self.path, headers=headers, content=body, timeout=120
        )
        self.send_response(res.status_code)
        for k, v in res.headers.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(res.content)))
        self.end_headers()
        self.wfile.write(res.content)

    do_GET = do_POST = _forward

    def log_message(self, *args: object) -> None:
        pass


def test_refused_origin_is_explained(server: Server, page: Page, audio: dict[str, Path]) -> None:
    """Reached through a proxy whose address the server does not allow, the browser's Origin
    is the proxy's: the server answers 403, and the page says why."""
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), type("P", (_Proxy,), {"upstream": server.url}))
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        page.goto(f"http://127.0.0.1:{proxy.server_address[1]}/")
        page.wait_for_selector("#model option[value='tiny.en']", state="attached")
        page.get_by_label("Model").select_option("tiny.en")
        page.set_input_files("#file", str(audio["window"]))
        page.get_by_role("button", name="Transcribe").click()
        alert = page.get_by_role("alert")
        alert.wait_for(state="visible", timeout=60_000)
        assert "refused this request (403 Forbidden)" in alert.inner_text(), alert.inner_text()
        assert "is not allowed" in alert.inner_text()  # the server's own reason follows
        assert page.inner_text("#status") == "Failed."
        assert page.locator("#progress").is_hidden() and page.locator("#result").is_hidden()
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_api_key_field_and_clear_refusals(
    keyed_server: Server, page: Page, audio: dict[str, Path], tmp_path: Path
) -> None:
    page.goto(keyed_server.url + "/")
    alert = page.get_by_role("alert")
    alert.wait_for(state="visible")
    assert "needs an API key" in alert.inner_text()
    key = page.get_by_label("API key")
    assert key.get_attribute("aria-invalid") == "true"
    assert key.get_attribute("type") == "password"

    key.fill("wrong-key")
    key.press("Tab")  # change -> the models are asked for again, with the key
    page.wait_for_function(
        "document.getElementById('error').textContent.includes('did not accept the API key')"
    )
    key.fill(API_KEY)
    key.press("Tab")
    page.wait_for_selector("#model option[value='tiny.en']", state="attached")
    assert alert.is_hidden()
    assert key.get_attribute("aria-invalid") is None

    # Every API call carries the key: the upload too.
    page.get_by_label("Model").select_option("tiny.en")
    page.set_input_files("#file", str(audio["window"]))
    with page.expect_request(lambda r: r.method == "POST") as req:
        page.get_by_role("button", name="Transcribe").click()
    assert req.value.headers.get("authorization") == f"Bearer {API_KEY}"
    assert_done(page)

    # The key stays for this tab (sessionStorage), not in the page's address or cookies.
    page.reload()
    page.wait_for_selector("#model option[value='tiny.en']", state="attached")
    assert page.get_by_label("API key").input_value() == API_KEY
    assert page.evaluate("sessionStorage.getItem('malsori.apiKey')") == API_KEY
    assert API_KEY not in page.url and not page.context.cookies()

    # Too large (this server takes 4 MB): said so, and no stale progress.
    big = _silence(tmp_path / "big.wav", 150.0)  # 4.8 MB
    page.set_input_files("#file", str(big))
    page.get_by_role("button", name="Transcribe").click()
    alert.wait_for(state="visible", timeout=60_000)
    assert "too large for this server (413)" in alert.inner_text(), alert.inner_text()
    assert page.locator("#progress").is_hidden() and page.locator("#result").is_hidden()


def test_busy_server_says_so(keyed_server: Server, page: Page, audio: dict[str, Path]) -> None:
    """One job at a time and no queue: while another client's job runs, the page gets 429
    and tells the user to try again."""
    page.goto(keyed_server.url + "/")
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_label("API key").press("Tab")
    page.wait_for_selector("#model option[value='tiny.en']", state="attached")
    page.get_by_label("Model").select_option("tiny.en")
    page.set_input_files("#file", str(audio["window"]))

    # Another client's streamed job holds the only slot: the response headers come back once
    # the server has started it; leaving the block hangs up (and the server drops the job).
    with (
        httpx.Client(timeout=300) as client,
        client.stream(
            "POST",
            keyed_server.url + "/v1/audio/transcriptions",
            headers={"Authorization": f"Bearer {API_KEY}"},
            files={"file": ("long.ogg", audio["long"].read_bytes())},
            data={"model": "tiny.en", "stream": "true"},
        ) as other,
    ):
        assert other.status_code == 200
        deadline = time.monotonic() + 60
        while metric(keyed_server, "malsori_jobs_running") < 1:
            assert time.monotonic() < deadline, "the other client's job never started"
            time.sleep(0.2)
        page.get_by_role("button", name="Transcribe").click()
        alert = page.get_by_role("alert")
        alert.wait_for(state="visible", timeout=60_000)
        assert "busy" in alert.inner_text() and "Try again" in alert.inner_text()
        assert page.inner_text("#status") == "Failed."
        assert page.locator("#progress").is_hidden()
        assert page.locator("#result").is_hidden()
    deadline = time.monotonic() + 120  # leave the server idle for the next test
    while metric(keyed_server, "malsori_jobs_running") > 0 and time.monotonic() < deadline:
        time.sleep(0.5)


def test_api_docs_render_offline(server: Server, page: Page) -> None:
    """/docs draws the API from the server's own files: a request that leaves localhost is
    blocked here, as on an offline machine (FastAPI's default page stayed blank)."""
    outside: list[str] = []

    def only_local(route: Any) -> None:
        url = route.request.url
        if url.startswith(server.url):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(server.url + "/docs")
    page.locator(".opblock-summary-path", has_text="/v1/audio/transcriptions").first.wait_for(
        timeout=30_000
    )
    assert page.locator(".opblock").count() >= 4
    assert outside == [], outside


def test_repairs_to_the_audio_are_shown(
    server: Server, page: Page, audio: dict[str, Path], tmp_path: Path
) -> None:
    """A recording whose stereo channels cancel is transcribed through their difference;
    the page says so under the progress (the done event's warnings, as text), and the next,
    clean file clears the note."""
    inverted = tmp_path / "<b>통화<i>.flac"  # a name that is text, never markup
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(EVALDATA / "en" / "jfk.wav"),
         "-filter_complex", "[0:a]pan=stereo|c0=c0|c1=-1*c0", "-ac", "2", str(inverted)],
        check=True,
    )  # fmt: skip
    open_page(page, server)
    page.set_input_files("#file", str(inverted))
    page.get_by_role("button", name="Transcribe").click()
    assert_done(page)
    assert "country" in " ".join(page.locator("#segments .text").all_inner_texts())
    note = page.get_by_role("note")
    assert note.is_visible()
    assert "cancel each other" in note.inner_text() and "<b>통화<i>.flac" in note.inner_text()
    assert page.locator("#notice b, #notice i").count() == 0
    page.set_input_files("#file", str(audio["window"]))
    page.get_by_role("button", name="Transcribe").click()
    assert_done(page)
    assert page.locator("#notice").is_hidden()


def test_the_page_works_under_its_own_csp_and_may_not_be_framed(
    server: Server, page: Page, audio: dict[str, Path]
) -> None:
    """The page had no security headers: any site could frame it (a transcribe button under
    someone else's page: a hostile tester). Its CSP allows its own scripts, styles, worklet
    and socket only; the page still transcribes under it, with no CSP violation, and a
    frame of it stays empty."""
    response = httpx.get(server.url + "/")
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    host = server.url.removeprefix("http://")
    assert f"connect-src 'self' ws://{host} wss://{host};" in csp  # older Safari's 'self'
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"
    browser = page.context.browser
    assert browser is not None
    strict = browser.new_context()  # the CSP enforced (the fixture's context bypasses it)
    try:
        pg = strict.new_page()
        violations: list[str] = []
        pg.on("console", lambda m: violations.append(m.text) if "Security" in m.text else None)
        pg.on("pageerror", lambda exc: violations.append(str(exc)))
        pg.goto(server.url + "/")
        pg.wait_for_selector("#model option[value='tiny.en']", state="attached")
        pg.get_by_label("Model").select_option("tiny.en")
        pg.set_input_files("#file", str(audio["window"]))
        pg.get_by_role("button", name="Transcribe").click()
        pg.get_by_role("status").filter(has_text="Done").wait_for(timeout=240_000)
        assert pg.locator("#segments .text").count() >= 1
        pg.get_by_label("Download as").select_option("srt")
        with pg.expect_download() as info:
            pg.get_by_role("button", name="Download").click()
        assert info.value.suggested_filename.endswith(".srt")
        assert not violations, violations
        pg.set_content(f"<iframe id=f src='{server.url}/'></iframe>")  # framed: refused
        pg.wait_for_timeout(1000)
        assert pg.frame_locator("#f").locator("#go").count() == 0
        assert any("frame-ancestors" in v for v in violations), violations
    finally:
        strict.close()
