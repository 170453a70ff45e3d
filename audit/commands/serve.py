"""`python -m audit serve --weights weights/NAME [--host 127.0.0.1 --port 8700] [--device cuda|cpu]
[--max-batch-size N --batch-timeout S] [--threads T] [--max-request-mb M --max-image-mb M]`.

Serves the checkpoint on LitServe (see audit/serving.py for the HTTP interface): `POST /predict`,
`GET /card`, `GET /health`. Runs until Ctrl+C. Point the app at it with
`MASK_AUDIT_MODEL_URL=http://HOST:PORT` (or the sidebar's "Model server" field).
"""
from __future__ import annotations

import argparse

from audit.cli import UsageError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    from audit.serving import DEFAULT_HOST, DEFAULT_PORT, ServeConfig

    parser.add_argument("--weights", required=True, help="checkpoint: weights/NAME/model.pt or its folder")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"{DEFAULT_HOST} (this machine only, default), 0.0.0.0 or :: (every interface)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default: {DEFAULT_PORT})")
    parser.add_argument("--device", default=None, choices=("cuda", "cpu"), help="default: cuda when present")
    parser.add_argument("--max-batch-size", type=int, default=ServeConfig.max_batch_size,
                        help=f"requests grouped into one forward pass at most (default: {ServeConfig.max_batch_size})")
    parser.add_argument("--batch-timeout", type=float, default=ServeConfig.batch_timeout,
                        help=f"seconds to wait for a batch to fill (default: {ServeConfig.batch_timeout})")
    parser.add_argument("--threads", type=int, default=ServeConfig.cpu_threads,
                        help="torch threads of the CPU worker (default: %(default)s; more helps big batches on an idle box)")
    parser.add_argument("--max-request-mb", type=float, default=ServeConfig.max_request_bytes / 2**20,
                        help="largest request body in MB; larger ones get 413 (default: %(default)g)")
    parser.add_argument("--max-image-mb", type=float, default=ServeConfig.max_image_bytes / 2**20,
                        help="largest image file in MB; larger ones get 413 (default: %(default)g)")


def run(args) -> int:
    from audit.serving import ServeConfig, create_server, port_is_free, serve

    config = ServeConfig(weights=args.weights, host=args.host, port=args.port, device=args.device,
                         max_batch_size=args.max_batch_size, batch_timeout=args.batch_timeout, cpu_threads=args.threads,
                         max_request_bytes=int(args.max_request_mb * 2**20), max_image_bytes=int(args.max_image_mb * 2**20))
    try:
        server = create_server(config)  # every setting and the checkpoint checked before anything starts
    except (ValueError, FileNotFoundError, OSError) as err:
        raise UsageError(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    if not port_is_free(config.host, config.port):
        raise UsageError(f"port {config.port} on {config.host} is in use (another server?): choose another with --port")
    url_host = "127.0.0.1" if config.host in ("0.0.0.0", "::") else config.host
    print(f"Serving {config.weights} on http://{url_host}:{config.port} (POST /predict, GET /card, GET /health); "
          f"Ctrl+C stops it", flush=True)
    serve(config, server)
    return 0
