"""How a run is shown while and after it runs: the live ipywidgets card, or a static view.

Every view has the same four steps, called by the magic on the kernel's main thread:
``show()`` before the run, ``progress(fuel_used)`` every 0.1 s while the guest runs,
``finish(execution)`` after it, or ``discard()`` when nothing was run (the source did not
compile) and ``abandon(exc)`` when the cell was interrupted outside the guest (or failed).

The card is two outputs: the widget, then the static HTML and text of `html` (the
*fallback*, class ``wasm-sandbox-fallback``), so a saved notebook shows the run without a
kernel or scripts (nbconvert, GitHub, nbval). One output holding both would not do: nbconvert
renders the widget view whenever the notebook carries the widget's state (nbclient saves it),
and that view needs a widget loader from a CDN. The labextension's CSS hides a fallback that
follows a live card (``wasm-sandbox-card``), so JupyterLab shows the run once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from html import escape
from typing import TYPE_CHECKING, Any, NamedTuple

from IPython.display import clear_output, display

from . import html

if TYPE_CHECKING:
    from ..execution import Execution
    from ..limits import Limits
    from ..sandbox import Sandbox

_log = logging.getLogger(__name__)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_BAR_STYLES = {
    "ok": "success",
    "out_of_fuel": "danger",
    "error": "danger",
    "trap": "danger",
    "crashed": "danger",
    "compile_limit": "danger",
}
CARD_CLASS, FUEL_CLASS = "wasm-sandbox-card", "wasm-sandbox-fuel"
FALLBACK_CLASS = "wasm-sandbox-fallback"
RECEIPT_LINE = (
    "verifiable receipt inside: wasm-sandbox verify-notebook NB.ipynb --log-key VKEY"
    " (VKEY: the log's verifier key, from its owner)"
)


class Quiet:
    """Shows nothing (``--quiet``); the base of the other views."""

    def __init__(self, sandbox: Sandbox, limits: Limits, title: str = "") -> None:
        self.sandbox, self.limits, self.title = sandbox, limits, title

    def show(self) -> None:
        pass

    def progress(self, fuel_used: int) -> None:
        pass

    def status(self, note: str) -> None:
        """A slow step before the guest starts (the first C compile), as a line."""
        print(f"wasm-sandbox: {note}", flush=True)

    def finish(self, execution: Execution) -> None:
        pass

    def discard(self) -> None:
        pass

    def abandon(self, exc: BaseException) -> None:
        pass

    def blobs(self, execution: Execution) -> dict[str, bytes]:
        """The run's ciphertexts, for the payload previews."""
        return dict(self.sandbox.ledger.get(execution.id).blobs)

    def static(self, execution: Execution) -> tuple[dict[str, str], dict[str, Any]]:
        """The static bundle, saying how to check the receipt its metadata carries."""
        from .. import receipts

        bundle = html.mimebundle(execution, self.blobs(execution), self.title)
        meta = {receipts.METADATA_KEY: receipts.for_execution(execution, self.sandbox.ledger)}
        bundle["text/html"] += f"<div><small>{escape(RECEIPT_LINE)}</small></div>"
        bundle["text/plain"] += f"\n{RECEIPT_LINE}"
        return bundle, meta


class Static(Quiet):
    """The static HTML and text only, once the run is over (``display = "text"``)."""

    def finish(self, execution: Execution) -> None:
        bundle, meta = self.static(execution)
        display(bundle, raw=True, metadata=meta)


class Card(Quiet):
    """The live card: status badge, output, a fuel gauge that moves while the guest runs
    (one row: the bar and its figure), memory, duration, the sealed payload, the commitments,
    the log position, and Verify and Decrypt buttons; then the static fallback. ``echo`` also
    prints the plain-text view (``display = "both"``).

    Nine widgets per card; layouts and styles are shared by every card, because a kernel
    keeps each widget until it is closed."""

    def __init__(self, sandbox: Sandbox, limits: Limits, title: str = "", echo: bool = False):
        super().__init__(sandbox, limits, title)
        import ipywidgets as w

        shared = _shared(w)
        self.echo, self.w = echo, w
        self.execution: Execution | None = None
        self.top = w.HTML(html.header(None, title, "starting…"), **shared.html)
        self.gauge = w.IntProgress(
            max=max(limits.fuel, 1), description="fuel", bar_style="info", **shared.progress
        )
        self.fuel = w.HTML(self._fuel_text(0), **shared.html)
        self.facts = w.HTML(**shared.html)
        self.verify = _button(w, shared, "Verify", "check", self._on_verify)
        self.buttons = w.HBox([self.verify], layout=shared.layout)
        self.detail = w.HTML(**shared.html)
        self.fuel_row = w.HBox([self.gauge, self.fuel], layout=shared.layout)
        parts = [self.top, self.fuel_row, self.facts, self.buttons, self.detail]
        self.box = w.VBox(parts, layout=shared.card)
        self.box.add_class(CARD_CLASS)
        self.fuel.add_class(FUEL_CLASS)
        self.handle: Any = None

    def show(self) -> None:
        bundle = self._bundle({"text/plain": "wasm-sandbox: running…"})
        self.handle = display(bundle, raw=True, display_id=True)

    def status(self, note: str) -> None:
        """A slow step before the guest starts, shown in the card's badge."""
        try:
            self.top.value = html.header(None, self.title, note)
        except Exception:  # the note is a courtesy: never fail the run over it
            _log.debug("status update failed", exc_info=True)

    def progress(self, fuel_used: int) -> None:
        """Move the gauge; never raises (an exception here would abandon a running guest)."""
        try:
            self.top.value = html.header(None, self.title)  # sent once: only changes are sent
            if fuel_used != self.gauge.value:
                self.gauge.value = fuel_used
                self.fuel.value = self._fuel_text(fuel_used)
        except Exception:  # a closed comm, a display hook failing: keep the guest running
            _log.debug("fuel gauge update failed", exc_info=True)

    def finish(self, execution: Execution) -> None:
        o, blobs = execution.outcome, self.blobs(execution)
        self.execution = execution
        self.top.value = html.header(o, self.title) + html.io_html(o)
        self.gauge.max, self.gauge.value = max(o.fuel_limit, 1), o.fuel_used
        self.gauge.bar_style = _BAR_STYLES.get(o.status, "warning")
        self.fuel.value = escape(html.fuel_text(o.fuel_used, o.fuel_limit, o.fuel_lower_bound))
        self.facts.value = html.facts_table(html.run_facts(execution, blobs))
        self.verify.disabled = False
        if _can_decrypt(self.sandbox, execution):
            shared = _shared(self.w)
            decrypt = _button(self.w, shared, "Decrypt", "unlock", self._on_decrypt, False)
            self.buttons.children = (self.verify, decrypt)
        self.handle.update(self._bundle({"text/plain": ""}), raw=True)  # the fallback has it
        static, meta = self.static(execution)
        static["text/html"] = f'<div class="{FALLBACK_CLASS}">{static["text/html"]}</div>'
        display(static, raw=True, metadata=meta)
        if self.echo:
            print(static["text/plain"])

    def discard(self) -> None:
        rows = (self.buttons, self.fuel_row)
        for widget in (*(w for row in rows for w in row.children), *self.box.children, self.box):
            widget.close()
        clear_output()

    def abandon(self, exc: BaseException) -> None:
        if isinstance(exc, KeyboardInterrupt):
            status, note = "interrupted", "before or after the guest ran"
        else:
            status, note = "error", f"{type(exc).__name__}: {exc}"
        self.top.value = f"{html.badge(status, status)} {escape(note)}"
        text = f"wasm-sandbox: {status}: {note}"
        self.handle.update(self._bundle({"text/plain": text}), raw=True)

    def _fuel_text(self, used: int) -> str:
        return escape(html.fuel_text(used, self.limits.fuel))

    def _bundle(self, static: dict[str, str]) -> dict[str, Any]:
        return {**static, WIDGET_VIEW: self.box._repr_mimebundle_()[WIDGET_VIEW]}

    def _on_verify(self, _button: Any) -> None:
        execution = self.execution
        assert execution is not None
        self._detail(lambda: html.verification(self.sandbox.verify(execution.id)))

    def _on_decrypt(self, _button: Any) -> None:
        execution = self.execution
        assert execution is not None
        self._detail(lambda: html.opened(self.sandbox.decrypt(execution.id)))

    def _detail(self, render: Callable[[], dict[str, str]]) -> None:
        from ..errors import SandboxError

        try:
            self.detail.value = render()["text/html"]
        except SandboxError as exc:
            self.detail.value = f"{html.badge('error', 'failed')} {escape(str(exc))}"


class _Shared(NamedTuple):
    """Layout and style models shared by every card (they are never changed)."""

    layout: Any
    card: Any
    html: dict[str, Any]
    progress: dict[str, Any]
    button: dict[str, Any]

    def open(self) -> bool:
        """False once any of the models was closed (``Widget.close_all()``)."""
        models = (self.layout, self.card, *self.html.values(), *self.progress.values())
        return all(m.comm is not None for m in (*models, *self.button.values()))


_SHARED: _Shared | None = None


def _shared(w: Any) -> _Shared:
    global _SHARED
    if _SHARED is None or not _SHARED.open():
        from ipywidgets.widgets.widget_int import ProgressStyle
        from ipywidgets.widgets.widget_string import HTMLStyle

        layout = w.Layout()
        _SHARED = _Shared(
            layout=layout,
            card=w.Layout(border="1px solid rgba(128,128,128,.4)", padding="4px 8px"),
            html={"layout": layout, "style": HTMLStyle()},
            progress={"layout": layout, "style": ProgressStyle()},
            button={"layout": w.Layout(width="auto"), "style": w.ButtonStyle()},
        )
    return _SHARED


def for_mode(mode: str, quiet: bool, sandbox: Sandbox, limits: Limits, title: str) -> Quiet:
    """The view for ``WasmSandbox.display`` (``card``, ``text``, ``both``) or ``--quiet``."""
    if quiet:
        return Quiet(sandbox, limits, title)
    if mode == "text":
        return Static(sandbox, limits, title)
    return Card(sandbox, limits, title, echo=mode == "both")


def _button(
    w: Any,
    shared: _Shared,
    label: str,
    icon: str,
    on_click: Callable[[Any], None],
    disabled: bool = True,
) -> Any:
    button = w.Button(description=label, icon=icon, disabled=disabled, **shared.button)
    button.on_click(on_click)
    return button


def _can_decrypt(sandbox: Sandbox, execution: Execution) -> bool:
    """Whether this home holds the private key the run was sealed to."""
    keys = sandbox.keys
    return keys.has_private_key and execution.record.get("recipient") == keys.recipient_key_id
