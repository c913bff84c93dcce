"""The web page in a real browser: Playwright for Python driving Debian's chromium against a real
``cnnkit serve`` on 127.0.0.1. Sign in, create a gallery, enroll a photo, identify another (the name
and an "unknown" drawn on it), delete the person, see them gone.

Screenshots go to ``$CNNKIT_SERVE_SCREENSHOTS`` (``docs/serve/`` holds the committed ones), else to
the test's temporary directory."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.slow


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (cnnkit[test])")
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def test_sign_in_enroll_identify_delete(tmp_path: Path, browser, start_server, add_key, img) -> None:
    from PIL import Image
    from playwright.sync_api import expect

    from cnnkit.data.image_io import load_image

    shots = Path(os.environ.get("CNNKIT_SERVE_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    enroll_photo, crowd = tmp_path / "ann.png", tmp_path / "crowd.png"
    big = lambda a: np.asarray(Image.fromarray(a).resize((a.shape[1] * 2, a.shape[0] * 2), Image.BICUBIC))  # noqa: E731
    Image.fromarray(big(load_image(img.orl("s1/1")))).save(enroll_photo)
    pair = np.concatenate([load_image(img.orl("s1/2")), load_image(img.orl("s39/1"))], axis=1)
    Image.fromarray(big(pair)).save(crowd)  # ann beside someone never enrolled

    db = str(tmp_path / "galleries")
    key = add_key(db, "admin")
    server = start_server(db)
    server.wait_ready()
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.set_default_timeout(60_000)
    expect.set_options(timeout=60_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: d.accept())

    page.goto(server.url + "/")
    page.screenshot(path=str(shots / "1-sign-in.png"))
    page.fill("#key", "cnk_wrong_key")
    page.click("#signin")
    page.wait_for_selector("#status .msg.error")
    assert "unauthorized" in page.inner_text("#status")
    page.fill("#key", key)
    page.click("#signin")
    page.wait_for_selector("#main", state="visible")

    page.fill("#new-gallery", "demo")
    page.click("#create")
    expect(page.locator("#gallery")).to_have_value("demo")
    expect(page.locator("#decision")).to_contain_text("Same person when distance")

    page.fill("#enroll-name", "ann")
    page.set_input_files("#enroll-file", str(enroll_photo))
    page.click("#enroll-btn")
    page.wait_for_selector('#people li[data-name="ann"] img')  # the thumbnail, fetched with the key
    assert page.inner_text('#people li[data-name="ann"] .name') == "ann"
    from cnnkit.faces.encoders import DEFAULT_ENCODER, load_face_encoder

    # two people: the server's default encoder's own threshold (`cnnkit serve` without --encoder)
    assert f"{load_face_encoder(DEFAULT_ENCODER).default_threshold:.3f}" in page.inner_text("#decision")
    page.screenshot(path=str(shots / "2-enrolled.png"), full_page=True)

    page.set_input_files("#identify-file", str(crowd))
    page.click("#identify-btn")
    page.wait_for_selector("#stage .box .label")
    labels = sorted(page.locator("#stage .box .label").all_inner_texts())
    assert labels == ["ann", "unknown"]
    assert page.locator("#stage .box.unknown").count() == 1
    ann_box = page.locator("#stage .box:not(.unknown)").bounding_box()
    photo = page.locator("#photo").bounding_box()
    assert ann_box["x"] < photo["x"] + photo["width"] / 2  # drawn on the left face, where ann is
    page.locator("#identify-panel").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "3-identified.png"), full_page=True)

    page.click('#people li[data-name="ann"] button')
    page.wait_for_selector('#people li[data-name="ann"]', state="detached")
    page.set_input_files("#identify-file", str(crowd))
    page.click("#identify-btn")
    expect(page.locator("#stage .box .label")).to_have_text(["unknown", "unknown"])
    assert page.locator("#people li").count() == 0
    page.screenshot(path=str(shots / "4-deleted.png"), full_page=True)

    page.goto(server.url + "/docs")
    page.wait_for_selector("#ops section h2")
    assert "POST /v1/galleries/{gallery}/identify" in page.inner_text("#ops")
    page.screenshot(path=str(shots / "5-docs.png"))
    assert not errors, errors


def test_unknown_faces_page_names_a_cluster_with_one_click(tmp_path: Path, browser, start_server, add_key,
                                                            img) -> None:
    """`cnnkit serve --capture-unknown`: strangers identified through the API are listed on the
    "Unknown faces" page as rows of chips, largest first; one click names a row, which disappears
    while the person appears among the people, enrolled with every face of the row."""
    import httpx
    from playwright.sync_api import expect

    shots = Path(os.environ.get("CNNKIT_SERVE_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    db = str(tmp_path / "galleries")
    key = add_key(db, "admin")
    server = start_server(db, "--capture-unknown")
    server.wait_ready()
    seen = ["s39/1", "s39/2", "s39/3", "s39/4", "s40/1", "s40/2", "s40/3"]  # never enrolled
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as api:
        assert api.post("/v1/galleries", json={"name": "door", "thumbnails": True}).status_code == 201
        assert api.post("/v1/galleries/door/subjects/ann/faces",
                        files={"image": ("ann.pgm", img.orl("s1/1"))}).status_code == 201
        for rel in seen:
            assert api.post("/v1/galleries/door/identify", files={"image": ("q.pgm", img.orl(rel))}).json()["captured"] == 1
        clusters = api.get("/v1/galleries/door/unknown").json()["clusters"]
        assert clusters[0]["size"] >= clusters[-1]["size"]
        first = clusters[0]
        s39 = {i + 1 for i, rel in enumerate(seen) if rel.startswith("s39")}  # capture ids, in order seen
        assert {f["id"] for f in first["faces"]} <= s39 and first["size"] >= 3

        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "/")
        page.fill("#key", key)
        page.click("#signin")
        page.wait_for_selector("#main", state="visible")
        page.click("#nav-unknown")
        rows = page.locator("#clusters li.cluster")
        expect(rows).to_have_count(len(clusters))
        row = page.locator(f'#clusters li[data-id="{first["id"]}"]')
        assert rows.first.get_attribute("data-id") == first["id"]  # largest first
        expect(row.locator(".chips img[src^='blob:']")).to_have_count(first["size"])
        assert page.locator("#enroll-panel").is_hidden() and page.locator("#people-panel").is_visible()
        assert "--capture-unknown" not in page.inner_text("#unknown-note")  # capture is on
        page.screenshot(path=str(shots / "6-unknown-faces.png"), full_page=True)

        row.locator("input").fill("bob")
        row.locator("button").click()
        expect(row).to_have_count(0)
        page.wait_for_selector('#people li[data-name="bob"] img')  # enrolled, with the first chip as thumbnail
        expect(rows).to_have_count(len(clusters) - 1)
        page.screenshot(path=str(shots / "7-unknown-named.png"), full_page=True)
        assert api.get("/v1/galleries/door/subjects/bob").json()["faces"] == first["size"]
        r = api.post("/v1/galleries/door/identify", files={"image": ("q.pgm", img.orl("s39/5"))}).json()
        assert [f["name"] for f in r["faces"]] == ["bob"]
    assert not errors, errors
