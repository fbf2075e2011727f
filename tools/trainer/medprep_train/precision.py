"""Mixed precision and memory format for the training and validation passes (``--amp``,
``--channels-last``).

The network runs under autocast; its outputs are cast to float32 before any loss or metric, so
the losses (softmax, logs, the maps' products) and the metrics are computed exactly as at fp32.
fp16 needs a gradient scaler against underflow and CUDA kernels; bfloat16 has float32's range, so
it needs no scaler and works on CPU too.
"""
from __future__ import annotations

import contextlib
from typing import List, Union

import torch

AMP_MODES = ("none", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    def __init__(self, mode: str, device: torch.device, channels_last: bool = False):
        if mode not in AMP_MODES:
            raise ValueError(f"--amp '{mode}' is unknown; expected one of {', '.join(AMP_MODES)}.")
        if mode == "fp16" and device.type != "cuda":
            raise ValueError(f"--amp fp16 needs a CUDA device (this run uses '{device}'); use --amp bf16 on CPU.")
        self.mode = mode
        self.device = device
        self.channels_last = channels_last
        self.dtype = _DTYPES.get(mode)
        self.scaler = torch.amp.GradScaler("cuda") if mode == "fp16" else None

    def autocast(self):
        """The context the forward pass runs in (a no-op at fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def model(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    @staticmethod
    def float32(out: Union[torch.Tensor, List[torch.Tensor]]):
        """Network outputs (one tensor or the deep-supervision list) as float32."""
        if isinstance(out, (list, tuple)):
            return [o.float() for o in out]
        return out.float()

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """backward + optimizer step, through the gradient scaler for fp16."""
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()
