"""The agent node's parameters: their defaults, descriptors and checks, and how their values become
the core library's settings (BackendChoice, GovernorSettings, LearningSettings).

Pure functions of parameter values, so that they run and test without a node; the node declares
these parameters, calls `parameter_problem` in its on-set callback and applies the settings after.
"""
from __future__ import annotations

import math
from dataclasses import fields
from typing import Mapping, Optional

from rcl_interfaces.msg import FloatingPointRange, IntegerRange

from ..adaptation.battery_input import PERCENTAGE_SCALES
from ..adaptation.governor import POLICIES, GovernorSettings
from ..agent_core import BackendChoice
from ..backends import BACKENDS, device_problem
from ..energy.constants import ENERGY_SECTIONS
from ..engine import stdp_engine
from ..graph import resolve_path
from ..ir import SNNModel
from ..learning.online import RULES, LearningSettings
from ..learning.rules import MAX_RATE_EXPONENT, rate_problem


def _float_range(lo, hi):
    return [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]


# name: (default, description, extra descriptor fields)
PARAMETERS = {
    "model": ("models/fashion_cnn_snn", "model directory: a converted SNN (snn-agent convert -o DIR) or a trained "
                                        "STDP network (cpu backend only; docs/stdp.md)", {}),
    "backend": ("cpu", "inference backend", {"additional_constraints": f"one of {', '.join(BACKENDS)}"}),
    "device": ("CPU", "openvino: CPU, GPU, NPU, MYRIAD (NCS2, OpenVINO 2022.3 LTS only), AUTO; "
                      "lava: CPU (Lava's simulator), LOIHI2 (the chip, needs Lava-Loihi), AUTO", {}),
    "allow_fallback": (True, "fall back to the CPU engine when a backend or device fails", {}),
    "policy": ("auto", "timestep policy", {"additional_constraints": f"one of {', '.join(POLICIES)}"}),
    "timesteps": (16, "T for the fixed policy and for models without operating points",
                  {"integer_range": [IntegerRange(from_value=1, to_value=1024, step=1)]}),
    "min_accuracy": (0.0, "operating points below this accuracy only when nothing else fits",
                     {"floating_point_range": _float_range(0, 1)}),
    "max_latency_ms": (0.0, "[ms] latency limit for operating points, 0 = none",
                       {"floating_point_range": _float_range(0, 1e6)}),
    "mission_time_s": (3600.0, "[s] how long the battery must last, from node start",
                       {"floating_point_range": _float_range(1, 1e7)}),
    "battery_reserve": (0.2, "charge fraction never to spend", {"floating_point_range": _float_range(0, 1)}),
    "battery_percentage_scale": ("auto", "BatteryState.percentage: fraction (0..1, ROS), percent (0..100, "
                                         "Gazebo), auto (decided once per publisher from what it sends)",
                                 {"additional_constraints": f"one of {', '.join(PERCENTAGE_SCALES)}"}),
    "battery_capacity_wh": (0.0, "[Wh] battery capacity when BatteryState has none, 0 = from the message",
                            {"floating_point_range": _float_range(0, 1e6)}),
    "hysteresis": (0.1, "relative budget margin before a costlier operating point",
                   {"floating_point_range": _float_range(0, 1)}),
    "diagnostics_period_s": (1.0, "[s] /diagnostics period (read at start)",
                             {"floating_point_range": _float_range(0.1, 60), "read_only": True}),
    "autostart": (True, "configure and activate at start (false: a lifecycle manager drives the node)",
                  {"read_only": True}),
    "stall_timeout_s": (10.0, "[s] a frame unfinished this long (steady clock) means a stalled backend: it is "
                              "closed and replaced (the CPU engine when allow_fallback)",
                        {"floating_point_range": _float_range(0.5, 3600)}),
    "max_image_pixels": (10_000_000, "images with more pixels are refused (bad_input_too_large)",
                         {"integer_range": [IntegerRange(from_value=1, to_value=1_000_000_000, step=1)]}),
}
# learning.*: online learning from ~/feedback (learning/online.py); a change rebuilds the learner
# from its checkpoint
LEARNING_PARAMS = {
    "learning.enabled": (False, "learn from labelled frames on ~/feedback (the readout over the last hidden layer)", {}),
    "learning.rule": (LearningSettings.rule_name, "perceptron: keeps the old classes, follows a drift, learns a new "
                                                  "class slowly (rate, margin, max_repeats, centred); graded: learns "
                                                  "new classes from ~20 labels each, rehearsing the model's old-class "
                                                  "memory (graded_rate, graded_levels, rehearsal; rehearsal needs "
                                                  "the model's learning_memory.npz: snn-agent memory)",
                      {"additional_constraints": f"one of {', '.join(RULES)}"}),
    "learning.rate": (LearningSettings.rate, "the perceptron rule's weight units per pre-synaptic spike: a power of "
                                             "two (Loihi's fixed-point rule scales by a shift), others are rejected",
                      {"floating_point_range": _float_range(2.0 ** -MAX_RATE_EXPONENT, 1.0)}),
    "learning.margin": (LearningSettings.margin, "a frame is taught while its label does not beat every other class by "
                                                 "this much (score units)", {"floating_point_range": _float_range(0, 1e6)}),
    "learning.max_repeats": (LearningSettings.max_repeats, "the most replays of one labelled frame (teaching runs)",
                             {"integer_range": [IntegerRange(from_value=1, to_value=64, step=1)]}),
    "learning.centred": (LearningSettings.centred, "teach each frame's difference from the mean input: learns new "
                                                   "classes from few labels, cannot undo a drift (docs/learning.md)", {}),
    "learning.graded_rate": (LearningSettings.graded_rate, "the graded rule's weight units per pre-synaptic spike "
                                                           "and error level: a power of two, as learning.rate",
                             {"floating_point_range": _float_range(2.0 ** -MAX_RATE_EXPONENT, 1.0)}),
    "learning.graded_levels": (LearningSettings.graded_levels, "the graded rule's error levels: the most teaching "
                                                               "runs of one frame",
                               {"integer_range": [IntegerRange(from_value=1, to_value=64, step=1)]}),
    "learning.rehearsal": (LearningSettings.rehearsal, "the graded rule's passes over the kept labelled frames and "
                                                       "the old-class memory after each labelled frame (0: none)",
                           {"integer_range": [IntegerRange(from_value=0, to_value=16, step=1)]}),
    "learning.max_classes": (0, "classes the readout can hold, added ones included; 0 = the model's (none added)",
                             {"integer_range": [IntegerRange(from_value=0, to_value=1024, step=1)]}),
    "learning.class_names": ([""], "names of the classes by index (added ones: else class_<index>); '' keeps "
                                   "the model's name", {}),
    "learning.checkpoint_dir": ("", "directory of the learning checkpoint ('' = none: learning is lost at exit)", {}),
    "learning.checkpoint_every": (50, "updates between checkpoints (and one at shutdown)",
                                  {"integer_range": [IntegerRange(from_value=1, to_value=1_000_000, step=1)]}),
    "learning.stdp_rate": (LearningSettings.stdp_rate, "an STDP network adapting to the camera: its trained STDP "
                                                       "learning rates times this (0: thresholds only)",
                           {"floating_point_range": _float_range(0.0, 100.0)}),
    "learning.stdp_threshold_decay": (LearningSettings.stdp_threshold_decay,
                                      "an STDP network adapting: its thresholds' decay time constant in frames, so "
                                      "that a network a changed camera silenced fires again (0: the network's own)",
                                      {"floating_point_range": _float_range(0.0, 1e7)}),
}
PARAMETERS.update(LEARNING_PARAMS)
# energy.<section>.<field>: the published constants (energy/constants.py, with their sources),
# overridable for the robot at hand; a change reloads the backend so that its figures use them
ENERGY_PARAMS = {f"energy.{section}.{f.name}": float(getattr(constants(), f.name))
                 for section, constants in ENERGY_SECTIONS.items() for f in fields(constants)}
UNIT_SUFFIXES = {"_w": "[W]", "_j": "[J]", "_s": "[s]", "_per_s": "[1/s]"}
PARAMETERS.update({
    name: (default, f"{next(u for s, u in reversed(UNIT_SUFFIXES.items()) if name.endswith(s))} "
                    f"energy model constant (snn_agent/energy/constants.py cites its source)",
           {"floating_point_range": _float_range(0, 1e15)})
    for name, default in ENERGY_PARAMS.items()})
BACKEND_PARAMS = ("model", "backend", "device", "allow_fallback") + tuple(ENERGY_PARAMS)
GOVERNOR_PARAMS = ("policy", "timesteps", "min_accuracy", "max_latency_ms", "mission_time_s",
                   "battery_reserve", "hysteresis")


def backend_choice(values: Mapping) -> BackendChoice:
    """values: every name in BACKEND_PARAMS; energy constants left at their defaults are not overrides."""
    energy = {name[len("energy."):]: values[name] for name in ENERGY_PARAMS if values[name] != ENERGY_PARAMS[name]}
    return BackendChoice(resolve_path(values["model"]), values["backend"], values["device"],
                         values["allow_fallback"], energy)


def governor_settings(values: Mapping) -> GovernorSettings:
    """values: every name in GOVERNOR_PARAMS."""
    return GovernorSettings(policy=values["policy"], timesteps=values["timesteps"],
                            min_accuracy=values["min_accuracy"], max_latency_ms=values["max_latency_ms"] or math.inf,
                            mission_time_s=values["mission_time_s"], battery_reserve=values["battery_reserve"],
                            hysteresis=values["hysteresis"])


def learning_settings(values: Mapping) -> LearningSettings:
    """values: every name in LEARNING_PARAMS."""
    directory = values["learning.checkpoint_dir"]
    return LearningSettings(enabled=values["learning.enabled"], rule_name=values["learning.rule"],
                            rate=values["learning.rate"], margin=values["learning.margin"],
                            max_repeats=values["learning.max_repeats"], centred=values["learning.centred"],
                            graded_rate=values["learning.graded_rate"], graded_levels=values["learning.graded_levels"],
                            rehearsal=values["learning.rehearsal"],
                            max_classes=values["learning.max_classes"],
                            class_names=list(values["learning.class_names"]),
                            checkpoint_dir=resolve_path(directory) if directory else "",
                            checkpoint_every=values["learning.checkpoint_every"],
                            stdp_rate=values["learning.stdp_rate"],
                            stdp_threshold_decay=values["learning.stdp_threshold_decay"])


def parameter_problem(name: str, value, backend: str, device: str) -> Optional[str]:
    """Why a value cannot be used, or None; the ranges in the descriptors rclpy checks itself.
    backend, device: the values they will have with this one set (they are judged together)."""
    if name == "backend" and value not in BACKENDS:
        return f"backend must be one of {', '.join(BACKENDS)}, got {value!r}"
    if name in ("backend", "device"):
        return device_problem(backend, device)
    if name == "battery_percentage_scale" and value not in PERCENTAGE_SCALES:
        return f"battery_percentage_scale must be one of {', '.join(PERCENTAGE_SCALES)}, got {value!r}"
    if name == "policy" and value not in POLICIES:
        return f"policy must be one of {', '.join(POLICIES)}, got {value!r}"
    if name in ("learning.rate", "learning.graded_rate"):
        return rate_problem(value)
    if name == "learning.rule" and value not in RULES:
        return f"learning.rule must be one of {', '.join(RULES)}, got {value!r}"
    if name == "model":
        path = resolve_path(value)
        return stdp_engine.files_problem(path) if stdp_engine.is_stdp_model(path) else SNNModel.files_problem(path)
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name} must be finite, got {value}"
    return None
