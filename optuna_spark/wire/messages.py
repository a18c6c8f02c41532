"""Every message on the wire, as typed msgspec structures shared by both ends.

A request is a tagged array: its first element names the request (``"get_trial"``,
``"run.ask"``), the others are its fields in the order declared here. Decoding validates every
field's type (a ``bool`` is not an ``int``, an unknown tag is refused) before any handler sees
the request. Each request class names the type of its reply in ``reply``; replies travel as
:class:`Reply` envelopes whose body is decoded with that type (or :class:`ErrorInfo`).

The meaning of every position lives here and nowhere else.
"""

from __future__ import annotations

import datetime
from typing import Annotated
from typing import Any
from typing import ClassVar

import msgspec
from optuna.study import StudyDirection
from optuna.trial import TrialState

#: Bumped whenever a message changes shape; both ends must speak the same version.
PROTOCOL_VERSION = 8

#: What a categorical parameter may be on the wire (Optuna's ``CategoricalChoiceType``).
Choice = None | bool | int | float | str


class Request(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, tag=True):
    """Base class of requests; ``reply`` is the type the server answers with."""

    reply: ClassVar[Any] = None


class RunRequest(Request, frozen=True):
    """A request about one optimization run open on the server."""

    run_id: str


class TrialRequest(RunRequest, frozen=True):
    """A request about one trial a worker is running."""

    trial_id: int


# ---------------------------------------------------------------------------------------------
# Data.


#: The most characters of an exception's message, and of its traceback, that travel (each
#: cut in the middle, with a note of what was left out): an error of any size fits a request.
MAX_ERROR_TEXT = 64 * 1024


class ErrorInfo(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """An exception raised on the other end (message and traceback at most
    :data:`MAX_ERROR_TEXT` characters each)."""

    type: str
    message: str
    traceback: str = ""
    bases: list[str] = []


class Reply(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """The envelope of every reply: ``body`` is the result, or an :class:`ErrorInfo`."""

    ok: bool
    body: msgspec.Raw


class TrialData(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """An Optuna ``FrozenTrial``; distributions as ``distribution_to_json`` text."""

    trial_id: int
    number: int
    state: TrialState
    values: list[float] | None
    datetime_start: datetime.datetime | None
    datetime_complete: datetime.datetime | None
    params: dict[str, Any]
    distributions: dict[str, str]
    user_attrs: dict[str, Any]
    system_attrs: dict[str, Any]
    intermediate_values: dict[int, float]


class StudyData(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """An Optuna ``FrozenStudy``."""

    study_id: int
    study_name: str
    directions: list[StudyDirection]
    user_attrs: dict[str, Any]
    system_attrs: dict[str, Any]


class WorkerInfo(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """Where a worker runs, recorded on each of its trials (``optuna_spark:worker``)."""

    host: str
    pid: int
    stage: int | None = None
    partition: int | None = None
    attempt: int | None = None
    task_attempt_id: int | None = None
    executor_id: str | None = None
    gpus: list[str] | None = None
    profile: str | None = None  # the resource profile it serves (trials made for it only)
    extra: dict[str, str | int | float | bool | None] = {}


class AskReply(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """A trial handed to a worker."""

    trial_id: int
    number: int
    study_name: str


class PoolAskReply(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """A trial of one of a pool's runs, handed to a worker: later requests about it name
    ``run_id``."""

    run_id: str
    trial_id: int
    number: int
    study_name: str


class RunningTrialData(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """What a worker may read of the trial it runs."""

    params: dict[str, Any]
    distributions: dict[str, str]
    user_attrs: dict[str, Any]
    datetime_start: datetime.datetime | None
    constraints: dict[str, float]


# ---------------------------------------------------------------------------------------------
# Requests any client may send: the storage, method by method (``optuna.storages.BaseStorage``).


class Ping(Request, frozen=True, tag="ping"):
    reply = str


class CreateNewStudy(Request, frozen=True, tag="create_new_study"):
    directions: list[StudyDirection]
    study_name: str | None
    reply = int


class DeleteStudy(Request, frozen=True, tag="delete_study"):
    study_id: int


class SetStudyUserAttr(Request, frozen=True, tag="set_study_user_attr"):
    study_id: int
    key: str
    value: Any


class SetStudySystemAttr(Request, frozen=True, tag="set_study_system_attr"):
    study_id: int
    key: str
    value: Any


class GetStudyIdFromName(Request, frozen=True, tag="get_study_id_from_name"):
    study_name: str
    reply = int


class GetStudyNameFromId(Request, frozen=True, tag="get_study_name_from_id"):
    study_id: int
    reply = str


class GetStudyDirections(Request, frozen=True, tag="get_study_directions"):
    study_id: int
    reply = list[StudyDirection]


class GetStudyUserAttrs(Request, frozen=True, tag="get_study_user_attrs"):
    study_id: int
    reply = dict[str, Any]


class GetStudySystemAttrs(Request, frozen=True, tag="get_study_system_attrs"):
    study_id: int
    reply = dict[str, Any]


class GetAllStudies(Request, frozen=True, tag="get_all_studies"):
    reply = list[StudyData]


class CreateNewTrial(Request, frozen=True, tag="create_new_trial"):
    study_id: int
    template: TrialData | None
    reply = int


class SetTrialParam(Request, frozen=True, tag="set_trial_param"):
    trial_id: int
    name: str
    value_internal: float
    distribution: str


class GetTrialIdFromStudyIdTrialNumber(
    Request, frozen=True, tag="get_trial_id_from_study_id_trial_number"
):
    study_id: int
    number: int
    reply = int


class GetTrialNumberFromId(Request, frozen=True, tag="get_trial_number_from_id"):
    trial_id: int
    reply = int


class GetTrialParam(Request, frozen=True, tag="get_trial_param"):
    trial_id: int
    name: str
    reply = float


class SetTrialStateValues(Request, frozen=True, tag="set_trial_state_values"):
    trial_id: int
    state: TrialState
    values: list[float] | None
    reply = bool


class SetTrialIntermediateValue(Request, frozen=True, tag="set_trial_intermediate_value"):
    trial_id: int
    step: int
    value: float


class SetTrialUserAttr(Request, frozen=True, tag="set_trial_user_attr"):
    trial_id: int
    key: str
    value: Any


class SetTrialSystemAttr(Request, frozen=True, tag="set_trial_system_attr"):
    trial_id: int
    key: str
    value: Any


class GetTrial(Request, frozen=True, tag="get_trial"):
    trial_id: int
    reply = TrialData


class GetTrials(Request, frozen=True, tag="get_trials"):
    """The study's trials that the client does not hold finished already.

    That is every trial whose id is in ``include`` or above ``after_trial_id``; ``include=[]``
    and ``after_trial_id=-1`` read them all.
    """

    study_id: int
    include: list[int]
    after_trial_id: int
    reply = list[TrialData]


class GetNTrials(Request, frozen=True, tag="get_n_trials"):
    study_id: int
    states: list[TrialState] | None
    reply = int


class GetBestTrial(Request, frozen=True, tag="get_best_trial"):
    study_id: int
    reply = TrialData


class GetTrialParams(Request, frozen=True, tag="get_trial_params"):
    trial_id: int
    reply = dict[str, Any]


class GetTrialUserAttrs(Request, frozen=True, tag="get_trial_user_attrs"):
    trial_id: int
    reply = dict[str, Any]


class GetTrialSystemAttrs(Request, frozen=True, tag="get_trial_system_attrs"):
    trial_id: int
    reply = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Requests of workers serving a run.


class Ask(RunRequest, frozen=True, tag="run.ask"):
    """The next trial for this worker; ``None`` tells it to stop."""

    worker: WorkerInfo
    reply = AskReply | None


class AskPool(RunRequest, frozen=True, tag="run.ask_pool"):
    """The next trial of any study of the pool ``run_id``; ``None`` tells the worker to stop."""

    worker: WorkerInfo
    reply = PoolAskReply | None


class SuggestFloat(TrialRequest, frozen=True, tag="run.suggest_float"):
    name: str
    low: float
    high: float
    step: float | None
    log: bool
    reply = float


class SuggestInt(TrialRequest, frozen=True, tag="run.suggest_int"):
    name: str
    low: int
    high: int
    step: int
    log: bool
    reply = int


class SuggestCategorical(TrialRequest, frozen=True, tag="run.suggest_categorical"):
    name: str
    choices: list[Choice]
    reply = Choice


class SetUserAttr(TrialRequest, frozen=True, tag="run.set_user_attr"):
    key: str
    value: Any


class SetCheckpoint(TrialRequest, frozen=True, tag="run.set_checkpoint"):
    """Record the trial's latest checkpoint (``optuna_spark.checkpoint``): accepted only from
    the worker that holds the trial, so that a worker taken for lost cannot overwrite the
    checkpoint of the run that resumed it."""

    record: dict[str, Any]


class SetConstraint(TrialRequest, frozen=True, tag="run.set_constraint"):
    key: str
    value: float


class GetRunningTrial(TrialRequest, frozen=True, tag="run.get_trial"):
    reply = RunningTrialData


class Report(TrialRequest, frozen=True, tag="run.report"):
    """An intermediate value; workers send it without waiting for the reply."""

    value: float
    step: int


#: The most of one trial's output a worker sends (then one line says what it left out).
MAX_TRIAL_OUTPUT = 1 << 20


class TrialOutput(TrialRequest, frozen=True, tag="run.output"):
    """What the objective printed or logged since the last one; sent without waiting.

    The driver ignores it for a trial it no longer runs (it never answers with an error), and
    keeps at most about :data:`MAX_TRIAL_OUTPUT` characters of a trial's.
    """

    text: str


class PruneReply(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """The pruner's answer; ``save``: the trial's executor is being decommissioned, so the
    objective's next checkpoint hands the trial back (``optuna_spark.checkpoint``)."""

    prune: bool
    save: bool = False


class ShouldPrune(TrialRequest, frozen=True, tag="run.should_prune"):
    reply = PruneReply


#: The most trial ids one heartbeat may list (a worker runs one trial per connection).
MAX_HEARTBEAT_IDS = 64


class HeartbeatReply(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """The trials of a heartbeat that the driver no longer runs (``gone``), and those whose
    executor is being decommissioned (``save``: see :class:`PruneReply`)."""

    gone: list[int]
    save: list[int] = []


class Heartbeat(RunRequest, frozen=True, tag="run.heartbeat"):
    """Signs of life; the reply says which trials the driver no longer runs."""

    trial_ids: Annotated[list[int], msgspec.Meta(max_length=MAX_HEARTBEAT_IDS)]
    reply = HeartbeatReply


class TellValues(TrialRequest, frozen=True, tag="run.tell_values"):
    """The objective returned ``values`` (as floats; ``None`` when it returned ``None``).

    Optuna's own checks decide the state on the driver (NaN, the number of objectives).
    ``unusable`` is set instead when the worker found a value that cannot be cast to float:
    Optuna's message, and the trial fails as it would in-process.
    """

    values: list[float] | None
    unusable: str | None = None


class TellPruned(TrialRequest, frozen=True, tag="run.tell_pruned"):
    """The objective raised ``optuna.TrialPruned``; ``message`` is ``str()`` of it (Optuna's
    "Trial was pruned at iteration N.", or the objective's own words)."""

    message: str = ""


class TellFailed(TrialRequest, frozen=True, tag="run.tell_failed"):
    """The objective raised ``error``; ``caught`` when its type is in ``catch``."""

    error: ErrorInfo
    caught: bool


class TellHandBack(TrialRequest, frozen=True, tag="run.tell_hand_back"):
    """The objective saved a checkpoint after its executor began decommissioning: the trial
    goes back to the run, RUNNING, to resume on another worker."""

    step: int


class StopStudy(RunRequest, frozen=True, tag="run.stop_study"):
    """``study.stop()`` called by an objective."""
