"""``public_proxy``: search on a declared PUBLIC workload (charged nothing), then ONE private run.

- **shape** — one released run; the charge is that run alone (stage 1
  reads only the public workload's rows).
- **plan** — stage-1 trials train with the final run's calibrated σ and
  expected batch size, so the noise of every update (σC/B) matches the
  private run's; only the data differ. The public workload must be declared
  public, and differ from the protected one (:func:`tunedp.workloads.public.check_public_proxy`).
- **disclosure** — only the final model and its hyperparameters leave;
  stage 1's K, trials and scores stay inside, as under ``release: best``.
- **run** — :func:`tunedp.run.staged.run_stages`: stage 1 on the public
  workload, the selected learning rate transferred, then the private final run.
"""

from __future__ import annotations

from tunedp.config import ConfigError, PublicProxySearch, SearchConfig
from tunedp.modes.base import StagedMode, register
from tunedp.planning.single_stage import TrialGeometry
from tunedp.planning.staged import stage1_search_data
from tunedp.workloads import DatasetSizes, resolve_workload
from tunedp.workloads.public import check_public_proxy

__all__ = ["PublicProxyMode"]


class PublicProxyMode(StagedMode[PublicProxySearch]):
    """Public-proxy search; see the module docstring."""

    name = "public_proxy"
    settings_type = PublicProxySearch

    def stage1_config(self, config: SearchConfig, sizes: DatasetSizes, geometry: TrialGeometry) -> SearchConfig:
        search = self.settings(config)
        data = stage1_search_data(config, search, geometry)
        public = resolve_workload(search.public_workload).sizes
        check_public_proxy(
            public_workload=search.public_workload,
            public_dataset=public.dataset,
            protected_workload=config.workload,
            protected_dataset=config.dataset_name,
        )
        batch = geometry.sampling_rate * sizes.training_rows(on_validation=config.training.train_on_validation)
        if batch > public.train:
            raise ConfigError(
                f"search.public_workload: the final run's expected batch size {batch:g} exceeds the "
                f"{public.train} training examples of {search.public_workload!r}; lower training.expected_batch_size"
            )
        if config.space.model is not None:
            # The variant stage 1 selects is the one the private run trains: the public workload
            # must offer each searched variant, under the same name.
            if search.public_model is not None:
                raise ConfigError("search.public_model: space.model searches the variants; drop public_model")
            offered = resolve_workload(search.public_workload).variants
            missing = [v for v in config.space.model.values if v not in offered]
            if missing:
                raise ConfigError(
                    f"space.model.values: public workload {search.public_workload!r} has no variant {missing[0]!r} "
                    f"(it offers {', '.join(offered)}); search only variants both workloads declare"
                )
        # Same expected batch and noise segments as the final run: the same noise per update.
        data["training"].update(expected_batch_size=batch, sampling_rate=None, segment_steps=geometry.segment_steps)
        data.update(
            workload=search.public_workload, dataset=None, model=search.public_model, validation={"policy": "public"}
        )
        return SearchConfig.model_validate(data, strict=False)

    def stage1_share(self, settings: PublicProxySearch) -> float | None:
        return None  # public data: stage 1 is charged nothing


register(PublicProxyMode())
