"""One guest in one store on a worker thread: its limits, WASI, instantiation, the call,
and the epoch callback that decides at every tick whether it goes on.

* WASI is linked only together with a `WasiConfig` set on the same store (FIELD-NOTES.md).
* Wall-clock limits and interrupts go through an epoch deadline callback that runs on the
  guest's thread and decides per store whether to go on; blocking ``poll_oneoff`` sleeps
  are replaced (see `wasi`) so they end at the deadline too.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import wasmtime

from . import component, hostapi, instrument, traps, wasi, wasmtime_private
from . import outcome as st
from .call import Call
from .capture import Capture
from .compiled import Compiled
from .limits import Grants, Limits, open_granted_dir
from .outcome import Outcome
from .quota import Quota
from .threads import Run, ticks_to_next_check


class Guest:
    """One guest in one store, on the worker thread."""

    def __init__(
        self,
        engine: wasmtime.Engine,
        linkers: wasi.Linkers,
        run: Run,
        compiled: Compiled,
        limits: Limits,
        grants: Grants,
    ) -> None:
        self.engine, self.linkers, self.run, self.compiled = engine, linkers, run, compiled
        self.limits, self.grants = limits, grants
        self.stdout, self.stderr = Capture(limits.output), Capture(limits.output)
        self.virtual = wasi.VirtualHost() if grants.deterministic else None
        self.store = wasmtime.Store(engine)
        # one budget for all memories (see `instrument.memory_share`); wasmtime's GC heap
        # is one more memory under the same per-memory limit
        caps = compiled.rewrite.memory_caps + ((None,) if compiled.gc_heap else ())
        self.store.set_limits(
            memory_size=instrument.memory_share(limits.memory, caps),
            table_elements=limits.table_elements,
            instances=limits.instances,
            tables=limits.tables,
            memories=limits.memories,
        )
        self.store.set_fuel(limits.fuel)
        self.quota = Quota(grants, limits.dir_quota)
        self.host = hostapi.Host(grants, limits.output)
        self.store.set_epoch_deadline(ticks_to_next_check(run.watch))
        # kept as long as the store: wasmtime calls it until the store is gone
        self.callback = wasmtime_private.on_epoch_deadline(self.store, self._on_deadline)

    def execute(self, call: Call) -> Outcome:
        start = time.perf_counter()
        instance = None
        stdin_path = None
        wasi.bind(self.run.watch, self.virtual)
        try:
            stdin_path = self._stdin_file()
            instance = self._instantiate(stdin_path)
            values = call.lookup(instance, self.store)(self.store, *call.args)
            facts = call.finished(values)
            if self.run.watch.reason:  # a host call was cut short by the deadline
                facts = traps.classify(None, self.run.watch, self.limits, self.compiled.rewrite)
        except Exception as exc:  # every guest failure becomes an Outcome
            facts = traps.classify(exc, self.run.watch, self.limits, self.compiled.rewrite)
        finally:
            wasi.bind(None)
            if stdin_path:
                os.unlink(stdin_path)
            self.host.close()
        if self.quota.exceeded(at_end=True) and self.run.watch.reason in (None, st.QUOTA):
            facts = self.quota.facts()
        if self.host.overrun and self.run.watch.reason in (None, st.QUOTA):
            facts = {"status": st.QUOTA, "message": self.host.overrun}
        duration = (time.perf_counter() - start) * 1000
        memory = self._memory_bytes(instance) if instance and not self.compiled.world else 0
        fuel_used = max(self.limits.fuel - self.store.get_fuel(), self.run.fuel_used)
        exact = self.compiled.rewrite.fuel_exact
        if instance and not exact:  # a guest that ran never logs 0, even as a lower bound
            fuel_used = max(fuel_used, 1)
        self.store.close()  # and with it wasmtime's ends of the output pipes
        self.stdout.finish()
        self.stderr.finish()
        return Outcome(
            **facts,
            stdout=self.stdout.text(),
            stderr=self.stderr.text(),
            output_truncated=self.stdout.truncated
            or self.stderr.truncated
            or self.host.log_truncated,
            host_log=tuple(self.host.lines),
            fuel_used=fuel_used,
            fuel_limit=self.limits.fuel,
            fuel_lower_bound=not exact,
            memory_bytes=memory,
            memory_limit=self.limits.memory,
            duration_ms=duration,
            cache=self.compiled.cache,
            deterministic=self._deterministic(),
            result_types=call.result_types,
            call_args=call.sealed_args,
            world=self.compiled.world.text if self.compiled.world else "",
        )

    def _memory_bytes(self, instance: wasmtime.Instance) -> int:
        """Bytes of all memories, through the exports the rewrite added (else only the
        module's own exported ones). Linear memory never shrinks: this is the peak."""
        rewrite = self.compiled.rewrite
        names = (
            [instrument.memory_export(i) for i in range(len(rewrite.memory_caps))]
            if rewrite.memories_exported
            else self.compiled.memories
        )
        found = (wasmtime_private.export(instance, self.store, name) for name in names)
        return sum(m.data_len(self.store) for m in found if isinstance(m, wasmtime.Memory))

    def _deterministic(self) -> bool:
        """Whether a replay with the same inputs must give the same result."""
        virtual = self.virtual is not None and self.compiled.world is None  # preview 1 only
        if self.grants.dirs or self.grants.kv:  # state a replay does not have
            return False
        return virtual or not self.compiled.observes_time_or_randomness

    def _instantiate(self, stdin_path: str | None) -> Any:
        if self.compiled.world is not None:  # a component; WASI 0.2 only with its config
            config = self._wasi_config(stdin_path) if self.compiled.uses_wasi else None
            assert isinstance(self.compiled.module, wasmtime.component.Component)
            host = self.host if self.compiled.world.uses_host_api else None
            module = self.compiled.module
            return component.instantiate(self.engine, self.store, module, config, host)
        assert isinstance(self.compiled.module, wasmtime.Module)
        if not self.compiled.imports:
            return wasmtime.Instance(self.store, self.compiled.module, [])
        if self.compiled.uses_wasi:  # the store's WasiConfig first, then a linker with WASI
            self.store.set_wasi(self._wasi_config(stdin_path))
            if all(module != hostapi.MODULE for module, _ in self.compiled.imports):
                shared = self.linkers.get(self.virtual is not None)
                return shared.instantiate(self.store, self.compiled.module)
        linker = wasmtime.Linker(self.engine)
        self.host.define(linker, self.compiled.imports)
        if self.compiled.uses_wasi:
            linker.define_wasi()
            wasi.define(linker, self.virtual is not None)
        return linker.instantiate(self.store, self.compiled.module)

    def _wasi_config(self, stdin_path: str | None) -> wasmtime.WasiConfig:
        config = wasmtime.WasiConfig()
        config.argv = ["main.wasm", *self.grants.argv]
        config.env = [list(pair) for pair in self.grants.env]
        for grant in self.grants.dirs:  # opened without following symlinks (see limits)
            fd = open_granted_dir(grant.host)
            try:
                config.preopen_dir(f"/proc/self/fd/{fd}", grant.guest, fs_mutable=grant.writable)
            finally:
                os.close(fd)  # wasmtime opened its own descriptor of the same directory
        if stdin_path:
            config.stdin_file = stdin_path
        self.stdout.attach(config, "stdout")
        self.stderr.attach(config, "stderr")
        return config

    def _stdin_file(self) -> str | None:
        if not self.grants.stdin or not self.compiled.uses_wasi:
            return None
        fd, path = tempfile.mkstemp(prefix="wasm-sandbox-stdin-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(self.grants.stdin)
        except BaseException:
            os.unlink(path)
            raise
        return path

    def _on_deadline(self, context: Any, _data: Any, delta: Any, kind: Any) -> int:
        """Runs on the guest thread at every epoch tick: stop, or go on one more tick."""
        try:
            if self.quota.exceeded() and self.run.watch.reason is None:
                self.run.watch.reason = st.QUOTA
            if self.run.watch.should_stop():
                reason = self.run.watch.reason
                assert reason is not None  # should_stop() sets it
                return wasmtime_private.deadline_error(reason)
            left = wasmtime_private.fuel_left(context)
            if left is not None:
                self.run.fuel_used = self.run.fuel_limit - left
        except Exception:  # an exception must never cross back into wasmtime
            pass
        except BaseException:  # a signal handler's, when the guest runs on the main thread
            self.run.watch.cancel.set()
        delta[0] = ticks_to_next_check(self.run.watch)
        kind[0] = wasmtime_private.CONTINUE
        return 0
