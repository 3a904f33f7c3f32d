"""The history browser in a real browser: Debian's headless Chromium, driven by selenium through
chromium-driver, against `pghist.web` served by uvicorn. It loads the overview, follows a table to
an object's timeline, checks that a diff is visible, compares two versions and saves screenshots
(tests/results/browser/).

By design this runs on PostgreSQL 15 only: the pages are the same on every server version, and a
browser run is slow. On 15 it never skips: a missing chromium is a failure (tests/run installs it).
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

uvicorn = pytest.importorskip("uvicorn", reason="pip install './pyinstaller[web]'")
webdriver = pytest.importorskip(
    "selenium.webdriver", reason="pip install -r tests/requirements.txt"
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from pghist import web  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[2] / "tests" / "results" / "browser"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)


@pytest.fixture(scope="module")
def shop(db_dsn: str) -> str:
    with psycopg.connect(db_dsn, autocommit=True) as c:
        c.execute(
            """
            CREATE TABLE customer (id int PRIMARY KEY, name text, email text);
            CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customer,
                                 status text, total numeric(10, 2));
            CREATE TABLE order_line (id int PRIMARY KEY, order_id int REFERENCES orders,
                                     sku text, qty int);
            SELECT pghistory.track('customer');
            SELECT pghistory.track('orders', pghistory.insert_event(), pghistory.update_event(),
                                   pghistory.delete_event());
            SELECT pghistory.track('order_line');
            """
        )
        steps = [
            (
                {"user": "ann", "url": "/signup"},
                "INSERT INTO customer VALUES (1, 'Ann Lee', 'ann@example.com'),"
                " (2, 'Bob Ray', 'bob@example.com')",
            ),
            (
                {"user": "ann", "url": "/checkout"},
                "INSERT INTO orders VALUES (1042, 1, 'new', 59.90), (1043, 2, 'new', 12.00)",
            ),
            (
                {"user": "ann", "url": "/checkout"},
                "INSERT INTO order_line VALUES (1, 1042, 'PEN-BLUE', 2), (2, 1042, 'INK-BLACK', 1),"
                " (3, 1043, 'PAD-A5', 3)",
            ),
            (
                {"user": "support:carol", "reason": "customer call"},
                "UPDATE order_line SET qty = 3 WHERE id = 1",
            ),
            (
                {"user": "support:carol", "reason": "customer call"},
                "UPDATE orders SET total = 74.85 WHERE id = 1042",
            ),
            ({"user": "billing-job"}, "UPDATE orders SET status = 'paid' WHERE id = 1042"),
            (
                {"user": "warehouse", "url": "/ship"},
                "UPDATE orders SET status = 'shipped' WHERE id = 1042",
            ),
            (
                {"user": "bob", "url": "/account"},
                "UPDATE customer SET email = 'bob.ray@example.com' WHERE id = 2",
            ),
        ]
        for metadata, statement in steps:
            with c.transaction():
                c.execute("SELECT pghistory.set_context(%s)", (json.dumps(metadata),))
                c.execute(statement)
    return db_dsn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(shop: str) -> Iterator[tuple[str, str]]:
    """The app served by a real uvicorn on a free local port: (base url, token)."""
    app = web.app(shop)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}", app.state.token
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def browser(tmp_path: Path, pg_server: Any) -> Iterator[Any]:
    if pg_server.version != 15:
        pytest.skip(
            "by design the real-browser test runs on PostgreSQL 15 only"
            " (same pages on every version)"
        )
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, (
        "chromium and chromium-driver are missing: tests/run installs them (apt-get, as root)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")  # a fresh profile
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    assert path.stat().st_size > 10_000
    return path


def navigate(browser: Any, element: Any) -> None:
    """Click a link or button and wait until the page it leaves is gone (no stale elements)."""
    element.click()
    WebDriverWait(browser, 30).until(expected_conditions.staleness_of(element))


def test_overview_to_object_timeline_in_chromium(served: Any, browser: Any) -> None:
    base, token = served
    # without the token: 401, nothing shown
    browser.get(f"{base}/events?table=orders")
    assert "Token required" in browser.page_source and "1042" not in browser.page_source

    browser.get(f"{base}/?token={token}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Tracked tables"
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart rect")
    assert charts and all(c.is_displayed() for c in charts[:3])
    shot(browser, "overview")

    # follow a table (the cookie now carries the token)
    navigate(browser, browser.find_element(By.LINK_TEXT, "orders"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Events of orders"
    cards = browser.find_elements(By.CSS_SELECTOR, "article.event")
    assert len(cards) == 5
    newest = cards[0]
    old = newest.find_element(By.CSS_SELECTOR, "td.old")
    new = newest.find_element(By.CSS_SELECTOR, "td.new")
    assert old.is_displayed() and new.is_displayed()
    assert (old.text, new.text) == ("paid", "shipped")
    chips = [a.text for a in newest.find_elements(By.CSS_SELECTOR, "a.context")]
    assert chips == ["url: /ship", "user: warehouse"]
    shot(browser, "events")

    # an object's id leads to its timeline, with its lines' events merged in
    navigate(browser, newest.find_element(By.CSS_SELECTOR, "a.obj"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "orders #1042"
    timeline = browser.find_elements(By.CSS_SELECTOR, "article.event")
    related = browser.find_elements(By.CSS_SELECTOR, "article.event.related")
    assert len(timeline) == 4 + 3 and len(related) == 3  # 4 order events, 3 of its lines
    diff_rows = [
        (
            row.find_element(By.CSS_SELECTOR, "td.old").text,
            row.find_element(By.CSS_SELECTOR, "td.new").text,
        )
        for row in browser.find_elements(By.CSS_SELECTOR, "article.event tr")
        if row.find_elements(By.CSS_SELECTOR, "td.old")
    ]
    assert (
        ("new", "paid") in diff_rows and ("59.90", "74.85") in diff_rows and ("2", "3") in diff_rows
    )

    # compare the first and the last version side by side
    Select(browser.find_element(By.NAME, "a")).select_by_index(0)
    Select(browser.find_element(By.NAME, "b")).select_by_index(3)
    navigate(browser, browser.find_element(By.CSS_SELECTOR, "form.filters button"))
    differs = browser.find_elements(By.CSS_SELECTOR, "#compare td.differs")
    assert differs and all(d.is_displayed() for d in differs)
    texts = [d.text for d in differs]
    assert texts == ["new", "shipped", "59.90", "74.85"] or {"new", "shipped"} <= set(texts)
    shot(browser, "object")

    # a context link filters on it
    navigate(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "user: support:carol"))
    labels = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "article.event a.label")]
    assert labels == ["update"]  # the order's update by carol (the filter keeps table and obj)
