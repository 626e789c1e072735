"""The readout's learning rule, written as Loihi runs it: a product series over spikes and traces.

The rule is an error-driven (perceptron) rule in Lava's `dw` string form:

    dw = 2^-k * x0 * y1 - 2^-k * x0 * y0      t_epoch = 2, y1: impulse 2, no decay (tau 0)

A labelled frame is taught by replaying its last hidden layer's spikes into the readout's synapses,
one step of the frame per learning epoch, at the epoch's first step (the second stays empty), while
a teacher drives the score neurons' back-propagated spikes (Lava's `s_in_bap`):

- the true class fires at each epoch's first step, with the pre spikes: at the pre spike y1 = 2,
  and y0 = 1, so each pre spike adds +2^-k;
- the wrongly winning class fires at each epoch's second step: y1 = 0 at the pre spike time (a
  trace without decay is zero but where its neuron fired in that very step), y0 = 1: -2^-k;
- every other class stays silent: y0 = 0 and y1 = 0, so its weights do not change at all. This is
  what keeps the old classes: a frame changes two rows, and only when it is misclassified.

Summed over a frame: w[label] += 2^-k * counts, w[winner] -= 2^-k * counts, the perceptron rule on
spike counts. Centred (`ReadoutRule.centred`), a second teaching run follows with the same rule:
the readout's mean input (readout.py: the mean frame of the frames it classified) replayed with
the roles swapped, the winner's row fired with it and the label's after it, so that the two rows
move by +-2^-k (counts - mean counts): the perceptron on centred inputs. A new class's row then
learns what sets its frames apart from the average frame, not that frames have spikes (which
makes a row that only ever grows win every frame). Label-only (`ReadoutRule.label_only`), the
winner's score neuron stays silent: only the label's row moves (the same `dw`, one teacher spike
fewer), so that teaching a new class never lowers an old class's row.

Graded (`ReadoutRule.graded` = L, the error-proportional rule): the same `dw` and schedule, with
the teacher as a graded third factor. The host computes each row's error, teacher minus output
(one for the label, zero otherwise, minus the softmax of the scores), and rounds it to n = round(L
x error) in -L..L; the frame is replayed up to L times, and at the l-th replay the rows with n >= l
fire with the pre spikes, those with n <= -l after them. Summed: w[c] += 2^-k n_c counts, the delta
rule (logistic regression's gradient) in L levels: a row that is already right stops changing,
every row that answers wrongly goes down by how wrongly. Only the rows of classes the readout
added learn (the model's rows stay as converted, which keeps the old classes); with rehearsal
(readout.py) the stored old-class frames teach those rows what they are not. In fixed point each epoch's change is rounded stochastically (Lava: one random number
per epoch for all synapses; see fixed_point.py), so a fraction 2^-k arrives as a whole weight unit
with probability 2^-k. Integer impulses and tau 0 keep the traces free of rounding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

T_EPOCH = 2  # steps per learning epoch: the pre spike and the label's post spike, then the winner's
Y1_IMPULSE = 2  # so that y1 - y0 is +1 for the label (fires with the pre spike) and -1 for the winner
MAX_RATE_EXPONENT = 7  # Lava's fixed point shifts the product left by (7 - k): k <= 7
FACTORS = ("y1", "y0")  # the factor of each product, in the order of `products`


@dataclass(frozen=True)
class ReadoutRule:
    """The rule and how a frame is taught.

    rate: weight units per pre spike, a power of two 2^-k, 0 <= k <= 7 (`rate_exponent`): Loihi's
    fixed-point rule scales by a shift, so any other rate would be rounded behind the user's back. margin: a frame is taught while its label does not beat every
    other class by this much (score units: weight units x spikes per step). max_repeats: the most
    replays of one frame (each one a teaching run on the chip, two where centred). centred: each
    replay is followed by the mean frame's run with the roles swapped (see the module doc).
    label_only: the winner's row is not lowered (its score neuron gets no teacher spike).
    graded: 0, or the error-proportional rule with this many levels (see the module doc): each
    added class's row moves by its error (teacher minus softmax output), rounded to 1/graded; no
    margin, no winner. rehearsal: passes over the stored labelled frames and the model's old-class
    memory after each graded teaching (readout.py)."""

    rate: float = 2.0 ** -6  # the node's default (online.LearningSettings)
    margin: float = 0.0
    max_repeats: int = 1
    centred: bool = False
    label_only: bool = False
    graded: int = 0
    rehearsal: int = 0

    def __post_init__(self):
        problem = rate_problem(self.rate)
        if problem:
            raise ValueError(problem)
        if self.max_repeats < 1:
            raise ValueError(f"max_repeats {self.max_repeats}: at least one replay")
        if self.margin < 0:
            raise ValueError(f"margin {self.margin}: must be >= 0")
        if self.graded < 0 or self.rehearsal < 0:
            raise ValueError(f"graded {self.graded}, rehearsal {self.rehearsal}: must be >= 0")
        if self.rehearsal and not self.graded:
            raise ValueError("rehearsal replays frames with the graded rule: set graded too")

    @property
    def rate_exponent(self) -> int:
        return int(-math.log2(self.rate))

    @property
    def dw(self) -> str:
        k = self.rate_exponent
        return f"2^-{k} * x0 * y1 - 2^-{k} * x0 * y0"

    @property
    def products(self) -> tuple:
        """(signed mantissa, exponent) of each product as Lava's parser makes it from `dw`: the
        scale 2^-k is mantissa 1 at exponent 7 - k (Lava scales by 2^(exponent - 7))."""
        exponent = MAX_RATE_EXPONENT - self.rate_exponent
        return ((1, exponent), (-1, exponent))

    def lava_rule(self):
        """The rule as Lava's Loihi2FLearningRule (imports Lava)."""
        from lava.magma.core.learning.learning_rule import Loihi2FLearningRule

        return Loihi2FLearningRule(dw=self.dw, x1_impulse=0, x1_tau=0, y1_impulse=Y1_IMPULSE, y1_tau=0,
                                   t_epoch=T_EPOCH, rng_seed=0)


def rate_problem(rate: float) -> Optional[str]:
    """Why `rate` cannot be the rule's rate (a power of two, 2^-7..1), or None."""
    if not 2.0 ** -MAX_RATE_EXPONENT <= rate <= 1.0:
        return f"learning rate {rate}: choose 2^-{MAX_RATE_EXPONENT} <= rate <= 1"
    if math.frexp(rate)[0] != 0.5:
        k = min(MAX_RATE_EXPONENT, max(0, round(-math.log2(rate))))
        return (f"learning rate {rate} is not a power of two: Loihi's fixed-point rule scales by a shift "
                f"(2^-k, k = 0..{MAX_RATE_EXPONENT}); the nearest is {2.0 ** -k:g}")
    return None


def teaching_schedule(pre: np.ndarray, n_post: int, up, down) -> tuple:
    """pre: (steps, n_pre) the frame's spikes at the readout's input -> what a teaching run sends
    at each of its 2 x steps: (pre spikes, post spikes), both (2 steps, n) bool. The rows in `up`
    (the label's) get a teacher spike with the pre spikes, those in `down` (the winner's) one step
    after them; the others none."""
    steps = len(pre)
    pre_run = np.zeros((T_EPOCH * steps, pre.shape[1]), bool)
    pre_run[0::T_EPOCH] = pre
    post_run = np.zeros((T_EPOCH * steps, n_post), bool)
    post_run[0::T_EPOCH, np.asarray(up, int)] = True
    post_run[1::T_EPOCH, np.asarray(down, int)] = True
    return pre_run, post_run
