"""The page in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("Chromium is not installed at /usr/bin/chromium", allow_module_level=True)

from playwright import sync_api  # noqa: E402

from media import astronaut_face_hidden  # noqa: E402
from webserver import Server, jpeg_bytes  # noqa: E402

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def write_y4m(path: Path, bgr: np.ndarray, frames: int = 10) -> Path:
    """A fake camera feed for Chromium: the astronaut photo as raw 4:2:0 video."""
    h, w = bgr.shape[:2]
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes()
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F15:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + yuv)
    return path


def watch_errors(page) -> list[str]:
    """The page's script errors and Content-Security-Policy violations, as they happen."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: "Content Security Policy" in m.text and errors.append(m.text))
    return errors


@pytest.fixture(scope="module")
def browser(tmp_path_factory, astronaut):
    camera = write_y4m(tmp_path_factory.mktemp("cam") / "astronaut.y4m", astronaut)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=ARGS
            + [
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={camera}",
            ],
        )
        yield browser
        browser.close()


def test_upload_review_and_download(server, browser, astronaut, tmp_path):
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(astronaut[:, :, ::-1]).save(photo, quality=92)
    page = browser.new_page(accept_downloads=True, viewport={"width": 1100, "height": 1000})
    errors = watch_errors(page)
    page.goto(server.address)
    page.set_input_files("#file-input", str(photo))
    assert page.locator("#pending-list li").inner_text().startswith("astronaut.jpg")
    page.select_option("#method", "pixelate")
    page.click("#start")
    card = page.locator(".job[data-status=done]")
    card.wait_for(timeout=120_000)
    assert "1 face hidden" in card.locator(".detail").inner_text()
    # The before/after slider: both pictures loaded, the original clipped at the slider.
    page.wait_for_function(
        "() => [...document.querySelectorAll('.compare img')]"
        ".every(i => i.complete && i.naturalWidth)"
    )
    assert page.locator(".compare img").count() == 2
    page.locator(".compare input[type=range]").fill("80")
    assert "80%" in page.locator(".compare .divider").get_attribute("style")
    with page.expect_download() as info:
        card.locator(".download").click()
    download = info.value
    assert download.suggested_filename == "astronaut_anonymized.jpg"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    result = cv2.imread(str(saved))
    assert result.shape == astronaut.shape
    assert astronaut_face_hidden(astronaut, result, background=6), (
        "the downloaded face is not anonymized"
    )
    page.locator(".compare input[type=range]").fill("50")
    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("VEIL_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["VEIL_SCREENSHOT_DIR"]) / "web_files.png")
    assert errors == []
    page.close()


def test_voice_choice_and_audit_record_on_the_page(server, browser, astronaut, tmp_path):
    photo = tmp_path / "desk.jpg"
    Image.fromarray(astronaut[:, :, ::-1]).save(photo, quality=92)
    page = browser.new_page(accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.address)
    # The controls are built from /api/options after the page loads.
    page.locator("#voice option").first.wait_for(state="attached")
    voices = page.eval_on_selector_all("#voice option", "options => options.map(o => o.value)")
    assert voices == ["keep", "mute", "pitch", "bleep"]
    assert page.locator("#voice").input_value() == "keep"
    assert not page.locator("#audit").is_checked()
    assert page.locator("#voice-segments").get_attribute("placeholder") == "0-12.5,30-41"
    page.set_input_files("#file-input", str(photo))
    page.check("#audit")
    page.click("#start")
    card = page.locator(".job[data-status=done]", has_text="desk.jpg")
    card.wait_for(timeout=120_000)
    with page.expect_download() as info:
        card.locator(".audit").click()
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)
    assert saved.name == "desk_anonymized.jpg.veil.json"
    record = json.loads(saved.read_text())
    assert record["input"]["sha256"] == hashlib.sha256(photo.read_bytes()).hexdigest()
    assert errors == []
    page.close()


def test_no_job_starts_before_the_settings_are_on_the_page(server, browser, astronaut, tmp_path):
    photo = tmp_path / "desk.jpg"
    Image.fromarray(astronaut[:, :, ::-1]).save(photo, quality=92)
    page = browser.new_page()
    # The server's option schema cannot be read: the page must say so and offer no way to start
    # a job with settings the user never saw.
    page.route("**/api/options", lambda route: route.fulfill(status=503, body="busy"))
    page.goto(server.address)
    message = page.locator("#settings .error")
    message.wait_for()
    assert "could not be loaded" in message.inner_text()
    page.set_input_files("#file-input", str(photo))
    assert page.locator("#pending-list li").inner_text().startswith("desk.jpg")
    assert page.locator("#start").is_disabled()
    page.click("#tab-live")
    assert page.locator("#live-start").is_disabled()
    page.close()


def test_live_camera_shows_only_anonymized_frames(server, browser, astronaut, tmp_path):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors = watch_errors(page)
    page.goto(server.address)
    page.click("#tab-live")
    page.click("#live-start")
    page.wait_for_function(
        "() => /frames\\/s/.test(document.querySelector('#live-status').textContent)",
        timeout=120_000,
    )
    # The camera's raw picture is never in the page: no visible <video>, only the canvas of
    # returned frames.
    assert page.locator("video").count() == 0
    data_url = page.evaluate("() => document.querySelector('#live-canvas').toDataURL('image/png')")
    shown = cv2.imdecode(
        np.frombuffer(base64.b64decode(data_url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR
    )
    assert shown.shape == astronaut.shape
    assert astronaut_face_hidden(astronaut, shown, background=6), "the live picture shows the face"
    shot = tmp_path / "live.png"
    page.screenshot(path=str(shot))
    if os.environ.get("VEIL_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["VEIL_SCREENSHOT_DIR"]) / "web_live.png")
    page.click("#live-stop")
    assert errors == []
    page.close()


def test_several_files_at_once_with_video_player_and_zip(
    server, browser, astronaut, face_video, tmp_path
):
    photo = tmp_path / "second.png"
    Image.fromarray(astronaut[:, :, ::-1]).save(photo)
    page = browser.new_page(accept_downloads=True, viewport={"width": 1100, "height": 1400})
    page.goto(server.address)
    page.set_input_files("#file-input", [str(photo), str(face_video)])
    assert page.locator("#pending-list li").count() == 2
    page.click("#start")
    page.locator(".job[data-status=done] video").wait_for(timeout=120_000)
    page.wait_for_function(
        "() => document.querySelectorAll('.job[data-status=done]').length >= 2", timeout=120_000
    )
    duration = page.evaluate("""() => new Promise((ok) => {
        const v = document.querySelector('.job[data-status=done] video');
        if (v.readyState >= 1) ok(v.duration);
        else v.addEventListener('loadedmetadata', () => ok(v.duration));
    })""")
    assert 1.5 < duration < 2.5  # the 2 s clip plays in the browser
    assert "over 30 frames" in page.locator(".job:has(video) .detail").inner_text()
    zip_link = page.locator("#download-all")
    assert zip_link.is_visible()
    with page.expect_download() as info:
        zip_link.click()
    import zipfile

    saved = tmp_path / "all.zip"
    info.value.save_as(saved)
    names = zipfile.ZipFile(saved).namelist()
    assert {"second_anonymized.png", "clip_anonymized.mp4"} <= set(names)
    shot = tmp_path / "several.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("VEIL_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["VEIL_SCREENSHOT_DIR"]) / "web_several.png")
    page.close()


def test_progress_and_cancel_from_the_page(server, browser, astronaut, tmp_path):
    from media import panning_frames, write_video

    clip = write_video(tmp_path / "long.mp4", panning_frames(astronaut, 240, step=1), fps=25)
    page = browser.new_page(viewport={"width": 1100, "height": 700})
    page.goto(server.address)
    page.set_input_files("#file-input", str(clip))
    page.click("#start")
    card = page.locator(".job[data-status=running]")
    card.wait_for(timeout=120_000)
    page.wait_for_function(
        "() => { const p = document.querySelector('.job[data-status=running] progress');"
        " return p && p.max === 240 && p.value > 0; }",
        timeout=120_000,
    )
    assert "of 240" in card.locator(".detail").inner_text()
    shot = tmp_path / "progress.png"
    page.screenshot(path=str(shot))
    if os.environ.get("VEIL_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["VEIL_SCREENSHOT_DIR"]) / "web_progress.png")
    card.locator(".cancel").click()
    cancelled = page.locator(".job[data-status=cancelled]")
    cancelled.wait_for(timeout=60_000)
    assert "cancelled" in cancelled.locator(".detail").inner_text()
    assert cancelled.locator(".download").is_hidden()
    page.close()


def test_page_works_with_a_token(browser, astronaut, tmp_path):
    """Opening the printed address once is enough: the page, its events and its socket carry
    the cookie."""
    srv = Server(tmp_path / "data", "--token", "page-token-0123456789")
    try:
        photo = tmp_path / "t.jpg"
        Image.fromarray(astronaut[:, :, ::-1]).save(photo)
        page = browser.new_page()
        page.goto(srv.base + "/")
        assert "valid token" in page.content()
        page.goto(srv.address)
        page.set_input_files("#file-input", str(photo))
        page.click("#start")
        page.locator(".job[data-status=done]").wait_for(timeout=120_000)
        page.click("#tab-live")
        page.click("#live-start")
        page.wait_for_function(
            "() => /frames\\/s/.test(document.querySelector('#live-status').textContent)",
            timeout=120_000,
        )
        page.close()
    finally:
        srv.stop()


def test_cancelling_a_card_that_is_uploading_stops_the_upload(server, browser, astronaut, tmp_path):
    big = tmp_path / "big.jpg"
    big.write_bytes(jpeg_bytes(astronaut) + b"\x00" * 30_000_000)
    jobs = server.data_dir / "jobs"
    before = set(jobs.iterdir())
    page = browser.new_page()
    errors = watch_errors(page)
    page.goto(server.address)
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    network.send(  # about 1 MB/s, so the upload lasts long enough to be cancelled
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 1e6},
    )
    page.set_input_files("#file-input", str(big))
    page.click("#start")
    card = page.locator(".job[data-status=uploading]")
    card.wait_for(timeout=60_000)
    deadline = time.monotonic() + 60
    while not server.partial_uploads() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.partial_uploads() == 1  # the server is receiving it
    card.locator(".cancel").click()
    cancelled = page.locator(".job[data-status=cancelled]")
    cancelled.wait_for(timeout=30_000)
    assert "cancelled while uploading" in cancelled.locator(".detail").inner_text()
    deadline = time.monotonic() + 30
    while set(jobs.iterdir()) != before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(jobs.iterdir()) == before  # no job, and the partial file is gone
    assert errors == []
    page.close()


def test_review_page_of_an_unknown_job_says_so_and_keys_do_nothing(server, browser):
    page = browser.new_page()
    errors = watch_errors(page)
    page.goto(server.address.rstrip("/") + "/static/review.html?job=no-such-job")
    message = page.locator("#message.error")
    message.wait_for()
    assert message.inner_text()
    page.keyboard.press("ArrowRight")  # stepping frames before (or without) any frames
    page.keyboard.press("ArrowLeft")
    page.wait_for_timeout(200)
    assert errors == []
    page.close()


def test_review_add_a_missed_face_on_one_frame_and_rerender(browser, face_video, tmp_path):
    """A threshold that misses the astronaut; one box drawn on one frame in the review page is
    followed through the video, and the re-rendered version covers her face in every frame."""
    from media import ASTRONAUT_FACE, read_video

    srv = Server(tmp_path / "data", "--threshold", "0.99")
    try:
        page = browser.new_page(viewport={"width": 1100, "height": 1300})
        errors = watch_errors(page)
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(srv.address)
        page.set_input_files("#file-input", str(face_video))
        page.click("#start")
        card = page.locator(".job[data-status=done]")
        card.wait_for(timeout=120_000)
        assert "0 faces hidden" in card.locator(".detail").inner_text()
        card.locator(".review-link").click()
        page.wait_for_function("() => document.querySelector('#frame').naturalWidth > 0")
        assert not page.locator("#show-original").is_checked()
        page.locator("#scrubber").fill("10")
        assert page.locator("#frame-label").inner_text() == "frame 11 of 30"
        # Draw the box over her face on frame 10 (she has moved 30 px right by then).
        stage = page.locator("#stage").bounding_box()
        scale = stage["width"] / 512
        x1, y1, x2, y2 = ASTRONAUT_FACE
        page.click("#add-mode")
        page.mouse.move(stage["x"] + (x1 + 30) * scale, stage["y"] + y1 * scale)
        page.mouse.down()
        page.mouse.move(stage["x"] + (x2 + 30) * scale, stage["y"] + y2 * scale, steps=5)
        page.mouse.up()
        page.wait_for_function(
            "() => /Box added to track 0, frames 1 to 30/.test("
            "document.querySelector('#message').textContent)",
            timeout=60_000,
        )
        assert page.locator("#boxes .box").count() == 1
        assert page.locator("#timeline .mark.start").count() == 1
        page.click("#rerender")
        page.locator("#render-status[data-state=done]").wait_for(timeout=120_000)
        page.wait_for_function("() => document.querySelectorAll('#versions li').length === 2")
        shot = tmp_path / "review.png"
        page.screenshot(path=str(shot), full_page=True)
        if os.environ.get("VEIL_SCREENSHOT_DIR"):
            shutil.copy(shot, Path(os.environ["VEIL_SCREENSHOT_DIR"]) / "web_review.png")
        href = page.locator("#versions li a").last.get_attribute("href")
        status, _, data = srv.request("GET", href)
        assert status == 200
        (tmp_path / "v2.mp4").write_bytes(data)
        originals, _ = read_video(face_video)
        rendered, _ = read_video(tmp_path / "v2.mp4")
        assert len(rendered) == len(originals)
        for i, (original, result) in enumerate(zip(originals, rendered)):
            assert astronaut_face_hidden(original, result, shift=3 * i, background=8), f"frame {i}"
        assert errors == []
        page.close()
    finally:
        srv.stop()
