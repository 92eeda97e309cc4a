"""The churnrisk web service: at-risk lists, account detail, metrics, CRM export, keys.

Build it with :func:`~churnrisk.api.app.create_app` (or ``uvicorn --factory
churnrisk.api.app:app_from_env``); ``churnrisk serve`` does the latter.
"""

from churnrisk.api.app import app_from_env, create_app

__all__ = ["app_from_env", "create_app"]
