"""Execution back ends, installed as ``neurodeploy.targets``: reference, lava, netx.

All targets share one small protocol (build from an integer program, run a batch for T steps,
return spikes per layer). Lava is imported lazily by :mod:`neurodeploy.targets.lava`, never here,
because importing ``lava.proc`` changes the multiprocessing start method process-wide.
"""
