"""Lava's LIF with one refractory step (snnTorch's delayed zero reset, ``reset_delay``) as a Lava
process: ``process.py`` (ports and vars) and ``models.py`` (fixed_pt, bit-accurate), laid out as
Lava's own processes so that Lava finds the model beside the process. Import needs lava-nc."""
