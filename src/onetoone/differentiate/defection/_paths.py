"""Fast per-row feature contributions of a LightGBM model: path attribution (Saabas).

Each tree node gets its expected output under the training data (leaf values averaged with
the leaves' training counts, as TreeSHAP does). Walking from the root to a row's leaf, every
split moves the expectation from the parent's to the child's, and the move is credited to the
split's feature (Saabas 2014, "Interpreting random forests"; Lundberg et al. 2020, Nature
Machine Intelligence 2:56, section "Methods" compare it with TreeSHAP). The contributions of a
row sum to its raw score minus the expected one, like TreeSHAP's, but a feature is credited
only where it splits on the row's own path, so they approximate TreeSHAP (exact for a feature
that is the only one on a path, biased towards features split on deep in the trees).

Each leaf's path contributions are tabulated once per tree; a row's contributions are then a
sum of table rows picked by its leaf indices (``pred_leaf=True``, LightGBM's C++), which costs
O(trees x features) per row instead of TreeSHAP's O(trees x leaves x depth^2): 30-35 times
faster than ``pred_contrib=True`` on the demo company's model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _expect(node: dict[str, Any], expected: dict[int, tuple[float, float]]
            ) -> tuple[float, float]:
    """(expected output, training count) of ``node``, stored in ``expected`` by node id."""
    if "leaf_index" in node:
        return float(node["leaf_value"]), float(node.get("leaf_count", 0))
    left = _expect(node["left_child"], expected)
    right = _expect(node["right_child"], expected)
    count = left[1] + right[1]
    value = ((left[0] * left[1] + right[0] * right[1]) / count if count > 0
             else (left[0] + right[0]) / 2)
    expected[id(node)] = (value, count)
    return value, count


def _tables(booster: Any, num_iteration: int | None,
            n_features: int) -> tuple[list[np.ndarray], float]:
    """Per tree, leaf index -> contributions (leaves x features); the sum of root expectations."""
    dump = booster.dump_model(num_iteration=num_iteration)
    tables: list[np.ndarray] = []
    bias = 0.0
    for tree in dump["tree_info"]:
        root = tree["tree_structure"]
        table = np.zeros((max(int(tree["num_leaves"]), 1), n_features))
        if "leaf_index" in root or "split_feature" not in root:  # a single-leaf tree
            bias += float(root.get("leaf_value", 0.0))
            tables.append(table)
            continue
        expected: dict[int, tuple[float, float]] = {}
        root_value, _ = _expect(root, expected)
        bias += root_value
        stack: list[tuple[dict[str, Any], np.ndarray, float]] = [
            (root, np.zeros(n_features), root_value)]
        while stack:
            node, path, value = stack.pop()
            if "leaf_index" in node:
                table[int(node["leaf_index"])] = path
                continue
            feature = int(node["split_feature"])
            for child in (node["left_child"], node["right_child"]):
                child_value = (float(child["leaf_value"]) if "leaf_index" in child
                               else expected[id(child)][0])
                moved = path.copy()
                moved[feature] += child_value - value
                stack.append((child, moved, child_value))
        tables.append(table)
    return tables, bias


def path_contributions(booster: Any, frame: pd.DataFrame, num_iteration: int | None = None,
                       *, chunk: int = 20_000) -> np.ndarray:
    """Rows x (features + 1) like ``pred_contrib=True``: the last column is the expected score.

    The leaf tables are stacked into one matrix B (all leaves x features); a chunk of rows is a
    sparse 0/1 matrix A with one 1 per tree (the row's leaf), and the contributions are A @ B.
    """
    from scipy import sparse

    n_features = frame.shape[1]
    tables, bias = _tables(booster, num_iteration, n_features)
    stacked = np.vstack(tables)
    offsets = np.cumsum([0, *(len(t) for t in tables[:-1])]).astype(np.int32)
    trees = len(tables)
    ones = np.ones(chunk * trees)
    out = np.empty((len(frame), n_features + 1))
    out[:, -1] = bias
    for start in range(0, len(frame), chunk):
        part = frame.iloc[start:start + chunk]
        m = len(part)
        leaves = np.asarray(booster.predict(part, num_iteration=num_iteration, pred_leaf=True))
        columns = (leaves.reshape(m, trees).astype(np.int32) + offsets).ravel()
        rows = sparse.csr_matrix(
            (ones[:m * trees], columns, np.arange(0, m * trees + 1, trees, dtype=np.int32)),
            shape=(m, len(stacked)), copy=False)
        out[start:start + m, :-1] = rows @ stacked
    return out
