"""The web page in a real headless Chromium (Debian's), driven by Playwright: upload a clip,
wait for the streamed transcript, download the SRT, and see a clear error for a bad file."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pysubs2
import pytest

from conftest import ROOT, SENTENCES, wer
from server_util import Server, running_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server("--model", "tiny.en") as srv:
        yield srv


@pytest.fixture
def page(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
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
            ],
        )
        context = browser.new_context(
            viewport={"width": 390, "height": 844},  # a phone
            accept_downloads=True,
        )
        pg = context.new_page()
        yield pg
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        context.close()
        browser.close()


def test_upload_stream_play_and_download(
    server: Server, page, window_wav: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    page.goto(server.url + "/")
    page.wait_for_selector("#model option[value='tiny.en']", state="attached")  # /v1/models
    assert page.get_by_label("Model").input_value() in ("tiny.en", "base")
    page.get_by_label("Model").select_option("tiny.en")
    page.set_input_files("#file", str(window_wav))
    page.get_by_role("button", name="Transcribe").click()
    page.wait_for_selector("#segments li", timeout=60_000)
    page.wait_for_function(
        "document.getElementById('status').textContent.startsWith('Done')", timeout=60_000
    )
    text = page.inner_text("#segments")
    assert wer(SENTENCES["window"], text) <= 0.25, text
    assert page.locator("#player").get_attribute("src")
    page.get_by_label("Download as").select_option("srt")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download").click()
    target = tmp_path / "out.srt"
    info.value.save_as(target)
    assert info.value.suggested_filename == "window.srt"
    subs = pysubs2.load(str(target))
    assert len(subs) >= 1 and wer(SENTENCES["window"], " ".join(e.plaintext for e in subs)) <= 0.25
    # Keyboard: the segment list is reachable and a segment seeks the player.
    page.locator("#segments li").first.focus()
    page.keyboard.press("Enter")


def test_bad_file_shows_a_clear_error(server: Server, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bogus = tmp_path / "notes.wav"
    bogus.write_text("this is not audio\n" * 50)
    page.goto(server.url + "/")
    page.set_input_files("#file", str(bogus))
    page.get_by_role("button", name="Transcribe").click()
    alert = page.get_by_role("alert")
    alert.wait_for(state="visible", timeout=30_000)
    assert "not a decodable audio file" in alert.inner_text()
    # Submitting without a file is refused on the page itself.
    page.goto(server.url + "/")
    page.get_by_role("button", name="Transcribe").click()
    assert "Choose an audio or video file" in page.get_by_role("alert").inner_text()
