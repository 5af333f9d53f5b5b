"""What a run does differently on several processes (``torchrun``, ``accelerate launch``).

Every process runs the whole of ``python -m training …``; these are the places where they must not all do the same:

- only the main process (``RANK`` 0) writes to the store and the output directory: :func:`is_main_process`,
  read from the launcher's environment, so it holds before ``torch.distributed`` starts;
- the tiny model is built by every process, as any model is loaded by every process (ZeRO-3 and FSDP shard
  what each one holds): its weights come from a seed, its tokenizer is trained on the records, and
  :func:`check_same_tokenizer` stops a run whose processes came out with different ones (DDP copies the main
  process's weights to the others, but not its vocabulary);
- the examples are encoded once, by the main process of each machine, and the others read them back from a file
  in the output directory (:func:`encode_once`): the ranks train on byte-identical arrays, the others spend
  no CPU on tokenizing, and they hold no rendered text (what the preview needs, not the trainer).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from training.data import Encoder, Example
from training.errors import TrainingError

#: The examples the main process encoded, for the others to read; removed once every process has.
ENCODED_FILE = "encoded-examples.npz"


def is_main_process(environ: Mapping[str, str] = os.environ) -> bool:
    """True in a single process, and in the process of global rank 0 of a launched group."""
    return int(environ.get("RANK", "0")) == 0


def check_same_tokenizer(args: Any, tokenizer: Any) -> None:
    """``TrainingError`` when the processes of the run hold different vocabularies and merges."""
    if args.world_size == 1:
        return
    from accelerate.utils import gather_object

    mine = hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()
    if len(set(gather_object([mine]))) > 1:
        raise TrainingError("the processes of this run built different tiny tokenizers from the same records; "
                            "train on one process, or on a base model with a tokenizer of its own")


def encode_once(args: Any, output: Path, encoder: Encoder,
                records: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], list[Example]]:
    """``encoder.encode_all(records)``, run by the main process of each machine only.

    ``args`` are the run's ``TrainingArguments``. The main process writes the kept records' positions and the
    examples' arrays to ``output/ENCODED_FILE`` (or the one-line error encoding ended with, which every process
    then raises), the others wait for it and read it. ``encoder.report`` is filled on the main process only, the
    one that prints and records it.
    """
    if args.world_size == 1:
        return encoder.encode_all(records)
    path = output / ENCODED_FILE
    with args.main_process_first(desc="encoding the examples"):
        if args.local_process_index == 0:
            try:
                kept, examples = encoder.encode_all(records)
            except TrainingError as exc:
                _write(path, error=str(exc))
                raise
            position = {id(record): i for i, record in enumerate(records)}
            _write(path, kept=[position[id(r)] for r in kept], examples=examples)
        else:
            at, examples = _read(path)
            kept = [records[i] for i in at]
    args.distributed_state.wait_for_everyone()
    if args.local_process_index == 0:
        path.unlink(missing_ok=True)
    return kept, examples


def _write(path: Path, kept: Sequence[int] = (), examples: Sequence[Example] = (), error: str | None = None) -> None:
    """The examples as flat arrays (no pickle), written whole or not at all (two machines may share ``path``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {"error": np.array(error or "")}
    if examples:
        arrays.update(
            kept=np.asarray(kept, dtype=np.int64),
            ids=np.array([e.id for e in examples]),
            lengths=np.array([len(e.input_ids) for e in examples], dtype=np.int64),
            input_ids=np.concatenate([e.input_ids for e in examples]),
            labels=np.concatenate([e.labels for e in examples]),
            weights=np.concatenate([e.weights for e in examples]),
        )
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    with partial.open("wb") as fh:
        np.savez(fh, **arrays)
    os.replace(partial, path)


def _read(path: Path) -> tuple[list[int], list[Example]]:
    with np.load(path, allow_pickle=False) as data:
        if str(data["error"]):
            raise TrainingError(str(data["error"]))
        ends = np.cumsum(data["lengths"])
        starts = ends - data["lengths"]
        ids, labels, weights = data["input_ids"], data["labels"], data["weights"]
        examples = [Example(ids[a:b], labels[a:b], weights[a:b], id=str(name))
                    for a, b, name in zip(starts, ends, data["ids"])]
        return data["kept"].tolist(), examples
