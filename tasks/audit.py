"""Task of the audit stage: rate judged pairs and measure every scorer against the judge."""

from __future__ import annotations

import dataclasses

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.audit.run import audit_pairs, write_audit, write_switched_off
from selectit.config import Params
from selectit.core.layout import Layout
from selectit.provenance import code_version
from selectit.rating_params import rating_settings
from selectit.summaries import AuditSummary


@task(name="audit-pairs", cache_policy=NO_CACHE, version=code_version(__name__))
def audit_judged_pairs(params: Params, layout: Layout, progress: bool = True) -> AuditSummary:
    """The report, DVC metrics and rejects in reports/audit, or a note that the audit is switched off."""
    cfg, stats = params.audit, params.evaluate
    # DVC keeps the shard cache between runs (a persisted output), so it exists even when unused.
    layout.audit_cache.mkdir(parents=True, exist_ok=True)
    settings = {
        "audit": dataclasses.asdict(cfg),
        "score": dataclasses.asdict(params.score),
        "aggregate": dataclasses.asdict(params.aggregate),
        "bootstrap": {"resamples": stats.bootstrap_resamples, "confidence": stats.confidence, "seed": stats.seed},
    }
    if not cfg.enabled:
        write_switched_off(layout.audit)
        summary = AuditSummary(
            enabled=False,
            pairs_file=None,
            pairs_sha256=None,
            pairs=0,
            rejects=0,
            unrated=0,
            seconds=None,
            metrics={},
            settings=settings,
        )
    else:
        report = audit_pairs(
            cfg.pairs,
            cfg.limit,
            params.score.raters,
            rating_settings(params.score),
            params.aggregate,
            layout.audit_cache,
            resamples=stats.bootstrap_resamples,
            level=stats.confidence,
            seed=stats.seed,
            progress=progress,
            ifd_raters=cfg.ifd_raters,
            ifd_max_tokens=cfg.ifd_max_tokens,
            learned_folds=params.select.learned_folds,
        )
        report.settings = settings
        write_audit(report, layout.audit)
        summary = AuditSummary(
            enabled=True,
            pairs_file=report.pairs_file,
            pairs_sha256=report.pairs_sha256,
            pairs=report.pairs,
            rejects=len(report.rejects),
            unrated=len(report.unrated),
            seconds=report.seconds,
            metrics=report.mlflow_metrics(),
            settings=settings,
        )
    summary.save(layout.audit)
    return summary
