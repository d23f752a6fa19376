"""``zett-train``: train a hypernetwork (Hydra CLI over ``zett.training.train``).

    zett-train experiment=debug                     # tiny random model, seconds
    zett-train experiment=smollm2-cpu               # the real SmolLM2 on CPU, ~10 minutes
    zett-train trainer=gpu experiment=smollm2-gpu   # GPU scale, bf16
    zett-train ckpt_path=outputs/train/<run>/checkpoints/last.ckpt hydra.run.dir=outputs/train/<run>   # resume

Exit status: 0 finished (hypernetwork exported), 2 a setting or input is wrong (one line says which), 143 stopped
by SIGTERM (``checkpoints/last.ckpt`` and ``summary.json`` record the step reached; resume as above).
"""

from __future__ import annotations

import sys

import hydra

from zett.cli.errors import hydra_entry, user_errors_exit
from zett.config import CONFIG_DIR as _CONFIG_DIR  # importing zett.config registers the schemas

CONFIG_DIR = str(_CONFIG_DIR)


@user_errors_exit("zett-train")
def _task(cfg) -> None:
    from zett.training import train
    from zett.training.stop import TrainingStopped

    try:
        train(cfg)
    except TrainingStopped as e:  # SIGTERM: a checkpoint and summary.json say where; exit 143, not success
        print(f"zett-train: {e}", file=sys.stderr)
        sys.exit(e.exit_code)


main = hydra_entry("zett-train", hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")(_task),
                   _task)


if __name__ == "__main__":
    main()
