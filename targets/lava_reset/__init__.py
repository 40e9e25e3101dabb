"""Lava synapses whose one-step buffer is cleared at sample boundaries (``process.py``: the
processes, ``models.py``: their fixed_pt and floating_pt models), so that a batch of samples
streams through one Lava runtime, each sample starting from an empty pipeline. Lava finds the
models because they sit beside the processes. Import needs lava-nc."""
