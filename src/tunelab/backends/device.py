"""Where a model runs: `model.device` resolved once, and every forward-pass tensor made there.

`resolve` turns the setting (auto, cpu, cuda, cuda:N, mps) into a torch device: auto is
the first accelerator present (CUDA, then Apple MPS), else the CPU; under a multi-process
launch (torchrun / accelerate launch: WORLD_SIZE > 1) each rank takes the CUDA device of
its LOCAL_RANK. `tensors(model)` is the one place that builds the ids, masks and indices a
forward pass reads, on the device of the model's weights, so no call site can leave a
batch on the CPU while the weights sit on a GPU (tests/test_device.py runs the loops with
the default device pointed elsewhere to catch one that does).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from tunelab import TunelabError

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
"""What model.device accepts (N: a CUDA device index)."""

BNB = {"none": None, "8bit": {"load_in_8bit": True},
            "4bit": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                     "bnb_4bit_compute_dtype": torch.bfloat16}}
"""model.quantize -> bitsandbytes settings for the frozen base (QLoRA's nf4 for 4bit)."""


def _mps() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def _rank() -> int | None:
    """This process's LOCAL_RANK under a multi-process launch, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return int(os.environ.get("LOCAL_RANK", "0"))
    return None


def resolve(requested: str = "auto") -> torch.device:
    """The torch device for a model.device setting; one clear line when it is absent here.

    >>> resolve("cpu")
    device(type='cpu')
    """
    name = requested.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return resolve("cuda")
        return torch.device("mps") if _mps() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps():
            raise TunelabError("model.device: mps requested but this machine has no Apple MPS "
                               "device (use auto or cpu)")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        index = name.partition(":")[2]
        if index and not index.isdigit():
            raise TunelabError(f"model.device: '{requested}' is not cuda:N with N a number")
        if not torch.cuda.is_available():
            raise TunelabError(f"model.device: {requested} requested but torch sees no CUDA device "
                               f"(torch {torch.__version__}; use auto or cpu)")
        rank = _rank()
        i = int(index) if index else (rank if rank is not None else torch.cuda.current_device())
        if i >= torch.cuda.device_count():
            raise TunelabError(f"model.device: cuda:{i} requested but this machine has "
                               f"{torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", i)
    raise TunelabError(f"model.device: unknown '{requested}'. Available: {', '.join(DEVICES)}")


_placed: list[torch.device] = []  # the device load_model last put a model on


def placed(dev: torch.device | None = None) -> torch.device:
    """Record `dev` as where this process's models run (load_model does); without it,
    the last one recorded (the CPU before any): helpers without a model of their own, like
    the retrieval encoder (embed.py), follow it."""
    if dev is not None:
        _placed[:] = [dev]
    return _placed[0] if _placed else torch.device("cpu")


def of(model) -> torch.device:
    """The device of a model's (first) weights: where its inputs must be made."""
    if isinstance(model, torch.device):
        return model
    if isinstance(model, torch.Tensor):
        return model.device
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


@dataclass(frozen=True)
class Tensors:
    """Factory for forward-pass tensors on one device (see `tensors`)."""

    device: torch.device

    def full(self, shape: Sequence[int], value, dtype: torch.dtype = torch.long) -> torch.Tensor:
        return torch.full(tuple(shape), value, dtype=dtype, device=self.device)

    def zeros(self, shape: Sequence[int], dtype: torch.dtype = torch.long) -> torch.Tensor:
        return torch.zeros(tuple(shape), dtype=dtype, device=self.device)

    def tensor(self, data, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.tensor(data, dtype=dtype, device=self.device)


def tensors(at) -> Tensors:
    """The one helper for tensors a forward pass reads: made on the device of `at` (a
    model, a tensor or a device)."""
    return Tensors(of(at))


def autocast_type(at) -> str:
    """The device type torch.autocast needs for `at` (cpu where autocast has no backend)."""
    kind = of(at).type if at is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    return kind if kind in ("cuda", "cpu", "mps") else "cpu"


def describe(dev: torch.device) -> str:
    """The device in words for results and reasons, e.g. 'cuda:0 (NVIDIA H100 80GB HBM3)'."""
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return str(dev)


def cuda_bf16(dev: torch.device) -> bool:
    """Whether a CUDA card runs bf16 natively (compute capability 8.0+: Ampere and later)."""
    return dev.type == "cuda" and torch.cuda.get_device_capability(dev)[0] >= 8


@contextlib.contextmanager
def frozen_in(model, dtype: torch.dtype | None) -> Iterator[None]:
    """Hold the frozen floating-point weights in `dtype` (bf16 on a CUDA card) while
    training: half their memory, and the matmuls run in it anyway under autocast. The
    trainable ones (and so the optimizer state) stay fp32. On exit the exact fp32 values
    come back from a CPU copy, so evaluation runs the fp32 weights as on every device."""
    if dtype is None:
        yield
        return
    saved = {}
    for p in model.parameters():
        if not p.requires_grad and p.is_floating_point() and p.dtype != dtype:
            saved[p] = p.data.to("cpu", copy=True)
            p.data = p.data.to(dtype)
    try:
        yield
    finally:
        for p, data in saved.items():
            p.data = data.to(p.device)


def is_oom(e: BaseException) -> bool:
    """A device out-of-memory error (CUDA's class; MPS raises a RuntimeError saying so)."""
    return isinstance(e, torch.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and "out of memory" in str(e).lower())


def model_name(model) -> str:
    cfg = getattr(model, "config", None)
    return getattr(cfg, "name_or_path", None) or type(model).__name__


@contextlib.contextmanager
def out_of_memory(model, what: str, lower: str) -> Iterator[None]:
    """Turn a device out-of-memory error inside into one TunelabError line naming the model,
    the step, and the settings to `lower` (with their values); the cell fails alone and
    the store keeps what it holds (executors.py records a failed cell and goes on)."""
    try:
        yield
    except (torch.OutOfMemoryError, RuntimeError) as e:
        if not is_oom(e):
            raise
        dev = of(model)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        raise TunelabError(
            f"{model_name(model)}: out of {dev.type} memory in {what}; lower {lower}, or load "
            "the base in 8/4-bit (model.quantize: 8bit or 4bit)") from None


def load_kwargs(cfg, dev: torch.device) -> dict:
    """from_pretrained's extra arguments for this device: SDPA attention on CUDA, and the
    bitsandbytes settings of model.quantize, refused in one line where they cannot run."""
    kw: dict = {"attn_implementation": "sdpa"} if dev.type == "cuda" else {}
    bnb = BNB.get(cfg.quantize)
    if bnb is None:
        return kw
    if dev.type != "cuda":
        raise TunelabError(f"model.quantize: {cfg.quantize} needs a CUDA device (bitsandbytes); "
                           f"model '{cfg.name}' runs on {dev} here (set quantize: none)")
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise TunelabError(f"model.quantize: {cfg.quantize} needs bitsandbytes, which is not "
                           "installed (pip install bitsandbytes, or set quantize: none)")
    from transformers import BitsAndBytesConfig

    return {**kw, "quantization_config": BitsAndBytesConfig(**bnb),
            "device_map": {"": dev.index or 0}}


def is_quantized(model) -> bool:
    return bool(getattr(model, "is_loaded_in_8bit", False) or getattr(model, "is_loaded_in_4bit", False))
