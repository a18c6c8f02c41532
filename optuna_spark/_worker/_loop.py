"""The worker loop: ask the driver for a trial, run the objective, tell the outcome, repeat."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import socket
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

import msgspec
import optuna
from optuna.exceptions import UpdateFinishedTrialError

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._storages._remote import RemoteStorage
from optuna_spark._validate import check_catch
from optuna_spark._worker._heartbeat import Heartbeat
from optuna_spark._worker._output import TrialOutput
from optuna_spark._worker._sampling import LocalSampling
from optuna_spark._worker._trial import RemoteTrial
from optuna_spark._worker._values import judge_returned
from optuna_spark.checkpoint._api import HandBack
from optuna_spark.checkpoint._api import remove
from optuna_spark.checkpoint._api import used
from optuna_spark.wire import messages as m
from optuna_spark.wire._client import Connection
from optuna_spark.wire._errors import encode_error
from optuna_spark.wire.spec import WorkerSpec

_logger = logging.getLogger(__name__)

Objective = Callable[[RemoteTrial], Any]
_Tell = m.TellValues | m.TellPruned | m.TellFailed | m.TellHandBack


@dataclasses.dataclass
class _Outcome:
    tell: _Tell
    reraise: BaseException | None = None

    @property
    def stops_the_study(self) -> bool:
        return isinstance(self.tell, m.TellFailed) and not self.tell.caught


def run_worker(
    spec: WorkerSpec,
    func: Objective | Mapping[str, Objective],
    *,
    catch: tuple[type[Exception], ...] = (),
    info: dict[str, Any] | None = None,
) -> int:
    """Serve trials of ``spec``'s run until the driver says stop; returns how many ran.

    Exceptions of a type in ``catch`` fail only their trial. Any other exception fails the
    trial and stops the whole run: the driver re-raises it with this worker's traceback.

    Args:
        spec: The run to join (``StudyRun``'s server endpoint and id).
        func: The objective, called with a :class:`RemoteTrial`; or, for a pool of studies
            (``spec.pool``), a mapping from each study's name to its objective.
        catch: Exception types that fail a trial without stopping the study.
        info: Where this worker runs (recorded on each trial); host and pid are added. Keys
            of :class:`~optuna_spark.wire.messages.WorkerInfo` (``partition``,
            ``executor_id`` ...) fill those fields; any other key is kept under ``extra``.
    """
    check_catch(catch)
    worker = worker_info({**(info or {}), "profile": spec.profile})
    conn = Connection(spec.endpoint)
    # One storage for every trial's ``trial.study``; it connects on first use only, and
    # writes to the trial on ``conn``, which holds it.
    storage = RemoteStorage.from_endpoint(spec.endpoint, trial_writes=conn)
    current: list[RemoteTrial] = []  # the trial running now, for the heartbeat's news

    def request_save(trial_id: int) -> None:
        for trial in current:
            if trial_id == optuna_adapter.trial_id_of(trial):
                trial.request_save()

    beat = Heartbeat(
        conn, spec.run_id, spec.heartbeat_interval, spec.exit_if_stuck_after, request_save
    )
    output = TrialOutput(conn, spec.run_id)
    samplings = _Samplings(conn, storage, spec)
    n = 0
    try:
        while True:
            reply = _ask(conn, spec, worker)
            if reply is None:
                return n
            run_id = reply.run_id if isinstance(reply, m.PoolAskReply) else spec.run_id
            trial = RemoteTrial(
                conn,
                run_id,
                reply.trial_id,
                reply.number,
                reply.study_name,
                storage,
                samplings.of(run_id),
                spec.checkpoint_store,
            )
            current[:] = [trial]
            objective = func[reply.study_name] if isinstance(func, Mapping) else func
            with beat.watch(reply.trial_id, run_id), output.capture(reply.trial_id, run_id):
                outcome = _run_objective(objective, trial, catch, run_id, reply.trial_id)
                if spec.gc_after_trial:
                    gc.collect()
            current.clear()
            ended_by_driver = _tell(conn, outcome, trial, spec, storage)
            n += 1
            if outcome.reraise is not None:
                raise outcome.reraise
            if outcome.stops_the_study and not ended_by_driver and not spec.pool:
                return n  # (a pool's other studies go on: the pool says when to stop)
    finally:
        beat.stop()
        output.stop()
        conn.close()
        storage.close()


def _ask(
    conn: Connection, spec: WorkerSpec, worker: m.WorkerInfo
) -> m.AskReply | m.PoolAskReply | None:
    """The next trial: of the worker's run, or of any study of its pool."""
    if spec.pool:
        pooled: m.PoolAskReply | None = conn.call(m.AskPool(spec.run_id, worker))
        return pooled
    own: m.AskReply | None = conn.call(m.Ask(spec.run_id, worker))
    return own


class _Samplings:
    """This worker's samplers (``sampling="workers"``), one per run, made on first use."""

    def __init__(self, conn: Connection, storage: RemoteStorage, spec: WorkerSpec) -> None:
        self._conn, self._storage = conn, storage
        self._samplers: dict[str, tuple[Any, Any]] = dict(spec.samplers)
        if spec.sampler is not None:
            self._samplers[spec.run_id] = (spec.sampler, spec.pruner)
        self._made: dict[str, LocalSampling] = {}

    def of(self, run_id: str) -> LocalSampling | None:
        if run_id not in self._made and run_id in self._samplers:
            sampler, pruner = self._samplers[run_id]
            self._made[run_id] = LocalSampling(self._conn, run_id, self._storage, sampler, pruner)
        return self._made.get(run_id)


def _tell(
    conn: Connection, outcome: _Outcome, trial: RemoteTrial, spec: WorkerSpec, storage: Any
) -> bool:
    """Tell the driver how the trial ended; returns whether the driver had ended it first."""
    try:
        conn.call(outcome.tell)
    except UpdateFinishedTrialError as e:
        # The driver already failed this trial (lost, timed out) or handed it to another
        # worker; an error its objective raised since is a consequence, not a reason to stop.
        _logger.warning("The driver had already ended trial %d: %s", trial.number, e)
        return True
    except ConnectionError:
        if outcome.reraise is None:
            raise
        # Ctrl-C in the middle of a call closed the connection: the interruption, not the
        # connection, is what the caller must see.
        return False
    if isinstance(outcome.tell, m.TellHandBack):
        return False  # the trial resumes from its checkpoint elsewhere
    if used(trial) and spec.checkpoint_store is not None and not spec.keep_checkpoints:
        _remove_checkpoint(storage, optuna_adapter.trial_id_of(trial), spec.checkpoint_store)
    return False


def _remove_checkpoint(storage: RemoteStorage, trial_id: int, store: Any) -> None:
    """The trial's end is recorded: its last checkpoint is of no more use."""
    try:
        remove(storage.get_trial(trial_id), store)
    except Exception:  # a stale checkpoint costs space, never the study
        _logger.warning("Could not remove the checkpoint of a finished trial.", exc_info=True)


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
    func: Objective,
    trial: RemoteTrial,
    catch: tuple[type[Exception], ...],
    run_id: str,
    trial_id: int,
) -> _Outcome:
    tell: _Tell
    try:
        value = func(trial)
    except optuna.TrialPruned as e:
        tell = m.TellPruned(run_id, trial_id, str(e))
    except HandBack as e:  # saved after the driver asked: the trial resumes elsewhere
        tell = m.TellHandBack(run_id, trial_id, e.step)
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
