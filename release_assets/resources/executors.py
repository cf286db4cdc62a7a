"""Which executor runs a release's steps, chosen from the environment when definitions load.

- ``RELEASE_ASSETS_EXECUTOR=in_process`` (the default): every step in the run's own process. The graph has 20+
  small steps, and a process per step costs more than most steps take on a small machine.
- ``RELEASE_ASSETS_EXECUTOR=k8s``: each step in its own Kubernetes pod (dagster-k8s' ``k8s_job_executor``, the
  run launcher's image, env and volumes; deploy/k8s/values.yaml). Needs the `k8s` extra, installed by the image.
- ``RELEASE_ASSETS_EXECUTOR=celery``: each step is a task on Celery workers (dagster-celery, started with
  ``dagster-celery worker start -A dagster_celery.app -y deploy/celery-worker.yaml``). The broker comes from
  ``RELEASE_ASSETS_CELERY_BROKER`` (``pyamqp://...`` for RabbitMQ, ``redis://...`` for Redis), the result backend
  from ``RELEASE_ASSETS_CELERY_BACKEND`` (default: ``rpc://`` on RabbitMQ, the broker itself on Redis).

Steps go to a queue by kind, so training can get its own (bigger) workers: steps of a ``<release>_models`` group
to ``<prefix>training``, every other step to ``<prefix>evaluation`` (``RELEASE_ASSETS_CELERY_QUEUE_PREFIX``, empty
by default: a prefix keeps several deployments or test runs on one broker apart). An explicit
``dagster-celery/queue`` op tag wins.

A lost training step is retried. Tasks are acknowledged only once they finish (``task_acks_late``), and a task
whose worker process died is handed back to the broker (``task_reject_on_worker_lost``): when a whole worker dies
(SIGKILL, a lost node), the broker gives its task to another worker. When only a pool process dies, Celery reports
``WorkerLostError``; the executor then submits a training step again, ``RELEASE_ASSETS_CELERY_TRAINING_RETRIES``
times at most (default 2). Rebuilding is safe: the build cache is content-addressed and a build appears by one
rename (``artifacts.LocalArtifactStore``), so a killed build leaves only scratch files and a rebuild gives the same
bytes.
"""

from collections.abc import Callable
from typing import Any

import dagster as dg

from release_assets.core.settings import EXECUTOR_KINDS, Settings, env_name

# The variables (Settings fields) deploy/celery-worker.yaml and deploy/k8s/values.yaml name.
EXECUTOR_ENV = env_name("executor")
BROKER_ENV = env_name("celery_broker")
BACKEND_ENV = env_name("celery_backend")
QUEUE_PREFIX_ENV = env_name("celery_queue_prefix")
TRAINING_RETRIES_ENV = env_name("celery_training_retries")
KINDS = EXECUTOR_KINDS
TRAINING, EVALUATION = "training", "evaluation"
QUEUE_TAG = "dagster-celery/queue"  # dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG, without importing celery
TRAINING_STAGE_SUFFIX = "_models"  # keys.group(release, "models")

# Settings both sides of the broker must share: the executor (here) and every worker (deploy/celery-worker.yaml,
# `config_source`; a test keeps the two equal). Late acks and rejecting on a lost worker make a killed worker's
# task go back to the queue; one task per worker at a time, so a long training step never holds a second one.
WORKER_CONFIG: dict[str, Any] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    # Redis only: a task not acknowledged within this long is handed out again. Longer than any step here.
    "broker_transport_options": {"visibility_timeout": 3600},
}


def executor_kind(settings: Settings | None = None) -> str:
    """RELEASE_ASSETS_EXECUTOR (validated by Settings); ``settings`` by default read afresh."""
    return (settings if settings is not None else Settings()).executor


def celery_settings(settings: Settings | None = None) -> dict[str, Any]:
    """Broker, backend, queue names and retry bound for the Celery executor, from ``settings`` (by default read
    afresh from the environment: when definitions load, and again when a run's executor starts)."""
    s = settings if settings is not None else Settings()
    prefix = s.celery_queue_prefix
    return {
        "broker": s.celery_broker,
        "backend": s.celery_result_backend,
        "queues": {TRAINING: prefix + TRAINING, EVALUATION: prefix + EVALUATION},
        "training_retries": s.celery_training_retries,
    }


def step_kind(group_names: list[str]) -> str:
    """``training`` for a step that materializes a ``<release>_models`` asset, else ``evaluation``."""
    return TRAINING if any(g.endswith(TRAINING_STAGE_SUFFIX) for g in group_names) else EVALUATION


class RetryingResult:
    """A Celery ``AsyncResult`` that submits its task again when the worker process running it was lost.

    dagster-celery's loop polls ``ready()``, then ``get()``; a lost worker shows as a ready result whose ``get()``
    raises ``WorkerLostError``. Here such a result is not ready yet: the task is submitted again (``retries`` times
    at most) and the new result polled instead. Other errors, and a lost worker past the bound, reach the loop.
    """

    def __init__(self, submit: Callable[[], Any], retries: int, on_retry: Callable[[int, str], None]) -> None:
        self._submit, self.retries_left, self._on_retry = submit, retries, on_retry
        self.attempts = 1
        self.result = submit()

    def _lost(self) -> str | None:
        if self.result.state != "FAILURE":
            return None
        error = self.result.result
        return str(error) if type(error).__name__ == "WorkerLostError" else None

    def ready(self) -> bool:
        if not self.result.ready():
            return False
        lost = self._lost()
        if lost is None or self.retries_left <= 0:
            return True
        self.retries_left -= 1
        self.attempts += 1
        self._on_retry(self.attempts, lost)
        self.result = self._submit()
        return False

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self.result.get(*args, **kwargs)

    def revoke(self, *args: Any, **kwargs: Any) -> Any:
        return self.result.revoke(*args, **kwargs)


def _training_nodes(job_def: Any) -> set[str]:
    """Names of the job's nodes whose assets belong to a ``<release>_models`` group."""
    from dagster._core.definitions.dependency import NodeHandle

    out = set()
    for node in job_def.graph.node_dict.values():
        assets_def = job_def.asset_layer.get_assets_def_for_node(NodeHandle(node.name, None))
        groups = list(assets_def.group_names_by_key.values()) if assets_def is not None else []
        if step_kind(groups) == TRAINING:
            out.add(node.name)
    return out


def _celery_executor() -> dg.ExecutorDefinition:
    # dagster-celery imports celery and kombu: only when this executor is asked for, never for the default.
    from dagster._core.execution.retries import RetryMode, get_retries_config
    from dagster._grpc.types import ExecuteStepArgs
    from dagster._serdes import pack_value
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.tasks import create_task

    def _submit(app, plan_context, step, queue, priority, known_state):
        """dagster_celery.executor._submit_task, with the routing key equal to the queue's name: a queue Celery
        creates on demand (any but dagster-celery's own `dagster`) is bound by its name, and dagster-celery's
        `<queue>.execute_plan` would route a task nowhere."""
        args = ExecuteStepArgs(
            job_origin=plan_context.reconstructable_job.get_python_origin(),
            run_id=plan_context.dagster_run.run_id,
            step_keys_to_execute=[step.key],
            instance_ref=plan_context.instance.get_ref(),
            retry_mode=plan_context.executor.retries.for_inner_plan(),
            known_state=known_state,
            print_serialized_events=True,
        )
        signature = create_task(app).si(
            execute_step_args_packed=pack_value(args), executable_dict=plan_context.reconstructable_job.to_dict()
        )
        return signature.apply_async(priority=priority, queue=queue, routing_key=queue)

    class ReleaseCeleryExecutor(CeleryExecutor):
        """dagster-celery's executor with queues by step kind and lost training steps submitted again."""

        def __init__(self, settings: dict[str, Any], retries: RetryMode | None) -> None:
            super().__init__(
                retries=retries, broker=settings["broker"], backend=settings["backend"], config_source=WORKER_CONFIG
            )
            self.settings = settings
            self._training: set[str] | None = None

        def queue_for(self, plan_context: Any, step: Any) -> str:
            if (step.tags or {}).get(QUEUE_TAG):
                return step.tags[QUEUE_TAG]
            if self._training is None:
                self._training = _training_nodes(plan_context.job.get_definition())
            kind = TRAINING if step.node_handle.root.name in self._training else EVALUATION
            return self.settings["queues"][kind]

        def execute(self, plan_context: Any, execution_plan: Any) -> Any:
            from dagster_celery.core_execution_loop import core_celery_execution_loop

            def submit(app, context, step, _queue, priority, known_state):
                queue = self.queue_for(context, step)
                log = context.for_step(step).log  # tagged with the step, so the line shows on the step
                log.info(f"step {step.key}: Celery queue {queue}")

                def on_retry(attempt: int, why: str) -> None:
                    log.warning(f"step {step.key}: its worker was lost ({why}); submitting attempt {attempt}")

                retries = self.settings["training_retries"] if queue == self.settings["queues"][TRAINING] else 0
                return RetryingResult(
                    lambda: _submit(app, context, step, queue, priority, known_state), retries, on_retry
                )

            return core_celery_execution_loop(plan_context, execution_plan, step_execution_fn=submit)

    @dg.executor(
        name="release_celery",
        config_schema={"retries": get_retries_config()},
        requirements=dg.multiple_process_executor_requirements(),
    )
    def release_celery_executor(init_context):
        """Celery workers for every step; broker, backend and queues from ``RELEASE_ASSETS_CELERY_*``."""
        retries = RetryMode.from_config(init_context.executor_config["retries"])
        return ReleaseCeleryExecutor(celery_settings(), retries)

    return release_celery_executor


def executor_from_env(settings: Settings | None = None) -> dg.ExecutorDefinition:
    """The executor ``RELEASE_ASSETS_EXECUTOR`` names: in-process (default), Celery or Kubernetes jobs. A malformed
    Celery setting fails here, when definitions load (Settings validates them), not at the first run."""
    kind = executor_kind(settings)
    if kind == "celery":
        return _celery_executor()
    if kind == "k8s":
        from dagster_k8s import k8s_job_executor  # only in the image (deploy/k8s/Dockerfile): the `k8s` extra

        return k8s_job_executor
    return dg.in_process_executor
