"""The workbook in a real JupyterLab, driven in headless Chromium: 03's schedule sliders and 05's iteration picker.

A session prepared headless (papermill) feeds copies of the notebooks in a throwaway checkout; Lab runs them, the
test moves the sliders as a student would, and checks what reaches the disk and the page. Set NBPRUNE_SCREENSHOTS=1
to write the two screenshots into docs/images (otherwise they stay in the test's temporary folder).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import REAL_ROOT

sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package: pip install playwright")
pytest.importorskip("jupyterlab", reason="needs JupyterLab: pip install 'nbprune[notebooks]'")
pytest.importorskip("papermill", reason="needs papermill: pip install 'nbprune[notebooks]'")

from nbprune.course.lab import NOTEBOOKS  # noqa: E402
from nbprune.retention import read_retain, schedule  # noqa: E402

CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else shutil.which("chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PROJECT = Path(__file__).resolve().parent.parent
TINY = {"subset": 2000, "end_itr": 2, "epochs": 1, "patience": 1, "demo_epochs": 1, "chosen_itr": 1}
# The README's screenshots come from a longer run on all images: iterations 0-12, three epochs each (a few minutes).
SHOWCASE = {"subset": None, "end_itr": 12, "epochs": 3, "patience": 1, "demo_epochs": 1, "chosen_itr": None}
SCREENSHOTS = os.environ.get("NBPRUNE_SCREENSHOTS") == "1"
SESSION = SHOWCASE if SCREENSHOTS else TINY
VIEWPORT = {"width": 1400, "height": 1000}
SECONDS = 1000  # playwright counts milliseconds
HANG = 900 * SECONDS  # waits end a hang only: a loaded machine may be slow, never wrong
KERNEL_READY = """() => {
    const name = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-KernelName');
    const state = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
    return !!name && !name.textContent.includes('No Kernel') && !!state && state.dataset.status === 'idle';
}"""
ALL_CELLS_RAN = """() => {
    const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
    const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent.trim());
    const failed = [...panel.querySelectorAll('.jp-OutputArea-output')].some(
        output => output.textContent.includes('Traceback (most recent call last)'));
    return failed || (prompts.length > 0 && prompts.every(prompt => /^\\[\\d+\\]:$/.test(prompt)));
}"""
IMAGES_LOADED = """cell => [...cell.querySelectorAll('.widget-image')].every(
    image => image.complete && image.naturalWidth > 0)"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.mnist,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium at /usr/bin/chromium: apt-get install chromium"),
]


@dataclass
class Workbook:
    """A throwaway checkout's notebooks and the session folder its 03 and 05 point at, both under `root`."""

    root: Path
    notebooks: Path
    session: Path
    before_lab: dict[str, bytes]  # each copied notebook as it was when Lab opened it


@dataclass
class Lab:
    """A running JupyterLab: where it listens, its token, and its log."""

    url: str
    token: str
    log: Path

    def notebook_url(self, name: str) -> str:
        """Return the address that opens a notebook in a fresh workspace."""
        return f"{self.url}/lab/tree/{name}.ipynb?reset&token={self.token}"

    def log_tail(self, lines: int = 30) -> str:
        """Return the end of the server's log, for failure messages."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


# --- the checkout, the session and the server ------------------------------------------------------------------
def set_parameters(notebook: Path, values: dict) -> None:
    """Rewrite assignments in a notebook's parameters cell, keeping each line's comment."""
    import nbformat

    content = nbformat.read(notebook, as_version=4)
    cell = next(cell for cell in content.cells if "parameters" in cell.metadata.get("tags", []))
    lines, missing = [], set(values)
    for line in cell.source.splitlines():
        name, _, rest = line.partition("=")
        if name.strip() in values:
            comment = rest.partition("#")[2]
            value = values[name.strip()]
            line = f"{name.strip()} = {json.dumps(value) if isinstance(value, str) else repr(value)}  #{comment}"
            missing.discard(name.strip())
        lines.append(line)
    assert not missing, f"{notebook.name}'s parameters cell declares no {sorted(missing)}"
    cell.source = "\n".join(lines)
    nbformat.write(content, notebook)


@pytest.fixture(scope="module")
def workbook(tmp_path_factory) -> Workbook:
    """Copy the six notebooks into a throwaway checkout, run them headless into a session, and point 03 and 05 at it."""
    from nbprune.course.workbook import run_workbook

    root = tmp_path_factory.mktemp("workbook")
    notebooks, session = root / "checkout" / "notebooks", root / "session"
    notebooks.mkdir(parents=True)
    (root / "checkout" / "nbprune").mkdir()
    (root / "checkout" / "nbprune" / "workbook.py").touch()  # marks the copy as a checkout, for nbprune.course.lab
    for name in NOTEBOOKS:
        shutil.copy(PROJECT / "notebooks" / f"{name}.ipynb", notebooks)
    run_workbook(session, parameters=SESSION, notebooks_dir=notebooks)
    set_parameters(notebooks / "03_retention.ipynb", {"session_dir": str(session)})
    set_parameters(notebooks / "05_test.ipynb", {"session_dir": str(session), "subset": SESSION["subset"]})
    return Workbook(root, notebooks, session, {path.name: path.read_bytes() for path in notebooks.iterdir()})


def free_port() -> int:
    """Return a TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def lab_environment(home: Path) -> dict[str, str]:
    """Return the server's environment: the real MNIST, no display, and Lab's settings and state kept in `home`."""
    notification = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false"}))  # no news toast over the screenshots
    return {**os.environ, "NBPRUNE_DATA_ROOT": str(REAL_ROOT), "MPLBACKEND": "Agg",
            "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime")}


def wait_for_server(url: str, server: subprocess.Popen, log: Path, timeout: float = 900) -> None:
    """Poll the server's status until it answers; fail early when it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with {server.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer {url} within {timeout:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="module")
def lab(workbook, tmp_path_factory) -> Iterator[Lab]:
    """Run JupyterLab on the checkout's notebooks for the module's tests; stop it afterwards, whatever happens."""
    home = tmp_path_factory.mktemp("lab")
    port, token, log = free_port(), secrets.token_hex(16), home / "server.log"
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", f"--ServerApp.token={token}",
               "--ServerApp.allow_root=True", f"--ServerApp.root_dir={workbook.notebooks}"]
    with log.open("w") as output:
        server = subprocess.Popen(command, env=lab_environment(home), cwd=home, stdout=output,
                                  stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_server(f"{url}/api/status?token={token}", server, log)
            yield Lab(url, token, log)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Headless Chromium (Debian's), with a fresh profile."""
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, tmp_path) -> Iterator:
    """A page of its own for one test; its last state is saved as last.png in the test's folder, for debugging."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(HANG)
    try:
        yield page
    finally:
        try:
            page.screenshot(path=str(tmp_path / "last.png"))
        finally:
            context.close()


def screenshot_path(name: str, tmp_path: Path) -> Path:
    """Return where a screenshot goes: docs/images with NBPRUNE_SCREENSHOTS=1, else the test's own folder."""
    folder = PROJECT / "docs" / "images" if SCREENSHOTS else tmp_path
    return folder / name


# --- driving Lab -----------------------------------------------------------------------------------------------
def open_notebook(page, lab: Lab, name: str) -> None:
    """Open a notebook and wait until its kernel is started and idle."""
    page.goto(lab.notebook_url(name))
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook", timeout=HANG)
    page.wait_for_function(KERNEL_READY, timeout=HANG)
    if page.locator('.lm-TabBar-tab[data-id="filebrowser"].lm-mod-current').count():
        page.click('.lm-TabBar-tab[data-id="filebrowser"]')  # fold the file browser away: more room for the plots


def run_all_cells(page, lab: Lab) -> None:
    """Run every cell from the Run menu and wait until each code cell has run; fail on the first traceback."""
    page.click('.lm-MenuBar-itemLabel:text-is("Run")')
    page.click('.lm-Menu-itemLabel:text-is("Run All Cells")')
    page.wait_for_function(ALL_CELLS_RAN, timeout=HANG)
    tracebacks = [text for text in page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output")
                  .all_inner_texts() if "Traceback (most recent call last)" in text]
    assert not tracebacks, f"a cell failed in Lab:\n{tracebacks[0][-2000:]}\n--- server log ---\n{lab.log_tail()}"
    page.wait_for_function(KERNEL_READY, timeout=HANG)


def slider(page, label: str):
    """Return the ipywidgets slider whose description is exactly `label`."""
    description = page.locator(".widget-label", has_text=re.compile(f"^{re.escape(label)}$"))
    return page.locator(".widget-slider", has=description)


def press(page, slider_widget, key: str, times: int) -> None:
    """Focus a slider's handle and press a key on it, letting the kernel answer each move."""
    handle = slider_widget.locator(".noUi-handle")
    handle.focus()
    for _ in range(times):
        handle.press(key)
        page.wait_for_function(KERNEL_READY, timeout=HANG)


def readout(slider_widget) -> str:
    """Return the value a slider shows next to it."""
    return slider_widget.locator(".widget-readout").inner_text().strip()


def select_first_cell(page) -> None:
    """Leave any widget and select the notebook's first cell, in command mode (where Lab's shortcuts work)."""
    page.keyboard.press("Escape")
    page.click(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell >> nth=0 >> .jp-InputPrompt")


def widget_cell(page, slider_widget):
    """Return the notebook cell whose output holds `slider_widget`, unselected, scrolled into view, plots drawn."""
    select_first_cell(page)
    cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell", has=slider_widget)
    cell.scroll_into_view_if_needed()
    page.wait_for_function(IMAGES_LOADED, arg=cell.element_handle(), timeout=HANG)
    return cell


def wait_until(condition: Callable[[], bool], what: str, timeout: float = HANG / SECONDS) -> None:
    """Poll `condition` until it holds; fail with `what` after `timeout` seconds (which only ends a hang)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout:.0f} s: {what}")
        time.sleep(0.25)


def save_and_check_unchanged(page, notebook: Path, original: bytes) -> None:
    """Save the notebook with Ctrl+S and check the file on disk is byte for byte what it was before Lab ran it
    (nbprune.course.lab strips outputs, widget state and what else running and saving add)."""
    import nbformat

    before = notebook.stat().st_mtime_ns
    select_first_cell(page)
    page.keyboard.press("Control+s")
    page.wait_for_selector(".lm-TabBar-tab.jp-mod-dirty", state="detached", timeout=HANG)
    wait_until(lambda: notebook.stat().st_mtime_ns != before, f"Ctrl+S did not save {notebook}")
    content = nbformat.read(notebook, as_version=4)
    dirty = [cell.source[:60] for cell in content.cells
             if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, (f"Lab saved outputs into {notebook.name} (nbprune.course.lab's pre-save hook is not active): "
                       f"{dirty}")
    assert "widgets" not in content.metadata, f"Lab saved widget state into {notebook.name}"
    assert notebook.read_bytes() == original, f"saving {notebook.name} in Lab changed the file"


def schedule_on_disk(path: Path) -> list[tuple[int, tuple[int, ...]]]:
    """Return retain.txt's iterations and neurons kept per layer."""
    return [(step.iteration, step.retained) for step in read_retain(path)]


def expected_schedule(hidden: tuple[int, ...], q: float, iterations: int) -> list[tuple[int, tuple[int, ...]]]:
    """Return the iterations and neurons kept that the sliders' values describe."""
    return [(step.iteration, step.retained) for step in schedule(hidden, q, range(iterations))]


def assert_project_untouched(workbook: Workbook) -> None:
    """Check that no notebook of the project mentions the test's folder (Lab and papermill worked on the copies)."""
    leaked = [path.name for path in (PROJECT / "notebooks").glob("*.ipynb") if str(workbook.root) in path.read_text()]
    assert not leaked, f"the test wrote into the project's notebooks {leaked}"


# --- the tests -------------------------------------------------------------------------------------------------
def test_schedule_sliders_save_the_schedule_they_show(page, lab, workbook, tmp_path):
    open_notebook(page, lab, "03_retention")
    run_all_cells(page, lab)
    q_slider = slider(page, "q (fraction kept)")
    for label in ("q (fraction kept)", "iterations", "hidden layer 1", "hidden layer 2"):
        assert slider(page, label).is_visible(), f"03's ScheduleEditor shows no slider {label!r}"
    retain = workbook.session / "retain" / "retain.txt"
    hidden = read_retain(retain)[0].retained
    iterations = int(readout(slider(page, "iterations")))
    assert float(readout(q_slider)) == 0.8
    assert schedule_on_disk(retain) == expected_schedule(hidden, 0.8, iterations)

    press(page, q_slider, "ArrowLeft", 5)
    wait_until(lambda: readout(q_slider) != "0.80", "the q slider did not move")
    q = float(readout(q_slider))
    assert q < 0.8
    wait_until(lambda: schedule_on_disk(retain) == expected_schedule(hidden, q, iterations),
               f"{retain} does not hold the schedule for q = {q}:\n{retain.read_text()}")
    status = page.locator(".widget-html-content", has_text="saved ")
    steps = f"{len(expected_schedule(hidden, q, iterations))} iterations"
    wait_until(lambda: steps in status.inner_text(), f"the status line does not say {steps!r}")

    cell = widget_cell(page, q_slider)
    cell.screenshot(path=str(screenshot_path("lab_03_retention.png", tmp_path)))
    save_and_check_unchanged(page, workbook.notebooks / "03_retention.ipynb", workbook.before_lab["03_retention.ipynb"])
    assert_project_untouched(workbook)


def test_iteration_picker_describes_the_chosen_iteration(page, lab, workbook, tmp_path):
    open_notebook(page, lab, "05_test")
    run_all_cells(page, lab)
    picker = slider(page, "iteration")
    summary = page.locator(".widget-html-content", has_text=re.compile(r"^iteration \d+:"))
    start = int(readout(picker))
    assert summary.inner_text().startswith(f"iteration {start}:")
    finished = sorted(int(path.name) for path in (workbook.session / "iterative_pruning").iterdir()
                      if path.name.isdigit())
    key = "ArrowRight" if start < finished[-1] else "ArrowLeft"

    press(page, picker, key, 1)
    wait_until(lambda: int(readout(picker)) != start, f"{key} did not move the iteration slider")
    chosen = int(readout(picker))
    assert chosen == start + (1 if key == "ArrowRight" else -1)
    wait_until(lambda: summary.inner_text().startswith(f"iteration {chosen}:"),
               f"the summary does not name iteration {chosen}: {summary.inner_text()!r}")
    choice = workbook.session / "test" / "chosen.json"
    wait_until(lambda: json.loads(choice.read_text())["iteration"] == chosen,
               f"{choice} does not record the slider's iteration {chosen}: 06 would deploy another")

    cell = widget_cell(page, picker)
    cell.screenshot(path=str(screenshot_path("lab_05_test.png", tmp_path)))
    save_and_check_unchanged(page, workbook.notebooks / "05_test.ipynb", workbook.before_lab["05_test.ipynb"])
    assert_project_untouched(workbook)
