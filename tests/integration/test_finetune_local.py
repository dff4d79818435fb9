"""Local LoRA fine-tuning end to end on a tiny GPT-2 created here (no downloads): the loss on
the training data goes down, the adapter directory is served by LocalLM, BootstrapFinetune
uses it, unchanged data is not trained again, and cancellation stops the thread."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import pytest

import dsx
from dsx.runtime.finetune import FinetuneCancelled, FinetuneError
from dsx.runtime.finetune.local import LocalLM
from dsx.teleprompt import BootstrapFinetune
from dsx.testing import FunctionLM

pytestmark = [pytest.mark.slow, pytest.mark.finetune]


def _need(name: str) -> Any:
    # The finetune extra; `make test` installs it, so in CI a missing one is a failure.
    try:
        return importlib.import_module(name)
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{name} is missing: pip install -e '.[finetune]' (make test installs it)")


torch = _need("torch")
transformers = _need("transformers")
_need("peft")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer GPT-2 with a byte-level BPE tokenizer trained on a few lines, saved offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    directory = tmp_path_factory.mktemp("tiny-gpt2")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [
        "<|system|> <|user|> <|assistant|> question answer yes no even odd",
        "Your input fields are: question. Your output fields are: answer.",
        "<<< question >>> <<< answer >>> <<< end >>> Reply with",
    ]
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<eos>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    tokenizer.save_pretrained(directory)
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=512,
        n_embd=32,
        n_layer=2,
        n_head=2,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    transformers.GPT2LMHeadModel(config).save_pretrained(directory)
    return directory


def _data(n: int = 8) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "system", "content": "Answer yes or no."},
                {"role": "user", "content": f"question: is {i} even?"},
                {"role": "assistant", "content": "yes" if i % 2 == 0 else "no"},
            ]
        }
        for i in range(n)
    ]


SETTINGS = {"epochs": 8, "learning_rate": 5e-3, "batch_size": 4, "lora_r": 4, "seed": 0}


def test_lora_lowers_the_loss_and_the_adapter_is_served(tiny_model: Path, tmp_path: Path) -> None:
    lm = LocalLM(f"hf/{tiny_model}", max_tokens=4)
    out = tmp_path / "adapter"
    job = lm.finetune(_data(), {**SETTINGS, "output_dir": str(out)})
    tuned = job.result()
    assert job.status() == "succeeded"
    assert job.final_loss < job.initial_loss  # measured on the training data
    assert job.losses[-1] < job.losses[0]
    assert (out / "adapter_config.json").is_file()
    assert any(p.name.startswith("adapter_model") for p in out.iterdir())
    assert isinstance(tuned, LocalLM) and tuned.model == f"hf/{out.resolve()}"
    assert tuned.finetuned.provider == "local"
    assert tuned.finetuned.base_model == f"hf/{tiny_model}"
    messages = [e.message for e in job.events()]
    assert messages[0].startswith("Training a LoRA adapter on 8 examples")
    assert messages[-1].startswith("Saved the adapter")
    [text] = tuned("question: is 3 even?")  # served in process from the adapter directory
    assert isinstance(text, str)
    # the same data and settings again: the adapter is reused, not trained again
    again = lm.finetune(_data(), {**SETTINGS, "output_dir": str(out)})
    assert again.result().model == tuned.model
    assert again.events()[0].message.startswith("Reusing")


def test_bootstrap_finetune_with_a_local_student(tiny_model: Path, tmp_path: Path) -> None:
    def teacher_answers(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        return {"answer": "yes" if "even" in messages[-1]["content"] else "no"}

    student = dsx.Predict("question -> answer", lm=LocalLM(f"hf/{tiny_model}", max_tokens=8))
    teacher = dsx.Predict("question -> answer", lm=FunctionLM(teacher_answers))
    trainset = [
        dsx.Example(
            question=f"{'even' if i % 2 == 0 else 'odd'} {i}", answer="yes" if i % 2 == 0 else "no"
        ).with_inputs("question")
        for i in range(6)
    ]
    opt = BootstrapFinetune(
        metric=lambda ex, pred, trace=None: ex.answer == pred.answer,
        train_kwargs={"epochs": 4, "lora_r": 4, "output_dir": str(tmp_path / "a")},
        display_progress=False,
    )
    tuned = opt.compile(student, trainset=trainset, teacher=teacher)
    assert tuned.lm.model == f"hf/{(tmp_path / 'a').resolve()}"
    assert opt.jobs[0].final_loss < opt.jobs[0].initial_loss
    state = tuned.dump_state()["lm"]
    assert state["finetuned"]["data_hash"] == opt.data[0].hash
    restored = dsx.Predict("question -> answer", lm=LocalLM(f"hf/{tiny_model}"))
    restored.load_state(tuned.dump_state())
    assert restored.lm.model == tuned.lm.model and restored.lm.finetuned == tuned.lm.finetuned


def test_cancel_stops_training(tiny_model: Path, tmp_path: Path) -> None:
    lm = LocalLM(f"hf/{tiny_model}")
    job = lm.finetune(
        _data(64), {"epochs": 200, "batch_size": 1, "output_dir": str(tmp_path / "c")}
    )
    job.cancel()
    assert job.status() == "cancelled"
    with pytest.raises(FinetuneCancelled):
        job.result()
    assert not (tmp_path / "c" / "adapter_config.json").exists()


def test_settings_and_inputs_are_checked(tiny_model: Path) -> None:
    lm = LocalLM(f"hf/{tiny_model}")
    with pytest.raises(FinetuneError, match="Unknown local fine-tuning setting"):
        lm.finetune(_data(), {"n_epochs": 2})
    with pytest.raises(FinetuneError, match="No training data"):
        lm.finetune([])
    with pytest.raises(FinetuneError, match="no model directory"):
        LocalLM("hf/does/not/exist")("hi")
    with pytest.raises(FinetuneError, match="needs 'hf/<model directory>'"):
        LocalLM(str(tiny_model))


def test_the_cli_names_a_local_model_as_hf_dir(tiny_model: Path) -> None:
    """`--lm hf/DIR` (and `lm = "hf/DIR"` in .dsx) serve a model on disk in process."""
    from dsx.cli._lm import lm_settings

    lm = lm_settings(f"hf/{tiny_model}")["lm"]
    assert isinstance(lm, LocalLM) and lm.model == f"hf/{tiny_model}"
    [text] = lm("question: is 3 even?")
    assert isinstance(text, str)


def test_lora_on_gpt2_layers_sets_fan_in_fan_out_itself(tiny_model: Path) -> None:
    """GPT-2 keeps its projections in transposed Conv1D layers: the LoRA config says so
    (peft otherwise fixes it up with a warning on every training run)."""
    from dsx.runtime.finetune.local import _targets_conv1d, load_model

    model, _ = load_model(tiny_model)
    assert _targets_conv1d(model, None)  # peft's default targets for GPT-2
    assert _targets_conv1d(model, ["c_attn"])
    assert not _targets_conv1d(model, ["no_such_layer"])
