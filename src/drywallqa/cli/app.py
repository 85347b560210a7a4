"""``drywallqa app``: the web page as a static app that runs the model in the browser, offline."""

from __future__ import annotations

import argparse

from drywallqa.cli.common import add_qa_rules_args, load_qa_rules


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "app",
        help="build the web page as an offline app that runs the model in the browser (onnxruntime-web)",
        description="The inspection page as a static folder that runs the model on the device: WebAssembly, or "
        "WebGPU where the browser has it. Any static host serves it (python -m http.server -d OUT), or "
        "`drywallqa serve --app OUT` beside the API; after the first load it works with the network off.",
    )
    verbs = parser.add_subparsers(dest="app_command", metavar="VERB")
    build = verbs.add_parser(
        "build", help="write the app: page, model (ONNX), prompt embeddings, browser runtime, manifest, service worker",
        description="Write OUT: the page, the model exported to ONNX (fp32) with the embeddings of its known prompts "
        "(the browser has no text encoder: other prompts run on the server only), the QA rules, onnxruntime-web "
        "(fetched once from the npm registry when this install lacks it), a web manifest and a service worker.",
    )
    build.add_argument("out", metavar="OUT", help="output folder")
    build.add_argument("--model", metavar="M", default=None,
                       help="model folder or exported .onnx file (default: the shipped model)")
    add_qa_rules_args(build)
    build.add_argument("--no-webgpu", dest="webgpu", action="store_false",
                       help="leave the WebGPU runtime out (29 MB smaller; the app then always runs on WebAssembly)")
    build.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    build.set_defaults(handler=run_build)
    fetch = verbs.add_parser(
        "fetch-runtime", help="fetch onnxruntime-web from the npm registry into the package (before building a wheel)",
        description="Run `npm pack` for the pinned onnxruntime-web, check its integrity hash and write its browser files "
        "into drywallqa/serving/ort_web_dist/ (git-ignored; the wheel ships them).",
    )
    fetch.set_defaults(handler=run_fetch)
    parser.set_defaults(handler=lambda args: parser.print_help() or 2)


def run_build(args: argparse.Namespace) -> int:
    from drywallqa.serving.webapp import build_webapp

    qa_rules, prompt_config = load_qa_rules(args)
    result = build_webapp(args.out, model=args.model, prompt_config=prompt_config, qa_rules=qa_rules,
                          webgpu=args.webgpu, overwrite=args.overwrite)
    print(result.summary())
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from drywallqa.serving.ort_web import ORT_WEB_VERSION, fetch_ort_web

    print(f"wrote onnxruntime-web {ORT_WEB_VERSION} into {fetch_ort_web()}")
    return 0
