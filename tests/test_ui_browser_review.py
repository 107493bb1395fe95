"""The console's review flows in a real browser (headless Chromium): paging, a shared link
and time order; reviewing one result at a time from the keyboard and a whole page at once;
the identity page's timeline, merge with its preview, and undo; the audit page. Each flow is
checked where an analyst would notice it: on the page, and in the database behind it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from console_browser import (
    act,
    body,
    chromium,
    click,
    idle,
    open_page,
    running_console,
    sign_in,
    type_into,
    wait,
    wait_for_text,
)
from sqlalchemy import create_engine, select, text

#: Identities the gallery starts with: "walker" holds two crops of one hall track (they have
#: recording times, so the timeline shows them), "visitor" one gate image.
WALKER, VISITOR = "walker", "visitor"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    made: dict[str, Any] = {}

    def prepare(svc: Any) -> None:
        from aioreid.platform.db.models import Sighting
        from aioreid.platform.search.review import ReviewService

        with svc.sessions() as s:
            timed = s.execute(
                select(Sighting.id, Sighting.track_id)
                .where(Sighting.frame_time.is_not(None))
                .order_by(Sighting.track_id, Sighting.frame_index)
            ).all()
            still = s.scalars(select(Sighting.id).where(Sighting.frame_time.is_(None))).first()
        first_track = [sid for sid, track in timed if track == timed[0][1]]
        review = ReviewService(svc)
        walker = review.assign(first_track[0], None, "fixture", label=WALKER)
        review.confirm(first_track[-1], walker, "fixture")
        made["walker"] = walker
        made["walker_sightings"] = {first_track[0], first_track[-1]}
        made["visitor"] = review.assign(still, None, "fixture", label=VISITOR)
        made["visitor_sighting"] = still

    tmp = tmp_path_factory.mktemp("browser-review")
    with running_console(tmp, prepare) as url:
        yield {"url": url, "db": f"sqlite:///{tmp / 'home' / 'aioreid.db'}", **made}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


def _rows(db: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        engine.dispose()


def _identities_of(db: str, sighting: int) -> list[int]:
    """The identities a sighting is actively assigned to (one, or none)."""
    sql = "SELECT identity_id FROM assignments WHERE sighting_id = :s AND active"
    return [r[0] for r in _rows(db, sql, s=sighting)]


def _shown(page: str) -> list[str]:
    """The result cards on the page, in order, by what they are (track or sighting id)."""
    return re.findall(r"(?:track|sighting) #\d+", page)


def _ranked(page: str) -> str:
    return next(line for line in page.splitlines() if "ranked" in line)


def _results(d: Any, caption: str, cards: int) -> str:
    """Wait until the page shows ``caption`` and all its ``cards``; the page's text then.
    The pager is drawn before the cards, and the result grid (one custom component) fills
    itself just after the run's other elements: a new caption can be seen above the previous
    page's cards for a moment, so the page is taken once it holds still (the same text at two
    polls in a row)."""
    last = [""]

    def shown(dd: Any) -> str | bool:
        page = body(dd)
        still, last[0] = page == last[0], page
        return page if still and caption in page and len(_shown(page)) == cards else False

    return str(wait(d, shown))


def test_paging_a_shared_link_and_time_order(world: dict[str, Any], browser: Any) -> None:
    d, url = browser, world["url"]
    sign_in(d, f"{url}/search?text=anyone&per_page=6")
    first = _results(d, "1–6 of ", 6)
    total = int(re.search(r"1–6 of (\d+) tracks ranked", _ranked(first)).group(1))  # type: ignore[union-attr]
    assert total > 6  # 8 gate images and the hall video's tracks
    page1 = _shown(first)
    click(d, "Next ▶")
    second = _results(d, f"7–{min(12, total)} of {total} tracks ranked", min(6, total - 6))
    page2 = _shown(second)
    assert page2 and not set(page1) & set(page2)  # the pages neither overlap nor repeat
    assert "page=2" in d.current_url and "text=anyone" in d.current_url
    # The link, opened in a new session, shows the same page of the same search.
    link = d.current_url
    sign_in(d, link)
    again = _results(d, f"7–{min(12, total)} of {total} tracks ranked", len(page2))
    assert _shown(again) == page2
    assert "“anyone”" in again  # with its query beside it
    # Time order: the query says so, and the timed results come in recording order.
    sign_in(d, f"{url}/search?text=anyone&per_page=24&sort=time")
    ordered = _results(d, "(the best 240 by time)", min(24, total))
    assert "tracks by time" in ordered
    times = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", ordered)
    assert len(times) >= 2 and times == sorted(times)


def _review_for(d: Any, identity: int) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    type_into(
        d,
        By.CSS_SELECTOR,
        "input[aria-label='Reviewing for identity']",
        str(identity),
        Keys.ENTER,
    )


def _press(d: Any, key: str) -> None:
    """Press ``key`` with the focus on the page itself (not in a field)."""
    from selenium.webdriver.common.action_chains import ActionChains

    idle(d)
    d.execute_script("document.activeElement && document.activeElement.blur()")
    ActionChains(d).send_keys(key).perform()


def test_one_at_a_time_from_the_keyboard_then_a_whole_page(
    world: dict[str, Any], browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    d, url, walker = browser, world["url"], world["walker"]
    sign_in(d, f"{url}/search?text=review+me&per_page=6")
    wait_for_text(d, "1–6 of ")
    _review_for(d, walker)
    wait_for_text(d, "✓ Confirm all 6 on this page")

    def toggle(dd: Any) -> Any:
        for label in dd.find_elements(By.CSS_SELECTOR, "[data-testid='stCheckbox'] label"):
            if label.text.startswith("One at a time"):
                return label
        return False

    act(d, toggle, lambda label: label.click())
    wait_for_text(d, f"Result 1 of 6 on this page, reviewing for identity {walker}")
    _press(d, "j")
    wait_for_text(d, "Result 2 of 6")
    _press(d, "j")
    wait_for_text(d, "Result 3 of 6")
    _press(d, "k")
    wait_for_text(d, "Result 2 of 6")
    _press(d, "y")  # a match: confirmed, and on to the next
    confirmed = wait_for_text(d, "Result 3 of 6")
    assert re.search(r"\d+ confirmed", confirmed)
    _press(d, "n")  # not this person
    rejected = wait_for_text(d, "Result 4 of 6")
    assert re.search(r"\d+ rejected", rejected)
    decisions = _rows(
        world["db"],
        "SELECT decision, actor FROM review_decisions WHERE identity_id = :i "
        "AND actor = 'bootstrap' ORDER BY id",
        i=walker,
    )
    assert [(r[0], r[1]) for r in decisions] == [("confirm", "bootstrap"), ("reject", "bootstrap")]
    # The whole page at once.
    act(d, toggle, lambda label: label.click())
    click(d, "✓ Confirm all 6 on this page")
    wait_for_text(d, f"6 sightings confirmed as identity {walker}")
    confirmed_ids = _rows(
        world["db"],
        "SELECT DISTINCT sighting_id FROM review_decisions WHERE identity_id = :i "
        "AND actor = 'bootstrap' AND decision = 'confirm' AND undone_at IS NULL",
        i=walker,
    )
    assert len(confirmed_ids) == 6  # the page's six, the one confirmed by key among them


def _choose_identity(d: Any, identity: int) -> None:
    """Pick ``identity`` in the Identity page's select box."""
    from selenium.webdriver.common.by import By

    box = "[data-testid='stMain'] input[aria-label='Identity']"
    act(d, lambda dd: dd.find_element(By.CSS_SELECTOR, box), lambda el: el.click())

    def option(dd: Any) -> Any:
        for item in dd.find_elements(By.CSS_SELECTOR, "[role='option']"):
            if item.text.startswith(f"{identity} ·"):
                return item
        return False

    act(d, option, lambda item: item.click())


def test_identity_timeline_merge_with_preview_and_undo(world: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d, url = browser, world["url"]
    walker, visitor = world["walker"], world["visitor"]
    sign_in(d, url)
    open_page(d, "Identity")
    _choose_identity(d, visitor)
    wait_for_text(d, f"{VISITOR} {visitor}: 1 sightings")
    _choose_identity(d, walker)
    page = wait_for_text(d, "Route:")
    assert re.search(r"Route: hall \d\d:\d\d:\d\d", page)  # the camera by name, with a time
    assert "cam " not in page.split("Route:")[1].splitlines()[0]
    # A point of the timeline opens its sighting's frame.
    chart = wait(d, lambda dd: dd.find_element(By.CSS_SELECTOR, "[data-testid='stVegaLiteChart']"))
    _click_a_point(d, chart)
    wait_for_text(d, "its box drawn")
    # Merge: a preview first, nothing moved until confirmed.
    before = wait_for_text(d, f"{WALKER} {walker}: ")
    held = int(re.search(rf"{WALKER} {walker}: (\d+) sightings", before).group(1))  # type: ignore[union-attr]
    type_into(d, By.CSS_SELECTOR, "input[aria-label='Merge identity']", str(visitor), Keys.ENTER)

    def previewed(dd: Any) -> str | bool:
        # The typed id reaches the page in a run of its own; until then a click on
        # "Preview the merge" previews the box's old value, so it is clicked until it shows.
        page = body(dd)
        if f"Identity {visitor} {VISITOR}" in page and "Confirm the merge" in page:
            return page
        click(dd, "Preview the merge")
        return False

    preview = str(wait(d, previewed))
    assert f"Identity {visitor} {VISITOR}: 1 sightings" in preview
    assert f"{WALKER} {walker}: {held} sightings" in preview
    click(d, "Confirm the merge")
    wait_for_text(d, f"Identity {visitor} merged: 1 sightings moved here")
    wait_for_text(d, f"{WALKER} {walker}: {held + 1} sightings")
    assert _identities_of(world["db"], world["visitor_sighting"]) == [walker]
    # The newest history row is the merge; its Undo gives the visitor its sighting back.
    assert f"merge of identity {visitor} into {walker}" in body(d)
    click(d, "Undo")
    wait_for_text(d, "merge undone")
    wait_for_text(d, f"{WALKER} {walker}: {held} sightings")
    assert _identities_of(world["db"], world["visitor_sighting"]) == [visitor]


def _click_a_point(d: Any, chart: Any) -> None:
    """Click the timeline's first point (Vega draws the chart as SVG, one path a point)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    points = wait(d, lambda dd: chart.find_elements(By.CSS_SELECTOR, "g.role-mark path"))
    assert len(points) >= 2  # the walker's timed crops (and any the review test added)
    ActionChains(d).move_to_element(points[0]).click().perform()


def test_the_audit_page_filters_by_action_and_says_what_is_wrong(
    world: dict[str, Any], browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d, url = browser, world["url"]
    sign_in(d, f"{url}/search?text=audit+me")
    wait_for_text(d, "tracks ranked")
    open_page(d, "Audit")
    everything = wait_for_text(d, "events · showing every key")
    total = int(re.search(r"(\d+) events · showing every key", everything).group(1))  # type: ignore[union-attr]
    searches = _rows(world["db"], "SELECT count(*) FROM audit_events WHERE action = 'search'")
    type_into(d, By.CSS_SELECTOR, "input[aria-label='Action']", "search", Keys.ENTER)
    wait_for_text(d, f"{searches[0][0]} events · showing every key")
    assert 0 < searches[0][0] < total
    since = "input[aria-label^='Since']"
    type_into(d, By.CSS_SELECTOR, since, "last tuesday", Keys.ENTER)
    wait_for_text(d, "Not a date and time")
    type_into(d, By.CSS_SELECTOR, since, "2999-01-01 00:00", Keys.ENTER)
    wait_for_text(d, "0 events · showing every key")
