"""Generates resources/layouts/ska_low_like.yaml: a synthetic layout in the spirit of SKA-Low
(a dense core and three log-spiral arms; station diameter 38 m; the site's published geodetic
position). It is not the real station list; it is deterministic so the demo is reproducible."""

import numpy as np
import yaml

rng = np.random.default_rng(20261125)
stations = {}
core_radius = 450.0
k = 0
while k < 24:
    east, north = rng.uniform(-core_radius, core_radius, 2)
    if np.hypot(east, north) > core_radius:
        continue
    if any(np.hypot(east - e, north - n) < 45.0 for e, n, _ in stations.values()):
        continue
    stations[f"C{k:02d}"] = [round(float(east), 2), round(float(north), 2), 0.0]
    k += 1
for arm in range(3):
    for j in range(5):
        radius = 500.0 * (1.5 ** j)
        angle = np.deg2rad(120 * arm + 35 * j + 10)
        stations[f"A{arm}{j}"] = [round(float(radius * np.cos(angle)), 2), round(float(radius * np.sin(angle)), 2), 0.0]

document = {
    "telescope": "SKA-Low-like (synthetic)",
    "location": {"longitude_deg": 116.7644, "latitude_deg": -26.8247, "height_m": 377.0},
    "dish_diameter_m": 38.0,
    "stations": stations,
}
with open("resources/layouts/ska_low_like.yaml", "w") as handle:
    handle.write("# Synthetic SKA-Low-like layout made by tools/make_ska_low_like_layout.py.\n")
    handle.write("# stations: name -> [east, north, up] in metres from the array centre.\n")
    yaml.safe_dump(document, handle, sort_keys=False, default_flow_style=None)
