"""The try-it panel: type an email (or fill a form), press Send, read the prediction.

A text model (one string column) gets a text area pre-filled with a sample email; a tabular
model gets one typed field per signature column; a model without a signature gets the raw JSON
body. Send makes a real HTTP request to the deployment and shows the answer as the server sent it.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING

import ipywidgets as widgets

from jupyter_serve._deployments._sample_request import (
    _column_specs,
    curl_command,
    sample_invocation_body,
)
from jupyter_serve.datasets import SAMPLE_SPAM_EMAIL
from jupyter_serve.widgets._request import (
    Exchange,
    FormField,
    FormValueError,
    convert_value,
    send_invocation,
    split_body,
)

if TYPE_CHECKING:
    from jupyter_serve._deployments import Deployment

_FIELD_LAYOUT = widgets.Layout(width="360px")


def _pre(text: str) -> str:
    return f"<pre style='white-space:pre-wrap;margin:0'>{html.escape(text)}</pre>"


def _message(text: str, *, error: bool) -> str:
    color = "var(--jp-error-color1, #d32f2f)" if error else "var(--jp-ui-font-color1, inherit)"
    return f"<div style='color:{color}'>{html.escape(text)}</div>"


class TryItPanel(widgets.VBox):  # type: ignore[misc]
    """Send sample inputs to a deployment from the notebook and see its answers.

    Everything runs on the kernel's main thread (widget callbacks); the request goes over
    loopback HTTP to the deployment's own server thread.
    """

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.fields = [
            FormField(name, kind) for name, kind in _column_specs(deployment.model.signature)
        ]
        self.inputs: dict[str, widgets.Widget] = {}
        self.text = widgets.Textarea(layout=widgets.Layout(width="100%", height="90px"))
        if self.is_text_model:
            self.text.value = SAMPLE_SPAM_EMAIL
            self.text.description = ""
            self.text.placeholder = "Paste an email here"
            editor: widgets.Widget = self.text
        elif self.fields:
            editor = widgets.VBox([self._field_widget(field) for field in self.fields])
        else:
            self.text.value = sample_invocation_body(deployment.model)
            self.text.placeholder = "A JSON /invocations body"
            editor = self.text
        self.send_button = widgets.Button(
            description="Send", button_style="primary", icon="paper-plane"
        )
        self.send_button.on_click(lambda _button: self.send())
        self.result = widgets.HTML()
        self.details = widgets.HTML()
        title = widgets.HTML(
            f"<b>Try {html.escape(deployment.name)}</b> — {html.escape(deployment.url)}"
        )
        super().__init__([title, editor, self.send_button, self.result, self.details])

    @property
    def is_text_model(self) -> bool:
        return len(self.fields) == 1 and "str" in self.fields[0].type_name.lower()

    def _field_widget(self, field: FormField) -> widgets.Widget:
        label = f"{field.column} ({field.type_name})"
        if "bool" in field.type_name.lower():
            control: widgets.Widget = widgets.Checkbox(description=label, indent=False)
        else:
            control = widgets.Text(
                description=label,
                placeholder=field.type_name,
                style={"description_width": "initial"},
                layout=_FIELD_LAYOUT,
            )
        self.inputs[field.column] = control
        return control

    def request_body(self) -> str:
        """The JSON body Send would post now; ``FormValueError`` for input that cannot be sent."""
        if self.is_text_model:
            email = self.text.value.strip()
            if not email:
                raise FormValueError("The email is empty: type or paste some text, then Send.")
            return json.dumps(split_body([self.fields[0].column], [email]))
        if self.fields:
            row = [convert_value(f, self.inputs[f.column].value) for f in self.fields]
            return json.dumps(split_body([f.column for f in self.fields], row))
        body: str = self.text.value.strip()
        try:
            json.loads(body)
        except ValueError as error:
            raise FormValueError(
                f"The request body is not valid JSON ({error}); fix it, then Send."
            ) from None
        return body

    def send(self) -> Exchange | None:
        """Send the current input to the deployment and show the answer (as Send does)."""
        try:
            body = self.request_body()
        except FormValueError as error:
            self.result.value = _message(str(error), error=True)
            self.details.value = ""
            return None
        deployment = self.deployment
        if deployment.status != "running":
            self.result.value = _message(
                f"Deployment '{deployment.name}' is {deployment.status}: restart it from the "
                "dashboard or with %serve, then Send again.",
                error=True,
            )
            return None
        secret = deployment.secret if deployment.require_secret else None
        exchange = send_invocation(deployment.url, body, secret=secret)
        self.result.value = self._summary(exchange, body)
        self.details.value = self._details(exchange, body)
        return exchange

    def _summary(self, exchange: Exchange, body: str) -> str:
        if exchange.status is None:
            return _message(
                f"Deployment '{self.deployment.name}' did not answer ({exchange.problem}). "
                "Is it still running? Check %deployments.",
                error=True,
            )
        answer = exchange.response_json()
        if not exchange.ok:
            if isinstance(answer, dict):
                code = answer.get("error_code", "error")
                message = answer.get("message", exchange.response_text)
                text = f"HTTP {exchange.status} {code}: {message}"
            else:
                text = f"HTTP {exchange.status}: {exchange.response_text}"
            return _message(text, error=True)
        predictions = answer.get("predictions", answer) if isinstance(answer, dict) else answer
        shown = (
            predictions[0]
            if isinstance(predictions, list) and len(predictions) == 1
            else predictions
        )
        text = shown if isinstance(shown, str) else json.dumps(shown)
        parts = [
            f"<div style='font-size:1.3em'><b>{html.escape(text)}</b></div>",
            self._probabilities(body),
            f"<div style='opacity:0.7'>{exchange.latency_ms:.1f} ms</div>",
        ]
        return "".join(parts)

    def _probabilities(self, body: str) -> str:
        """Class probabilities from the model itself, when it has ``predict_proba``."""
        import pandas as pd

        split = json.loads(body).get("dataframe_split")
        if not isinstance(split, dict):
            return ""
        try:
            frame = pd.DataFrame(split["data"], columns=split["columns"])
            probabilities = self.deployment.model.predict_proba(frame)
        except Exception:  # probabilities are extra information: never hide the prediction
            return ""
        if probabilities is None:
            return ""
        classes = getattr(self.deployment.model.raw_model, "classes_", None)
        row = list(probabilities[0])
        names = (
            [str(c) for c in classes] if classes is not None else [str(i) for i in range(len(row))]
        )
        ranked = sorted(zip(names, row, strict=True), key=lambda pair: -pair[1])
        return "<div>" + ", ".join(f"{html.escape(n)} {p:.1%}" for n, p in ranked) + "</div>"

    def _details(self, exchange: Exchange, body: str) -> str:
        secret = "$JUPYTER_SERVE_SECRET" if self.deployment.require_secret else None
        curl = curl_command(self.deployment.url, body, secret_placeholder=secret)
        answer = exchange.response_json()
        response = json.dumps(answer, indent=2) if answer is not None else exchange.response_text
        return (
            "<details><summary>Request, response and curl</summary>"
            f"<b>Request</b>{_pre(json.dumps(json.loads(body), indent=2))}"
            f"<b>Response</b> (HTTP {exchange.status}){_pre(response)}"
            f"<b>curl</b>{_pre(curl)}</details>"
        )

    def __repr__(self) -> str:
        return f"<TryItPanel for {self.deployment.name!r} at {self.deployment.url}>"
