"""One Task object per task (tfpipe/tasks/base.py says what a task knows). The stages look a
task up here by config.task; nothing outside this package branches on a task's name."""

from __future__ import annotations

from tfpipe.config import Config
from tfpipe.tasks.base import Gate, Scorer, Task
from tfpipe.tasks.classification import Classification
from tfpipe.tasks.detection import Detection
from tfpipe.tasks.instance import InstanceSegmentation
from tfpipe.tasks.segmentation import Segmentation

TASKS: dict[str, Task] = {task.name: task for task in (Classification(), Detection(), Segmentation(),
                                                   InstanceSegmentation())}


def get(name: str) -> Task:
    return TASKS[name]  # config.validate() accepts only these names


def of(cfg: Config) -> Task:
    """The config's task, after it has checked the settings only it can judge."""
    task = TASKS[cfg.task]
    task.check(cfg)
    return task


__all__ = ["TASKS", "Gate", "Scorer", "Task", "get", "of"]
