"""``optimize`` checks everything before it acts, in both coordinator placements: what it
cannot honour is refused with a clear error, never silently dropped."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import optuna
import pytest
import trustme
from optuna.trial import TrialState
from optuna.trial import create_trial

from optuna_spark import SparkExecutor
from optuna_spark._coordinator import ATTR_LOG
from optuna_spark._coordinator import ATTR_RUN_STAMP_PREFIX
from optuna_spark._optuna_adapter import storage_of
from optuna_spark._optuna_adapter import study_id_of
from optuna_spark._spark import _coordinator_placement
from optuna_spark._spark._cluster import cluster_job
from optuna_spark._spark._cluster import echo_trial_log
from optuna_spark._spark._echo import OutputEcho
from optuna_spark._spark._settings import CallOptions
from optuna_spark._spark._settings import RunSettings
from optuna_spark.wire.spec import RunConfig


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    cert = trustme.CA().issue_cert("127.0.0.1")
    folder = tmp_path_factory.mktemp("tls")
    certfile, keyfile = folder / "server.pem", folder / "server.key"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    return str(certfile), str(keyfile)


def _system_attrs(study: optuna.Study) -> dict[str, Any]:
    return storage_of(study).get_study_system_attrs(study_id_of(study))


def _file_study(tmp_path: Path) -> optuna.Study:
    return optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}")


def test_tls_with_a_cluster_coordinator_is_refused(tls_files: tuple[str, str]) -> None:
    with pytest.raises(ValueError, match="coordinator='cluster' cannot use tls_certfile"):
        SparkExecutor(coordinator="cluster", tls_certfile=tls_files[0], tls_keyfile=tls_files[1])
    with pytest.raises(ValueError, match="cannot use service_host"):
        SparkExecutor(coordinator="cluster", service_host="127.0.0.1")


def test_tls_is_refused_when_auto_picks_the_cluster(
    tls_files: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_coordinator_placement, "resolve", lambda *args: "cluster")
    executor = SparkExecutor(tls_certfile=tls_files[0], tls_keyfile=tls_files[1])
    study = _file_study(tmp_path)
    with pytest.raises(ValueError, match="cannot use tls_certfile"):
        executor.optimize(study, lambda t: 0.0, n_trials=1)
    assert executor._spark is None  # refused before Spark started
    assert study.trials == [] and _system_attrs(study) == {}


def test_a_bad_tls_certificate_fails_when_the_executor_is_made(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ValueError, match=r"TLS certificate .*bad\.pem.* cannot be loaded"):
        SparkExecutor(tls_certfile=str(bad))
    with pytest.raises(ValueError, match="tls_keyfile was given without tls_certfile"):
        SparkExecutor(tls_keyfile=str(bad))


def test_the_cluster_coordinator_carries_its_port_and_run(tmp_path: Path) -> None:
    settings = RunSettings(5.0, 60.0, None, 30.0, True, False, "driver", None)
    options = CallOptions(settings, None, None, None, 4242, (None, None), None, True, True, False)
    config = RunConfig(n_trials=7, timeout=9.0)
    study = _file_study(tmp_path)
    job, spec = cluster_job(None, [(study, config)], options, 2, lambda t: 0.0, ())  # type: ignore[arg-type]
    assert spec.service_port == 4242 and spec.first.config == config and spec.gc_after_trial
    assert not spec.pool and spec.first.study_name == study.study_name
    assert spec.n_workers == 2 and job.name.endswith("coordinator and 2 workers")


def test_a_cluster_runs_trial_output_is_echoed_when_it_finishes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    echo = echo_trial_log(OutputEcho())
    trial = create_trial(
        value=1.0, system_attrs={ATTR_LOG: "hello\nfrom the cluster"}, state=TrialState.COMPLETE
    )
    echo(trial)
    assert capsys.readouterr().err.splitlines() == [
        "[trial -1] hello",
        "[trial -1] from the cluster",
    ]


@pytest.mark.spark
@pytest.mark.timeout(120)
def test_a_bind_failure_writes_nothing_and_leaves_logging_alone(spark: Any) -> None:
    optuna_logger = logging.getLogger("optuna")
    handlers = list(optuna_logger.handlers)
    study = optuna.create_study()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        executor = SparkExecutor(spark, n_workers=1, service_host="127.0.0.1", service_port=port)
        with pytest.raises(OSError, match=f"Could not bind the optuna-spark server to .*:{port}"):
            executor.optimize(study, lambda t: 0.0, n_trials=2, show_progress_bar=True)
    # No run stamp, no trial: the next run finds nothing of this one.
    assert not any(k.startswith(ATTR_RUN_STAMP_PREFIX) for k in _system_attrs(study))
    assert study.trials == []
    # The progress bar never rerouted Optuna's log lines.
    assert optuna_logger.handlers == handlers
