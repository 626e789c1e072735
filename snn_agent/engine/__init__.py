"""The SNN engines: the CPU engine (compiled single frames, time-batched numpy batches) and the
Loihi-exact emulation; both count every operation they do."""
from .cpu_engine import InferenceResult, OpCounts, SNNEngine

__all__ = ["InferenceResult", "OpCounts", "SNNEngine"]
