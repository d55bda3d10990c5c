"""What the kernel holds of a model served from its own environment: its description only.

Such a model may not even load here (a package or version only its environment has), and a
prediction made here would not be the deployment's. So the kernel keeps the signature and the
input examples (what the summary, the sample request and the try-it panel show) and a stand-in
that refuses to predict, naming where the model does run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

from jupyter_serve.errors import DeploymentError


class ModelInItsEnvironment:
    """Stands for a model that runs only in its environment's worker processes."""

    def __init__(self, directory: Path, env_manager: str) -> None:
        self.directory = directory
        self.env_manager = env_manager

    def __repr__(self) -> str:
        return f"<model in its {self.env_manager} environment: {self.directory}>"

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise DeploymentError(
            f"the model {self.directory} runs only in the worker processes of its "
            f"{self.env_manager} environment, not in this kernel; send requests to the "
            "deployment's URL (Deployment.url + '/invocations')."
        )

    predict = _refuse
    predict_proba = _refuse


def describe_model(model_dir: str | Path, env_manager: str) -> Any:
    """A ``LoadedModel`` carrying ``model_dir``'s signature and examples, without loading the
    model itself: its predict functions raise `DeploymentError`. Raises `InvalidModelError`
    for a directory without a readable MLmodel."""
    from jupyter_serve.models import LoadedModel, ModelSignature
    from jupyter_serve.models._mlmodel import read_example, read_mlmodel

    directory = Path(model_dir).absolute()
    document = read_mlmodel(directory)
    signature = (
        ModelSignature.from_mlmodel_dict(document["signature"])
        if isinstance(document.get("signature"), dict)
        else None
    )
    example, serving = read_example(directory, document.get("saved_input_example_info"), signature)
    return LoadedModel(
        ModelInItsEnvironment(directory, env_manager),
        signature=signature,
        path=directory,
        model_uuid=document.get("model_uuid"),
        flavors=document.get("flavors") or {},
        input_example=example,
        serving_input_example=serving,
    )
