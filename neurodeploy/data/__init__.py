"""Built-in classification tasks: small, bundled or synthetic, generated in seconds on a CPU.

``load_task(name, T=4, seed=0)`` returns a :class:`TaskData`; ``list_tasks()`` names the tasks:
``digits`` (static 8x8 images), ``event-digits`` (DVS-like ON/OFF event frames),
``seq1d`` (mnist1d-style 1D signals) and ``shapes3d`` (3D point clouds). See docs/tasks.md.

Data sets on the user's disk (CIFAR10-DVS, DVS128 Gesture, N-Caltech101, N-MNIST, SHD,
CIFAR10/100, ModelNet10/40) load with ``load_dataset(name, root, T)`` (neurodeploy/data/real.py;
docs/real-data.md); nothing is ever downloaded.
"""

from neurodeploy.data.base import TASKS, TaskData, TaskSpec, list_tasks, load_task
from neurodeploy.data.real import DatasetNotFoundError, RealDataset, list_datasets, load_dataset

__all__ = [
    "TASKS",
    "DatasetNotFoundError",
    "RealDataset",
    "TaskData",
    "TaskSpec",
    "list_datasets",
    "list_tasks",
    "load_dataset",
    "load_task",
]
