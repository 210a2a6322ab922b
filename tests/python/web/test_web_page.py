# The page `headroom serve` answers at / driven in a real browser (headless Chromium from Debian, through
# chromedriver and selenium): classify a document, stream a chat answer, watch the metrics panel update,
# with the server's API key typed into the page. Screenshots go to $HR_TEST_OUTPUT_DIR/screenshots
# (ctest sets it to <build>/tests/python/web), else to pytest's tmp_path.
# Needs: apt chromium chromium-driver; pip selenium requests (scripts/install-deps.sh installs them).
import json
import os
import pathlib
import shutil
import time

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import server_harness

KEY = "page-test-key"
DOC = "The match ended two to one after a late goal in extra time."


@pytest.fixture(scope="module")
def server():
    s = server_harness.Server(extra_args=["--api-key", KEY])
    yield s
    s.terminate()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    base = os.environ.get("HR_TEST_OUTPUT_DIR")
    d = pathlib.Path(base) / "screenshots" if base else tmp_path_factory.mktemp("screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_bin = shutil.which("chromedriver")
    if not chromium or not driver_bin:
        pytest.fail("chromium and chromedriver are required (apt-get install chromium chromium-driver; "
                    "scripts/install-deps.sh installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    # --no-sandbox: CI runs as root in containers, where Chromium's sandbox cannot start.
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(executable_path=driver_bin), options=opts)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def api(server, path, body):
    r = requests.post(server.url + path, json=body, headers={"Authorization": "Bearer " + KEY}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def text(browser, el_id):
    return browser.find_element(By.ID, el_id).text


def test_page_is_public_and_the_api_is_not(server):
    r = requests.get(server.url + "/", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert '<script src="/static/app.js"' in r.text
    js = requests.get(server.url + "/static/app.js", timeout=10)
    assert js.status_code == 200 and js.headers["Content-Type"].startswith("text/javascript")
    assert requests.get(server.url + "/static/style.css", timeout=10).headers["Content-Type"].startswith("text/css")
    assert requests.get(server.url + "/static/nope.js", timeout=10).status_code == 404
    # The API behind the page still needs the key, and the page obeys the Host policy like every route.
    assert requests.get(server.url + "/v1/models", timeout=10).status_code == 401
    assert requests.get(server.url + "/", headers={"Host": "evil.example"}, timeout=10).status_code == 403


def test_classify_chat_and_metrics_in_a_browser(server, browser, shots):
    wait = WebDriverWait(browser, 120)
    browser.get(server.url + "/")
    assert browser.title == "headroom"

    # Without the key the API refuses, and the page says so.
    browser.find_element(By.ID, "doc").send_keys(DOC)
    browser.find_element(By.ID, "classify").click()
    wait.until(lambda d: d.find_element(By.ID, "classify-error").is_displayed())
    assert "401" in text(browser, "classify-error")
    assert "invalid_api_key" in text(browser, "classify-error")
    browser.save_screenshot(str(shots / "01-no-key.png"))

    browser.find_element(By.ID, "api-key").send_keys(KEY)
    wait.until(lambda d: d.find_element(By.ID, "m-updated").text != "never")
    requests_before = float(text(browser, "m-requests"))

    # A dropped file replaces the document (a synthetic drop event carrying a File, as the browser sends).
    browser.execute_script("""
        const dt = new DataTransfer();
        dt.items.add(new File([arguments[0]], "doc.txt", {type: "text/plain"}));
        document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true}));
    """, DOC)
    wait.until(lambda d: d.find_element(By.ID, "doc").get_attribute("value") == DOC)

    # Edit the labels: drop "neutral", add "sports".
    browser.find_element(By.CSS_SELECTOR, '#labels li[data-label="neutral"] button.remove').click()
    browser.find_element(By.ID, "label-new").send_keys("sports")
    browser.find_element(By.ID, "label-add").click()
    chips = [li.get_attribute("data-label") for li in browser.find_elements(By.CSS_SELECTOR, "#labels li")]
    assert chips == ["positive", "negative", "sports"]

    browser.find_element(By.ID, "classify").click()
    wait.until(lambda d: d.find_element(By.ID, "result").is_displayed())
    assert not browser.find_element(By.ID, "classify-error").is_displayed()
    rows = browser.find_elements(By.CSS_SELECTOR, "#bars .bar-row")
    shown = {r.get_attribute("data-label"): float(r.get_attribute("data-probability")) for r in rows}
    # The bars are the API's answer for the same request. Not bit for bit: the second request takes the
    # prompt's full blocks from the prefix cache and computes only the tail, so its last row comes from a
    # shorter chunk (about 2e-8 apart; the same 1e-6 as the other repeated-classification tests).
    expected = api(server, "/v1/classify", {"model": server.model, "document": DOC, "labels": chips})
    assert shown.keys() == expected["probabilities"].keys()
    for label, p in expected["probabilities"].items():
        assert shown[label] == pytest.approx(p, abs=1e-6)
        width = browser.find_element(By.CSS_SELECTOR, f'.bar-row[data-label="{label}"] .bar').get_attribute("style")
        assert f"{100 * p:.1f}%" in width
    assert text(browser, "result-label") == expected["label"]
    assert "ms on the server" in text(browser, "classify-time")
    browser.save_screenshot(str(shots / "02-classified.png"))

    # Chat: streamed over fetch (SSE); at temperature 0 the answer is the API's non-streaming one.
    browser.find_element(By.ID, "chat-max").clear()
    browser.find_element(By.ID, "chat-max").send_keys("24")
    browser.find_element(By.ID, "chat-temp").clear()
    browser.find_element(By.ID, "chat-temp").send_keys("0")
    browser.find_element(By.ID, "chat-input").send_keys("Say something about the weather.")
    browser.find_element(By.ID, "chat-send").click()
    bubble_sel = "#chat-log .msg.assistant"
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, bubble_sel).get_attribute("data-state") in ("done", "failed"))
    bubble = browser.find_element(By.CSS_SELECTOR, bubble_sel)
    assert bubble.get_attribute("data-state") == "done", text(browser, "chat-error")
    reference = api(server, "/v1/chat/completions", {
        "model": server.model, "max_tokens": 24, "temperature": 0,
        "messages": [{"role": "user", "content": "Say something about the weather."}]})
    answer = reference["choices"][0]["message"]["content"]
    assert answer, "the fixture model answered nothing; the streaming check would be empty"
    assert bubble.get_attribute("textContent") == answer
    # Several chunks arrived and were shown one by one: the page streamed, it did not wait for the end.
    assert int(bubble.get_attribute("data-chunks")) >= 2
    assert bubble.get_attribute("data-finish") == reference["choices"][0]["finish_reason"]
    browser.save_screenshot(str(shots / "03-chat.png"))

    # The metrics panel polls /metrics with the key: it shows the requests and tokens just made.
    wait.until(lambda d: float(d.find_element(By.ID, "m-requests").text) >= requests_before + 2)
    wait.until(lambda d: float(d.find_element(By.ID, "m-tokens").text) > 0)
    updated = text(browser, "m-updated")
    wait.until(lambda d: d.find_element(By.ID, "m-updated").text != updated)
    assert "blocks" in text(browser, "m-kv")
    assert text(browser, "m-state") == "ready"
    assert text(browser, "m-queue") == "0"
    assert text(browser, "m-tps") != "–"
    assert not browser.find_element(By.ID, "metrics-error").is_displayed()
    browser.save_screenshot(str(shots / "04-metrics.png"))

    # No script errors and no Content-Security-Policy violations (only the deliberate 401s).
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "401" not in e["message"]]
    assert not severe, json.dumps(severe, indent=1)
