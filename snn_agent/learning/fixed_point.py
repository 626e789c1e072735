"""Lava's fixed-point learning (LearningDense, `fixed_pt` / `bit_approximate_loihi`) for the
readout's rule (rules.py), bit for bit, compiled.

What Lava's PyLearningDenseModelBitApproximate does at the end of each epoch, for this rule:
- each product is evaluated in a 16-bit signed accumulator (15 bits and a sign) that holds the
  weight shifted left by 7 (16 - 9: weights are 8 bits and a sign): the product's factors are
  clipped to their widths (y1: 7 bits, y0: 1), multiplied by the scale's mantissa, shifted right
  by (sum of factor widths + 4 - 15) where positive (never, here), shifted left by the scale's
  exponent, clipped to the accumulator, and added to it (clipped again);
- the accumulator is rounded stochastically to a whole weight unit: floor(acc / 2^7), plus one
  when a random number is below the fraction. Lava draws ONE number per epoch for every synapse,
  from numpy's default_rng seeded 2 (ConnVarRandom's default; the rule's rng_seed does not reach
  it): a draw when the process model is built, then one before each epoch's update;
- the weight is clipped to [-256, 255] (mixed sign, 8 bits and a sign).
Traces need no rounding here: the rule's impulses are whole numbers and its traces do not decay.

So the emulation is exact when it consumes the same random stream: `LavaRoundingStream` draws
what a freshly built LearningDense draws, one number per epoch, in the same order. A Lava process
that also runs epochs without teaching (inference through the same synapses) would consume
numbers the emulation does not; the Lava backend runs its LearningDense for teaching only.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .rules import Y1_IMPULSE

ACCUMULATOR_BITS = 15  # unsigned width of the accumulator (Lava's W_ACCUMULATOR_U)
WEIGHT_SHIFT = 7  # accumulator units per weight unit: 2^(16 - 9)
WEIGHT_MIN, WEIGHT_MAX = -256, 255  # mixed sign, 8 bits and a sign
ACC_MIN, ACC_MAX = -(2 ** ACCUMULATOR_BITS) - 1, 2 ** ACCUMULATOR_BITS - 1  # as Lava clips (sic: -2^15 - 1)
LAVA_ROUNDING_SEED = 2  # lava.magma.core.learning.random.ConnVarRandom's default seed


class LavaRoundingStream:
    """The random numbers Lava's fixed-point learning rounds weights with, in Lava's order."""

    def __init__(self):
        self._rng = np.random.default_rng(LAVA_ROUNDING_SEED)
        self._rng.random(1)  # the draw made when the process model is built
        self.epochs = 0

    def next(self, epochs: int) -> np.ndarray:
        """The numbers of the next `epochs` epochs (random(n) gives what n calls of random(1) give)."""
        self.epochs += epochs
        return self._rng.random(epochs)


def teach(weights: np.ndarray, pre: np.ndarray, up, down, products: tuple, randoms: np.ndarray) -> int:
    """One teaching run (rules.teaching_schedule of `pre`), applied to `weights` in place as
    Lava's fixed-point learning applies it. weights: (n_post, n_pre) int32; pre: (steps, n_pre)
    bool, one epoch per step; up, down: the rows whose teacher fires with the pre spikes (+) and
    after them (-); randoms: one per epoch (LavaRoundingStream.next(steps)).
    Returns how many weights changed over the run."""
    (up_mantissa, exponent), (down_mantissa, down_exponent) = products
    if exponent != down_exponent or up_mantissa != -down_mantissa:
        raise ValueError(f"products {products}: the readout rule's two products share one scale")
    before = weights.copy()
    _teach(weights, pre, np.asarray(up, np.int64).reshape(-1), np.asarray(down, np.int64).reshape(-1), up_mantissa,
           exponent, randoms)
    return int(np.count_nonzero(before != weights))


@njit(cache=True)
def _teach(weights, pre, up, down, mantissa, exponent, randoms):
    n_pre = pre.shape[1]
    for epoch in range(pre.shape[0]):
        r = randoms[epoch]
        for rows, y1 in ((up, Y1_IMPULSE), (down, 0)):
            for row in rows:
                for j in range(n_pre):
                    if not pre[epoch, j]:
                        continue  # x0 = 0: both products vanish, the accumulator holds a whole weight
                    acc = np.int64(weights[row, j]) << WEIGHT_SHIFT
                    # the two products, each clipped, each added and clipped: x0 * y1 and -x0 * y0 (y0 = 1)
                    acc = min(max(acc + min(max((y1 * mantissa) << exponent, ACC_MIN), ACC_MAX), ACC_MIN), ACC_MAX)
                    acc = min(max(acc + min(max((-mantissa) << exponent, ACC_MIN), ACC_MAX), ACC_MIN), ACC_MAX)
                    units = acc / (1 << WEIGHT_SHIFT)  # Lava rounds in float64, as here
                    whole = np.floor(units)
                    new = int(whole) + (1 if r < units - whole else 0)
                    weights[row, j] = min(max(new, WEIGHT_MIN), WEIGHT_MAX)


def warm_up() -> None:
    """Compile the kernel, or load it from numba's cache (~1 s), on a throw-away case."""
    _teach(np.zeros((2, 1), np.int32), np.ones((1, 1), bool), np.zeros(1, np.int64), np.ones(1, np.int64), 1, 0,
           np.zeros(1))
