"""The Jupyter faces of wasm-sandbox.

- `magic`: ``%%wasm``, ``%wasm``, ``%wasm_verify``, ``%wasm_log`` (``%load_ext wasm_sandbox``)
- `command`: parsing of the magics' option lines into plain dataclasses
- `settings`: the ``WasmSandbox`` configurable (``%config WasmSandbox``)
- `view`: the live ipywidgets card of one run
- `html`: static HTML and plain-text views (no IPython, no ipywidgets)
- `teach`: disassembly, annotated bytes and the import/export list of a module
- `server`: the jupyter_server extension (REST)

Nothing is imported here, so ``%load_ext`` and server start stay fast.
"""
