"""What a sample is conditioned on besides its frame and action tokens.

* ``lang`` (B, lang_dim): the dataset's sentence embedding (RT-1's ``natural_language_embedding``). It enters
  every token's adaLN conditioning, added to the time embedding.
* ``instruction`` (B, L, E): per-wordpiece states of ``natural_language_instruction`` from the offline encoder
  (:func:`worldmodel.language.instruction_tokens`), zero rows for padding. They become L clean prefix tokens
  that every other token attends to, so word order and the object / drawer names reach the model.
* ``state`` (B, K, S): the robot's own state per context frame (``base_pose_tool_reached`` and
  ``gripper_closed``, normalised), one clean token per context frame.

The network accepts a :class:`Condition` wherever it accepts a bare ``lang`` tensor (which means "sentence
embedding only"), so samplers, losses and heads pass it along unchanged. Parts the network was not built for
are ignored; parts it was built for but that are missing count as "no information" (padding / zeros).

Classifier-free guidance drops the *language* (sentence and instruction), never the state:
:meth:`Condition.without_language` is the unconditional branch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass
class Condition:
    """Per-sample conditioning (all parts optional).

    Attributes:
        lang: (B, lang_dim) sentence embedding, or None (zeros).
        instruction: (B, L, E) instruction token states, all-zero rows are padding; or None.
        state: (B, K, S) normalised robot state per context frame, or None. A row that is all NaN is a
            *missing* state (state dropout): the network leaves that frame's state token out, exactly as it
            does for the whole batch when ``state`` is None.
    """

    lang: Tensor | None = None
    instruction: Tensor | None = None
    state: Tensor | None = None

    def _parts(self) -> list[Tensor]:
        return [p for p in (self.lang, self.instruction, self.state) if p is not None]

    @property
    def batch_size(self) -> int | None:
        """B, or None when every part is None."""
        parts = self._parts()
        return parts[0].shape[0] if parts else None

    def map(self, fn) -> Condition:  # noqa: ANN001 - a Tensor -> Tensor callable
        """Apply ``fn`` to every present part (e.g. ``lambda x: x.to(device)``)."""
        return Condition(*(None if p is None else fn(p) for p in (self.lang, self.instruction, self.state)))

    def to(self, device: torch.device | str) -> Condition:
        return self.map(lambda x: x.to(device))

    def repeat_interleave(self, n: int) -> Condition:
        """Each sample n times in a row: B -> B·n (as ``Tensor.repeat_interleave(n, 0)``)."""
        return self.map(lambda x: x.repeat_interleave(n, 0))

    def expand(self, n: int) -> Condition:
        """A one-sample condition broadcast to n samples (views, no copy)."""
        return self.map(lambda x: x.expand(n, *x.shape[1:]))

    def index(self, idx: Tensor | slice) -> Condition:
        """Rows ``idx`` of every part."""
        return self.map(lambda x: x[idx])

    def without_language(self) -> Condition:
        """The classifier-free-guidance null condition: no sentence, no instruction (all padding), same state."""
        return replace(self, lang=None if self.lang is None else torch.zeros_like(self.lang),
                       instruction=None if self.instruction is None else torch.zeros_like(self.instruction))

    def drop_language(self, drop: Tensor) -> Condition:
        """Language dropout for training: samples where ``drop`` (B,) bool is True lose sentence and instruction."""
        def zero(x: Tensor | None) -> Tensor | None:
            if x is None:
                return None
            return torch.where(drop.view(-1, *([1] * (x.ndim - 1))).to(x.device), torch.zeros_like(x), x)

        return replace(self, lang=zero(self.lang), instruction=zero(self.instruction))

    def drop_state(self, drop: Tensor) -> Condition:
        """State dropout for training: samples where ``drop`` (B,) bool is True lose their robot state (every
        row set missing, i.e. NaN), so the network also learns to act without it."""
        if self.state is None:
            return self
        missing = drop.view(-1, 1, 1).to(self.state.device)
        return replace(self, state=self.state.masked_fill(missing, float("nan")))

    @staticmethod
    def cat(items: list[Condition]) -> Condition:
        """Concatenate along the batch (every item must have the same parts)."""
        def join(parts: list[Tensor | None]) -> Tensor | None:
            if all(p is None for p in parts):
                return None
            if any(p is None for p in parts):
                raise ValueError("Condition.cat: items have different parts")
            return torch.cat(parts, dim=0)

        return Condition(join([c.lang for c in items]), join([c.instruction for c in items]),
                         join([c.state for c in items]))


def as_condition(lang: Tensor | Condition | None) -> Condition:
    """A bare sentence-embedding tensor (the older API) or None as a :class:`Condition`."""
    if isinstance(lang, Condition):
        return lang
    return Condition(lang=lang)
