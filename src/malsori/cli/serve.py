"""``malsori serve``: the OpenAI-compatible HTTP server and web page (needs the server extra).

Settings come from ``MALSORI_*`` environment variables (see ServerSettings); flags given
here override them.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..errors import MalsoriError
from ._args import description


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="HTTP server compatible with OpenAI's audio API, plus a web page",
        description=description(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", help="bind address [127.0.0.1; MALSORI_HOST]")
    p.add_argument("--port", type=int, help="[8000; MALSORI_PORT]")
    p.add_argument("--model", help="default model, also served as 'whisper-1' [base]")
    p.add_argument("--compute-type", help="[auto: int8 on a CPU, float16 on CUDA]")
    p.add_argument("--device", help="[auto]")
    p.add_argument("--threads", type=int, help="CPU threads per transcription [physical cores]")
    p.add_argument("--max-concurrent", type=int, help="transcriptions at once [1]")
    p.add_argument("--max-queue", type=int, help="waiting requests before 429 [8]")
    p.add_argument("--max-upload-mb", type=float, help="[25]")
    p.add_argument("--request-timeout", type=float, dest="request_timeout_s", help="seconds [900]")
    p.add_argument(
        "--idle-unload",
        type=float,
        dest="model_idle_unload_s",
        help="unload a model idle this many seconds; 0 = never [900]",
    )
    p.add_argument(
        "--no-preload",
        dest="preload",
        action="store_const",
        const=False,
        help="load the default model on the first request, not at start-up",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        dest="cors_origins",
        help="allow this browser origin (repeatable) [CORS off]",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        dest="allowed_hosts",
        help="also answer to this Host name, e.g. a reverse proxy's (repeatable; '*' = any) "
        "[localhost names and the bound address]",
    )
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn
        from pydantic import ValidationError

        from ..server import ServerSettings, create_app
        from ..server.protocol import graceful_websocket_protocol, guarded_protocol
        from ..server.realtime import WS_TRANSPORT_MAX_BYTES, hub
    except ImportError as exc:
        # Name the module: a partial install (a package of the extra, or one of its own
        # requirements, missing) otherwise gives no clue what to install.
        raise MalsoriError(
            f"'malsori serve' needs the server extra ({exc.name or exc} could not be "
            "imported): pip install -e '.[server]'"
        ) from exc
    fields = (
        "host",
        "port",
        "model",
        "compute_type",
        "device",
        "threads",
        "max_concurrent",
        "max_queue",
        "max_upload_mb",
        "request_timeout_s",
        "model_idle_unload_s",
        "preload",
        "cors_origins",
        "allowed_hosts",
    )
    overrides = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
    try:
        settings = ServerSettings(**overrides)
    except ValidationError as exc:  # one line per bad setting, not a traceback
        problems = "; ".join(
            f"MALSORI_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise MalsoriError(f"invalid server settings: {problems}") from None
    if sys.stdout.__class__.__name__ == "_ClosedStdout":  # started with >&-: its access
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (log goes nowhere, quietly)
    if settings.host not in ("127.0.0.1", "localhost", "::1") and settings.api_key is None:
        print(f"malsori: warning: listening on {settings.host} without MALSORI_API_KEY")
    app = create_app(settings)
    live_hub = hub(app)

    def finish_live_sessions() -> None:
        live_hub.closing = True

    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        http=guarded_protocol(settings),
        ws=graceful_websocket_protocol(finish_live_sessions),
        timeout_keep_alive=settings.keep_alive_s,
        # without it, one client trickling an upload (or a queue of long transcriptions)
        # kept a SIGTERM from ever ending the process (a hostile tester)
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        ws_max_size=WS_TRANSPORT_MAX_BYTES,  # /v1/realtime answers big messages itself
        # No close for a late pong: a client that does not read its events for a while
        # (sending a long file first) has its pongs wait behind them, and uvicorn's 20 s
        # timeout closed such sessions with 1011. A vanished client is closed by the
        # session's idle timeout (MALSORI_LIVE_IDLE_TIMEOUT_S) instead.
        ws_ping_timeout=None,
    )
    return 0
