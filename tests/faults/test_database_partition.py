"""The driver partitioned from its PostgreSQL database mid-study (the server in a network
namespace of its own, the link cut for a few seconds, then restored): nothing is refused,
calls just hang; the run waits them out and loses nothing."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from optuna_spark.remote import RemoteTrial
from optuna_spark.remote import StudyRun
from optuna_spark.remote import StudyServer
from tests._helpers import Workers
from tests._helpers import wait_until
from tests._postgres import PostgresServer
from tests._postgres import find_bin_dir
from tests.faults._netns import Namespace

pytestmark = [pytest.mark.netns, pytest.mark.postgres, pytest.mark.timeout(240)]

N_TRIALS = 30
PARTITION_SECONDS = 6.0


@pytest.fixture
def database_in_namespace() -> Iterator[tuple[Namespace, PostgresServer]]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL's server binaries are missing: apt-get install postgresql")
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    ns = Namespace()
    root = Path(tempfile.mkdtemp(prefix="optuna-spark-postgres-ns-"))
    root.chmod(0o755)  # the server runs as the postgres user
    server = None
    try:
        server = PostgresServer(
            root, bin_dir, host=ns.ns_ip, namespace=ns.name, trusted=f"{ns.host_ip}/32"
        )
        server.start()
        server.create_database()
        yield ns, server
    finally:
        ns.heal()
        if server is not None:
            server.stop("immediate")
        ns.remove()
        shutil.rmtree(root, ignore_errors=True)


def objective(trial: RemoteTrial) -> float:
    x = trial.suggest_float("x", 0, 1)
    for step in range(3):
        time.sleep(0.05)  # training
        trial.report(x + step, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return x


def test_a_partition_between_the_driver_and_its_database_loses_nothing(
    database_in_namespace: tuple[Namespace, PostgresServer], workers: Workers
) -> None:
    ns, database = database_in_namespace
    study = optuna.create_study(
        storage=database.url,
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5),
    )
    with StudyServer(study._storage) as server:
        run = StudyRun(study, n_trials=N_TRIALS)
        server.add_run(run)
        workers.start(run.worker_spec(server.endpoint), objective, 2)
        assert wait_until(lambda: run.n_finished >= 5, 60)
        ns.partition()  # packets vanish: every call to the database hangs, none is refused
        assert run.n_finished < N_TRIALS  # the rest of the study needs the database
        healed = threading.Timer(PARTITION_SECONDS, ns.heal)
        healed.start()
        try:
            assert run.wait(180)
        finally:
            healed.cancel()
            ns.heal()
        workers.join()
    assert run.error is None
    trials = optuna.load_study(study_name=study.study_name, storage=database.url).trials
    assert len(trials) == N_TRIALS
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert all(len(t.intermediate_values) >= 1 for t in trials)
