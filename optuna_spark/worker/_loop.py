"""The worker loop: ask the driver for a trial, run the objective, tell the outcome, repeat."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import msgspec
import optuna
from optuna.exceptions import UpdateFinishedTrialError

from optuna_spark.storages._remote import RemoteStorage
from optuna_spark.wire import messages as m
from optuna_spark.wire._client import Connection
from optuna_spark.wire._client import Endpoint
from optuna_spark.wire._errors import encode_error
from optuna_spark.worker._heartbeat import Heartbeat
from optuna_spark.worker._output import TrialOutput
from optuna_spark.worker._sampling import LocalSampling
from optuna_spark.worker._trial import RemoteTrial
from optuna_spark.worker._values import judge_returned

_logger = logging.getLogger(__name__)

Objective = Callable[[RemoteTrial], Any]
_Tell = m.TellValues | m.TellPruned | m.TellFailed


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to join a run: where the driver is and which run to serve.

    It pickles into a Spark closure and holds the server's token. Make it with
    :meth:`StudyRun.worker_spec <optuna_spark.remote.StudyRun.worker_spec>`, which sets ``sampler``
    and ``pruner`` when the run samples on its workers.

    Attributes:
        endpoint: The driver's service.
        run_id: The run to serve.
        heartbeat_interval: Seconds between the heartbeats of a busy worker.
        exit_if_stuck_after: End the worker process when a trial the driver has failed (for
            its time limit) still runs this many seconds later.
        sampler: Sample each trial's parameters here, with a copy of this sampler, instead of
            asking the driver (``sampling="workers"``).
        pruner: The study's pruner, for what ``sampler`` sees of the study (pruning itself is
            always decided by the driver).
        gc_after_trial: Run ``gc.collect()`` after each trial, as ``Study.optimize`` does
            with ``gc_after_trial=True``.
        capture_output: Send what each objective prints and logs to the driver (it still
            goes to this process's own streams too).
    """

    endpoint: Endpoint
    run_id: str
    heartbeat_interval: float = 5.0
    exit_if_stuck_after: float | None = None
    sampler: optuna.samplers.BaseSampler | None = None
    pruner: optuna.pruners.BasePruner | None = None
    gc_after_trial: bool = False
    capture_output: bool = True


@dataclasses.dataclass
class _Outcome:
    tell: _Tell
    reraise: BaseException | None = None

    @property
    def stops_the_study(self) -> bool:
        return isinstance(self.tell, m.TellFailed) and not self.tell.caught


def run_worker(
    spec: WorkerSpec,
    func: Objective,
    *,
    catch: tuple[type[Exception], ...] = (),
    info: dict[str, Any] | None = None,
) -> int:
    """Serve trials of ``spec``'s run until the driver says stop; returns how many ran.

    Exceptions of a type in ``catch`` fail only their trial. Any other exception fails the
    trial and stops the whole run: the driver re-raises it with this worker's traceback.

    Args:
        spec: The run to join (``StudyRun``'s server endpoint and id).
        func: The objective, called with a :class:`RemoteTrial`.
        catch: Exception types that fail a trial without stopping the study.
        info: Where this worker runs (recorded on each trial); host and pid are added. Keys
            of :class:`~optuna_spark.wire.messages.WorkerInfo` (``partition``,
            ``executor_id`` ...) fill those fields; any other key is kept under ``extra``.
    """
    if not isinstance(catch, tuple):
        raise TypeError(
            f"The catch argument is of type '{type(catch).__name__}' but must be a tuple."
        )
    worker = worker_info(info or {})
    conn = Connection(spec.endpoint)
    # One storage for every trial's ``trial.study``; it connects on first use only.
    storage = RemoteStorage.from_endpoint(spec.endpoint)
    beat = Heartbeat(conn, spec.run_id, spec.heartbeat_interval, spec.exit_if_stuck_after)
    output = TrialOutput(conn, spec.run_id) if spec.capture_output else None
    local = None
    if spec.sampler is not None:
        local = LocalSampling(conn, spec.run_id, storage, spec.sampler, spec.pruner)
    n = 0
    try:
        while True:
            reply: m.AskReply | None = conn.call(m.Ask(spec.run_id, worker))
            if reply is None:
                return n
            trial = RemoteTrial(
                conn,
                spec.run_id,
                reply.trial_id,
                reply.number,
                reply.study_name,
                storage,
                local,
            )
            captured = output.capture(reply.trial_id) if output else contextlib.nullcontext()
            with beat.watch(reply.trial_id), captured:
                outcome = _run_objective(func, trial, catch)
                if spec.gc_after_trial:
                    gc.collect()
            ended_by_driver = False
            try:
                conn.call(outcome.tell)
            except UpdateFinishedTrialError as e:
                # The driver already failed this trial (lost, timed out); an error its
                # objective raised since is a consequence of that, not a reason to stop.
                _logger.warning("The driver had already ended trial %d: %s", reply.number, e)
                ended_by_driver = True
            except ConnectionError:
                if outcome.reraise is None:
                    raise
                # Ctrl-C in the middle of a call closed the connection: the interruption,
                # not the connection, is what the caller must see.
            n += 1
            if outcome.reraise is not None:
                raise outcome.reraise
            if outcome.stops_the_study and not ended_by_driver:
                return n
    finally:
        beat.stop()
        if output is not None:
            output.stop()
        conn.close()
        storage.close()


def worker_info(info: dict[str, Any]) -> m.WorkerInfo:
    """``info`` as the wire's :class:`WorkerInfo`, with this process's host and pid."""
    known = set(m.WorkerInfo.__struct_fields__) - {"extra"}
    fields = {"host": socket.gethostname(), "pid": os.getpid()}
    fields.update({k: v for k, v in info.items() if k in known})
    extra = {k: v for k, v in info.items() if k not in known}
    try:
        return msgspec.convert({**fields, "extra": extra}, m.WorkerInfo)
    except msgspec.ValidationError as e:
        raise TypeError(f"Bad worker description {info!r}: {e}.") from None


def _run_objective(
    func: Objective, trial: RemoteTrial, catch: tuple[type[Exception], ...]
) -> _Outcome:
    run_id, trial_id = trial._run_id, trial._trial_id
    tell: _Tell
    try:
        value = func(trial)
    except optuna.TrialPruned:
        tell = m.TellPruned(run_id, trial_id)
    except Exception as e:
        tell = m.TellFailed(run_id, trial_id, encode_error(e), isinstance(e, catch))
    except KeyboardInterrupt as e:
        with contextlib.suppress(Exception):
            trial._conn.flush()
        return _Outcome(m.TellFailed(run_id, trial_id, encode_error(e), False), reraise=e)
    else:
        tell = judge_returned(run_id, trial_id, value)
    # Whatever the objective did, read the replies to its reports now: a report the driver
    # refused fails the trial, as it would have in-process (and is not left to refuse the
    # ``tell`` or the next ``ask`` instead).
    try:
        trial._conn.flush()
    except Exception as e:
        return _Outcome(m.TellFailed(run_id, trial_id, encode_error(e), isinstance(e, catch)))
    return _Outcome(tell)
