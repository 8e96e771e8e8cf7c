"""200 runs through Sandbox.map: the default thread pool and a real Dask LocalCluster."""

import pytest

from tests import programs

distributed = pytest.importorskip("distributed", reason="install wasm-sandbox[dask]")

INPUTS = [(n,) for n in range(200)]


@pytest.fixture(scope="module")
def serial_results():
    from wasm_sandbox.engine import Engine
    from wasm_sandbox.sources import compile_wat

    engine = Engine()
    compiled = engine.compile(compile_wat(programs.FACT))
    results = [engine.run(compiled, invoke="fact", args=a).returns for a in INPUTS]
    engine.close()
    return results


@pytest.mark.slow
def test_200_runs_with_the_default_executor(sandbox, serial_results):
    batch = sandbox.map(programs.FACT, INPUTS, invoke="fact", progress=False)
    assert [ex.outcome.returns for ex in batch] == serial_results
    assert sandbox.ledger.size == 200
    assert sandbox.verify_log().ok


@pytest.mark.slow
def test_200_runs_on_a_dask_local_cluster(sandbox, serial_results):
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            processes=True,
        ) as cluster,
        Client(cluster) as client,
    ):
        batch = sandbox.map(
            programs.FACT, INPUTS, invoke="fact", executor=client.get_executor(), progress=False
        )
        workers = client.run(lambda: __import__("os").getpid())
    assert [ex.outcome.returns for ex in batch] == serial_results
    assert len(workers) == 2
    assert sandbox.ledger.size == 200
    assert sandbox.verify_log().ok
