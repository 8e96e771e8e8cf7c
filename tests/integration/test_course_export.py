"""Saved chapters read anywhere: an offline HTML export of chapter 1, as shipped, shows every
card's status, fuel and log position without running a script."""

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

CHAPTER = Path(__file__).resolve().parents[2] / "notebooks" / "01_first_sandbox.ipynb"


@pytest.mark.slow
def test_offline_export_of_chapter_one_shows_every_card(tmp_path):
    page = tmp_path / "chapter1.html"
    subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "html", str(CHAPTER), "--output", str(page)],
        check=True,
        capture_output=True,
        timeout=180,
    )
    shown = re.sub(r"<script\b.*?</script>", "", page.read_text(), flags=re.S | re.I)
    text = html.unescape(re.sub(r"<[^>]+>", " ", shown))
    cards = re.findall(r'<div [^>]*class="wasm-sandbox-run"[^>]*>', shown)
    runs = sum(  # every %%wasm / %wasm cell that ran a guest saved one static card
        1
        for cell in json.loads(CHAPTER.read_text())["cells"]
        for out in cell.get("outputs", [])
        if "wasm-sandbox-run" in "".join(out.get("data", {}).get("text/html", ""))
    )
    assert runs >= 5 and len(cards) == runs
    statuses = {re.search(r'data-status="(\w+)"', tag)[1] for tag in cards}
    assert {"ok", "trap"} <= statuses
    assert len(re.findall(r"\d[\d,]* / [\d,]+ \(", text)) >= runs  # fuel used / limit
    assert len(re.findall(r"leaf #\d+ of a tree of size \d+", text)) >= runs
