"""The web UI in Debian's Chromium: log in, load every page, requeue and purge dead letters
through the confirmation, cancel a job, watch queues and a plugin panel change live, press a
panel's button, approve a plugin, and see hostile plugin text shown as text."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from rwq.queue.broker import Broker
from rwq.queue.producer import Producer
from rwq.web.pages import PAGES
from rwq.web.server import WebServer
from web_fixtures import Kill, MakeToken, Shot

# Opening a page before logging in: its session check is answered 401 (then the login page).
BEFORE_LOGIN = r"^console: Failed to load resource: .*status of 401"
ADMIN = (
    "observer", "operator", "admin.queue.peek", "admin.queue.requeue", "admin.queue.purge",
    "admin.queue.pause", "system.config.read", "system.plugins.manage",
)  # fmt: skip


def log_in(page: Page, web: WebServer, secret: str, then: str = "/queues") -> None:
    page.goto(f"{web.url}{then}")
    page.wait_for_url(re.compile(r"/login\?next="))
    page.fill("#token", secret)
    page.click("#login button[type=submit]")
    page.wait_for_url(f"{web.url}{then}")
    ready(page)


def ready(page: Page) -> None:
    page.wait_for_selector("body[data-ready=true]", state="attached")


def admin_token(web: WebServer) -> str:
    return web.context.tokens.create("admin", ADMIN, ("*",))[1]


@pytest.mark.expected_browser_errors(BEFORE_LOGIN)
def test_every_page_loads_after_logging_in(
    plugin_web: Callable[..., WebServer], browser_page: Page, shot: Shot, kill: Kill
) -> None:
    web = plugin_web("counter")
    producer = Producer(web.context.broker)
    job = producer.enqueue("tenant.a", {"to": "ada\u202e<b>x</b>"})
    kill("tenant.a", [job], error="smtp refused")
    producer.enqueue("tenant.b", {"n": 1})
    log_in(browser_page, web, admin_token(web))
    expect(browser_page.locator("#queues tbody tr")).to_have_count(2)
    expect(browser_page.locator("#live")).to_have_text("live")
    for path in [*PAGES, "queues/tenant.a", f"jobs/{job.id}"]:
        browser_page.goto(f"{web.url}/{path}")
        ready(browser_page)
        expect(browser_page.locator("#flash")).to_be_hidden()  # no error shown
        expect(browser_page.locator("main h1")).not_to_be_empty()
        shot(browser_page, path.replace("/", "-"))
    expect(browser_page.locator("main")).to_contain_text("smtp refused")  # the job page
    expect(browser_page.locator("main")).to_contain_text("ada\\u202e<b>x</b>")  # shown as is
    browser_page.click("#logout")
    browser_page.wait_for_url(f"{web.url}/login")


@pytest.mark.expected_browser_errors(BEFORE_LOGIN)
def test_dead_letters_are_filtered_inspected_requeued_and_purged_after_a_question(
    web: WebServer, make_token: MakeToken, browser_page: Page, shot: Shot, kill: Kill
) -> None:
    producer = Producer(web.context.broker)
    broker: Broker = web.context.broker
    jobs = [producer.enqueue("mail", {"n": n}) for n in range(3)]
    kill("mail", jobs, error="smtp refused")
    other = producer.enqueue("sms", {"n": 9})
    kill("sms", [other], error="no signal")
    secret = make_token("ops", *ADMIN)
    log_in(browser_page, web, secret, then="/dead-letters")
    rows = browser_page.locator("#dead tbody tr[data-id]")
    expect(rows).to_have_count(4)

    browser_page.fill("input[name=error]", "SMTP")
    browser_page.click("#filters button[type=submit]")
    expect(rows).to_have_count(3)
    expect(browser_page.locator("#summary")).to_have_text("1-3 of 3 dead letters")
    browser_page.click(f"[data-inspect='{jobs[0].id}']")
    expect(browser_page.locator("tr.detail")).to_contain_text('"n": 0')
    shot(browser_page, "inspected")

    browser_page.check(f"tr[data-id='{jobs[0].id}'] input[data-pick]")
    browser_page.click("#requeue-chosen")
    dialog = browser_page.locator("dialog.confirm")
    expect(dialog).to_contain_text("Requeue 1 dead letter of mail?")
    dialog.locator("[data-action=confirm]").click()
    expect(browser_page.locator("#flash")).to_have_text("requeued 1 job")
    expect(rows).to_have_count(2)
    assert broker.client.zscore(broker.queue_keys("mail").pending, jobs[0].id) is not None

    browser_page.fill("input[name=queue]", "mail")
    browser_page.fill("input[name=error]", "")
    browser_page.click("#filters button[type=submit]")
    browser_page.click("#purge")
    expect(dialog).to_contain_text("Delete every dead letter of mail (2 now) for good?")
    shot(browser_page, "confirm")
    dialog.locator("[data-action=cancel]").click()
    expect(rows).to_have_count(2)  # nothing done
    browser_page.click("#purge")
    dialog.locator("[data-action=confirm]").click()
    expect(browser_page.locator("#flash")).to_have_text("purged 2 dead letters of mail")
    expect(browser_page.locator("#dead tbody")).to_contain_text("No dead letters match.")
    assert broker.client.zcard(broker.queue_keys("sms").dead) == 1  # another queue's kept

    # "Requeue all matching" acts on the filter as typed, applied first (not on the last one).
    browser_page.fill("input[name=queue]", "sms")
    browser_page.click("#requeue-all")
    expect(dialog).to_contain_text("Requeue every dead letter of sms?")
    expect(dialog).to_contain_text("1 now")
    dialog.locator("[data-action=confirm]").click()
    expect(browser_page.locator("#flash")).to_have_text("requeued 1 job")
    assert broker.client.zcard(broker.queue_keys("sms").dead) == 0

    browser_page.goto(f"{web.url}/audit")  # what was done, newest first; no allowed checks
    ready(browser_page)
    first = browser_page.locator("#audit tbody tr").first
    expect(first).to_contain_text("requeued 1 dead letter (all)")
    expect(browser_page.locator("#audit")).not_to_contain_text(":GET /api/v1/")
    browser_page.check("#filters [name=routine]")
    browser_page.click("#filters button[type=submit]")
    expect(browser_page.locator("#audit")).to_contain_text(
        "admin.queue.requeue:POST /api/v1/dead-letters/requeue"
    )


@pytest.mark.expected_browser_errors(BEFORE_LOGIN)
def test_the_queues_page_follows_the_queues_live(
    web: WebServer, make_token: MakeToken, browser_page: Page, shot: Shot
) -> None:
    producer = Producer(web.context.broker)
    producer.enqueue("reports", {"n": 0})
    log_in(browser_page, web, make_token("watcher", "observer"))
    pending = browser_page.locator("#queues tr[data-queue='reports'] td:nth-child(2)")
    expect(pending).to_have_text("1")
    for n in range(4):
        producer.enqueue("reports", {"n": n + 1})
    expect(pending).to_have_text("5")  # from the stream: the page is not reloaded
    producer.enqueue("invoices", {"n": 1})
    expect(browser_page.locator("#queues tr[data-queue='invoices']")).to_be_visible()
    shot(browser_page, "live")


@pytest.mark.expected_browser_errors(BEFORE_LOGIN)
def test_a_panel_is_drawn_pressed_and_updated_live(
    plugin_web: Callable[..., WebServer], browser_page: Page, shot: Shot
) -> None:
    web = plugin_web("counter", "hostile-text")
    log_in(browser_page, web, admin_token(web), then="/panels")
    counter = browser_page.locator("section.panel[data-plugin='counter']")
    expect(counter.locator(".title")).to_have_text("Counter")
    expect(counter).to_contain_text("count=0")
    shot(browser_page, "drawn")
    counter.get_by_role("button", name=re.compile("^Add one")).click()
    expect(counter).to_contain_text("count=1")
    counter.get_by_role("button", name="beta").click()
    expect(counter).to_contain_text("chosen=beta")
    counter.focus()
    browser_page.keyboard.press("i")  # the button's key
    expect(counter).to_contain_text("count=2")
    browser_page.keyboard.press("x")  # a key of no button goes to the plugin
    expect(counter).to_contain_text("keys=x")
    browser_page.keyboard.press("Escape")  # leaves the panel: keys no longer go to it
    assert browser_page.evaluate("document.activeElement === document.body")
    browser_page.keyboard.press("y")
    expect(browser_page.locator("#panel-keys")).to_contain_text("Escape leaves the panel")
    browser_page.wait_for_timeout(500)  # time for a key sent by mistake to show
    assert "keys=x," not in counter.inner_text()
    shot(browser_page, "pressed")

    hostile = browser_page.locator("section.panel[data-plugin='hostile-text']")
    expect(hostile).to_contain_text("[@click=app.quit]x")
    expect(hostile).to_contain_text("\\x1b[2J\\x1b]0;pwn\\x07")  # escapes, visible
    expect(hostile).to_contain_text("\\u202eevil\\u202c")
    assert hostile.locator("script, img, a, iframe").count() == 0


@pytest.mark.expected_browser_errors(BEFORE_LOGIN)
def test_a_plugin_is_approved_from_the_plugin_manager(
    plugin_web: Callable[..., WebServer], browser_page: Page, shot: Shot
) -> None:
    web = plugin_web("counter", granted=False)
    log_in(browser_page, web, admin_token(web), then="/plugins")
    row = browser_page.locator("#plugins tr[data-plugin='counter']")
    expect(row).to_contain_text("awaiting approval")
    approval = browser_page.locator("form.approval[data-plugin='counter']")
    expect(approval).to_contain_text("storage.read")
    shot(browser_page, "waiting")
    approval.locator("[data-decide=approve]").click()
    expect(browser_page.locator("#flash")).to_contain_text("counter: approved")
    expect(row).to_contain_text("active")
    expect(browser_page.locator("#approvals")).to_contain_text("Nothing waits for a decision.")
    row.locator("[data-action=disable]").click()
    browser_page.locator("dialog.confirm [data-action=confirm]").click()
    expect(row).to_contain_text("disabled")


@pytest.mark.expected_browser_errors(BEFORE_LOGIN)
def test_a_queue_is_paused_resumed_and_purged_and_a_job_cancelled(
    web: WebServer, make_token: MakeToken, browser_page: Page, shot: Shot
) -> None:
    producer = Producer(web.context.broker)
    jobs = [producer.enqueue("exports", {"n": n}) for n in range(3)]
    log_in(browser_page, web, make_token("ops", *ADMIN), then="/queues/exports")
    expect(browser_page.locator("#jobs tbody tr")).to_have_count(3)
    expect(browser_page.locator("#jobs")).to_contain_text(jobs[0].id)
    browser_page.click("#pause")
    expect(browser_page.locator("#flash")).to_have_text("exports paused")
    expect(browser_page.locator("#state")).to_have_text("paused")
    assert web.context.admin.stats(["exports"]).queues[0].paused
    browser_page.click("#pause")
    expect(browser_page.locator("#state")).to_have_text("running")
    browser_page.goto(f"{web.url}/jobs/{jobs[0].id}")
    ready(browser_page)
    browser_page.click("#cancel")
    expect(browser_page.locator("dialog.confirm")).to_contain_text("never runs again")
    browser_page.locator("dialog.confirm [data-action=confirm]").click()
    expect(browser_page.locator("#flash")).to_have_text(f"cancelled {jobs[0].id} (was pending)")
    expect(browser_page.locator("main dl")).to_contain_text("cancelled")
    expect(browser_page.locator("#cancel")).to_have_count(0)
    shot(browser_page, "cancelled")
    browser_page.goto(f"{web.url}/queues/exports")
    ready(browser_page)
    browser_page.click("[data-purge=pending]")
    browser_page.locator("dialog.confirm [data-action=confirm]").click()
    expect(browser_page.locator("#flash")).to_have_text("purged 2 pending jobs of exports")
    expect(browser_page.locator("#jobs tbody")).to_contain_text("No pending jobs.")
    shot(browser_page, "purged")


@pytest.mark.expected_browser_errors(BEFORE_LOGIN)
def test_a_token_of_some_queues_sees_only_what_it_may_use(
    web: WebServer, make_token: MakeToken, browser_page: Page, shot: Shot, kill: Kill
) -> None:
    producer = Producer(web.context.broker)
    kill("tenant.a", [producer.enqueue("tenant.a", {"n": 1})])
    kill("other", [producer.enqueue("other", {"n": 2})])
    secret = make_token("tenant", "observer", "admin.queue.peek", queues=("tenant.*",))
    log_in(browser_page, web, secret)
    expect(browser_page.locator("#queues tbody tr")).to_have_count(1)
    nav = browser_page.locator("header nav a:visible")
    expect(nav).to_have_text(["Queues", "Dead letters", "Workers"])
    browser_page.goto(f"{web.url}/dead-letters")
    ready(browser_page)
    expect(browser_page.locator("input[name=queue]")).to_have_value("tenant.*")
    expect(browser_page.locator("main")).to_contain_text("Your token sees the queues tenant.*")
    expect(browser_page.locator("#dead tbody tr[data-id]")).to_have_count(1)
    expect(browser_page.locator("#requeue-chosen, #purge")).to_have_count(0)
    browser_page.goto(f"{web.url}/queues/tenant.a")
    ready(browser_page)
    expect(browser_page.locator("#pause")).to_be_hidden()
    expect(browser_page.locator("[data-purge]")).to_have_count(0)
    browser_page.goto(f"{web.url}/plugins")
    ready(browser_page)
    expect(browser_page.locator("main")).to_contain_text("Your token lacks system.config.read")
    shot(browser_page, "lacks")
