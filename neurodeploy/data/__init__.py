"""Built-in classification tasks: small, bundled or synthetic, generated in seconds on a CPU.

``load_task(name, T=4, seed=0)`` returns a :class:`TaskData`; ``list_tasks()`` names the tasks:
``digits`` (static 8x8 images), ``event-digits`` (DVS-like ON/OFF event frames),
``seq1d`` (mnist1d-style 1D signals) and ``shapes3d`` (3D point clouds). See docs/tasks.md.
"""

from neurodeploy.data.base import TASKS, TaskData, TaskSpec, list_tasks, load_task

__all__ = ["TASKS", "TaskData", "TaskSpec", "list_tasks", "load_task"]
