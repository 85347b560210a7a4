"""``drywallqa export``: ONNX (with prompt embeddings, parity check, optional int8) and TensorRT."""

from __future__ import annotations

import argparse

from drywallqa.export.onnx import DEFAULT_OPSET


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX (+ prompt embeddings, parity check, optional int8) or a TensorRT engine",
        description="Write <out>.onnx (inputs: images float32 (B,3,H,W) RGB in [0,1], H and W multiples of 32, and "
        "prompt_embeddings float32 (B,D); outputs mask_logits (B,1,H,W) and confidence_logits (B,); dynamic batch and "
        "size) and <out-stem>.prompts.json with the embeddings of every prompt of the prompt config, after checking "
        "ONNX Runtime against PyTorch on synthetic photos (IoU >= 0.999).",
    )
    parser.add_argument("--model", metavar="M", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--format", choices=("onnx", "tensorrt"), default="onnx",
                        help="onnx, or tensorrt: the ONNX file plus an fp16 engine built from it (needs tensorrt and a GPU)")
    parser.add_argument("--out", metavar="FILE", help="output .onnx file (default: ./<model name>.onnx)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, metavar="N", help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--int8", action="store_true", help="also write <out-stem>.int8.onnx (static int8) and print its IoU cost")
    parser.add_argument("--calibration", metavar="DIR", action="append",
                        help="folder of real photos to calibrate int8 on and to measure its IoU cost on (repeatable; "
                        "default: synthetic photos, which suit a smoke test but not a trained model)")
    parser.add_argument("--calibration-images", type=int, default=64, metavar="N",
                        help="photos taken from the --calibration folders, spread evenly over them (default 64)")
    parser.add_argument("--prompts", metavar="YAML", help="prompt config whose prompts are embedded (default: built-in)")
    parser.add_argument("--check-images", type=int, default=4, metavar="N", help="synthetic photos for the parity check (default 4)")
    parser.add_argument("--no-check", dest="check", action="store_false", help="skip the parity check (not recommended)")
    parser.add_argument("--json", metavar="FILE", help="also write the export summary (paths, parity) as JSON")
    parser.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from drywallqa.data import PromptConfig
    from drywallqa.export import calibration_paths, export_onnx
    from drywallqa.files import atomic_write_json, read_image
    from drywallqa.inference import build_tensorrt_engine, load_model

    model = load_model(args.model)
    result = export_onnx(
        model,
        args.out or f"{model.name}.onnx",
        opset=args.opset,
        prompt_config=PromptConfig.from_yaml(args.prompts) if args.prompts else None,
        check=args.check,
        check_images=args.check_images,
        int8=args.int8,
        calibration_images=[read_image(p) for p in calibration_paths(args.calibration, args.calibration_images)]
        if args.calibration else None,
    )
    print(result.summary())
    _copy_calibration(args.model, [result.onnx_path, result.int8_path])
    if args.json:
        print(f"wrote {atomic_write_json(args.json, result.to_dict(), indent=2)}")
    if args.format == "tensorrt":
        # Raises TensorRTUnavailable (exit 2) with the trtexec command when TensorRT is missing.
        print(f"wrote {build_tensorrt_engine(result.onnx_path)}")
    return 0


def _copy_calibration(model: str | None, exported: list) -> None:
    """The model's calibrated thresholds go beside each exported file, which load them like the folder's."""
    import shutil

    from drywallqa.inference import calibration_file

    source = calibration_file(model)
    if source is None or not source.is_file():
        return
    for path in filter(None, exported):
        target = calibration_file(str(path))
        if target is not None:  # always, for an exported file
            shutil.copyfile(source, target)
            print(f"wrote {target}")

