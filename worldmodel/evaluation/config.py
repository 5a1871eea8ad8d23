"""Settings of ``worldmodel eval sim`` (the ``eval`` block of ``configs/eval_sim.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field


def _all_tasks() -> list[str]:
    from envs.tasks import TASK_CLASSES  # the one task list

    return list(TASK_CLASSES)


@dataclass
class EvalConfig:
    """Settings of one evaluation.

    Attributes:
        tasks: short task names or gym ids (default: every task).
        episodes: episodes per task.
        seed: episode i of every task uses seed ``seed + i``.
        out: folder of ``eval_info.json`` (and ``videos/``).
        videos: write one mp4 per episode under ``out/videos/``.
        image_size: camera resolution [H, W].
        workers: parallel processes over episodes.
        resume: continue an evaluation that was stopped: the episodes already in ``out/episodes.jsonl`` (one
            JSON line per finished episode, written as each ends) are kept and only the others are run. The
            file must come from the same policy settings and image size, else the error names what differs.
            False (default): start afresh (the file is rewritten).
    """

    tasks: list[str] = field(default_factory=_all_tasks)
    episodes: int = 10
    seed: int = 1000
    out: str = "outputs/eval"
    videos: bool = False
    image_size: tuple[int, int] = (256, 320)
    workers: int = 1
    resume: bool = False

    def __post_init__(self) -> None:
        import envs

        if isinstance(self.tasks, str):  # `eval.tasks=CloseDrawer` (no brackets): one task, or a comma list
            self.tasks = [t.strip() for t in self.tasks.split(",") if t.strip()]
        if not self.tasks:
            raise ValueError("eval.tasks must name at least one task")
        self.tasks = [envs.task_name(str(t)) for t in self.tasks]  # short names; ValueError naming an unknown one
        if self.episodes < 1:
            raise ValueError(f"eval.episodes must be >= 1, got {self.episodes}")
        if self.seed < 0:
            raise ValueError(f"eval.seed must be >= 0 (episode i uses seed + i), got {self.seed}")
        if self.workers < 1:
            raise ValueError(f"eval.workers must be >= 1, got {self.workers}")
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise ValueError(f"eval.image_size must be [H, W] with both >= 8, got {list(self.image_size)}")
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
