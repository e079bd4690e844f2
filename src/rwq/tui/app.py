"""``rwq tui``: the queue dashboard and plugin panel host.

The app never blocks its UI thread on Redis or on a plugin: queue figures are read by a worker
thread once a second, plugin panels are rendered by :class:`rwq.tui.panels.PanelRenderer`,
and actions run in worker threads that report back with a toast.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.notifications import SeverityLevel
from textual.widgets import DataTable, Footer, Header, TabbedContent, TabPane, Tabs

from rwq.config import Settings
from rwq.errors import RwqError
from rwq.host.api import PluginHost
from rwq.plugins.engine.manager import PendingApproval
from rwq.printable import printable
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.tui.approval import ApprovalScreen, Decision, apply
from rwq.tui.bench_form import BenchScreen, QueueBench
from rwq.tui.dead_letters import DeadLettersView
from rwq.tui.dev import SIDE_BY_SIDE, DevPane, DevSession
from rwq.tui.dialogs import HELP, ConfirmScreen, TextScreen, job_text
from rwq.tui.panels import PanelsView, PluginPanel
from rwq.tui.plugins_view import PluginsView
from rwq.tui.queues import QueuesView
from rwq.tui.source import ACTION_ERRORS, DashboardSource, History, Sample
from rwq.tui.workers import WorkersView

TABS = ("queues", "dead", "workers", "panels", "plugins")
NOTIFY_SEVERITY = {"info": "information", "warning": "warning", "error": "error"}

CSS = """
.dialog { width: 70; height: auto; max-height: 90%; padding: 1 2; border: thick $accent;
          background: $surface; }
.dialog.wide { width: 100; }
ModalScreen { align: center middle; }
.buttons { height: auto; margin-top: 1; }
.buttons Button { margin-right: 2; }
.row { height: auto; }
#queue-table { height: 1fr; }
#charts { height: 14; }
#dead-filters { height: auto; }
#dead-filters Input { width: 1fr; }
#dead-table { height: 1fr; }
#plugins-table { height: 1fr; }
#plugins-detail { height: auto; padding: 0 1; }
#approval-permissions { height: auto; max-height: 16; }
#approval-known { height: auto; max-height: 8; }
#bench-jobs { width: 20; }
#dev-split { layout: horizontal; height: 1fr; }
#dev-split PanelsView { width: 3fr; }
#dev-split DevPane { width: 2fr; }
#dev-split.-narrow { layout: vertical; }
#dev-split.-narrow PanelsView { width: 1fr; height: 3fr; }
#dev-split.-narrow DevPane { width: 1fr; height: 2fr; }
"""


class RwqApp(App[None]):
    """The dashboard. ``host`` is None when plugins are off."""

    TITLE = "rwq"
    CSS = CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("g", "panels_layout", "Grid/tabs"),
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("t", "next_theme", "Theme", show=False),
        Binding("escape", "leave", "Leave panel", show=False),
        *(Binding(str(n), f"tab('{tab}')", tab, show=False) for n, tab in enumerate(TABS, 1)),
    ]

    def __init__(
        self,
        settings: Settings,
        client: Any,
        *,
        host: PluginHost | None = None,
        address: str = "",
        poll_interval: float = 1.0,
        quit_after: float | None = None,
        queue_bench: QueueBench | None = None,
        dev: DevSession | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.read_only = settings.read_only
        self.client = client
        self.admin = Admin(Broker(client, settings))
        self.source = DashboardSource(self.admin)
        self.history = History()
        self.host = host
        self.queue_bench = queue_bench
        """``rwq bench queue``, run from the bench form (none: the form is not offered)."""
        self.address = address
        self.poll_interval = poll_interval
        self.quit_after = quit_after
        self.sample: Sample | None = None
        self.lost_workers: set[str] = set()
        """Workers whose heartbeat expired, as of the last reading (each said once)."""
        self.postponed: set[tuple[str, str, frozenset[str]]] = set()
        """Approval requests answered with Later (asked again when the request changes)."""
        self.asking = False
        self.deciding: set[str] = set()
        """Plugins whose decision is being carried out (not asked about again meanwhile)."""
        self.dev = dev if host is not None else None
        """``rwq plugin dev``: the plugin in front, with its dev pane beside its panel."""
        self._dev_in_front = False

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="queues", id="tabs"):
            with TabPane("Queues [1]", id="queues"):
                yield QueuesView(self.history, id="queues-view")
            with TabPane("Dead letters [2]", id="dead"):
                yield DeadLettersView(self.admin, id="dead-view")
            with TabPane("Workers [3]", id="workers"):
                yield WorkersView(id="workers-view")
            with TabPane("Panels [4]", id="panels"):
                if self.dev is not None and self.host is not None:
                    with Container(id="dev-split"):
                        yield PanelsView(self.host, id="panels-view")
                        yield DevPane(self.host, self.dev, id="dev-pane")
                else:
                    yield PanelsView(self.host, id="panels-view")
            with TabPane("Plugins [5]", id="plugins"):
                yield PluginsView(self.host, id="plugins-view")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"{self.address} · connecting"
        if self.read_only:
            self.title = "rwq (read-only)"
        if self.host is not None:
            self.host.toast = self._toast_from_thread
        self.query_one("#queue-table", DataTable).focus()
        if self.dev is not None:
            self.action_tab("panels")
            self._front_dev()
        self.poll()
        self.set_interval(self.poll_interval, self.poll)
        if self.quit_after is not None:
            self.set_timer(self.quit_after, self.exit)

    # -- the periodic read -------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="poll")
    def poll(self) -> None:
        sample = self.source.read()
        self.call_from_thread(self.show_sample, sample)

    def show_sample(self, sample: Sample) -> None:
        if not self.is_running or not self.query(QueuesView):
            return  # a reading that arrived while the app shuts down
        self.sample = sample
        self.history.add(sample)
        self.sub_title = f"{self.address} · {sample.health}"
        self.query_one(QueuesView).show(sample)
        self.query_one(WorkersView).show(sample)
        self._say_lost_workers(sample)
        active = self.query_one(TabbedContent).active
        if active == "dead":
            self.query_one(DeadLettersView).action_reload()  # new dead letters, their ages
        if self.host is not None:
            self.query_one(PanelsView).sync()
            self._front_dev()
            self._keep_dev_keys()
            if active == "plugins":  # else when shown: a hidden label's change costs a layout
                self.query_one(PluginsView).refresh_view()
            self.ask_approvals()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """A toast whose message and title are shown as written: every notification of this
        app carries data (a plugin's message, a queue's name, an error), never markup."""
        super().notify(
            printable(message, multiline=True),
            title=printable(title),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    def _say_lost_workers(self, sample: Sample) -> None:
        """A notice for each worker newly lost: its heartbeat expired."""
        if not sample.health.ok:
            return  # nothing is known of the workers while Redis is away
        lost = {w.id for w in sample.workers if not w.alive}
        for worker_id in sorted(lost - self.lost_workers):
            self.notify(
                f"worker {worker_id} lost: its heartbeat expired (it died, or cannot reach "
                "Redis); its jobs go back to their queues",
                title="workers",
                severity="error",
            )
        self.lost_workers = lost

    # -- plugins -----------------------------------------------------------------------------

    def _front_dev(self) -> None:
        """Once its panel exists: the dev plugin's panel alone in the tabs layout."""
        if self.dev is None or self._dev_in_front:
            return
        view = self.query_one(PanelsView)
        tabs, tab = view.query_one("#panel-tabs", Tabs), f"tab-{self.dev.plugin}"
        if self.dev.plugin not in view.panels or not tabs.query(f"#{tab}"):
            return  # its panel or its tab is not there yet: at the next reading
        self._dev_in_front = True
        # Its tab first: the tabs layout then shows its panel at once. Hidden even briefly, the
        # panel would lose the focus given below when the hiding reached it.
        tabs.active = tab
        if not view.tabs_layout:
            view.action_layout()
        view.panels[self.dev.plugin].focus()  # its keys go to the plugin: its buttons work

    def _keep_dev_keys(self) -> None:
        """The dev plugin's panel takes the keys back when nothing has them (a panel hidden for
        a moment while the layout changes loses the focus to nothing). Esc gives them to the
        tabs, a click to what it clicks: those stay."""
        if self.dev is None or not self._dev_in_front or self.focused is not None:
            return
        if len(self.screen_stack) > 1 or self.query_one(TabbedContent).active != "panels":
            return
        panel = self.query_one(PanelsView).panels.get(self.dev.plugin)
        if panel is not None and panel.display:
            panel.focus()

    def on_resize(self, event: events.Resize) -> None:
        if self.dev is not None:
            narrow = event.size.width < SIDE_BY_SIDE
            self.query_one("#dev-split").set_class(narrow, "-narrow")

    def _toast_from_thread(self, plugin: str, message: str, level: str) -> None:
        severity = NOTIFY_SEVERITY.get(level, "information")
        self.call_from_thread(
            self.notify,
            message,
            title=plugin,
            severity=severity,  # type: ignore[arg-type]
        )

    def ask_approvals(self, *, again: bool = False) -> None:
        """Show the approval dialog for the first request not answered with Later; close a
        dialog whose request was decided elsewhere (another terminal, a policy)."""
        if self.host is None:
            return
        waiting = self.host.pending_approvals()
        if self.asking:
            screen = self.screen
            if isinstance(screen, ApprovalScreen) and not any(
                p.plugin == screen.pending.plugin and p.version == screen.pending.version
                for p in waiting
            ):
                screen.dismiss(None)
            return
        for pending in waiting:
            key = (pending.plugin, pending.version, pending.review.pending)
            if pending.plugin in self.deciding or (key in self.postponed and not again):
                continue
            self.asking = True
            self.push_screen(ApprovalScreen(pending), lambda d, p=pending: self._decided(p, d))
            return

    def _decided(self, pending: PendingApproval, decision: Decision | None) -> None:
        self.asking = False
        if decision is None or decision.choice == "later":
            self.postponed.add((pending.plugin, pending.version, pending.review.pending))
            self.ask_approvals()
            return
        self.deciding.add(pending.plugin)
        self.decide(pending, decision)

    @work(thread=True, group="approval")
    def decide(self, pending: PendingApproval, decision: Decision) -> None:
        if self.host is None:
            return
        try:
            line, severity = apply(self.host, pending, decision), "information"
        except RwqError as exc:
            line, severity = f"{pending.plugin}: {exc}", "error"
        self.call_from_thread(self._carried_out, pending.plugin, line, severity)

    def _carried_out(self, plugin: str, line: str, severity: str) -> None:
        self.deciding.discard(plugin)
        self.notify(line, severity=severity)  # type: ignore[arg-type]
        self.ask_approvals()

    def on_plugins_view_show_approvals(self, _: PluginsView.ShowApprovals) -> None:
        if self.host is not None and not self.host.pending_approvals():
            self.notify("no plugin awaits approval")
            return
        self.ask_approvals(again=True)

    # -- queue actions -----------------------------------------------------------------------

    def on_queues_view_peek(self, message: QueuesView.Peek) -> None:
        self.peek(message.queue)

    @work(thread=True, group="peek")
    def peek(self, queue: str) -> None:
        try:
            jobs = self.admin.peek(queue, 20)
        except ACTION_ERRORS as exc:
            self.call_from_thread(self.notify, str(exc), severity="error")
            return
        if not jobs:
            self.call_from_thread(self.notify, f"{queue}: no pending job")
            return
        from rich.text import Text

        body = Text()
        for job in jobs:
            body.append(f"── {job.id} ", style="bold")
            body.append_text(job_text(job))
            body.append("\n")
        self.call_from_thread(self.push_screen, TextScreen(f"{queue}: next {len(jobs)}", body))

    def on_queues_view_toggle_pause(self, message: QueuesView.TogglePause) -> None:
        if self.read_only:
            self.notify("read-only mode: pause and resume are off", severity="warning")
            return
        verb = "Resume" if message.paused else "Pause"

        def answered(yes: bool | None) -> None:
            if yes:
                self.toggle_pause(message.queue, message.paused)

        self.push_screen(ConfirmScreen(f"{verb} queue {message.queue}?", action=verb), answered)

    @work(thread=True, group="pause")
    def toggle_pause(self, queue: str, paused: bool) -> None:
        try:
            if paused:
                changed = self.admin.resume(queue)
                line = f"{queue} resumed" if changed else f"{queue} was not paused"
            else:
                changed = self.admin.pause(queue)
                line = f"{queue} paused" if changed else f"{queue} was already paused"
        except ACTION_ERRORS as exc:
            self.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.call_from_thread(self.notify, line)
        self.poll()

    def on_queues_view_bench(self, _: QueuesView.Bench) -> None:
        if self.read_only and self.settings.redis_url:
            self.notify("read-only mode: the bench writes to the server", severity="warning")
            return
        if self.queue_bench is None:
            self.notify("the queue bench is not available here", severity="warning")
            return
        self.push_screen(BenchScreen(self.settings, self.queue_bench))

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()  # g is offered on the panels tab only
        if event.pane.id == "dead":
            self.query_one(DeadLettersView).action_reload()
        elif event.pane.id == "plugins" and self.host is not None:
            self.query_one(PluginsView).refresh_view()

    # -- keys --------------------------------------------------------------------------------

    def action_tab(self, tab: str) -> None:
        """Show a view and focus its table. Panels are entered with tab: a focused panel
        takes every key, so the host's keys must work until the user chooses one."""
        self.query_one(TabbedContent).active = tab
        pane = self.query_one(f"#{tab}", TabPane)
        targets = [w for w in (*pane.query(DataTable), *pane.query("#panel-grid")) if w.display]
        if targets:
            targets[0].focus()
        else:
            self.set_focus(None)

    def action_help(self) -> None:
        self.push_screen(TextScreen("keys", HELP))

    def action_next_theme(self) -> None:
        themes = sorted(self.available_themes)
        index = themes.index(self.theme) if self.theme in themes else -1
        self.theme = themes[(index + 1) % len(themes)]
        self.notify(f"theme: {self.theme}", timeout=1.5)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "quit" and isinstance(self.focused, PluginPanel):
            return None  # the focused panel's plugin gets q: dimmed until escape
        if action == "panels_layout":
            if self.query_one(TabbedContent).active != "panels":
                return False  # not in the footer elsewhere
            # A focused panel's plugin gets the keys, g included: shown dimmed until escape.
            return None if isinstance(self.focused, PluginPanel) else True
        return True

    def on_descendant_focus(self, _: object) -> None:
        if self.screen_stack:  # a focus event may arrive while the app closes its screens
            self.refresh_bindings()  # g dims while a panel has the keys

    def action_panels_layout(self) -> None:
        self.query_one(PanelsView).action_layout()

    def action_leave(self) -> None:
        self.query_one(TabbedContent).query_one("Tabs").focus()

    async def action_quit(self) -> None:
        self.exit()
