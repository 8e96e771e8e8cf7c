"""``WasmSandbox``: every setting of the magics as a traitlet, listed by ``%config WasmSandbox``.

Set them for one session with ``%config WasmSandbox.fuel = "1e8"`` or for good in an IPython
profile (``c.WasmSandbox.timeout = "30s"`` in ``ipython_config.py``). The limit settings are
the defaults of every run; a run's own ``--fuel``/``--memory``/``--timeout``/``--output``
override them. Only traitlets are imported here: the sandbox opens on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from traitlets import Bool, Enum, Unicode, default, validate
from traitlets.config import Configurable

from ..errors import KeyStoreError
from ..limits import Grants, Limits
from ..wave import Wave
from ..worker import ISOLATIONS
from .traits import check_limit, check_signers, limit, signers

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from ..run_options import RunOptions
    from ..sandbox import Sandbox
    from .command import RunCommand

_DEFAULT = Limits()
DISPLAYS = ("card", "text", "both")


class WasmSandbox(Configurable):
    """Settings of ``%%wasm``, ``%wasm``, ``%wasm_verify`` and ``%wasm_log``."""

    fuel = limit(_DEFAULT.fuel, "Default fuel per run (about one unit per wasm instruction).")
    memory = limit(
        f"{_DEFAULT.memory >> 20}MiB", "Default linear memory limit (bytes, 64MiB, 16pages)."
    )
    timeout = limit(f"{_DEFAULT.timeout:g}s", "Default wall-clock limit per run (2s, 500ms).")
    output = limit(
        f"{_DEFAULT.output >> 10}KiB", "Default bytes of stdout and of stderr kept per run."
    )
    dir_quota = limit(
        f"{_DEFAULT.dir_quota >> 20}MiB",
        "Default bytes by which the read-write grants may grow per run.",
    )
    deterministic = Bool(
        False, help="Run with a virtual clock and seeded randomness so runs can be replayed."
    ).tag(config=True)
    isolation = Enum(
        ISOLATIONS,
        default_value="process",
        help="Where guests and their compilation run: 'process' (a warm worker process, "
        "killed if it overstays its deadline; a crash there cannot take the kernel down) "
        "or 'thread' (a thread of the kernel; cheaper per run).",
    ).tag(config=True)
    home = Unicode(
        help="Directory with the keys and the ledger; defaults to $WASM_SANDBOX_HOME, "
        "else the per-user data directory."
    ).tag(config=True)
    recipient = Unicode(
        "",
        help="Path of a P-256 public key (PEM) to seal runs to; empty: this home's own key.",
    ).tag(config=True)
    require_signed_by = signers(
        help="Signer verifier keys (wasm-sandbox keys --json: signer_verifier_key): when "
        "set, only binaries signed as a whole by one of them run; a cell's "
        "--require-signed-by adds keys, it cannot remove these.",
    )
    display = Enum(
        DISPLAYS,
        default_value="card",
        help="How a run is shown: 'card' (live widget with a static copy for saved "
        "notebooks), 'text' (static HTML/text only) or 'both' (card and printed text).",
    ).tag(config=True)
    full_tracebacks = Bool(
        False, help="Show full Python tracebacks instead of one-line errors (for debugging)."
    ).tag(config=True)

    @default("home")
    def _default_home(self) -> str:
        from ..sandbox import default_home

        return str(default_home())

    @validate("require_signed_by")
    def _check_signers(self, proposal: Any) -> list[str]:
        return check_signers(proposal["value"])

    @validate("fuel", "memory", "timeout", "output", "dir_quota")
    def _check_limit(self, proposal: Any) -> Any:
        return check_limit(proposal["trait"].name, proposal["value"])

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sandboxes: dict[str, Sandbox] = {}

    def sandbox(self) -> Sandbox:
        """The sandbox of the current ``home``, opened on first use and kept open."""
        home = str(Path(self.home).expanduser())
        if home not in self._sandboxes:
            from ..sandbox import Sandbox

            self._sandboxes[home] = Sandbox(home=home)
        return self._sandboxes[home]

    def limits(self, cmd: RunCommand | None = None) -> Limits:
        """These defaults, overridden by the run's own limit options."""
        base = Limits.parse(
            fuel=self.fuel,
            memory=self.memory,
            timeout=self.timeout,
            output=self.output,
            dir_quota=self.dir_quota,
        )
        return Limits.parse(base, **cmd.limits) if cmd else base

    def grants(self, cmd: RunCommand) -> Grants:
        return Grants.parse(
            dirs=cmd.dirs,
            env=cmd.env,
            argv=cmd.argv,
            stdin=cmd.stdin,
            deterministic=cmd.deterministic or self.deterministic,
            kv=cmd.kv,
            kv_quota=cmd.kv_quota,
            host_log=cmd.host_log,
        )

    def run_options(self, cmd: RunCommand) -> RunOptions:
        """The `RunOptions` of a run: these defaults, overridden by the run's options."""
        from ..run_options import RunOptions

        return RunOptions(
            invoke=cmd.invoke,
            args=tuple(Wave(a) for a in cmd.args),  # a component reads them as WAVE
            limits=self.limits(cmd),
            grants=self.grants(cmd),
            lang=cmd.lang,
            recipient=self.recipient_key(),
            isolation=cmd.isolation or self.isolation,
            require_signed_by=(*self.require_signed_by, *cmd.require_signed_by),
            trust=cmd.trust,
        )

    def recipient_key(self) -> ec.EllipticCurvePublicKey | None:
        """The configured recipient key, or None to seal to the home's own key."""
        if not self.recipient:
            return None
        from ..keys import KeyStore

        path = Path(self.recipient).expanduser()
        try:
            return KeyStore.load_public_pem(path.read_bytes())
        except OSError as exc:
            raise KeyStoreError(
                f"WasmSandbox.recipient: cannot read {path}: {exc.strerror}"
            ) from None

    def close(self) -> None:
        """Close every sandbox opened here; idempotent."""
        for sandbox in self._sandboxes.values():
            sandbox.close()
        self._sandboxes.clear()
