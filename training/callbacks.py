"""Trainer callbacks shared by SFT, GRPO and DPO: metrics to the run, and a clean stop on SIGTERM."""
from __future__ import annotations

import signal
import time
from typing import Any

from transformers import TrainerCallback

from training.recorder import RunRecorder

# What the loss chart and the run log keep from the trainer's logs.
_KEEP = ("loss", "learning_rate", "grad_norm", "reward", "reward_std", "rewards/margins", "rewards/accuracies",
         "logps/chosen", "logps/rejected", "epoch")
_STEP_KEYS = ("loss", "reward")


class MetricsCallback(TrainerCallback):
    """Streams loss, learning rate and tokens/s of every logged step to the run."""

    def __init__(self, recorder: RunRecorder):
        self.recorder = recorder
        self._last_time = time.perf_counter()
        self._last_tokens = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._last_time = time.perf_counter()
        self._last_tokens = state.num_input_tokens_seen or 0

    def on_log(self, args, state, control, logs: dict[str, Any] | None = None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        values = {k: v for k, v in logs.items() if k in _KEEP}
        if not any(k in values for k in _STEP_KEYS):
            return  # the end-of-training summary, not a step
        now = time.perf_counter()
        # TRL's trainers log their own running token count; the plain Trainer keeps it in the state
        tokens = int(logs.get("num_tokens") or state.num_input_tokens_seen or 0)
        if tokens and now > self._last_time:
            values["tokens_per_s"] = (tokens - self._last_tokens) / (now - self._last_time)
        self._last_time, self._last_tokens = now, tokens
        self.recorder.log(state.global_step, values)


class GracefulStop(TrainerCallback):
    """On SIGTERM (or SIGINT), finish the current step, save a checkpoint and stop (every process of a launched
    run, whichever of them got the signal).

    ``stopped`` tells the caller to mark the run cancelled rather than completed.
    """

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)):
        self.requested = False
        self.stopped = False
        for sig in signals:
            signal.signal(sig, self._request)

    def _request(self, signum, frame) -> None:
        self.requested = True

    def on_step_end(self, args, state, control, **kwargs):
        if self._requested_anywhere(args):
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True
        return control

    def _requested_anywhere(self, args) -> bool:
        """Whether any process of the run was asked to stop, so that all stop after the same step.

        The run's row holds one pid (the main process's): a process stopping alone would leave the others
        waiting in the next gradient exchange until the launcher aborts them. One all-reduce of one number a step.
        """
        if args.world_size == 1:
            return self.requested
        import torch
        import torch.distributed as dist

        flag = torch.tensor([int(self.requested)], device=args.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())
