"""``RemoteStorage``: an Optuna storage served by a ``StorageServer``."""

from __future__ import annotations

import threading
from collections.abc import Container
from collections.abc import Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_spark import _codec as c
from optuna_spark._client import Connection
from optuna_spark._client import Endpoint


class RemoteStorage(BaseStorage):
    """An Optuna storage whose data lives behind a :class:`~optuna_spark.StorageServer`.

    Use it wherever Optuna takes a storage. It is thread-safe (one connection per concurrent
    caller, reused), and it pickles to its address and token: an unpickled copy connects
    again on first use, so it can travel inside a Spark closure.

    Args:
        host: The server's address.
        port: The server's port.
        token: The server's secret token (:attr:`StorageServer.token`).
        tls_cafile: Path to a PEM CA bundle to verify a TLS server with; switches TLS on.
        tls_cadata: The same as PEM text (for example the server's self-signed certificate).
        tls_server_hostname: Name to check the server certificate against (default ``host``).
        connect_timeout: Seconds to wait for a connection before failing with an error that
            names the address.
        timeout: Seconds to wait for any one reply (``None`` waits as long as it takes).

    Example:

        .. code-block:: python

            import optuna
            from optuna_spark import RemoteStorage, StorageServer

            with StorageServer("sqlite:///study.db") as server:
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
    def from_endpoint(cls, endpoint: Endpoint) -> RemoteStorage:
        """A storage for the server described by ``endpoint``."""
        self = cls.__new__(cls)
        self._init(endpoint)
        return self

    def _init(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._pool_lock = threading.Lock()
        self._idle: list[Connection] = []

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

    def _call(self, method: str, *args: Any) -> Any:
        with self._pool_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = Connection(self._endpoint)
        try:
            return conn.call(method, *args)
        finally:
            if not conn.closed:
                with self._pool_lock:
                    self._idle.append(conn)

    # -----------------------------------------------------------------------------------------
    # Studies.

    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        return int(self._call("create_new_study", c.directions_out(directions), study_name))

    def delete_study(self, study_id: int) -> None:
        self._call("delete_study", study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._call("set_study_user_attr", study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._call("set_study_system_attr", study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return int(self._call("get_study_id_from_name", study_name))

    def get_study_name_from_id(self, study_id: int) -> str:
        return str(self._call("get_study_name_from_id", study_id))

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return c.directions_in(self._call("get_study_directions", study_id))

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return dict(self._call("get_study_user_attrs", study_id))

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return dict(self._call("get_study_system_attrs", study_id))

    def get_all_studies(self) -> list[FrozenStudy]:
        return [c.study_in(s) for s in self._call("get_all_studies")]

    # -----------------------------------------------------------------------------------------
    # Trials.

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        template = None if template_trial is None else c.trial_out(template_trial)
        return int(self._call("create_new_trial", study_id, template))

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        self._call(
            "set_trial_param", trial_id, param_name, param_value_internal, c.dist_out(distribution)
        )

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return int(self._call("get_trial_id_from_study_id_trial_number", study_id, trial_number))

    def get_trial_number_from_id(self, trial_id: int) -> int:
        return int(self._call("get_trial_number_from_id", trial_id))

    def get_trial_param(self, trial_id: int, param_name: str) -> float:
        return float(self._call("get_trial_param", trial_id, param_name))

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        vals = None if values is None else [float(v) for v in values]
        return bool(self._call("set_trial_state_values", trial_id, int(state.value), vals))

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self._call("set_trial_intermediate_value", trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._call("set_trial_user_attr", trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._call("set_trial_system_attr", trial_id, key, value)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return c.trial_in(self._call("get_trial", trial_id))

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        wire_states = None if states is None else [int(s.value) for s in TrialState if s in states]
        return [c.trial_in(t) for t in self._call("get_all_trials", study_id, wire_states)]

    def get_n_trials(
        self, study_id: int, state: tuple[TrialState, ...] | TrialState | None = None
    ) -> int:
        wire: Any
        if state is None:
            wire = None
        elif isinstance(state, TrialState):
            wire = int(state.value)
        else:
            wire = [int(s.value) for s in state]
        return int(self._call("get_n_trials", study_id, wire))

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        return c.trial_in(self._call("get_best_trial", study_id))

    def get_trial_params(self, trial_id: int) -> dict[str, Any]:
        return dict(self._call("get_trial_params", trial_id))

    def get_trial_user_attrs(self, trial_id: int) -> dict[str, Any]:
        return dict(self._call("get_trial_user_attrs", trial_id))

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        return dict(self._call("get_trial_system_attrs", trial_id))
