"""The deployments dashboard: every deployment of this kernel, live, with its controls.

One background writer refreshes the figures a couple of times per second, and only writes a
widget value when it changed: no flicker, no traffic while nothing happens. Widget state may be
set from that thread (ipykernel >= 7); output areas never are.
"""

from __future__ import annotations

import html
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from jupyter_serve._deployments._display import DeploymentListing
from jupyter_serve.widgets._prediction_mix import prediction_mix_svg
from jupyter_serve.widgets._recent_requests import RecentRequests
from jupyter_serve.widgets._traffic_chart import TrafficHistory, traffic_chart_svg
from jupyter_serve.widgets._tryit import TryItPanel

if TYPE_CHECKING:
    from jupyter_serve._deployments import Deployment

REFRESH_SECONDS = 0.5
# Reading the captured traffic builds a DataFrame: at most this often, and only after new requests.
CAPTURE_REFRESH_SECONDS = 2.0
CAPTURE_SETTLE_SECONDS = 0.5
NO_VALUE = "-"
ERROR_STYLE = "color:var(--jp-error-color1, #d32f2f)"
SUCCESS_STYLE = "color:var(--jp-success-color1, #388e3c)"
IN_MEMORY_PREFIX = "in-memory:"


def _uptime(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _latency(metrics: dict[str, Any], key: str) -> str:
    value = (metrics.get("latency_ms") or {}).get(key)
    return f"{value:.1f} ms" if isinstance(value, (int, float)) else NO_VALUE


def swap_choices(model_uri: str) -> list[tuple[str, str]]:
    """(label, URI) pairs a registry deployment can swap to: its versions, stages and aliases."""
    from jupyter_serve.registry import default_registry
    from jupyter_serve.uris import AliasRef, LatestVersionRef, StageRef, VersionRef, parse_model_uri

    try:
        reference = parse_model_uri(model_uri)
    except Exception:
        return []
    if not isinstance(reference, (VersionRef, LatestVersionRef, StageRef, AliasRef)):
        return []
    name = reference.name
    try:
        versions = default_registry().list_versions(name)
    except Exception:
        return []
    choices: list[tuple[str, str]] = []
    for version in sorted(versions, key=lambda v: -v.version):
        aliases = "".join(f" @{alias}" for alias in version.aliases)
        label = f"version {version.version} ({version.stage.value}){aliases}"
        choices.append((label, f"models:/{name}/{version.version}"))
    for alias in sorted({a for v in versions for a in v.aliases}):
        choices.append((f"alias @{alias}", f"models:/{name}@{alias}"))
    stages = sorted({v.stage.value for v in versions if v.stage.value != "None"})
    choices += [(f"stage {stage}", f"models:/{name}/{stage}") for stage in stages]
    choices.append(("latest", f"models:/{name}/latest"))
    return choices


class DeploymentCard(widgets.VBox):  # type: ignore[misc]
    """One deployment: its figures, charts and the stop / restart / swap / try controls."""

    def __init__(self, deployment: Deployment, on_replaced: Callable[[Deployment], None]) -> None:
        self.deployment = deployment
        self._on_replaced = on_replaced
        self.history = TrafficHistory()
        self.summary = widgets.HTML()
        self.charts = widgets.HTML()
        self.mix = widgets.HTML()
        self.recent = RecentRequests(deployment)
        self.capture_note = widgets.HTML()
        self._capture_count = -1
        self._capture_changed_at = 0.0
        self._capture_read_at = -math.inf
        self.feedback = widgets.HTML()
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger")
        self.restart_button = widgets.Button(description="Restart", icon="refresh")
        self.swap_choice = widgets.Dropdown(
            description="Swap to", layout=widgets.Layout(width="330px")
        )
        self.swap_button = widgets.Button(description="Swap", icon="exchange")
        self.try_button = widgets.Button(description="Try it", icon="paper-plane")
        self.try_area = widgets.VBox()
        self.stop_button.on_click(lambda _b: self.stop())
        self.restart_button.on_click(lambda _b: self.restart())
        self.swap_button.on_click(lambda _b: self.swap(self.swap_choice.value))
        self.try_button.on_click(lambda _b: self.toggle_try_it())
        controls = [self.stop_button, self.restart_button, self.try_button]
        self.refresh_swap_choices()
        swap_row = [self.swap_choice, self.swap_button] if self.swap_choice.options else []
        super().__init__(
            [
                self.summary,
                widgets.HBox([self.charts, self.mix]),
                self.capture_note,
                self.recent,
                widgets.HBox(controls + swap_row),
                self.feedback,
                self.try_area,
            ],
            layout=widgets.Layout(
                border="1px solid var(--jp-border-color2, #ddd)", padding="6px", margin="4px 0"
            ),
        )
        self.refresh()

    def refresh_swap_choices(self) -> None:
        choices = swap_choices(self.deployment.model_uri)
        self.swap_choice.options = choices
        if choices:
            self.swap_choice.value = choices[0][1]

    def refresh(self) -> None:
        """Bring the figures and charts up to date; writes only what changed."""
        d = self.deployment
        metrics = d.metrics
        now = time.time()
        if d.status == "running":
            self.history.add(metrics, now)
        version = f" v{d.version}" if d.version else ""
        proxy = (
            f" · <a href='{html.escape(d.proxy_url)}' target='_blank'>proxied</a>"
            if d.proxy_url
            else ""
        )
        uptime = _uptime(time.time() - d.started_at) if d.status == "running" else NO_VALUE
        summary = (
            f"<b>{html.escape(d.name)}</b> <span>[{html.escape(d.status)}]</span> "
            f"{html.escape(d.model_uri)}{html.escape(version)}<br>"
            f"<a href='{html.escape(d.url)}/ping' target='_blank'>{html.escape(d.url)}</a>{proxy}"
            f" · up {uptime} · {metrics.get('requests', 0)} requests"
            f" · {metrics.get('errors', 0)} errors"
            f" · p50 {_latency(metrics, 'p50')} · p99 {_latency(metrics, 'p99')}"
        )
        charts = traffic_chart_svg(list(self.history.samples))
        if self.summary.value != summary:
            self.summary.value = summary
        if self.charts.value != charts:
            self.charts.value = charts
        self._refresh_captured(int(metrics.get("requests") or 0), now)
        running = d.status == "running"
        self.stop_button.disabled = not running
        self.swap_button.disabled = not running or not self.swap_choice.options

    def _refresh_captured(self, requests: int, now: float) -> None:
        """Redraw the prediction mix and the last requests after new traffic, at most every
        `CAPTURE_REFRESH_SECONDS` (reading the capture builds a DataFrame, on this thread),
        and once more after the count settles, so the last requests are never left out."""
        if requests != self._capture_count:
            self._capture_count, self._capture_changed_at = requests, now
        settled_read = self._capture_read_at > self._capture_changed_at + CAPTURE_SETTLE_SECONDS
        if settled_read or now - self._capture_read_at < CAPTURE_REFRESH_SECONDS:
            return
        self._capture_read_at = now
        note = ""
        try:
            frame = self.deployment.requests
        except Exception as error:  # shown to the user; the chart and figures keep updating
            frame, note = None, f"<i>Captured traffic unavailable: {html.escape(str(error))}</i>"
        if frame is not None and len(frame) > 0:
            self.recent.show(frame)
            self.recent.layout.display = None
        else:
            self.recent.layout.display = "none"
            note = note or "<i>No captured requests yet.</i>"
        mix = prediction_mix_svg(frame)
        if self.mix.value != mix:
            self.mix.value = mix
        if self.capture_note.value != note:
            self.capture_note.value = note

    def _act(self, doing: str, action: Callable[[], str]) -> None:
        self.feedback.value = f"<i>{html.escape(doing)}…</i>"
        try:
            done = action()
        except Exception as error:  # shown to the user; the dashboard keeps working
            self.feedback.value = f"<span style='{ERROR_STYLE}'>{html.escape(str(error))}</span>"
        else:
            self.feedback.value = f"<span style='{SUCCESS_STYLE}'>{html.escape(done)}</span>"
        self.refresh()

    def stop(self) -> None:
        """Stop the deployment (as the Stop button does)."""

        def action() -> str:
            self.deployment.stop()
            return f"Stopped; port {self.deployment.port} is free."

        self._act(f"Stopping {self.deployment.name}", action)

    def restart(self) -> None:
        """Serve the same model again under the same name and port (as the Restart button does)."""

        def action() -> str:
            import jupyter_serve

            d = self.deployment
            if d.status == "running":
                d.stop()
            source: Any = d.model if d.model_uri.startswith(IN_MEMORY_PREFIX) else d.model_uri
            fresh = jupyter_serve.serve(source, name=d.name, **{**d.options, "port": d.port})
            self._replace(fresh)
            return f"Restarted at {fresh.url}."

        self._act(f"Restarting {self.deployment.name}", action)

    def swap(self, model_uri: str) -> None:
        """Swap the running deployment to ``model_uri`` in place (as the Swap button does)."""

        def action() -> str:
            import jupyter_serve

            d = self.deployment
            if d.status != "running":
                raise RuntimeError(f"'{d.name}' is {d.status}: restart it before swapping.")
            fresh = jupyter_serve.serve(
                model_uri, name=d.name, port=d.port, host=d.host, require_secret=d.require_secret
            )
            self._replace(fresh)
            return f"Now serving {fresh.model_uri} (version {fresh.version}) on the same port."

        self._act(f"Swapping to {model_uri}", action)

    def _replace(self, fresh: Deployment) -> None:
        self.deployment = fresh
        self._on_replaced(fresh)
        self.refresh_swap_choices()
        if self.try_area.children:
            self.try_area.children = (TryItPanel(fresh),)
        self.recent.deployment = fresh
        self._capture_read_at = -math.inf

    def toggle_try_it(self) -> None:
        self.try_area.children = () if self.try_area.children else (TryItPanel(self.deployment),)

    @property
    def try_it(self) -> TryItPanel | None:
        children = self.try_area.children
        return children[0] if children else None


class _LiveUpdates:
    """The one writer thread refreshing every open dashboard, a few times per second at most.

    It runs only while a dashboard is open and a deployment is running, however many
    dashboards a user opens: a deployment starting wakes it, the last one stopping ends it
    (after a final refresh), so an idle kernel keeps no thread of ours.
    """

    def __init__(self, refresh_seconds: float) -> None:
        self._refresh_seconds = refresh_seconds
        self._dashboards: list[Dashboard] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._listening = False

    def add(self, board: Dashboard) -> None:
        with self._lock:
            self._dashboards.append(board)
            if not self._listening:
                from jupyter_serve._deployments import add_change_listener

                add_change_listener(self.follow_deployments)
                self._listening = True
        self.follow_deployments()

    def remove(self, board: Dashboard) -> None:
        with self._lock:
            if board in self._dashboards:
                self._dashboards.remove(board)
        self.follow_deployments()

    def follow_deployments(self) -> None:
        """Run the writer exactly while a dashboard is open and a deployment runs. Thread-safe."""
        import jupyter_serve

        with self._lock:
            wanted = bool(self._dashboards) and bool(jupyter_serve.deployments())
            running = self._thread
            if wanted and running is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="jupyter-serve-dashboard", daemon=True
                )
                self._thread.start()
                return
            if wanted or running is None:
                return
            self._stop.set()
            self._thread = None
        if running is not threading.current_thread():
            running.join(timeout=5)

    def _refresh_all(self) -> None:
        with self._lock:
            boards = list(self._dashboards)
        for board in boards:
            try:
                board.sync()
            except Exception:  # a glitch in one refresh must not end live updates
                continue

    def _run(self) -> None:
        while not self._stop.wait(self._refresh_seconds):
            self._refresh_all()
        self._refresh_all()  # show the last deployment as stopped


_LIVE_UPDATES = _LiveUpdates(REFRESH_SECONDS)


class Dashboard(widgets.VBox):  # type: ignore[misc]
    """Every deployment of this kernel, kept live by the single dashboard writer thread.

    Deployments started after the dashboard appear on their own. ``close()`` (or
    ``stop_updates()``) ends its live updates.
    """

    def __init__(self) -> None:
        self.cards: dict[str, DeploymentCard] = {}
        self.empty = widgets.HTML(
            "No deployments in this kernel yet. Start one with <code>%serve</code>."
        )
        super().__init__([self.empty])
        self._lock = threading.Lock()
        self.sync()
        _LIVE_UPDATES.add(self)

    def sync(self) -> None:
        """Add cards for new deployments and refresh every card's figures. Thread-safe."""
        import jupyter_serve

        with self._lock:
            added = False
            for deployment in jupyter_serve.deployments():
                card = self.cards.get(deployment.name)
                if card is None:
                    self.cards[deployment.name] = DeploymentCard(deployment, self._adopt)
                    added = True
                elif card.deployment is not deployment and card.deployment.status != "running":
                    card.deployment = deployment  # restarted or swapped elsewhere (%serve)
            if added:
                self.children = tuple(self.cards.values())
            for card in self.cards.values():
                card.refresh()

    def _adopt(self, deployment: Deployment) -> None:
        self.cards[deployment.name].deployment = deployment

    def stop_updates(self) -> None:
        """End live updates; the widget stays as it is. Thread-safe."""
        _LIVE_UPDATES.remove(self)

    def close(self) -> None:
        self.stop_updates()
        super().close()

    def _listing(self) -> DeploymentListing:
        return DeploymentListing([card.deployment for card in self.cards.values()])

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # ipywidgets cuts text/plain at 110 characters; consoles, nbval and static renderers
        # (nbconvert, GitHub) deserve the whole table.
        bundle: dict[str, Any] = super()._repr_mimebundle_(**kwargs)
        listing = self._listing()
        bundle["text/plain"] = repr(listing)
        bundle["text/html"] = listing._repr_html_()
        return bundle

    def __repr__(self) -> str:
        return repr(self._listing())


def dashboard() -> Dashboard:
    """A live dashboard of this kernel's deployments, with stop/restart/swap and a try-it panel."""
    return Dashboard()
