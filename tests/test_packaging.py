"""The installable package, as a Django developer would use it (docs/integrating.md).

Builds the wheel from a copy of the checkout, makes a fresh ``django-admin
startproject shop`` in a temp dir with an ``Order`` model, installs the wheel
into a new virtualenv (no network: the dependencies are this interpreter's
site-packages, seen through a .pth file, and the wheel alone is installed),
migrates, serves with ``manage.py runrealtime``, and sees an order's save reach
a real socket, then a resume with ``since`` after a disconnect.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import textwrap
import time
from pathlib import Path

import pytest
import websockets

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

APPS_PY = """
from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from realtime.model_publishing import publish_model
        from realtime.registry import INT_IDS, register_channel

        from .models import Order

        register_channel("orders")
        register_channel("order", object_id=True, ids=INT_IDS,
                         exists=lambda pk: Order.objects.filter(pk=int(pk)).exists())
        publish_model(Order, channel=["orders", "order:{pk}"], fields=["status", "total"])
"""

MODELS_PY = """
from django.db import models


class Order(models.Model):
    status = models.CharField(max_length=20, default="new")
    total = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    note = models.CharField(max_length=100, blank=True)
"""

SETTINGS_TAIL = """
INSTALLED_APPS += ["channels", "rest_framework", "realtime", "orders"]
ASGI_APPLICATION = "shop.asgi.application"
"""

ASGI_PY = """
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
django_asgi_app = get_asgi_application()

from realtime.routing import protocol_router  # noqa: E402

application = protocol_router(django_asgi_app)
"""

URLS_TAIL = """
from django.urls import include
from rest_framework_simplejwt.views import TokenObtainPairView

urlpatterns += [
    path("api/auth/token/", TokenObtainPairView.as_view()),
    path("api/realtime/", include("realtime.urls")),
]
"""

MAKE_TOKEN = (
    "from django.contrib.auth.models import User; from rest_framework_simplejwt.tokens import AccessToken; "
    "print(AccessToken.for_user(User.objects.create_user('shopper', password='pw-12345678')))"
)


def run(args: list[str], cwd: Path, env: dict, timeout: float = 120) -> str:
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{args} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the checkout (the build leaves nothing in the repository)."""
    src = tmp_path_factory.mktemp("src")
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copytree(ROOT / "docs", src / "docs", ignore=shutil.ignore_patterns("*.png"))
    shutil.copytree(ROOT / "realtime", src / "realtime", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "PIP_NO_INDEX": "1"}
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), "."],
        src,
        env,
    )
    (built,) = dist.glob("dexter_realtime-*.whl")
    return built


def test_the_wheel_holds_realtime_only_with_its_files(wheel):
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.startswith("dexter_realtime-")}
    assert tops == {"realtime"}
    assert "realtime/migrations/0001_initial.py" in names
    assert "realtime/static/realtime/dexter-realtime.js" in names
    assert "realtime/management/commands/runrealtime.py" in names
    metadata = next(n for n in names if n.endswith("/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Requires-Dist: Django" in text and "Requires-Dist: channels" in text
    assert "Provides-Extra: server" in text and "Provides-Extra: cli" in text and "Provides-Extra: prometheus" in text


@pytest.fixture(scope="module")
def shop(wheel, tmp_path_factory) -> tuple[Path, dict]:
    """A fresh startproject with an Order model, in a virtualenv that has the wheel installed."""
    base = tmp_path_factory.mktemp("shop")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = Path(
        run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], base, {}).strip()
    )
    # The dependencies: this interpreter's site-packages, after the venv's own (so the wheel's realtime wins).
    (purelib / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEBSOCKET_", "REALTIME_", "DJANGO_", "PYTHON"))}
    env.update(PIP_NO_INDEX="1", PYTHONUNBUFFERED="1")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)], base, env)

    project = base / "project"
    project.mkdir()
    run([str(python), "-m", "django", "startproject", "shop", str(project)], base, env)
    orders = project / "orders"
    (orders / "migrations").mkdir(parents=True)
    (orders / "__init__.py").write_text("")
    (orders / "migrations" / "__init__.py").write_text("")
    (orders / "apps.py").write_text(textwrap.dedent(APPS_PY))
    (orders / "models.py").write_text(textwrap.dedent(MODELS_PY))
    settings = project / "shop" / "settings.py"
    settings.write_text(settings.read_text() + SETTINGS_TAIL)
    (project / "shop" / "asgi.py").write_text(ASGI_PY)
    urls = project / "shop" / "urls.py"
    urls.write_text(urls.read_text() + URLS_TAIL)

    # The project imports realtime from the wheel, never from this checkout.
    where = run([str(python), "-c", "import realtime; print(realtime.__file__)"], project, env)
    assert where.strip().startswith(str(venv)), where
    run([str(python), "manage.py", "makemigrations", "orders", "-v0"], project, env)
    run([str(python), "manage.py", "migrate", "-v0"], project, env)
    env["SHOP_TOKEN"] = run([str(python), "manage.py", "shell", "--no-imports", "-c", MAKE_TOKEN], project, env).strip()
    return project, env


@pytest.fixture
def served(shop):
    project, env = shop
    port = free_port()
    venv_python = project.parent / "venv" / "bin" / "python"
    log = (project.parent / f"server-{port}.log").open("w")  # a file: a full pipe would stall the server
    proc = subprocess.Popen(
        [str(venv_python), "manage.py", "runrealtime", "-b", "127.0.0.1", "-p", str(port)],
        cwd=project,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, Path(log.name).read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("runrealtime did not listen within 60 s")
    try:
        yield project, env, port, venv_python
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def next_of_type(ws, type_: str, timeout: float = 10) -> dict:
    async def read() -> dict:
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == type_:
                return message

    return await asyncio.wait_for(read(), timeout)


def save_order(project: Path, env: dict, python: Path, code: str) -> None:
    setup = "from orders.models import Order; "
    run([str(python), "manage.py", "shell", "--no-imports", "-c", setup + code], project, env)


async def test_a_save_in_a_startproject_reaches_a_real_socket_and_resumes_with_since(served):
    project, env, port, python = served
    url = f"ws://127.0.0.1:{port}/ws/shop-tab/?token={env['SHOP_TOKEN']}"
    async with websockets.connect(url) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "connection" and hello["authenticated"] is True
        await ws.send(json.dumps({"type": "subscribe", "channel": "orders"}))
        assert (await next_of_type(ws, "subscribed"))["seq"] == 0
        await asyncio.to_thread(save_order, project, env, python, "Order.objects.create(total='9.50')")
        created = await next_of_type(ws, "order_update")
        assert created["channel"] == "orders" and created["seq"] == 1 and created["update_type"] == "created"
        assert created["data"] == {"status": "new", "total": "9.50", "changes": {}}

    # Offline: the order is paid, and a save that changes nothing publishes nothing.
    await asyncio.to_thread(
        save_order, project, env, python, "o = Order.objects.get(); o.status = 'paid'; o.save(); o.save()"
    )
    async with websockets.connect(url) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "subscribe", "channel": "orders", "since": 1}))
        subscribed = await next_of_type(ws, "subscribed")
        assert subscribed["seq"] == 2 and subscribed["recovered"] is True
        missed = await next_of_type(ws, "order_update")
        assert missed["seq"] == 2 and missed["update_type"] == "updated"
        assert missed["data"]["changes"] == {"status": ["new", "paid"]}
        await ws.send(json.dumps({"type": "subscribe", "channel": "order:0001"}))
        assert (await next_of_type(ws, "error"))["code"] == "unknown_channel"  # ids are canonical


def test_runrealtime_serves_the_javascript_client_without_whitenoise(served):
    import urllib.request

    project, env, port, python = served
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/realtime/dexter-realtime.js", timeout=10) as r:
        assert r.status == 200 and b"WebSocketClient" in r.read()
