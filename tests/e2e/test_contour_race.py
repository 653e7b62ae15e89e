"""Two volunteers race one contour round in two headless-Chromium contexts, over real websockets.

pytest-django's ``live_server`` speaks WSGI only, so this module serves the project's ASGI
application (HTTP and websockets, static files as in ``ChannelsLiveServerTestCase``) with daphne
in a thread of the test process. A thread, not a process: the SQLite test database lives in
memory, which a subprocess cannot see; in the CI run on PostgreSQL the same code applies.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from django.core.exceptions import ObjectDoesNotExist
from django.db import OperationalError

from annotate.models import Annotation, ConsensusMask
from games.contour.models import RaceEntry
from tessera.demo_segmentation import load_segmentation_demo
from tests.factories import user_with_role

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


class DaphneThread(threading.Thread):
    """daphne (Twisted on asyncio) serving ``tessera.asgi.application`` on a free loopback port."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="daphne-e2e")
        self.port: int | None = None
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            from daphne.testing import _reinstall_reactor

            _reinstall_reactor()  # a fresh asyncio reactor bound to this thread's loop
            from daphne.server import Server
            from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
            from twisted.internet import reactor

            from tessera.asgi import application

            self.reactor = reactor
            self.server = Server(
                application=ASGIStaticFilesHandler(application),
                endpoints=["tcp:port=0:interface=127.0.0.1"],
                signal_handlers=False,
            )

            def wait_for_port() -> None:
                if self.server.listening_addresses:
                    self.port = self.server.listening_addresses[0][1]
                    self.ready.set()
                else:
                    reactor.callLater(0.05, wait_for_port)

            reactor.callLater(0.05, wait_for_port)
            self.server.run()
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            self.error = error
            self.ready.set()

    def stop(self) -> None:
        self.reactor.callFromThread(self.reactor.stop)
        self.join(timeout=10)


@pytest.fixture(scope="module")
def asgi_live_server():
    server = DaphneThread()
    server.start()
    assert server.ready.wait(20), "daphne did not start"
    if server.error is not None:
        raise server.error
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


def _log_in(page, base_url, username):
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def _canvas_point(page, fx, fy):
    box = page.locator("[data-role=canvas]").bounding_box()
    return box["x"] + box["width"] * fx, box["y"] + box["height"] * fy


def test_two_volunteers_race_one_round(new_page, asgi_live_server, artifacts, settings):
    settings.RACE_COUNTDOWN_MS = 1_500
    settings.RACE_DRAW_MS = 90_000
    load_segmentation_demo(data_dir=Path(settings.DATA_DIR), limit=8)
    ana = user_with_role("volunteer", username="ana_mouse", display_name="Ana")
    ben = user_with_role("volunteer", username="ben_keys", display_name="Ben")
    for user in (ana, ben):
        user.set_password(PASSWORD)
        user.save()

    page_a = new_page(viewport={"width": 1280, "height": 860})
    page_b = new_page(viewport={"width": 1280, "height": 860})
    _log_in(page_a, asgi_live_server, "ana_mouse")
    _log_in(page_b, asgi_live_server, "ben_keys")

    # The games page links to the race; the lobby shows who is waiting.
    page_a.goto(f"{asgi_live_server}/play/")
    page_a.get_by_role("link", name="Race: outline the skin lesion").click()
    page_a.wait_for_selector("#race-lobby[data-ready=true]")
    page_a.get_by_role("button", name="Find players").click()
    page_b.goto(f"{asgi_live_server}/play/race/")
    page_b.wait_for_selector("#race-lobby[data-ready=true]")
    page_b.locator("[data-role=waiting]").get_by_text("Ana").wait_for()
    page_b.screenshot(path=str(artifacts / "race-lobby.png"))
    page_b.get_by_role("button", name="Find players").click()

    for page in (page_a, page_b):
        page.wait_for_url("**/play/race/room/**")
        page.wait_for_selector("#race[data-phase=lobby]")
        page.get_by_role("button", name="I'm ready").click()
    # Server-authoritative countdown, then both get the same image.
    page_a.wait_for_selector("#race[data-phase=countdown]", timeout=15_000)
    page_a.wait_for_selector("#race[data-phase=drawing]", timeout=15_000)
    page_b.wait_for_selector("#race[data-phase=drawing]", timeout=15_000)
    assert page_a.locator("[data-role=structure]").inner_text() == "Skin lesion"
    page_a.wait_for_function(
        "document.querySelector('[data-role=canvas]').dataset.locked === 'false'"
    )

    # Ana: click-to-place points with the mouse, drag one vertex, close on the first point.
    page_a.get_by_role("button", name="• Points").click()
    corners = [(0.3, 0.28), (0.7, 0.28), (0.72, 0.72), (0.3, 0.7)]
    for fx, fy in corners:
        page_a.mouse.click(*_canvas_point(page_a, fx, fy))
    x, y = _canvas_point(page_a, 0.72, 0.72)
    page_a.mouse.move(x, y)
    page_a.mouse.down()
    page_a.mouse.move(x - 10, y - 8, steps=4)
    page_a.mouse.up()
    page_a.mouse.click(*_canvas_point(page_a, 0.3, 0.28))  # on the first point: closes
    assert "closed" in page_a.locator("[data-role=draw-status]").inner_text()
    # Ben sees that Ana is drawing, never her outline.
    page_b.locator("[data-role=players] li[data-progress=drawing]").wait_for()

    # Ben: keyboard only. Cursor starts mid-image; Shift+arrows move it 10 px.
    canvas_b = page_b.locator("[data-role=canvas]")
    canvas_b.focus()

    def press(key, times=1):
        for _ in range(times):
            page_b.keyboard.press(key)

    press("Shift+ArrowLeft", 5)
    press("Shift+ArrowUp", 4)
    press("Enter")
    press("Shift+ArrowRight", 10)
    press("Enter")
    press("Shift+ArrowDown", 8)
    press("Enter")
    press("Shift+ArrowLeft", 10)
    press("Enter")
    press("Shift+ArrowLeft", 3)  # a point too many, then undo it
    press("Enter")
    press("Backspace")
    press("c")
    assert "4 points, closed" in page_b.locator("[data-role=draw-status]").inner_text()
    page_b.screenshot(path=str(artifacts / "race-drawing.png"))

    page_a.get_by_role("button", name="Submit outline").click()
    page_b.locator("[data-role=players] li[data-progress=submitted]").wait_for()
    page_b.get_by_role("button", name="Submit outline").click()

    for page in (page_a, page_b):
        page.wait_for_selector("#race[data-phase=results]", timeout=20_000)

        page.locator("[data-role=ranking] tr").nth(1).wait_for(timeout=20_000)
    page_a.screenshot(path=str(artifacts / "race-results.png"), full_page=True)
    rows = page_a.locator("[data-role=ranking] tr").all_inner_texts()
    assert len(rows) == 2 and any("Ana (you)" in r for r in rows) and any("Ben" in r for r in rows)

    # The server thread may still be writing (the consensus-mask task runs after the scores went
    # out); the in-memory SQLite test database then answers "table is locked" for a moment.
    image_id = _settled(
        lambda: RaceEntry.objects.filter(player=ana).values_list("image_id", flat=True).get()
    )
    _settled(lambda: ConsensusMask.objects.get(image_id=image_id))
    raced = RaceEntry.objects.filter(player__in=[ana, ben]).select_related("annotation")
    entries = {e.player_id: e for e in raced}
    assert set(entries) == {ana.pk, ben.pk} and entries[ana.pk].image == entries[ben.pk].image
    for entry in entries.values():
        assert entry.annotation.source == Annotation.Source.CONTOUR_RACE
        assert len(entry.annotation.geometry["points"]) >= 4
        assert entry.dice is not None and entry.score is not None
    assert len(entries[ben.pk].annotation.geometry["points"]) == 4
    shown = page_a.locator("[data-role=ranking]").inner_text()
    assert str(entries[ana.pk].score) in shown and str(entries[ben.pk].score) in shown

    for name in ("race-lobby", "race-drawing", "race-results"):
        shutil.copy(artifacts / f"{name}.png", SCREENSHOTS / f"{name}.png")

    # Leave before the database is flushed: the server records both disconnects first.
    for page in (page_a, page_b):
        page.context.close()

    def everyone_gone():
        room = RaceEntry.objects.filter(player=ana).get().room
        room.refresh_from_db()
        assert not any(p["connected"] for p in room.state["players"])

    _settled(everyone_gone)


def _settled(check, seconds=10.0, interval=0.3):
    """``check()`` once the server thread has let go of the database (retries, then raises).

    SQLite's shared in-memory test database fails a writer at once ("table is locked") while a
    reader holds the table, so every read here could make the server thread's write fail (seen:
    a disconnect never recorded). Each attempt waits first and the reads stay sparse.
    """
    deadline = time.monotonic() + seconds
    while True:
        time.sleep(interval)
        try:
            return check()
        except (OperationalError, AssertionError, ObjectDoesNotExist):
            if time.monotonic() > deadline:
                raise
