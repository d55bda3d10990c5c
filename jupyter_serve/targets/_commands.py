"""``jupyter-serve deploy | undeploy | deployments --target ray+http://HOST:8265``.

``deploy`` resolves the model URI here (the embedded registry on this machine, or an MLflow
registry), then ships the model directory to the cluster; it prints progress on stderr and the
endpoint's base URL alone on the last line of stdout, so scripts can take ``| tail -1``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from jupyter_serve import options as serving_options
from jupyter_serve.errors import DeploymentError
from jupyter_serve.targets import TARGET_VARIABLE, default_target

_DEFAULT_WAIT = 900.0
# The serving options each replica's scoring server takes from the command line.
_SERVING_OPTIONS_OF_REPLICAS = ("timeout", "max_batch_size", "max_batch_wait")


def add_target_commands(commands: Any) -> None:
    """Add ``deploy``, ``undeploy`` and ``deployments`` to the CLI's top-level commands."""
    deploy = commands.add_parser(
        "deploy",
        help="deploy a model to a Ray Serve cluster (or export its config)",
        description="Deploy a model to a Ray Serve cluster, served by jupyter-serve in every "
        "replica. Deploying again under the same name is a rolling update.",
    )
    deploy.add_argument("model_uri", metavar="MODEL_URI", help="models:/name/version, a path...")
    _add_target_option(deploy)
    deploy.add_argument("--name", help="the application's name and route prefix (/NAME)")
    scaling = deploy.add_mutually_exclusive_group()
    scaling.add_argument("--replicas", type=int, default=1, metavar="N", help="default: 1")
    scaling.add_argument(
        "--autoscale", metavar="MIN:MAX", help="let Ray scale between MIN and MAX replicas"
    )
    deploy.add_argument(
        "--replica-cpus",
        type=float,
        default=1.0,
        metavar="CPUS",
        help="CPUs Ray reserves for each replica (default: 1)",
    )
    for name in _SERVING_OPTIONS_OF_REPLICAS:
        option = serving_options.BY_NAME[name]
        # The magic's defaults: MLflow's environment variables are the shell's serve command's.
        deploy.add_argument(*option.flags, **serving_options.argument_settings(option, "magic"))
    deploy.add_argument(
        "--wait",
        type=float,
        default=_DEFAULT_WAIT,
        metavar="SECONDS",
        help="how long to wait for the deployment to answer (default: 900; a first deployment "
        "installs the model's requirements on the cluster)",
    )
    deploy.add_argument("--registry-uri", metavar="URI", help="an MLflow registry resolving URIs")
    deploy.add_argument(
        "--export",
        metavar="FILE",
        type=Path,
        help="write the Serve config (serve deploy-able) to FILE instead of deploying; a "
        "*.rayservice.yaml FILE gets a KubeRay RayService manifest",
    )
    deploy.set_defaults(handler=run_deploy)

    undeploy = commands.add_parser(
        "undeploy",
        help="remove a deployment from a Ray Serve cluster",
        description="Remove one of our applications; every other application keeps running.",
    )
    undeploy.add_argument("name", metavar="NAME")
    _add_target_option(undeploy)
    undeploy.set_defaults(handler=run_undeploy)

    listing = commands.add_parser(
        "deployments",
        help="list our deployments on a Ray Serve cluster",
        description="List the jupyter-serve applications of a Ray Serve cluster.",
    )
    _add_target_option(listing)
    listing.set_defaults(handler=run_list)


def _add_target_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        default=default_target(),
        metavar="ray+http://HOST:8265",
        help=f"the Ray cluster's dashboard address (default: ${TARGET_VARIABLE})",
    )


def _target(args: argparse.Namespace) -> str:
    if not args.target:
        raise DeploymentError(
            f"no target: pass --target ray+http://HOST:8265 (a Ray cluster's dashboard) or "
            f"set {TARGET_VARIABLE}."
        )
    target: str = args.target
    return target


def parse_autoscale(text: str) -> tuple[int, int]:
    minimum, sep, maximum = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return int(minimum), int(maximum)
    except ValueError:
        raise DeploymentError(
            f"--autoscale {text!r} is not MIN:MAX; expected two whole numbers, e.g. 1:4."
        ) from None


def run_deploy(args: argparse.Namespace) -> int:
    from jupyter_serve._deployments._sources import name_from
    from jupyter_serve.registry import resolve_model_uri
    from jupyter_serve.targets import ray

    target = _target(args)
    ray.parse_target(target)  # a malformed target fails before the model is resolved
    scaling = ray.Scaling(
        replicas=args.replicas,
        autoscale=None if args.autoscale is None else parse_autoscale(args.autoscale),
        replica_cpus=args.replica_cpus,
    )
    ray.check_scaling(scaling)
    served = {
        name: value
        for name, value in serving_options.from_arguments(args, "magic").items()
        if name in _SERVING_OPTIONS_OF_REPLICAS
    }
    serving_options.check(served, "magic")
    resolved = resolve_model_uri(args.model_uri, registry_uri=args.registry_uri)
    model_dir = Path(resolved.path)
    name = args.name or name_from(resolved.name or model_dir.name)
    serving = ray.ServingArgs(
        name=name,
        model_uri=resolved.uri or args.model_uri,
        version=None if resolved.version is None else str(resolved.version),
        **served,
    )
    if args.export is not None:
        ray.export(args.export, model_dir, serving, scaling, target=target)
        print(
            f"jupyter-serve: wrote {args.export} (packages uploaded to {target})", file=sys.stderr
        )
        print(args.export)
        return 0
    print(f"jupyter-serve: deploying {serving.model_uri} as {name!r} to {target}", file=sys.stderr)
    application = ray.deploy(
        model_dir,
        serving,
        scaling,
        target=target,
        wait=args.wait,
        progress=lambda line: print(f"jupyter-serve: {line}", file=sys.stderr, flush=True),
    )
    print(
        f"jupyter-serve: {name!r} is {application.status} with {application.replicas} replica(s)",
        file=sys.stderr,
    )
    print(application.url, flush=True)
    return 0


def run_undeploy(args: argparse.Namespace) -> int:
    from jupyter_serve.targets import ray

    ray.undeploy(args.name, target=_target(args))
    print(f"jupyter-serve: removed {args.name!r} from {args.target}", file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from jupyter_serve.targets import ray

    listing = ray.RemoteListing(_target(args), ray.list_applications(_target(args)))
    rows = listing.rows()
    rows[0] = tuple(cell.upper() for cell in rows[0])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0
