"""``RemoteStorage``: an Optuna storage served by a ``StudyServer``."""

from __future__ import annotations

import threading
from collections.abc import Container
from collections.abc import Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.distributions import distribution_to_json
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark import _optuna_adapter as optuna_adapter
from optuna_spark._storages._cache import TrialCache
from optuna_spark.wire import messages as m
from optuna_spark.wire._client import Connection
from optuna_spark.wire._client import Endpoint
from optuna_spark.wire._convert import study_from_wire
from optuna_spark.wire._convert import trial_from_wire
from optuna_spark.wire._convert import trial_to_wire


class RemoteStorage(BaseStorage):
    """An Optuna storage whose data lives behind a :class:`~optuna_spark.StudyServer`.

    Use it wherever Optuna takes a storage. It is thread-safe (one connection per concurrent
    caller, reused), and it pickles to its address and token: an unpickled copy connects
    again on first use, so it can travel inside a Spark closure. Like Optuna's gRPC storage
    proxy it keeps finished trials, so reading a study's trials again costs only what changed.

    Args:
        host: The server's address.
        port: The server's port.
        token: The server's secret token (:attr:`StudyServer.token`).
        tls_cafile: Path to a PEM CA bundle to verify a TLS server with; switches TLS on.
        tls_cadata: The same as PEM text (for example the server's self-signed certificate).
        tls_server_hostname: Name to check the server certificate against (default ``host``).
        connect_timeout: Seconds to wait for a connection before failing with an error that
            names the address.
        timeout: Seconds to wait for any one reply (``None`` waits as long as it takes).

    Example:

        .. code-block:: python

            import optuna
            from optuna_spark.remote import RemoteStorage, StudyServer

            with StudyServer("sqlite:///study.db") as server:
                storage = RemoteStorage(server.host, server.port, server.token)
                study = optuna.create_study(study_name="s", storage=storage)
                study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=10, n_jobs=2)
    """

    def __init__(
        self,
        host: str,
        port: int,
        token: str,
        *,
        tls_cafile: str | None = None,
        tls_cadata: str | None = None,
        tls_server_hostname: str | None = None,
        connect_timeout: float = 10.0,
        timeout: float | None = None,
    ) -> None:
        self._init(
            Endpoint(
                host,
                int(port),
                token,
                tls_cadata=tls_cadata,
                tls_cafile=tls_cafile,
                tls_server_hostname=tls_server_hostname,
                connect_timeout=connect_timeout,
                timeout=timeout,
            )
        )

    @classmethod
    def from_endpoint(
        cls, endpoint: Endpoint, *, trial_writes: Connection | None = None
    ) -> RemoteStorage:
        """A storage for the server described by ``endpoint``.

        Args:
            endpoint: The server.
            trial_writes: The connection to send writes to a trial on: a worker's own
                connection to a run, the one that holds its trial (the server accepts writes
                to a running trial from that connection only). Reads, and a copy made by
                pickling, use connections of their own.
        """
        self = cls.__new__(cls)
        self._init(endpoint, trial_writes)
        return self

    def _init(self, endpoint: Endpoint, trial_writes: Connection | None = None) -> None:
        self._endpoint = endpoint
        self._trial_writes = trial_writes
        self._pool_lock = threading.Lock()
        self._idle: list[Connection] = []
        self._cache = TrialCache(self._fetch_trials)

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    def __getstate__(self) -> dict[str, Any]:
        return {"endpoint": self._endpoint}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._init(state["endpoint"])

    def __repr__(self) -> str:
        return f"RemoteStorage({self._endpoint.address!r})"

    def close(self) -> None:
        """Close the idle connections (any later call opens a new one)."""
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _call(self, request: m.Request) -> Any:
        conn = None
        while conn is None:
            with self._pool_lock:
                if not self._idle:
                    break
                conn = self._idle.pop()
            if conn.looks_closed():  # the server closed it while it was idle
                conn = None
        if conn is None:
            conn = Connection(self._endpoint)
        try:
            return conn.call(request)
        finally:
            if not conn.closed:
                with self._pool_lock:
                    self._idle.append(conn)

    def _write_trial(self, request: m.Request) -> Any:
        if self._trial_writes is not None:
            return self._trial_writes.call(request)
        return self._call(request)

    def _fetch_trials(self, study_id: int, include: list[int], after: int) -> list[FrozenTrial]:
        return [trial_from_wire(t) for t in self._call(m.GetTrials(study_id, include, after))]

    # -----------------------------------------------------------------------------------------
    # Studies.

    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        return int(self._call(m.CreateNewStudy(list(directions), study_name)))

    def delete_study(self, study_id: int) -> None:
        self._call(m.DeleteStudy(study_id))
        self._cache.forget(study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._call(m.SetStudyUserAttr(study_id, key, value))

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._call(m.SetStudySystemAttr(study_id, key, value))

    def get_study_id_from_name(self, study_name: str) -> int:
        return int(self._call(m.GetStudyIdFromName(study_name)))

    def get_study_name_from_id(self, study_id: int) -> str:
        return str(self._call(m.GetStudyNameFromId(study_id)))

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return list(self._call(m.GetStudyDirections(study_id)))

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return dict(self._call(m.GetStudyUserAttrs(study_id)))

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return dict(self._call(m.GetStudySystemAttrs(study_id)))

    def get_all_studies(self) -> list[optuna_adapter.FrozenStudy]:
        return [study_from_wire(s) for s in self._call(m.GetAllStudies())]

    # -----------------------------------------------------------------------------------------
    # Trials.

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        template = None if template_trial is None else trial_to_wire(template_trial)
        return int(self._call(m.CreateNewTrial(study_id, template)))

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        self._write_trial(
            m.SetTrialParam(
                trial_id,
                param_name,
                float(param_value_internal),
                distribution_to_json(distribution),
            )
        )

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return int(self._call(m.GetTrialIdFromStudyIdTrialNumber(study_id, trial_number)))

    def get_trial_number_from_id(self, trial_id: int) -> int:
        return int(self._call(m.GetTrialNumberFromId(trial_id)))

    def get_trial_param(self, trial_id: int, param_name: str) -> float:
        return float(self._call(m.GetTrialParam(trial_id, param_name)))

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        vals = None if values is None else [float(v) for v in values]
        return bool(self._write_trial(m.SetTrialStateValues(trial_id, state, vals)))

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self._write_trial(m.SetTrialIntermediateValue(trial_id, step, float(intermediate_value)))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._write_trial(m.SetTrialUserAttr(trial_id, key, value))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._write_trial(m.SetTrialSystemAttr(trial_id, key, value))

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return trial_from_wire(self._call(m.GetTrial(trial_id)))

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        return self._cache.get_all_trials(study_id, deepcopy, states)

    def get_n_trials(
        self, study_id: int, state: tuple[TrialState, ...] | TrialState | None = None
    ) -> int:
        states: list[TrialState] | None
        if state is None:
            states = None
        elif isinstance(state, TrialState):
            states = [state]
        else:
            states = list(state)
        return int(self._call(m.GetNTrials(study_id, states)))

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        return trial_from_wire(self._call(m.GetBestTrial(study_id)))

    def get_trial_params(self, trial_id: int) -> dict[str, Any]:
        return dict(self._call(m.GetTrialParams(trial_id)))

    def get_trial_user_attrs(self, trial_id: int) -> dict[str, Any]:
        return dict(self._call(m.GetTrialUserAttrs(trial_id)))

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        return dict(self._call(m.GetTrialSystemAttrs(trial_id)))
