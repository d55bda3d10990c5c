"""The Open Inference Protocol (KServe V2) routes, beside the MLflow ones on every deployment.

They answer with the same served model, through the same batcher (a V2 request merges with
``/invocations`` requests whose prepared input is alike) and count in the same metrics.
Every error, including the ones the shared handler base answers (403, 405, 413, 504), is
worded as V2's ``{"error": message}``.
"""

from __future__ import annotations

import asyncio
import re
import time
from functools import partial
from pathlib import PurePosixPath
from typing import Any

from jupyter_serve.protocol import (
    InferenceRequest,
    OpenInferenceError,
    ScoringError,
    ScoringRequest,
    ScoringResponse,
    array_output_name,
    as_open_inference_error,
    model_metadata_response,
    model_not_found_response,
    model_ready_response,
    open_inference_error_response,
    parse_inference_request,
    prepare_input,
    render_inference_response,
    server_live_response,
    server_metadata_response,
    server_ready_response,
    timeout_response,
)
from jupyter_serve.server._handlers import (
    INLINE_PARSE_BYTES,
    ServedModel,
    ServingState,
    _ScoringHandler,
)

_MODEL_ROUTE = r"/v2/models/([^/]+)(?:/versions/([^/]+))?"
BINARY_HEADER = "Inference-Header-Content-Length"


def served_model_name(options_name: str | None, model_uri: str) -> str:
    """The name V2 clients use for the served model: the deployment's name when the server
    was given one, else the registered model's name in a ``models:/`` URI, else the last
    part of the URI's path (a model directory's name)."""
    if options_name:
        return options_name
    match = re.match(r"models:/+([^/@]+)", model_uri)
    if match:
        return match.group(1)
    tail = PurePosixPath(model_uri.rstrip("/").split(":", 1)[-1]).name
    return tail or "model"


class _OpenInferenceHandler(_ScoringHandler):
    # Tornado passes the route's groups to the verb methods; the base dispatches on none.
    async def get(self, *_: str | None) -> None:
        await self._dispatch()

    async def head(self, *_: str | None) -> None:
        await self._dispatch()

    async def post(self, *_: str | None) -> None:
        await self._dispatch()

    async def delete(self, *_: str | None) -> None:
        await self._dispatch()

    async def patch(self, *_: str | None) -> None:
        await self._dispatch()

    async def put(self, *_: str | None) -> None:
        await self._dispatch()

    async def options(self, *_: str | None) -> None:
        await self._dispatch()

    def _answer(self, response: ScoringResponse) -> None:
        super()._answer(as_open_inference_error(response))

    def _model_name(self, served: ServedModel) -> str:
        return served_model_name(self._state.options.model_name, served.model_uri)

    def _not_served(self, served: ServedModel) -> ScoringResponse | None:
        """404 unless the route's model name (and version, if any) is the served model's."""
        asked_name, asked_version = self.path_args[0], self.path_args[1]
        name = self._model_name(served)
        if asked_name == name and asked_version in (None, served.version):
            return None
        return model_not_found_response(asked_name, asked_version, name, served.version)


class LiveHandler(_OpenInferenceHandler):
    allowed_methods = ("GET",)

    async def respond(self) -> ScoringResponse:
        return server_live_response()


class ReadyHandler(_OpenInferenceHandler):
    allowed_methods = ("GET",)

    async def respond(self) -> ScoringResponse:
        return server_ready_response()


class ServerMetadataHandler(_OpenInferenceHandler):
    allowed_methods = ("GET",)

    async def respond(self) -> ScoringResponse:
        return server_metadata_response()


class ModelMetadataHandler(_OpenInferenceHandler):
    allowed_methods = ("GET",)

    async def respond(self) -> ScoringResponse:
        served = self._state.current
        refused = self._not_served(served)
        if refused is not None:
            return refused
        return model_metadata_response(served.model, self._model_name(served), served.version)


class ModelReadyHandler(_OpenInferenceHandler):
    allowed_methods = ("GET",)

    async def respond(self) -> ScoringResponse:
        served = self._state.current
        refused = self._not_served(served)
        if refused is not None:
            return refused
        return model_ready_response(self._model_name(served), served.version)


class InferHandler(_OpenInferenceHandler):
    allowed_methods = ("POST",)
    scored = True
    _prediction: asyncio.Future[ScoringResponse] | None = None

    async def respond(self) -> ScoringResponse:
        state = self._state
        served = state.current  # a swap from now on does not touch this request
        refused = self._not_served(served)
        if refused is not None:
            return refused
        headers = self.request.headers
        body = self.take_body()
        parse = partial(
            _parse_and_prepare,
            served.model,
            body,
            headers.get("Content-Type"),
            headers.get(BINARY_HEADER),
        )
        deadline = self._started + state.options.timeout
        loop = asyncio.get_running_loop()
        try:
            if len(body) <= INLINE_PARSE_BYTES:
                data, params, request = parse()
            else:
                parsing = loop.run_in_executor(state.executor, parse)
                data, params, request = await asyncio.wait_for(
                    asyncio.shield(parsing), _remaining(deadline)
                )
            self._data = data
            render = partial(
                render_inference_response,
                model_name=self._model_name(served),
                model_version=served.version,
                request_id=request.id,
                requested_outputs=request.requested_outputs,
                array_name=array_output_name(served.model),
                binary_outputs=request.binary_outputs,
            )
            remaining = _remaining(deadline)
            answer = state.batcher.submit(
                served.model,
                data,
                params,
                wrap=True,
                render=render,
                deadline=loop.time() + remaining,
            )
            self._prediction = answer
            # Not wait_for: a withdrawn (cancelled) answer must not cancel this coroutine.
            await asyncio.wait((answer,), timeout=remaining)
        except (OpenInferenceError, ScoringError) as error:
            return error.to_response()
        except asyncio.TimeoutError:
            return timeout_response(state.options.timeout)
        if answer.done() and not answer.cancelled():
            return answer.result()
        self._withdraw_prediction()
        return timeout_response(state.options.timeout)

    def on_connection_close(self) -> None:
        self._withdraw_prediction()
        super().on_connection_close()

    def _withdraw_prediction(self) -> None:
        # Nobody waits for it any more: a queued prediction must not take a thread's time.
        if self._prediction is not None:
            self._state.batcher.withdraw(self._prediction)


class OpenInferenceNotFoundHandler(_OpenInferenceHandler):
    allowed_methods = _ScoringHandler.SUPPORTED_METHODS

    async def respond(self) -> ScoringResponse:
        return open_inference_error_response(
            404,
            f"{self.request.path} is not an Open Inference Protocol route. Routes: /v2, "
            "/v2/health/live, /v2/health/ready, /v2/models/<name>[/versions/<version>] and "
            "its /ready and /infer.",
        )


def _parse_and_prepare(
    model: Any, body: bytes, content_type: str | None, binary_header: str | None
) -> tuple[Any, dict[str, Any] | None, InferenceRequest]:
    request = parse_inference_request(body, content_type, model, binary_header=binary_header)
    data, params = prepare_input(model, ScoringRequest(request.data, request.params, True, None))
    return data, params, request


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.perf_counter())


def open_inference_routes(state: ServingState) -> list[Any]:
    """The V2 routes of one deployment, for its Tornado application's route table."""
    arguments = {"state": state}
    return [
        (r"/v2/health/live", LiveHandler, arguments),
        (r"/v2/health/ready", ReadyHandler, arguments),
        (r"/v2/?", ServerMetadataHandler, arguments),
        (_MODEL_ROUTE + r"/?", ModelMetadataHandler, arguments),
        (_MODEL_ROUTE + r"/ready", ModelReadyHandler, arguments),
        (_MODEL_ROUTE + r"/infer", InferHandler, arguments),
        (r"/v2/.*", OpenInferenceNotFoundHandler, arguments),
    ]
