"""Notebook widgets: the live deployments dashboard and the try-it panel."""

from jupyter_serve.widgets._dashboard import Dashboard, DeploymentCard, dashboard, swap_choices
from jupyter_serve.widgets._tryit import TryItPanel

__all__ = ["Dashboard", "DeploymentCard", "TryItPanel", "dashboard", "swap_choices"]
