"""The contracts of DESIGN.md that several test files check."""

#: The least every ``wasm-sandbox run --json`` object (and every REST execution) holds.
RUN_JSON_KEYS = frozenset(
    {
        "id",
        "status",
        "exit_code",
        "returns",
        "stdout",
        "stderr",
        "fuel_used",
        "fuel_limit",
        "memory_bytes",
        "memory_limit",
        "duration_ms",
        "commitment",
        "leaf_index",
        "tree_size",
        "root",
    }
)
