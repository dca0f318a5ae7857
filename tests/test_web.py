"""The web page in a real browser: headless Chromium (the system's, driven by Playwright) against
`media-assets serve`'s app on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from test_server import build_small_warehouse

from media_assets.apps.server import create_app
from media_assets.models.text import TextEncoder
from media_assets.store import catalog
from media_assets.store.text_vectors import TextVectorStore, text_row_id

SCREENSHOTS = Path(
    os.environ.get("MEDIA_ASSETS_SCREENSHOTS", Path(__file__).resolve().parent.parent / "warehouse" / "screenshots")
)


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("no Chromium on PATH: install Debian's `chromium` package (.ci/run does)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_clip):
    warehouse = build_small_warehouse(tmp_path_factory.mktemp("web") / "warehouse", tiny_clip)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(warehouse), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield warehouse, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
        )
        yield browser
        browser.close()


def open_page(browser, url: str, height: int = 800):
    """The page in a new tab; the list collects the page's script errors."""
    page = browser.new_page(viewport={"width": 1280, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url + "/")
    return page, errors


def test_search_shows_cards_and_the_preview_plays_from_the_moment(site, browser):
    warehouse, url = site
    page, errors = open_page(browser, url)
    page.wait_for_selector("#health:has-text('files')")
    page.fill("#query", "a cat")
    page.press("#query", "Enter")
    page.wait_for_selector(".card.result")
    cards = page.locator(".card.result")
    assert cards.count() >= 2
    first = cards.first
    assert first.locator(".name").inner_text() in {"clips/a.mp4", "b.mp4", "cat.png"}
    assert 0 <= float(first.locator(".similarity").inner_text()) <= 1
    assert page.inner_text("#status").endswith("for “a cat”")

    # judging a result writes a relevance feedback row
    first.locator(".relevant").click()
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('noted:')")
    assert "judged-relevant" in first.get_attribute("class")
    judged = catalog.query(
        warehouse, "SELECT query, relevant, source, member_kind FROM feedback WHERE kind = 'relevance'"
    ).to_pylist()
    assert judged == [{"query": "a cat", "relevant": True, "source": "api", "member_kind": "frame"}]

    video_card = page.locator(".card.result", has=page.locator(".name", has_text=".mp4")).first
    start_text = video_card.locator(".time").inner_text().split("–")[0]
    minutes, seconds = start_text.split(":")
    start = int(minutes) * 60 + float(seconds)
    assert video_card.locator(".heatmap span").count() == 48  # the video's timeline heatmap
    video_card.click()
    page.wait_for_selector("#preview:not([hidden])")
    page.wait_for_function("document.querySelector('#preview-video').readyState >= 1")
    page.wait_for_function(f"Math.abs(document.querySelector('#preview-video').currentTime - {start}) < 0.6")
    assert page.locator("#preview-timeline span").count() == 48
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "search.png"), full_page=True)
    assert (SCREENSHOTS / "search.png").stat().st_size > 10_000

    # "more like this" on a card gives frame results
    page.locator(".card.result .more").first.click()
    page.wait_for_function("document.querySelector('#status').textContent.includes('frames like frame')")
    assert page.locator(".card.result").count() >= 1
    assert not errors, errors
    page.close()


def test_dropping_an_image_searches_with_it(site, browser, tmp_path):
    warehouse, url = site
    page = browser.new_page()
    page.goto(url + "/")
    data = (warehouse.media_root / "cat.png").read_bytes()
    # a drop of a file, as a person dragging it from their desktop would make
    page.evaluate(
        """async (bytes) => {
            const file = new File([new Uint8Array(bytes)], 'query.png', { type: 'image/png' });
            const transfer = new DataTransfer();
            transfer.items.add(file);
            for (const type of ['dragenter', 'dragover', 'drop']) {
                window.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
            }
        }""",
        list(data),
    )
    page.wait_for_function("document.querySelector('#status').textContent.includes('like query.png')")
    first = page.locator(".card.result").first
    assert first.locator(".name").inner_text() == "cat.png"
    assert float(first.locator(".similarity").inner_text()) > 0.99
    page.close()


def test_dragging_a_noise_shot_onto_a_cluster_writes_a_pin(site, browser):
    warehouse, url = site
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url + "/")
    page.click("#tab-clusters")
    page.wait_for_selector(".card.cluster")
    noise = page.locator(".noise-shot")
    if noise.count() == 0:  # the clustering put every shot somewhere: take one out for the test
        pytest.fail("the small warehouse has no shot in the noise bucket; the test needs one")
    shot_id = int(noise.first.get_attribute("data-shot-id"))
    target = page.locator(".card.cluster").first
    cluster_id = int(target.get_attribute("data-cluster-id"))
    pins_before = catalog.query(warehouse, "SELECT count(*) AS n FROM cluster_pins").to_pylist()[0]["n"]
    noise.first.drag_to(target)
    page.wait_for_function("document.querySelector('#cluster-status').textContent.includes('pinned')")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "clusters.png"), full_page=True)
    pins = catalog.query(warehouse, "SELECT * FROM cluster_pins ORDER BY seq").to_pylist()
    assert len(pins) == pins_before + 1
    assert {k: pins[-1][k] for k in ("member_kind", "member_id", "cluster_id", "source")} == {
        "member_kind": "shot",
        "member_id": shot_id,
        "cluster_id": cluster_id,
        "source": "api",
    }
    assert page.locator(f".noise-shot[data-shot-id='{shot_id}']").count() == 0
    page.close()


def test_opening_a_cluster_and_moving_one_of_its_shots_to_another(site, browser):
    warehouse, url = site
    page, errors = open_page(browser, url, height=1000)
    page.click("#tab-clusters")
    page.wait_for_selector(".card.cluster")
    scenes = page.locator("#clusters .card.cluster")
    assert scenes.count() >= 2, "the small warehouse needs two scene clusters for this test"
    source, target = scenes.nth(0), scenes.nth(1)
    source_id, target_id = int(source.get_attribute("data-cluster-id")), int(target.get_attribute("data-cluster-id"))
    source.click()
    page.wait_for_selector("#cluster-detail:not([hidden]) .cluster-shot")
    members = page.locator("#cluster-members .cluster-shot")
    size = catalog.query(warehouse, "SELECT size FROM clusters WHERE cluster_id = ?", [source_id]).to_pylist()[0][
        "size"
    ]
    assert members.count() == size
    assert 0 <= float(members.first.locator(".similarity").inner_text().lstrip("📌 ")) <= 1
    characters = catalog.query(
        warehouse, "SELECT count(*) AS n FROM clusters WHERE parent_id = ?", [source_id]
    ).to_pylist()[0]["n"]
    assert page.locator("#cluster-characters .card.cluster").count() == characters
    shot_id = int(members.first.get_attribute("data-member-id"))
    members.first.drag_to(target)
    page.wait_for_function("document.querySelector('#cluster-status').textContent.includes('pinned')")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "cluster-detail.png"), full_page=True)
    latest = catalog.query(
        warehouse,
        "SELECT member_kind, member_id, cluster_id, source FROM cluster_pins WHERE member_id = ? "
        "ORDER BY seq DESC LIMIT 1",
        [shot_id],
    ).to_pylist()
    assert latest == [{"member_kind": "shot", "member_id": shot_id, "cluster_id": target_id, "source": "api"}]
    assert page.locator(f"#cluster-members .cluster-shot[data-member-id='{shot_id}']").count() == 0
    assert not errors, errors
    page.close()


def test_the_transcript_panel_follows_playback_and_a_click_on_a_line_seeks(site, browser):
    """A video's stored transcript shows beside the player; clicking a line seeks the video there, and the
    line being played is marked."""
    warehouse, url = site
    media_id = catalog.query(warehouse, "SELECT media_id FROM media WHERE partition_key = 'clips/a.mp4'").to_pylist()
    media_id = media_id[0]["media_id"]
    lines = [(0.2, 1.8, "Here is the astronaut."), (2.1, 3.9, "Now the cat on the sofa."), (4.2, 5.8, "And coffee.")]
    segments = [
        {
            "segment_id": (media_id << 20) | n,
            "media_id": media_id,
            "start_s": start,
            "end_s": end,
            "text": text,
            "language": "en",
            "avg_logprob": -0.2,
            "no_speech_prob": 0.01,
            "source": "asr",
            "model_id": "test",
            "run_id": "test",
        }
        for n, (start, end, text) in enumerate(lines)
    ]
    catalog.replace_partition(warehouse, "transcript_segments", media_id, segments)
    catalog.replace_partition(warehouse, "transcript_words", media_id, [])
    page, errors = open_page(browser, url)
    page.wait_for_selector("#health:has-text('files')")
    page.select_option("#mode", "visual")
    page.fill("#query", "a cat")
    page.press("#query", "Enter")
    page.wait_for_selector(".card.result")
    page.locator(".card.result", has=page.locator(".name", has_text="clips/a.mp4")).first.click()
    page.wait_for_selector("#transcript:not([hidden])")
    items = page.locator("#transcript-lines li")
    assert items.count() == 3 and "Now the cat on the sofa." in items.nth(1).inner_text()
    page.wait_for_function("document.querySelector('#preview-video').readyState >= 1")
    items.nth(1).click()
    page.wait_for_function("Math.abs(document.querySelector('#preview-video').currentTime - 2.1) < 0.3")
    page.wait_for_function("document.querySelectorAll('#transcript-lines li.current').length === 1")
    assert "current" in items.nth(1).get_attribute("class")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "transcript.png"), full_page=True)
    assert not errors, errors
    page.close()


# -- chapters --------------------------------------------------------------------------------------------------

# clips/a.mp4's chapters in the chapter tests: (title, summary), each a third of the video
CHAPTERS = [
    ("Astronaut on stage", "An astronaut walks on and waves."),
    (
        "Safety briefing",
        "The crew goes through the safety briefing: where the exits are, how the oxygen masks drop, what to do "
        "when the alarm sounds, and why everyone checks their harness twice before the launch begins.",
    ),
    ("Coffee & <b>cake</b>", "A <i>coffee</i> break."),  # markup in the data must show as text
]


def media_ids(warehouse) -> dict[str, int]:
    rows = catalog.query(warehouse, "SELECT partition_key, media_id FROM media").to_pylist()
    return {r["partition_key"]: r["media_id"] for r in rows}


def store_chapters(warehouse, media_id: int, chapters: list[dict] | None, summary: dict | None) -> None:
    """Write a file's chapters as the chapters stage does (its `chapters` rows, its `video_summaries` row, and
    the chapters' `summary` text vectors that GET /summaries searches), or with None remove them."""
    vectors = TextVectorStore(warehouse)
    if chapters is None:
        catalog.delete_partition(warehouse, media_id, ["chapters", "video_summaries"])
        vectors.delete_media(media_id, kinds=("summary",))
        return
    catalog.replace_partition(warehouse, "chapters", media_id, chapters)
    catalog.replace_partition(warehouse, "video_summaries", media_id, [summary] if summary else [])
    encoder = TextEncoder.load(vectors.model_ids()[0], "cpu")
    rows = [
        {
            "text_id": text_row_id(media_id, "summary", c["index"]),
            "kind": "summary",
            "item_id": c["chapter_id"],
            "start_s": c["start_s"],
            "end_s": c["end_s"],
            "text": f"{c['title']}. {c['summary']}" if c["title"] else c["summary"],
        }
        for c in chapters
    ]
    vectors.replace_media(
        media_id, rows, encoder.encode([r["text"] for r in rows]), kinds=("summary",), model_id=encoder.model_id
    )


@pytest.fixture
def chaptered(site):
    """clips/a.mp4 cut into the three CHAPTERS (tiling its duration) and b.mp4 without chapters; what the
    ingest made is put back afterwards. Yields (warehouse, url, a's media id, a's chapter rows, b's media id)."""
    warehouse, url = site
    ids = media_ids(warehouse)
    a, b = ids["clips/a.mp4"], ids["b.mp4"]
    before = {}
    for media_id in (a, b):
        rows = catalog.read_partition(warehouse, "chapters", media_id)
        summary = catalog.read_partition(warehouse, "video_summaries", media_id)
        before[media_id] = (
            None if rows is None else rows.to_pylist(),
            summary.to_pylist()[0] if summary is not None and len(summary) else None,
        )
    duration = catalog.query(warehouse, "SELECT duration_s FROM media WHERE media_id = ?", [a]).to_pylist()[0][
        "duration_s"
    ]
    step = duration / len(CHAPTERS)
    rows = [
        {
            "chapter_id": (a << 20) | index,
            "media_id": a,
            "index": index,
            "start_s": index * step,
            "end_s": duration if index == len(CHAPTERS) - 1 else (index + 1) * step,
            "title": title,
            "summary": summary,
            "sources": ["transcript"],
            "method": "extractive",
            "model_id": "",
            "llm_s": None,
            "run_id": "test",
        }
        for index, (title, summary) in enumerate(CHAPTERS)
    ]
    summary = {
        "media_id": a,
        "summary": "An astronaut, a safety briefing and a coffee break.",
        "chapters": len(rows),
        "method": "extractive",
        "model_id": "",
        "run_id": "test",
    }
    store_chapters(warehouse, a, rows, summary)
    store_chapters(warehouse, b, None, None)
    yield warehouse, url, a, rows, b
    for media_id, (chapters, summary) in before.items():
        store_chapters(warehouse, media_id, chapters, summary)


def clock_seconds(text: str) -> float:
    minutes, seconds = text.split(":")
    return int(minutes) * 60 + float(seconds)


def label(rows: list[dict], position: int) -> str:
    return f"Ch. {position + 1} · {rows[position]['title']}"


def test_the_chapters_show_under_the_player_and_on_the_cards(chaptered, browser):
    """A video's chapters show under the player (a click on one plays it from its start, the one playing is
    marked), the video element carries them as a WebVTT chapters track, every card of the video names the
    chapter its moment falls in, and a video without chapters shows none and no error."""
    warehouse, url, a, rows, b = chaptered
    page, errors = open_page(browser, url, height=900)
    page.wait_for_selector("#health:has-text('files')")
    page.select_option("#mode", "visual")
    page.fill("#query", "a cat")
    # b's chapters are asked for once, for its cards: none (404), and the page says nothing of it
    with page.expect_response(lambda r: r.url.endswith(f"/chapters/{b}")) as b_chapters:
        page.press("#query", "Enter")
    assert b_chapters.value.status == 404
    page.wait_for_selector(".card.result .chapter:not([hidden])")
    a_cards = page.locator(".card.result", has=page.locator(".name", has_text="clips/a.mp4"))
    b_cards = page.locator(".card.result", has=page.locator(".name", has_text="b.mp4"))
    assert a_cards.count() >= 1 and b_cards.count() >= 1, "the search needs moments of both videos"
    labels = {label(rows, i) for i in range(len(rows))}
    for i in range(a_cards.count()):
        a_cards.nth(i).locator(".chapter").wait_for()
        assert a_cards.nth(i).locator(".chapter").inner_text() in labels
    assert b_cards.locator(".chapter:not([hidden])").count() == 0

    a_cards.first.click()
    page.wait_for_selector("#chapters:not([hidden])")
    items = page.locator("#chapter-list li")
    assert items.count() == len(rows)
    for i in range(len(rows)):
        title = items.nth(i).locator(".title").inner_text()
        assert title == label(rows, i)
    assert items.nth(2).locator(".title").inner_text() == "Ch. 3 · Coffee & <b>cake</b>"  # text, not markup
    assert page.locator("#chapters b, #chapters i").count() == 0
    assert items.nth(0).locator(".time").inner_text() == "0:00.0–0:02.0"

    # the chapters track: the right source, and the browser reads one cue per chapter from it
    track = page.locator("#preview-video track[kind='chapters']")
    assert track.count() == 1 and track.get_attribute("src") == f"/chapters/{a}?format=vtt"
    page.wait_for_function(
        "(() => { const t = document.querySelector('#preview-video track').track;"
        " return t.cues && t.cues.length === 3; })()"
    )
    cue = page.evaluate(
        "(() => { const c = document.querySelector('#preview-video track').track.cues[1];"
        " return [c.id, c.text, c.startTime]; })()"
    )
    assert cue == ["chapter-2", "Safety briefing", rows[1]["start_s"]]

    # the long summary is cut to two lines, with a button to read it whole (which does not seek)
    more = items.nth(1).locator("button.expand")
    assert more.is_visible() and not items.nth(0).locator("button.expand").is_visible()
    more.click()
    assert more.inner_text() == "less" and "open" in items.nth(1).locator(".summary").get_attribute("class")

    page.wait_for_function("document.querySelector('#preview-video').readyState >= 1")
    items.nth(1).locator(".chapter-head").click()
    start = rows[1]["start_s"]
    page.wait_for_function(f"Math.abs(document.querySelector('#preview-video').currentTime - {start}) < 0.5")
    page.wait_for_function("document.querySelector('#chapter-list li:nth-child(2)').classList.contains('current')")
    assert page.locator("#chapter-list li.current").count() == 1
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "chapters.png"), full_page=True)

    # a video without chapters: the list goes, no track, no error
    b_cards.first.click()
    page.wait_for_selector("#chapters", state="hidden")
    page.wait_for_function("document.querySelector('#preview-title').textContent === 'b.mp4'")
    assert page.locator("#chapters").is_hidden() and page.locator("#chapters-error").is_hidden()
    assert page.locator("#preview-video track").count() == 0
    assert "404" not in page.inner_text("#status")

    # frames like one of a's: each of a's frames names the chapter of its time
    a_cards.first.locator(".more").click()
    page.wait_for_function("document.querySelector('#status').textContent.includes('frames like frame')")
    page.wait_for_selector(".card.result .chapter:not([hidden])")
    frames = page.locator(".card.result", has=page.locator(".name", has_text="clips/a.mp4"))
    assert frames.count() >= 1
    for i in range(frames.count()):
        frames.nth(i).locator(".chapter").wait_for()
        t = clock_seconds(frames.nth(i).locator(".time").inner_text())
        position = max(n for n, r in enumerate(rows) if r["start_s"] <= t)  # the chapters tile the video
        assert frames.nth(i).locator(".chapter").inner_text() == label(rows, position)
    assert not errors, errors
    page.close()


def test_the_chapters_mode_finds_chapters_and_opens_the_video_there(chaptered, browser):
    """Searching chapter titles and summaries: each hit shows its title, time range and summary with the
    query's words marked; a click plays the video from the chapter's start."""
    warehouse, url, a, rows, b = chaptered
    page, errors = open_page(browser, url, height=900)
    page.wait_for_selector("#health:has-text('files')")
    page.select_option("#mode", "chapters")
    page.fill("#query", "safety briefing")
    page.press("#query", "Enter")
    page.wait_for_selector(".card.chapter-hit")
    assert page.inner_text("#status").endswith("chapters for “safety briefing”")
    first = page.locator(".card.chapter-hit").first
    assert first.locator(".name").inner_text() == "clips/a.mp4"
    assert first.locator(".chapter-title").inner_text() == "Ch. 2 · Safety briefing"
    assert first.locator(".time").inner_text() == "0:02.0–0:04.0"
    assert 0 <= float(first.locator(".similarity").inner_text()) <= 1
    marked = [m.lower() for m in first.locator(".summary mark").all_inner_texts()]
    assert {"safety", "briefing"} <= set(marked)
    assert set(first.locator(".chapter-title mark").all_inner_texts()) == {"Safety", "briefing"}
    assert page.locator("#results b, #results i").count() == 0  # markup in titles and summaries is text
    first.click()
    page.wait_for_selector("#chapters:not([hidden])")
    assert page.locator("#preview-similar").is_visible()  # "more like this" the frame the chapter starts on
    assert first.locator("img").get_attribute("src").startswith("/frame/")
    page.wait_for_function(
        f"Math.abs(document.querySelector('#preview-video').currentTime - {rows[1]['start_s']}) < 0.5"
    )
    page.wait_for_function("document.querySelector('#chapter-list li:nth-child(2)').classList.contains('current')")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "chapter-search.png"), full_page=True)
    assert not errors, errors
    page.close()
