"""The web chat in a real headless Chromium, driven the way a person uses it."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from qa.config import PROJECT_ROOT
from tests.conftest import SEED_DIR, SEED_ID

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
pytestmark = pytest.mark.browser

# Screenshots go to the test's temporary folder; QA_SCREENSHOTS=docs refreshes the README's pictures.
SCREENSHOT_DIR = os.environ.get("QA_SCREENSHOTS")


def screenshot(page, tmp_path, name: str, **options) -> None:
    folder = PROJECT_ROOT / SCREENSHOT_DIR if SCREENSHOT_DIR else tmp_path
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / name), **options)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("web")
    corpus = folder / "corpus"
    corpus.mkdir()
    shutil.copy(SEED_DIR / SEED_ID, corpus / SEED_ID)
    port = free_port()
    log = open(folder / "server.log", "w")
    process = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "app.py"), "--port", str(port), "--corpus",
                                str(corpus), "--index", str(folder / "index")], stdout=log, stderr=subprocess.STDOUT,
                               cwd=folder, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 240
    while time.time() < deadline:
        if process.poll() is not None:
            pytest.fail("the server exited:\n" + (folder / "server.log").read_text()[-3000:])
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("the server did not start:\n" + (folder / "server.log").read_text()[-3000:])
    yield {"url": url, "port": port, "folder": folder}
    process.terminate()
    process.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: run `make test`, which installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(server["url"])
    page.wait_for_selector("#question textarea", timeout=60_000)
    yield page
    context.close()


def ask(page, question: str):
    before = page.locator("#chat .message-row.bot-row, #chat [data-testid='bot']").count()
    box = page.locator("#question textarea")
    box.fill(question)
    page.locator("#ask").click()
    page.wait_for_function(
        "n => document.querySelectorAll(\"#chat .message-row.bot-row, #chat [data-testid='bot']\").length > n",
        arg=before, timeout=60_000)
    return page.locator("#chat .message-row.bot-row, #chat [data-testid='bot']").last


def choose(page, dropdown: str, option: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.locator("[role=option]", has_text=option).click()


def wait_status(page, text: str, timeout: int = 60_000) -> None:
    page.wait_for_function("t => document.querySelector('#status').innerText.includes(t)", arg=text,
                           timeout=timeout)


def upload(page, path) -> None:
    page.locator("#upload input[type=file]").set_input_files(str(path))


def test_the_server_binds_loopback_only(server):
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        outside = s.getsockname()
    addresses = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
    lines = [line for line in addresses.splitlines() if f":{server['port']} " in line]
    assert lines and all("127.0.0.1:" in line for line in lines), lines
    assert outside[1] > 0  # the probe socket itself worked, so ss would have seen a wildcard listener


def test_answer_confidence_and_highlighted_passage(page, tmp_path):
    reply = ask(page, "Who chaired the session?")
    text = reply.inner_text()
    assert "Emomali Rahmon" in text
    assert "Confidence:" in text
    highlighted = reply.locator("mark.answer")
    assert highlighted.count() == 1 and "Emomali Rahmon" in highlighted.inner_text()
    assert "chaired by" in reply.locator(".passage").inner_text()  # the source passage is shown around it
    screenshot(page, tmp_path, "chat.png", full_page=False)


def test_unanswerable_question_says_not_found(page):
    reply = ask(page, "Who won the 2018 FIFA World Cup?")
    text = reply.inner_text()
    assert "Not found in the documents" in text
    assert reply.locator(".passage").count() >= 1  # the closest passages are offered


def test_markup_in_a_question_is_shown_as_text_not_run(page):
    page.evaluate("window.__pwned = false")
    reply = ask(page, "<img src=x onerror=\"window.__pwned=true\"><b>bold</b> who chaired?")
    assert page.evaluate("window.__pwned") is False
    user_bubbles = page.locator("#chat .message-row.user-row, #chat [data-testid='user']")
    assert "<b>bold</b>" in user_bubbles.last.inner_text()
    assert reply.count() == 1


def test_empty_question_gets_a_clear_message(page):
    reply = ask(page, "   ")
    assert "Please type a question" in reply.inner_text()


def test_upload_ask_and_remove_a_document(page, server, tmp_path):
    note = tmp_path / "zoo-news.md"
    note.write_text("# Zoo news\n\nThe red panda Mei was born at the Leipzig zoo in 2019. "
                    "<script>window.__pwned=true</script>", encoding="utf-8")
    page.evaluate("window.__pwned = false")
    page.locator("#upload input[type=file]").set_input_files(str(note))
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('added')", timeout=120_000)
    assert "zoo-news.md" in page.locator("#documents").inner_text()
    reply = ask(page, "Where was the red panda Mei born?")
    assert "Leipzig" in reply.inner_text()
    assert page.evaluate("window.__pwned") is False
    # The same file again: a clear message, nothing added.
    page.locator("#upload input[type=file]").set_input_files(str(note))
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('already indexed')",
                           timeout=60_000)
    # Remove it through the dropdown, confirming.
    choose(page, "#remove-choice", "zoo-news.md")
    page.locator("#remove").click()
    page.locator("#confirm-remove").click()
    wait_status(page, "removed zoo-news.md")
    assert "zoo-news.md" not in page.locator("#documents").inner_text()


def test_unsupported_upload_is_refused_with_a_message(page, tmp_path):
    bad = tmp_path / "empty.txt"
    bad.write_bytes(b"")
    page.locator("#upload input[type=file]").set_input_files(str(bad))
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('empty')", timeout=60_000)


def test_narrow_mobile_window(browser, server, tmp_path):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(server["url"])
    page.wait_for_selector("#question textarea", timeout=60_000)
    reply = ask(page, "Who attended the meeting as a guest?")
    assert "Mirziyoyev" in reply.inner_text()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the page scrolls sideways on a phone ({width}px)"
    screenshot(page, tmp_path, "chat-mobile.png")
    context.close()


def dropdown_options(page, dropdown: str) -> list[str]:
    page.locator(f"{dropdown} input").click()
    options = page.locator("[role=option]").all_inner_texts()
    page.keyboard.press("Escape")
    return [o.strip() for o in options]


def test_a_reload_shows_the_documents_uploaded_since_start(browser, page, server, tmp_path):
    note = tmp_path / "otters.rst"
    note.write_text("Otters\n======\n\nThe otter Lutra was seen at the Bremen weir in 2021.\n", encoding="utf-8")
    upload(page, note)
    wait_status(page, "added otters.rst", timeout=120_000)
    fresh = browser.new_page()  # another visit: what the server holds now, not what it held at start
    fresh.goto(server["url"])
    fresh.wait_for_selector("#documents", timeout=60_000)
    fresh.wait_for_function("() => document.querySelector('#documents').innerText.includes('otters.rst')",
                            timeout=60_000)
    assert "otters.rst" in dropdown_options(fresh, "#remove-choice")
    assert fresh.locator("#remove-choice input").input_value() == ""  # nothing preselected
    fresh.close()


def test_remove_needs_a_choice_and_a_confirmation_and_restore_brings_it_back(page):
    page.locator("#remove").click()
    wait_status(page, "Choose a document to remove")
    choose(page, "#remove-choice", SEED_ID)
    page.locator("#remove").click()
    wait_status(page, "Confirm removal")
    assert SEED_ID in page.locator("#documents").inner_text()  # asking first removed nothing
    page.locator("#cancel-remove").click()
    wait_status(page, "Nothing removed")
    assert SEED_ID in page.locator("#documents").inner_text()
    choose(page, "#remove-choice", SEED_ID)
    page.locator("#remove").click()
    page.locator("#confirm-remove").click()
    wait_status(page, f"removed {SEED_ID}")
    assert SEED_ID not in page.locator("#documents").inner_text()
    assert "Not found" in ask(page, "Who chaired the session?").inner_text()
    choose(page, "#restore-choice", SEED_ID)
    page.locator("#restore").click()
    wait_status(page, f"restored {SEED_ID}")
    assert SEED_ID in page.locator("#documents").inner_text()
    assert "Emomali Rahmon" in ask(page, "Who chaired the session?").inner_text()


def test_a_question_during_indexing_waits_for_the_new_document(page, tmp_path):
    # Long enough to take seconds to embed; the one sentence that answers sits in the middle.
    filler = " ".join(f"Paragraph {i} of the harbour log notes calm water and {i % 7} boats at anchor."
                      for i in range(3000))
    book = tmp_path / "harbour-log.txt"
    book.write_text(filler + "\n\nThe lighthouse keeper of Skagen in 1911 was Anders Holm.\n\n" + filler)
    upload(page, book)
    wait_status(page, "indexing harbour-log.txt")
    reply = ask(page, "Who was the lighthouse keeper of Skagen in 1911?")
    assert "Anders Holm" in reply.inner_text() and "Waited for the upload" in reply.inner_text()
    wait_status(page, "added harbour-log.txt", timeout=120_000)


def test_a_follow_up_question_is_read_against_the_previous_one(page):
    assert "Emomali Rahmon" in ask(page, "Who chaired the session?").inner_text()
    reply = ask(page, "Which country is he the president of?")
    assert "Tajik" in reply.inner_text() and "Read as:" in reply.inner_text()
