#!/usr/bin/env python
"""Pack the training runs of a device call into $OUT and check what comes back fits the limits.

    python scripts/device/collect.py --runs RUNS --out OUT     (scripts/device/run.sh calls it)
    python scripts/device/collect.py --check OUT               (only the limits)

Per run folder RUNS/<name>/ it writes OUT/<name>.tar holding model/ (config.json,
model.safetensors, training.json), training_curves.png, metrics.csv and the run's log
RUNS/<name>.log as train.log. A model over 15 MiB in float32 is stored in float16 (what ships).
Then it checks OUT against what the device tool brings back: at most 8 files, 16 MiB each and
64 MiB together, no deeper than two folders, names of letters, digits, '.', '_' and '-'.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tarfile
from pathlib import Path

MAX_FILES = 8
MAX_FILE_BYTES = 16 * 2**20
MAX_TOTAL_BYTES = 64 * 2**20
MAX_DEPTH = 2  # OUT/a/b/file comes back, OUT/a/b/c/file does not
FP32_LIMIT = 15 * 2**20
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def check_limits(out: Path) -> list[str]:
    """What in ``out`` the device tool would not bring back; empty when everything fits."""
    problems = []
    files = sorted(p for p in out.rglob("*") if p.is_file() or p.is_symlink())
    if len(files) > MAX_FILES:
        problems.append(f"{len(files)} files, at most {MAX_FILES} come back")
    total = 0
    for path in files:
        rel = path.relative_to(out)
        size = path.lstat().st_size
        total += size
        if path.is_symlink():
            problems.append(f"{rel}: a link")
        if size > MAX_FILE_BYTES:
            problems.append(f"{rel}: {size / 2**20:.1f} MiB, at most 16 MiB a file")
        if len(rel.parts) - 1 > MAX_DEPTH:
            problems.append(f"{rel}: deeper than {MAX_DEPTH} folders")
        if not all(_NAME.match(part) for part in rel.parts):
            problems.append(f"{rel}: a name with characters other than letters, digits, '.', '_' and '-'")
    if total > MAX_TOTAL_BYTES:
        problems.append(f"{total / 2**20:.1f} MiB in all, at most 64 MiB")
    return problems


def model_bytes(model_dir: Path) -> bytes:
    """The model's safetensors, converted to float16 when float32 would be over :data:`FP32_LIMIT`."""
    weights = model_dir / "model.safetensors"
    if weights.stat().st_size <= FP32_LIMIT:
        return weights.read_bytes()
    from safetensors.torch import load_file, save

    tensors = {k: (v.half() if v.is_floating_point() else v) for k, v in load_file(str(weights)).items()}
    return save(tensors, metadata={"dtype": "float16"})


def bundle(run: Path, log: Path | None, target: Path) -> list[str]:
    """Write ``target`` (a tar) from one run folder; returns the member names."""
    model = run / "model"
    members: list[tuple[str, bytes]] = []
    if (model / "config.json").is_file() and (model / "model.safetensors").is_file():
        members.append(("model/model.safetensors", model_bytes(model)))
        members.append(("model/config.json", (model / "config.json").read_bytes()))
        if (model / "training.json").is_file():
            members.append(("model/training.json", (model / "training.json").read_bytes()))
    if (run / "training_curves.png").is_file():
        members.append(("training_curves.png", (run / "training_curves.png").read_bytes()))
    metrics = sorted((run / "logs").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    if metrics:
        members.append(("metrics.csv", metrics[-1].read_bytes()))
    if log is not None and log.is_file():
        members.append(("train.log", log.read_bytes()))
    tmp = target.with_name(target.name + ".part")
    with tarfile.open(tmp, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tmp.rename(target)
    return [name for name, _ in members]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, help="folder of run folders (one per recipe) and their <name>.log")
    parser.add_argument("--out", type=Path, help="the folder whose files come back")
    parser.add_argument("--check", type=Path, metavar="OUT", help="only check OUT against the limits")
    args = parser.parse_args()
    if args.check:
        out = args.check
    else:
        if not args.runs or not args.out:
            parser.error("--runs and --out are needed (or --check OUT)")
        out = args.out
        # A run folder, or only its log when the training failed before writing one.
        names = sorted({p.name for p in args.runs.iterdir() if p.is_dir()} | {p.stem for p in args.runs.glob("*.log")})
        for run in (args.runs / name for name in names):
            log = args.runs / f"{run.name}.log"
            names = bundle(run, log, out / f"{run.name}.tar")
            missing = {"model/model.safetensors", "model/training.json", "training_curves.png"} - set(names)
            print(f"{run.name}.tar: {', '.join(names)}" + (f" (missing: {', '.join(sorted(missing))})" if missing else ""))
    problems = check_limits(out)
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        print(f"  {path.relative_to(out)}  {path.stat().st_size / 2**20:.2f} MiB")
    for problem in problems:
        print(f"over the device limits: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
