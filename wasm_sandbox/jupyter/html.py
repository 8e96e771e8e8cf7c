"""Static views of runs, verifications and the log: HTML and plain text with the same facts.

Used where no widget manager runs (nbconvert, GitHub, ``jupyter execute``, nbval) through
the printer ``%load_ext wasm_sandbox`` registers for an ``Execution``, and by the live card,
whose widgets show the same fragments.
Imports neither IPython nor ipywidgets.

>>> bundle = mimebundle(execution)                                      # doctest: +SKIP
>>> sorted(bundle)
['text/html', 'text/plain']
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any, NamedTuple

from ..limits import WASM_PAGE

if TYPE_CHECKING:
    from ..execution import Execution, Opened, Verification
    from ..outcome import Outcome

RUNNING = "running"
_COLORS = {
    "ok": "#1a7f37",
    "exit": "#9a6700",
    "trap": "#cf222e",
    "timeout": "#bc4c00",
    "out_of_fuel": "#8250df",
    "memory_limit": "#8250df",
    "quota": "#8250df",
    "interrupted": "#57606a",
    "error": "#cf222e",
    "crashed": "#cf222e",
    "compile_limit": "#bf8700",
    RUNNING: "#0969da",
    "verified": "#1a7f37",
    "not verified": "#cf222e",
}
_BOX = (
    "font-family:var(--jp-ui-font-family,sans-serif);font-size:13px;line-height:1.5;"
    "max-width:100%;overflow-x:auto;overflow-wrap:anywhere"
)
_PRE = (
    "margin:2px 0;padding:4px 6px;background:rgba(128,128,128,.1);white-space:pre-wrap;"
    "overflow-wrap:anywhere;max-height:24em;overflow-y:auto"
)
_CELL = "text-align:left;padding:1px 12px 1px 0;vertical-align:top"
_HEAD = _CELL + ";white-space:nowrap"
_PARTS = ("program", "input", "result")


class Fact(NamedTuple):
    """One labelled fact of a run, as plain text and as HTML."""

    label: str
    text: str
    html: str


# --- small pieces, shared with the live card -------------------------------------------------


def status_label(outcome: Outcome) -> str:
    """``ok``, ``exit code 3``, ``trap: unreachable``, ``out of fuel``, ..."""
    if outcome.status == "exit":
        return f"exit code {outcome.exit_code}"
    if outcome.status == "trap":
        return f"trap: {outcome.trap}"
    return outcome.status.replace("_", " ")


def badge(status: str, label: str) -> str:
    color = _COLORS.get(status, "#57606a")
    return (
        f'<span class="wasm-sandbox-status" data-status="{escape(status)}" '
        f'style="color:#fff;background:{color};border-radius:4px;padding:1px 8px;'
        f'font-weight:600">{escape(label)}</span>'
    )


def short_hash(value: str, chars: int = 16) -> str:
    """The full hex ``value``, shown cut with an ellipsis; full on hover; copies in full."""
    return (
        f'<code title="{escape(value)}" style="display:inline-block;max-width:{chars}ch;'
        "overflow:hidden;text-overflow:ellipsis;white-space:nowrap;vertical-align:-0.25em;"
        f'user-select:all">{escape(value)}</code>'
    )


def header(outcome: Outcome | None, title: str = "", pending: str = "running…") -> str:
    """The status badge, the message and the wasm frames of a trap; ``pending`` labels the
    badge while there is no outcome yet."""
    if outcome is None:
        parts = [badge(RUNNING, pending)]
    else:
        label = status_label(outcome)
        parts = [badge(outcome.status, label)]
        if outcome.message and outcome.message != label:  # no "interrupted interrupted"
            parts.append(f"<span>{escape(outcome.message)}</span>")
    if title:
        parts.insert(0, f"<b>{escape(title)}</b>")
    out = " ".join(parts)
    if outcome is not None and outcome.frames:
        frames = "".join(f"<li><code>{escape(f)}</code></li>" for f in frame_lines(outcome))
        out += f'<ol style="margin:2px 0 2px 1.5em;padding:0">{frames}</ol>'
    return out


def frame_lines(outcome: Outcome) -> list[str]:
    """The trap's wasm frames, innermost first, repeats folded (a deep recursion is one line)."""
    lines: list[str] = []
    for frame, group in itertools.groupby(str(f) for f in outcome.frames):
        count = len(list(group))
        lines.append(f"{frame} (×{count})" if count > 1 else frame)
    return lines


def io_html(outcome: Outcome) -> str:
    """Returned values, stdout and stderr (empty string when there are none)."""
    return "".join(
        f'<div><b>{label}</b><pre style="{_PRE}">{escape(text)}</pre></div>'
        for label, text in _io(outcome)
    )


def duration_text(ms: float) -> str:
    """A duration in the unit a person reads: ``850 µs``, ``1.2 ms``, ``340 ms``, ``3.4 s``,
    ``2 min 05 s``."""
    if ms < 1:
        return f"{ms * 1000:.0f} µs"
    if ms < 1000:
        return f"{ms:.3g} ms" if ms < 100 else f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.3g} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes} min {seconds:02d} s"


def fuel_text(used: int, limit: int, lower_bound: bool = False) -> str:
    """``1,234 / 10,000 (12.3 %)``; "at least ..." when the figure is only a lower bound."""
    return f"{'at least ' if lower_bound else ''}{used:,} / {limit:,} ({_percent(used, limit)})"


def memory_text(used: int, limit: int) -> str:
    return (
        f"{used:,} / {limit:,} bytes "
        f"({used // WASM_PAGE:,} / {limit // WASM_PAGE:,} pages of 64 KiB)"
    )


def bar(used: int, limit: int, color: str = "#0969da") -> str:
    """A static gauge (a ``<progress>`` would not survive HTML sanitizers)."""
    width = min(100.0, 100.0 * used / limit) if limit else 0.0
    return (
        '<span style="display:inline-block;width:12em;height:.7em;background:'
        'rgba(128,128,128,.25);vertical-align:middle;margin-right:6px">'
        f'<span style="display:block;height:100%;width:{width:.2f}%;background:{color}">'
        "</span></span>"
    )


def fuel_fact(outcome: Outcome) -> Fact:
    used, limit = outcome.fuel_used, outcome.fuel_limit
    text = fuel_text(used, limit, outcome.fuel_lower_bound)
    return Fact("fuel", text, bar(used, limit) + escape(text))


def run_facts(execution: Execution, blobs: Mapping[str, bytes] | None = None) -> list[Fact]:
    """Memory, duration, the sealed payload, the commitment and the log position."""
    o, rec = execution.outcome, execution.record
    return [
        Fact("memory", _memory(o), ""),
        Fact("duration", duration_text(o.duration_ms), ""),
        Fact("sealed with", str(rec.get("suite", "")), ""),
        *_policy_facts(rec),
        *([_run_key(rec["key"])] if "key" in rec else []),
        *(_part(name, rec[name], (blobs or {}).get(name)) for name in _PARTS if name in rec),
        run_commitment(execution.commitment),
        _ledger(execution.leaf_index, execution.tree_size, execution.root),
        Fact("record id", execution.id, short_hash(execution.id, 32)),
    ]


def _policy_facts(rec: Mapping[str, Any]) -> list[Fact]:
    """Who signed the program, its trust level and the decisions on its manifest; a dev
    module's card says so loudly (its manifest was granted without the operator's caps)."""
    found = []
    if "signer" in rec:
        signer = str(rec["signer"])
        found.append(Fact("signed by", signer, escape(signer.split("+")[0])))
    policy = rec.get("policy")
    if isinstance(policy, Mapping):
        level = str(policy.get("level"))
        lines = [f"{d['capability']}: {d['decision']} ({d['reason']})" for d in policy["decisions"]]
        shown = escape(level) + "".join(f"<br><small>{escape(line)}</small>" for line in lines)
        if level == "dev":
            shown = (
                '<strong style="color:#fff;background:#cf222e;padding:0 4px">DEV MODE: '
                "granted what its manifest asked, without the operator's maximums</strong>"
                f"<br>{shown}"
            )
        found.append(Fact("trust level", "; ".join([level, *lines]), shown))
    return found


RUN_COMMITMENT = "run commitment"
_LEAF_NOTE = "log leaf hash: SHA-256 of 0x00 and the canonical record"


def run_commitment(value: str) -> Fact:
    """The run's commitment: the Merkle leaf hash of its record (what the panel lists)."""
    shown = f"{short_hash(value, 24)} <small>{_LEAF_NOTE}</small>"
    return Fact(RUN_COMMITMENT, f"{value} ({_LEAF_NOTE})", shown)


def facts(execution: Execution, blobs: Mapping[str, bytes] | None = None) -> list[Fact]:
    """Every fact of a run: `fuel_fact` and `run_facts`."""
    return [fuel_fact(execution.outcome), *run_facts(execution, blobs)]


def facts_table(rows: Iterable[Fact]) -> str:
    body = "".join(
        f'<tr><th style="{_HEAD}">{escape(r.label)}</th>'
        f'<td style="{_CELL}">{r.html or escape(r.text)}</td></tr>'
        for r in rows
    )
    return f'<table style="border-collapse:collapse;margin:0">{body}</table>'


# --- whole views -----------------------------------------------------------------------------


def mimebundle(
    execution: Execution, blobs: Mapping[str, bytes] | None = None, title: str = ""
) -> dict[str, str]:
    """``{"text/html", "text/plain"}`` of a run (``blobs`` adds ciphertext previews), headed
    with ``title`` (the call, e.g. ``cell: fact(20)``)."""
    return {
        "text/html": page(execution, blobs, title),
        "text/plain": text(execution, blobs, title),
    }


def page(execution: Execution, blobs: Mapping[str, bytes] | None = None, title: str = "") -> str:
    o = execution.outcome
    head = f"wasm-sandbox · {title}" if title else "wasm-sandbox"
    return (
        f'<div class="wasm-sandbox-run" data-status="{escape(o.status)}" '
        f'data-leaf-index="{execution.leaf_index}" style="{_BOX}">'
        f"<div>{header(o, head)}</div>{io_html(o)}"
        f"{facts_table(facts(execution, blobs))}</div>"
    )


def text(execution: Execution, blobs: Mapping[str, bytes] | None = None, title: str = "") -> str:
    o, call = execution.outcome, f" · {title}" if title else ""
    note = f" ({o.message})" if o.message and o.message != status_label(o) else ""
    lines = [f"wasm-sandbox: {status_label(o)}{note}{call}"]
    lines += [f"  at {frame}" for frame in frame_lines(o)]
    for label, body in _io(o):
        lines.append(f"{label}:")
        lines += [f"  {line}" for line in body.splitlines() or [""]]
    lines += [f"{f.label:<16} {f.text}" for f in facts(execution, blobs)]
    return "\n".join(lines)


def verification(v: Verification) -> dict[str, str]:
    """The checks of `Sandbox.verify`, as a bundle."""
    verdict = "verified" if v.verified else "not verified"
    checks = {name: _check_result(result) for name, result in v.checks.items()}
    rows = [Fact(name, result, _check_html(result)) for name, result in checks.items()]
    rows += [_ledger(v.leaf_index, v.tree_size, v.root)]
    if v.replay is not None:
        rows.append(Fact("replay status", str(v.replay.get("status")), ""))
    head = f"{badge(verdict, verdict.upper())} record {short_hash(v.id, 32)}"
    return {
        "text/html": f'<div style="{_BOX}"><div>{head}</div>{facts_table(rows)}</div>',
        "text/plain": "\n".join(
            [f"{verdict.upper()} {v.id}", *(f"  {r.label:<18} {r.text}" for r in rows)]
        ),
    }


#: How the decrypted view names each kind of `Opened.shown_source`.
SOURCE_KINDS = {
    "wat": "WAT",
    "c": "C",
    "python": "Python",
    "disassembly": "wasm-tools print of the bytes",
}


def opened(o: Opened) -> dict[str, str]:
    """What `Sandbox.decrypt` recovered, as a bundle."""
    digest = hashlib.sha256(o.program).hexdigest()
    kind, source = o.shown_source()
    shown = [
        Fact("program", f"{len(o.program):,} bytes, sha256 of these bytes {digest}", ""),
        Fact(f"source ({SOURCE_KINDS.get(kind or '', kind)})", source, "") if source else None,
        Fact("input", json.dumps(o.input, indent=1, sort_keys=True), ""),
        Fact("result", json.dumps(o.result, indent=1, sort_keys=True), ""),
        Fact("commitments", "ok: every opened part matches its commitment", ""),
    ]
    rows = [r._replace(html=f'<pre style="{_PRE}">{escape(r.text)}</pre>') for r in shown if r]
    return {
        "text/html": f'<div style="{_BOX}"><b>decrypted</b>{facts_table(rows)}</div>',
        "text/plain": "\n".join(f"{r.label}: {r.text}" for r in rows),
    }


LOG_COLUMNS = ("leaf", "id", "time (UTC)", "status", "fuel used", "memory", "duration", "program")


def log(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """`Sandbox.log` rows as a table bundle, newest first."""
    table = [_log_row(r) for r in rows]
    head = "".join(f'<th style="{_CELL}">{c}</th>' for c in LOG_COLUMNS)
    body = "".join(
        "<tr>" + "".join(f'<td style="{_CELL}">{escape(c)}</td>' for c in row) + "</tr>"
        for row in table
    )
    rows_with_head = [LOG_COLUMNS, *table]
    widths = [max(len(row[i]) for row in rows_with_head) for i in range(len(LOG_COLUMNS))]
    plain = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows_with_head
    ]
    summary = f"{len(table)} run(s), newest first" if table else "the log is empty"
    return {
        "text/html": f'<div style="{_BOX}"><div>{summary}</div><table style="'
        f'border-collapse:collapse"><tr>{head}</tr>{body}</table></div>',
        "text/plain": "\n".join([summary, *plain]) if table else summary,
    }


# --- helpers ---------------------------------------------------------------------------------


def _io(outcome: Outcome) -> list[tuple[str, str]]:
    cut = " (cut at the output limit)" if outcome.output_truncated else ""
    pairs = [
        ("returns", " ".join(outcome.shown_returns()) if outcome.returns else ""),
        (f"stdout{cut}", outcome.stdout),
        (f"stderr{cut}", outcome.stderr),
        ("host log", outcome.host_log_text()),  # --host-log: the guest's structured log
        ("WIT world", outcome.world),  # a component's imports and exports with their types
    ]
    return [(label, body) for label, body in pairs if body]


def _memory(outcome: Outcome) -> str:
    if outcome.world:  # wasmtime-py shows a component's memories to nobody
        return f"not measured for a component (limit {outcome.memory_limit:,} B per memory)"
    return memory_text(outcome.memory_bytes, outcome.memory_limit)


def _percent(used: int, limit: int) -> str:
    return f"{100 * used / limit:.2f}%" if limit else "no limit"


def _run_key(key: Mapping[str, Any]) -> Fact:
    """The run's one HPKE key agreement (records since version 2)."""
    enc = str(key["enc"])
    text = f"HPKE enc {enc[:16]}… ({len(enc) // 2} B), one key agreement for every part"
    html = f"HPKE enc {short_hash(enc, 8)} ({len(enc) // 2} B), one key agreement for every part"
    return Fact("run key (sealed)", text, html)


def _part(name: str, part: Mapping[str, Any], blob: bytes | None) -> Fact:
    """A sealed part: sizes, the ciphertext's SHA-256, the part's commitment and, in a
    version 1 record, its own HPKE enc."""
    size = f"{part['size']:,} B plaintext → " if "size" in part else ""
    enc = str(part.get("enc", ""))
    preview = f", starts {blob[:12].hex()}…" if blob else ""
    text = (
        f"{size}{part['ct_len']:,} B ciphertext{preview}; ciphertext sha256 {part['ct_sha256']}; "
        f"{name} commitment {part['commitment']}"
        + (f"; HPKE enc {enc[:16]}… ({len(enc) // 2} B)" if enc else "")
    )
    html = (
        f"{escape(size)}{part['ct_len']:,} B ciphertext{escape(preview)}<br>"
        f"ciphertext sha256 {short_hash(part['ct_sha256'])} · {name} commitment "
        f"{short_hash(part['commitment'])}"
        + (f" · HPKE enc {short_hash(enc, 8)} ({len(enc) // 2} B)" if enc else "")
    )
    return Fact(f"{name} (sealed)", text, html)


def _ledger(leaf_index: int, tree_size: int, root: str) -> Fact:
    text = f"leaf #{leaf_index} of a tree of size {tree_size}; root {root}"
    html = f"leaf #{leaf_index} of a tree of size {tree_size}; root {short_hash(root)}"
    return Fact("log", text, html)


def _check_result(result: str | bool) -> str:
    """A check as ``ok``, ``failed: ...`` or ``skipped: ...`` (a bare bool is ok/failed)."""
    if isinstance(result, bool):
        return "ok" if result else "failed"
    return str(result)


def _check_html(result: str) -> str:
    status = "ok" if result == "ok" else "interrupted" if result.startswith("skipped") else "error"
    return f"{badge(status, result.split(':')[0])} {escape(result.partition(':')[2].strip())}"


def _log_row(row: Mapping[str, Any]) -> tuple[str, ...]:
    out = row["outcome"]
    when = datetime.datetime.fromtimestamp(row["time"] / 1000, datetime.UTC)
    status = out["status"] + (f" ({out['trap']})" if out.get("trap") else "")
    if out.get("exit_code") not in (None, 0):
        status += f" (code {out['exit_code']})"
    return (
        f"#{row['leaf_index']}",
        row["id"][:12],
        when.strftime("%Y-%m-%d %H:%M:%S"),
        status,
        f"{out['fuel_used']:,}",
        f"{out['memory_bytes']:,} B",
        duration_text(out["duration_us"] / 1000),
        f"{row['program']['size']:,} B",
    )
