"""``drywallqa review``: least certain predictions out to Label Studio / CVAT, corrections back in."""

from __future__ import annotations

import argparse
from pathlib import Path

#: Where Label Studio keeps its data on Linux when LABEL_STUDIO_BASE_DATA_DIR is not set.
DEFAULT_LABEL_STUDIO_DATA = Path.home() / ".local" / "share" / "label-studio"


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "review", help="export the least certain predictions to Label Studio and CVAT; import the corrections as a dataset",
        description="The review loop: `review export` ranks the photos of a `drywallqa predict` folder by the model's "
        "confidence and writes the least certain ones as Label Studio tasks (masks as brush predictions) and CVAT "
        "COCO; `review import` turns the corrected export into a COCO dataset for `drywallqa train --init-from "
        "default --data OUT`.",
    )
    commands = parser.add_subparsers(dest="review_command", metavar="COMMAND", required=True)
    export = commands.add_parser("export", help="least certain photos as Label Studio tasks and CVAT COCO")
    export.add_argument("predictions", metavar="PREDICTIONS", help="a `drywallqa predict` output folder")
    export.add_argument("--out", required=True, metavar="DIR", help="review folder to write")
    export.add_argument("--count", "-n", type=int, default=20, metavar="N", help="photos to export (default 20)")
    export.add_argument("--image-url-prefix", default=None, metavar="URL",
                        help="prefix of images/<name> in the tasks' image URLs (default: Label Studio local files, "
                        "/data/local-files/?d=, with the review folder as document root)")
    export.add_argument("--photos", metavar="DIR", default=None,
                        help="the folder the run read its photos from: only photos in it (or in the run's folder) are "
                        "copied, and relative record paths are taken from it (default: the current folder)")
    export.add_argument("--strict", action="store_true", help="fail at a record naming a file outside those folders")
    export.set_defaults(handler=run_review_export)
    load = commands.add_parser("import", help="a Label Studio JSON or CVAT COCO export -> a COCO dataset")
    load.add_argument("export", metavar="EXPORT", help="Label Studio JSON export, or CVAT 'COCO 1.0' export (zip, folder or json)")
    load.add_argument("--images", metavar="DIR", help="the photos: the review folder's images/ (needed for Label Studio)")
    load.add_argument("--out", required=True, metavar="DIR", help="dataset folder to write (<out>/train/_annotations.coco.json)")
    load.add_argument("--strict", action="store_true", help="fail at the first bad entry instead of skipping it")
    load.set_defaults(handler=run_review_import)
    add_serve_label_studio(commands)


def run_review_export(args: argparse.Namespace) -> int:
    from drywallqa.serving.review import LOCAL_FILES_PREFIX, export_review

    export = export_review(args.predictions, args.out, args.count, image_url_prefix=args.image_url_prefix or LOCAL_FILES_PREFIX,
                           photos=args.photos, strict=args.strict)
    if export.ranking:
        print(f"{len(export.ranking)} of {export.photos} photo(s), least certain first: confidence "
              f"{export.ranking[0]['confidence']:.3f} to {export.ranking[-1]['confidence']:.3f}")
    for key in ("tasks", "config", "cvat", "manifest"):
        print(f"wrote {export.files[key]}")
    return 0


def run_review_import(args: argparse.Namespace) -> int:
    from drywallqa.serving.review import import_review

    result = import_review(args.export, args.out, images=args.images, strict=args.strict)
    annotations = sum(len(s.annotations) for s in result.dataset)
    negatives = sum(not s.annotations for s in result.dataset)
    print(f"{len(result.dataset)} reviewed photo(s) ({negatives} with nothing to segment), {annotations} annotation(s) "
          f"from the {result.kind} export; {result.not_reviewed} not reviewed, {len(result.issues)} skipped")
    print(f"wrote {result.out}; fine-tune on it with: drywallqa train --init-from default --data {result.out}")
    return 0


def add_serve_label_studio(commands) -> None:
    from drywallqa.cli.common import add_model_args, add_qa_rules_args

    serve = commands.add_parser(
        "serve-label-studio", help="the model as a Label Studio ML backend: brush masks with confidence while labelling",
        description="Serve the model as a Label Studio ML backend (/health, /setup, /predict, /webhook): connect it in "
        "the project's Settings > Model with this URL; each task gets one brush mask per label that names a prompt "
        "class, with the model's confidence and QA verdict. Photos are read from Label Studio's upload folder and "
        "local files root on this machine, or from its localhost URL (LABEL_STUDIO_API_KEY in the environment).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=9090, help="port (default 9090, Label Studio's usual ML backend port)")
    add_model_args(serve)
    serve.add_argument("--threshold", type=float, metavar="T",
                       help="mask probability threshold (default: the model's calibrated per-class thresholds, else 0.5)")
    add_qa_rules_args(serve)
    serve.add_argument("--label-studio-data", metavar="DIR",
                       help="Label Studio's data folder, whose media/upload holds imported photos (default "
                       "$LABEL_STUDIO_BASE_DATA_DIR, else ~/.local/share/label-studio when it exists)")
    serve.add_argument("--local-files-root", metavar="DIR",
                       help="Label Studio's local files document root (default $LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)")
    serve.add_argument("--label-studio-url", metavar="URL",
                       help="Label Studio on this machine, e.g. http://localhost:8080, to fetch photos not found in the "
                       "folders above (default $LABEL_STUDIO_URL); its token comes from $LABEL_STUDIO_API_KEY")
    serve.add_argument("--corrections", metavar="DIR",
                       help="keep submitted annotations (the webhook) with their photos in DIR as a Label Studio export "
                       "for `drywallqa review import DIR/annotations.json --images DIR/images` (default: only logged)")
    serve.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    serve.set_defaults(handler=run_serve_label_studio)


def run_serve_label_studio(args: argparse.Namespace) -> int:
    import logging
    import os

    from drywallqa.integrations.label_studio_app import require_label_studio_extra

    require_label_studio_extra()  # before loading the model: a missing extra names the one pip command
    from drywallqa.cli.common import load_model_predictor, load_qa_rules
    from drywallqa.errors import ConfigError
    from drywallqa.integrations.label_studio import LabelStudioBackend
    from drywallqa.integrations.label_studio_app import create_label_studio_app
    from drywallqa.integrations.task_images import TaskImageReader

    qa_rules, prompt_config = load_qa_rules(args)
    data_dir = args.label_studio_data or os.environ.get("LABEL_STUDIO_BASE_DATA_DIR")
    if data_dir is None and DEFAULT_LABEL_STUDIO_DATA.is_dir():
        data_dir = DEFAULT_LABEL_STUDIO_DATA
    if data_dir is not None and not Path(data_dir).is_dir():
        raise ConfigError(f"--label-studio-data {data_dir}: no such folder")
    images = TaskImageReader(
        upload_dir=Path(data_dir) / "media" / "upload" if data_dir else None,
        local_files_root=args.local_files_root or os.environ.get("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT") or None,
        label_studio_url=args.label_studio_url or os.environ.get("LABEL_STUDIO_URL") or None,
        api_key=os.environ.get("LABEL_STUDIO_API_KEY") or None,
    )
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    predictor = load_model_predictor(args, threshold=args.threshold)
    from drywallqa import __version__

    backend = LabelStudioBackend(predictor, images, model_version=f"drywallqa-{__version__}:{args.model or 'default'}",
                                 qa_rules=qa_rules, prompt_config=prompt_config, corrections=args.corrections)
    import uvicorn

    from drywallqa.serving.server import server_config

    config = server_config(create_label_studio_app(backend), args.host, args.port, log_level=args.log_level)
    print(f"Label Studio ML backend on http://{args.host}:{args.port} (model {args.model or 'shipped default'}); "
          f"photos from {', '.join(_sources(images)) or 'nowhere yet: see --label-studio-data'}")
    uvicorn.Server(config).run()
    return 0


def _sources(images) -> list[str]:
    return [f"{name} {value}" for name, value in (("uploads", images.upload_dir), ("local files", images.local_files_root),
                                                   ("Label Studio", images.label_studio_url)) if value]
