"""Print a markdown table of parameter counts per model preset.

Counted on the meta device: no weights are allocated, so XL is instant.

    python scripts/count_params.py
"""

from __future__ import annotations

from worldmodel.models import PRESETS, count_parameters


def main() -> None:
    print(
        "| preset | params | hidden x depth | heads | patch | default clip (K + F, H x W) | tokens/sample |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, cfg in PRESETS.items():
        n = count_parameters(name)
        h, w = cfg.grid
        tokens = (cfg.context_frames + cfg.future_frames) * h * w + cfg.future_frames
        clip = f"{cfg.context_frames} + {cfg.future_frames}, {cfg.frame_height} x {cfg.frame_width}"
        print(
            f"| {name} | {n:,} ({n / 1e6:.2f}M) | {cfg.hidden} x {cfg.depth} | {cfg.heads} | {cfg.patch} "
            f"| {clip} | {tokens} |"
        )
    xl = count_parameters("XL")
    print(f"\nXL = {xl:,} parameters ({100 * (xl - 675e6) / 675e6:+.2f} % vs the paper's 675M)")


if __name__ == "__main__":
    main()
