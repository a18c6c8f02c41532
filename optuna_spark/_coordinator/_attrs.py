"""System attribute keys the coordinator writes (visible in optuna-dashboard and
``study.trials_dataframe()``)."""

#: On each trial: where it ran (host, pid, Spark stage/partition/attempt, executor, GPUs, run).
ATTR_WORKER = "optuna_spark:worker"
#: The run that created the trial, written with the trial itself (see ``_run_storage``).
ATTR_RUN = "optuna_spark:run"
#: On a failed trial: why, in words.
ATTR_FAIL_REASON = "optuna_spark:fail_reason"
#: On a failed trial: the worker's traceback.
ATTR_TRACEBACK = "optuna_spark:traceback"
#: On a pruned trial: why the run told it to stop (a timeout, ``study.stop()`` ...).
ATTR_INTERRUPTED = "optuna_spark:interrupted"
#: On a trial the pruner stopped: when the driver decided it (ISO 8601, the storage's clock
#: for ``datetime_complete``), so that the trials completed by then, which the pruner
#: compared it with, can be told apart.
ATTR_PRUNED_AT = "optuna_spark:pruned_at"
#: On a retry: the number of the lost trial whose parameters it runs again.
ATTR_RETRY_OF = "optuna_spark:retry_of"
#: On a trial that resumed after losing its worker: each resume (when, from which worker, why,
#: the last step reported and the checkpoint's step), oldest first.
ATTR_RESUMES = "optuna_spark:resumes"
#: On a lost trial that was not retried: why not.
ATTR_RETRY_SKIPPED = "optuna_spark:retry_skipped"
#: Study system attribute prefix of run stamps: each run renews ``{"alive": unix time, ...}``
#: there while it runs (the key keeps its first name, so older studies still recover).
ATTR_RUN_STAMP_PREFIX = "optuna_spark:driver:"

#: The last part of what a trial's objective printed and logged (see ``get_trial_log``).
ATTR_LOG = "optuna_spark:log"
