"""The smoothed-reset LIF as a Lava process: ``process.py`` (ports and vars, the interface) and
``models.py`` (fixed_pt, bit-accurate; floating_pt), as Lava's own processes are laid out.
Lava finds the models because they sit beside the process. Import needs lava-nc."""
