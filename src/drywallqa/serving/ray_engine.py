"""Batch prediction on a Ray cluster (``drywallqa predict --engine ray``), with Ray Data.

The work is :func:`~drywallqa.serving.predict_images` itself, run by a pool of Ray actors: Ray
Data's callable-class idiom (:class:`PredictBatch` loads the predictor once per worker in
``__init__`` and predicts a batch of photos in ``__call__``, through ``map_batches``). Each batch
writes its masks, overlays and records into the output folder exactly as a local run does, so a
rerun resumes the same way (pairs already done are measured again from their masks, not
predicted), and a local ``drywallqa predict`` can resume a Ray run and the reverse. The driver
names every photo's outputs once, over the whole run (as a local run names them), and writes
``results.jsonl``, ``results.csv``, ``coco.json`` and ``summary.json`` once, in input order, with
the settings its workers ran with (model, weights, runtime, thresholds, test-time flips) as a local
run records them. With ``overwrite`` every pair is predicted again (the driver cannot tell before
its workers load the model whether the settings changed).

Inputs are files, folders and glob patterns as for a local run, or fsspec URLs (``file://``,
``s3://bucket/photos/``, ``gs://...`` with s3fs or gcsfs installed on the workers). A remote photo
is copied once into ``input_cache`` (a folder of its own beside the output by default), which the
records name. On a cluster of several machines, the output folder, and local input paths, must be
on storage every node mounts at the same path (NFS, a cloud file share).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from drywallqa.data.prompts import PromptConfig
from drywallqa.errors import ConfigError, DataError, DrywallQAError
from drywallqa.files import PHOTO_SUFFIXES, atomic_write
from drywallqa.inference import Prediction, Predictions, check_prompt
from drywallqa.inference.predictions import common_folder
from drywallqa.qa.figures import check_mm_per_px
from drywallqa.qa.inspection import prompt_class, unknown_prompt_message
from drywallqa.qa.rules import QARules
from drywallqa.serving.inputs import check_output_dir, collect_images, output_keys
from drywallqa.serving.predict import PredictionRun, RunPart, predict_images
from drywallqa.serving.results import write_tables


def import_ray():
    """Import Ray and Ray Data, or fail with the install command."""
    try:
        import ray
        import ray.data  # noqa: F401 - the extra's other half
    except ImportError as exc:
        raise DrywallQAError('predict --engine ray needs Ray Data: pip install "drywallqa[ray]"') from exc
    return ray


# -- inputs ---------------------------------------------------------------------------------------
def _is_url(text: str) -> bool:
    return "://" in text and not text.startswith("file://")


def list_inputs(inputs: Sequence[str | os.PathLike]) -> list[str]:
    """Expand files, folders, glob patterns and fsspec URLs into image paths and URLs, in order.

    Local items (and ``file://`` URLs) follow :func:`~drywallqa.serving.inputs.collect_images`;
    a URL folder contributes the image files directly inside it, a URL glob its matching image
    files. Duplicates are dropped.

    Raises:
        DataError: If an input does not exist or matches nothing, or nothing is found at all.
    """
    found: list[str] = []
    for item in map(str, inputs):
        if not _is_url(item):
            found += [str(p) for p in collect_images([item.removeprefix("file://")])]
            continue
        import fsspec

        fs, root = fsspec.core.url_to_fs(item)
        if glob.has_magic(root):
            files = sorted(fs.glob(root))
        elif fs.isdir(root):
            files = sorted(fs.ls(root, detail=False))
        elif fs.exists(root):
            files = [root]
        else:
            raise DataError(f"{item}: no such file or folder")
        images = [f for f in files if Path(f).suffix.lower() in PHOTO_SUFFIXES or f == root]
        if not images:
            raise DataError(f"{item}: no image files ({', '.join(PHOTO_SUFFIXES)}) in it")
        found += [fs.unstrip_protocol(f) for f in images]
    return list(dict.fromkeys(found))


def cached_path(url: str, cache: Path) -> Path:
    """Where the local copy of a remote photo lives: ``cache/<protocol>/<bucket>/<path>``."""
    protocol, _, rest = url.partition("://")
    return cache / protocol / rest.lstrip("/")


# -- the Ray Data callable class ------------------------------------------------------------------
class PredictBatch:
    """Ray Data callable class: one predictor per worker, :func:`predict_images` per batch.

    Args:
        out: Output folder (every worker writes into it).
        prompts: Prompts applied to every photo.
        model: Model spec for :func:`~drywallqa.inference.load_predictor` (None: shipped model).
        predictor_options: Keyword arguments of ``load_predictor`` (``device``, ``tta``,
            ``threshold``, ``model_args``...).
        predict_options: Keyword arguments of ``predict_images`` (``model_id``, ``mm_per_px``,
            ``qa_rules``, ``prompt_config``).
        input_cache: Folder for local copies of remote photos.
        threads: Torch threads of this worker (its CPU share).
        keys: The whole run's output name per local photo path (:class:`~drywallqa.serving.predict.RunPart`).
    """

    def __init__(self, out: str, prompts: list[str], model: str | None = None, predictor_options: dict | None = None,
                 predict_options: dict | None = None, input_cache: str | None = None, threads: int | None = None,
                 keys: dict[str, str] | None = None):
        import torch

        from drywallqa.inference import load_predictor

        if threads:
            torch.set_num_threads(threads)
        self.out, self.prompts = Path(out), prompts
        self.predict_options = {**(predict_options or {}),
                                "part": RunPart({Path(path): key for path, key in (keys or {}).items()})}
        self.input_cache = Path(input_cache) if input_cache else None
        self.predictor = load_predictor(model, **(predictor_options or {}))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        """Predict one batch of photos.

        Args:
            batch: ``{"index": (B,) int, "path": (B,) str}`` (paths or URLs).

        Returns:
            Rows of ``{"index", "kind", "data"}``: ``kind`` is ``"record"`` (``data``: the record
            as JSON), ``"issue"`` (a skipped photo) or ``"counts"`` (predicted and resumed pairs,
            and the run's settings).
        """
        rows: dict[str, list] = {"index": [], "kind": [], "data": []}

        def add(index: int, kind: str, data: dict) -> None:
            rows["index"].append(int(index))
            rows["kind"].append(kind)
            rows["data"].append(json.dumps(data))

        located = {}
        for index, path in zip(batch["index"], batch["path"]):
            try:
                located[self._local(str(path))] = int(index)
            except (OSError, DataError) as exc:
                add(index, "issue", {"file": str(path), "reason": "unreadable image", "detail": str(exc)})
        runs = []
        try:
            runs.append(predict_images(list(located), self.prompts, self.out, self.predictor, **self.predict_options))
        except DataError:
            # No photo of the batch could be read: predict them one by one to say which and why.
            for path in located:
                try:
                    runs.append(predict_images([path], self.prompts, self.out, self.predictor, **self.predict_options))
                except DataError as exc:
                    add(located[path], "issue", {"file": str(path), "reason": "unreadable image",
                                                 "detail": str(exc).split(": ", 1)[-1]})
        order = {str(Path(path).resolve()): index for path, index in located.items()}
        for run in runs:
            for prediction in run.predictions:
                add(order[prediction.image], "record", prediction.to_dict())
            for issue in run.issues.issues:
                add(order.get(str(Path(issue.file).resolve()), -1), "issue",
                    {"file": issue.file, "reason": issue.reason, "detail": issue.detail})
            add(-1, "counts", {"images": run.images, "predicted": run.predicted, "resumed": run.resumed,
                               "settings": run.settings})
        return rows

    def _local(self, path: str) -> Path:
        """A local file for a path or URL (a remote photo is copied into the cache once)."""
        if not _is_url(path):
            return Path(path)
        import fsspec

        target = cached_path(path, self.input_cache)
        if not target.is_file():
            with fsspec.open(path, "rb") as remote:
                data = remote.read()
            atomic_write(target, lambda tmp: tmp.write_bytes(data))
        return target


# -- the driver -----------------------------------------------------------------------------------
def check_address(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast when a Ray cluster's ``host:port`` does not answer (Ray itself retries for minutes).

    Raises:
        DrywallQAError: Naming the address and the reason.
    """
    if address in ("auto", "local"):
        return
    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address}: expected HOST:PORT of the Ray head (e.g. 10.0.0.5:6379), or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise DrywallQAError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}; start it with "
                             "`ray start --head` on the head node, or drop --address for a local one") from exc


def predict_on_ray(
    inputs: Sequence[str | os.PathLike],
    prompts: Sequence[str],
    out: str | os.PathLike,
    *,
    model: str | None = None,
    predictor_options: dict | None = None,
    model_id: str = "default",
    mm_per_px: float | None = None,
    qa_rules: QARules | None = None,
    prompt_config: PromptConfig | None = None,
    address: str | None = None,
    workers: int | None = None,
    worker_cpus: float = 1,
    worker_gpus: float = 0,
    batch_size: int = 8,
    input_cache: str | os.PathLike | None = None,
    progress: bool = False,
    **predict_options,
) -> PredictionRun:
    """:func:`~drywallqa.serving.predict_images` over a Ray cluster: same arguments, same outputs.

    Args:
        inputs: Image files, folders, glob patterns or fsspec URLs (see :func:`list_inputs`).
        prompts: Prompts applied to every photo.
        out: Output folder; every worker must see it at this path.
        model: Model spec, loaded on each worker (None: the shipped model).
        predictor_options: :func:`~drywallqa.inference.load_predictor` arguments (``device``,
            ``threshold``, ``tta``, ``model_args``).
        model_id: Model name recorded (a rerun must use the same one to resume).
        mm_per_px: Image scale, for millimetre figures and rules.
        qa_rules: Figure sets and rules; the built-in file by default.
        prompt_config: Prompt classes; the built-in ``prompts.yaml`` by default.
        address: A running cluster's head (``HOST:PORT`` or ``auto``); None starts a local Ray
            (or uses the one this process is already connected to).
        workers: Actors predicting at once (default: the cluster's CPUs / ``worker_cpus``).
        worker_cpus: CPUs per actor (also its torch threads).
        worker_gpus: GPUs per actor (fractions share a GPU).
        batch_size: Photos per ``map_batches`` call.
        input_cache: Folder of local copies of remote photos (default ``<out>-inputs``).
        progress: Show Ray Data's progress bars.
        **predict_options: Further :func:`~drywallqa.serving.predict_images` arguments, passed to
            every worker's call.

    Returns:
        The run, as :func:`~drywallqa.serving.predict_images` returns it.

    Raises:
        DrywallQAError: If Ray is missing or the cluster cannot be reached.
        DataError: If an input does not exist or no photo could be read.
        ConfigError: For a bad prompt, scale, output folder or worker setting.
    """
    ray = import_ray()
    prompts = list(dict.fromkeys(check_prompt(p) for p in prompts))
    if not prompts:
        raise ConfigError("give at least one --prompt, e.g. --prompt 'segment crack'")
    if (workers is not None and workers < 1) or worker_cpus <= 0 or worker_gpus < 0 or batch_size < 1:
        raise ConfigError("--workers, --worker-cpus and --ray-batch-size must be positive (--worker-gpus may be 0)")
    qa_rules = (qa_rules or QARules.default()).check_classes(prompt_config)
    scale_warning = check_mm_per_px(mm_per_px, "--mm-per-px")
    paths = list_inputs(inputs)
    local = [Path(p) for p in paths if not _is_url(p)]
    out = check_output_dir(out, local, [i for i in map(str, inputs) if not _is_url(i)])
    cache = Path(input_cache).resolve() if input_cache else out.with_name(out.name + "-inputs")
    # The run's warnings once, here (the workers' parts leave them to the driver).
    config = prompt_config or PromptConfig.default()
    for warning in [unknown_prompt_message(p, config) for p in prompts if prompt_class(p, config) is None] + \
            ([scale_warning] if scale_warning else []):
        print(f"warning: {warning}", file=sys.stderr)
    # Output names over the whole run, as a local run gives them: a batch alone could not tell
    # that two photos of different batches share a stem.
    located = [Path(p).resolve() if not _is_url(p) else cached_path(p, cache).resolve() for p in paths]
    keys = {str(path): key for path, key in output_keys(list(dict.fromkeys(located))).items()}
    predictor_options = {"device": "cpu" if not worker_gpus else None, **(predictor_options or {})}
    model = str(Path(model).resolve()) if model and Path(model).exists() else model
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            check_address(address)
        try:
            ray.init(address=address, num_cpus=None if address else _local_cpus(workers, worker_cpus),
                     include_dashboard=False, log_to_driver=True, logging_level="WARNING")
        except (ConnectionError, RuntimeError) as exc:
            raise DrywallQAError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {exc}") from exc
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = progress
        if not progress:  # Ray Data's per-run INFO lines
            logging.getLogger("ray.data").setLevel(logging.WARNING)
        workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1) // worker_cpus))
        threads = max(1, int(worker_cpus))
        items = [{"index": index, "path": str(Path(p).resolve()) if not _is_url(p) else p} for index, p in enumerate(paths)]
        dataset = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), 4 * workers))).map_batches(
            PredictBatch, batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=worker_cpus, num_gpus=worker_gpus,
            fn_constructor_kwargs={
                "out": str(out), "prompts": prompts, "model": model, "predictor_options": predictor_options,
                "predict_options": {"model_id": model_id, "mm_per_px": mm_per_px, "qa_rules": qa_rules,
                                    "prompt_config": prompt_config, **predict_options},
                "input_cache": str(cache), "threads": threads, "keys": keys,
            },
        )
        run = _collect(out, dataset)
        run.coco = predict_options.get("coco", True)
    finally:
        if started_here:
            ray.shutdown()
    if run.images == 0:
        raise DataError(f"none of the {len(paths)} input image(s) could be read ({len(run.issues)} skipped)")
    image_root = common_folder(Path(p.image) for p in run.predictions)
    # What the workers ran with (model, weights, runtime, thresholds, flips...), as a local run records it.
    run.settings = {**run.settings, "engine": "ray", "workers": workers}
    run.files = write_tables(run, image_root=image_root, settings=run.settings)
    return run


def _local_cpus(workers: int | None, worker_cpus: float) -> int | None:
    return None if workers is None else max(1, int(np.ceil(workers * worker_cpus)))


def _collect(out: Path, dataset) -> PredictionRun:
    """The workers' rows as one run: records in input order, counts summed, skipped photos listed."""
    run = PredictionRun(out)
    records: list[tuple[int, int, Prediction]] = []
    for batch in dataset.iter_batches(batch_size=256, batch_format="numpy"):
        for index, kind, data in zip(batch["index"], batch["kind"], batch["data"]):
            payload = json.loads(str(data))
            if kind == "record":  # the masks are read from the folder again for coco.json
                records.append((int(index), len(records), Prediction.from_dict(payload, out)))
            elif kind == "issue":
                run.issues.skip(payload["file"], "", payload["reason"], payload["detail"])
            else:
                run.images += payload["images"]
                run.predicted += payload["predicted"]
                run.resumed += payload["resumed"]
                run.settings = run.settings or payload.get("settings") or {}
    run.predictions = Predictions(p for _, _, p in sorted(records, key=lambda item: item[:2])).with_photo_verdicts()
    return run
