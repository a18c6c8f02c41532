"""The wire schema: one typed definition of every message, validated while decoded."""

from __future__ import annotations

import datetime
import inspect
import math
from typing import Any

import msgspec
import optuna
import pytest
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_spark import ProtocolError
from optuna_spark.exceptions import RemoteError
from optuna_spark.remote import StudyServer
from optuna_spark.wire import _codec as codec
from optuna_spark.wire import messages as m
from optuna_spark.wire._convert import trial_from_wire
from optuna_spark.wire._convert import trial_to_wire
from optuna_spark.wire._errors import encode_error
from optuna_spark.wire._errors import rebuild_error


def _request_types() -> list[type[m.Request]]:
    return [
        obj
        for obj in vars(m).values()
        if inspect.isclass(obj)
        and issubclass(obj, m.Request)
        and obj not in (m.Request, m.RunRequest, m.TrialRequest)
    ]


def test_every_request_has_exactly_one_route_and_a_unique_tag() -> None:
    server = StudyServer(optuna.storages.InMemoryStorage())
    routed = set(server._routes)
    assert routed == set(_request_types())
    tags = [t.__struct_config__.tag for t in _request_types()]
    assert len(tags) == len(set(tags))


def test_a_request_travels_as_its_tag_then_its_fields_in_order() -> None:
    body = codec.encode(m.SuggestFloat("run", 7, "x", 0.0, 1.0, None, True))
    assert msgspec.msgpack.decode(body) == [
        "run.suggest_float",
        "run",
        7,
        "x",
        0.0,
        1.0,
        None,
        True,
    ]


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (["delete_study", True], "Expected `int`, got `bool`"),
        (["get_trial"], "Expected `array` of at least length"),
        (["get_trial", 1, 2], "Expected `array` of at most length"),
        (["get_trial", "1"], "Expected `int`, got `str`"),
        (["set_trial_state_values", 1, 99, None], "Invalid enum value 99"),
        (["run.tell_failed", "r", 1, ["ValueError"], False], "at least length 2"),
        (["run.ask", "r", {"host": "h", "pid": 1, "cpu": 3}], "unknown field `cpu`"),
        (["run.ask", "r", ["h", 1]], "Expected `object`, got `array`"),
        (["nope"], "Invalid value 'nope'"),
        ({"get_trial": 1}, "Expected `array`, got `object`"),
    ],
)
def test_a_request_that_does_not_fit_the_schema_is_refused_saying_why(raw: Any, why: str) -> None:
    union = StudyServer(optuna.storages.InMemoryStorage())._request_type
    with pytest.raises(ProtocolError, match="does not fit the wire schema") as info:
        codec.decode(msgspec.msgpack.encode(raw), union)
    assert why in str(info.value)


def test_undecodable_bytes_are_refused_with_a_reason() -> None:
    with pytest.raises(ProtocolError, match=r"not valid msgpack: .+"):
        codec.decode(b"\xc1", m.Ping)


def test_a_trial_survives_the_wire_exactly() -> None:
    study = optuna.create_study(directions=["minimize", "maximize"])
    trial = study.ask()
    trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    trial.suggest_int("layers", 1, 4)
    trial.suggest_categorical("act", ["relu", None, 1.5])
    trial.set_user_attr("note", {"nested": [1, "a", None]})
    study.tell(trial, [math.inf, -1.0])
    frozen = study.trials[0]
    data = codec.decode(codec.encode(trial_to_wire(frozen)), m.TrialData)
    assert trial_from_wire(data) == frozen
    assert isinstance(data.datetime_start, datetime.datetime)
    assert data.state is TrialState.COMPLETE


def test_replies_carry_a_result_or_an_error() -> None:
    ok = codec.encode_reply(True, [StudyDirection.MAXIMIZE])
    assert codec.decode_reply(ok, m.GetStudyDirections.reply) == (True, [StudyDirection.MAXIMIZE])
    try:
        raise KeyError("no study 3")
    except KeyError as e:
        bad = codec.encode_reply(False, encode_error(e))
    okay, error = codec.decode_reply(bad, int)
    assert not okay and isinstance(error, m.ErrorInfo)
    rebuilt = rebuild_error(error)
    assert type(rebuilt) is KeyError and rebuilt.args == ("no study 3",)


def test_numpy_numbers_travel_as_python_numbers_and_objects_are_refused() -> None:
    import numpy as np

    body = codec.encode(m.SetTrialUserAttr(1, "k", [np.float32(0.5), np.int64(3)]))
    assert msgspec.msgpack.decode(body)[-1] == [0.5, 3]
    with pytest.raises(TypeError, match="cannot be sent to the driver"):
        codec.encode(m.SetTrialUserAttr(1, "k", object()))


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (Exception("data download failed"), Exception),
        (KeyboardInterrupt(), None),  # never looks like one of ours
        (ValueError("bad"), ValueError),
    ],
)
def test_an_error_comes_back_as_its_own_type_builtins_included(
    raised: BaseException, expected: type[BaseException] | None
) -> None:
    rebuilt = rebuild_error(encode_error(raised))
    if expected is None:
        assert isinstance(rebuilt, RemoteError)
    else:
        assert type(rebuilt) is expected and str(rebuilt) == str(raised)


def test_a_type_unknown_here_whose_only_base_is_exception_is_a_remote_error() -> None:
    info = m.ErrorInfo("elsewhere.OddError", "odd", "Traceback ...", ["Exception"])
    rebuilt = rebuild_error(info)
    assert isinstance(rebuilt, RemoteError) and "elsewhere.OddError" in str(rebuilt)
