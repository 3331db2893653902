"""`pixelgate worker`: a cluster worker that runs jobs for some models from their queues."""

from __future__ import annotations

import click

from pixelgate.extras import missing_extra


@click.command()
@click.option(
    "--models",
    required=True,
    help="Comma-separated model ids or aliases this worker serves (one queue each).",
)
@click.option(
    "--concurrency",
    type=int,
    default=1,
    show_default=True,
    help="Jobs at once; 1 per GPU is the rule (a second job waits for the first's model).",
)
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics here.")
def worker(models: str, concurrency: int, metrics_port: int | None) -> None:
    """Take jobs for MODELS from the broker (PIXELGATE_BROKER_URL) and run them, keeping the
    models loaded. Needs the same database and storage settings as `serve`."""
    problem = missing_extra("pixelgate worker", "server", "cluster")
    if problem is not None:
        raise click.ClickException(problem)
    from prometheus_client import start_http_server

    from pixelgate.engine.celery_queue import queue_name, serve_jobs_with
    from pixelgate.logs import configure_logging
    from pixelgate.runtime import Runtime
    from pixelgate.settings import load_settings

    settings = load_settings()
    if settings.broker_url is None:
        raise click.UsageError("pixelgate worker needs PIXELGATE_BROKER_URL (e.g. redis://...)")
    configure_logging(settings.log_level)
    names = [name.strip() for name in models.split(",") if name.strip()]
    runtime = Runtime(settings, role="worker", models=names)
    runtime.start()
    serve_jobs_with(runtime.executor.run)
    if metrics_port is not None:
        start_http_server(metrics_port, registry=runtime.metrics.registry)
    queues = ",".join(queue_name(model) for model in runtime.models)
    click.echo(f"pixelgate worker {runtime.worker_id}: serving {queues}", err=True)
    assert runtime.celery is not None
    try:
        runtime.celery.worker_main(
            [
                "worker",
                "--queues", queues,
                "--pool", "solo" if concurrency == 1 else "threads",
                "--concurrency", str(concurrency),
                "--hostname", f"pixelgate@{runtime.worker_id}",
                "--loglevel", settings.log_level,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
        )  # fmt: skip
    finally:
        runtime.stop()
