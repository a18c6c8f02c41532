"""A worker partitioned from its driver mid-trial (its own network namespace, the link cut,
then restored): the trial is taken for lost after the heartbeat grace and resumes on another
worker from its checkpoint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState

from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from tests._helpers import Workers
from tests._helpers import wait_until
from tests._workers import objective_checkpointed
from tests.faults._netns import Namespace

pytestmark = [pytest.mark.netns, pytest.mark.timeout(180)]

_WORKER = """
import sys
from optuna_spark.remote import Endpoint, WorkerSpec, run_worker
from tests._workers import objective_checkpointed
host, port, token, run_id = sys.argv[1:5]
spec = WorkerSpec(Endpoint(host, int(port), token), run_id, heartbeat_interval=0.2,
                  checkpoint_store=__import__("optuna.artifacts").artifacts.FileSystemArtifactStore(sys.argv[5]))
run_worker(spec, objective_checkpointed, info={"executor_id": "partitioned"})
"""


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    ns = Namespace()
    try:
        yield ns
    finally:
        ns.remove()


def test_a_partitioned_workers_trial_resumes_on_another_worker_from_its_checkpoint(
    namespace: Namespace,
    make_server: Callable[..., StudyServer],
    workers: Workers,
    tmp_path: Path,
) -> None:
    mark = tmp_path / "at-step-3"
    server = make_server(host=namespace.host_ip, tick_interval=0.05)
    study = optuna.create_study(storage=server.storage)
    store = FileSystemArtifactStore(str(tmp_path))
    run = StudyRun(
        study, n_trials=3, heartbeat_grace=1.5, resume_lost_trials=1, checkpoint_store=store
    )
    server.add_run(run)
    env = {**os.environ, "OPTUNA_SPARK_TEST_HANG_AT": "3", "OPTUNA_SPARK_TEST_MARK": str(mark)}
    endpoint = server.endpoint
    worker = subprocess.Popen(
        namespace.command(
            sys.executable,
            "-c",
            _WORKER,
            endpoint.host,
            str(endpoint.port),
            endpoint.token,
            run.run_id,
            str(tmp_path),
        ),
        cwd=Path(__file__).resolve().parents[2],
        env=env,
    )
    try:
        assert wait_until(mark.exists, 60), "the partitioned worker never reached step 3"
        namespace.partition()
        # The driver hears nothing: after heartbeat_grace the trial is taken for lost.
        assert wait_until(lambda: run.n_running == 1 and not run.executors(), 30)
        workers.start(run.worker_spec(server.endpoint), objective_checkpointed, 1)
        assert run.wait(60)
        namespace.heal()
    finally:
        worker.kill()
        worker.wait(30)
    workers.join()
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    lost = trials[0]
    (resume,) = lost.system_attrs["optuna_spark:resumes"]
    assert "no heartbeat" in resume["reason"] and resume["worker"]["executor_id"] == "partitioned"
    assert lost.user_attrs["starts"] == [0, 4]  # resumed after its checkpoint at step 3
    assert lost.intermediate_values == {s: lost.params["x"] + s for s in range(6)}
