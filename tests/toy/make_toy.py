"""Write tests/toy/reference/nearest_centroid.ipynb (run it again after changing the cells)."""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
NAME = "nearest_centroid"

CELLS = [
    ("markdown", "# Nearest centroid\n\nEach class is summarised by the mean of its training "
                 "points; a point gets the class of the nearest mean."),
    ("code", 'import numpy as np\n\ndata = np.load("data/blobs/train.npz")\n'
             'X, y = data["inputs"], data["labels"]\nclasses = [str(c) for c in data["classes"]]\n'
             "print(X.shape, classes)"),
    ("code", "def centroids(X, y, k):\n    \"\"\"Row c: the mean of the points labelled c.\"\"\"\n"
             "    # BEGIN SOLUTION: centroids\n"
             "    return np.stack([X[y == c].mean(axis=0) for c in range(k)])\n"
             "    # END SOLUTION"),
    ("code", "def predict(C, X):\n    \"\"\"For each row of X, the index of the nearest row of C.\"\"\"\n"
             "    # BEGIN SOLUTION: predict\n"
             "    distances = ((X[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)\n"
             "    return distances.argmin(axis=1)\n"
             "    # END SOLUTION"),
    ("code", 'C = centroids(X, y, len(classes))\nprint("training accuracy", (predict(C, X) == y).mean())'),
]


def reference() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"grader": {"assignment": NAME},
                   "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    for i, (kind, source) in enumerate(CELLS):
        cell = (nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell)(source)
        cell.id = f"cell-{i}"  # fixed ids: the file is the same every time it is written
        nb.cells.append(cell)
    return nb


def text() -> str:
    return nbformat.writes(reference()) + "\n"


if __name__ == "__main__":
    (HERE / "reference" / f"{NAME}.ipynb").write_text(text(), encoding="utf-8")
