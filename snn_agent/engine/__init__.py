"""The SNN engine: a time-batched numpy simulator that counts every operation it does."""
from .cpu_engine import InferenceResult, OpCounts, SNNEngine

__all__ = ["InferenceResult", "OpCounts", "SNNEngine"]
