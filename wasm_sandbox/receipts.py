"""Receipts that travel with a notebook: build them for a run, verify a saved notebook offline.

A ``%%wasm`` output carries, in its static output's metadata under `METADATA_KEY`::

    {"receipt": "c2sp.org/tlog-proof@v1\\nextra <record>\\nindex N\\n<hashes>\\n\\n<checkpoint>",
     "disclosure": {"part": "result", "payload": {...result payload...}, "salt": "<64 hex>"}}

The receipt is a C2SP tlog-proof (the record's canonical bytes in its ``extra`` line, the
checkpoint with every stored witness cosignature). The disclosure opens the record's result
commitment: ``SHA-256(lp(tag) || lp(id) || lp(payload) || salt)``. The program, input and
source commitments stay closed. `verify_notebook` needs only the notebook and verifier keys.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

from . import record
from .checkpoint import open_note
from .errors import EnvelopeError, VerificationError
from .outcome import CHECKED_FIELDS
from .tlog_proof import verify_receipt
from .witness import check_cosigners

if TYPE_CHECKING:
    from .execution import Execution
    from .ledger import Ledger

METADATA_KEY = "wasm-sandbox"
_CUT = " (cut at the output limit)"


def for_execution(execution: Execution, ledger: Ledger) -> dict[str, Any]:
    """The metadata of a run's output: its receipt and the disclosure of its result."""
    return {"receipt": receipt(ledger, execution.id), "disclosure": disclose(execution)}


def receipt(ledger: Ledger, record_id: str) -> str:
    """`Ledger.receipt`, its checkpoint carrying every cosignature the ledger holds."""
    head, _, note = ledger.receipt(record_id).partition("\n\n")
    size = int(note.split("\n")[1])
    return f"{head}\n\n{ledger.cosigned_note(size)}"


def disclose(execution: Execution) -> dict[str, Any]:
    """What opens the run's result commitment: the result payload and its salt."""
    payload = execution.outcome.result_payload()
    return {"part": "result", "payload": payload, "salt": execution.result_salt.hex()}


def verify_notebook(
    notebook: Mapping[str, Any], log_key: str, witnesses: Sequence[str] = ()
) -> dict[str, Any]:
    """``{"verified", "outputs": [{"cell", "record_id", "verified", "problems"}]}``: one entry
    per ``%%wasm`` output (one with a receipt, or one that looks like a run card)."""
    outputs = []
    for index, cell in enumerate(_list(notebook.get("cells"))):
        for output in _list(cell.get("outputs")) if isinstance(cell, dict) else []:
            if isinstance(output, dict) and _is_run(output):
                outputs.append({"cell": index, **verify_output(output, log_key, witnesses)})
    return {"verified": all(o["verified"] for o in outputs), "outputs": outputs}


def verify_output(
    output: Mapping[str, Any], log_key: str, witnesses: Sequence[str] = ()
) -> dict[str, Any]:
    """``{"record_id", "verified", "problems"}`` of one saved output."""
    meta = _metadata(output).get(METADATA_KEY)
    if not isinstance(meta, dict) or not isinstance(meta.get("receipt"), str):
        return {"record_id": None, "verified": False, "problems": ["no receipt in the output"]}
    rec, problems = _check_receipt(meta["receipt"], log_key, witnesses)
    if rec is not None:
        payload, problem = _open_disclosure(rec, meta.get("disclosure"))
        problems += [problem] if problem else _check_shown(_data(output), payload, rec)
    rid = rec["id"] if rec else None
    return {"record_id": rid, "verified": not problems, "problems": problems}


def _is_run(output: Mapping[str, Any]) -> bool:
    data = _data(output)
    html, text = data.get("text/html", ""), data.get("text/plain", "")
    return (
        METADATA_KEY in _metadata(output)
        or 'class="wasm-sandbox-run"' in _joined(html)
        or (_joined(text).startswith("wasm-sandbox: ") and "record id" in _joined(text))
    )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _metadata(output: Mapping[str, Any]) -> dict[str, Any]:
    meta = output.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _data(output: Mapping[str, Any]) -> dict[str, Any]:
    data = output.get("data")
    return data if isinstance(data, dict) else {}


def _joined(value: Any) -> str:
    """A notebook's multi-line string (a string, or a list of lines)."""
    return "".join(value) if isinstance(value, list) else str(value or "")


def _check_receipt(
    text: str, log_key: str, witnesses: Sequence[str]
) -> tuple[dict[str, Any] | None, list[str]]:
    """The record the receipt proves, and the problems (signature, inclusion, witnesses)."""
    head, _, note = text.partition("\n\n")
    try:
        open_note(note, log_key)
    except (ValueError, VerificationError) as exc:
        return None, [f"checkpoint: not signed by this log key ({exc})"]
    if not verify_receipt(text, log_key):
        return None, ["inclusion: the proof does not lead to the signed checkpoint's root"]
    try:
        rec = record.decode(_leaf(head))
    except (ValueError, EnvelopeError) as exc:
        return None, [f"record: {exc}"]
    cosigns = check_cosigners(note, list(witnesses))
    return rec, [f"witness: {c['problem']}" for c in cosigns if not c["cosigned"]]


def _leaf(head: str) -> bytes:
    return base64.b64decode(head.split("\n")[1].removeprefix("extra "), validate=True)


def _open_disclosure(rec: Mapping[str, Any], disclosure: Any) -> tuple[dict[str, Any], str]:
    """The disclosed result payload, or the reason it does not open the record's commitment."""
    if not isinstance(disclosure, dict) or disclosure.get("part") != "result":
        return {}, "disclosure: missing, or not of the result part"
    payload, salt = disclosure.get("payload"), disclosure.get("salt")
    if not isinstance(payload, dict) or not isinstance(salt, str):
        return {}, "disclosure: the payload is not an object or the salt not hex"
    try:
        opened = record.recommit("result", rec["id"], payload, bytes.fromhex(salt))
    except (ValueError, RecursionError):  # not hex, a short salt, a payload JSON refuses
        return {}, "disclosure: malformed payload or salt"
    if opened.hex() != rec["result"]["commitment"]:
        return {}, "disclosure: does not open the record's result commitment"
    differ = [k for k in CHECKED_FIELDS if payload.get(k) != rec["outcome"].get(k)]
    if differ:
        return {}, f"disclosure: {', '.join(differ)} differ from the record's outcome"
    return payload, ""


def _check_shown(
    data: Mapping[str, Any], payload: Mapping[str, Any], rec: Mapping[str, Any]
) -> list[str]:
    """Problems where the output's text or HTML shows other values than the disclosed ones."""
    want = _io(payload)
    text, problems = _joined(data.get("text/plain")), []
    lines = text.split("\n")
    rest = lines[0].removeprefix(f"wasm-sandbox: {_label(payload)}")
    if rest == lines[0] or (rest and not rest.startswith((" (", " · "))):
        problems.append("text/plain: the status shown is not the disclosed one")
    if _text_io(lines) != [(k, "\n".join(v.splitlines() or [""])) for k, v in want]:
        problems.append("text/plain: returns, stdout or stderr differ from the disclosed ones")
    if not _fact(lines, "fuel").replace("at least ", "").startswith(f"{payload['fuel_used']:,} /"):
        problems.append("text/plain: the fuel shown is not the disclosed fuel_used")
    if _fact(lines, "record id") != rec["id"]:
        problems.append("text/plain: the record id shown is not the receipt's")
    page = _Page()
    page.feed(_joined(data.get("text/html")))
    if page.statuses != {payload["status"]}:
        problems.append("text/html: the status shown is not the disclosed one")
    if page.io != want:
        problems.append("text/html: returns, stdout or stderr differ from the disclosed ones")
    if not page.fuel.replace("at least ", "").startswith(f"{payload['fuel_used']:,} /"):
        problems.append("text/html: the fuel shown is not the disclosed fuel_used")
    return problems


def _label(payload: Mapping[str, Any]) -> str:
    """The status as the card labels it (``exit code 3``, ``trap: unreachable``, ``ok``)."""
    if payload["status"] == "exit":
        return f"exit code {payload['exit_code']}"
    if payload["status"] == "trap":
        return f"trap: {payload['trap']}"
    return str(payload["status"]).replace("_", " ")


def _io(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (label, body) sections the card shows: returns, stdout and stderr when not empty."""
    cut = _CUT if payload.get("output_truncated") else ""
    pairs = [
        ("returns", " ".join(r for _, r in payload.get("returns") or [])),
        (f"stdout{cut}", payload.get("stdout") or ""),
        (f"stderr{cut}", payload.get("stderr") or ""),
    ]
    return [(label, body) for label, body in pairs if body]


def _text_io(lines: list[str]) -> list[tuple[str, str]]:
    """The sections of the text view: a ``label:`` line, then its body indented by two."""
    labels = {"returns", "stdout", "stderr", f"stdout{_CUT}", f"stderr{_CUT}"}
    out: list[tuple[str, list[str]]] = []
    for line in lines[1:]:
        if line.endswith(":") and line[:-1] in labels:
            out.append((line[:-1], []))
        elif out and line.startswith("  "):
            out[-1][1].append(line[2:])
        elif out and not line.startswith("  "):
            break
    return [(label, "\n".join(body)) for label, body in out]


def _fact(lines: list[str], label: str) -> str:
    """The text of a ``label   text`` fact line of the text view, or ''."""
    for line in lines:
        if line.startswith(label) and line[len(label) :].startswith(" " * 2):
            return line[len(label) :].strip()
    return ""


class _Page(HTMLParser):
    """The statuses (``data-status``), the io sections (``<b>label</b><pre>body</pre>``) and
    the fuel fact of a card's static HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.statuses: set[str] = set()
        self.io: list[tuple[str, str]] = []
        self.fuel, self._tag, self._text, self._label = "", "", "", ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.statuses |= {v or "" for k, v in attrs if k == "data-status"}
        self._tag, self._text = tag, ""

    def handle_data(self, data: str) -> None:
        self._text += data

    def handle_endtag(self, tag: str) -> None:
        text, label = self._text, self._label
        if tag == "b":
            self._label = text
        elif tag == "pre" and label:
            self.io.append((label, text))
            self._label = ""
        elif tag == "th":
            self._label = text
        elif tag == "td" and label == "fuel":
            self.fuel = text.strip()
        if tag in ("td", "div"):
            self._label = "" if tag == "td" else self._label
        self._text = ""


def load(path: str) -> dict[str, Any]:
    """A notebook file's JSON; raises ValueError when it is not a notebook."""
    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError(f"{path}: not a Jupyter notebook (no cells)")
    return nb
