"""Run monitoring on rank 0: ``metrics.jsonl``, a tqdm bar, and an optional wandb run (``logger`` group).

``metrics.jsonl`` gets one JSON line per logged step whatever the logger; on resume it is cut back to the
checkpoint's step so it always reads as one uninterrupted run.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

METRICS = "metrics.jsonl"
LOGGERS = ("wandb", "none")


@dataclass
class LoggerConfig:
    """Where metrics go besides ``metrics.jsonl`` (the ``logger`` group: ``logger=wandb`` or ``logger=none``).

    Attributes:
        name: ``none`` (metrics file and progress bar only) or ``wandb``.
        project, entity: the wandb project and entity.
        run_name: wandb run name (None: the run directory's name).
        mode: wandb mode (None: ``$WANDB_MODE`` or ``offline``; ``online``, ``offline``, ``disabled``).
        tags: wandb tags.
    """

    name: str = "none"
    project: str = "worldmodel"
    entity: str | None = None
    run_name: str | None = None
    mode: str | None = None
    tags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.name not in LOGGERS:
            raise ValueError(f"logger.name must be one of {LOGGERS}, got {self.name!r}")

    @classmethod
    def from_node(cls, node: Any) -> LoggerConfig:
        """From a ``logger`` node or mapping; missing keys keep the defaults."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: node[k] for k in node if k in names})


class Monitor:
    """Metrics file + progress bar + logger backend. Inactive (all no-ops) on ranks other than 0.

    Args:
        run_dir: the run directory.
        logger_cfg: the ``logger`` group (``name: wandb|none`` and wandb settings).
        config: the resolved run config (sent to wandb).
        total_steps: length of the progress bar.
        start_step: steps already done (resume).
        active: False on ranks other than 0.
    """

    def __init__(self, run_dir: Path, logger_cfg: DictConfig, config: DictConfig, total_steps: int,
                 start_step: int, active: bool) -> None:
        self.active = active
        self.run_dir = run_dir
        self.wandb: Any = None
        name = LoggerConfig.from_node(logger_cfg).name
        if not active:
            self.bar = None
            return
        self._truncate_metrics(start_step)
        if name == "wandb":
            self.wandb = _start_wandb(run_dir, logger_cfg, config)
        from tqdm import tqdm

        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                        desc=run_dir.name, mininterval=1.0)

    def _truncate_metrics(self, step: int) -> None:
        path = self.run_dir / METRICS
        if not path.is_file():
            return
        keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        tmp.replace(path)

    def step(self, step: int, postfix: dict[str, float] | None = None) -> None:
        """Advance the bar to ``step`` (showing ``postfix``)."""
        if self.bar is None:
            return
        self.bar.update(step - self.bar.n)
        if postfix:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Append a row to ``metrics.jsonl`` and send it to the logger."""
        if not self.active:
            return
        with open(self.run_dir / METRICS, "a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.wandb is not None:
            self.wandb.log(metrics, step=step)

    def log_media(self, step: int, png: Path, mp4: Path | None) -> None:
        """Send a sample image / video (already written to the run directory) to the logger."""
        if self.wandb is None:
            return
        import wandb

        media: dict[str, Any] = {"samples/frames": wandb.Image(str(png))}
        if mp4 is not None:
            media["samples/video"] = wandb.Video(str(mp4), format="mp4")
        self.wandb.log(media, step=step)

    def write(self, message: str) -> None:
        """Print a status line to stderr (with the progress bar) without breaking the bar."""
        if not self.active:
            return
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None


def _start_wandb(run_dir: Path, logger_cfg: DictConfig, config: DictConfig) -> Any:
    """A wandb run in ``run_dir/wandb``: offline unless ``WANDB_MODE`` (or ``logger.mode``) says otherwise.

    The run id is kept in ``run_dir/wandb_id`` so that a resumed run continues the same wandb run.
    """
    import wandb

    id_file = run_dir / "wandb_id"
    run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(4)
    id_file.write_text(run_id)
    lc = LoggerConfig.from_node(logger_cfg)
    mode = lc.mode or os.environ.get("WANDB_MODE", "offline")
    return wandb.init(project=lc.project, entity=lc.entity, name=lc.run_name or run_dir.name, id=run_id,
                      resume="allow", dir=str(run_dir), mode=mode, tags=list(lc.tags),
                      config=OmegaConf.to_container(config, resolve=True))
