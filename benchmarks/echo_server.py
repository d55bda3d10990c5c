"""The ceiling: a bare Tornado server that parses the JSON body and writes a small JSON answer.

Usage: ``python -m benchmarks.echo_server PORT``. No model, no validation: whatever a Tornado
scoring server does beyond this is its own cost.
"""

from __future__ import annotations

import asyncio
import json
import sys

import tornado.web

ANSWER = json.dumps({"predictions": ["ham"]}).encode()


class EchoHandler(tornado.web.RequestHandler):
    def post(self) -> None:
        json.loads(self.request.body)
        self.set_header("Content-Type", "application/json")
        self.write(ANSWER)

    def get(self) -> None:
        self.write("\n")


async def serve(port: int) -> None:
    """Listen on 127.0.0.1:``port`` until the process is killed."""
    app = tornado.web.Application([(r"/invocations", EchoHandler), (r"/ping", EchoHandler)])
    app.listen(port, address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
