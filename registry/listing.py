"""Registry reads across many registered models at once, for views that summarise them all."""

from __future__ import annotations

from registry.client import client
from registry.retry import retry_transient


@retry_transient()
def get_all_model_aliases() -> dict[str, dict[str, int]]:
    """Every registered model's aliases, {model: {alias: version}}, in one paged search: what an
    overview of many models reads instead of one `get_model_aliases` call per model. The aliases
    come from the registered models' own alias table, as in `get_model_aliases`."""
    found: dict[str, dict[str, int]] = {}
    token = None
    while True:
        page = client().search_registered_models(max_results=1000, page_token=token)
        for model in page:
            found[model.name] = {alias: int(version) for alias, version in model.aliases.items()}
        token = page.token
        if not token:
            return found
