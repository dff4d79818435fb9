"""Typed predictor inputs are checked before any LM call (issue 14, item 9)."""

from __future__ import annotations

from typing import Literal

import pydantic
import pytest

import dsx
from dsx.errors import InputTypeError
from dsx.testing import DummyLM


class Item(pydantic.BaseModel):
    name: str
    qty: int


class Order(dsx.Signature):
    """Price an order."""

    items: list[Item] = dsx.InputField()
    discount: float = dsx.InputField()
    tier: Literal["basic", "gold"] = dsx.InputField()
    note: str = dsx.InputField()
    total: float = dsx.OutputField()


def test_wrong_typed_inputs_fail_before_the_lm_is_called():
    lm = DummyLM([{"total": 1.0}])
    predict = dsx.Predict(Order)
    with dsx.context(lm=lm):
        with pytest.raises(
            InputTypeError, match=r"input `discount` should be float, got str 'ten'"
        ):
            predict(items=[], discount="ten", tier="gold", note="x")
        with pytest.raises(InputTypeError, match=r"input `tier` should be .*got str 'platinum'"):
            predict(items=[], discount=0.1, tier="platinum", note="x")
        with pytest.raises(InputTypeError, match=r"input `items`.*\[0\]\['qty'\]"):
            predict(items=[{"name": "pen", "qty": "many"}], discount=0.1, tier="gold", note="x")
    assert len(lm.history) == 0  # nothing was sent


def test_values_that_fit_are_coerced_and_text_takes_anything():
    lm = DummyLM([{"total": 9.5}])
    predict = dsx.Predict(Order)
    with dsx.context(lm=lm):
        pred = predict(items=[{"name": "pen", "qty": "2"}], discount=1, tier="gold", note=42)
    assert pred.total == 9.5
    prompt = str(lm.history[-1]["messages"])
    assert '"qty": 2' in prompt or "'qty': 2" in prompt  # coerced to the declared int


async def test_async_calls_check_too():
    predict = dsx.Predict("question, k: int -> answer")
    with dsx.context(lm=DummyLM([{"answer": "a"}])), pytest.raises(InputTypeError):
        await predict.acall(question="q", k="three")


def _data(tmp_path, fmt: str, text: str):
    from dsx import ir
    from dsx.runtime.instantiate import load_data

    (tmp_path / f"d.{fmt}").write_text(text)
    ds = ir.build(
        ir.DataSet, name="d", format=fmt, path=f"d.{fmt}", base_dir=str(tmp_path), inputs=("q",)
    )
    return load_data(ds)


def test_empty_datasets_and_ragged_csv_are_errors(tmp_path):
    with pytest.raises(dsx.DsxError, match="holds no examples"):
        _data(tmp_path, "jsonl", "\n\n")
    with pytest.raises(dsx.DsxError, match="holds no examples"):
        _data(tmp_path, "csv", "q,a\n")
    with pytest.raises(dsx.DsxError, match=r"line 3 has 3 cell\(s\) but the header has 2"):
        _data(tmp_path, "csv", "q,a\nx,1\ny,2,3\n")
    with pytest.raises(dsx.DsxError, match=r"line 2 has 1 cell\(s\)"):
        _data(tmp_path, "csv", "q,a\nonly\n")
    rows = _data(tmp_path, "csv", 'q,a\n"x, with comma",1\n')
    assert rows[0].q == "x, with comma" and set(rows[0].inputs().keys()) == {"q"}
