"""Export course chapters to HTML that reads offline: every card's facts, no solutions.

    python3 notebooks/export.py OUTDIR                      # every chapter
    python3 notebooks/export.py OUTDIR notebooks/04_inside_the_sandbox.ipynb

Cells tagged ``solution`` are left out (source and outputs); everything else, including
the check cells and the static copy of each card, is kept. Students get these pages; the
notebooks themselves keep the solutions, collapsed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor

HERE = Path(__file__).resolve().parent
SOLUTION = "solution"


def export(path: Path, outdir: Path) -> Path:
    """Write ``outdir/<chapter>.html`` without the solution cells; return its path."""
    exporter = HTMLExporter()
    exporter.register_preprocessor(
        TagRemovePreprocessor(remove_cell_tags={SOLUTION}, enabled=True), enabled=True
    )
    body, _ = exporter.from_notebook_node(nbformat.read(path, as_version=4))
    page = outdir / path.with_suffix(".html").name
    page.write_text(body, encoding="utf-8")
    return page


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    outdir = Path(argv[0])
    outdir.mkdir(parents=True, exist_ok=True)
    paths = [Path(a) for a in argv[1:]] or sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        print(export(path, outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
