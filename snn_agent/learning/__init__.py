"""Online learning while the robot runs: a plastic readout over the frozen converted network
(readout.py), its product-series rule as Loihi runs it (rules.py), the CPU emulation of Lava's
fixed-point learning (fixed_point.py), the same rule in Lava's LearningDense (lava_readout.py),
the learner the agent holds (online.py), its crash-safe checkpoints (checkpoint.py) and the
old-class memory stored with a model for the graded rule (memory.py).
An unsupervised STDP network (Diehl & Cook 2015) trained without labels (stdp.py, its compiled
loop stdp_kernels.py), trained at fewer timesteps (TopSpark, stdp_topspark.py) and in Lava
(stdp_lava.py).
"""
