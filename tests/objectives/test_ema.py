"""EMA helper: warm-up schedule, update maths, frozen copy, state round-trip."""

from __future__ import annotations

import torch

from worldmodel.objectives import EMA


def test_warmup_schedule_and_update_maths() -> None:
    net = torch.nn.Linear(3, 2)
    ema = EMA(net, decay=0.9, warmup=True)
    assert all(not p.requires_grad for p in ema.model.parameters()) and not ema.model.training
    decays = []
    for step in range(90):
        before = [p.clone() for p in ema.model.parameters()]
        with torch.no_grad():
            for p in net.parameters():
                p.add_(1.0)
        d = ema.current_decay()
        decays.append(d)
        assert d == min(0.9, (1 + step) / (10 + step))
        ema.update(net)
        for b, e, p in zip(before, ema.model.parameters(), net.parameters(), strict=True):
            torch.testing.assert_close(e, d * b + (1 - d) * p)
    assert decays[0] == 0.1 and decays[-1] == 0.9
    assert EMA(net, decay=0.5, warmup=False).current_decay() == 0.5


def test_state_dict_round_trip() -> None:
    net = torch.nn.Linear(3, 2)
    ema = EMA(net, decay=0.99)
    ema.update(net)
    other = EMA(torch.nn.Linear(3, 2), decay=0.99)
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 1
    assert all(
        torch.equal(a, b) for a, b in zip(other.model.parameters(), ema.model.parameters(), strict=True)
    )
