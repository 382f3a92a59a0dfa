"""Runs inside the oracle environment (.venv-oracle: numpy<2, DADApy 0.3.4, scikit-dimension 0.5.0).

Usage: python oracle.py INPUT.npz OUTPUT.json. The input holds arrays named by the checks to run; the output is
a JSON object of floats. No pickle anywhere.
"""

import json
import sys

import numpy as np

inp, out = sys.argv[1], sys.argv[2]
data = np.load(inp, allow_pickle=False)
result = {}

import skdim  # noqa: E402
from dadapy import Data  # noqa: E402

for name in data.files:
    X = data[name]
    if name.startswith("twonn_"):
        result[name + ":dadapy"] = float(Data(X, verbose=False).compute_id_2NN()[0])
        result[name + ":skdim"] = float(skdim.id.TwoNN(discard_fraction=0.1).fit(X).dimension_)
    elif name.startswith("ii_"):
        da = int(data["dims_" + name[3:]][0])
        n = X.shape[0]
        for k in (1, 5, 10):
            d = Data(X, maxk=n - 1, verbose=False)
            ab, ba = d.return_inf_imb_two_selected_coords(list(range(da)), list(range(da, X.shape[1])), k=k)
            result[f"{name}:k{k}:ab"] = float(ab)
            result[f"{name}:k{k}:ba"] = float(ba)

with open(out, "w") as fh:
    json.dump(result, fh)

for name in data.files:
    if name.startswith("gride_"):
        ids, _, ranks = Data(data[name], verbose=False).return_id_scaling_gride(range_max=32, return_ranks=True)
        for d, r2 in zip(ids, ranks, strict=True):
            result[f"{name}:n1={int(r2) // 2}"] = float(d)
    with open(out, "w") as fh:
        json.dump(result, fh)
