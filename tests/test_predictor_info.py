"""PredictorInfo: what a method reports, typed. A misspelt key fails where it is written or
read (a dict gave None), and the stored JSON keeps exactly the keys that were set."""

from __future__ import annotations

import json

import pytest

from tunelab.core.store import Store
from tunelab.decide.arms import load_arms
from tunelab.eval.predictor import FIELDS, PredictorInfo


def test_a_misspelt_field_fails_where_it_is_written_or_read():
    info = PredictorInfo(trainable_params=0)
    with pytest.raises(TypeError, match="trainable_parms"):
        PredictorInfo(trainable_parms=0)
    with pytest.raises(AttributeError, match="train_second"):
        info.train_second = 1.0
    with pytest.raises(AttributeError):
        _ = info.train_second
    with pytest.raises(AttributeError):
        info.update(virtual_token=4)
    assert info.train_seconds is None  # a real field never set: None


def test_json_holds_the_keys_set_in_their_order_and_old_keys_are_ignored():
    info = PredictorInfo(trainable_params=0, shots={})
    info.teacher_model = None  # set to None: stored, as a dict stored it
    info.extra["recall_at_2"] = 0.5
    assert list(info.to_json().items()) == [("trainable_params", 0), ("shots", {}),
                                            ("teacher_model", None), ("recall_at_2", 0.5)]
    assert info.is_set("teacher_model") and not info.is_set("teacher")
    back = PredictorInfo.from_json({"losses": [2.0, 1.0], "a_key_of_another_version": 3})
    assert back.to_json() == {"losses": [2.0, 1.0]}
    assert "extra" in FIELDS and PredictorInfo.from_json({"extra": {"x": 1}}).to_json() == {}


def test_a_stored_cells_info_reads_back_typed(tmp_path):
    s = Store(tmp_path / "s.db")
    s.begin("a", {"task": "viggo", "model": "m", "method": "lora", "label": "lora", "n_train": 8, "seed": 0,
                  "config": {"cell": {"trained": True, "primary": "slot_f1"}}})
    stored = {"train_steps": 12, "epochs_trained": 1.5, "stop_reason": "early_stop", "old_key": 1,
              "settings_search": None, "latency_s_mean": 0.25}
    rows = [{"idx": 0, "example_id": "e", "input": "i", "target": "t", "prediction": "p",
             "scores": {"slot_f1": 1.0}, "prompt_tokens": 1, "gen_tokens": 1, "latency_s": 0.1}]
    s.finish("a", {"info": stored}, {"slot_f1": (1.0, 1.0, 1.0)}, {"slot_f1": True}, rows)
    (arm,) = load_arms(s)
    assert json.loads(arm.runs[0]["info"]) == stored  # the store keeps what was written
    assert arm.info.train_steps == 12 and arm.info_mean("latency_s_mean") == 0.25
    assert arm.training == "12 steps, 1.5 ep, early stop"
    with pytest.raises(AttributeError):
        arm.info_mean("latency_mean")
