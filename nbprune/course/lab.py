"""JupyterLab for the workbook: open it for any user, and keep the tracked notebooks free of outputs.

Installed as a Jupyter server extension of nbprune's environment (etc/jupyter/jupyter_server_config.d/nbprune.json):
whenever Jupyter saves one of the workbook notebooks of an nbprune checkout, it saves them without outputs,
execution counts or widget state, so working in Lab never dirties the repository. Other notebooks are untouched.
Imports nothing heavy: the server loads it at start.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

NOTEBOOKS = ("00_intervals", "01_data", "02_model", "03_retention", "04_iterative_pruning", "05_test", "06_deploy",
             "07_compare", "08_conv")


KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def strip_notebook(notebook: dict) -> dict:
    """Return the notebook as the repository keeps it: no outputs, execution counts, widget state, timings, cell
    ids or kernel details that running or saving it in Lab adds; only what a student wrote stays. A notebook
    whose cells are not a list of cells (see `malformed`) is returned unchanged."""
    if malformed(notebook):
        return notebook
    notebook["metadata"] = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    notebook["nbformat"], notebook["nbformat_minor"] = 4, 4
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        metadata = cell.get("metadata")
        tags = metadata.get("tags") if isinstance(metadata, dict) else None
        cell["metadata"] = {"tags": tags} if isinstance(tags, list) and tags else {}
        cell.pop("id", None)
        if not cell.get("attachments"):
            cell.pop("attachments", None)
    return notebook


def malformed(notebook: dict) -> str:
    """Return what makes a notebook's cells unreadable ('' when they are a list of cells)."""
    cells = notebook.get("cells", [])
    if not isinstance(cells, list):
        return f"its cells are {type(cells).__name__ if cells is not None else 'null'}, expected a list"
    strays = [number for number, cell in enumerate(cells, start=1) if not isinstance(cell, dict)]
    return f"cell {strays[0]} is a {type(cells[strays[0] - 1]).__name__}, expected an object" if strays else ""


def is_workbook_notebook(path: Path) -> bool:
    """Return whether `path` is one of the workbook notebooks of an nbprune checkout."""
    path = path.resolve()
    return (path.suffix == ".ipynb" and path.stem in NOTEBOOKS and path.parent.name == "notebooks"
            and (path.parent.parent / "nbprune" / "workbook.py").is_file())


def pre_save_hook(model: dict, path: str, contents_manager=None, **kwargs) -> None:
    """Jupyter's pre-save hook: a workbook notebook is saved without its outputs; any other file as it is."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    root = Path(getattr(contents_manager, "root_dir", "") or ".")
    if not is_workbook_notebook(root / path.lstrip("/")):
        return
    problem = malformed(model["content"])
    if problem:  # Jupyter could not save it either: say why, instead of its "unexpected error"
        from tornado.web import HTTPError
        raise HTTPError(400, "%s", f"{path} was not saved: {problem}. Nothing was written; reload the notebook "
                                   f"from disk (File > Reload Notebook from Disk).")
    strip_notebook(model["content"])


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "nbprune.course.lab"}]


def _load_jupyter_server_extension(serverapp) -> None:
    """Install the pre-save hook, keeping any hook the user configured (it runs first)."""
    manager = serverapp.contents_manager
    earlier = manager.pre_save_hook

    def hook(model, path, contents_manager, **kwargs):
        if earlier is not None:
            earlier(model=model, path=path, contents_manager=contents_manager, **kwargs)
        pre_save_hook(model, path, contents_manager, **kwargs)
    manager.pre_save_hook = hook
    serverapp.log.info("nbprune: workbook notebooks are saved without outputs")


def lab_command(notebooks: Path) -> list[str]:
    """Return the command that opens JupyterLab on the notebooks, for root and other users alike."""
    return [sys.executable, "-m", "jupyter", "lab", "--ServerApp.allow_root=True", f"--ServerApp.root_dir={notebooks}",
            "--ServerApp.jpserver_extensions={'nbprune.course.lab': True}"]


def main() -> None:
    """`python -m nbprune.course.lab`: JupyterLab on the checkout's notebooks/."""
    notebooks = Path(__file__).resolve().parents[2] / "notebooks"
    os.execv(sys.executable, lab_command(notebooks))


if __name__ == "__main__":
    main()
