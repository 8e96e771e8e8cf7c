"""Rebuild the course's .wasm files from their C sources (needs the ziglang package).

    python3 notebooks/programs/build.py            # rebuild every .c here
    python3 notebooks/programs/build.py --check    # only report which .wasm differ

The notebooks run the committed .wasm files, so the course works without a C compiler.
The first compile on a machine builds the C library (about a minute); later ones take a
second. A different zig version may produce different bytes, and then the table indices
and addresses printed by the programs (and the saved notebook outputs) may change too.
"""

from __future__ import annotations

import sys
from pathlib import Path

from wasm_sandbox.sources import compile_c

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = 0
    for source in sorted(HERE.glob("*.c")):
        target = source.with_suffix(".wasm")
        wasm = compile_c(source.read_text())
        same = target.exists() and target.read_bytes() == wasm
        stale += not same
        if check:
            print(f"{target.name}: {'up to date' if same else 'differs from a fresh build'}")
        elif not same:
            target.write_bytes(wasm)
            print(f"{target.name}: rebuilt, {len(wasm):,} bytes")
        else:
            print(f"{target.name}: up to date")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
