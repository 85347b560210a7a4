"""``drywallqa serve``: the HTTP API and web page (FastAPI on uvicorn)."""

from __future__ import annotations

import argparse

from drywallqa.cli.common import add_model_args, add_qa_rules_args, add_tile_arg, load_model_predictor, load_qa_rules


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="HTTP API (POST /v1/segment) and a web page for inspecting photos",
        description="Serve the model over HTTP: POST /v1/segment, GET /healthz, GET /v1/models, OpenAPI at "
        "/openapi.json and /docs, and a web page at /. The model is loaded before the server starts.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--ssl-certfile", metavar="FILE",
                        help="PEM certificate: serve https (a tablet's browser gives the page's live camera only to https "
                             "pages or to localhost)")
    parser.add_argument("--ssl-keyfile", metavar="FILE", help="PEM private key of --ssl-certfile")
    parser.add_argument("--app", metavar="DIR",
                        help="an app folder of `drywallqa app build`: the page can then also run the model on the device "
                             "(offline once loaded), with a switch 'on this device / on the server'")
    add_model_args(parser)
    parser.add_argument("--model-id", default="default", help="name clients use in the 'model' field (default 'default')")
    add_tile_arg(parser)
    parser.add_argument("--threshold", type=float, metavar="T",
                        help="mask probability threshold for every prompt (default: the model's calibrated per-class thresholds, else 0.5)")
    parser.add_argument("--max-upload-mb", type=float, default=10.0, help="largest request body in MB (default 10)")
    parser.add_argument("--max-export-mb", type=float, default=200.0,
                        help="largest body of POST /v1/export, the web page's zip of a batch (default 200)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S", help="longest prediction in seconds (default 30)")
    parser.add_argument("--concurrency", type=int, default=8, metavar="N",
                        help="requests processed at once: decoded, batched into shared model calls, measured (default 8)")
    parser.add_argument("--max-queued", type=int, default=16, metavar="N",
                        help="requests waiting for a slot; more get 503 with Retry-After (default 16)")
    parser.add_argument("--max-batch", type=int, metavar="N",
                        help="most images per model call (default: the runtime's batch size: 1 on a CPU, 8 on a GPU)")
    parser.add_argument("--batch-wait-ms", type=float, default=5.0, metavar="MS",
                        help="longest wait for a batch to fill while the model is idle (default 5)")
    parser.add_argument("--header-timeout", type=float, default=10.0, metavar="S",
                        help="longest time a client may take to send its request headers (default 10)")
    parser.add_argument("--body-timeout", type=float, default=60.0, metavar="S",
                        help="longest time a request body may take to arrive (default 60)")
    parser.add_argument("--max-connections", type=int, default=512, metavar="N",
                        help="open connections beyond which new ones get 503 and are closed (default 512)")
    parser.add_argument("--strict-prompts", action="store_true",
                        help="answer 422 to a prompt that names no known class (default: answer with a warning)")
    add_qa_rules_args(parser)
    parser.add_argument("--torch-threads", type=int, metavar="N", help="CPU threads per prediction (default: torch's choice)")
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    parser.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from drywallqa.serving.extra import require_serve_extra

    require_serve_extra()  # before loading the model: a missing extra names the one pip command
    from drywallqa.serving.server import check_tls_files

    check_tls_files(args.ssl_certfile, args.ssl_keyfile)  # before loading the model too
    qa_rules, prompt_config = load_qa_rules(args)  # and the rules files
    if args.app:
        from drywallqa.serving.webapp import WebApp

        WebApp.open(args.app)  # and the app folder
    import uvicorn

    from drywallqa.serving import create_app
    from drywallqa.serving.server import server_config

    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    # Load before binding, so a bad --model fails here with a message instead of on the first request.
    predictor = load_model_predictor(args, threshold=args.threshold)
    app = create_app(
        predictor, args.model or "shipped default", model_id=args.model_id, max_upload_mb=args.max_upload_mb, timeout_s=args.timeout,
        max_concurrent_predictions=args.concurrency, max_queued=args.max_queued, max_batch=args.max_batch,
        batch_wait_s=args.batch_wait_ms / 1000, body_timeout_s=args.body_timeout, max_export_mb=args.max_export_mb,
        strict_prompts=args.strict_prompts, qa_rules=qa_rules, prompt_config=prompt_config, webapp_dir=args.app,
    )
    config = server_config(app, args.host, args.port, header_timeout_s=args.header_timeout,
                           max_connections=args.max_connections, log_level=args.log_level,
                           ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)
    scheme = "https" if args.ssl_certfile else "http"
    print(f"serving {args.model or 'the shipped model'} as {args.model_id!r} on {scheme}://{args.host}:{args.port}/")
    uvicorn.Server(config).run()
    return 0
