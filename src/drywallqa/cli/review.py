"""``drywallqa review``: least certain predictions out to Label Studio / CVAT, corrections back in."""

from __future__ import annotations

import argparse


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
