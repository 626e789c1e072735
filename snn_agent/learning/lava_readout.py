"""The readout's learning on Loihi: Lava's LearningDense with the readout rule, fed by the host.

Two Injectors drive it: the frame's hidden spikes into the synapses' `s_in`, the teacher's spikes
into `s_in_bap` (rules.teaching_schedule). Loihi2SimCfg(select_tag='fixed_pt') runs Lava's
bit-approximate learning on the CPU; Loihi2HwCfg runs it on a Loihi 2 chip where Intel's
Lava-Loihi extension is installed. After each teaching run the weights are read back (Var.get):
the readout scores with them and checkpoints hold them. The process runs teaching only, so its
rounding stream is the one fixed_point.LavaRoundingStream replays (the emulation agrees bit for bit:
test/test_learning.py).

Weights hold 9 bits (8 and a sign): num_weight_bits=9 keeps LearningDense from truncating the lowest
bit of the weights it starts with (with 8, mixed-sign weights lose it).
"""
from __future__ import annotations

import numpy as np

from .readout import ON_CHIP
from .rules import ReadoutRule, teaching_schedule

WEIGHT_BITS = 9


class LavaTrainer:
    kind = ON_CHIP
    dtype = np.int32

    def __init__(self, hardware: bool = False):
        self.hardware = hardware
        self._weights = None
        self._rule = None
        self._dense = None

    def load(self, weights: np.ndarray) -> None:
        """Weights set from outside (the model's, a checkpoint's): written into the running process."""
        self._weights = weights.copy()
        if self._dense is not None:
            self._dense.weights.set(self._weights.astype(np.float64))

    def teach(self, weights: np.ndarray, pre: np.ndarray, up, down, rule: ReadoutRule) -> int:
        """One teaching run on the chip; `weights` (the readout's) receive what it learned."""
        if self._dense is None or rule.dw != self._rule.dw:
            self._start(weights, rule)
        from lava.magma.core.run_conditions import RunSteps

        pre_run, post_run = teaching_schedule(pre != 0, weights.shape[0], up, down)
        self._dense.run(condition=RunSteps(num_steps=len(pre_run), blocking=False), run_cfg=self._run_cfg)
        for pre_step, post_step in zip(pre_run, post_run):
            self._pre.send(pre_step.astype(np.float64))
            self._teacher.send(post_step.astype(np.float64))
        self._dense.wait()
        learned = self._dense.weights.get().astype(weights.dtype)
        changed = int(np.count_nonzero(learned != weights))
        weights[...] = learned
        self._weights = learned
        return changed

    def _start(self, weights: np.ndarray, rule: ReadoutRule) -> None:
        from ..backends.lava import import_lava_runtime

        import_lava_runtime()  # first: Lava's processes import its runtime, which needs the 'fork' start method
        from lava.magma.core.run_configs import Loihi2HwCfg, Loihi2SimCfg
        from lava.proc.dense.process import LearningDense
        from lava.proc.io.injector import Injector, PyLoihiInjectorModel

        self.close()
        n_post, n_pre = weights.shape
        self._dense = LearningDense(weights=weights.astype(np.float64), learning_rule=rule.lava_rule(),
                                    num_weight_bits=WEIGHT_BITS)
        self._pre, self._teacher = Injector(shape=(n_pre,)), Injector(shape=(n_post,))
        self._pre.out_port.connect(self._dense.s_in)
        self._teacher.out_port.connect(self._dense.s_in_bap)
        models = {Injector: PyLoihiInjectorModel}
        self._run_cfg = Loihi2HwCfg(exception_proc_model_map=models) if self.hardware else \
            Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=models)
        self._rule = rule

    def close(self) -> None:
        if self._dense is not None:
            self._dense.stop()
            self._dense = None
