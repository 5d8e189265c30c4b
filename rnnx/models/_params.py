"""The scikit-learn estimator contract without scikit-learn: :class:`Params` gives
``get_params``/``set_params`` and the ``repr`` from the constructor signature, as
scikit-learn's ``BaseEstimator`` does."""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["Params"]


class Params:
    """``get_params``/``set_params`` from the constructor signature, like scikit-learn's
    ``BaseEstimator`` (no scikit-learn import)."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values()
                      if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters as a dict (``deep`` is accepted for scikit-learn; nothing
        here nests estimators)."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> Any:
        """Set constructor parameters; unknown names raise ``ValueError``. Returns ``self``."""
        valid = self._param_names()
        for k, v in params.items():
            if k not in valid:
                raise ValueError(f"Invalid parameter {k!r} for estimator {type(self).__name__}; "
                                 f"valid parameters are {valid}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        changed = []
        for k in self._param_names():
            v = getattr(self, k)
            default = sig.parameters[k].default
            if not (v is default or (type(v) is type(default) and v == default)):
                changed.append(f"{k}={v!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "network_")
