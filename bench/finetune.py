"""BootstrapFinetune: training-data preparation (dsx vs DSPy 3.4.1) and local LoRA time.

    .venv-bench/bin/python bench/finetune.py           # data preparation, both frameworks
    .venv/bin/python bench/finetune.py --lora          # + local LoRA (needs dsx[finetune])

* **data**: ``--traces`` (1,000) passing traces of a ``Predict("question, context ->
  answer")`` program with two demos, turned into chat fine-tuning examples with the
  ChatAdapter: dsx's ``build_finetune_data`` and DSPy 3.4.1's
  ``BootstrapFinetune._prepare_finetune_data`` on the same inputs and outputs (best of
  ``--repeat`` runs, each framework in its own fresh interpreter).
* **lora**: LoRA fine-tuning (``LocalLM.finetune``) of a tiny GPT-2 (2 layers, 32 wide,
  created on the spot, no download) on ``--lora-examples`` (100) chat examples, one epoch,
  batch size 4: seconds per 100 examples on CPU.

Results go to stdout and to ``bench/results/finetune.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _inputs(n: int) -> list[tuple[dict[str, str], dict[str, str]]]:
    return [
        (
            {"question": f"What is item {i}?", "context": f"Item {i} is a thing number {i * 7}."},
            {"answer": f"thing {i * 7}"},
        )
        for i in range(n)
    ]


def run_dsx(n: int, repeat: int) -> float:
    import dsx
    from dsx.teleprompt.finetune_data import TraceRecord, build_finetune_data
    from dsx.testing import DummyLM

    program = dsx.Predict("question, context -> answer", lm=DummyLM([]))
    program.demos = [
        dsx.Example(question="q1", context="c1", answer="a1").with_inputs("question", "context"),
        dsx.Example(question="q2", context="c2", answer="a2").with_inputs("question", "context"),
    ]
    records = [
        TraceRecord(i, 1.0, True, [("self", inputs, dsx.Prediction(**outputs))])
        for i, (inputs, outputs) in enumerate(_inputs(n))
    ]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        [data] = build_finetune_data(program, records)
        times.append(time.perf_counter() - start)
    assert len(data.examples) == n
    return min(times)


def run_dspy(n: int, repeat: int) -> float:
    import dspy
    from dspy.teleprompt.bootstrap_finetune import BootstrapFinetune

    lm = dspy.LM("openai/gpt-4o-mini", api_key="x")
    program = dspy.Predict("question, context -> answer")
    program.lm = lm
    program.demos = [
        dspy.Example(question="q1", context="c1", answer="a1").with_inputs("question", "context"),
        dspy.Example(question="q2", context="c2", answer="a2").with_inputs("question", "context"),
    ]
    trace_data = [
        {
            "example": None,
            "prediction": dspy.Prediction(**outputs),
            "trace": [(program, inputs, dspy.Prediction(**outputs))],
            "example_ind": i,
            "score": 1.0,
        }
        for i, (inputs, outputs) in enumerate(_inputs(n))
    ]
    opt = BootstrapFinetune(metric=lambda *a: 1.0)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        data, _format = opt._prepare_finetune_data(trace_data, lm=lm, pred_ind=None)
        best = min(best, time.perf_counter() - start)
    assert len(data) == n
    return best


def run_lora(n: int) -> dict[str, float]:
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from dsx.runtime.finetune.local import LocalLM

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "tiny"
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<pad>", "<eos>", "<unk>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        tok.train_from_iterator(["question answer context thing item <|user|>"], trainer)
        tokenizer = transformers.PreTrainedTokenizerFast(
            tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
        )
        tokenizer.save_pretrained(base)
        torch.manual_seed(0)
        config = transformers.GPT2Config(
            vocab_size=len(tokenizer), n_positions=512, n_embd=32, n_layer=2, n_head=2
        )
        transformers.GPT2LMHeadModel(config).save_pretrained(base)
        examples = [
            {
                "messages": [
                    {"role": "system", "content": "Answer from the context."},
                    {"role": "user", "content": f"{inp['question']} {inp['context']}"},
                    {"role": "assistant", "content": out["answer"]},
                ]
            }
            for inp, out in _inputs(n)
        ]
        lm = LocalLM(f"hf/{base}")
        start = time.perf_counter()
        job = lm.finetune(
            examples, {"epochs": 1, "batch_size": 4, "output_dir": str(Path(tmp) / "adapter")}
        )
        job.result()
        seconds = time.perf_counter() - start
        return {
            "seconds": seconds,
            "per_100_examples": seconds * 100 / n,
            "initial_loss": job.initial_loss,
            "final_loss": job.final_loss,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--lora", action="store_true", help="also time local LoRA")
    parser.add_argument("--lora-examples", type=int, default=100)
    parser.add_argument("--worker", choices=["dsx", "dspy", "lora"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "dsx":
        print(json.dumps(run_dsx(args.traces, args.repeat)))
        return
    if args.worker == "dspy":
        print(json.dumps(run_dspy(args.traces, args.repeat)))
        return
    if args.worker == "lora":
        print(json.dumps(run_lora(args.lora_examples)))
        return

    def worker(name: str) -> object:
        cmd = [sys.executable, __file__, "--worker", name, "--traces", str(args.traces)]
        cmd += ["--repeat", str(args.repeat), "--lora-examples", str(args.lora_examples)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
        return json.loads(out.strip().splitlines()[-1])

    results: dict[str, object] = {"traces": args.traces}
    dsx_s = float(worker("dsx"))  # type: ignore[arg-type]
    results["dsx_seconds"] = dsx_s
    print(f"training data from {args.traces} traces (ChatAdapter, 2 demos), best of {args.repeat}:")
    print(f"  dsx build_finetune_data:               {dsx_s * 1000:8.1f} ms")
    try:
        dspy_s = float(worker("dspy"))  # type: ignore[arg-type]
        results["dspy_seconds"] = dspy_s
        print(f"  DSPy 3.4.1 _prepare_finetune_data:     {dspy_s * 1000:8.1f} ms")
        print(f"  DSPy / dsx:                            {dspy_s / dsx_s:8.1f}x")
    except subprocess.CalledProcessError as exc:
        print(f"  DSPy 3.4.1: not measured ({exc.stderr.strip().splitlines()[-1]})")
    if args.lora:
        lora = worker("lora")
        results["lora"] = lora
        assert isinstance(lora, dict)
        print(
            f"local LoRA, tiny GPT-2, {args.lora_examples} examples, 1 epoch: "
            f"{lora['seconds']:.2f} s ({lora['per_100_examples']:.2f} s per 100 examples; "
            f"loss {lora['initial_loss']:.3f} -> {lora['final_loss']:.3f})"
        )
    out = ROOT / "bench" / "results" / "finetune.json"
    out.parent.mkdir(exist_ok=True)
    try:  # a run in the other venv (DSPy there, torch here) keeps the other part's figures
        previous = json.loads(out.read_text())
    except (OSError, ValueError):
        previous = {}
    out.write_text(json.dumps({**previous, **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
