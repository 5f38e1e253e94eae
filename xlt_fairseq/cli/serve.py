# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""xlt-serve: a trained model behind HTTP (FastAPI + uvicorn; ``pip install 'xlt_fairseq[serve]'``).

    xlt-serve model_dir                      # http://127.0.0.1:8000
    curl -s localhost:8000/entities -d '{"texts": ["Amina anaishi Nairobi."], "lang": "sw"}'

``POST /tag``, ``/entities``, ``/classify``, ``/translate`` take ``{"texts": [...],
"lang": "sw"}`` and answer a JSON list with one record per text, the records
xlt-predict writes; ``GET /health`` describes the model. Concurrent requests are
batched into one model call (up to --max-batch texts, waiting at most --max-wait-ms
for them). Binds 127.0.0.1 unless --host says otherwise.
"""

import argparse
import sys


def build_parser():
    parser = argparse.ArgumentParser(
        prog="xlt-serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", metavar="MODEL_DIR", help="a model folder written by xlt-export")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is available")
    parser.add_argument("--half", action="store_true", help="fp16 inference (GPU only)")
    parser.add_argument("--max-batch", type=int, default=64, help="texts in one model call (default: 64)")
    parser.add_argument(
        "--max-wait-ms", type=float, default=5.0, help="how long a request waits for others to batch with (default: 5)"
    )
    parser.add_argument("--max-texts", type=int, default=256, help="texts in one request (default: 256; more: 413)")
    parser.add_argument("--max-chars", type=int, default=10000, help="characters of one text (default: 10000; more: 413)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size within a model call (default: 32)")
    parser.add_argument("--beam", type=int, default=5, help="translation: beam size")
    parser.add_argument("--verbose", action="store_true", help="log the model's loading and every request (INFO)")
    return parser


def main(argv=None) -> int:
    from .common import report, setup, user_errors

    args = build_parser().parse_args(argv)
    for name in ("port", "max_batch", "max_texts", "max_chars", "batch_size", "beam"):
        if getattr(args, name) < (0 if name == "port" else 1):
            build_parser().error(f"--{name.replace('_', '-')} must be >= 1")
    setup(args)
    try:
        from ..optional import require

        require("fastapi", "xlt-serve")
        require("uvicorn", "xlt-serve")
        from ..serving import ServeConfig, create_app, make_server
        from .common import load

        args.checkpoint, args.data, args.encoder_dir = None, None, None
        hub = load(args, args.half)
        config = ServeConfig(
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            max_texts=args.max_texts,
            max_chars=args.max_chars,
            batch_size=args.batch_size,
            beam=args.beam,
        )
        server = make_server(create_app(hub, config), args.host, args.port, "info" if args.verbose else "warning")
    except (ImportError,) + user_errors() as e:
        return report(e)
    print(f"xlt-serve: {args.model} on http://{args.host}:{args.port} (Ctrl-C stops)", file=sys.stderr, flush=True)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
