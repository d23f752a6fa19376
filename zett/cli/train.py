"""``zett-train``: train a hypernetwork (Hydra CLI over ``zett.training.train``).

    zett-train experiment=debug                     # tiny random model, seconds
    zett-train experiment=smollm2-cpu               # the real SmolLM2 on CPU, ~10 minutes
    zett-train trainer=gpu experiment=smollm2-gpu   # GPU scale, bf16
    zett-train ckpt_path=outputs/train/<run>/checkpoints/last.ckpt hydra.run.dir=outputs/train/<run>   # resume
"""

from __future__ import annotations

from pathlib import Path

import hydra

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _main(cfg) -> None:
    from zett.training import train

    train(cfg)


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
