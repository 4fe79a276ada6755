"""The MLflow tracking server mock (see server.MlflowMock)."""

from .server import MlflowMock

__all__ = ["MlflowMock"]
