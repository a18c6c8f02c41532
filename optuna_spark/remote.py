"""Running workers outside Spark, and serving a storage over the wire.

``SparkExecutor`` does all of this for Spark; these are the same pieces, for workers started
any other way (threads, processes, machines that reach the server):

- :class:`StudyServer` serves an Optuna storage, and the studies being optimized, to
  authenticated clients;
- :class:`StudyRun` is one distributed optimization of a study on that server (its settings
  are a :class:`RunConfig`), and :meth:`StudyRun.worker_spec` what its workers start with
  (:class:`WorkerSpec`); a :class:`RunPool` serves many studies' runs to one set of workers;
  a :class:`ProfileChoice` hands each trial to a worker of the resource profile it needs;
- :func:`run_worker` is the worker loop (what each Spark task runs), which hands objectives a
  :class:`RemoteTrial`;
- :class:`RemoteStorage` is an Optuna storage that talks to a ``StudyServer``, and
  :class:`Endpoint` the address and secret a client connects with.

Example:

    .. testcode::

        import threading

        import optuna
        from optuna_spark.remote import StudyRun, StudyServer, run_worker

        storage = optuna.storages.InMemoryStorage()
        study = optuna.create_study(storage=storage)
        run = StudyRun(study, n_trials=6)
        with StudyServer(storage) as server:
            server.add_run(run)
            spec = run.worker_spec(server.endpoint)
            objective = lambda trial: trial.suggest_float("x", -1, 1) ** 2
            worker = threading.Thread(target=run_worker, args=(spec, objective))
            worker.start()
            run.wait()
            worker.join()
        assert len(study.trials) == 6
"""

from optuna_spark._coordinator import RunPool
from optuna_spark._coordinator import StudyRun
from optuna_spark._coordinator import StudyServer
from optuna_spark._storages import RemoteStorage
from optuna_spark._worker import RemoteTrial
from optuna_spark._worker import WorkerSpec
from optuna_spark._worker import run_worker
from optuna_spark.wire import Endpoint
from optuna_spark.wire.spec import ProfileChoice
from optuna_spark.wire.spec import RunConfig

__all__ = [
    "Endpoint",
    "ProfileChoice",
    "RemoteStorage",
    "RemoteTrial",
    "RunConfig",
    "RunPool",
    "StudyRun",
    "StudyServer",
    "WorkerSpec",
    "run_worker",
]
